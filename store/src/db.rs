//! [`Db`]: the shared connection a daemon's sessions use.
//!
//! Every daemon opens one [`Db`] and shares it between its sessions: each
//! statement is short (a lookup at SSID, a row per file), so one connection
//! behind a mutex serialises nothing that matters, and SQLite's WAL mode
//! lets admin tools read while a daemon writes.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::conn::Connection;
use crate::location::Location;
use crate::migrate::MigrateError;
use crate::sql::Error as SqlError;
use crate::OpenError;

/// The database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the directory {} for the database: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {location}: {source}; check that it is reachable, readable and writable by this user")]
    Sql {
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

impl DbError {
    /// The statement error behind this one, if any.
    pub fn sql(&self) -> Option<&SqlError> {
        match self {
            DbError::Sql { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OpenError> for DbError {
    fn from(e: OpenError) -> DbError {
        match e {
            OpenError::CreateDir { path, source } => DbError::CreateDir { path, source },
            OpenError::Sql { location, source } | OpenError::Busy { location, source } => {
                DbError::Sql { location, source }
            }
            OpenError::Migrate { location, source } => DbError::Migrate { location, source },
        }
    }
}

/// A shared connection to the os4x database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    location: Arc<Location>,
}

impl Db {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(location: impl Into<Location>) -> Result<Db, DbError> {
        let location = location.into();
        let conn = crate::open(&location)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            location: Arc::new(location),
        })
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The connection, for one short unit of work.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the database
        // inconsistent (transactions roll back on drop), so poisoning is
        // ignored.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wraps a statement error with the database's location.
    pub fn error(&self, source: SqlError) -> DbError {
        DbError::Sql {
            location: self.location.to_string(),
            source,
        }
    }
}
