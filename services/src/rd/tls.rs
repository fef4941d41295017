//! TLS for `os4xrd_tcpip_tls`: rustls (ring provider), TLS 1.2 and 1.3
//! only, optional client certificates, reloadable without dropping
//! sessions.
//!
//! Client certificates: with `[tls] client_ca` they must chain to one of
//! those CAs; without it any certificate is taken (its handshake signature
//! is still verified) and only counts for a partner whose pinned SHA-256
//! fingerprint it matches. Which partner needs one is decided after the
//! SSID, in [`super::PartnerAuth`].

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use super::settings::TlsConfig;

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

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        what,
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The server configuration as `[tls]` describes it now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub server: Arc<ServerConfig>,
    /// Whether presented client certificates were verified against
    /// `[tls] client_ca`.
    pub client_certs_verified: bool,
}

/// Reads certificate, key and client CAs and builds the rustls
/// configuration.
pub fn load(cfg: &TlsConfig) -> Result<Snapshot, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&cfg.certificate, &cfg.private_key) else {
        return Err(TlsError::NotConfigured);
    };
    let chain = certs("server certificate", cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key_path.clone(),
        source,
    })?;
    let provider = Arc::new(provider::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match &cfg.client_ca {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for c in certs("client CA", ca_path)? {
                roots.add(c).map_err(|e| TlsError::Verifier {
                    message: e.to_string(),
                    path: ca_path.clone(),
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if cfg.require_client_certificate {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build().map_err(|e| TlsError::Verifier {
                message: e.to_string(),
                path: ca_path.clone(),
            })?
        }
        None => Arc::new(AnyClientCert {
            provider: provider.clone(),
            mandatory: cfg.require_client_certificate,
        }),
    };
    let server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Snapshot {
        server: Arc::new(server),
        client_certs_verified: cfg.client_ca.is_some(),
    })
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
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), TlsError> {
        let s = load(cfg)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = s;
        Ok(())
    }
}

/// Takes any client certificate whose handshake signature is valid; the
/// certificate itself is checked against a partner's pin later.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
