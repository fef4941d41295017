//! `os4x-pidctl` against real daemons, a real SQLite file and real sockets.

#[path = "pid_support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

use nix::sys::signal::Signal;
use support::*;

const REQUIRE_DEBUGD: &str = "required_daemons = [\"os4xdebugd\"]";

#[test]
fn check_exit_codes_follow_the_plugin_convention() {
    let env = Env::new(REQUIRE_DEBUGD);

    // Never started: CRITICAL, and the database is not created by checking.
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("OS4X CRITICAL - os4xdebugd: stopped"),
        "{}",
        stdout(&out)
    );
    assert!(!env.db_exists());

    let daemon = env.start(&[]);
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "OS4X OK - 1 of 1 required daemons running | running=1;;;0;1"
    );
    assert!(
        text.contains(&format!(
            "os4xdebugd (required): running, pid {}",
            daemon.pid()
        )),
        "{text}"
    );

    // Running, but its PID file is gone: WARNING.
    std::fs::remove_file(env.pid_file()).unwrap();
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("OS4X WARNING - os4xdebugd: PID file absent"));

    // Crashed: CRITICAL with the stale PID.
    let pid = daemon.pid();
    daemon.stop(Signal::SIGKILL);
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).starts_with(&format!(
            "OS4X CRITICAL - os4xdebugd: stale: no process (pid {pid})"
        )),
        "{}",
        stdout(&out)
    );

    // Unreadable configuration: UNKNOWN, not 78.
    std::fs::write(&env.config, "server_id = [").unwrap();
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).starts_with("OS4X UNKNOWN - "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn default_required_daemons_are_checked() {
    let env = Env::new("");
    let _debugd = env.start(&[]);
    let out = env.pidctl(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let first = stdout(&out).lines().next().unwrap().to_owned();
    assert_eq!(
        first,
        "OS4X CRITICAL - os4xrd_tcpip: stopped, os4xrd_tcpip_tls: stopped, os4xsqd: stopped | running=0;;;0;3"
    );
}

#[test]
fn status_shows_expected_programs_and_the_real_listening_port() {
    let env = Env::new("");
    // Before anything ran: the expected daemons, no database created.
    let v = env.status_json();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["database_exists"], false);
    let names: Vec<_> = v["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["program"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["os4xrd_tcpip", "os4xrd_tcpip_tls", "os4xsqd"]);
    assert!(!env.db_exists());

    let daemon = env.start(&[]);
    let s = env.debugd_status();
    assert_eq!(s["state"], "running");
    assert_eq!(s["pid"], daemon.pid());
    assert_eq!(s["executable"], "os4xdebugd");
    assert_eq!(s["required"], false);
    assert_eq!(s["pid_file"]["state"], "present");
    assert_eq!(s["pid_file"]["pid"], daemon.pid());
    assert!(s["uptime_seconds"].as_u64().is_some());
    let listening = s["listening"].as_array().expect("listening list");
    assert_eq!(listening.len(), 1, "{s:#}");
    // The port pidctl found (from /proc) is the daemon's: it answers.
    let addr = listening[0].as_str().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // os4xdebugd greets with one line and then waits for debug frames.
    let mut banner = String::new();
    BufRead::read_line(
        &mut BufReader::new(TcpStream::connect(addr).unwrap()),
        &mut banner,
    )
    .unwrap();
    assert!(banner.starts_with("os4xdebugd: "), "{banner:?}");

    let table = stdout(&env.pidctl(&["status"]));
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("PROGRAM") && header.ends_with("LISTENING"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("os4xdebugd "))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in [
        daemon.pid().to_string().as_str(),
        "running",
        "present",
        addr,
    ] {
        assert!(row.contains(cell), "{cell} missing in {row:?}");
    }
    daemon.stop(Signal::SIGTERM);
    let s = env.debugd_status();
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["pid"], serde_json::Value::Null);
    assert_eq!(s["pid_file"]["state"], "absent");
}

#[test]
fn reset_refuses_a_live_daemon_without_force() {
    let env = Env::new("");
    let mut daemon = env.start(&[]);
    let pid = daemon.pid();

    let out = env.pidctl(&["reset", "os4xdebugd"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("is running with pid {pid}")), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(env.recorded_pid(), i64::from(pid));
    assert!(env.pid_file().exists());

    let out = env.pidctl(&["reset", "--force", "os4xdebugd"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "os4xdebugd (serverID 0): was running, pid {pid}; set pid=-1, removed "
        )),
        "{text}"
    );
    assert!(text.contains("still running"), "{text}");
    assert!(daemon.is_alive(), "reset never stops a process");
    assert_eq!(env.recorded_pid(), -1);
    assert!(!env.pid_file().exists());
    assert_eq!(daemon.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn reset_clears_a_stale_entry_and_says_what_it_did() {
    let env = Env::new("");
    let daemon = env.start(&[]);
    let pid = daemon.pid();
    daemon.stop(Signal::SIGKILL);

    let out = env.pidctl(&["reset", "os4xdebugd"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "os4xdebugd (serverID 0): was stale: no process, pid {pid}; set pid=-1, removed {}\n",
            env.pid_file().display()
        )
    );
    let s = env.debugd_status();
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["pid_file"]["state"], "absent");

    let out = env.pidctl(&["reset", "os4xdebugd"]);
    assert_eq!(
        stdout(&out),
        "os4xdebugd (serverID 0): was not running; nothing to do\n"
    );
}

#[test]
fn reset_all_is_limited_to_one_server_id() {
    let env = Env::new("");
    let d0 = env.start(&[]);
    d0.stop(Signal::SIGKILL);
    // A second instance with server id 5 shares the database.
    let other = env.dir.path().join("five.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&env.config)
            .unwrap()
            .replace("tmp_dir = \"", "server_id = 5\ntmp_dir = \"")
            .replace("/run/os4x\"", "/run/os4x-5\""),
    )
    .unwrap();
    let (mut cmd, log) = env.debugd(&[]);
    let args: Vec<_> = cmd.get_args().skip(2).map(ToOwned::to_owned).collect();
    let mut cmd5 = std::process::Command::new(cmd.get_program());
    cmd5.envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .arg("--config")
        .arg(&other)
        .args(args)
        .stderr(std::fs::File::create(&log).unwrap());
    let _ = cmd.stdout(std::process::Stdio::null());
    let d5 = Daemon {
        child: cmd5.spawn().unwrap(),
        log,
    };
    assert_eq!(env.next_notification(), "READY=1");
    d5.stop(Signal::SIGKILL);

    let out = env.pidctl(&["reset", "--all", "--server-id", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("os4xdebugd (serverID 5): was stale: no process"),
        "{}",
        stdout(&out)
    );
    let pids: Vec<(i64, i64)> = env
        .sql()
        .prepare("SELECT serverID, pid FROM os4x_pids ORDER BY serverID")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0].1, -1, "server 0 untouched");
    assert_eq!(pids[1], (5, -1));
}

#[test]
fn usage_and_completions() {
    let env = Env::new("");
    let out = env.pidctl(&["reset"]);
    assert_eq!(out.status.code(), Some(2), "program or --all required");
    let out = env.pidctl(&["reset", "--all", "os4xsqd"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.pidctl(&["reset", "../etc"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = env.pidctl(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("os4x-pidctl"));
    let out = env.pidctl(&["help", "status"]);
    assert!(
        stdout(&out).contains("stale: pid reused by"),
        "{}",
        stdout(&out)
    );
}
