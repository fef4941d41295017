//! The os4x database: the one place that opens it and the one place that
//! holds its schema.
//!
//! - [`schema`]: every table, as migrations per component.
//! - [`migrate`]: applying them, safe when many daemons start at once.
//! - [`open`] / [`open_existing`] / [`open_read_only`]: connections with
//!   the settings every program must agree on (WAL, `synchronous=FULL`,
//!   busy timeout).
//! - [`Db`]: one connection shared by a daemon's sessions.
//!
//! - [`Location`]: `database = "sqlite:///..."` (the embedded default) or
//!   `"postgres://..."` ([`pg`], TLS supported); [`Connection`] runs the
//!   same statements and the same migrations on both ([`sql`]).
//!
//! Programs above this crate never open a database themselves, so a
//! database is never seen half-migrated or opened with settings that
//! differ from the daemons'.

mod conn;
pub mod copy;
mod db;
mod location;
pub mod migrate;
mod open;
pub mod pg;
mod pg_tls;
pub mod schema;
pub mod sql;
pub mod testing;

pub use conn::{Backend, Connection, Statement, Transaction};
pub use db::{Db, DbError};
pub use location::{Location, PgLocation};
pub use open::{
    connect_unmigrated, is_busy, is_set_up, open, open_existing, open_read_only, retry_busy,
    unix_now, OpenError, BUSY_TIMEOUT,
};
pub use sql::{Error as SqlError, OptionalExtension, Row, Value};

/// The version of the SQLite library built in (problem reports).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
