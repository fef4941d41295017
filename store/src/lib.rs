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
//! Programs above this crate never call `rusqlite::Connection::open`
//! themselves, so a database is never seen half-migrated or opened with
//! settings that differ from the daemons'.

mod db;
pub mod migrate;
mod open;
pub mod schema;

pub use db::{Db, DbError};
pub use open::{
    is_busy, open, open_existing, open_read_only, retry_busy, unix_now, OpenError, BUSY_TIMEOUT,
};
