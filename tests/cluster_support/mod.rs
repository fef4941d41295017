//! Several os4x nodes on this machine sharing one PostgreSQL database and
//! one inbox/outbox directory (issue 15), a partner station, and a
//! round-robin TCP balancer in front of the nodes' receive daemons, as a
//! load balancer in front of 3305 would be. Used by the cluster test and
//! the 1-vs-3-nodes benchmark.

#![allow(dead_code)]

#[path = "../sq_support/mod.rs"]
pub mod sq_support;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oftp2::value::{DatasetName, OdetteId, RecordFormat, UserData};
use os4x::config::Config;
use os4x::db::Db;
use os4x::queue::{EntryState, NewFile, QueueStore};
pub use sq_support::*;

/// Nodes sharing one database and one inbox/outbox, all as station `A`.
pub struct Cluster {
    /// The shared directories (`outbox/`, `inbox/`).
    pub shared: tempfile::TempDir,
    pub url: String,
    pub nodes: Vec<Station>,
}

impl Cluster {
    /// `n` nodes with server ids 1..=n on a new database of the test
    /// PostgreSQL server; `lease` seconds (`[cluster] lease`).
    pub fn new(n: u32, lease: u64) -> Cluster {
        Cluster::on(os4x_store::testing::shared_server(), n, lease)
    }

    /// [`Cluster::new`] on a database of `server`.
    pub fn on(server: &os4x_store::testing::PgServer, n: u32, lease: u64) -> Cluster {
        let url = server.create_database();
        let shared = tempfile::tempdir().unwrap();
        let nodes = (1..=n)
            .map(|id| node(id, &url, shared.path(), lease))
            .collect();
        Cluster { shared, url, nodes }
    }

    /// The shared queue (any node's view of it).
    pub fn queue(&self) -> &QueueStore {
        &self.nodes[0].queue
    }

    /// Queues `count` files of `len` octets for `to` (`F<i>`, content
    /// `content(len, i)`), in this process, as `os4x send` would.
    pub fn enqueue(&self, to: &str, count: usize, len: usize) -> Vec<i64> {
        enqueue_files(&self.nodes[0], to, count, len)
    }

    /// Entries per state.
    pub fn count(&self, state: EntryState) -> u64 {
        count_state(self.queue(), state)
    }
}

/// One node: its own directory (state, run, logs) and TCP port; the
/// database and the inbox/outbox are the cluster's.
fn node(server_id: u32, url: &str, shared: &Path, lease: u64) -> Station {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let shared = shared.display();
    let tcp_port = free_port();
    let text = format!(
        "server_id = {server_id}\nstate_dir = \"{root}/state\"\ntmp_dir = \"{root}/run\"\n\
         database = \"{url}\"\n\
         [local]\nodette_id = \"{A}\"\npassword = \"{pw}\"\n\
         [tcp]\nlisten = [\"127.0.0.1:{tcp_port}\"]\n\
         [rd]\ninbox_dir = \"{shared}/inbox\"\n\
         [sq]\noutbox_dir = \"{shared}/outbox\"\nscan_interval = 1\nconnect_timeout = 5\n\
         response_timeout = 30\n\
         [cluster]\nlease = {lease}\nheartbeat = 1\n",
        pw = password_of(A)
    );
    let config_path = dir.path().join("os4x.toml");
    std::fs::write(&config_path, text).unwrap();
    let config = Arc::new(Config::load(Some(&config_path)).unwrap());
    let queue = QueueStore::open(Db::open(&config.database).unwrap())
        .unwrap()
        .for_server(server_id);
    Station {
        id: A,
        dir,
        config_path,
        config,
        queue,
        tcp_port,
        tls_port: free_port(),
    }
}

/// Queues `count` files of `len` octets from `station` to `to`.
pub fn enqueue_files(station: &Station, to: &str, count: usize, len: usize) -> Vec<i64> {
    let src = station.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let local = OdetteId::new(station.id).unwrap();
    (0..count)
        .map(|i| {
            let path = src.join(format!("F{i}"));
            std::fs::write(&path, content(len, i as u64)).unwrap();
            let e = station
                .queue
                .enqueue(
                    &NewFile {
                        partner: OdetteId::new(to).unwrap(),
                        source: path.clone(),
                        dataset_name: DatasetName::new(&format!("F{i}")).unwrap(),
                        format: RecordFormat::Unstructured,
                        max_record_size: 0,
                        priority: 0,
                        user_data: UserData::EMPTY,
                        description: String::new(),
                        destination: None,
                    },
                    &local,
                    &station.config.sq.outbox_dir,
                )
                .unwrap();
            let _ = std::fs::remove_file(&path);
            e.id
        })
        .collect()
}

pub fn count_state(q: &QueueStore, state: EntryState) -> u64 {
    q.counts()
        .unwrap()
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| *n)
}

/// Waits until `f()` holds; panics with `what()` after `within`.
pub fn wait_until(within: Duration, f: impl Fn() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Rows of `os4x_received_files` in state `received`.
pub fn received_rows(db: &Db) -> u64 {
    db.lock()
        .query_row(
            "SELECT COUNT(*) FROM os4x_received_files WHERE state = 'received'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
}

/// Every regular file below `dir` (not the `.partial` directory).
pub fn stored_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// A TCP balancer on 127.0.0.1: each new connection goes to the next
/// backend in turn; counts connections per backend.
pub struct Balancer {
    pub port: u16,
    pub per_backend: Arc<Vec<AtomicUsize>>,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    pub fn start(backends: Vec<u16>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let per_backend: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let (counts, halt) = (per_backend.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let i = next % backends.len();
                next += 1;
                let addr = SocketAddr::from(([127, 0, 0, 1], backends[i]));
                let Ok(server) = TcpStream::connect(addr) else {
                    continue; // the client sees the connection close
                };
                counts[i].fetch_add(1, Ordering::SeqCst);
                pipe(client, server);
            }
        });
        Balancer {
            port,
            per_backend,
            stop,
        }
    }

    pub fn counts(&self) -> Vec<usize> {
        self.per_backend
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        });
    }
}
