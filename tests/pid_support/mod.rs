//! Test environment for the PID bookkeeping tests: a temp directory with a
//! configuration file, a real SQLite database, real daemon processes, and a
//! systemd-style notification socket to learn when a daemon is ready.

#![allow(dead_code)] // each test file uses a different subset

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

#[path = "../notify_support/mod.rs"]
mod notify;
use nix::unistd::Pid;

pub const DEBUGD: &str = env!("CARGO_BIN_EXE_os4xdebugd");
pub const PIDCTL: &str = env!("CARGO_BIN_EXE_os4x-pidctl");

/// Upper bound for waits, so a broken build fails instead of hanging. Not a
/// performance target.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The SQLite file the daemons will create (SQLite backend).
    pub db: PathBuf,
    /// Where the database is, either backend.
    pub database: os4x_store::Location,
    pub run: PathBuf,
    notify: UnixDatagram,
    notify_path: PathBuf,
    spawned: std::cell::Cell<u32>,
}

impl Env {
    /// Config with state and PID directories inside the temp dir (neither
    /// exists yet), the debug listener on an ephemeral port, and `extra`
    /// appended (top-level keys first, so it must not start a section
    /// unless it means to).
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let run = dir.path().join("run/os4x");
        let config = dir.path().join("os4x.toml");
        // SQLite in the state directory, or a PostgreSQL database with
        // OS4X_TEST_BACKEND=postgres.
        let database = os4x_store::testing::database_url_for(&state);
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\ntmp_dir = \"{}\"\ndatabase = \"{database}\"\n{extra}\n[debug]\nlisten = \"127.0.0.1:0\"\n",
                state.display(),
                run.display()
            ),
        )
        .unwrap();
        let database = os4x_store::Location::parse(&database).unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(PATIENCE)).unwrap();
        Env {
            db: state.join("os4x.db"),
            database,
            run,
            config,
            notify,
            notify_path,
            dir,
            spawned: std::cell::Cell::new(0),
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.run.join("os4xdebugd.pid")
    }

    fn clean(cmd: &mut Command) {
        for var in [
            "OS4X_CONFIG",
            "JOURNAL_STREAM",
            "INVOCATION_ID",
            "NOTIFY_SOCKET",
            "OS4X_LOG",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
    }

    /// `os4xdebugd --config <cfg> <args>`, stderr to a log file.
    pub fn debugd(&self, args: &[&str]) -> (Command, PathBuf) {
        let n = self.spawned.get();
        self.spawned.set(n + 1);
        let log = self.dir.path().join(format!("debugd-{n}.log"));
        let mut cmd = Command::new(DEBUGD);
        Self::clean(&mut cmd);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("NOTIFY_SOCKET", &self.notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        (cmd, log)
    }

    /// Starts os4xdebugd and waits for READY=1.
    pub fn start(&self, args: &[&str]) -> Daemon {
        let (mut cmd, log) = self.debugd(args);
        let child = cmd.spawn().unwrap();
        let d = Daemon { child, log };
        let msg = self.next_notification();
        assert!(
            msg.contains("READY=1"),
            "expected READY=1, got {msg:?}; log:\n{}",
            d.log()
        );
        d
    }

    /// Runs os4xdebugd expecting it to exit by itself.
    pub fn run_to_exit(&self, args: &[&str]) -> (ExitStatus, String) {
        let (mut cmd, log) = self.debugd(args);
        let mut child = cmd.spawn().unwrap();
        let status = wait_timeout(&mut child, PATIENCE).expect("daemon should have exited");
        (status, std::fs::read_to_string(log).unwrap())
    }

    pub fn next_notification(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = notify::recv(&self.notify, &mut buf).expect("no sd_notify message");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
    }

    pub fn pidctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(PIDCTL);
        Self::clean(&mut cmd);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.pidctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The `programs[]` entry of os4xdebugd.
    pub fn debugd_status(&self) -> serde_json::Value {
        let v = self.status_json();
        v["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["program"] == "os4xdebugd")
            .cloned()
            .unwrap_or_else(|| panic!("os4xdebugd missing in {v:#}"))
    }

    pub fn sql(&self) -> os4x_store::Connection {
        os4x_store::connect_unmigrated(&self.database).unwrap()
    }

    /// Whether a program has set the database up (SQLite: created the
    /// file; PostgreSQL: created the tables).
    pub fn db_exists(&self) -> bool {
        os4x_store::is_set_up(&self.database).unwrap()
    }

    /// The database as the refusal message names it.
    pub fn db_shown(&self) -> String {
        self.database.describe()
    }

    /// The recorded pid of os4xdebugd, -1 if not running.
    pub fn recorded_pid(&self) -> i64 {
        self.sql()
            .query_row(
                "SELECT pid FROM os4x_pids WHERE program='os4xdebugd' AND serverID=0",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }
}

/// A running daemon; killed on drop so a failing test leaves nothing behind.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Sends `sig` and waits for the exit.
    pub fn stop(mut self, sig: Signal) -> ExitStatus {
        self.signal(sig);
        wait_timeout(&mut self.child, PATIENCE).expect("daemon did not stop")
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` with an upper bound (polling: std has no timed wait).
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `sleep 300` that is killed on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn start() -> Sleeper {
        let s = Sleeper(Command::new("sleep").arg("300").spawn().unwrap());
        // Wait until it has exec'd, so /proc shows `sleep`.
        let deadline = Instant::now() + PATIENCE;
        loop {
            match pidstore::process::read_process(s.pid()).unwrap() {
                Some(p) if p.name == "sleep" => break,
                _ => assert!(Instant::now() < deadline, "sleep did not start"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        s
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
