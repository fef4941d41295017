//! `[client]`: the client/job service `os4xclientd`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::field::{in_range, listen_addr, ConfigError};

/// Default `[client] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:60000";

/// Default `[client] max_upload_bytes`: 4 GiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 4 << 30;

/// `[client]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    listen: Option<String>,
    max_connections: Option<u32>,
    max_request_bytes: Option<usize>,
    login_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_failed_logins: Option<u32>,
    lockout: Option<u64>,
    allowed_paths: Option<Vec<PathBuf>>,
    max_upload_bytes: Option<u64>,
    tls_certificate: Option<PathBuf>,
    tls_private_key: Option<PathBuf>,
}

/// `[client]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound when not socket-activated.
    pub listen: SocketAddr,
    /// Concurrent connections; more are told so and closed.
    pub max_connections: u32,
    /// Longest request line; longer requests are answered with
    /// `request_too_large` and the connection is closed.
    pub max_request_bytes: usize,
    /// A connection must log in within this time.
    pub login_timeout: Duration,
    /// A connection without requests for this long is closed.
    pub idle_timeout: Duration,
    /// Failed logins in a row after which a user is locked out.
    pub max_failed_logins: u32,
    /// First lockout; doubles with every further failure (at most 1 h).
    pub lockout: Duration,
    /// Directories whose files `send` may reference by server-side path
    /// (after resolving symlinks and `..`); empty: uploads only.
    pub allowed_paths: Vec<PathBuf>,
    /// Largest file a client may upload for `send`.
    pub max_upload_bytes: u64,
    /// Certificate and key: every connection is TLS; `None`: plain TCP.
    pub tls: Option<ClientTls>,
}

/// `[client] tls_certificate` and `tls_private_key` (both set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// Server certificate chain (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// Validates `[client]`.
pub fn resolve(
    file: ClientFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<ClientConfig, ConfigError> {
    let listen = listen_addr(
        file.listen.as_deref(),
        DEFAULT_LISTEN,
        "client.listen",
        "\"127.0.0.1:60000\"",
        bad,
    )?;
    let range = |key: &str, v: u64, lo: u64, hi: u64| in_range(key, v, lo, hi, bad);
    let max_connections = range(
        "client.max_connections",
        u64::from(file.max_connections.unwrap_or(64)),
        1,
        10_000,
    )?;
    let max_request_bytes = range(
        "client.max_request_bytes",
        file.max_request_bytes.unwrap_or(1 << 20) as u64,
        1024,
        64 << 20,
    )?;
    let login_timeout = range(
        "client.login_timeout",
        file.login_timeout.unwrap_or(30),
        1,
        3600,
    )?;
    let idle_timeout = range(
        "client.idle_timeout",
        file.idle_timeout.unwrap_or(900),
        1,
        86_400,
    )?;
    let max_failed_logins = range(
        "client.max_failed_logins",
        u64::from(file.max_failed_logins.unwrap_or(5)),
        1,
        1000,
    )?;
    let lockout = range("client.lockout", file.lockout.unwrap_or(60), 1, 86_400)?;
    let allowed_paths = file.allowed_paths.unwrap_or_default();
    if let Some(p) = allowed_paths.iter().find(|p| !p.is_absolute()) {
        return Err(bad(
            "client.allowed_paths",
            format!(
                "{:?} is not an absolute directory path",
                p.display().to_string()
            ),
        ));
    }
    let max_upload_bytes = range(
        "client.max_upload_bytes",
        file.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD),
        1024,
        1 << 40,
    )?;
    let absolute = |key: &str, p: Option<PathBuf>| match p {
        Some(p) if !p.is_absolute() => Err(bad(
            key,
            format!("{:?} is not an absolute path", p.display().to_string()),
        )),
        p => Ok(p),
    };
    let tls = match (
        absolute("client.tls_certificate", file.tls_certificate)?,
        absolute("client.tls_private_key", file.tls_private_key)?,
    ) {
        (Some(certificate), Some(private_key)) => Some(ClientTls {
            certificate,
            private_key,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(bad(
                "client.tls_private_key",
                "not set, but client.tls_certificate is; set both (PEM files) for TLS, or neither for plain TCP".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "client.tls_certificate",
                "not set, but client.tls_private_key is; set both (PEM files) for TLS, or neither for plain TCP".into(),
            ))
        }
    };
    Ok(ClientConfig {
        listen,
        max_connections: max_connections as u32,
        max_request_bytes: max_request_bytes as usize,
        login_timeout: Duration::from_secs(login_timeout),
        idle_timeout: Duration::from_secs(idle_timeout),
        max_failed_logins: max_failed_logins as u32,
        lockout: Duration::from_secs(lockout),
        allowed_paths,
        max_upload_bytes,
        tls,
    })
}
