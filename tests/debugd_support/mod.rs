//! Test environment for os4xdebugd/os4xclientd: temp dirs, configuration
//! files with free ports on 127.0.0.1, real daemon processes (ready via an
//! sd_notify socket), real SQLite database.

#![allow(dead_code)] // each test file uses a different subset

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[path = "../notify_support/mod.rs"]
mod notify;

pub const DEBUGD: &str = env!("CARGO_BIN_EXE_os4xdebugd");
pub const CLIENTD: &str = env!("CARGO_BIN_EXE_os4xclientd");
pub const OS4X: &str = env!("CARGO_BIN_EXE_os4x");
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    /// Shared by every instance: SQLite in the state directory, or a
    /// PostgreSQL database with OS4X_TEST_BACKEND=postgres.
    pub db: os4x_store::Location,
    pub debug_addr: SocketAddr,
    notify: UnixDatagram,
    notify_path: PathBuf,
    n: std::cell::Cell<u32>,
}

/// One instance's configuration file.
pub struct Instance {
    pub config: PathBuf,
    pub client_addr: SocketAddr,
    pub server_id: u32,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(PATIENCE)).unwrap();
        let state = dir.path().join("state");
        Env {
            db: os4x_store::testing::database_for(&state),
            state,
            debug_addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            notify,
            notify_path,
            dir,
            n: std::cell::Cell::new(0),
        }
    }

    /// A configuration for `server_id` sharing state dir and database;
    /// `debug` and `client` are extra lines of those sections, `extra`
    /// top-level sections appended at the end.
    pub fn instance(&self, server_id: u32, debug: &str, client: &str, extra: &str) -> Instance {
        let client_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = self.dir.path().join(format!("os4x-{server_id}.toml"));
        std::fs::write(
            &config,
            format!(
                "server_id = {server_id}\nstate_dir = \"{}\"\ntmp_dir = \"{}\"\ndatabase = \"{}\"\n\
                 required_daemons = []\n[debug]\nlisten = \"{}\"\n{debug}\n[client]\nlisten = \"{client_addr}\"\n{client}\n{extra}\n",
                self.state.display(),
                self.dir.path().join(format!("run-{server_id}")).display(),
                self.db.url(),
                self.debug_addr,
            ),
        )
        .unwrap();
        Instance {
            config,
            client_addr,
            server_id,
        }
    }

    /// Starts `exe` with `inst`'s configuration and waits for READY=1.
    pub fn start(&self, exe: &str, inst: &Instance) -> Daemon {
        let n = self.n.get();
        self.n.set(n + 1);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let mut cmd = Command::new(exe);
        for var in [
            "OS4X_CONFIG",
            "JOURNAL_STREAM",
            "INVOCATION_ID",
            "LISTEN_FDS",
            "LISTEN_PID",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd
            .arg("--config")
            .arg(&inst.config)
            .env("NOTIFY_SOCKET", &self.notify_path)
            .env("OS4X_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        let mut buf = [0u8; 4096];
        let got = notify::recv(&self.notify, &mut buf).expect("no sd_notify message");
        let msg = String::from_utf8_lossy(&buf[..got]).to_string();
        assert!(
            msg.contains("READY=1"),
            "expected READY=1, got {msg:?}; log:\n{}",
            d.log()
        );
        d
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(Instant::now() < deadline, "daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory (kB) from /proc.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the real `os4x ARGS` with `inst`'s configuration, `stdin` as its
/// standard input: exit code, stdout, stderr.
pub fn os4x(inst: &Instance, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(OS4X)
        .env_remove("OS4X_CONFIG")
        .env_remove("OS4X_CLIENT_PASSWORD")
        .env_remove("OS4X_CLIENT_USER")
        .arg("--config")
        .arg(&inst.config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before it reads its password (refused
    // connection, bad arguments) closes stdin first: EPIPE is then part of
    // the outcome under test, not an error of the test.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Adds partner `id` (both directions) to the database at `db`.
pub fn add_partner(db: &os4x_store::Location, id: &str) {
    use oftp2::value::{OdetteId, Password};
    use os4x::partner::{Directions, Partner, PartnerStore};
    let db = os4x::db::Db::open(db).unwrap();
    // The queue migration creates the tables `send` needs.
    os4x::queue::QueueStore::open(db.clone()).unwrap();
    let mut p = Partner::new(
        OdetteId::new(id).unwrap(),
        Password::new("PWIN1234").unwrap(),
        Password::new("PWOUT123").unwrap(),
    );
    p.directions = Directions::Both;
    PartnerStore::new(db).add(&p).unwrap();
}

/// Polls `f` until it returns `Some`, at most [`PATIENCE`].
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client-protocol connection (raw JSON lines).
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub greeting: serde_json::Value,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        Client {
            reader,
            writer: s,
            greeting: serde_json::from_str(&line).unwrap(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next response line; `None` at EOF.
    pub fn recv(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn call(&mut self, req: serde_json::Value) -> serde_json::Value {
        let mut line = serde_json::to_vec(&req).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
        self.recv().expect("connection closed")
    }

    pub fn login(&mut self, user: &str, password: &str) -> serde_json::Value {
        self.call(
            serde_json::json!({"id": "login", "op": "login", "user": user, "password": password}),
        )
    }
}

/// Debug records in the ring, as (program, pid, message, fields).
pub fn ring_records(state: &Path) -> Vec<os4x::debug::ring::StoredRecord> {
    let mut out = Vec::new();
    let _ = os4x::debug::ring::read_since(&os4x::debug::ring_dir(state), 0, |_, r| {
        out.push(r.clone());
        Ok(())
    });
    out
}
