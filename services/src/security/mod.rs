//! OFTP2 security in the daemons (RFC 5024 sections 4.2.3, 6, 10): our
//! key pairs from `[security]`, partner certificates from the partner
//! table checked against the CA set and the downloaded CRLs, secure
//! authentication keys for sessions, and the check of received receipts.
//!
//! The cryptography is [`oftp2::security`]; this module decides which
//! keys apply and what a failure means for a session, a file or a queue
//! entry.
//!
//! CRLs are downloaded by `os4xsqd` ([`crl`]) into `[security] crl_dir`;
//! every daemon reads that directory when it checks a certificate (cheap:
//! it is re-read only when a file in it changed), so a refresh counts for
//! the next session everywhere without a reload.

pub mod crl;
/// `[security]` settings (they live in the configuration crate).
pub use os4x_config::security as settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oftp2::security::auth::{AuthRefusal, SecureAuthentication};
use oftp2::security::receipt::{self, ReceiptVerification};
use oftp2::security::{CertError, Certificate, Crl, Identity, TrustStore};
use oftp2::session::Receipt;
use oftp2::value::{EndSessionReason, OdetteId};

use crate::partner::{Partner, PartnerStore};
use crate::queue::QueueStore;
use settings::{KeyPairFiles, SecurityConfig};

/// How long before expiry a certificate is reported (`os4x-pidctl check`).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// A key, certificate or CA file of `[security]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("[security] {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[security] {what} {}: {source}", path.display())]
    Parse {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: CertError,
    },
}

/// Why a partner's certificate cannot be used now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PartnerCertError {
    #[error("no certificate is configured for partner {0}; set one with `os4x partner set {0} --certificate FILE`")]
    NotConfigured(String),
    #[error("certificate file {} of partner {partner}: {error}", path.display())]
    Unreadable {
        partner: String,
        path: PathBuf,
        error: String,
    },
    #[error("certificate of partner {partner} ({}): {error}", path.display())]
    Rejected {
        partner: String,
        path: PathBuf,
        error: CertError,
    },
}

impl PartnerCertError {
    /// Whether the certificate is revoked (a CRL lists it or its CA).
    pub fn is_revoked(&self) -> bool {
        matches!(
            self,
            PartnerCertError::Rejected {
                error: CertError::Revoked(_),
                ..
            }
        )
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn load_identity(files: &KeyPairFiles) -> Result<Identity, SecurityError> {
    let cert = read_file("certificate", &files.certificate)?;
    let key = read_file("private_key", &files.private_key)?;
    Identity::from_pem_or_der(&cert, &key).map_err(|source| SecurityError::Parse {
        what: "certificate/private_key",
        path: files.certificate.clone(),
        source,
    })
}

/// The CRLs of the cache directory as last read, with what identified
/// the directory's content then.
#[derive(Debug, Default)]
struct CrlCache {
    stamp: Vec<(PathBuf, SystemTime, u64)>,
    crls: Vec<Crl>,
}

/// Our keys, the partner CAs and the CRL cache: one per daemon.
pub struct Security {
    config: SecurityConfig,
    signing: Option<Identity>,
    decryption: Option<Identity>,
    cas: Vec<Certificate>,
    partners: PartnerStore,
    crls: Mutex<CrlCache>,
    tls_crls: Mutex<TlsCrlCache>,
}

/// The CRLs of the cache directory in the form rustls checks TLS client
/// certificates with.
#[derive(Debug, Default)]
struct TlsCrlCache {
    stamp: Vec<(PathBuf, SystemTime, u64)>,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field(
                "signing",
                &self.signing.as_ref().map(|i| i.certificate().subject()),
            )
            .field("cas", &self.cas.len())
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Reads the key pairs and CA file `config` names. A file that is
    /// named but unusable is an error: the daemon must not start without
    /// the keys its partners rely on.
    pub fn load(
        config: &SecurityConfig,
        partners: PartnerStore,
    ) -> Result<Security, SecurityError> {
        let signing = config.signing.as_ref().map(load_identity).transpose()?;
        let decryption = match &config.encryption {
            Some(files) => Some(load_identity(files)?),
            None => signing.clone(),
        };
        let cas = match &config.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = read_file("ca_file", path)?;
                Certificate::all_from_pem(&pem).map_err(|source| SecurityError::Parse {
                    what: "ca_file",
                    path: path.clone(),
                    source,
                })?
            }
        };
        Ok(Security {
            config: config.clone(),
            signing,
            decryption,
            cas,
            partners,
            crls: Mutex::default(),
            tls_crls: Mutex::default(),
        })
    }

    /// The settings this was loaded from.
    pub fn config(&self) -> &SecurityConfig {
        &self.config
    }

    /// Signs our files and receipts.
    pub fn signing(&self) -> Option<&Identity> {
        self.signing.as_ref()
    }

    /// Decrypts files for us and answers secure authentication.
    pub fn decryption(&self) -> Option<&Identity> {
        self.decryption.as_ref()
    }

    /// The configured partner CAs.
    pub fn cas(&self) -> &[Certificate] {
        &self.cas
    }

    /// The partner table.
    pub fn partners(&self) -> &PartnerStore {
        &self.partners
    }

    /// The CAs and the CRLs currently in the cache directory (each
    /// checked against its CA's signature; a bad one is logged and left
    /// out).
    pub fn trust_store(&self) -> TrustStore {
        let mut store = TrustStore::new();
        for ca in &self.cas {
            store.add_ca(ca.clone());
        }
        let mut cache = self.crls.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = crl::dir_stamp(&self.config.crl_dir);
        if stamp != cache.stamp {
            cache.crls = crl::load_dir(&self.config.crl_dir, &store);
            cache.stamp = stamp;
        }
        for c in &cache.crls {
            // Verified when read; add_crl checks again, cheaply.
            let _ = store.add_crl(c.clone());
        }
        store
    }

    /// Every CRL in `[security] crl_dir` (`*.crl`, PEM or DER), for the
    /// TLS client certificate check: rustls verifies each CRL's signature
    /// against the issuer in the presented chain, so the CRL of a TLS CA
    /// that is not in `ca_file` counts too. Reread when the directory
    /// changes; an unparsable file is logged and left out.
    pub fn tls_crls(&self) -> Vec<rustls::pki_types::CertificateRevocationListDer<'static>> {
        let mut cache = self.tls_crls.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = crl::dir_stamp(&self.config.crl_dir);
        if stamp != cache.stamp {
            cache.crls = crl::load_tls_dir(&stamp);
            cache.stamp = stamp;
        }
        cache.crls.clone()
    }

    /// The certificate of `partner`, checked for use now: readable,
    /// valid, and — with a CA set configured — chaining to it and not
    /// revoked by a loaded CRL.
    pub fn partner_certificate(&self, partner: &Partner) -> Result<Certificate, PartnerCertError> {
        let id = partner.id.to_string();
        let Some(path) = &partner.certificate else {
            return Err(PartnerCertError::NotConfigured(id));
        };
        let bytes = std::fs::read(path).map_err(|e| PartnerCertError::Unreadable {
            partner: id.clone(),
            path: path.clone(),
            error: e.to_string(),
        })?;
        let cert =
            Certificate::from_pem_or_der(&bytes).map_err(|e| PartnerCertError::Unreadable {
                partner: id.clone(),
                path: path.clone(),
                error: e.to_string(),
            })?;
        let now = SystemTime::now();
        let rejected = |error| PartnerCertError::Rejected {
            partner: id.clone(),
            path: path.clone(),
            error,
        };
        if self.cas.is_empty() {
            // No CA set: the certificate is trusted as the admin installed
            // it; only its validity can be checked.
            cert.check_validity(now).map_err(rejected)?;
        } else {
            let store = self.trust_store();
            store.verify(&cert, now).map_err(rejected)?;
        }
        Ok(cert)
    }

    /// [`Security::partner_certificate`] by Odette ID.
    pub fn certificate_of(&self, id: &OdetteId) -> Result<Certificate, PartnerCertError> {
        match self.partners.get(id.as_str()) {
            Ok(Some(p)) => self.partner_certificate(&p),
            Ok(None) => Err(PartnerCertError::NotConfigured(id.to_string())),
            Err(e) => Err(PartnerCertError::Unreadable {
                partner: id.to_string(),
                path: PathBuf::new(),
                error: e.to_string(),
            }),
        }
    }

    /// A partner with a certificate on file may only have sessions while
    /// that certificate is usable (revoked, expired or untrusted: refused).
    /// A partner without one is not affected here; the services that need
    /// it (encryption, secure authentication, signature checks) fail on
    /// their own with the reason.
    pub fn check_partner_for_session(&self, partner: &Partner) -> Result<(), PartnerCertError> {
        if partner.certificate.is_none() {
            return Ok(());
        }
        self.partner_certificate(partner).map(drop)
    }

    /// Checks a received receipt against the queue entry it answers (the
    /// file hash stored when the file was protected) and the certificate
    /// of its creator, and stores the result with the entry. Returns
    /// whether the receipt may be applied: an invalid signature, or an
    /// unsigned receipt where a signed one was requested, is rejected
    /// (the entry stays awaiting its EERP).
    pub fn check_receipt(&self, queue: &QueueStore, entry: i64, r: &Receipt) -> bool {
        check_receipt(Some(self), queue, entry, r)
    }
}

/// The daemons' [`Security`]: loaded from `[security]` (an unusable key
/// or CA file stops the daemon with the file named). Always present, so
/// partner certificates are checked even when we hold no keys ourselves.
pub fn load_for_daemon(
    config: &crate::config::Config,
    partners: PartnerStore,
) -> anyhow::Result<Option<Arc<Security>>> {
    let s = Security::load(&config.security, partners)?;
    if let Some(id) = s.signing() {
        let c = id.certificate();
        tracing::info!(subject = %c.subject(), serial = %c.serial_hex(), "[security] signing certificate loaded");
        if c.expires_within(SystemTime::now(), EXPIRY_WARNING) {
            tracing::warn!(subject = %c.subject(), "our certificate expires within 30 days (or has expired); renew it");
        }
    }
    Ok(Some(Arc::new(s)))
}

/// Free-standing [`Security::check_receipt`] for daemons without
/// `[security]` keys: a signed receipt still cannot be checked without
/// partner certificates, which is recorded as such.
pub fn check_receipt(
    security: Option<&Security>,
    queue: &QueueStore,
    entry: i64,
    r: &Receipt,
) -> bool {
    let protection = match queue.protection_of(entry) {
        Ok(p) => p,
        Err(e) => {
            // Unknown whether a signature was asked for: do not settle.
            tracing::error!(entry, error = %e, "cannot read the queue entry of a receipt; not applied");
            return false;
        }
    };
    let Some(protection) = protection else {
        return true;
    };
    let (creator, kind, signed) = match r {
        Receipt::Eerp(e) => (e.originator, "EERP", !e.signature.is_empty()),
        Receipt::Nerp(n) => (n.creator, "NERP", !n.signature.is_empty()),
    };
    if !signed && !protection.signed_eerp_requested {
        // Nothing asked, nothing to check: plain OFTP.
        return true;
    }
    let signers: Vec<Certificate> = match (signed, security.map(|s| s.certificate_of(&creator))) {
        (true, Some(Ok(c))) => vec![c],
        (true, Some(Err(e))) => {
            tracing::warn!(creator = %creator, error = %e, "no usable certificate to check the signed receipt with");
            Vec::new()
        }
        _ => Vec::new(),
    };
    let verification = receipt::verify_receipt(r, &signers, protection.file_hash.as_deref());
    let (status, text, accept) = match &verification {
        // SFIDSIGN asked for a signed receipt: an unsigned one proves
        // nothing about who received the file, so it settles nothing.
        ReceiptVerification::Unsigned if protection.signed_eerp_requested => (
            "unsigned",
            format!("signed {kind} requested, unsigned {kind} received; not applied"),
            false,
        ),
        ReceiptVerification::Unsigned => ("unsigned", String::new(), true),
        ReceiptVerification::Valid { signer } => {
            ("valid", format!("signed by {}", signer.subject()), true)
        }
        ReceiptVerification::Invalid(e) => ("invalid", e.to_string(), false),
    };
    match status {
        "invalid" => {
            tracing::error!(entry = protection.id, creator = %creator, kind, error = %text, "signed receipt does not verify; rejected, the file stays awaiting its EERP")
        }
        "valid" => {
            tracing::info!(entry = protection.id, creator = %creator, kind, signer = %text, "signed receipt verified")
        }
        _ if protection.signed_eerp_requested => {
            tracing::error!(entry = protection.id, creator = %creator, kind, "signed receipt requested but unsigned one received; rejected, the file stays awaiting its EERP")
        }
        _ => {}
    }
    if let Err(e) = queue.set_receipt_verification(protection.id, status, &text) {
        tracing::error!(entry = protection.id, error = %e, "cannot record the receipt verification");
    }
    accept
}

/// Secure authentication keys for sessions: our decryption identity and
/// partner certificates from the partner table.
#[derive(Debug, Clone)]
pub struct AuthKeys {
    security: Arc<Security>,
    identity: Identity,
}

impl AuthKeys {
    /// `None` without a key pair of ours.
    pub fn new(security: Arc<Security>) -> Option<AuthKeys> {
        let identity = security.decryption()?.clone();
        Some(AuthKeys { security, identity })
    }
}

impl SecureAuthentication for AuthKeys {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn partner_certificate(&self, partner: &OdetteId) -> Result<Certificate, AuthRefusal> {
        self.security.certificate_of(partner).map_err(|e| {
            tracing::warn!(partner = %partner, error = %e, "secure authentication refused: partner certificate unusable");
            AuthRefusal::new(
                EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                e.to_string(),
            )
        })
    }
}

/// One certificate's expiry, for `os4x-pidctl check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Whose it is: "our", "our encryption", "partner O0013...".
    pub owner: String,
    pub subject: String,
    /// `None`: expired.
    pub remaining: Option<Duration>,
}

/// Certificates that expire within [`EXPIRY_WARNING`] (or have expired):
/// ours and those of enabled partners. Unreadable files are reported as
/// problems (second list).
pub fn expiring_certificates(
    config: &SecurityConfig,
    partners: &[Partner],
    now: SystemTime,
) -> (Vec<Expiry>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut look = |owner: String, path: &Path| {
        let cert = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| Certificate::from_pem_or_der(&b).map_err(|e| e.to_string()));
        match cert {
            Ok(c) if c.expires_within(now, EXPIRY_WARNING) || c.remaining(now).is_none() => found
                .push(Expiry {
                    owner,
                    subject: c.subject(),
                    remaining: c.remaining(now),
                }),
            Ok(_) => {}
            Err(e) => problems.push(format!("{owner}: {}: {e}", path.display())),
        }
    };
    if let Some(k) = &config.signing {
        look("our".into(), &k.certificate);
    }
    if let Some(k) = &config.encryption {
        look("our encryption".into(), &k.certificate);
    }
    for p in partners.iter().filter(|p| p.enabled) {
        if let Some(path) = &p.certificate {
            look(format!("partner {}", p.id), path);
        }
    }
    (found, problems)
}
