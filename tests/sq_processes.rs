//! The send side end to end: `os4x send` (the CLI's code) queues into a
//! real SQLite database, `os4xsqd` runs as a real process and delivers to
//! `os4xrd_tcpip` / `os4xrd_tcpip_tls` processes of a second station (own
//! state directory, own Odette ID) over 127.0.0.1.

#[path = "notify_support/mod.rs"]
mod notify;
mod sq_support;

use std::time::Duration;

use os4x::queue::EntryState;
use sq_support::*;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn both_directions_several_files_per_session_with_eerps() {
    let (a, b) = pair("");
    let _rd_a = a.start_rd();
    let _rd_b = b.start_rd();

    let payloads: Vec<(String, Vec<u8>)> = [0usize, 1, 100_000, 3_000_000]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("ATOB{i}"), content(len, i as u64 + 1)))
        .collect();
    let ids: Vec<i64> = payloads
        .iter()
        .map(|(name, data)| a.send(&a.file(name, data), B, name))
        .collect();
    let back = content(777_777, 99);
    let back_id = b.send(&b.file("BTOA", &back), A, "BTOA");

    // A's daemon alone first: had B's daemon run too, its session to A's
    // os4xrd could take some of A's files (a calling partner gets its
    // files), and "one session" would be a race.
    let _sqd_a = a.spawn(SQD);

    for (id, (name, data)) in ids.iter().zip(&payloads) {
        let e = a.wait_state(*id, EntryState::Delivered, LONG);
        assert_eq!(e.eerp, "eerp");
        assert_eq!(e.attempts, 1);
        let got = std::fs::read(b.inbox_from(A).join(name)).unwrap();
        assert!(got == *data, "{name} differs");
    }
    // B's os4xrd handed A its file after the turn change, in A's session.
    let e = b.wait_state(back_id, EntryState::Delivered, LONG);
    assert_eq!(e.eerp, "eerp");
    assert!(std::fs::read(a.inbox_from(B).join("BTOA")).unwrap() == back);

    // All four files went in one session (they were queued before the
    // daemon started), the EERPs came back in it, and B's file too.
    let log = a.wait_log("os4xsqd", "session finished", LONG);
    assert_eq!(log.matches("starting session").count(), 1, "{log}");
    assert!(log.contains("sent=4 received=1"), "{log}");

    // B's own daemon delivers to A's os4xrd.
    let back2 = content(123_456, 98);
    let back2_id = b.send(&b.file("BTOA2", &back2), A, "BTOA2");
    let _sqd_b = b.spawn(SQD);
    let e = b.wait_state(back2_id, EntryState::Delivered, LONG);
    assert_eq!((e.eerp.as_str(), e.attempts), ("eerp", 1));
    assert!(std::fs::read(a.inbox_from(B).join("BTOA2")).unwrap() == back2);
    let log = b.wait_log("os4xsqd", "sent=1", LONG);
    assert!(log.contains("sent=1"), "{log}");

    // The receiver lists them with the EERP sent.
    let received = os4x::usecase::received::list(&b.config, Some(A)).unwrap();
    assert_eq!(received.len(), 4);
    assert!(received
        .iter()
        .all(|r| r.state == "received" && r.eerp == "sent"));
}

#[test]
fn retried_with_backoff_after_the_receiver_was_down() {
    let (a, b) = pair("");
    let id = a.send(&a.file("LATE", b"late but there"), B, "LATE");
    let _sqd = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| {
        e.state == EntryState::Retry && e.attempts >= 2
    });
    assert!(
        e.last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect"),
        "{e:?}"
    );
    assert!(e.next_attempt_at >= e.updated_at, "{e:?}");
    let _rd_b = b.start_rd();
    let e = a.wait_state(id, EntryState::Delivered, LONG);
    assert!(e.attempts >= 3, "{e:?}");
    assert_eq!(
        std::fs::read(b.inbox_from(A).join("LATE")).unwrap(),
        b"late but there"
    );
}

#[test]
fn permanent_refusal_fails_with_the_reason_text() {
    let a = Station::new(A, "");
    let b = Station::new(B, "");
    a.add_partner(B, |_| {});
    // B only sends to A: A's files are refused with SFNA 14, retry N.
    b.add_partner(A, |p| p.directions = os4x::partner::Directions::Send);
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();
    let id = a.send(&a.file("NOPE", b"x"), B, "NOPE");
    let ok = a.send(&a.file("NOPE2", b"y"), B, "NOPE2");
    let _sqd = a.spawn(SQD);
    for id in [id, ok] {
        let e = a.wait_state(id, EntryState::Failed, LONG);
        let err = e.last_error.unwrap();
        assert!(err.contains("SFNA 14"), "{err}");
        assert!(err.contains("does not accept files from you"), "{err}");
        assert_eq!(e.attempts, 1, "a permanent refusal is not retried");
    }
}

#[test]
fn killed_during_a_200_mb_transfer_resumes_with_restart_and_delivers_once() {
    let (a, b) = pair("");
    let _rd_b = b.start_rd();
    let len = 200 << 20;
    let data = content(len, 7);
    let id = a.send(&a.file("BIG", &data), B, "BIG");
    let stamp = a.entry(id).file_timestamp;
    let mut sqd = a.spawn(SQD);

    // Kill as soon as the receiver holds a good part of the file.
    let partial_dir = b.inbox_from(A).join(".partial");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let size: u64 = std::fs::read_dir(&partial_dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if size > 90 << 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "transfer did not start"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    sqd.kill9();
    let e = a.entry(id);
    assert_eq!(e.state, EntryState::Sending, "killed mid-transfer: {e:?}");
    assert!(e.sent_units > 0, "progress was recorded: {e:?}");

    let _sqd = a.spawn(SQD);
    let e = a.wait_state(id, EntryState::Delivered, LONG);
    assert_eq!(e.file_timestamp, stamp, "same virtual file, not a new one");
    let got = std::fs::read(b.inbox_from(A).join("BIG")).unwrap();
    assert!(got == data, "byte-identical");
    let names: Vec<_> = std::fs::read_dir(b.inbox_from(A))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .collect();
    assert_eq!(names.len(), 1, "delivered once");
    assert_eq!(
        os4x::usecase::received::list(&b.config, Some(A))
            .unwrap()
            .len(),
        1
    );
    // The second attempt restarted: both sides logged a nonzero position.
    let log = a.log("os4xsqd");
    assert!(log.contains("entries left in `sending`"), "{log}");
    let restarted = log
        .lines()
        .filter(|l| l.contains("sending file"))
        .any(|l| !l.contains("restart=0"));
    assert!(restarted, "{log}");
    if std::env::var_os("SQ_TEST_VERBOSE").is_some() {
        eprintln!("{log}\n{}", b.log("os4xrd_tcpip"));
    }
}

#[test]
fn tls_delivery_with_a_pinned_and_a_ca_verified_certificate() {
    let a = Station::new(A, "");
    let dir = a.dir.path();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("b.crt");
    let key = dir.join("b.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let tls_port = free_port();
    let b = Station::new(
        B,
        &format!(
            "[tls]\nlisten = [\"127.0.0.1:{tls_port}\"]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    a.add_partner(B, |_| {});
    b.add_partner(A, |p| p.tls_required = true);
    let _rd = b.spawn(RD_TLS);
    wait_port(([127, 0, 0, 1], tls_port).into(), Duration::from_secs(20));

    // Pinned by fingerprint.
    let pin = os4x::partner::sha256_hex(ck.cert.der());
    a.add_route(B, tls_port, |r| {
        r.tls = true;
        r.tls_pin_sha256 = Some(pin.clone());
    });
    let id = a.send(&a.file("PINNED", b"over tls"), B, "PINNED");
    let sqd = a.spawn(SQD);
    a.wait_state(id, EntryState::Delivered, LONG);
    assert_eq!(
        std::fs::read(b.inbox_from(A).join("PINNED")).unwrap(),
        b"over tls"
    );
    drop(sqd);

    // A wrong pin is a failed attempt, not a delivery.
    a.add_route(B, tls_port, |r| {
        r.tls = true;
        r.tls_pin_sha256 = Some("00".repeat(32));
    });
    let id = a.send(&a.file("WRONGPIN", b"x"), B, "WRONGPIN");
    let sqd = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.state == EntryState::Retry);
    assert!(e.last_error.unwrap().contains("does not match the pinned"));
    drop(sqd);

    // The certificate as CA file.
    a.add_route(B, tls_port, |r| {
        r.tls = true;
        r.tls_ca_file = Some(cert.clone());
    });
    a.queue.retry(id).unwrap();
    let _sqd = a.spawn(SQD);
    a.wait_state(id, EntryState::Delivered, LONG);
    assert_eq!(
        std::fs::read(b.inbox_from(A).join("WRONGPIN")).unwrap(),
        b"x"
    );
}

#[test]
fn send_errors_enqueue_nothing() {
    let (a, _b) = pair("");
    let file = a.file("OK", b"data");
    let err = a
        .try_send(&file, "O0013000000NOBODY", Some("OK"))
        .unwrap_err();
    assert!(err.contains("not configured"), "{err}");
    let missing = a.dir.path().join("missing");
    let err = a.try_send(&missing, B, Some("MISSING")).unwrap_err();
    assert!(
        err.contains("cannot read") && err.contains("nothing was queued"),
        "{err}"
    );
    let err = a.try_send(a.dir.path(), B, Some("DIR")).unwrap_err();
    assert!(err.contains("nothing was queued"), "{err}");
    let err = a.try_send(&file, B, Some(&"N".repeat(27))).unwrap_err();
    assert!(err.contains("dataset name"), "{err}");
    assert!(a.queue.list(&[]).unwrap().is_empty());
    let outbox = &a.config.sq.outbox_dir;
    let left = std::fs::read_dir(outbox).map_or(0, |d| d.count());
    assert_eq!(left, 0, "no copy left in the outbox");
}

#[test]
fn notifies_systemd_and_claims_its_pid_entry() {
    let (a, _b) = pair("");
    let id = a.send(&a.file("Q", b"q"), B, "Q");
    let sock_path = a.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sqd = a.spawn_with(SQD, &[], &[("NOTIFY_SOCKET", &sock_path)]);
    let (mut ready, mut status) = (false, None::<String>);
    let mut buf = [0u8; 4096];
    while !(ready && status.is_some()) {
        let n = notify::recv(&sock, &mut buf).expect("sd_notify message");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        ready |= msg.lines().any(|l| l == "READY=1");
        if let Some(l) = msg.lines().find(|l| l.starts_with("STATUS=")) {
            status = Some(l.to_owned());
        }
    }
    let status = status.unwrap();
    assert!(
        status.contains("sessions active") && status.contains("queued"),
        "{status}"
    );
    // B is down: the entry waits for a retry, the daemon runs on.
    a.wait_entry(id, LONG, |e| e.state == EntryState::Retry);

    // A second instance is refused while the first runs...
    let out = std::process::Command::new(SQD)
        .arg("--config")
        .arg(&a.config_path)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("There seems to run another os4xsqd"), "{err}");
    // ... unless forced.
    let mut forced = a.spawn_with(SQD, &["-f"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(forced.0.try_wait().unwrap().is_none(), "-f takes over");
    assert!(forced.stop().success());
    assert!(sqd.stop().success(), "SIGTERM ends cleanly");
}

#[test]
fn polling_fetches_the_file_the_partner_holds_for_us() {
    // B holds a file for A; B has no route to A, A polls B every second.
    let a = Station::new(A, "");
    let b = Station::new(B, "");
    a.add_partner(B, |_| {});
    b.add_partner(A, |_| {});
    a.add_route(B, b.tcp_port, |r| r.poll_interval = Some(1));
    let payload = content(1_500_000, 21);
    let id = b.send(&b.file("FORA", &payload), A, "FORA");
    let _rd_b = b.start_rd();
    let _sqd_a = a.spawn(SQD);
    // Fetched, and A's EERP went back in the same session.
    let e = b.wait_state(id, EntryState::Delivered, LONG);
    assert_eq!(e.eerp, "eerp");
    assert!(std::fs::read(a.inbox_from(B).join("FORA")).unwrap() == payload);
    // A records the EERP as sent when B's RTR arrives, just after B
    // applied it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, _) = a.os4x(&["received", "--json"]);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let files = v["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{out}");
        assert_eq!(files[0]["dataset_name"], "FORA");
        if files[0]["eerp"] == "sent" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Later polls find nothing new.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        os4x::usecase::received::list(&a.config, None)
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.log("os4xsqd").matches("reason=\"poll\"").count() >= 2
            || a.log("os4xsqd").matches("reason=poll").count() >= 2,
        "{}",
        a.log("os4xsqd")
    );
}

#[test]
fn queue_and_route_commands() {
    let (a, _b) = pair("");
    let (code, _, err) = a.os4x(&["route", "set", "O0013000000NOBODY", "--host", "x"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = a.os4x(&["route", "set", B, "--tls", "true"]);
    assert_eq!(code, 2, "TLS without trust is refused: {err}");
    assert!(
        err.contains("--tls-ca") && err.contains("--tls-pin"),
        "{err}"
    );
    let (code, out, err) = a.os4x(&[
        "route",
        "set",
        B,
        "--max-attempts",
        "3",
        "--poll-interval",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("route to O0013000000BBBB set"), "{out}");
    let route = a.queue.route(B).unwrap().unwrap();
    assert_eq!((route.max_attempts, route.poll_interval), (3, None));

    let id = a.send(&a.file("ONE", b"1"), B, "ONE");
    let (code, out, _) = a.os4x(&["queue", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entries"][0]["id"], id);
    assert_eq!(v["entries"][0]["state"], "queued");
    let (code, out, _) = a.os4x(&["queue", "--state", "failed"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "header only: {out}");
    let (code, out, _) = a.os4x(&["queue", "cancel", &id.to_string()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(a.entry(id).state, EntryState::Cancelled);
    let (code, _, err) = a.os4x(&["queue", "cancel", &id.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("is cancelled"), "{err}");
    let (code, _, _) = a.os4x(&["queue", "retry", &id.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(a.entry(id).state, EntryState::Queued);
    let (code, _, err) = a.os4x(&["queue", "retry", "999"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}

// The shipped configuration files (`examples/os4x.toml`, the package's
// `/etc/os4x/os4x.toml`) parse, and the `[sq]` values they document as
// defaults are the defaults: uncommenting them changes nothing.

fn shipped(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// The `key = value` lines commented out in the `[sq]` section.
fn documented_sq_keys(text: &str) -> Vec<String> {
    let mut in_sq = false;
    let mut keys = Vec::new();
    for line in text.lines() {
        let uncommented = line.trim_start_matches('#').trim();
        if uncommented.starts_with('[') {
            in_sq = uncommented == "[sq]";
            continue;
        }
        if in_sq && line.starts_with('#') && uncommented.contains(" = ") {
            keys.push(uncommented.to_owned());
        }
    }
    keys
}

fn check(name: &str) {
    let path = shipped(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        os4x::config::Config::parse(&text, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let keys = documented_sq_keys(&text);
    let names: Vec<&str> = keys
        .iter()
        .map(|k| k.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "outbox_dir",
            "max_sessions",
            "scan_interval",
            "connect_timeout",
            "response_timeout"
        ],
        "{name} documents every [sq] key"
    );
    let explicit = format!(
        "state_dir = {:?}\n[sq]\n{}\n",
        config.state_dir.display().to_string(),
        keys.join("\n")
    );
    let with_keys =
        os4x::config::Config::parse(&explicit, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        with_keys.sq, config.sq,
        "{name}: the documented [sq] values are the defaults"
    );
}

#[test]
fn example_configuration_documents_sq_defaults() {
    check("examples/os4x.toml");
}

#[test]
fn packaged_configuration_documents_sq_defaults() {
    check("packaging/os4x.toml");
}
