//! The real `os4x` binary driving os4xclientd and os4xdebugd: `os4x user`,
//! `os4x client`, `os4x debug on|off|status|bundle`.

mod debugd_support;

use std::io::Read;

use debugd_support::*;
use serde_json::json;

#[test]
fn user_add_then_login_via_clientd_and_os4x_client() {
    let env = Env::new();
    let inst = env.instance(0, "", "", "");

    let (code, out, err) = os4x(
        &inst,
        &[
            "user",
            "add",
            "olga",
            "--role",
            "operator",
            "--password-stdin",
        ],
        "olga-secret-1\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = os4x(
        &inst,
        &["user", "add", "olga", "--password-stdin"],
        "another-pass\n",
    );
    assert_eq!(code, 1, "adding an existing user must fail: {err}");
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = os4x(&inst, &["user", "add", "vic", "--password-stdin"], "x\n");
    assert_eq!(code, 2, "a too short password is a usage error: {err}");
    let (code, out, _) = os4x(&inst, &["user", "list", "--json"], "");
    assert_eq!(code, 0);
    let users: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(users[0]["name"], "olga", "{out}");
    assert_eq!(users[0]["role"], "operator", "{out}");

    let daemon = env.start(CLIENTD, &inst);
    let mut c = Client::connect(inst.client_addr);
    assert_eq!(
        c.login("olga", "olga-secret-1")["result"],
        json!({"user": "olga", "role": "operator"})
    );

    // The reference client, with the address from the configuration.
    let (code, out, err) = os4x(
        &inst,
        &["client", "--user", "olga", "--password-stdin", "queue"],
        "olga-secret-1\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let q: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(q, json!({"version": 1, "entries": []}));
    let (code, _, err) = os4x(
        &inst,
        &["client", "--user", "olga", "--password-stdin", "status"],
        "wrong-password\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad_credentials"), "{err}");

    // A new password through `os4x user passwd` takes effect at once.
    let (code, _, err) = os4x(
        &inst,
        &["user", "passwd", "olga", "--password-stdin"],
        "olga-secret-2\n",
    );
    assert_eq!(code, 0, "{err}");
    let mut c = Client::connect(inst.client_addr);
    assert_eq!(
        c.login("olga", "olga-secret-1")["error"]["code"],
        "bad_credentials"
    );
    assert_eq!(c.login("olga", "olga-secret-2")["ok"], true);
    assert_eq!(os4x(&inst, &["user", "remove", "olga"], "").0, 0);
    let mut c = Client::connect(inst.client_addr);
    assert_eq!(
        c.login("olga", "olga-secret-2")["error"]["code"],
        "bad_credentials"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn debug_on_switches_forwarding_at_runtime_and_bundle_is_written() {
    let env = Env::new();
    let secret = "T0PSECRT";
    let inst = env.instance(
        0,
        "",
        "",
        &format!("[local]\nodette_id = \"O0013000000TEST\"\npassword = \"{secret}\"\n"),
    );
    let _debugd = env.start(DEBUGD, &inst);
    let clientd = env.start(CLIENTD, &inst);
    let poke = || {
        let r = Client::connect(inst.client_addr).login("nobody", "wrong-password");
        assert_eq!(r["error"]["code"], "bad_credentials");
    };
    let from_clientd = || {
        ring_records(&env.state)
            .iter()
            .any(|r| r.pid == clientd.pid() && r.program == "os4xclientd")
    };
    poke();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!from_clientd(), "no forwarding before `os4x debug on`");

    let (code, out, err) = os4x(&inst, &["debug", "on", "os4xclientd"], "");
    assert_eq!(code, 0, "{out}{err}");
    eventually("records from os4xclientd after `os4x debug on`", || {
        poke();
        from_clientd().then_some(())
    });
    let (code, out, _) = os4x(&inst, &["debug", "status"], "");
    assert_eq!(code, 0);
    assert!(out.contains("override os4xclientd: on"), "{out}");
    let (code, _, err) = os4x(&inst, &["debug", "on", "not a program!"], "");
    assert_ne!(code, 0, "{err}");

    let out_file = env.dir.path().join("report.tar.gz");
    let (code, out, err) = os4x(
        &inst,
        &[
            "debug",
            "bundle",
            "--since",
            "1h",
            "-o",
            out_file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&out_file).unwrap())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tar_bytes).contains(secret),
        "the configured password leaked into the bundle"
    );
    let mut names = Vec::new();
    let mut records = String::new();
    for entry in tar::Archive::new(&tar_bytes[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().to_string();
        if path.ends_with("debug-records.jsonl") {
            entry.read_to_string(&mut records).unwrap();
        }
        names.push(path);
    }
    for part in [
        "debug-records.jsonl",
        "pidctl-status.json",
        "config.toml",
        "versions.txt",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(part)),
            "{part} missing: {names:?}"
        );
    }
    assert!(
        records.contains(&format!("\"pid\":{}", clientd.pid())),
        "records of os4xclientd missing from the bundle"
    );

    let (code, _, err) = os4x(&inst, &["debug", "off", "os4xclientd"], "");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = os4x(&inst, &["debug", "status"], "");
    assert!(out.contains("override os4xclientd: off"), "{out}");
}
