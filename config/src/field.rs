//! What every section of the configuration shares: the error type and
//! the checks of common value kinds. Sections import this, never the
//! [`crate::Config`] aggregate that is built from them.

use std::io;
use std::path::PathBuf;

/// Environment variable naming the configuration file.
pub const ENV_VAR: &str = "OS4X_CONFIG";
/// Default `[debug] listen`.
pub const DEFAULT_DEBUG_LISTEN: &str = "127.0.0.1:10001";

/// The configuration could not be used. Binaries exit with
/// `exit::CONFIG` (78, `EX_CONFIG`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist; create it, or name another with --config or {ENV_VAR}", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("configuration file {}: {detail}", path.display())]
    Syntax { path: PathBuf, detail: String },
    #[error("configuration file {}{}: key `{key}`: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Key {
        path: PathBuf,
        key: String,
        message: String,
        line: Option<usize>,
    },
}

impl ConfigError {
    /// The offending key, if the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// `[section] key` as a socket address, `default` when unset; the error
/// shows `example`.
pub fn listen_addr(
    value: Option<&str>,
    default: &str,
    key: &str,
    example: &str,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<std::net::SocketAddr, ConfigError> {
    value
        .unwrap_or(default)
        .parse()
        .map_err(|_| bad(key, format!("expected an address like {example}")))
}

/// `v` when within `lo..=hi`, else an error naming `key` and the range.
pub fn in_range(
    key: &str,
    v: u64,
    lo: u64,
    hi: u64,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(bad(key, format!("use {lo} .. {hi}")))
    }
}
