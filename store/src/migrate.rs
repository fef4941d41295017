//! Versioned schema migrations, safe under concurrent first start.
//!
//! The os4x database is shared by several components (PID bookkeeping now,
//! queues and partner state later), so a single `PRAGMA user_version` cannot
//! describe it: each component keeps its own version in `os4x_schema`.
//! Migrations run inside `BEGIN IMMEDIATE`, which takes the write lock before
//! reading the version, so when fifty daemons open a fresh database at once
//! one migrates and the others wait (busy timeout), then see it done.

use crate::conn::{Backend, Connection};
use crate::sql::{Error as SqlError, OptionalExtension};

/// One schema step. Versions start at 1 and increase by one.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("schema of component `{component}` is at version {found}, newer than this build knows ({known}); run the matching or a newer os4x")]
    TooNew {
        component: String,
        found: u32,
        known: u32,
    },
    #[error("migration {version} ({description}) of `{component}` failed: {source}")]
    Step {
        component: String,
        version: u32,
        description: &'static str,
        source: SqlError,
    },
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// The bookkeeping table itself is the one thing created with
/// `IF NOT EXISTS`: it has to exist before any version can be read.
const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS os4x_schema (
    component  TEXT PRIMARY KEY NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
)";

/// Current version of `component`, 0 if it was never migrated.
pub fn version(conn: &Connection, component: &str) -> Result<u32, MigrateError> {
    if !conn.table_exists("os4x_schema")? {
        return Ok(0);
    }
    Ok(conn
        .query_row(
            "SELECT version FROM os4x_schema WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Brings `component` up to the last of `migrations`; returns the version
/// it was at before. Each run is one transaction: all steps or none.
pub fn apply(
    conn: &mut Connection,
    component: &str,
    migrations: &[Migration],
) -> Result<u32, MigrateError> {
    debug_assert!(migrations
        .iter()
        .enumerate()
        .all(|(i, m)| m.version as usize == i + 1));
    let known = migrations.last().map_or(0, |m| m.version);
    // Fast path without the write lock: nothing to do in the common case,
    // and read-only users (a monitoring check) can open the database.
    let current = version(conn, component)?;
    if current == known {
        return Ok(current);
    }
    let postgres = conn.backend() == Backend::Postgres;
    let tx = conn.transaction_immediate()?;
    tx.execute_batch(BOOTSTRAP)?;
    if postgres {
        // `COLLATE NOCASE` in the steps (partner IDs compare without
        // case, as in SQLite).
        tx.execute_batch(&format!(
            "CREATE COLLATION IF NOT EXISTS {} \
             (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
            crate::pg::NOCASE
        ))?;
    }
    let found = version(&tx, component)?;
    if found > known {
        return Err(MigrateError::TooNew {
            component: component.to_owned(),
            found,
            known,
        });
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        let sql = if postgres {
            std::borrow::Cow::Owned(crate::pg::translate_ddl(m.sql))
        } else {
            std::borrow::Cow::Borrowed(m.sql)
        };
        tx.execute_batch(&sql)
            .map_err(|source| MigrateError::Step {
                component: component.to_owned(),
                version: m.version,
                description: m.description,
                source,
            })?;
        tracing::info!(
            component,
            version = m.version,
            description = m.description,
            "database schema migrated"
        );
    }
    if known > found {
        tx.execute(
            "INSERT INTO os4x_schema (component, version, updated_at) VALUES (?1, ?2, unixepoch())
             ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            crate::params![component, known],
        )?;
    }
    if postgres {
        fix_sequences(&tx)?;
    }
    tx.commit()?;
    Ok(found)
}

/// One component's schema as found in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    pub name: &'static str,
    /// The version in the database (0: never migrated).
    pub found: u32,
    /// The version this build brings it to.
    pub known: u32,
}

impl ComponentStatus {
    pub fn state(&self) -> &'static str {
        match self.found.cmp(&self.known) {
            std::cmp::Ordering::Equal => "up to date",
            std::cmp::Ordering::Less if self.found == 0 => "not created",
            std::cmp::Ordering::Less => "needs migration",
            std::cmp::Ordering::Greater => "newer than this build",
        }
    }
}

/// Every component of [`crate::schema::ALL`] as found, without changing
/// anything.
pub fn status(conn: &Connection) -> Result<Vec<ComponentStatus>, MigrateError> {
    crate::schema::ALL
        .iter()
        .map(|c| {
            Ok(ComponentStatus {
                name: c.name,
                found: version(conn, c.name)?,
                known: c.version(),
            })
        })
        .collect()
}

/// PostgreSQL: every identity column's sequence continues after the
/// largest id in its table (rows inserted with explicit ids, by a table
/// rebuild in a migration or by `os4x db copy`, do not advance it).
/// Nothing to do on SQLite, whose rowids follow the largest one.
pub fn fix_sequences(conn: &Connection) -> Result<(), SqlError> {
    if conn.backend() != Backend::Postgres {
        return Ok(());
    }
    let columns: Vec<(String, String)> = conn.query_map(
        "SELECT table_name, column_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (table, column) in columns {
        conn.execute_batch(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             COALESCE((SELECT max(\"{column}\") FROM \"{table}\"), 0) + 1, false)"
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Migration] = &[
        Migration {
            version: 1,
            description: "t",
            sql: "CREATE TABLE t (a INTEGER)",
        },
        Migration {
            version: 2,
            description: "t.b",
            sql: "ALTER TABLE t ADD COLUMN b TEXT",
        },
    ];

    #[test]
    fn migrates_in_steps_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::sqlite(rusqlite::Connection::open(dir.path().join("db")).unwrap());
        assert_eq!(version(&c, "x").unwrap(), 0);
        assert_eq!(apply(&mut c, "x", &STEPS[..1]).unwrap(), 0);
        assert_eq!(version(&c, "x").unwrap(), 1);
        c.execute("INSERT INTO t (a) VALUES (7)", []).unwrap();
        assert_eq!(apply(&mut c, "x", STEPS).unwrap(), 1);
        assert_eq!(
            apply(&mut c, "x", STEPS).unwrap(),
            2,
            "second run is a no-op"
        );
        let (a, b): (i64, Option<String>) = c
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((a, b), (7, None), "data survives migration");
        // Another component in the same database has its own version.
        assert_eq!(version(&c, "y").unwrap(), 0);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::sqlite(rusqlite::Connection::open(dir.path().join("db")).unwrap());
        apply(&mut c, "x", STEPS).unwrap();
        let err = apply(&mut c, "x", &STEPS[..1]).unwrap_err();
        assert!(
            matches!(
                err,
                MigrateError::TooNew {
                    found: 2,
                    known: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn failed_step_rolls_back_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::sqlite(rusqlite::Connection::open(dir.path().join("db")).unwrap());
        let broken = [
            STEPS[0],
            Migration {
                version: 2,
                description: "broken",
                sql: "ALTER TABLE nonexistent ADD COLUMN z",
            },
        ];
        let err = apply(&mut c, "x", &broken).unwrap_err();
        assert!(
            matches!(err, MigrateError::Step { version: 2, .. }),
            "{err}"
        );
        assert_eq!(version(&c, "x").unwrap(), 0);
        let t_exists = c.table_exists("t").unwrap();
        assert!(!t_exists, "step 1 rolled back with step 2");
    }
}
