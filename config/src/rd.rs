//! `[rd]`, `[tcp]` and `[tls]`: the receive daemons' configuration.
//!
//! ```toml
//! [rd]
//! max_sessions = 100        # concurrent sessions per daemon (after SSID)
//! idle_timeout = 10         # seconds until TLS handshake and SSID are done
//! response_timeout = 120    # seconds the partner may keep us waiting
//! inbox_dir = "/var/lib/os4x/inbox"
//! action_timeout = 600      # seconds a post-receive command may run
//! max_pending = 64          # connections not yet past their SSID
//! max_pending_per_ip = 8    # of those, from one address
//! accept_rate = 5           # new connections per second per address ...
//! accept_burst = 20         # ... with bursts up to this
//! refusal_log_interval = 60 # seconds: refused connections, one summary line
//! auth_failure_delay_ms = 1000  # wrong SSID: answer delayed, doubling ...
//! auth_failure_delay_max = 30   # ... up to this many seconds
//! auth_failure_window = 900     # seconds until failures are forgotten
//! size_tolerance_percent = 10   # a file may exceed SFIDFSIZ by this ...
//! size_slack_kb = 1024          # ... plus this
//! disk_reserve_mb = 256     # free space kept on the inbox file system
//! partial_expiry_days = 14  # partial files untouched this long go (0: never)
//!
//! [tcp]
//! listen = ["0.0.0.0:3305"]
//!
//! [tls]
//! listen = ["0.0.0.0:6619"]
//! certificate = "/etc/os4x/tls/server.crt"   # PEM, chain included
//! private_key = "/etc/os4x/tls/server.key"   # PEM
//! client_ca = "/etc/os4x/tls/partner-ca.pem" # optional
//! require_client_certificate = false
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::field::ConfigError;

/// Default `[tcp] listen`: the OFTP port (RFC 5024 section 10).
pub const DEFAULT_TCP_LISTEN: &str = "0.0.0.0:3305";
/// Default `[tls] listen`: OFTP over TLS.
pub const DEFAULT_TLS_LISTEN: &str = "0.0.0.0:6619";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdFile {
    max_sessions: Option<u32>,
    idle_timeout: Option<u64>,
    response_timeout: Option<u64>,
    inbox_dir: Option<PathBuf>,
    action_timeout: Option<u64>,
    max_pending: Option<u32>,
    max_pending_per_ip: Option<u32>,
    accept_rate: Option<u32>,
    accept_burst: Option<u32>,
    refusal_log_interval: Option<u64>,
    auth_failure_delay_ms: Option<u64>,
    auth_failure_delay_max: Option<u64>,
    auth_failure_window: Option<u64>,
    size_tolerance_percent: Option<u64>,
    size_slack_kb: Option<u64>,
    disk_reserve_mb: Option<u64>,
    partial_expiry_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpFile {
    listen: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    listen: Option<Vec<String>>,
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    require_client_certificate: Option<bool>,
}

/// The receive daemons' settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdConfig {
    /// Concurrent sessions per daemon; more get ESID 08.
    pub max_sessions: u32,
    /// Until the partner has identified itself (TLS handshake and SSID).
    pub idle_timeout: Duration,
    /// The session's response timer.
    pub response_timeout: Duration,
    /// Incoming files: `<inbox_dir>/<partner>/<dataset name>`.
    pub inbox_dir: PathBuf,
    /// Longest run of a post-receive command before it is killed.
    pub action_timeout: Duration,
    /// Connections that have not yet sent an accepted SSID (TLS handshake
    /// included); more are closed at once.
    pub max_pending: u32,
    /// Of those, from one IP address.
    pub max_pending_per_ip: u32,
    /// New connections per second and IP address (token bucket of
    /// `accept_burst`); more are closed at once.
    pub accept_rate: u32,
    pub accept_burst: u32,
    /// Refused connections are logged as one summary line per interval.
    pub refusal_log_interval: Duration,
    /// First delay of the answer to a refused SSID; doubles with every
    /// further failure of the same address or partner, up to
    /// `auth_failure_delay_max`; failures are forgotten after
    /// `auth_failure_window` without one.
    pub auth_failure_delay: Duration,
    pub auth_failure_delay_max: Duration,
    pub auth_failure_window: Duration,
    /// A file may exceed its announced size by this percentage plus
    /// `size_slack` octets.
    pub size_tolerance_percent: u64,
    pub size_slack: u64,
    /// Octets kept free on the inbox's file system.
    pub disk_reserve: u64,
    /// Partial files untouched this long are removed (`None`: never).
    pub partial_expiry: Option<Duration>,
    /// `os4xrd_tcpip` binds these without socket activation.
    pub tcp_listen: Vec<SocketAddr>,
    pub tls: TlsConfig,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `os4xrd_tcpip_tls` binds these without socket activation.
    pub listen: Vec<SocketAddr>,
    /// Server certificate chain (PEM); required by `os4xrd_tcpip_tls`.
    pub certificate: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
    /// CA certificates (PEM) that partners' client certificates chain to.
    pub client_ca: Option<PathBuf>,
    /// Refuse TLS handshakes without a client certificate.
    pub require_client_certificate: bool,
}

/// Validates the sections.
pub fn resolve(
    rd: RdFile,
    tcp: TcpFile,
    tls: TlsFile,
    state_dir: &Path,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<RdConfig, ConfigError> {
    let addrs = |key: &str, list: Option<Vec<String>>, default: &str| {
        list.unwrap_or_else(|| vec![default.to_owned()])
            .iter()
            .map(|a| {
                a.parse::<SocketAddr>().map_err(|_| {
                    bad(
                        key,
                        format!("{a:?} is not an address like \"0.0.0.0:3305\" or \"[::]:3305\""),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let absolute = |key: &str, p: Option<PathBuf>| match p {
        Some(p) if !p.is_absolute() => Err(bad(
            key,
            format!("{:?} is not an absolute path", p.display().to_string()),
        )),
        p => Ok(p),
    };
    let secs = |key: &str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
        0 => Err(bad(key, "must be at least 1 second".into())),
        n => Ok(Duration::from_secs(n)),
    };
    let at_least_1 = |key: &str, v: Option<u32>, default: u32| match v.unwrap_or(default) {
        0 => Err(bad(key, "must be at least 1".into())),
        n => Ok(n),
    };
    let max_sessions = match rd.max_sessions.unwrap_or(100) {
        0 => return Err(bad("rd.max_sessions", "must be at least 1".into())),
        n => n,
    };
    let certificate = absolute("tls.certificate", tls.certificate)?;
    let private_key = absolute("tls.private_key", tls.private_key)?;
    if certificate.is_some() != private_key.is_some() {
        return Err(bad(
            "tls.private_key",
            "tls.certificate and tls.private_key must be set together".into(),
        ));
    }
    Ok(RdConfig {
        max_sessions,
        idle_timeout: secs("rd.idle_timeout", rd.idle_timeout, 10)?,
        response_timeout: secs("rd.response_timeout", rd.response_timeout, 120)?,
        inbox_dir: absolute("rd.inbox_dir", rd.inbox_dir)?
            .unwrap_or_else(|| state_dir.join("inbox")),
        action_timeout: secs("rd.action_timeout", rd.action_timeout, 600)?,
        max_pending: at_least_1("rd.max_pending", rd.max_pending, 64)?,
        max_pending_per_ip: at_least_1("rd.max_pending_per_ip", rd.max_pending_per_ip, 8)?,
        accept_rate: at_least_1("rd.accept_rate", rd.accept_rate, 5)?,
        accept_burst: at_least_1("rd.accept_burst", rd.accept_burst, 20)?,
        refusal_log_interval: secs("rd.refusal_log_interval", rd.refusal_log_interval, 60)?,
        auth_failure_delay: Duration::from_millis(rd.auth_failure_delay_ms.unwrap_or(1000)),
        auth_failure_delay_max: Duration::from_secs(rd.auth_failure_delay_max.unwrap_or(30)),
        auth_failure_window: secs("rd.auth_failure_window", rd.auth_failure_window, 900)?,
        size_tolerance_percent: rd.size_tolerance_percent.unwrap_or(10),
        size_slack: rd.size_slack_kb.unwrap_or(1024).saturating_mul(1024),
        disk_reserve: rd.disk_reserve_mb.unwrap_or(256).saturating_mul(1 << 20),
        partial_expiry: match rd.partial_expiry_days.unwrap_or(14) {
            0 => None,
            d => Some(Duration::from_secs(d.saturating_mul(86_400))),
        },
        tcp_listen: addrs("tcp.listen", tcp.listen, DEFAULT_TCP_LISTEN)?,
        tls: TlsConfig {
            listen: addrs("tls.listen", tls.listen, DEFAULT_TLS_LISTEN)?,
            certificate,
            private_key,
            client_ca: absolute("tls.client_ca", tls.client_ca)?,
            require_client_certificate: tls.require_client_certificate.unwrap_or(false),
        },
    })
}
