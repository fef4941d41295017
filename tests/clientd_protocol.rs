//! os4xclientd as a real process on 127.0.0.1 with a real database:
//! login, lockout, roles, jobs, malformed and oversized requests.

mod debugd_support;

use base64::Engine as _;
use debugd_support::*;
use os4x::users::{Role, UserStore};
use serde_json::json;

#[test]
fn login_lockout_roles_jobs_and_bad_requests() {
    let env = Env::new();
    let inst = env.instance(
        0,
        "",
        "max_failed_logins = 3\nlockout = 600\nmax_request_bytes = 4096",
        "",
    );
    // Users as `os4x user add` creates them (same library call).
    {
        let users = UserStore::open(&env.db).unwrap();
        users.add("olga", "operator-pass", Role::Operator).unwrap();
        users.add("vic", "viewer-pass", Role::Viewer).unwrap();
        users.add("mallory", "mallory-pass", Role::Viewer).unwrap();
    }
    // Partner and received-file tables of the receive daemons, with data.
    let db = os4x::db::Db::open(&env.db).unwrap();
    let inbox = env.dir.path().join("INVOICE.EDI");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&inbox, &content).unwrap();
    db.lock()
        .execute_batch(&format!(
            "INSERT INTO os4x_partners (odette_id, name, password_in, password_out, created_at, updated_at)
             VALUES ('O0013PARTNER', 'Partner AG', 'PWIN1234', 'PWOUT123', 1, 1);
             INSERT INTO os4x_received_files (partner, dataset_name, file_timestamp, originator, destination,
             format, max_record_size, file_size_1k, state, partial_path, final_path, started_at, received_at)
             VALUES ('O0013PARTNER', 'INVOICE.EDI', '20261124120000', 'O0013PARTNER', 'O0013ME',
             'U', 0, 2930, 'received', '/x.part', '{}', 1, 2);",
            inbox.display()
        ))
        .unwrap();
    let mut daemon = env.start(CLIENTD, &inst);
    let addr = inst.client_addr;

    // Greeting; jobs need a login.
    let mut c = Client::connect(addr);
    assert_eq!(c.greeting["hello"]["protocol"], 1);
    let r = c.call(json!({"id": 1, "op": "status"}));
    assert_eq!(
        (r["id"].clone(), r["ok"].clone(), r["error"]["code"].clone()),
        (json!(1), json!(false), json!("unauthenticated"))
    );

    // Malformed JSON and wrong shapes: an error, the connection stays.
    c.send_raw(b"{this is not json\n");
    assert_eq!(c.recv().unwrap()["error"]["code"], "bad_request");
    c.send_raw(b"[1,2]\n");
    assert_eq!(c.recv().unwrap()["error"]["code"], "bad_request");
    let r = c.call(json!({"id": 2, "op": "login", "user": "olga"}));
    assert_eq!(r["error"]["code"], "bad_request");

    // Login failure, then success.
    assert_eq!(c.login("olga", "wrong")["error"]["code"], "bad_credentials");
    let r = c.login("olga", "operator-pass");
    assert_eq!(
        r["result"],
        json!({"user": "olga", "role": "operator"}),
        "{r}"
    );
    assert_eq!(
        c.call(json!({"op": "whoami"}))["result"]["role"],
        "operator"
    );

    // Jobs with existing backing.
    let r = c.call(json!({"op": "status"}));
    let me = r["result"]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xclientd")
        .unwrap()
        .clone();
    assert_eq!(
        (me["state"].clone(), me["pid"].clone()),
        (json!("running"), json!(daemon.pid()))
    );
    let r = c.call(json!({"op": "partners"}));
    assert_eq!(r["result"]["partners"][0]["odette_id"], "O0013PARTNER");
    assert!(
        !r.to_string().contains("PWIN1234"),
        "passwords must not leave the server"
    );
    let r = c.call(json!({"op": "received.list"}));
    let file = &r["result"]["files"][0];
    assert_eq!(
        (file["dataset_name"].clone(), file["size"].clone()),
        (json!("INVOICE.EDI"), json!(content.len()))
    );
    let id = file["id"].as_i64().unwrap();
    let mut got = Vec::new();
    loop {
        let r = c.call(json!({"op": "received.download", "file_id": id, "offset": got.len()}));
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["result"]["data"].as_str().unwrap())
            .unwrap();
        got.extend_from_slice(&data);
        if r["result"]["eof"] == json!(true) {
            break;
        }
    }
    assert!(got == content, "downloaded file differs");
    assert_eq!(
        c.call(json!({"op": "received.ack", "file_id": id}))["result"]["acked_by"],
        "olga"
    );
    assert_eq!(
        c.call(json!({"op": "received.list", "unacked": true}))["result"]["files"],
        json!([])
    );
    assert_eq!(
        c.call(json!({"op": "received.download", "file_id": 999}))["error"]["code"],
        "not_found"
    );
    // No `[client] allowed_paths` here: server-side paths are refused.
    assert_eq!(
        c.call(json!({"op": "send", "partner": "O0013PARTNER", "path": "/etc/hosts"}))["error"]
            ["code"],
        "path_not_allowed"
    );
    assert_eq!(
        c.call(json!({"op": "nonsense"}))["error"]["code"],
        "unknown_op"
    );

    // Roles: a viewer may look but not enqueue, download or acknowledge.
    let mut v = Client::connect(addr);
    assert_eq!(v.login("vic", "viewer-pass")["result"]["role"], "viewer");
    assert_eq!(v.call(json!({"op": "received.list"}))["ok"], true);
    for op in [
        json!({"op": "send", "partner": "O0013PARTNER", "path": "/etc/hosts"}),
        json!({"op": "received.download", "file_id": id}),
        json!({"op": "received.ack", "file_id": id}),
    ] {
        let r = v.call(op);
        assert_eq!(r["error"]["code"], "forbidden", "{r}");
    }

    // Lockout after 3 failures (max_failed_logins), across connections;
    // then even the right password is refused.
    let mut failures = 0;
    while failures < 3 {
        let mut m = Client::connect(addr);
        for _ in 0..3 {
            if failures == 3 {
                break;
            }
            assert_eq!(
                m.login("mallory", "guess")["error"]["code"],
                "bad_credentials"
            );
            failures += 1;
        }
    }
    let mut m = Client::connect(addr);
    let r = m.login("mallory", "mallory-pass");
    assert_eq!(r["error"]["code"], "locked", "{r}");
    // Other users are not affected.
    assert_eq!(
        Client::connect(addr).login("vic", "viewer-pass")["ok"],
        true
    );
    // Unknown users get the same answer as wrong passwords.
    assert_eq!(
        Client::connect(addr).login("ghost", "x")["error"]["code"],
        "bad_credentials"
    );
    // Three failures on one connection close it.
    let mut m = Client::connect(addr);
    for _ in 0..3 {
        assert_eq!(m.login("ghost", "x")["error"]["code"], "bad_credentials");
    }
    assert!(
        m.recv().is_none(),
        "connection should be closed after 3 failures"
    );

    // Oversized request: an error, then the connection is closed.
    let mut big = Client::connect(addr);
    let mut line = vec![b'x'; 10_000];
    line.push(b'\n');
    big.send_raw(&line);
    assert_eq!(big.recv().unwrap()["error"]["code"], "request_too_large");
    assert!(big.recv().is_none());

    // Still serving.
    assert_eq!(c.call(json!({"op": "whoami"}))["result"]["user"], "olga");
    assert!(daemon.is_alive());
    assert_eq!(daemon.stop(), Some(0));
}

/// `os4x queue --json` of `inst`, the real binary.
fn queue_json(inst: &Instance) -> serde_json::Value {
    let (code, out, err) = os4x(inst, &["queue", "--json"], "");
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn send_by_upload_and_allowed_path_roles_and_queue_list() {
    let env = Env::new();
    let allowed = env.dir.path().join("out");
    let outside = env.dir.path().join("private");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let inst = env.instance(
        0,
        "",
        &format!(
            "allowed_paths = [\"{}\"]\nmax_upload_bytes = 200000\nmax_request_bytes = 65536",
            allowed.display()
        ),
        "[local]\nodette_id = \"O0013000000ME\"\npassword = \"LOCALPW1\"\n",
    );
    {
        let users = UserStore::open(&env.db).unwrap();
        users.add("olga", "operator-pass", Role::Operator).unwrap();
        users.add("vic", "viewer-pass", Role::Viewer).unwrap();
    }
    add_partner(&env.db, "O0013PARTNER");
    let on_server = allowed.join("ORDERS.EDI");
    std::fs::write(&on_server, b"orders on the server\n").unwrap();
    std::fs::write(outside.join("SECRET.EDI"), b"do not send").unwrap();
    std::os::unix::fs::symlink(outside.join("SECRET.EDI"), allowed.join("LINK.EDI")).unwrap();
    let _daemon = env.start(CLIENTD, &inst);

    let mut c = Client::connect(inst.client_addr);
    assert_eq!(c.login("olga", "operator-pass")["ok"], true);

    // By server-side path.
    let r = c.call(json!({"op": "send", "partner": "O0013PARTNER",
        "path": on_server, "priority": 5}));
    assert_eq!(r["ok"], true, "{r}");
    let by_path = r["result"]["entry"]["id"].as_i64().unwrap();
    assert_eq!(r["result"]["entry"]["dataset_name"], "ORDERS.EDI");
    assert_eq!(r["result"]["has_route"], false);

    // By upload, in chunks (each well below max_request_bytes).
    let content: Vec<u8> = (0..150_000u32).map(|i| (i % 97) as u8 + b' ').collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = c.call(json!({"op": "upload.start", "name": "INVOICE.EDI", "size": content.len()}));
    assert_eq!(r["ok"], true, "{r}");
    for (i, chunk) in content.chunks(40_000).enumerate() {
        let r =
            c.call(json!({"op": "upload.chunk", "offset": i * 40_000, "data": b64.encode(chunk)}));
        assert_eq!(r["ok"], true, "{r}");
    }
    // A chunk at the wrong offset is refused and says where to go on.
    let r = c.call(json!({"op": "upload.chunk", "offset": 0, "data": "QQ=="}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let r = c.call(
        json!({"op": "send", "partner": "O0013PARTNER", "upload": true,
        "dataset": "INVOICE.EDI", "description": "via client"}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let by_upload = r["result"]["entry"]["id"].as_i64().unwrap();
    // The upload was consumed: its staging directory is gone.
    let uploads = env.state.join("client-uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0);
    let r = c.call(json!({"op": "send", "partner": "O0013PARTNER", "upload": true}));
    assert_eq!(r["error"]["code"], "bad_request", "no upload left: {r}");

    // Visible to `os4x queue --json`, with the uploaded bytes in the outbox.
    let q = queue_json(&inst);
    let entries = q["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{q}");
    let up = entries.iter().find(|e| e["id"] == by_upload).unwrap();
    assert_eq!(
        (
            up["partner"].clone(),
            up["dataset_name"].clone(),
            up["state"].clone()
        ),
        (json!("O0013PARTNER"), json!("INVOICE.EDI"), json!("queued"))
    );
    assert_eq!(
        std::fs::read(up["outbox_path"].as_str().unwrap()).unwrap(),
        content
    );
    let p = entries.iter().find(|e| e["id"] == by_path).unwrap();
    assert_eq!(p["priority"], 5);
    // queue.list is the same document.
    assert_eq!(c.call(json!({"op": "queue.list"}))["result"], q);
    let r = c.call(json!({"op": "queue.list", "state": ["delivered"]}));
    assert_eq!(r["result"]["entries"], json!([]));

    // Paths outside the allowed directory: refused, nothing queued.
    for bad in [
        outside.join("SECRET.EDI"),
        allowed.join("../private/SECRET.EDI"),
        allowed.join("LINK.EDI"),
        allowed.join("MISSING.EDI"),
        allowed.clone(),
        "out/ORDERS.EDI".into(),
    ] {
        let r = c.call(json!({"op": "send", "partner": "O0013PARTNER", "path": bad}));
        assert_eq!(
            r["error"]["code"],
            "path_not_allowed",
            "{}: {r}",
            bad.display()
        );
    }
    // Same semantics as `os4x send`: unknown partner and bad options.
    let r = c.call(json!({"op": "send", "partner": "O0013NOBODY", "path": on_server}));
    assert_eq!(r["error"]["code"], "refused", "{r}");
    let r =
        c.call(json!({"op": "send", "partner": "O0013PARTNER", "path": on_server, "format": "Q"}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let r =
        c.call(json!({"op": "send", "partner": "O0013PARTNER", "path": on_server, "upload": true}));
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    // Uploads beyond max_upload_bytes.
    let r = c.call(json!({"op": "upload.start", "name": "BIG", "size": 300_000}));
    assert_eq!(r["error"]["code"], "too_large", "{r}");
    assert_eq!(
        c.call(json!({"op": "upload.start", "name": "BIG"}))["ok"],
        true
    );
    let big = b64.encode(vec![b'x'; 40_000]);
    let mut offset = 0;
    let r = loop {
        let r = c.call(json!({"op": "upload.chunk", "offset": offset, "data": big}));
        if r["ok"] != true {
            break r;
        }
        offset += 40_000;
    };
    assert_eq!(r["error"]["code"], "too_large", "{r}");
    assert_eq!(offset, 200_000);

    // A viewer sees the queue but may not enqueue or upload.
    let mut v = Client::connect(inst.client_addr);
    assert_eq!(v.login("vic", "viewer-pass")["ok"], true);
    assert_eq!(v.call(json!({"op": "queue.list"}))["result"], q);
    for op in [
        json!({"op": "send", "partner": "O0013PARTNER", "path": on_server}),
        json!({"op": "upload.start", "name": "X.EDI"}),
        json!({"op": "upload.chunk", "offset": 0, "data": ""}),
    ] {
        assert_eq!(v.call(op)["error"]["code"], "forbidden");
    }
    assert_eq!(queue_json(&inst)["entries"].as_array().unwrap().len(), 2);

    // The reference client: upload, and server path.
    let local = env.dir.path().join("DESADV.EDI");
    std::fs::write(&local, b"despatch advice").unwrap();
    let (code, out, err) = os4x(
        &inst,
        &[
            "client",
            "-u",
            "olga",
            "--password-stdin",
            "send",
            local.to_str().unwrap(),
            "--to",
            "O0013PARTNER",
        ],
        "operator-pass\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let id: i64 = out.trim().parse().unwrap();
    let (code, _, err) = os4x(
        &inst,
        &[
            "client",
            "-u",
            "olga",
            "--password-stdin",
            "send",
            "--server-path",
            outside.join("SECRET.EDI").to_str().unwrap(),
            "--to",
            "O0013PARTNER",
        ],
        "operator-pass\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("path_not_allowed"), "{err}");
    let q = queue_json(&inst);
    let e = q["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(e["dataset_name"], "DESADV.EDI");
    assert_eq!(q["entries"].as_array().unwrap().len(), 3);
}
