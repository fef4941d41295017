//! Shared by the os4x-web tests: a real `os4x-web` process on 127.0.0.1
//! with its own configuration and SQLite database in a temporary
//! directory, users created through the os4x library, real daemons
//! (`os4xdebugd`) and a small HTTP client.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use os4x::users::{Role, UserStore};
use serde_json::Value;

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";
/// Our Odette ID in the test configuration.
pub const LOCAL_ID: &str = "O0013000000OS4XWEB";

/// A running os4x-web and its files.
pub struct Web {
    pub dir: tempfile::TempDir,
    /// SQLite in the state directory, or a PostgreSQL database with
    /// OS4X_TEST_BACKEND=postgres.
    pub database: os4x_store::Location,
    pub config: PathBuf,
    pub port: u16,
    pub child: Child,
    pub scheme: &'static str,
}

/// A free port on 127.0.0.1 (bound and released; os4x-web binds it
/// right after, and a lost race shows as a retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The directory of the binaries under test (target/debug).
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_os4x-web"))
        .parent()
        .expect("bin dir")
        .to_owned()
}

/// `os4xdebugd`, a daemon of the os4x-services package: built by
/// `cargo test --workspace`; built here when missing (running only this
/// package's tests).
pub fn debugd() -> PathBuf {
    let exe = bin_dir().join("os4xdebugd");
    if !exe.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "os4x-services", "--bin", "os4xdebugd"])
            .status()
            .expect("run cargo build for os4xdebugd");
        assert!(st.success(), "cannot build os4xdebugd");
    }
    assert!(exe.is_file(), "{} missing", exe.display());
    exe
}

impl Web {
    /// Starts os4x-web with `extra` appended to the configuration
    /// (`[web]` keys go into `web_extra`), users admin/operator/viewer.
    pub fn start(web_extra: &str, extra: &str) -> Web {
        Web::start_with(web_extra, extra, None)
    }

    pub fn start_with(web_extra: &str, extra: &str, scheme: Option<&'static str>) -> Web {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("os4x.toml");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let database = os4x_store::testing::database_for(&state);
        let users = UserStore::open(&database).expect("user store");
        for (name, role) in [
            ("admin", Role::Admin),
            ("operator", Role::Operator),
            ("viewer", Role::Viewer),
        ] {
            users.add(name, PASSWORD, role).expect("add user");
        }
        drop(users);
        let log_path = dir.path().join("web.log");
        // Direct control unless the test asks for another.
        let control = if web_extra.contains("control =") {
            ""
        } else {
            "control = \"direct\"\n"
        };
        let mut attempt = 0;
        loop {
            let port = free_port();
            std::fs::write(
                &config,
                format!(
                    "state_dir = \"{state}\"\ntmp_dir = \"{run}\"\ndatabase = \"{url}\"\n\n[local]\nodette_id = \"{LOCAL_ID}\"\npassword = \"LOCALPW\"\n\n\
                     [debug]\nlisten = \"127.0.0.1:0\"\n\n[web]\nlisten = \"127.0.0.1:{port}\"\n{control}{web_extra}\n{extra}\n",
                    state = dir.path().join("state").display(),
                    run = dir.path().join("run").display(),
                    url = database.url(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_os4x-web"))
                .arg("--config")
                .arg(&config)
                .env("OS4X_LOG", "info,tower_http=debug")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start os4x-web");
            if wait_ready(&mut child, port, &log_path) {
                return Web {
                    dir,
                    database,
                    config,
                    port,
                    child,
                    scheme: scheme.unwrap_or("http"),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            attempt += 1;
            assert!(
                attempt < 3,
                "os4x-web did not start:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("web.log")).unwrap_or_default()
    }

    pub fn db(&self) -> &os4x_store::Location {
        &self.database
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts `os4xdebugd` by hand with this configuration (as an admin
    /// would, outside os4x-web) and waits until it holds its PID entry.
    pub fn start_debugd(&self) -> Child {
        let child = Command::new(debugd())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start os4xdebugd");
        let pid = child.id() as i32;
        wait_for(
            Duration::from_secs(15),
            "os4xdebugd in the PID table",
            || self.recorded_pid("os4xdebugd") == Some(pid),
        );
        child
    }

    /// The PID the table records for `program`.
    pub fn recorded_pid(&self, program: &str) -> Option<i32> {
        let store = pidstore::PidStore::open_existing(self.db()).ok()??;
        store.record(program, 0).ok()??.pid
    }
}

/// Waits until os4x-web answers on `port`; false if it exited.
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let ready = std::fs::read_to_string(log).is_ok_and(|l| l.contains("ready"));
        if ready && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Web {
    fn drop(&mut self) {
        // Daemons os4x-web started run in their own session: stop them.
        if let Some(pid) = self.recorded_pid("os4xdebugd") {
            if process_name(pid).as_deref() == Some("os4xdebugd") {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGTERM,
                );
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `comm` of a live process (not a zombie), if any.
pub fn process_name(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    if state == 'Z' || state == 'X' {
        return None;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Polls `f` until true; panics with `what` after `timeout`.
pub fn wait_for(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

// ----------------------------------------------------------------------
// HTTP

/// An answer: status, headers we look at, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub set_cookie: Vec<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn answer(r: ureq::Response) -> Answer {
    let status = r.status();
    let content_type = r.header("content-type").unwrap_or_default().to_owned();
    let set_cookie = r.all("set-cookie").iter().map(|s| s.to_string()).collect();
    let location = r.header("location").map(str::to_owned);
    let mut body = Vec::new();
    let _ = r.into_reader().take(64 << 20).read_to_end(&mut body);
    Answer {
        status,
        content_type,
        set_cookie,
        location,
        body,
    }
}

/// A logged-in (or anonymous) client.
#[derive(Clone)]
pub struct Client {
    pub agent: ureq::Agent,
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Client {
    pub fn new(web: &Web) -> Client {
        Client::with_agent(web, ureq::AgentBuilder::new().redirects(0).build())
    }

    pub fn with_agent(web: &Web, agent: ureq::Agent) -> Client {
        Client {
            agent,
            base: web.url(""),
            cookie: None,
            csrf: None,
        }
    }

    /// Logs in through the API; panics unless it works.
    pub fn login(web: &Web, user: &str) -> Client {
        let mut c = Client::new(web);
        let a = c.post_json(
            "/api/login",
            &serde_json::json!({ "user": user, "password": PASSWORD }),
        );
        assert_eq!(a.status, 200, "{}", a.text());
        c.take_login(&a);
        c
    }

    pub fn take_login(&mut self, a: &Answer) {
        let cookie = a
            .set_cookie
            .iter()
            .find(|c| c.contains("os4x_session="))
            .expect("session cookie");
        self.cookie = cookie.split(';').next().map(str::to_owned);
        self.csrf = a.json()["csrf_token"].as_str().map(str::to_owned);
    }

    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        let mut r = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.set("Cookie", c);
        }
        if let (Some(t), false) = (&self.csrf, method == "GET") {
            r = r.set("X-CSRF-Token", t);
        }
        r
    }

    pub fn call(r: ureq::Request, body: Option<(&str, Vec<u8>)>) -> Answer {
        let result = match body {
            Some((ct, bytes)) => r.set("Content-Type", ct).send_bytes(&bytes),
            None => r.call(),
        };
        match result {
            Ok(r) => answer(r),
            Err(ureq::Error::Status(_, r)) => answer(r),
            Err(e) => panic!("HTTP request failed: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        Client::call(self.request("GET", path), None)
    }

    pub fn send(&self, method: &str, path: &str) -> Answer {
        Client::call(self.request(method, path), None)
    }

    pub fn post_json(&self, path: &str, v: &Value) -> Answer {
        self.json("POST", path, v)
    }

    pub fn json(&self, method: &str, path: &str, v: &Value) -> Answer {
        Client::call(
            self.request(method, path),
            Some(("application/json", serde_json::to_vec(v).unwrap())),
        )
    }

    /// `multipart/form-data` with text `fields` and one file.
    pub fn upload(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file_name: &str,
        data: &[u8],
    ) -> Answer {
        let boundary = "os4xwebtestboundary7d1f";
        let mut body = Vec::new();
        for (k, v) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Client::call(
            self.request("POST", path),
            Some((&format!("multipart/form-data; boundary={boundary}"), body)),
        )
    }
}

/// The row of `program` in `GET /api/daemons`.
pub fn daemon_row(c: &Client, program: &str) -> Value {
    let doc = c.get("/api/daemons").json();
    doc["programs"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["program"] == program).cloned())
        .unwrap_or(Value::Null)
}

/// Adds a received file (as a receive daemon would have stored it) with a
/// receipt due, so the received-files page and API have data.
pub fn add_received_file(web: &Web, partner: &str, dataset: &str, content: &[u8]) -> i64 {
    let dir = web.state_dir().join("inbox");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(dataset);
    std::fs::write(&path, content).unwrap();
    let conn = os4x_store::open(web.db()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id = conn.insert_returning_id(
        "INSERT INTO os4x_received_files (partner, dataset_name, file_timestamp, originator, \
         destination, format, max_record_size, file_size_1k, state, partial_path, final_path, \
         units, started_at, received_at) \
         VALUES (?1, ?2, '20261124120000' || ?3, ?1, ?4, 'U', 0, 1, 'received', ?5, ?5, ?6, ?7, ?7) \
         RETURNING id",
        os4x_store::params![
            partner,
            dataset,
            format!("{:04}", now % 10_000),
            LOCAL_ID,
            path.to_string_lossy(),
            content.len() as i64,
            now
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO os4x_receipts_due (received_id, partner, dataset_name, file_timestamp, \
         destination, originator, created_at) \
         SELECT id, partner, dataset_name, file_timestamp, originator, destination, ?2 \
         FROM os4x_received_files WHERE id = ?1",
        os4x_store::params![id, now],
    )
    .unwrap();
    id
}
