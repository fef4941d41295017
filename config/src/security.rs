//! `[security]`: our key pairs, the CAs partner certificates must chain
//! to, and the CRL cache.
//!
//! ```toml
//! [security]
//! certificate = "/etc/os4x/keys/os4x.pem"   # our certificate (signs files and receipts)
//! private_key = "/etc/os4x/keys/os4x.key"   # its RSA key (PKCS#8 or PKCS#1, PEM or DER)
//! # A separate pair for decryption and secure authentication (default: the one above)
//! # encryption_certificate = "/etc/os4x/keys/os4x-enc.pem"
//! # encryption_key = "/etc/os4x/keys/os4x-enc.key"
//! ca_file = "/etc/os4x/keys/partner-cas.pem" # CAs (and intermediates) partner certificates chain to
//! crl_dir = "/var/lib/os4x/crl"             # CRLs os4xsqd downloaded
//! crl_refresh = 3600                        # seconds between CRL downloads
//! ```
//!
//! Partner certificates and policies are per partner (`os4x partner set
//! --certificate ... --sign ...`), not here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::field::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFile {
    certificate: Option<PathBuf>,
    private_key: Option<PathBuf>,
    encryption_certificate: Option<PathBuf>,
    encryption_key: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    crl_dir: Option<PathBuf>,
    crl_refresh: Option<u64>,
}

/// A certificate and the file of its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// `[security]`, validated (paths only: the files are read by
/// [`super::Security::load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Signs our files and receipts.
    pub signing: Option<KeyPairFiles>,
    /// Decrypts files sent to us and answers secure authentication;
    /// `None`: [`SecurityConfig::signing`] does.
    pub encryption: Option<KeyPairFiles>,
    /// PEM bundle of the CAs partner certificates must chain to. Without
    /// it, a partner certificate is trusted as configured (validity
    /// checked, no chain, no revocation).
    pub ca_file: Option<PathBuf>,
    /// Downloaded CRLs (`os4xsqd` writes, every daemon reads).
    pub crl_dir: PathBuf,
    /// Interval of CRL downloads.
    pub crl_refresh: Duration,
}

pub fn resolve(
    file: SecurityFile,
    state_dir: &Path,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SecurityConfig, ConfigError> {
    let absolute = |key: &str, p: Option<PathBuf>| match p {
        Some(p) if !p.is_absolute() => Err(bad(
            key,
            format!("{:?} is not an absolute path", p.display().to_string()),
        )),
        other => Ok(other),
    };
    let pair = |cert_key: &str,
                key_key: &str,
                cert: Option<PathBuf>,
                key: Option<PathBuf>|
     -> Result<Option<KeyPairFiles>, ConfigError> {
        match (absolute(cert_key, cert)?, absolute(key_key, key)?) {
            (None, None) => Ok(None),
            (Some(certificate), Some(private_key)) => Ok(Some(KeyPairFiles {
                certificate,
                private_key,
            })),
            (Some(_), None) => Err(bad(key_key, format!("missing: {cert_key} needs it"))),
            (None, Some(_)) => Err(bad(cert_key, format!("missing: {key_key} needs it"))),
        }
    };
    let signing = pair(
        "security.certificate",
        "security.private_key",
        file.certificate,
        file.private_key,
    )?;
    let encryption = pair(
        "security.encryption_certificate",
        "security.encryption_key",
        file.encryption_certificate,
        file.encryption_key,
    )?;
    let crl_refresh = match file.crl_refresh.unwrap_or(3600) {
        0 => {
            return Err(bad(
                "security.crl_refresh",
                "must be at least 1 second".into(),
            ))
        }
        n => Duration::from_secs(n),
    };
    Ok(SecurityConfig {
        signing,
        encryption,
        ca_file: absolute("security.ca_file", file.ca_file)?,
        crl_dir: absolute("security.crl_dir", file.crl_dir)?
            .unwrap_or_else(|| state_dir.join("crl")),
        crl_refresh,
    })
}
