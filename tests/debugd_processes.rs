//! os4xdebugd with real daemons: records arrive from several daemons
//! (two os4xclientd instances and an os4xsqd), the
//! runtime switch, daemons unaffected by a dead os4xdebugd (drops counted),
//! and a bundle without secrets.

mod debugd_support;

use std::io::Read;

use debugd_support::*;
use serde_json::json;

/// Makes a clientd log something (a failed login is logged at WARN).
fn poke(addr: std::net::SocketAddr) {
    let mut c = Client::connect(addr);
    let r = c.login("nobody", "wrong-password");
    assert_eq!(r["error"]["code"], "bad_credentials", "{r}");
}

#[test]
fn records_from_two_daemons_survive_debugd_death_and_bundle_has_no_secrets() {
    let env = Env::new();
    // Instance 0 forwards by configuration, instance 1 only after
    // `os4x debug on` (the database switch) at runtime.
    let secret = "S3CRETPW";
    let i0 = env.instance(
        0,
        "enable = [\"os4xclientd\", \"os4xsqd\"]\nframe_timeout = 2",
        "",
        &format!("[local]\nodette_id = \"O0013000000TEST\"\npassword = \"{secret}\"\n"),
    );
    let i1 = env.instance(1, "", "", "");
    let debugd = env.start(DEBUGD, &i0);
    let c0 = env.start(CLIENTD, &i0);
    let mut c1 = env.start(CLIENTD, &i1);

    let from = |pid: u32| {
        move |r: &os4x::debug::ring::StoredRecord| r.pid == pid && r.program == "os4xclientd"
    };
    eventually("records from clientd 0", || {
        poke(i0.client_addr);
        ring_records(&env.state)
            .iter()
            .any(from(c0.pid()))
            .then_some(())
    });
    // A daemon of another program forwards too: os4xsqd of instance 0.
    // Started without NOTIFY_SOCKET: its STATUS= updates must not reach
    // the harness's readiness socket.
    let mut sqd = std::process::Command::new(env!("CARGO_BIN_EXE_os4xsqd"))
        .arg("--config")
        .arg(&i0.config)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("OS4X_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sqd_pid = sqd.id();
    let sqd_records = eventually("records from os4xsqd", || {
        let n = ring_records(&env.state)
            .iter()
            .filter(|r| r.pid == sqd_pid && r.program == "os4xsqd")
            .count();
        (n > 0).then_some(n)
    });
    assert!(sqd_records > 0);
    let _ = sqd.kill();
    let _ = sqd.wait();

    poke(i1.client_addr);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !ring_records(&env.state).iter().any(from(c1.pid())),
        "instance 1 must not forward before it is switched on"
    );

    // Runtime switch, as `os4x debug on os4xclientd` does for server 1.
    let conn = os4x::debug::switch::open(&env.db).unwrap();
    os4x::debug::switch::set(&conn, 1, "os4xclientd", true).unwrap();
    eventually("records from clientd 1 after `debug on`", || {
        poke(i1.client_addr);
        ring_records(&env.state)
            .iter()
            .any(from(c1.pid()))
            .then_some(())
    });
    let recs = ring_records(&env.state);
    let sample = recs
        .iter()
        .find(|r| r.pid == c1.pid() && r.record.message.contains("login failed"))
        .expect("login failure record");
    assert_eq!(sample.server_id, 1);
    assert_eq!(sample.record.level, "WARN");
    assert_eq!(
        sample.record.fields.get("user").map(String::as_str),
        Some("nobody"),
        "{sample:?}"
    );
    assert!(sample.record.ts_us > 0);

    // os4xdebugd dies: the daemons go on serving and count drops.
    debugd.kill9();
    for _ in 0..20 {
        poke(i0.client_addr);
        poke(i1.client_addr);
    }
    assert!(c1.is_alive());
    eventually("clientd logs the outage", || {
        c1.log().contains("os4xdebugd not reachable").then_some(())
    });

    // Back again: each daemon reports how many records it dropped.
    let _debugd = env.start(DEBUGD, &i0);
    let dropped = |pid: u32| {
        ring_records(&env.state)
            .iter()
            .filter(|r| {
                r.pid == pid && r.program == "os4xclientd" && r.record.target == "os4xdebugd"
            })
            .filter_map(|r| r.record.fields.get("dropped_total")?.parse::<u64>().ok())
            .max()
    };
    let (d0, d1) = eventually("drop reports from both daemons", || {
        poke(i0.client_addr);
        poke(i1.client_addr);
        Some((dropped(c0.pid())?, dropped(c1.pid())?)).filter(|(a, b)| *a > 0 && *b > 0)
    });
    assert!(d0 > 0 && d1 > 0, "{d0} {d1}");

    // A received file, so the bundle has a table to show.
    let db = os4x::db::Db::open(&env.db).unwrap();
    db.lock()
        .execute(
            "INSERT INTO os4x_received_files (partner, dataset_name, file_timestamp, originator, destination,
             format, max_record_size, file_size_1k, state, partial_path, final_path, started_at, received_at)
             VALUES ('O0013PARTNER', 'INVOICE.EDI', '20261124120000', 'O0013PARTNER', 'O0013000000TEST',
             'U', 0, 1, 'received', '/x.part', '/x', 1, 2)",
            [],
        )
        .unwrap();

    let config = os4x::config::Config::load(Some(&i0.config)).unwrap();
    let out = env.dir.path().join("bundle.tar.gz");
    let summary = os4x::debug::bundle::write_bundle(&config, 0, &out).unwrap();
    assert!(summary.records > 0);

    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let text = String::from_utf8_lossy(&tar_bytes);
    assert!(
        !text.contains(secret),
        "the configured password leaked into the bundle"
    );
    let mut files = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let name = path.split_once('/').unwrap().1.to_owned();
        let mut s = String::new();
        entry.read_to_string(&mut s).unwrap();
        files.insert(name, s);
    }
    let records = &files["debug-records.jsonl"];
    for pid in [c0.pid(), c1.pid()] {
        assert!(
            records.contains(&format!("\"pid\":{pid}")),
            "records of {pid} missing"
        );
    }
    let status: serde_json::Value = serde_json::from_str(&files["pidctl-status.json"]).unwrap();
    assert_eq!(status["schema_version"], 1);
    let clientd = status["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xclientd")
        .unwrap();
    assert_eq!(clientd["state"], "running");
    assert_eq!(clientd["pid"], json!(c0.pid()));
    let cfg = &files["config.toml"];
    assert!(
        cfg.contains("O0013000000TEST") && cfg.contains("<redacted>"),
        "{cfg}"
    );
    assert!(files["versions.txt"].contains(env!("CARGO_PKG_VERSION")));
    assert!(files["tables/os4x_received_files.json"].contains("INVOICE.EDI"));
    assert!(files.contains_key("debug-switch.json"));
    assert!(files.contains_key("README.txt"));
}
