//! The os4x-web API against a real os4x-web process on 127.0.0.1 with a
//! real SQLite database and a real daemon (`os4xdebugd`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{add_received_file, daemon_row, process_name, wait_for, Client, Web};

#[test]
fn login_sessions_and_logout() {
    let web = Web::start("", "");
    let anon = Client::new(&web);
    let a = anon.get("/api/daemons");
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"], "unauthorized");
    // Pages send the browser to the login page.
    let a = anon.get("/daemons");
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/login")));

    let a = anon.post_json(
        "/api/login",
        &json!({ "user": "admin", "password": "wrong one" }),
    );
    assert_eq!(a.status, 401, "{}", a.text());
    assert_eq!(a.json()["error"], "bad_credentials");
    let a = anon.post_json(
        "/api/login",
        &json!({ "user": "nobody", "password": "wrong one" }),
    );
    assert_eq!(a.status, 401);

    let a = anon.post_json(
        "/api/login",
        &json!({ "user": "operator", "password": support::PASSWORD }),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let cookie = &a.set_cookie[0];
    // Plain HTTP: not Secure (the browser would drop it), but HttpOnly
    // and SameSite=Strict.
    assert!(cookie.starts_with("os4x_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(a.json()["role"], "operator");

    let mut c = Client::new(&web);
    c.take_login(&a);
    let s = c.get("/api/session").json();
    assert_eq!(
        (s["user"].as_str(), s["role"].as_str()),
        (Some("operator"), Some("operator"))
    );
    assert_eq!(s["csrf_token"], a.json()["csrf_token"]);

    // Logout needs the CSRF token too.
    let mut no_csrf = c.clone();
    no_csrf.csrf = None;
    assert_eq!(no_csrf.send("POST", "/api/logout").status, 403);
    assert_eq!(c.send("POST", "/api/logout").status, 200);
    assert_eq!(c.get("/api/session").status, 401, "session ended");

    // The login page logs in with a form and redirects to the daemons.
    let r = Client::call(
        anon.request("POST", "/login"),
        Some((
            "application/x-www-form-urlencoded",
            format!(
                "user=viewer&password={}",
                support::PASSWORD.replace(' ', "+")
            )
            .into_bytes(),
        )),
    );
    assert_eq!(
        (r.status, r.location.as_deref()),
        (303, Some("/daemons")),
        "{}",
        r.text()
    );
    // A cross-site form POST is refused.
    let r = Client::call(
        anon.request("POST", "/login")
            .set("Origin", "http://evil.example"),
        Some((
            "application/x-www-form-urlencoded",
            format!(
                "user=viewer&password={}",
                support::PASSWORD.replace(' ', "+")
            )
            .into_bytes(),
        )),
    );
    assert_eq!(r.status, 403);

    // The lockout of os4xclientd applies ([client] max_failed_logins = 5).
    for _ in 0..5 {
        let a = anon.post_json(
            "/api/login",
            &json!({ "user": "viewer", "password": "wrong one" }),
        );
        assert_eq!(a.status, 401);
    }
    let a = anon.post_json(
        "/api/login",
        &json!({ "user": "viewer", "password": support::PASSWORD }),
    );
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.json()["error"], "locked");
}

#[test]
fn daemon_actions_roles_and_csrf() {
    let web = Web::start("", "");
    let mut debugd = web.start_debugd();
    let first = debugd.id() as i32;

    let viewer = Client::login(&web, "viewer");
    let row = daemon_row(&viewer, "os4xdebugd");
    assert_eq!(row["pid"], first);
    assert_eq!(row["state"], "running");
    assert_eq!(row["control"], "direct");
    assert_eq!(row["actions"], json!([]), "viewers get no actions");
    assert!(
        row["listening"].as_array().is_some_and(|l| !l.is_empty()),
        "{row}"
    );
    // The node table: this machine as node 0, both daemons recorded on it.
    let nodes = viewer.get("/api/nodes").json();
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes}");
    let node = &nodes["nodes"][0];
    assert_eq!(node["server_id"], 0, "{nodes}");
    assert_eq!(node["host"], nodes["this_host"], "{nodes}");
    assert_eq!(node["alive"], true, "{nodes}");
    let debugd_row = nodes["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xdebugd")
        .unwrap_or_else(|| panic!("{nodes}"));
    assert_eq!(
        (
            &debugd_row["state"],
            &debugd_row["pid"],
            &debugd_row["local"]
        ),
        (&json!("running"), &json!(first), &json!(true))
    );
    // os4x-web lists itself, without actions.
    let me = daemon_row(&viewer, "os4x-web");
    assert_eq!(me["state"], "running");
    assert_eq!(me["pid"], web.child.id() as i64);

    // A viewer's POST is refused even with the right CSRF token.
    let a = viewer.send("POST", "/api/daemons/os4xdebugd/start-forced");
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.json()["message"].as_str().unwrap().contains("operator"));

    let op = Client::login(&web, "operator");
    assert_eq!(
        daemon_row(&op, "os4xdebugd")["actions"],
        json!(["stop", "restart", "start-forced"])
    );
    assert_eq!(daemon_row(&op, "os4xsqd")["actions"], json!(["start"]));
    // CSRF token missing or wrong: refused, nothing happens.
    let mut no_csrf = op.clone();
    no_csrf.csrf = None;
    let a = no_csrf.send("POST", "/api/daemons/os4xdebugd/stop");
    assert_eq!(a.status, 403);
    assert!(a.json()["message"].as_str().unwrap().contains("CSRF"));
    let mut wrong = op.clone();
    wrong.csrf = Some("x".repeat(43));
    assert_eq!(
        wrong.send("POST", "/api/daemons/os4xdebugd/stop").status,
        403
    );
    assert_eq!(process_name(first).as_deref(), Some("os4xdebugd"));

    // A plain start of a running daemon is refused by the daemon itself.
    let a = op.send("POST", "/api/daemons/os4xdebugd/start");
    assert_eq!(a.status, 409, "{}", a.text());
    assert!(
        a.json()["message"]
            .as_str()
            .unwrap()
            .contains("another os4xdebugd"),
        "{}",
        a.text()
    );

    // kill -9: the entry goes stale.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL).unwrap();
    let _ = debugd.wait();
    let row = daemon_row(&op, "os4xdebugd");
    assert_eq!(row["state"], "stale_no_process", "{row}");
    assert_eq!(row["actions"], json!(["start", "start-forced"]));
    assert_eq!(row["pid"], first);

    // Start forced: a new process, registered, really running.
    let a = op.send("POST", "/api/daemons/os4xdebugd/start-forced");
    assert_eq!(a.status, 200, "{}", a.text());
    let out = a.json();
    let second = out["pid"].as_i64().unwrap() as i32;
    assert_ne!(second, first);
    assert_eq!(out["mode"], "direct");
    assert_eq!(process_name(second).as_deref(), Some("os4xdebugd"));
    assert_eq!(web.recorded_pid("os4xdebugd"), Some(second));

    // Restart: another process; stop: gone, entry cleared.
    let a = op.send("POST", "/api/daemons/os4xdebugd/restart");
    assert_eq!(a.status, 200, "{}", a.text());
    let third = a.json()["pid"].as_i64().unwrap() as i32;
    assert_ne!(third, second);
    wait_for(Duration::from_secs(5), "second os4xdebugd to exit", || {
        process_name(second).is_none()
    });
    let a = op.send("POST", "/api/daemons/os4xdebugd/stop");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["pid"], Value::Null);
    wait_for(Duration::from_secs(5), "third os4xdebugd to exit", || {
        process_name(third).is_none()
    });
    assert_eq!(daemon_row(&op, "os4xdebugd")["state"], "stopped");
    // Start again (plain), then leave it to Web's drop to stop.
    let a = op.send("POST", "/api/daemons/os4xdebugd/start");
    assert_eq!(a.status, 200, "{}", a.text());

    // Not a daemon, unknown action, ourselves: refused.
    assert_eq!(
        op.send("POST", "/api/daemons/os4x-pidctl/start").status,
        404
    );
    assert_eq!(
        op.send("POST", "/api/daemons/os4xdebugd/explode").status,
        404
    );
    assert_eq!(op.send("POST", "/api/daemons/os4x-web/stop").status, 409);

    // Every action is logged with its user.
    let log = web.log();
    assert!(
        log.contains(
            "daemon action done user=\"operator\" program=\"os4xdebugd\" action=\"start-forced\""
        ),
        "{log}"
    );
    assert!(
        log.contains("refused: no CSRF token user=\"operator\""),
        "{log}"
    );
}

#[test]
fn bad_input_gives_clean_errors() {
    let web = Web::start("max_upload_bytes = 4096", "");
    let admin = Client::login(&web, "admin");
    let a = admin.get("/api/no/such/route");
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"], "not_found");
    let a = admin.get("/no-such-page");
    assert_eq!(a.status, 404);
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    assert!(a.text().contains("Not found"));

    let a = admin.send("DELETE", "/api/partners");
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["error"], "method_not_allowed");

    // Malformed JSON, wrong types, unknown fields, wrong content type.
    for body in [
        &b"{not json"[..],
        b"[1,2]",
        b"{\"id\": 5}",
        b"{\"bogus\": 1}",
        b"",
    ] {
        let a = Client::call(
            admin.request("POST", "/api/partners"),
            Some(("application/json", body.to_vec())),
        );
        assert_eq!(
            a.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            a.text()
        );
        assert_eq!(a.json()["error"], "bad_request");
    }
    let a = Client::call(
        admin.request("POST", "/api/partners"),
        Some(("text/plain", b"{}".to_vec())),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    let a = admin.get("/api/queue?state=bogus");
    assert_eq!(a.status, 400);
    assert!(a.json()["message"]
        .as_str()
        .unwrap()
        .contains("unknown state"));
    assert_eq!(admin.send("POST", "/api/queue/abc/retry").status, 400);

    // Too large: a JSON body over the limit, an upload over max_upload_bytes.
    let big = vec![b' '; 300 * 1024];
    let a = Client::call(
        admin.request("POST", "/api/partners"),
        Some(("application/json", big)),
    );
    assert_eq!(a.status, 413, "{}", a.text());
    let a = admin.upload(
        "/api/queue",
        &[("partner", "O0013000000PARTNER")],
        "big.dat",
        &vec![b'x'; 5000],
    );
    assert_eq!(a.status, 413, "{}", a.text());
    assert_eq!(a.json()["error"], "too_large");
    let a = Client::call(
        admin.request("POST", "/api/queue"),
        Some(("multipart/form-data; boundary=x", b"garbage".to_vec())),
    );
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        web.state_dir()
            .join("web-uploads")
            .read_dir()
            .unwrap()
            .next()
            .is_none(),
        "no staging files left"
    );

    // Still serving.
    assert_eq!(admin.get("/api/session").status, 200);
}

#[test]
fn partners_queue_received_debug_and_users() {
    let web = Web::start("", "");
    let admin = Client::login(&web, "admin");
    let op = Client::login(&web, "operator");
    let viewer = Client::login(&web, "viewer");

    // Partners: admins manage, others see.
    let partner = json!({
        "id": "O0013000000PARTNER", "name": "Partner GmbH",
        "password_in": "PWIN", "password_out": "PWOUT", "direction": "both",
    });
    assert_eq!(op.post_json("/api/partners", &partner).status, 403);
    let a = admin.post_json("/api/partners", &partner);
    assert_eq!(a.status, 201, "{}", a.text());
    assert!(
        a.json().get("password_in").is_none(),
        "passwords never leave"
    );
    assert_eq!(admin.post_json("/api/partners", &partner).status, 409);
    let list = viewer.get("/api/partners").json();
    assert_eq!(list["partners"][0]["id"], "O0013000000PARTNER");
    assert_eq!(list["partners"][0]["name"], "Partner GmbH");
    let a = admin.json(
        "PUT",
        "/api/partners/O0013000000PARTNER",
        &json!({ "enabled": false, "name": "Partner AG" }),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let p = viewer.get("/api/partners/O0013000000PARTNER").json();
    assert_eq!(
        (p["enabled"].as_bool(), p["name"].as_str()),
        (Some(false), Some("Partner AG"))
    );
    assert_eq!(viewer.get("/api/partners/O0013000000NOBODY").status, 404);
    admin.json(
        "PUT",
        "/api/partners/O0013000000PARTNER",
        &json!({ "enabled": true }),
    );

    // Queue: enqueue an upload, list, cancel, retry.
    let data = b"UNA:+.? '\nUNB+UNOC:3+SENDER+RECEIVER'\n".repeat(40);
    assert_eq!(
        viewer
            .upload(
                "/api/queue",
                &[("partner", "O0013000000PARTNER")],
                "ORDERS.EDI",
                &data
            )
            .status,
        403
    );
    let a = op.upload(
        "/api/queue",
        &[
            ("partner", "O0013000000PARTNER"),
            ("dataset", "ORDERS"),
            ("format", "U"),
        ],
        "orders.edi",
        &data,
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let entry = a.json()["entry"].clone();
    let id = entry["id"].as_i64().unwrap();
    assert_eq!(entry["size"], data.len() as i64);
    assert_eq!(entry["state"], "queued");
    let outbox = std::fs::read(entry["outbox_path"].as_str().unwrap()).unwrap();
    assert_eq!(outbox, data, "the queue holds the uploaded bytes");
    let a = op.upload("/api/queue", &[("partner", "O0013000000NOBODY")], "X", b"x");
    assert_eq!(a.status, 409, "{}", a.text());
    let q = viewer.get("/api/queue").json();
    assert_eq!(q["entries"][0]["id"], id);
    assert_eq!(q["counts"]["queued"], 1);
    assert_eq!(
        viewer.get("/api/queue?state=failed").json()["entries"],
        json!([])
    );
    assert_eq!(
        viewer
            .send("POST", &format!("/api/queue/{id}/cancel"))
            .status,
        403
    );
    assert_eq!(
        op.send("POST", &format!("/api/queue/{id}/cancel")).status,
        200
    );
    assert_eq!(
        op.send("POST", &format!("/api/queue/{id}/cancel")).status,
        409
    );
    assert_eq!(
        op.send("POST", &format!("/api/queue/{id}/retry")).status,
        200
    );
    assert_eq!(
        viewer.get("/api/queue?state=queued").json()["entries"][0]["id"],
        id
    );
    assert_eq!(op.send("POST", "/api/queue/999/retry").status, 404);

    // Received files: list with EERP state, download for operators.
    let file = add_received_file(&web, "O0013000000PARTNER", "INVOIC", b"invoice data\n");
    let r = viewer.get("/api/received").json();
    assert_eq!(r["files"][0]["id"], file);
    assert_eq!(r["files"][0]["eerp"], "due");
    assert_eq!(
        viewer.get(&format!("/api/received/{file}/download")).status,
        403
    );
    let a = op.get(&format!("/api/received/{file}/download"));
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"invoice data\n");
    assert_eq!(op.get("/api/received/4711/download").status, 404);

    // Debug switch and bundle.
    assert_eq!(
        viewer
            .json("PUT", "/api/debug/os4xsqd", &json!({ "enabled": true }))
            .status,
        403
    );
    let a = op.json("PUT", "/api/debug/os4xsqd", &json!({ "enabled": true }));
    assert_eq!(a.status, 200, "{}", a.text());
    let d = viewer.get("/api/debug").json();
    let sqd = d["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xsqd")
        .cloned()
        .unwrap();
    assert_eq!(
        (sqd["enabled"].as_bool(), sqd["source"].as_str()),
        (Some(true), Some("switch"))
    );
    assert_eq!(
        op.json("PUT", "/api/debug/bad name", &json!({ "enabled": true }))
            .status,
        400
    );
    let a = op.get("/api/debug/bundle?hours=1");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(&a.body[..2], &[0x1f, 0x8b], "gzip");
    assert!(a.body.len() > 200);

    // Users: admins only; a role change ends the user's sessions.
    assert_eq!(op.get("/api/users").status, 403);
    let names: BTreeSet<String> = admin.get("/api/users").json()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["admin", "operator", "viewer"].map(String::from).into()
    );
    let a = admin.post_json(
        "/api/users",
        &json!({ "name": "carol", "password": "short", "role": "operator" }),
    );
    assert_eq!(a.status, 400);
    let a = admin.post_json(
        "/api/users",
        &json!({ "name": "carol", "password": support::PASSWORD, "role": "operator" }),
    );
    assert_eq!(a.status, 201, "{}", a.text());
    let carol = Client::login(&web, "carol");
    assert_eq!(
        admin
            .json("PUT", "/api/users/carol", &json!({ "role": "viewer" }))
            .status,
        200
    );
    assert_eq!(
        carol.get("/api/session").status,
        401,
        "role change ends sessions"
    );
    assert_eq!(
        Client::login(&web, "carol").get("/api/session").json()["role"],
        "viewer"
    );
    assert_eq!(admin.send("DELETE", "/api/users/admin").status, 409);
    assert_eq!(admin.send("DELETE", "/api/users/carol").status, 200);
    assert_eq!(admin.send("DELETE", "/api/users/carol").status, 404);

    // Names are text, never markup.
    admin.json(
        "PUT",
        "/api/partners/O0013000000PARTNER",
        &json!({ "name": "<script>alert(1)</script>" }),
    );
    let page = admin.get("/partners").text();
    assert!(!page.contains("<script>alert"), "escaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    admin.json(
        "PUT",
        "/api/partners/O0013000000PARTNER",
        &json!({ "name": "Partner AG" }),
    );

    // The pages render with the data.
    for (page, needle) in [
        ("/partners", "Partner AG"),
        ("/queue", "ORDERS"),
        ("/received", "INVOIC"),
        ("/debug", "os4xsqd"),
        ("/users", "operator"),
    ] {
        let a = admin.get(page);
        assert_eq!(a.status, 200, "{page}");
        assert!(a.text().contains(needle), "{page}: {}", a.text());
    }
    assert_eq!(viewer.get("/users").status, 403);
}

/// The OpenAPI document lists exactly the routes there are, with the
/// same methods.
#[test]
fn openapi_documents_every_route() {
    let doc: Value = serde_json::from_str(os4x_web::api::OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["responses"].is_object(), "{method} {path}: responses");
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = os4x_web::api::routes(1 << 20)
        .list
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.json: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");

    // And the running service serves the same document.
    let web = Web::start("", "");
    let a = Client::new(&web).get("/api/openapi.json");
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), doc);
}

#[test]
fn https_with_secure_host_cookie() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("web.crt"), dir.path().join("web.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    let web = Web::start_with(
        &format!(
            "tls_certificate = \"{}\"\ntls_private_key = \"{}\"",
            crt.display(),
            key.display()
        ),
        "",
        Some("https"),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .tls_config(std::sync::Arc::new(tls))
        .build();
    let mut c = Client::with_agent(&web, agent);
    let a = c.post_json(
        "/api/login",
        &json!({ "user": "admin", "password": support::PASSWORD }),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let cookie = &a.set_cookie[0];
    assert!(cookie.starts_with("__Host-os4x_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    c.take_login(&a);
    assert_eq!(c.get("/api/session").json()["user"], "admin");
    // Plain HTTP to the HTTPS port gets no answer, and the service lives on.
    let plain = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
        .get(&format!("http://127.0.0.1:{}/api/session", web.port))
        .call();
    assert!(plain.is_err());
    assert_eq!(c.get("/api/session").status, 200);
}

/// Under systemd the actions are `systemctl start|stop|restart UNIT`
/// ([web] systemctl names the command). Here a script stands in for
/// systemctl: it records its arguments and refuses like systemctl without
/// polkit permission when told to. (The real systemd path runs in the
/// nspawn test of the packages.)
#[test]
fn systemd_mode_runs_systemctl_with_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let deny = dir.path().join("deny");
    let script = dir.path().join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\nif [ -e {deny} ]; then\n  echo \"Failed to $1 $2: Access denied\" >&2\n  exit 4\nfi\n",
            calls = calls.display(),
            deny = deny.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let web = Web::start(
        &format!(
            "control = \"systemd\"\nsystemctl = [\"{}\"]",
            script.display()
        ),
        "",
    );
    let op = Client::login(&web, "operator");
    let row = daemon_row(&op, "os4xsqd");
    assert_eq!(row["control"], "systemd", "{row}");
    let a = op.send("POST", "/api/daemons/os4xsqd/restart");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["unit"], "os4xsqd.service");
    assert_eq!(a.json()["mode"], "systemd");
    // A forced start clears the PID entry, then starts the unit.
    let mut debugd = web.start_debugd();
    let a = op.send("POST", "/api/daemons/os4xdebugd/start-forced");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(web.recorded_pid("os4xdebugd"), None, "entry cleared");
    assert_eq!(
        process_name(debugd.id() as i32).as_deref(),
        Some("os4xdebugd"),
        "the process itself is not stopped"
    );
    let _ = debugd.kill();
    let _ = debugd.wait();
    let a = op.send("POST", "/api/daemons/os4xrd_tcpip_tls/stop");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "restart os4xsqd.service\nstart os4xdebugd.service\nstop os4xrd-tls.service\n"
    );
    // systemctl refuses: the answer says why and what to install.
    std::fs::write(&deny, "").unwrap();
    let a = op.send("POST", "/api/daemons/os4xsqd/start");
    assert_eq!(a.status, 409, "{}", a.text());
    let msg = a.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("Access denied") && msg.contains("polkit"),
        "{msg}"
    );
}
