//! OFTP over ISDN end to end: station A's `os4xsqd` dials through its
//! controller 0 (the exchange's controller 1, MSN 4930100), station B's
//! `os4xrd_capi_1` (the exchange's controller 2, MSN 4930200) accepts and
//! serves the session with the receive daemons' inbox and EERPs. The
//! daemons are real processes reaching the simulated exchange over
//! remote CAPI on 127.0.0.1, which this test process serves (the network,
//! with a hand on the line to break it).

mod sq_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use capi::remote::Server;
use capi::sim::Sim;
use os4x::queue::EntryState;
use sq_support::*;

const CAPI: &str = env!("CARGO_BIN_EXE_os4xrd_capi");
const PIDCTL: &str = env!("CARGO_BIN_EXE_os4x-pidctl");
const LONG: Duration = Duration::from_secs(60);

const NUMBER_A: &str = "4930100";
const NUMBER_B: &str = "4930200";

/// The simulated ISDN exchange, served as remote CAPI on 127.0.0.1.
struct Exchange {
    _rt: tokio::runtime::Runtime,
    sim: Sim,
    addr: String,
}

impl Exchange {
    /// One controller (2 B channels) per number, numbered 1, 2, ...
    fn start(lines: &[&str]) -> Exchange {
        Exchange::start_on("127.0.0.1:0", lines)
    }

    fn start_on(addr: &str, lines: &[&str]) -> Exchange {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let sim = Sim::new();
        for l in lines {
            sim.add_controller(&[l], 2);
        }
        let server = rt.block_on(Server::bind(addr, sim.clone())).unwrap();
        let addr = server.local_addr().unwrap().to_string();
        rt.spawn(server.serve());
        Exchange { _rt: rt, sim, addr }
    }

    /// Breaks every call on exchange controller `c` (layer 1 failure).
    fn break_line(&self, c: u32) -> usize {
        self.sim.exchange().break_line(c)
    }
}

/// `[[isdn.controller]]` for station-side controller `n` on simulator
/// controller `capi` answering `msn`.
fn controller(sim: &Exchange, n: u32, capi: u32, msn: &str, b3: &str) -> String {
    format!(
        "[[isdn.controller]]\nnumber = {n}\ntransport = \"remote:{}\"\ncapi_controller = {capi}\nmsn = [\"{msn}\"]\n{b3}",
        sim.addr
    )
}

/// A (sender, controller 0) and B (receiver, controller 1) knowing each
/// other by ISDN number; B knows A's number as `a_number_on_b`.
/// `b3` is appended to both controllers (e.g. `b3 = "transparent"`).
fn stations(sim: &Exchange, a_number_on_b: &str, b3: &str) -> (Station, Station) {
    let a = Station::new(A, &controller(sim, 0, 1, NUMBER_A, b3));
    let b = Station::new(B, &controller(sim, 1, 2, NUMBER_B, b3));
    a.add_partner(B, |_| {});
    b.add_partner(A, |_| {});
    let (code, out, err) = a.os4x(&[
        "route",
        "set",
        B,
        "--isdn-number",
        NUMBER_B,
        "--isdn-controller",
        "0",
        "--retry-base",
        "1",
        "--retry-max",
        "2",
        "--max-attempts",
        "20",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ISDN 4930200 via controller 0"), "{out}");
    let (code, out, err) = b.os4x(&[
        "route",
        "set",
        A,
        "--isdn-number",
        a_number_on_b,
        "--isdn-controller",
        "1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    (a, b)
}

/// Starts B's `os4xrd_capi_1` through a link of that name (argv0 names the
/// controller) and waits until it listens on the controller.
fn start_capi(b: &Station) -> Daemon {
    let link = b.dir.path().join("os4xrd_capi_1");
    std::os::unix::fs::symlink(CAPI, &link).unwrap();
    let d = b.spawn(link.to_str().unwrap());
    wait_controller(b, "os4xrd_capi_1", |s| s["state"] == "listening");
    d
}

fn state_file(s: &Station, program: &str) -> PathBuf {
    s.config.tmp_dir.join(format!("{program}.isdn.json"))
}

fn wait_controller(
    s: &Station,
    program: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let file = state_file(s, program);
    let deadline = Instant::now() + LONG;
    loop {
        let v = std::fs::read(&file)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok());
        if let Some(v) = &v {
            if f(v) {
                return v.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "controller state not reached: {v:?}\n{}",
            s.log(program)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pidctl(s: &Station, args: &[&str]) -> String {
    let out = Command::new(PIDCTL)
        .arg("--config")
        .arg(&s.config_path)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `os4xrd_capi --controller N --test-call NUMBER` with `s`'s configuration.
fn test_call(s: &Station, n: u32, number: &str) -> (Option<i32>, String) {
    let out = Command::new(CAPI)
        .arg("--config")
        .arg(&s.config_path)
        .args(["--controller", &n.to_string(), "--test-call", number])
        .env("OS4X_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn partial_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn send_over_isdn_is_accepted_delivered_and_acknowledged() {
    let sim = Exchange::start(&[NUMBER_A, NUMBER_B]);
    let (a, b) = stations(&sim, NUMBER_A, "");
    let mut capi = start_capi(&b);

    let data = content(3 << 20, 9);
    let id = a.send(&a.file("ISDNFILE", &data), B, "ISDNFILE");
    let _sqd = a.spawn(SQD);
    let e = a.wait_state(id, EntryState::Delivered, LONG);
    assert_eq!(e.attempts, 1, "the first call went through: {e:?}");

    let got = std::fs::read(b.inbox_from(A).join("ISDNFILE")).unwrap();
    assert!(got == data, "byte-identical");
    let sq_log = a.log("os4xsqd");
    assert!(sq_log.contains("dialling"), "{sq_log}");
    assert!(sq_log.contains("ISDN call connected"), "{sq_log}");
    let rd_log = b.log("os4xrd_capi_1");
    assert!(
        rd_log.contains("call accepted") && rd_log.contains("calling=4930100"),
        "{rd_log}"
    );
    assert!(sq_log.contains("b3=iso8208"), "{sq_log}");
    assert!(rd_log.contains("EERP delivered"), "{rd_log}");

    // pidctl shows the daemon with its controller state, not ports.
    let table = pidctl(&b, &["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("os4xrd_capi_1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("running"), "{row}");
    assert!(row.contains("ISDN ctrl 2 listening 4930200"), "{row}");
    let json: serde_json::Value = serde_json::from_str(&pidctl(&b, &["status", "--json"])).unwrap();
    let p = json["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xrd_capi_1")
        .unwrap()
        .clone();
    assert_eq!(p["isdn"]["state"], "listening", "{p}");
    assert_eq!(p["isdn"]["calls_accepted"], 1, "{p}");
    assert_eq!(
        p["isdn"]["transport"],
        format!("remote:{}", sim.addr),
        "{p}"
    );

    // Both ends cleared the call after the session.
    wait_controller(&b, "os4xrd_capi_1", |s| {
        s["calls_active"] == 0 && s["calls_accepted"] == 1
    });
    let (_, routes, _) = a.os4x(&["route", "list"]);
    assert!(routes.contains("isdn:4930200 ctrl 0"), "{routes}");
    let (_, routes, _) = a.os4x(&["route", "list", "--json"]);
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(routes["isdn"][0]["number"], NUMBER_B, "{routes}");

    // The admin's check of call acceptance: a test call from A.
    let (code, out) = test_call(&a, 0, NUMBER_B);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("call to 4930200 accepted") && out.contains("ODETTE FTP READY"),
        "{out}"
    );

    // SIGTERM: the row is released and the state file removed.
    assert!(capi.stop().success());
    assert!(!state_file(&b, "os4xrd_capi_1").exists());
}

#[test]
fn call_from_an_unknown_number_is_rejected() {
    let sim = Exchange::start(&[NUMBER_A, NUMBER_B]);
    // B knows partner A, but by another number than A calls from.
    let (a, b) = stations(&sim, "4930999", "");
    let _capi = start_capi(&b);
    let id = a.send(&a.file("NOPE", b"not for you"), B, "NOPE");
    let _sqd = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.attempts >= 1);
    assert_ne!(e.state, EntryState::Delivered);
    let error = e.last_error.unwrap_or_default();
    assert!(
        error.contains("0x3495") && error.contains("call rejected"),
        "{error}"
    );
    let rd_log = b.log("os4xrd_capi_1");
    assert!(
        rd_log.contains("call rejected")
            && rd_log.contains("calling=4930100")
            && rd_log.contains("no partner's ISDN number"),
        "{rd_log}"
    );
    assert!(!rd_log.contains("session started"), "{rd_log}");
    let (code, out) = test_call(&a, 0, NUMBER_B);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not accepted: reason 0x3495 (call rejected)"),
        "{out}"
    );
    let state = wait_controller(&b, "os4xrd_capi_1", |s| s["calls_rejected"] != 0);
    assert_eq!(state["calls_accepted"], 0);
    assert!(!b.inbox_from(A).join("NOPE").exists());
}

#[test]
fn line_drop_mid_file_restarts_on_the_next_call() {
    let sim = Exchange::start(&[NUMBER_A, NUMBER_B]);
    // The alternative B3 of the configuration; the other tests use the
    // default (ISO 8208, RFC 5024 Appendix D).
    let (a, b) = stations(&sim, NUMBER_A, "b3 = \"transparent\"\n");
    let _capi = start_capi(&b);
    let data = content(64 << 20, 11);
    let id = a.send(&a.file("BIGISDN", &data), B, "BIGISDN");
    let stamp = a.entry(id).file_timestamp;
    let _sqd = a.spawn(SQD);

    let partial_dir = b.inbox_from(A).join(".partial");
    let deadline = Instant::now() + LONG;
    while partial_size(&partial_dir) < 8 << 20 {
        assert!(Instant::now() < deadline, "transfer did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(sim.break_line(1), 1, "one call on A's line");

    let e = a.wait_state(id, EntryState::Delivered, Duration::from_secs(120));
    assert_eq!(e.file_timestamp, stamp, "same virtual file, not a new one");
    assert!(e.attempts >= 2, "the first call failed: {e:?}");
    let got = std::fs::read(b.inbox_from(A).join("BIGISDN")).unwrap();
    assert!(got == data, "byte-identical");

    let log = a.log("os4xsqd");
    let sending: Vec<&str> = log.lines().filter(|l| l.contains("sending file")).collect();
    assert!(sending.len() >= 2, "{log}");
    assert!(
        sending.iter().skip(1).any(|l| !l.contains("restart=0")),
        "the next call restarted at a nonzero offset: {sending:#?}"
    );
    // The line failure is named where the admin looks: the session's end.
    assert!(
        log.lines().any(|l| l.contains("session finished")
            && l.contains("ISDN call cleared: reason 0x3301 (layer 1 error: line broken)")),
        "{log}"
    );
    assert!(
        b.log("os4xrd_capi_1")
            .lines()
            .any(|l| l.contains("connection lost") && l.contains("reason 0x3301")),
        "{}",
        b.log("os4xrd_capi_1")
    );
    if std::env::var_os("ISDN_TEST_VERBOSE").is_some() {
        eprintln!("{log}\n{}", b.log("os4xrd_capi_1"));
    }
}

#[test]
fn master_starts_one_capi_daemon_per_controller() {
    let sim = Exchange::start(&[NUMBER_A, NUMBER_B]);
    let b = Station::new(B, &controller(&sim, 1, 2, NUMBER_B, ""));
    let mut master = b.spawn(env!("CARGO_BIN_EXE_os4xrd"));
    let state = wait_controller(&b, "os4xrd_capi_1", |s| s["state"] == "listening");
    assert_eq!(state["capi_controller"], 2);
    // The child runs under its program name (argv0), as ps shows it.
    let ps = Command::new("ps")
        .args(["-o", "args=", "--ppid", &master.pid().to_string()])
        .output()
        .unwrap();
    let children = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        children
            .lines()
            .any(|l| l.starts_with("os4xrd_capi_1 --controller 1")),
        "{children}"
    );
    assert!(master.stop().success());
    let deadline = Instant::now() + LONG;
    while state_file(&b, "os4xrd_capi_1").exists() {
        assert!(Instant::now() < deadline, "child did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unconfigured_or_missing_controller_is_a_clear_start_error() {
    let b = Station::new(B, "");
    let run = |args: &[&str]| {
        let out = Command::new(CAPI)
            .arg("--config")
            .arg(&b.config_path)
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--controller", "3"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("os4xrd_capi_3: ISDN controller 3 is not configured")
            && err.contains("[[isdn.controller]] with number = 3"),
        "{err}"
    );
    // Neither --controller nor a name os4xrd_capi_N: usage error.
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--controller N"), "{err}");
}

#[test]
fn controller_down_is_shown_and_reconnected() {
    let port = free_port();
    let b = Station::new(
        B,
        &format!(
            "[[isdn.controller]]\nnumber = 1\ntransport = \"remote:127.0.0.1:{port}\"\ncapi_controller = 2\nmsn = [\"{NUMBER_B}\"]\n"
        ),
    );
    let _capi = b.spawn_with(CAPI, &["--controller", "1"], &[]);
    let state = wait_controller(&b, "os4xrd_capi_1", |s| s["state"] == "down");
    let error = state["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    let table = pidctl(&b, &["status"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("os4xrd_capi_1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("running") && row.contains("ISDN ctrl 2 down"),
        "{row}"
    );
    // The monitoring check warns: the daemon runs, but no call can come in.
    // (Only the capi daemon is required here, so nothing else is critical.)
    let text = std::fs::read_to_string(&b.config_path).unwrap();
    std::fs::write(
        &b.config_path,
        format!("required_daemons = [\"os4xrd_capi_1\"]\n{text}"),
    )
    .unwrap();
    let out = Command::new(PIDCTL)
        .arg("--config")
        .arg(&b.config_path)
        .arg("check")
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{check}");
    assert!(
        check.starts_with("OS4X WARNING - ")
            && check.contains("os4xrd_capi_1: ISDN controller 2 down"),
        "{check}"
    );

    // The exchange (router) comes up: the daemon reconnects by itself.
    let _sim = Exchange::start_on(&format!("127.0.0.1:{port}"), &[NUMBER_A, NUMBER_B]);
    let state = wait_controller(&b, "os4xrd_capi_1", |s| s["state"] == "listening");
    assert!(state["error"].is_null(), "{state}");
}
