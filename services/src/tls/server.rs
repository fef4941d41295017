//! The server side: `os4xrd_tcpip_tls` with optional client
//! certificates, reloadable without dropping sessions; plain server
//! configurations for `os4xclientd` and `os4x-web`.
//!
//! Client certificates: the handshake takes any certificate whose
//! handshake signature verifies (the client holds its key); whether it is
//! good enough is decided after the SSID, in `serve::PartnerAuth`, once
//! the daemon knows which partner it is talking to. A partner's own CA
//! (`os4x partner set --client-ca`) replaces `[tls] client_ca` for that
//! partner; a pinned SHA-256 fingerprint must match in addition. See
//! [`ClientCa`] for the chain check and [`PartnerHints`] for what the
//! server announces.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use super::{certs, identity, HandshakeSignatures, PROTOCOL_VERSIONS};
use crate::config::rd::TlsConfig;

/// TLS set-up failed; the message names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "[tls] certificate and private_key are not set; os4xrd_tcpip_tls needs both (PEM files)"
    )]
    NotConfigured,
    #[error("cannot read {what} {}: {source}", path.display())]
    Pem {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {} contains no certificate", path.display())]
    Empty {
        what: &'static str,
        path: std::path::PathBuf,
    },
    #[error("TLS configuration rejected: {0}; check that the key belongs to the certificate")]
    Rustls(#[from] rustls::Error),
    #[error("client CA file {}: {message}", path.display())]
    Verifier {
        message: String,
        path: std::path::PathBuf,
    },
}

/// A set of CA certificates client certificates are checked against:
/// `[tls] client_ca`, or a partner's own CA bundle.
///
/// The check is rustls' WebPKI client verification (chain to one of the
/// CAs through the intermediates the client sent, validity at the time
/// given, key usage for client authentication), the same the handshake
/// would do; it is only run later, after the SSID.
#[derive(Clone)]
pub struct ClientCa {
    roots: Arc<RootCertStore>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa")
            .field("cas", &self.verifier.root_hint_subjects().len())
            .finish()
    }
}

impl ClientCa {
    /// Reads a PEM bundle of CA certificates (`what` names it in errors).
    /// Every certificate must be usable as a trust anchor.
    pub fn from_pem_file(what: &'static str, path: &Path) -> Result<ClientCa, TlsError> {
        let verifier_error = |message: String| TlsError::Verifier {
            message,
            path: path.to_owned(),
        };
        let mut roots = RootCertStore::empty();
        for c in certs(what, path)? {
            roots.add(c).map_err(|e| verifier_error(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            Arc::new(provider::default_provider()),
        )
        .build()
        .map_err(|e| verifier_error(e.to_string()))?;
        Ok(ClientCa { roots, verifier })
    }

    /// Checks a client certificate chain as presented (end entity first,
    /// then the intermediates the client sent) at `now`, and against
    /// `crls` (a certificate listed by its issuer's CRL is refused; one
    /// whose issuer has no CRL here is not).
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
        crls: &[rustls::pki_types::CertificateRevocationListDer<'static>],
    ) -> Result<(), rustls::Error> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        if crls.is_empty() {
            return self
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ());
        }
        let with_crls = WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            Arc::new(provider::default_provider()),
        )
        .with_crls(crls.iter().cloned())
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| rustls::Error::General(format!("CRLs unusable: {e}")))?;
        with_crls
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ())
    }

    /// Distinguished names of the CAs (for the CertificateRequest).
    pub fn subjects(&self) -> &[DistinguishedName] {
        self.verifier.root_hint_subjects()
    }
}

/// Partners' own CA bundles, announced in the handshake next to
/// `[tls] client_ca`: `(Odette ID, path)` as in the partner table.
pub type PartnerHints = [(String, PathBuf)];

/// The server configuration as `[tls]` describes it now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub server: Arc<ServerConfig>,
    /// `[tls] client_ca`, if configured: what client certificates of
    /// partners without their own CA must chain to.
    pub client_ca: Option<ClientCa>,
}

/// Reads certificate, key and client CAs and builds the rustls
/// configuration, announcing only `[tls] client_ca` to clients.
pub fn load(cfg: &TlsConfig) -> Result<Snapshot, TlsError> {
    load_with_partner_cas(cfg, &[])
}

/// Like [`load`]; the CertificateRequest also names the CAs of
/// `partner_cas`. A partner bundle that cannot be read is logged and left
/// out (that partner's sessions are refused at SSID time and say why);
/// it never stops the daemon or a reload.
pub fn load_with_partner_cas(
    cfg: &TlsConfig,
    partner_cas: &PartnerHints,
) -> Result<Snapshot, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&cfg.certificate, &cfg.private_key) else {
        return Err(TlsError::NotConfigured);
    };
    let (chain, key) = identity(cert_path, key_path)?;
    let provider = Arc::new(provider::default_provider());
    let client_ca = cfg
        .client_ca
        .as_deref()
        .map(|path| ClientCa::from_pem_file("client CA", path))
        .transpose()?;
    let mut hints: Vec<DistinguishedName> = client_ca
        .as_ref()
        .map(|ca| ca.subjects().to_vec())
        .unwrap_or_default();
    for (partner, path) in partner_cas {
        match ClientCa::from_pem_file("partner client CA", path) {
            Ok(ca) => hints.extend(ca.subjects().iter().cloned()),
            Err(e) => tracing::warn!(
                partner = %partner,
                error = %e,
                "partner client CA not announced in the TLS handshake; fix it with `os4x partner set --client-ca`"
            ),
        }
    }
    let mut seen = std::collections::HashSet::new();
    hints.retain(|dn| seen.insert(dn.as_ref().to_vec()));
    // The chain is checked after the SSID, not here: which CA applies
    // depends on the partner, and the SSID names the partner only after
    // the handshake. Checking the union of all CAs here would still let a
    // certificate from partner A's CA through for partner B (so the SSID
    // check is needed anyway), would make a partner added with
    // `--client-ca` fail every handshake until the next SIGHUP, and would
    // turn a refusal into an anonymous TLS alert instead of an ESID 12
    // logged with the partner. Before the SSID a session can do nothing
    // but identify itself, so deferring lets nothing in.
    let verifier = Arc::new(DeferredClientCert {
        signatures: HandshakeSignatures::new(provider.clone()),
        mandatory: cfg.require_client_certificate,
        hints,
    });
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Snapshot {
        server: Arc::new(server),
        client_ca,
    })
}

/// A server configuration like [`load`]'s (same provider and protocol
/// versions) that asks for no client certificate: for services whose
/// clients authenticate inside the protocol (`os4xclientd`).
pub fn server_without_client_auth(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = identity(cert_path, key_path)?;
    let server = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(server))
}

/// The configuration in use, swapped on SIGHUP. Handshakes take the
/// snapshot current when they start; running sessions keep theirs.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Snapshot>,
}

impl Reloadable {
    pub fn new(s: Snapshot) -> Reloadable {
        Reloadable {
            current: RwLock::new(s),
        }
    }

    pub fn get(&self) -> Snapshot {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the files; on error the old configuration stays.
    pub fn reload(&self, cfg: &TlsConfig, partner_cas: &PartnerHints) -> Result<(), TlsError> {
        let s = load_with_partner_cas(cfg, partner_cas)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = s;
        Ok(())
    }
}

/// Takes any client certificate whose handshake signature is valid; the
/// certificate itself is checked once the partner is known (see
/// [`load_with_partner_cas`]). Announces the CAs in `hints` so that
/// clients choosing a certificate by issuer (Java, Go) find theirs.
#[derive(Debug)]
struct DeferredClientCert {
    signatures: HandshakeSignatures,
    mandatory: bool,
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for DeferredClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}
