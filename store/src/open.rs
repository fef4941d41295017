//! Opening the database.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::migrate::{self, MigrateError};
use crate::schema;

/// How long a statement waits for another process's write lock. Writes
/// hold it for milliseconds, so this is only reached when something is
/// badly wrong (a hung process holding it).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create directory {} for the database: {source}; create it or fix [database] path", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {} stayed locked by another process for {}s ({source}); retry, or find the holder with `fuser {}`", path.display(), BUSY_TIMEOUT.as_secs(), path.display())]
    Busy {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: Box<MigrateError>,
    },
}

impl OpenError {
    /// The SQLite error behind this one, if any.
    pub fn sqlite(&self) -> Option<&rusqlite::Error> {
        match self {
            OpenError::Sqlite { source, .. } | OpenError::Busy { source, .. } => Some(source),
            OpenError::Migrate { source, .. } => match &**source {
                MigrateError::Sqlite(e) | MigrateError::Step { source: e, .. } => Some(e),
                MigrateError::TooNew { .. } => None,
            },
            OpenError::CreateDir { .. } => None,
        }
    }
}

/// True for "database is locked/busy".
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Seconds since the epoch, as stored in the `*_at` columns.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Opens the database at `path` read-write, creating it (and its
/// directory) if needed, and brings every component of [`schema::ALL`] up
/// to date.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let busy = |e: &OpenError| matches!(e, OpenError::Busy { .. });
    retry_busy(path, busy, || {
        let mut conn = connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        for c in schema::ALL {
            migrate::apply(&mut conn, c.name, c.migrations).map_err(|e| migrate_error(path, e))?;
        }
        Ok(conn)
    })
}

/// Opens an existing database read-write without creating or migrating
/// anything; `Ok(None)` if there is no file. For readers that poll (the
/// debug switch) and must not create a database as a side effect.
pub fn open_existing(path: &Path) -> Result<Option<Connection>, OpenError> {
    if !path.exists() {
        return Ok(None);
    }
    connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map(Some)
}

/// Opens an existing database read-only (problem-report bundles,
/// monitoring checks). Nothing is created or migrated.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| sql_error(path, source))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| sql_error(path, source))?;
    Ok(conn)
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, OpenError> {
    let sql = |source| sql_error(path, source);
    let conn =
        Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(sql)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
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
    Ok(conn)
}

fn sql_error(path: &Path, source: rusqlite::Error) -> OpenError {
    if is_busy(&source) {
        OpenError::Busy {
            path: path.to_owned(),
            source,
        }
    } else {
        OpenError::Sqlite {
            path: path.to_owned(),
            source,
        }
    }
}

fn migrate_error(path: &Path, e: MigrateError) -> OpenError {
    match e {
        MigrateError::Sqlite(source) => sql_error(path, source),
        MigrateError::Step { source, .. } if is_busy(&source) => sql_error(path, source),
        e => OpenError::Migrate {
            path: path.to_owned(),
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
/// which of its errors are worth another try.
pub fn retry_busy<T, E>(
    path: &Path,
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
                tracing::debug!(database = %path.display(), attempt, ?pause, "database busy; retrying");
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
        let conn = open(&path).unwrap();
        for c in schema::ALL {
            assert_eq!(
                migrate::version(&conn, c.name).unwrap(),
                c.version(),
                "{}",
                c.name
            );
        }
        let mode: String = conn
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
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(
            migrate::version(&conn, "os4x").unwrap(),
            schema::OS4X.version()
        );
    }

    #[test]
    fn readers_never_create_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        assert!(open_existing(&path).unwrap().is_none());
        assert!(open_read_only(&path).is_err());
        assert!(!path.exists());
        open(&path).unwrap();
        let ro = open_read_only(&path).unwrap();
        assert!(ro.execute("DELETE FROM os4x_pids", []).is_err());
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        let conn = open(&path).unwrap();
        conn.execute(
            "UPDATE os4x_schema SET version = 99 WHERE component = 'os4x'",
            [],
        )
        .unwrap();
        drop(conn);
        let e = open(&path).unwrap_err().to_string();
        assert!(e.contains("newer than this build knows"), "{e}");
    }
}
