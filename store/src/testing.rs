//! The database a test runs against, and the PostgreSQL server behind it.
//!
//! Tests ask [`database_for`] for the database of a station whose state
//! directory is `dir`. By default that is the SQLite file `<dir>/os4x.db`.
//! With `OS4X_TEST_BACKEND=postgres` it is a fresh database on a real
//! PostgreSQL server: the one named by `OS4X_TEST_POSTGRES` (a URL of a
//! role that may create databases), or else one this process starts
//! itself ([`PgServer::start`]) from Debian's `postgresql` package, in a
//! temporary directory, listening on 127.0.0.1 only. A supervising shell
//! stops that server and removes its directory when the test process
//! ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::location::Location;

/// Which backend the tests of this run use.
pub fn postgres_requested() -> bool {
    std::env::var("OS4X_TEST_BACKEND").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// The database for a test station with state directory `dir`.
pub fn database_for(dir: &Path) -> Location {
    if postgres_requested() {
        Location::parse(&shared_server().create_database()).unwrap_or_else(|e| panic!("{e}"))
    } else {
        Location::Sqlite(dir.join("os4x.db"))
    }
}

/// The `database = "..."` value for a test station (see [`database_for`]).
pub fn database_url_for(dir: &Path) -> String {
    database_for(dir).url()
}

/// This process's server (started at the first call), or the one named
/// by `OS4X_TEST_POSTGRES`.
pub fn shared_server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("OS4X_TEST_POSTGRES") {
        Ok(url) => PgServer::external(url),
        Err(_) => PgServer::start(&[]).unwrap_or_else(|e| panic!("{e}")),
    })
}

/// A PostgreSQL server for tests.
#[derive(Debug)]
pub struct PgServer {
    /// `postgres://user@127.0.0.1:port` (no database).
    base: String,
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl PgServer {
    fn external(url: String) -> PgServer {
        let base = match url.rfind('/') {
            Some(i) if i > "postgres://".len() => url[..i].to_owned(),
            _ => url.clone(),
        };
        PgServer { base }
    }

    /// Starts a server; `settings` are extra `-c name=value` options
    /// (`ssl=on`, ...).
    pub fn start(settings: &[&str]) -> Result<PgServer, String> {
        PgServer::start_with(settings, |_| Ok(()))
    }

    /// [`PgServer::start`] with a step between `initdb` and the start:
    /// `prepare` gets the data directory (certificates the settings name
    /// go there, relative names resolve inside it).
    pub fn start_with(
        settings: &[&str],
        prepare: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<PgServer, String> {
        let bin = bin_dir()?;
        let root = std::env::temp_dir().join(format!(
            "os4x-pg-{}-{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        ));
        let data = root.join("data");
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let user = server_user()?;
        if let Some((uid, gid)) = user.ids {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", root.display()))?;
        }
        let out = user
            .command(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "os4x",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}; install Debian's postgresql package"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        prepare(&data)?;
        if let Some((uid, gid)) = user.ids {
            chown_tree(&data, uid, gid)?;
        }
        let port = free_port()?;
        let mut args = vec![
            "-D".to_owned(),
            data.display().to_string(),
            "-p".to_owned(),
            port.to_string(),
            "-k".to_owned(),
            root.display().to_string(),
        ];
        for s in [
            "listen_addresses=127.0.0.1",
            // Test data need not survive a power cut; os4x's own
            // durability is tested on SQLite and by the cluster tests.
            "fsync=off",
            "full_page_writes=off",
            "max_connections=400",
            "shared_buffers=32MB",
        ]
        .iter()
        .chain(settings)
        {
            args.push("-c".to_owned());
            args.push((*s).to_owned());
        }
        let postgres = bin.join("postgres");
        let line = std::iter::once(postgres.display().to_string())
            .chain(args)
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        // setpriv execs the server itself, so `$!` is the postmaster.
        let run = match &user.ids {
            Some((uid, gid)) => {
                format!("setpriv --reuid={uid} --regid={gid} --clear-groups {line}")
            }
            None => line,
        };
        // The supervisor: runs the server until the test process ($PPID)
        // is gone, then stops it at once and removes its files.
        let script = format!(
            "{run} >{log} 2>&1 & pg=$!\n\
             while kill -0 $PPID 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.5; done\n\
             kill -QUIT $pg 2>/dev/null; wait $pg 2>/dev/null; rm -rf {root}\n",
            log = shell_quote(&root.join("log").display().to_string()),
            root = shell_quote(&root.display().to_string()),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL supervisor: {e}"))?;
        let server = PgServer {
            base: format!("postgres://os4x@127.0.0.1:{port}"),
        };
        // Ready when it answers on its socket (TCP may demand TLS).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut probe = postgres::Config::new();
        probe
            .host_path(&root)
            .port(port)
            .user("os4x")
            .dbname("postgres");
        loop {
            let attempt = probe.clone();
            let connected = std::thread::spawn(move || attempt.connect(postgres::NoTls).map(drop))
                .join()
                .map_err(|_| "probe thread failed".to_owned())?;
            match connected {
                Ok(_) => return Ok(server),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    let log = std::fs::read_to_string(root.join("log")).unwrap_or_default();
                    let tail = &log[log.len().saturating_sub(2000)..];
                    return Err(format!("PostgreSQL did not come up: {e}\n{tail}"));
                }
            }
        }
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "os4x_t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        // On a thread of its own: the client must not block inside the
        // test's tokio runtime.
        let admin_url = self.url("postgres");
        let sql = format!("CREATE DATABASE {name}");
        let created = std::thread::spawn(move || -> Result<(), String> {
            let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
                .map_err(|e| format!("test PostgreSQL server at {admin_url}: {e}"))?;
            admin.batch_execute(&sql).map_err(|e| format!("{sql}: {e}"))
        })
        .join();
        match created {
            Ok(Ok(())) => self.url(&name),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("creating the test database {name} failed"),
        }
    }
}

/// Where Debian keeps the server programs (they are not on PATH).
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("OS4X_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL server programs not found in /usr/lib/postgresql; \
             run `apt-get install -y postgresql` (or set OS4X_PG_BIN)"
                .to_owned()
        })?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no PostgreSQL server under /usr/lib/postgresql".to_owned())
}

/// The server refuses to run as root: as root, tests run it as the
/// package's `postgres` user.
struct ServerUser {
    ids: Option<(u32, u32)>,
}

impl ServerUser {
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c
    }
}

fn server_user() -> Result<ServerUser, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(ServerUser { ids: None });
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let uid = f[2].parse().map_err(|_| "bad uid of postgres".to_owned())?;
            let gid = f[3].parse().map_err(|_| "bad gid of postgres".to_owned())?;
            return Ok(ServerUser {
                ids: Some((uid, gid)),
            });
        }
    }
    Err(
        "running as root and there is no `postgres` user; install Debian's postgresql package"
            .into(),
    )
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                chown_tree(&p, uid, gid)?;
            } else {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
