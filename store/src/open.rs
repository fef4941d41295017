//! Opening the database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;

use crate::conn::Connection;
use crate::location::Location;
use crate::migrate::{self, MigrateError};
use crate::schema;
use crate::sql::Error as SqlError;

/// How long a statement waits for another process's write lock. Writes
/// hold it for milliseconds, so this is only reached when something is
/// badly wrong (a hung process holding it).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create directory {} for the database: {source}; create it or fix `database` in os4x.toml", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {location}: {source}")]
    Sql {
        location: String,
        #[source]
        source: SqlError,
    },
    #[error("database {location} stayed locked by another process for {}s ({source}); retry, or find the holder (`fuser` on the file, `pg_stat_activity` on a server)", BUSY_TIMEOUT.as_secs())]
    Busy {
        location: String,
        #[source]
        source: SqlError,
    },
    #[error("database {location}: {source}")]
    Migrate {
        location: String,
        #[source]
        source: Box<MigrateError>,
    },
}

impl OpenError {
    /// The statement error behind this one, if any.
    pub fn sql(&self) -> Option<&SqlError> {
        match self {
            OpenError::Sql { source, .. } | OpenError::Busy { source, .. } => Some(source),
            OpenError::Migrate { source, .. } => match &**source {
                MigrateError::Sql(e) | MigrateError::Step { source: e, .. } => Some(e),
                MigrateError::TooNew { .. } => None,
            },
            OpenError::CreateDir { .. } => None,
        }
    }
}

/// True for "database is locked/busy".
pub fn is_busy(e: &SqlError) -> bool {
    e.is_busy()
}

/// Seconds since the epoch, as stored in the `*_at` columns.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::Sqlite(p.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Location {
        Location::Sqlite(p.clone())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::Sqlite(p)
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Location {
        l.clone()
    }
}

/// Opens the database read-write, creating it (a SQLite file and its
/// directory) if needed, and brings every component of [`schema::ALL`] up
/// to date.
pub fn open(location: impl Into<Location>) -> Result<Connection, OpenError> {
    let location = location.into();
    let shown = location.to_string();
    match &location {
        Location::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let busy = |e: &OpenError| matches!(e, OpenError::Busy { .. });
            retry_busy(&shown, busy, || {
                let mut conn = connect(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
                )?;
                migrate_all(&mut conn, &shown)?;
                Ok(conn)
            })
        }
        Location::Postgres(pg) => {
            let mut conn = connect_server(pg, &shown)?;
            migrate_all(&mut conn, &shown)?;
            Ok(conn)
        }
    }
}

/// Connects without migrating anything (creating an empty SQLite file if
/// there is none): for `os4x db status`, which reports versions as they
/// are, and for tests that build an old schema by hand.
pub fn connect_unmigrated(location: impl Into<Location>) -> Result<Connection, OpenError> {
    let location = location.into();
    match &location {
        Location::Sqlite(path) => connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        ),
        Location::Postgres(pg) => connect_server(pg, &location.to_string()),
    }
}

/// Whether an os4x program has set the database up: the SQLite file
/// exists, or the server database has os4x's tables. Read-only tools use
/// it so that looking does not create a database.
pub fn is_set_up(location: &Location) -> Result<bool, OpenError> {
    match location {
        Location::Sqlite(path) => Ok(path.exists()),
        Location::Postgres(_) => {
            let conn = connect_unmigrated(location)?;
            conn.table_exists("os4x_schema")
                .map_err(|e| sql_error(&location.to_string(), e))
        }
    }
}

fn migrate_all(conn: &mut Connection, shown: &str) -> Result<(), OpenError> {
    for c in schema::ALL {
        migrate::apply(conn, c.name, c.migrations).map_err(|e| migrate_error(shown, e))?;
    }
    Ok(())
}

/// Opens an existing database read-write without creating or migrating
/// anything; `Ok(None)` if there is no SQLite file. For readers that poll
/// (the debug switch) and must not create a database as a side effect.
pub fn open_existing(location: impl Into<Location>) -> Result<Option<Connection>, OpenError> {
    let location = location.into();
    match &location {
        Location::Sqlite(path) => {
            if !path.exists() {
                return Ok(None);
            }
            connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map(Some)
        }
        Location::Postgres(pg) => connect_server(pg, &location.to_string()).map(Some),
    }
}

/// Opens an existing database read-only (problem-report bundles,
/// monitoring checks). Nothing is created or migrated.
pub fn open_read_only(location: impl Into<Location>) -> Result<Connection, OpenError> {
    let location = location.into();
    let shown = location.to_string();
    match &location {
        Location::Sqlite(path) => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| sql_error(&shown, source.into()))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|source| sql_error(&shown, source.into()))?;
            Ok(Connection::sqlite(conn))
        }
        Location::Postgres(pg) => {
            let conn = connect_server(pg, &shown)?;
            conn.execute_batch("SET default_transaction_read_only = on")
                .map_err(|e| sql_error(&shown, e))?;
            Ok(conn)
        }
    }
}

/// A connection to the server; `shown` names it in errors.
fn connect_server(pg: &crate::location::PgLocation, shown: &str) -> Result<Connection, OpenError> {
    crate::pg::Client::connect(pg)
        .map(Connection::postgres)
        .map_err(|e| sql_error(shown, e))
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, OpenError> {
    let shown = format!("sqlite://{}", path.display());
    let sql = |source: rusqlite::Error| sql_error(&shown, source.into());
    let conn = rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    // Statements are cached per connection; the daemons' set is larger
    // than rusqlite's default of 16.
    conn.set_prepared_statement_cache_capacity(128);
    // WAL lets admin tools read while a daemon writes. The mode is
    // persistent, so only the very first open switches it.
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(database = %path.display(), journal_mode = %mode, "WAL not available; using the rollback journal");
        }
    }
    // A file is reported received (EERP) or sent only after its row is
    // durable: every commit is synced, on every connection.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql)?;
    Ok(Connection::sqlite(conn))
}

fn sql_error(location: &str, source: SqlError) -> OpenError {
    if source.is_busy() {
        OpenError::Busy {
            location: location.to_owned(),
            source,
        }
    } else {
        OpenError::Sql {
            location: location.to_owned(),
            source,
        }
    }
}

fn migrate_error(location: &str, e: MigrateError) -> OpenError {
    match e {
        MigrateError::Sql(source) => sql_error(location, source),
        MigrateError::Step { source, .. } if source.is_busy() => sql_error(location, source),
        e => OpenError::Migrate {
            location: location.to_owned(),
            source: Box::new(e),
        },
    }
}

/// Runs `op` again while it fails with `SQLITE_BUSY`, up to [`BUSY_TIMEOUT`].
///
/// The busy timeout does not cover everything: SQLite returns `SQLITE_BUSY`
/// at once, without calling the busy handler, where waiting could deadlock
/// — e.g. a connection holding a read lock that needs the write lock to
/// switch a fresh database to WAL while another one converts it. Many
/// daemons starting together on a new database hit exactly that. `op`
/// must be safe to repeat (its transaction rolled back); `busy` tells
/// which of its errors are worth another try. `what` names the database
/// in logs.
pub fn retry_busy<T, E>(
    what: &str,
    busy: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut attempt: u32 = 0;
    loop {
        match op() {
            Err(e) if busy(&e) && Instant::now() < deadline => {
                attempt += 1;
                // Jitter, so that the contenders do not retry in lockstep.
                let jitter = std::process::id()
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(attempt)
                    % 20;
                let pause = Duration::from_millis(u64::from(attempt.min(10) * 5 + jitter));
                tracing::debug!(database = what, attempt, ?pause, "database busy; retrying");
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_every_table_and_reopening_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/os4x.db");
        let conn = open(path.as_path()).unwrap();
        for c in schema::ALL {
            assert_eq!(
                migrate::version(&conn, c.name).unwrap(),
                c.version(),
                "{}",
                c.name
            );
        }
        let mode: String = conn
            .as_sqlite()
            .unwrap()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        for table in [
            "os4x_pids",
            "os4x_partners",
            "os4x_send_queue",
            "os4x_users",
            "os4x_debug_switch",
        ] {
            assert!(conn.table_exists(table).unwrap(), "{table}");
        }
        drop(conn);
        let conn = open(path.as_path()).unwrap();
        assert_eq!(
            migrate::version(&conn, "os4x").unwrap(),
            schema::OS4X.version()
        );
    }

    #[test]
    fn readers_never_create_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        assert!(open_existing(path.as_path()).unwrap().is_none());
        assert!(open_read_only(path.as_path()).is_err());
        assert!(!path.exists());
        open(path.as_path()).unwrap();
        let ro = open_read_only(path.as_path()).unwrap();
        assert!(ro.execute("DELETE FROM os4x_pids", []).is_err());
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        let conn = open(path.as_path()).unwrap();
        conn.execute(
            "UPDATE os4x_schema SET version = 99 WHERE component = 'os4x'",
            [],
        )
        .unwrap();
        drop(conn);
        let e = open(path.as_path()).unwrap_err().to_string();
        assert!(e.contains("newer than this build knows"), "{e}");
    }
}
