//! `[debug]`: `os4xdebugd` and the forwarding of debug records.

use std::net::SocketAddr;

use serde::Deserialize;
use tracing::level_filters::LevelFilter;

use crate::field::{listen_addr, ConfigError, DEFAULT_DEBUG_LISTEN};

/// Default `[debug] ring_max_mb`.
pub const DEFAULT_RING_MAX_MB: u64 = 64;
/// Default `[debug] max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 64;
/// Default `[debug] frame_timeout` (seconds).
pub const DEFAULT_FRAME_TIMEOUT: u64 = 30;

/// `[debug]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugFile {
    listen: Option<String>,
    enable: Option<Vec<String>>,
    level: Option<String>,
    ring_max_mb: Option<u64>,
    max_connections: Option<u32>,
    frame_timeout: Option<u64>,
}

/// `[debug]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugConfig {
    /// TCP address `os4xdebugd` listens on (and daemons send to).
    pub listen: SocketAddr,
    /// Programs that forward debug records from their start (`"*"`: all),
    /// until `os4x debug on|off` overrides it.
    pub enable: Vec<String>,
    /// Most verbose level forwarded.
    pub level: LevelFilter,
    /// Disk budget of the record ring under `<state_dir>/debug/`.
    pub ring_max_bytes: u64,
    /// Concurrent connections `os4xdebugd` serves; more are closed.
    pub max_connections: u32,
    /// Seconds a sender may take for its hello, and to complete a frame
    /// it started; slower connections are closed.
    pub frame_timeout: u64,
}

impl DebugConfig {
    /// Whether the configuration enables forwarding for `program`.
    pub fn enabled_for(&self, program: &str) -> bool {
        self.enable.iter().any(|p| p == program || p == "*")
    }
}

/// Validates `[debug]`.
pub fn resolve(
    file: DebugFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<DebugConfig, ConfigError> {
    let listen = listen_addr(
        file.listen.as_deref(),
        DEFAULT_DEBUG_LISTEN,
        "debug.listen",
        "\"127.0.0.1:10001\" or \"[::1]:10001\"",
        bad,
    )?;
    let enable = file.enable.unwrap_or_default();
    for p in &enable {
        if p != "*" && pidstore::ProgramName::new(p.as_str()).is_err() {
            return Err(bad(
                "debug.enable",
                format!("{p:?} is not a program name; use e.g. \"os4xrd_tcpip\", or \"*\" for all"),
            ));
        }
    }
    let level = match file.level.as_deref().unwrap_or("debug") {
        "error" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        other => {
            return Err(bad(
                "debug.level",
                format!("{other:?}: use error, warn, info, debug or trace"),
            ))
        }
    };
    let ring_mb = file.ring_max_mb.unwrap_or(DEFAULT_RING_MAX_MB);
    if !(1..=1_048_576).contains(&ring_mb) {
        return Err(bad("debug.ring_max_mb", "use 1 .. 1048576 (MiB)".into()));
    }
    let max_connections = file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if !(1..=10_000).contains(&max_connections) {
        return Err(bad("debug.max_connections", "use 1 .. 10000".into()));
    }
    let frame_timeout = file.frame_timeout.unwrap_or(DEFAULT_FRAME_TIMEOUT);
    if !(1..=3600).contains(&frame_timeout) {
        return Err(bad("debug.frame_timeout", "use 1 .. 3600 (seconds)".into()));
    }
    Ok(DebugConfig {
        listen,
        enable,
        level,
        ring_max_bytes: ring_mb * 1024 * 1024,
        max_connections,
        frame_timeout,
    })
}
