//! The runtime on/off switch for debug forwarding (`os4x debug on|off`).
//!
//! Rows in `os4x_debug_switch` (component `os4x_store::schema::DEBUG`) override the
//! configuration's `[debug] enable` list: a row for the program wins, else
//! the row for `*` (all programs), else the configuration. Daemons poll
//! the table every [`POLL_INTERVAL`], so a switch takes effect without a
//! restart; a database shared by several instances keys rows by server id.

use os4x_store::Location;
use std::time::Duration;

use os4x_store::sql::OptionalExtension;
use os4x_store::Connection;

/// How often daemons re-read the switch.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// The program name that stands for every program.
pub const ALL: &str = "*";

/// Opens the database (creating and migrating it if needed).
pub fn open(location: impl Into<Location>) -> Result<Connection, os4x_store::OpenError> {
    os4x_store::open(location)
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
) -> os4x_store::sql::Result<()> {
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
        os4x_store::params![server_id, program, enabled, now],
    )?;
    Ok(())
}

/// All override rows of `server_id`.
pub fn list(conn: &Connection, server_id: u32) -> os4x_store::sql::Result<Vec<SwitchRow>> {
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
pub fn lookup(
    conn: &Connection,
    server_id: u32,
    program: &str,
) -> os4x_store::sql::Result<Option<bool>> {
    conn.query_row(
        "SELECT enabled FROM os4x_debug_switch
         WHERE server_id = ?1 AND program IN (?2, '*')
         ORDER BY program = '*' LIMIT 1",
        os4x_store::params![server_id, program],
        |r| r.get(0),
    )
    .optional()
}

/// Read-only view used by daemons: opening never creates or migrates, and a
/// missing table just means "no override".
#[derive(Debug)]
pub struct SwitchReader {
    location: Location,
    conn: Option<Connection>,
}

impl SwitchReader {
    pub fn new(location: impl Into<Location>) -> SwitchReader {
        SwitchReader {
            location: location.into(),
            conn: None,
        }
    }

    /// The override for `program`; `Ok(None)` when there is none, or no
    /// database or table yet.
    pub fn read(
        &mut self,
        server_id: u32,
        program: &str,
    ) -> Result<Option<bool>, os4x_store::OpenError> {
        let sql = |source| os4x_store::OpenError::Sql {
            location: self.location.to_string(),
            source,
        };
        if self.conn.is_none() {
            let Some(conn) = os4x_store::open_existing(&self.location)? else {
                return Ok(None);
            };
            // A poll must not stall the daemon behind a long write.
            if let Some(c) = conn.as_sqlite() {
                c.busy_timeout(Duration::from_millis(500))
                    .map_err(|e| sql(e.into()))?;
            }
            self.conn = Some(conn);
        }
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let exists = conn.table_exists("os4x_debug_switch").map_err(sql)?;
        if !exists {
            return Ok(None);
        }
        let result = lookup(conn, server_id, program).map_err(sql);
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
        let mut reader = SwitchReader::new(db.as_path());
        assert_eq!(reader.read(0, "os4xsqd").unwrap(), None, "no database yet");
        assert!(!db.exists(), "reading must not create the database");
        let conn = open(db.as_path()).unwrap();
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
