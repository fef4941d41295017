//! OFTP2 security services (RFC 5024 sections 4.2, 6 and 10.2).
//!
//! | Module | Holds |
//! |---|---|
//! | [`cert`] | X.509 certificates and our key pair ([`Identity`]), chain to a CA set, validity and expiry, CRLs |
//! | [`cms`] | CMS (RFC 5652 / 3274) signed, enveloped and compressed data, both directions |
//! | [`suite_algorithms`] | what the cipher suites of section 10.2 mean: [`ContentCipher`], [`DigestAlgorithm`] |
//! | [`auth`] | secure authentication (AUCH/AURP): challenges and responses |
//! | [`receipt`] | signed EERP and NERP: the signed fields, signing, verification |
//! | [`file`](mod@file) | the file service pipeline: sign, compress, encrypt, and back; SFID fields; file hash |
//!
//! Everything here works on bytes in memory and is built on the RustCrypto
//! crates (`cms`, `x509-cert`, `der`, `rsa`, `sha1`/`sha2`, `aes`/`des`/
//! `cbc`) plus `flate2` for zlib, so no ASN.1 is written by hand and no C
//! library is linked. Interoperability with OpenSSL's `cms` command is
//! tested both ways (`tests/security_openssl.rs`).
//!
//! Nothing here fetches anything: the application (the daemons) loads
//! certificates, downloads CRLs and decides policy; this module answers
//! "is this signature good", "is this certificate revoked", and so on.

pub mod auth;
pub mod cert;
pub mod cms;
pub mod file;
pub mod receipt;

mod suite;

pub use cert::{CertError, Certificate, Crl, Identity, TrustStore};
pub use suite::{ContentCipher, DigestAlgorithm, SuiteError};

use crate::value::CipherSuite;

/// Algorithms of a cipher suite (section 10.2, and the ODETTE extended
/// list for suite `03`).
pub fn suite_algorithms(
    suite: CipherSuite,
) -> Result<(ContentCipher, DigestAlgorithm), SuiteError> {
    suite::algorithms(suite)
}
