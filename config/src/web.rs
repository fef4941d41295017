//! `[web]`: the web administration service `os4x-web` (its own crate; the
//! section lives here so the one configuration file keeps rejecting
//! unknown keys with file and line).
//!
//! ```toml
//! [web]
//! listen = "127.0.0.1:8404"           # when not socket-activated
//! tls_certificate = "/etc/os4x/web.crt"  # both set: HTTPS only
//! tls_private_key = "/etc/os4x/web.key"
//! session_idle = 1800                 # seconds without a request
//! session_max = 43200                 # seconds after login, at most
//! max_upload_bytes = 268435456        # enqueue uploads
//! control = "auto"                    # auto | systemd | direct
//! daemon_dir = "/usr/sbin"            # direct control: daemon binaries
//! systemctl = ["systemctl"]           # e.g. ["sudo", "-n", "systemctl"]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::field::{in_range, listen_addr, ConfigError};

/// Default `[web] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8404";
/// Default `[web] max_upload_bytes`: 256 MiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 256 << 20;

/// `[web]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFile {
    listen: Option<String>,
    tls_certificate: Option<PathBuf>,
    tls_private_key: Option<PathBuf>,
    session_idle: Option<u64>,
    session_max: Option<u64>,
    max_upload_bytes: Option<u64>,
    control: Option<String>,
    daemon_dir: Option<PathBuf>,
    systemctl: Option<Vec<String>>,
    cookie_secure: Option<bool>,
}

/// How `os4x-web` starts and stops daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Through systemd when it runs the program's unit, else directly.
    Auto,
    /// Always `systemctl`.
    Systemd,
    /// Always the daemon binaries and signals.
    Direct,
}

/// `[web]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Bound when not socket-activated.
    pub listen: SocketAddr,
    /// Certificate chain and key (PEM): HTTPS; `None`: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_max: Duration,
    /// Largest file uploaded to the send queue.
    pub max_upload_bytes: u64,
    pub control: Control,
    /// Where the daemon binaries are for direct control; `None`: beside
    /// `os4x-web`'s own executable.
    pub daemon_dir: Option<PathBuf>,
    /// The `systemctl` command (with a prefix such as `sudo -n`).
    pub systemctl: Vec<String>,
    /// Mark the session cookie `Secure` although os4x-web speaks plain
    /// HTTP (behind a TLS-terminating proxy); `None`: only with TLS.
    pub cookie_secure: Option<bool>,
}

/// Validates `[web]`.
pub fn resolve(
    file: WebFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<WebConfig, ConfigError> {
    let listen = listen_addr(
        file.listen.as_deref(),
        DEFAULT_LISTEN,
        "web.listen",
        "\"127.0.0.1:8404\"",
        bad,
    )?;
    let range = |key: &str, v: u64, lo: u64, hi: u64| in_range(key, v, lo, hi, bad);
    let session_idle = range(
        "web.session_idle",
        file.session_idle.unwrap_or(1800),
        60,
        86_400,
    )?;
    let session_max = range(
        "web.session_max",
        file.session_max.unwrap_or(43_200),
        60,
        30 * 86_400,
    )?;
    let max_upload_bytes = range(
        "web.max_upload_bytes",
        file.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD),
        1024,
        1 << 40,
    )?;
    let control = match file.control.as_deref().unwrap_or("auto") {
        "auto" => Control::Auto,
        "systemd" => Control::Systemd,
        "direct" => Control::Direct,
        other => {
            return Err(bad(
                "web.control",
                format!("{other:?}: use auto, systemd or direct"),
            ))
        }
    };
    let absolute = |key: &str, p: Option<PathBuf>| match p {
        Some(p) if !p.is_absolute() => Err(bad(
            key,
            format!("{:?} is not an absolute path", p.display().to_string()),
        )),
        p => Ok(p),
    };
    let tls =
        match (
            absolute("web.tls_certificate", file.tls_certificate)?,
            absolute("web.tls_private_key", file.tls_private_key)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => return Err(bad(
                "web.tls_private_key",
                "not set, but web.tls_certificate is; set both (PEM files) for HTTPS, or neither"
                    .into(),
            )),
            (None, Some(_)) => return Err(bad(
                "web.tls_certificate",
                "not set, but web.tls_private_key is; set both (PEM files) for HTTPS, or neither"
                    .into(),
            )),
        };
    let daemon_dir = absolute("web.daemon_dir", file.daemon_dir)?;
    let systemctl = file.systemctl.unwrap_or_else(|| vec!["systemctl".into()]);
    if systemctl.first().map_or(true, |c| c.is_empty()) {
        return Err(bad(
            "web.systemctl",
            "must name a command, e.g. [\"systemctl\"] or [\"sudo\", \"-n\", \"systemctl\"]".into(),
        ));
    }
    Ok(WebConfig {
        listen,
        tls,
        session_idle: Duration::from_secs(session_idle),
        session_max: Duration::from_secs(session_max),
        max_upload_bytes,
        control,
        daemon_dir,
        systemctl,
        cookie_secure: file.cookie_secure,
    })
}
