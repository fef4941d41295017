//! The runtime on/off switch for debug forwarding (`os4x debug on|off`).
//!
//! Rows in `os4x_debug_switch` (component [`COMPONENT`]) override the
//! configuration's `[debug] enable` list: a row for the program wins, else
//! the row for `*` (all programs), else the configuration. Daemons poll
//! the table every [`POLL_INTERVAL`], so a switch takes effect without a
//! restart; a database shared by several instances keys rows by server id.

use std::path::Path;
use std::time::Duration;

use pidstore::migrate::{self, Migration};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// Component name in `os4x_schema`.
pub const COMPONENT: &str = "os4x_debug";
/// How often daemons re-read the switch.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The program name that stands for every program.
pub const ALL: &str = "*";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "debug forwarding switch",
    sql: "
CREATE TABLE os4x_debug_switch (
    server_id  INTEGER NOT NULL,
    -- a program name, or '*' for all programs
    program    TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (server_id, program)
);
",
}];

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the database at `path` (creating it) and migrates `component`.
/// Shared by the os4x tables of issue 7 (debug switch, users, client acks).
pub fn open_component(
    path: &Path,
    component: &str,
    migrations: &[Migration],
) -> Result<Connection, migrate::MigrateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The open below reports a missing directory clearly enough.
        let _ = std::fs::create_dir_all(dir);
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // pidstore uses WAL too; setting it again is a no-op.
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    migrate::apply(&mut conn, component, migrations)?;
    Ok(conn)
}

/// One override row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwitchRow {
    pub program: String,
    pub enabled: bool,
    pub updated_at: i64,
}

/// Sets the switch for `program` (or [`ALL`]). `off` for all programs also
/// clears per-program rows, so "off" means off everywhere.
pub fn set(
    conn: &Connection,
    server_id: u32,
    program: &str,
    enabled: bool,
) -> rusqlite::Result<()> {
    let now = crate::db::unix_now();
    if program == ALL && !enabled {
        conn.execute(
            "DELETE FROM os4x_debug_switch WHERE server_id = ?1",
            [server_id],
        )?;
    }
    conn.execute(
        "INSERT INTO os4x_debug_switch (server_id, program, enabled, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (server_id, program) DO UPDATE SET enabled = ?3, updated_at = ?4",
        rusqlite::params![server_id, program, enabled, now],
    )?;
    Ok(())
}

/// All override rows of `server_id`.
pub fn list(conn: &Connection, server_id: u32) -> rusqlite::Result<Vec<SwitchRow>> {
    let mut stmt = conn.prepare(
        "SELECT program, enabled, updated_at FROM os4x_debug_switch
         WHERE server_id = ?1 ORDER BY program",
    )?;
    let rows = stmt.query_map([server_id], |r| {
        Ok(SwitchRow {
            program: r.get(0)?,
            enabled: r.get(1)?,
            updated_at: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The override for `program`, if any (program row over `*` row).
pub fn lookup(conn: &Connection, server_id: u32, program: &str) -> rusqlite::Result<Option<bool>> {
    conn.query_row(
        "SELECT enabled FROM os4x_debug_switch
         WHERE server_id = ?1 AND program IN (?2, '*')
         ORDER BY program = '*' LIMIT 1",
        rusqlite::params![server_id, program],
        |r| r.get(0),
    )
    .optional()
}

/// Read-only view used by daemons: opening never creates or migrates, and a
/// missing table just means "no override".
#[derive(Debug)]
pub struct SwitchReader {
    path: std::path::PathBuf,
    conn: Option<Connection>,
}

impl SwitchReader {
    pub fn new(path: &Path) -> SwitchReader {
        SwitchReader {
            path: path.to_owned(),
            conn: None,
        }
    }

    /// The override for `program`; `Ok(None)` when there is none or the
    /// table does not exist yet.
    pub fn read(&mut self, server_id: u32, program: &str) -> rusqlite::Result<Option<bool>> {
        if self.conn.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_millis(500))?;
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='os4x_debug_switch')",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        let result = lookup(conn, server_id, program);
        if result.is_err() {
            // Reopen next time: the file may have been replaced.
            self.conn = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_rows_override_the_all_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("os4x.db");
        let mut reader = SwitchReader::new(&db);
        assert!(reader.read(0, "os4xsqd").is_err(), "no database yet");
        let conn = open_component(&db, COMPONENT, MIGRATIONS).unwrap();
        assert_eq!(reader.read(0, "os4xsqd").unwrap(), None);
        set(&conn, 0, ALL, true).unwrap();
        assert_eq!(reader.read(0, "os4xsqd").unwrap(), Some(true));
        assert_eq!(reader.read(1, "os4xsqd").unwrap(), None);
        set(&conn, 0, "os4xsqd", false).unwrap();
        assert_eq!(reader.read(0, "os4xsqd").unwrap(), Some(false));
        assert_eq!(reader.read(0, "os4xclientd").unwrap(), Some(true));
        set(&conn, 0, ALL, false).unwrap();
        assert_eq!(list(&conn, 0).unwrap().len(), 1);
        assert_eq!(reader.read(0, "os4xsqd").unwrap(), Some(false));
    }
}
