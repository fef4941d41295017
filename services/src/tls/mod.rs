//! TLS for every os4x connection: rustls with the ring provider, TLS 1.3
//! and 1.2 only, in one place for both directions.
//!
//! - [`server`]: `os4xrd_tcpip_tls` (partner client certificates checked
//!   after the SSID, reloadable on SIGHUP), and plain server
//!   configurations for `os4xclientd` and `os4x-web`.
//! - [`client`]: outgoing OFTP sessions of `os4xsqd` (CA file or pinned
//!   fingerprint per route, our certificate as client certificate).
//!
//! Both sides read PEM files with [`certs`], and check a peer whose
//! certificate is judged elsewhere (pinned, or checked once the partner is
//! known) with the same [`HandshakeSignatures`]: the peer must still prove
//! it holds the certificate's key.

pub mod client;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub use server::{server_without_client_auth, ClientCa, TlsError};

/// TLS 1.3 and 1.2; nothing older.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(provider::default_provider())
}

/// Reads the certificates of a PEM file (`what` names it in errors); at
/// least one must be there.
pub fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// Reads a certificate chain and its private key (PEM files).
pub fn identity(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certs("certificate", cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Pem {
        what: "private key",
        path: key_path.to_owned(),
        source,
    })?;
    Ok((chain, key))
}

/// The handshake-signature half of a certificate verifier, for verifiers
/// that judge the certificate itself their own way (a pin, or a check
/// deferred until the partner is known).
#[derive(Debug, Clone)]
pub struct HandshakeSignatures {
    provider: Arc<CryptoProvider>,
}

impl HandshakeSignatures {
    pub fn new(provider: Arc<CryptoProvider>) -> HandshakeSignatures {
        HandshakeSignatures { provider }
    }

    pub fn tls12(
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

    pub fn tls13(
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

    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
