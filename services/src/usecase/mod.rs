//! What an admin or user asks os4x to do (queue a file, list received
//! files, change a partner), shared by the `os4x` CLI, `os4xclientd` and
//! `os4x-web`, and the one error type they report.
//!
//! [`Error`] says what kind of failure it was; each front end maps the
//! kind once: [`Error::exit_code`] for the CLI, an HTTP status in
//! `os4x-web`, a protocol error code in `os4xclientd`.

pub mod received;
pub mod send;

use crate::db::DbError;
use crate::exit;
use crate::partner::PartnerError;
use crate::queue::QueueError;

/// Why a use case failed. The message tells the admin what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (a bad value, a bad name).
    #[error("{0}")]
    Invalid(String),
    /// The request is well-formed but refused in the current state (no
    /// such partner, partner receives only, entry in the wrong state).
    #[error("{0}")]
    Refused(String),
    /// The installation lacks configuration the request needs.
    #[error("{0}")]
    NotConfigured(String),
    /// The state store failed (database unreadable, locked, corrupt).
    #[error("{0}")]
    Store(String),
}

impl Error {
    /// The exit code of the `os4x` command that failed this way.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) => exit::USAGE,
            Error::Refused(_) => exit::FAILURE,
            Error::NotConfigured(_) => exit::CONFIG,
            Error::Store(_) => exit::IOERR,
        }
    }
}

impl From<PartnerError> for Error {
    fn from(e: PartnerError) -> Self {
        let m = e.to_string();
        match e {
            PartnerError::NotFound(_) | PartnerError::Exists(_) => Error::Refused(m),
            PartnerError::Invalid { .. } => Error::Invalid(m),
            PartnerError::Corrupt { .. } | PartnerError::Db(_) => Error::Store(m),
        }
    }
}

impl From<QueueError> for Error {
    fn from(e: QueueError) -> Self {
        let m = e.to_string();
        match e {
            QueueError::Db(_) => Error::Store(m),
            QueueError::Invalid { .. } => Error::Invalid(m),
            _ => Error::Refused(m),
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        Error::Store(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code() {
        assert_eq!(Error::Invalid("x".into()).exit_code(), exit::USAGE);
        assert_eq!(Error::Refused("x".into()).exit_code(), exit::FAILURE);
        assert_eq!(Error::NotConfigured("x".into()).exit_code(), exit::CONFIG);
        assert_eq!(Error::Store("x".into()).exit_code(), exit::IOERR);
        let e: Error = PartnerError::NotFound("O0013000000X".into()).into();
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
    }
}
