//! Shared parts of the send-side tests: stations (configuration, database,
//! inbox, outbox in a temporary directory, each with its own Odette ID),
//! daemons as child processes, and queue inspection.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oftp2::value::{OdetteId, Password};
use os4x::config::Config;
use os4x::db::Db;
use os4x::partner::{Directions, Partner, PartnerStore};
use os4x::queue::{Entry, EntryState, QueueStore, Route};

pub const SQD: &str = env!("CARGO_BIN_EXE_os4xsqd");
pub const OS4X: &str = env!("CARGO_BIN_EXE_os4x");
pub const RD_TCP: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip");
pub const RD_TLS: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip_tls");

pub const A: &str = "O0013000000AAAA";
pub const B: &str = "O0013000000BBBB";
pub const C: &str = "O0013000000CCCC";

/// Station password: what the station sends as initiator and answers as
/// responder; its partners know it as their `password_in`.
pub fn password_of(id: &str) -> String {
    format!("PW{}", &id[id.len() - 4..])
}

/// A free port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One os4x installation.
pub struct Station {
    pub id: &'static str,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Arc<Config>,
    pub queue: QueueStore,
    pub tcp_port: u16,
    pub tls_port: u16,
}

impl Station {
    /// `extra` is appended to the configuration file.
    pub fn new(id: &'static str, extra: &str) -> Station {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let tcp_port = free_port();
        let tls_port = free_port();
        // SQLite in the state directory, or a PostgreSQL database with
        // OS4X_TEST_BACKEND=postgres.
        let database = os4x_store::testing::database_url_for(&dir.path().join("state"));
        let text = format!(
            "state_dir = \"{root}/state\"\ntmp_dir = \"{root}/run\"\ndatabase = \"{database}\"\n\
             [local]\nodette_id = \"{id}\"\npassword = \"{pw}\"\n\
             [tcp]\nlisten = [\"127.0.0.1:{tcp_port}\"]\n\
             [sq]\nscan_interval = 1\nconnect_timeout = 5\nresponse_timeout = 20\n{extra}\n",
            pw = password_of(id)
        );
        let config_path = dir.path().join("os4x.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Arc::new(Config::load(Some(&config_path)).unwrap());
        let db = Db::open(&config.database).unwrap();
        let queue = QueueStore::open(db).unwrap();
        Station {
            id,
            dir,
            config_path,
            config,
            queue,
            tcp_port,
            tls_port,
        }
    }

    /// Adds `other` as a partner (both directions), changed by `f`.
    pub fn add_partner(&self, other: &str, f: impl FnOnce(&mut Partner)) {
        let mut p = Partner::new(
            OdetteId::new(other).unwrap(),
            Password::new(&password_of(other)).unwrap(),
            Password::new(&password_of(self.id)).unwrap(),
        );
        p.directions = Directions::Both;
        f(&mut p);
        PartnerStore::new(self.queue.db().clone()).add(&p).unwrap();
    }

    /// Route to `other` on 127.0.0.1:`port`, fast retries, changed by `f`.
    pub fn add_route(&self, other: &str, port: u16, f: impl FnOnce(&mut Route)) {
        let mut r = Route::new(&other, "127.0.0.1", port);
        r.retry_base = 1;
        r.retry_max = 2;
        r.max_attempts = 20;
        f(&mut r);
        self.queue.set_route(&r).unwrap();
    }

    /// Runs `os4x ARGS` with this station's configuration: exit code,
    /// stdout, stderr.
    pub fn os4x(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(OS4X)
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `os4x send FILE --to PARTNER --dataset NAME` (the real binary);
    /// returns the entry id it prints.
    pub fn send(&self, file: &Path, to: &str, dataset: &str) -> i64 {
        self.try_send(file, to, Some(dataset)).unwrap()
    }

    pub fn try_send(&self, file: &Path, to: &str, dataset: Option<&str>) -> Result<i64, String> {
        let file = file.to_string_lossy();
        let mut args = vec!["send", &*file, "--to", to];
        if let Some(d) = dataset {
            args.extend(["--dataset", d]);
        }
        let (code, out, err) = self.os4x(&args);
        if code != 0 {
            return Err(format!("exit {code}: {err}"));
        }
        Ok(out.trim().parse().unwrap())
    }

    /// What `os4x send` does, in this process (for the benchmark, which
    /// measures queueing, not process start-up).
    pub fn send_in_process(&self, file: &Path, to: &str, dataset: &str) -> i64 {
        let args = os4x::usecase::send::SendRequest {
            file: file.to_owned(),
            to: to.to_owned(),
            dataset: Some(dataset.to_owned()),
            format: oftp2::value::RecordFormat::Unstructured,
            record_size: 0,
            priority: 0,
            user_data: String::new(),
            description: "test".into(),
            destination: None,
        };
        os4x::usecase::send::enqueue(&self.config, args).unwrap();
        let conn = self.queue.db().lock();
        conn.query_row("SELECT MAX(id) FROM os4x_send_queue", [], |r| r.get(0))
            .unwrap()
    }

    pub fn entry(&self, id: i64) -> Entry {
        self.queue.get(id).unwrap().unwrap()
    }

    /// Waits until entry `id` satisfies `f`; panics with the entry after
    /// `within`.
    pub fn wait_entry(&self, id: i64, within: Duration, f: impl Fn(&Entry) -> bool) -> Entry {
        let deadline = Instant::now() + within;
        loop {
            let e = self.entry(id);
            if f(&e) {
                return e;
            }
            if Instant::now() > deadline {
                panic!("entry did not reach the expected state: {e:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_state(&self, id: i64, state: EntryState, within: Duration) -> Entry {
        self.wait_entry(id, within, |e| e.state == state)
    }

    /// The inbox directory for files from `partner`.
    pub fn inbox_from(&self, partner: &str) -> PathBuf {
        self.config.rd.inbox_dir.join(partner)
    }

    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn log_path(&self, program: &str) -> PathBuf {
        self.dir.path().join(format!("{program}.log"))
    }

    /// Starts `program` with this station's configuration, stderr to
    /// `<dir>/<program>.log` (appended).
    pub fn spawn(&self, program: &str) -> Daemon {
        self.spawn_with(program, &[], &[])
    }

    /// Like [`Station::spawn`] with extra arguments and environment.
    pub fn spawn_with(&self, program: &str, args: &[&str], env: &[(&str, &Path)]) -> Daemon {
        let name = Path::new(program)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&name))
            .unwrap();
        let child = Command::new(program)
            .arg("--config")
            .arg(&self.config_path)
            .env("OS4X_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon(child)
    }

    /// Starts `os4xrd_tcpip` and waits until it accepts connections.
    pub fn start_rd(&self) -> Daemon {
        let d = self.spawn(RD_TCP);
        wait_port(
            ([127, 0, 0, 1], self.tcp_port).into(),
            Duration::from_secs(20),
        );
        d
    }

    pub fn log(&self, program: &str) -> String {
        std::fs::read_to_string(self.log_path(program)).unwrap_or_default()
    }

    /// The daemon's log once it contains `needle`: a queue entry can reach
    /// its final state before the daemon logs the end of the session.
    pub fn wait_log(&self, program: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log(program);
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A daemon child process, killed on drop.
pub struct Daemon(pub Child);

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deterministic test content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Two stations that know each other: A has partner B, B has partner A,
/// each with a route to the other's TCP port.
pub fn pair(extra: &str) -> (Station, Station) {
    let a = Station::new(A, extra);
    let b = Station::new(B, extra);
    a.add_partner(B, |_| {});
    b.add_partner(A, |_| {});
    a.add_route(B, b.tcp_port, |_| {});
    b.add_route(A, a.tcp_port, |_| {});
    (a, b)
}
