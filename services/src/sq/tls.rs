//! TLS for outgoing sessions: rustls (ring provider), TLS 1.2 and 1.3.
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
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::partner::sha256_hex;
use crate::queue::Route;
use crate::rd::settings::TlsConfig;

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
    let provider = Arc::new(provider::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if let Some(pin) = &route.tls_pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: pin.to_ascii_lowercase(),
                provider,
            }))
    } else if let Some(ca) = &route.tls_ca_file {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| file_err("CA file", ca, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err("CA file", ca, e))?;
        if certs.is_empty() {
            return Err(file_err("CA file", ca, "no certificate in it"));
        }
        for c in certs {
            roots.add(c).map_err(|e| file_err("CA file", ca, e))?;
        }
        builder.with_root_certificates(roots)
    } else {
        return Err(TlsClientError::NoTrust(route.partner.clone()));
    };
    let config = match (&own.certificate, &own.private_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| file_err("certificate", cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_err("certificate", cert, e))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("private key", key, e))?;
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
    provider: Arc<CryptoProvider>,
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
