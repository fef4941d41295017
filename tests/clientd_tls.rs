//! os4xclientd with `[client] tls_certificate`/`tls_private_key`: a real
//! process on 127.0.0.1, an rcgen certificate, the real `os4x client`
//! over TLS; plain TCP clients get nothing; half a TLS configuration is a
//! configuration error.

mod debugd_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use debugd_support::*;
use os4x::users::{Role, UserStore};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in
/// `dir` named `name.crt` / `name.key`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

/// Everything a plain TCP client receives until the server closes the
/// connection (or `PATIENCE` runs out, which fails the test).
fn plain_read_until_closed(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "plain connection not closed after {:?}: {e}",
                started.elapsed()
            ),
        }
    }
}

/// `os4x client -u olga --password-stdin [tls args] status`.
fn client_status(inst: &Instance, tls: &[&str]) -> (i32, String, String) {
    let mut args = vec!["client", "-u", "olga", "--password-stdin"];
    args.extend_from_slice(tls);
    args.push("status");
    os4x(inst, &args, "operator-pass\n")
}

#[test]
fn tls_login_and_status_plain_refused() {
    let env = Env::new();
    let (cert, key) = certificate(env.dir.path(), "server");
    let (other_cert, _) = certificate(env.dir.path(), "other");
    let inst = env.instance(
        0,
        "",
        &format!(
            "login_timeout = 2\ntls_certificate = \"{}\"\ntls_private_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        "",
    );
    UserStore::open(&env.db)
        .unwrap()
        .add("olga", "operator-pass", Role::Operator)
        .unwrap();
    let mut daemon = env.start(CLIENTD, &inst);
    let cert_arg = cert.to_str().unwrap();

    // The reference client over TLS: login, then status.
    let (code, out, err) = client_status(&inst, &["--tls", "--tls-ca", cert_arg]);
    assert_eq!(code, 0, "{out}{err}\nlog:\n{}", daemon.log());
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let me = status["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xclientd")
        .unwrap()
        .clone();
    assert_eq!(
        (me["state"].clone(), me["pid"].clone()),
        (
            serde_json::json!("running"),
            serde_json::json!(daemon.pid())
        )
    );

    // A certificate the client does not trust, or a name it does not
    // carry: the handshake fails, nothing is sent.
    let other_arg = other_cert.to_str().unwrap();
    let (code, _, err) = client_status(&inst, &["--tls", "--tls-ca", other_arg]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("TLS handshake"), "{err}");
    let (code, _, err) = client_status(
        &inst,
        &[
            "--tls",
            "--tls-ca",
            cert_arg,
            "--tls-server-name",
            "os4x.example",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("TLS handshake"), "{err}");
    // --tls without trust is a usage error.
    let (code, _, err) = client_status(&inst, &["--tls"]);
    assert_eq!(code, 2, "{err}");

    // Plain TCP speaking the protocol: the server takes it for a broken
    // handshake and closes; no greeting, no answer.
    let mut plain = TcpStream::connect(inst.client_addr).unwrap();
    plain
        .write_all(
            b"{\"id\":1,\"op\":\"login\",\"user\":\"olga\",\"password\":\"operator-pass\"}\n",
        )
        .unwrap();
    let got = plain_read_until_closed(plain);
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("hello") && !text.contains("\"ok\""),
        "plain client got {text:?}"
    );
    // Plain TCP waiting for a greeting: none comes; closed after the
    // login timeout (2 s here).
    let got = plain_read_until_closed(TcpStream::connect(inst.client_addr).unwrap());
    assert!(got.is_empty(), "plain client got {got:?}");
    // The reference client without --tls says what to try.
    let (code, _, err) = client_status(&inst, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--tls"), "{err}");

    // Still serving TLS clients.
    let (code, out, err) = client_status(&inst, &["--tls", "--tls-ca", cert_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(daemon.is_alive());
    let log = daemon.log();
    assert!(log.contains("client TLS handshake failed"), "{log}");
    assert_eq!(daemon.stop(), Some(0));
}

/// Polls until `f` is true (the daemon handles SIGHUP asynchronously).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_a_renewed_certificate_and_keeps_the_old_one_on_errors() {
    let env = Env::new();
    let (cert, key) = certificate(env.dir.path(), "server");
    let inst = env.instance(
        0,
        "",
        &format!(
            "tls_certificate = \"{}\"\ntls_private_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        "",
    );
    UserStore::open(&env.db)
        .unwrap()
        .add("olga", "operator-pass", Role::Operator)
        .unwrap();
    let mut daemon = env.start(CLIENTD, &inst);
    let old_ca = env.dir.path().join("old-ca.crt");
    std::fs::copy(&cert, &old_ca).unwrap();
    let with_ca = |ca: &Path| client_status(&inst, &["--tls", "--tls-ca", ca.to_str().unwrap()]);
    assert_eq!(with_ca(&old_ca).0, 0, "{}", daemon.log());

    // A broken key: logged, the old certificate stays in use.
    std::fs::write(&key, "not a key").unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("reload failure logged", || {
        daemon.log().contains("TLS certificate not reloaded")
    });
    assert_eq!(with_ca(&old_ca).0, 0, "{}", daemon.log());

    // The renewed pair (as certbot or an admin would put it in place).
    let (new_cert, new_key) = certificate(env.dir.path(), "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("renewed certificate served", || with_ca(&new_cert).0 == 0);
    let (code, _, err) = with_ca(&old_ca);
    assert_eq!(code, 1, "{err}");
    assert!(daemon.is_alive());
    assert!(daemon.log().contains("TLS certificate reloaded"));
    assert_eq!(daemon.stop(), Some(0));
}

/// Runs os4xclientd with `inst`'s configuration until it exits by itself:
/// exit code and stderr.
fn run_to_exit(inst: &Instance) -> (Option<i32>, String) {
    let mut child = Command::new(CLIENTD)
        .env_remove("OS4X_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .arg("--config")
        .arg(&inst.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("os4xclientd did not exit on a bad configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn half_or_unreadable_tls_configuration_exits_78() {
    let env = Env::new();
    let (cert, key) = certificate(env.dir.path(), "server");
    let (_, other_key) = certificate(env.dir.path(), "other");
    for (lines, names) in [
        (
            format!("tls_certificate = \"{}\"", cert.display()),
            "client.tls_private_key",
        ),
        (
            format!("tls_private_key = \"{}\"", key.display()),
            "client.tls_certificate",
        ),
        (
            "tls_certificate = \"server.crt\"\ntls_private_key = \"server.key\"".to_string(),
            "client.tls_certificate",
        ),
        (
            format!(
                "tls_certificate = \"{}\"\ntls_private_key = \"{}\"",
                cert.display(),
                env.dir.path().join("missing.key").display()
            ),
            "missing.key",
        ),
        (
            // The key where the certificate belongs.
            format!(
                "tls_certificate = \"{}\"\ntls_private_key = \"{}\"",
                key.display(),
                key.display()
            ),
            "server.key contains no certificate",
        ),
        (
            // Another certificate's key.
            format!(
                "tls_certificate = \"{}\"\ntls_private_key = \"{}\"",
                cert.display(),
                other_key.display()
            ),
            "check that the key belongs to the certificate",
        ),
    ] {
        let inst = env.instance(0, "", &lines, "");
        let (code, err) = run_to_exit(&inst);
        assert_eq!(code, Some(78), "{lines}: {err}");
        assert!(err.contains(names), "{lines}: {err}");
    }
}
