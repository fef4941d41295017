//! `[sq]`: the send-queue daemon `os4xsqd` and `os4x send`.
//!
//! ```toml
//! [sq]
//! outbox_dir = "/var/lib/os4x/outbox"  # durable copies of queued files
//! max_sessions = 20       # concurrent outgoing sessions, all partners
//! scan_interval = 5       # seconds between looks at the queue
//! connect_timeout = 30    # seconds for TCP connect and TLS handshake
//! response_timeout = 120  # seconds the partner may keep us waiting
//! ```
//!
//! Per-partner settings (address, TLS, retry policy, polling) are stored
//! in the database (`os4x route`), not here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::field::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqFile {
    outbox_dir: Option<PathBuf>,
    max_sessions: Option<u32>,
    scan_interval: Option<u64>,
    connect_timeout: Option<u64>,
    response_timeout: Option<u64>,
}

/// `[sq]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqConfig {
    /// Queued files: `<outbox_dir>/<entry id>`.
    pub outbox_dir: PathBuf,
    /// Concurrent outgoing sessions over all partners.
    pub max_sessions: u32,
    /// How often the queue is scanned for due entries and polls.
    pub scan_interval: Duration,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// The session's response timer: a partner silent this long is
    /// dropped (ESID 09), so it cannot hold a session slot forever.
    pub response_timeout: Duration,
}

pub fn resolve(
    sq: SqFile,
    state_dir: &Path,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SqConfig, ConfigError> {
    let secs = |key: &str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
        0 => Err(bad(key, "must be at least 1 second".into())),
        n => Ok(Duration::from_secs(n)),
    };
    let outbox_dir = match sq.outbox_dir {
        Some(p) if !p.is_absolute() => {
            return Err(bad(
                "sq.outbox_dir",
                format!("{:?} is not an absolute path", p.display().to_string()),
            ))
        }
        Some(p) => p,
        None => state_dir.join("outbox"),
    };
    let max_sessions = match sq.max_sessions.unwrap_or(20) {
        0 => return Err(bad("sq.max_sessions", "must be at least 1".into())),
        n => n,
    };
    Ok(SqConfig {
        outbox_dir,
        max_sessions,
        scan_interval: secs("sq.scan_interval", sq.scan_interval, 5)?,
        connect_timeout: secs("sq.connect_timeout", sq.connect_timeout, 30)?,
        response_timeout: secs("sq.response_timeout", sq.response_timeout, 120)?,
    })
}
