//! `os4xclientd`: the authenticated client/job service (JSON lines over
//! TCP, documented in `docs/client-protocol.md`).
//!
//! - [`protocol`]: requests, responses, error codes (sans-IO).
//! - [`jobs`]: what each request does, against the database.
//! - [`server`]: connections: limits, login, role checks.
//! - [`remote`]: a blocking client, used by `os4x client`.
//! - [`upload`]: files for `send`: uploads and allowed server paths.
//! - [`settings`]: the `[client]` configuration section.

pub mod jobs;
pub mod protocol;
pub mod remote;
pub mod server;
/// `[client]` settings (they live in the configuration crate).
pub use os4x_config::client as settings;
pub mod upload;
