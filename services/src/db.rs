//! The os4x tables of the shared SQLite database (partners, received
//! files, receipts due), migrated as component [`COMPONENT`] next to the
//! PID bookkeeping of `pidstore`.
//!
//! Every daemon opens one [`Db`] and shares it between its sessions: each
//! statement is short (a lookup at SSID, a row per file), so one connection
//! behind a mutex serialises nothing that matters, and SQLite's WAL mode
//! lets admin tools read while a daemon writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pidstore::migrate::{self, Migration};
use rusqlite::{Connection, OpenFlags};

/// Component name in `os4x_schema`.
pub const COMPONENT: &str = "os4x";

/// How long a statement waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema steps of [`COMPONENT`]. Append new steps; never edit a
/// released one (databases in the field have run it already).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "partners, received files, receipts due",
        sql: "
CREATE TABLE os4x_partners (
    odette_id            TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    name                 TEXT NOT NULL DEFAULT '',
    -- SSIDPSWD the partner must send us / we send the partner.
    password_in          TEXT NOT NULL,
    password_out         TEXT NOT NULL,
    direction            TEXT NOT NULL DEFAULT 'both'
                         CHECK (direction IN ('both', 'send', 'receive')),
    tls_required         INTEGER NOT NULL DEFAULT 0,
    client_cert_required INTEGER NOT NULL DEFAULT 0,
    -- Lowercase hex SHA-256 of the partner's TLS client certificate (DER).
    client_cert_sha256   TEXT,
    post_receive         TEXT,
    enabled              INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE TABLE os4x_received_files (
    id               INTEGER PRIMARY KEY,
    partner          TEXT NOT NULL,
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    originator       TEXT NOT NULL,
    destination      TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    format           TEXT NOT NULL,
    max_record_size  INTEGER NOT NULL,
    file_size_1k     INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    -- 'partial': being received or interrupted (restartable);
    -- 'received': durably stored at final_path.
    state            TEXT NOT NULL CHECK (state IN ('partial', 'received')),
    partial_path     TEXT NOT NULL,
    final_path       TEXT,
    -- Local octets durably written when the transfer was interrupted.
    restart_offset   INTEGER NOT NULL DEFAULT 0,
    records          INTEGER,
    units            INTEGER,
    peer             TEXT,
    started_at       INTEGER NOT NULL,
    received_at      INTEGER,
    action_exit      INTEGER,
    action_at        INTEGER,
    UNIQUE (partner, dataset_name, file_timestamp, originator, destination)
);
CREATE INDEX os4x_received_files_received_at ON os4x_received_files (received_at);
CREATE TABLE os4x_receipts_due (
    id               INTEGER PRIMARY KEY,
    received_id      INTEGER REFERENCES os4x_received_files (id),
    -- The partner the receipt is routed through (the session partner).
    partner          TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT 'EERP' CHECK (kind IN ('EERP', 'NERP')),
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    -- EERPDEST: the file's originator; EERPORIG: its final destination.
    destination      TEXT NOT NULL,
    originator       TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'due' CHECK (state IN ('due', 'sent')),
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER
);
CREATE INDEX os4x_receipts_due_partner ON os4x_receipts_due (partner, state);
",
    },
    Migration {
        version: 2,
        description: "per-partner client certificate CA",
        sql: "
-- Absolute path of a PEM bundle of CA certificates the partner's TLS client
-- certificate must chain to (instead of [tls] client_ca). Read by the TLS
-- receive daemon at every SSID of that partner.
ALTER TABLE os4x_partners ADD COLUMN client_ca TEXT;
",
    },
    Migration {
        version: 3,
        description: "OFTP2 security: partner certificates and policies, signed receipts, NERPs, rejected files",
        sql: "
-- Absolute path of the partner's certificate (PEM or DER), read at session
-- time: signatures on its files and receipts, encryption to it, secure
-- authentication.
ALTER TABLE os4x_partners ADD COLUMN certificate TEXT;
-- Outgoing file services for this partner (RFC 5024 section 6) and SFIDCIPH.
ALTER TABLE os4x_partners ADD COLUMN sign_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN encrypt_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN compress_files INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN signed_eerp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN cipher_suite INTEGER NOT NULL DEFAULT 2;
-- SSIDAUTH: secure authentication (AUCH/AURP) with this partner.
ALTER TABLE os4x_partners ADD COLUMN secure_auth INTEGER NOT NULL DEFAULT 0;
-- Incoming files from this partner must be signed / encrypted (else SFNA
-- 20 / 17).
ALTER TABLE os4x_partners ADD COLUMN require_signed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE os4x_partners ADD COLUMN require_encrypted INTEGER NOT NULL DEFAULT 0;

-- Received files gain the state 'rejected' (transferred, but the file
-- services failed: bad signature, cannot decrypt...; a NERP is due and
-- nothing was delivered), and receipts due carry EERPHSH/NERPHSH, the
-- file's cipher suite, whether the partner asked for a signed receipt
-- (SFIDSIGN) and, for NERPs, reason and text. SQLite cannot change a CHECK
-- constraint, so both tables are rebuilt. Foreign keys are enforced (the
-- bundled SQLite's default), so the child table is rebuilt to point at the
-- new parent before the old parent is dropped; the renames carry the
-- reference over (SQLite >= 3.26).
CREATE TABLE os4x_received_files_v3 (
    id               INTEGER PRIMARY KEY,
    partner          TEXT NOT NULL,
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    originator       TEXT NOT NULL,
    destination      TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    format           TEXT NOT NULL,
    max_record_size  INTEGER NOT NULL,
    file_size_1k     INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL CHECK (state IN ('partial', 'received', 'rejected')),
    partial_path     TEXT NOT NULL,
    final_path       TEXT,
    restart_offset   INTEGER NOT NULL DEFAULT 0,
    records          INTEGER,
    units            INTEGER,
    peer             TEXT,
    started_at       INTEGER NOT NULL,
    received_at      INTEGER,
    action_exit      INTEGER,
    action_at        INTEGER,
    -- What the file services found: e.g. 'decrypted, signature verified (CN=...)'.
    security         TEXT,
    -- Why a file was rejected.
    security_error   TEXT,
    UNIQUE (partner, dataset_name, file_timestamp, originator, destination)
);
INSERT INTO os4x_received_files_v3 (id, partner, dataset_name, file_timestamp, originator,
    destination, user_data, format, max_record_size, file_size_1k, description, state,
    partial_path, final_path, restart_offset, records, units, peer, started_at, received_at,
    action_exit, action_at)
SELECT id, partner, dataset_name, file_timestamp, originator, destination, user_data, format,
    max_record_size, file_size_1k, description, state, partial_path, final_path, restart_offset,
    records, units, peer, started_at, received_at, action_exit, action_at
FROM os4x_received_files;
CREATE TABLE os4x_receipts_due_v3 (
    id               INTEGER PRIMARY KEY,
    received_id      INTEGER REFERENCES os4x_received_files_v3 (id),
    partner          TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT 'EERP' CHECK (kind IN ('EERP', 'NERP')),
    dataset_name     TEXT NOT NULL,
    file_timestamp   TEXT NOT NULL,
    user_data        TEXT NOT NULL DEFAULT '',
    destination      TEXT NOT NULL,
    originator       TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'due' CHECK (state IN ('due', 'sent')),
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    file_hash        BLOB,
    cipher_suite     INTEGER NOT NULL DEFAULT 0,
    signed           INTEGER NOT NULL DEFAULT 0,
    nerp_reason      INTEGER,
    nerp_text        TEXT
);
INSERT INTO os4x_receipts_due_v3 (id, received_id, partner, kind, dataset_name, file_timestamp,
    user_data, destination, originator, state, created_at, sent_at)
SELECT id, received_id, partner, kind, dataset_name, file_timestamp, user_data, destination,
    originator, state, created_at, sent_at
FROM os4x_receipts_due;
DROP TABLE os4x_receipts_due;
DROP TABLE os4x_received_files;
ALTER TABLE os4x_received_files_v3 RENAME TO os4x_received_files;
ALTER TABLE os4x_receipts_due_v3 RENAME TO os4x_receipts_due;
CREATE INDEX os4x_received_files_received_at ON os4x_received_files (received_at);
CREATE INDEX os4x_receipts_due_partner ON os4x_receipts_due (partner, state);
",
    },
    Migration {
        version: 4,
        description: "hardening: allowed originators, receipt forwarders, inbox quota, durable post-receive actions",
        sql: "
-- Odette IDs (space separated) this partner may name as SFIDORIG besides
-- itself; NULL: only itself.
ALTER TABLE os4x_partners ADD COLUMN originators TEXT;
-- Odette IDs (space separated) of other partners that may deliver EERPs
-- and NERPs for files we sent to this partner; NULL: none.
ALTER TABLE os4x_partners ADD COLUMN receipts_via TEXT;
-- Octets this partner's inbox directory may hold (received files not yet
-- taken away plus partial files); NULL: no quota.
ALTER TABLE os4x_partners ADD COLUMN inbox_quota INTEGER;
-- The post-receive command of a received file: 'pending' (queued, also
-- across a restart), 'running', 'done'; NULL: none configured.
ALTER TABLE os4x_received_files ADD COLUMN action_state TEXT
    CHECK (action_state IN ('pending', 'running', 'done'));
-- The daemon running it ('<boot id>:<pid>:<start ticks>'): a 'running'
-- action whose daemon is gone is run again.
ALTER TABLE os4x_received_files ADD COLUMN action_owner TEXT;
CREATE INDEX os4x_received_files_action ON os4x_received_files (action_state);
",
    },
];

/// The database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the directory {} for the database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {}: {source}; check that the file is readable and writable by this user", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: Box<migrate::MigrateError>,
    },
}

/// A shared connection to the os4x database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: Arc<Path>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let sql = |source| DbError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // pidstore switches the database to WAL on first open and retries
        // the race of many first opens; do the same for a database that
        // only os4x tools have touched so far.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let attempt = (|| {
                let mut conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                migrate::apply(&mut conn, COMPONENT, MIGRATIONS).map(|_| conn)
            })();
            match attempt {
                Ok(conn) => {
                    return Ok(Db {
                        conn: Arc::new(Mutex::new(conn)),
                        path: Arc::from(path),
                    })
                }
                Err(migrate::MigrateError::Sqlite(e))
                | Err(migrate::MigrateError::Step { source: e, .. })
                    if is_busy(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(
                        20 + u64::from(std::process::id() % 50),
                    ));
                }
                Err(migrate::MigrateError::Sqlite(e)) => return Err(sql(e)),
                Err(source) => {
                    return Err(DbError::Migrate {
                        path: path.to_owned(),
                        source: Box::new(source),
                    })
                }
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies the migrations of another component (the send queue, ISDN
    /// routes, ...) that lives in this database.
    pub fn migrate(
        &self,
        component: &str,
        migrations: &[migrate::Migration],
    ) -> Result<(), DbError> {
        let mut conn = self.lock();
        migrate::apply(&mut conn, component, migrations)
            .map(|_| ())
            .map_err(|source| DbError::Migrate {
                path: self.path.to_path_buf(),
                source: Box::new(source),
            })
    }

    /// The connection, for one short unit of work.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so poisoning is ignored.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wraps a SQLite error with the database path.
    pub fn error(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made by a build that knew only version 1 gains the
    /// per-partner client CA column and keeps its partners.
    #[test]
    fn version_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate::apply(&mut conn, COMPONENT, &MIGRATIONS[..1]).unwrap();
            conn.execute(
                "INSERT INTO os4x_partners (odette_id, password_in, password_out, \
                 created_at, updated_at) VALUES ('O0013000000OLD', 'A', 'B', 0, 0)",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let p = crate::partner::PartnerStore::new(db.clone())
            .get("O0013000000OLD")
            .unwrap()
            .unwrap();
        assert_eq!(p.client_ca, None);
        let version = migrate::version(&db.lock(), COMPONENT).unwrap();
        assert_eq!(version, MIGRATIONS.len() as u32);
    }

    /// Version 3 rebuilds `os4x_received_files` (new state `rejected`):
    /// rows and the receipts that point at them survive, and partners get
    /// the plain security defaults.
    #[test]
    fn version_2_database_keeps_received_files_and_gains_security() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os4x.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate::apply(&mut conn, COMPONENT, &MIGRATIONS[..2]).unwrap();
            conn.execute_batch(
                "INSERT INTO os4x_partners (odette_id, password_in, password_out, created_at, \
                 updated_at) VALUES ('O0013000000OLD', 'A', 'B', 0, 0);
                 INSERT INTO os4x_received_files (id, partner, dataset_name, file_timestamp, \
                 originator, destination, format, max_record_size, file_size_1k, state, \
                 partial_path, final_path, started_at) VALUES (7, 'O0013000000OLD', 'DSN', \
                 '202401010000000000', 'O0013000000OLD', 'O0013000000ME', 'U', 0, 1, \
                 'received', '/p', '/f', 1);
                 INSERT INTO os4x_receipts_due (received_id, partner, dataset_name, \
                 file_timestamp, destination, originator, created_at) VALUES (7, \
                 'O0013000000OLD', 'DSN', '202401010000000000', 'O0013000000OLD', \
                 'O0013000000ME', 1);",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let p = crate::partner::PartnerStore::new(db.clone())
            .get("O0013000000OLD")
            .unwrap()
            .unwrap();
        assert_eq!(p.certificate, None);
        assert_eq!(p.security, crate::partner::SecurityPolicy::default());
        let conn = db.lock();
        let (state, final_path): (String, String) = conn
            .query_row(
                "SELECT state, final_path FROM os4x_received_files WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((state.as_str(), final_path.as_str()), ("received", "/f"));
        let joined: i64 = conn
            .query_row(
                "SELECT count(*) FROM os4x_receipts_due d JOIN os4x_received_files f \
                 ON f.id = d.received_id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(joined, 1);
        conn.execute(
            "UPDATE os4x_received_files SET state = 'rejected' WHERE id = 7",
            [],
        )
        .unwrap();
        assert!(conn
            .execute(
                "UPDATE os4x_received_files SET state = 'bogus' WHERE id = 7",
                []
            )
            .is_err());
    }
}
