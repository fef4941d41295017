//! The client side: outgoing OFTP sessions of `os4xsqd`.
//!
//! The partner's server certificate is trusted either through a CA file
//! configured for that partner, or by pinning its SHA-256 fingerprint
//! (common with OFTP partners that use self-signed certificates). The
//! system's web roots are deliberately not used: a public web CA vouching
//! for a host name says nothing about who the trading partner is.
//! Our own certificate (`[tls] certificate`/`private_key`) is presented as
//! client certificate when configured, for partners that require one.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::rd::TlsConfig;
use crate::partner::sha256_hex;
use crate::queue::Route;

use super::HandshakeSignatures;

/// The TLS client for a route could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("route to {0} uses TLS but has neither a CA file nor a pinned certificate; set one with `os4x route set {0} --tls-ca FILE` or `--tls-pin SHA256`")]
    NoTrust(String),
    #[error("cannot read {what} {path}: {message}")]
    File {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("{0:?} is not a valid TLS server name or IP address")]
    ServerName(String),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Pem(#[from] super::TlsError),
}

fn file_err(
    what: &'static str,
    path: &std::path::Path,
    e: impl std::fmt::Display,
) -> TlsClientError {
    TlsClientError::File {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A connector configuration and the server name for `route`.
pub fn connector(
    route: &Route,
    own: &TlsConfig,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsClientError> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)?;
    let builder = if let Some(pin) = &route.tls_pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: pin.to_ascii_lowercase(),
                signatures: HandshakeSignatures::new(provider),
            }))
    } else if let Some(ca) = &route.tls_ca_file {
        let mut roots = RootCertStore::empty();
        let certs = super::certs("CA file", ca)?;
        for c in certs {
            roots.add(c).map_err(|e| file_err("CA file", ca, e))?;
        }
        builder.with_root_certificates(roots)
    } else {
        return Err(TlsClientError::NoTrust(route.partner.clone()));
    };
    let config = match (&own.certificate, &own.private_key) {
        (Some(cert), Some(key)) => {
            let (chain, key) = super::identity(cert, key)?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(route.host.clone())
        .map_err(|_| TlsClientError::ServerName(route.host.clone()))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// Trusts exactly one server certificate, by fingerprint; the handshake
/// signature is still verified, so the peer must hold its key.
#[derive(Debug)]
struct PinnedCert {
    sha256: String,
    signatures: HandshakeSignatures,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if sha256_hex(end_entity) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate SHA-256 {} does not match the pinned {}",
                sha256_hex(end_entity),
                self.sha256
            )))
        }
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
