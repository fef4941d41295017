//! [`Db`]: the shared connection a daemon's sessions use.
//!
//! Every daemon opens one [`Db`] and shares it between its sessions: each
//! statement is short (a lookup at SSID, a row per file), so one connection
//! behind a mutex serialises nothing that matters, and SQLite's WAL mode
//! lets admin tools read while a daemon writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::migrate::MigrateError;
use crate::OpenError;

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
        source: Box<MigrateError>,
    },
}

impl From<OpenError> for DbError {
    fn from(e: OpenError) -> DbError {
        match e {
            OpenError::CreateDir { path, source } => DbError::CreateDir { path, source },
            OpenError::Sqlite { path, source } | OpenError::Busy { path, source } => {
                DbError::Sqlite { path, source }
            }
            OpenError::Migrate { path, source } => DbError::Migrate { path, source },
        }
    }
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
        let conn = crate::open(path)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::from(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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
