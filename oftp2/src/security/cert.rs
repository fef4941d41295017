//! X.509 certificates, our own key pair, trust anchors and CRLs.
//!
//! The daemons keep partner certificates, our signing/encryption key pairs
//! and CA certificates in files; this module parses them (PEM or DER),
//! checks a certificate's chain to a configured CA set, answers validity and
//! expiry questions (for the 30-day warning) and checks revocation against
//! CRLs the daemon downloaded. All times are passed in: no clock is read
//! here, so tests decide what "now" is.

use std::fmt;
use std::time::{Duration, SystemTime};

use der::{Decode, DecodePem, Encode};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::crl::CertificateList;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// Longest chain followed before giving up (loops, absurd hierarchies).
const MAX_CHAIN: usize = 8;

/// What is wrong with a certificate, key or CRL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not a certificate / key / CRL in PEM or DER.
    #[error("cannot parse {what}: {detail}; expected PEM or DER")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The key is not RSA (section 10.2 suites are RSA only).
    #[error("the public key of {0} is not an RSA key; OFTP2 cipher suites 01-07 need RSA")]
    NotRsa(String),
    /// Private key and certificate do not belong together.
    #[error("the private key does not match the certificate {0}; configure the key pair that belongs to it")]
    KeyMismatch(String),
    /// No CA of the trust store issued this certificate (chain incomplete).
    #[error("no configured CA certificate issued {0}; add the issuing CA (and intermediates) to the CA set")]
    UnknownIssuer(String),
    /// A signature in the chain (or on a CRL) is wrong.
    #[error("signature of {0} does not verify with its issuer's key")]
    BadSignature(String),
    /// Signature algorithm this implementation does not verify.
    #[error(
        "{0} is signed with an unsupported algorithm {1} (RSA with SHA-1/224/256/384/512 are)"
    )]
    UnsupportedAlgorithm(String, String),
    /// Outside notBefore..notAfter.
    #[error("certificate {subject} is not valid at this time (valid {not_before:?} .. {not_after:?}); renew it")]
    Expired {
        /// Subject of the certificate.
        subject: String,
        /// Start of validity.
        not_before: SystemTime,
        /// End of validity.
        not_after: SystemTime,
    },
    /// Listed on its issuer's CRL.
    #[error(
        "certificate {0} is revoked by its issuer's CRL; obtain a new certificate from the partner"
    )]
    Revoked(String),
    /// The chain is longer than we follow, or loops.
    #[error("certificate chain of {0} is too long or loops")]
    ChainTooLong(String),
}

fn parse_err(what: &'static str, e: impl fmt::Display) -> CertError {
    CertError::Parse {
        what,
        detail: e.to_string(),
    }
}

/// An X.509 certificate with its RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    inner: x509_cert::Certificate,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("issuer", &self.issuer())
            .field("serial", &self.serial_hex())
            .finish()
    }
}

impl Certificate {
    /// Parse one certificate from PEM (`-----BEGIN CERTIFICATE-----`) or DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CertError> {
        let inner = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            x509_cert::Certificate::from_pem(bytes).map_err(|e| parse_err("certificate", e))?
        } else {
            x509_cert::Certificate::from_der(bytes).map_err(|e| parse_err("certificate", e))?
        };
        Ok(Self { inner })
    }

    /// Parse every certificate of a PEM bundle (a CA file).
    pub fn all_from_pem(bytes: &[u8]) -> Result<Vec<Self>, CertError> {
        let certs = x509_cert::Certificate::load_pem_chain(bytes)
            .map_err(|e| parse_err("certificate bundle", e))?;
        Ok(certs.into_iter().map(|inner| Self { inner }).collect())
    }

    /// From the `x509-cert` type.
    pub fn from_x509(inner: x509_cert::Certificate) -> Self {
        Self { inner }
    }

    /// The `x509-cert` type (for anything not wrapped here).
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.inner
    }

    /// DER encoding.
    pub fn to_der(&self) -> Vec<u8> {
        // Encoding a decoded certificate cannot fail short of memory
        // exhaustion; an empty vector would fail every later check loudly.
        self.inner.to_der().unwrap_or_default()
    }

    /// Subject distinguished name, RFC 4514 string.
    pub fn subject(&self) -> String {
        self.inner.tbs_certificate.subject.to_string()
    }

    /// Issuer distinguished name, RFC 4514 string.
    pub fn issuer(&self) -> String {
        self.inner.tbs_certificate.issuer.to_string()
    }

    /// Serial number as lowercase hex (as `openssl x509 -serial` shows it).
    pub fn serial_hex(&self) -> String {
        self.inner
            .tbs_certificate
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Start of validity (notBefore).
    pub fn not_before(&self) -> SystemTime {
        self.inner
            .tbs_certificate
            .validity
            .not_before
            .to_system_time()
    }

    /// End of validity (notAfter).
    pub fn not_after(&self) -> SystemTime {
        self.inner
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
    }

    /// Whether `now` lies within notBefore..=notAfter.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before() <= now && now <= self.not_after()
    }

    /// Time left until notAfter (`None` once expired).
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.not_after().duration_since(now).ok()
    }

    /// Whether the certificate is expired or expires within `window` of
    /// `now` — `os4x-pidctl check` warns with `window` = 30 days.
    pub fn expires_within(&self, now: SystemTime, window: Duration) -> bool {
        self.remaining(now).map_or(true, |left| left <= window)
    }

    /// Error unless valid at `now`.
    pub fn check_validity(&self, now: SystemTime) -> Result<(), CertError> {
        if self.is_valid_at(now) {
            Ok(())
        } else {
            Err(CertError::Expired {
                subject: self.subject(),
                not_before: self.not_before(),
                not_after: self.not_after(),
            })
        }
    }

    /// The RSA public key.
    pub fn rsa_public_key(&self) -> Result<RsaPublicKey, CertError> {
        rsa_key_of(&self.inner.tbs_certificate.subject_public_key_info)
            .map_err(|_| CertError::NotRsa(self.subject()))
    }

    /// CRL distribution point URIs (for the daemon's CRL download).
    pub fn crl_distribution_points(&self) -> Vec<String> {
        use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
        use x509_cert::ext::pkix::CrlDistributionPoints;
        let Ok(Some((_, points))) = self.inner.tbs_certificate.get::<CrlDistributionPoints>()
        else {
            return Vec::new();
        };
        let mut uris = Vec::new();
        for point in points.0 {
            if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
                for name in names {
                    if let GeneralName::UniformResourceIdentifier(uri) = name {
                        uris.push(uri.to_string());
                    }
                }
            }
        }
        uris
    }

    /// Whether `issuer` signed this certificate (names match and the
    /// signature verifies with the issuer's key).
    pub fn is_issued_by(&self, issuer: &Certificate) -> Result<bool, CertError> {
        if self.inner.tbs_certificate.issuer != issuer.inner.tbs_certificate.subject {
            return Ok(false);
        }
        let tbs = self
            .inner
            .tbs_certificate
            .to_der()
            .map_err(|e| parse_err("certificate", e))?;
        let ok = verify_rsa_signature(
            &issuer.inner.tbs_certificate.subject_public_key_info,
            &self.inner.signature_algorithm.oid,
            &tbs,
            self.inner.signature.as_bytes(),
        )
        .map_err(|alg| CertError::UnsupportedAlgorithm(self.subject(), alg))?;
        Ok(ok)
    }
}

pub(crate) fn rsa_key_of(spki: &SubjectPublicKeyInfoOwned) -> Result<RsaPublicKey, ()> {
    let der = spki.to_der().map_err(|_| ())?;
    RsaPublicKey::from_public_key_der(&der).map_err(|_| ())
}

/// Verify an RSA PKCS#1 v1.5 signature. `Err(algorithm)` if the algorithm
/// is not one we verify; `Ok(false)` if the signature is wrong.
pub(crate) fn verify_rsa_signature(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: &const_oid::ObjectIdentifier,
    message: &[u8],
    signature: Option<&[u8]>,
) -> Result<bool, String> {
    use const_oid::db::rfc5912 as oids;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    let Ok(key) = rsa_key_of(spki) else {
        return Ok(false);
    };
    let Some(sig) = signature.and_then(|s| Signature::try_from(s).ok()) else {
        return Ok(false);
    };
    let ok = match *algorithm {
        oids::SHA_1_WITH_RSA_ENCRYPTION => VerifyingKey::<sha1::Sha1>::new(key)
            .verify(message, &sig)
            .is_ok(),
        oids::SHA_224_WITH_RSA_ENCRYPTION => VerifyingKey::<sha2::Sha224>::new(key)
            .verify(message, &sig)
            .is_ok(),
        oids::SHA_256_WITH_RSA_ENCRYPTION => VerifyingKey::<sha2::Sha256>::new(key)
            .verify(message, &sig)
            .is_ok(),
        oids::SHA_384_WITH_RSA_ENCRYPTION => VerifyingKey::<sha2::Sha384>::new(key)
            .verify(message, &sig)
            .is_ok(),
        oids::SHA_512_WITH_RSA_ENCRYPTION => VerifyingKey::<sha2::Sha512>::new(key)
            .verify(message, &sig)
            .is_ok(),
        super::cms::ID_RSASSA_PKCS1_V1_5_WITH_SHA3_512 => {
            use sha3::Digest;
            let hash = sha3::Sha3_512::digest(message);
            key.verify(
                rsa::Pkcs1v15Sign::new::<sha3::Sha3_512>(),
                &hash,
                signature.unwrap_or_default(),
            )
            .is_ok()
        }
        other => return Err(other.to_string()),
    };
    Ok(ok)
}

/// Our certificate and its RSA private key: signs files and receipts,
/// decrypts files and authentication challenges addressed to us.
#[derive(Clone)]
pub struct Identity {
    certificate: Certificate,
    key: RsaPrivateKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Pair a certificate with its private key; refuses a key that does
    /// not belong to the certificate.
    pub fn new(certificate: Certificate, key: RsaPrivateKey) -> Result<Self, CertError> {
        if RsaPublicKey::from(&key) != certificate.rsa_public_key()? {
            return Err(CertError::KeyMismatch(certificate.subject()));
        }
        Ok(Self { certificate, key })
    }

    /// From a certificate (PEM/DER) and an unencrypted private key in
    /// PKCS#8 or PKCS#1, PEM or DER.
    pub fn from_pem_or_der(certificate: &[u8], key: &[u8]) -> Result<Self, CertError> {
        let certificate = Certificate::from_pem_or_der(certificate)?;
        Self::new(certificate, parse_private_key(key)?)
    }

    /// Our certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Our private key.
    pub fn private_key(&self) -> &RsaPrivateKey {
        &self.key
    }
}

/// Parse an unencrypted RSA private key: PKCS#8 or PKCS#1, PEM or DER.
pub fn parse_private_key(bytes: &[u8]) -> Result<RsaPrivateKey, CertError> {
    let err = |e: &dyn fmt::Display| parse_err("private key", e);
    match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN RSA PRIVATE KEY") => {
            RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| err(&e))
        }
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
            RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| err(&e))
        }
        _ => RsaPrivateKey::from_pkcs8_der(bytes)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(bytes))
            .map_err(|e| err(&e)),
    }
}

/// A certificate revocation list, checked against its issuer.
#[derive(Clone, PartialEq, Eq)]
pub struct Crl {
    inner: CertificateList,
}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crl")
            .field("issuer", &self.inner.tbs_cert_list.issuer.to_string())
            .field("revoked", &self.revoked_count())
            .finish()
    }
}

impl Crl {
    /// Parse a CRL from PEM (`-----BEGIN X509 CRL-----`) or DER (what a
    /// CRL distribution point usually serves).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CertError> {
        let inner = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            {
                let (label, der) = der::pem::decode_vec(bytes).map_err(|e| parse_err("CRL", e))?;
                if label != "X509 CRL" {
                    return Err(parse_err("CRL", format!("PEM label {label}, not X509 CRL")));
                }
                CertificateList::from_der(&der).map_err(|e| parse_err("CRL", e))?
            }
        } else {
            CertificateList::from_der(bytes).map_err(|e| parse_err("CRL", e))?
        };
        Ok(Self { inner })
    }

    /// Issuer distinguished name.
    pub fn issuer(&self) -> String {
        self.inner.tbs_cert_list.issuer.to_string()
    }

    /// thisUpdate.
    pub fn this_update(&self) -> SystemTime {
        self.inner.tbs_cert_list.this_update.to_system_time()
    }

    /// nextUpdate, if given: refresh the CRL before then.
    pub fn next_update(&self) -> Option<SystemTime> {
        self.inner
            .tbs_cert_list
            .next_update
            .map(|t| t.to_system_time())
    }

    /// Number of revoked entries.
    pub fn revoked_count(&self) -> usize {
        self.inner
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .map_or(0, Vec::len)
    }

    /// Whether `issuer` signed this CRL.
    pub fn verify(&self, issuer: &Certificate) -> Result<(), CertError> {
        if self.inner.tbs_cert_list.issuer != issuer.inner.tbs_certificate.subject {
            return Err(CertError::UnknownIssuer(format!(
                "CRL of {}",
                self.issuer()
            )));
        }
        let tbs = self
            .inner
            .tbs_cert_list
            .to_der()
            .map_err(|e| parse_err("CRL", e))?;
        let ok = verify_rsa_signature(
            &issuer.inner.tbs_certificate.subject_public_key_info,
            &self.inner.signature_algorithm.oid,
            &tbs,
            self.inner.signature.as_bytes(),
        )
        .map_err(|alg| CertError::UnsupportedAlgorithm(format!("CRL of {}", self.issuer()), alg))?;
        if ok {
            Ok(())
        } else {
            Err(CertError::BadSignature(format!("CRL of {}", self.issuer())))
        }
    }

    /// Whether this CRL lists `cert` (same issuer, same serial number).
    pub fn is_revoked(&self, cert: &Certificate) -> bool {
        let tbs = &cert.inner.tbs_certificate;
        tbs.issuer == self.inner.tbs_cert_list.issuer
            && self
                .inner
                .tbs_cert_list
                .revoked_certificates
                .iter()
                .flatten()
                .any(|r| r.serial_number == tbs.serial_number)
    }
}

/// A set of trusted CA certificates (roots and intermediates) and the CRLs
/// the application loaded for them.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    cas: Vec<Certificate>,
    crls: Vec<Crl>,
}

impl TrustStore {
    /// An empty store: nothing chains.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a CA certificate.
    pub fn add_ca(&mut self, ca: Certificate) {
        self.cas.push(ca);
    }

    /// The CA certificates.
    pub fn cas(&self) -> &[Certificate] {
        &self.cas
    }

    /// Add (or replace: same issuer) a CRL after checking its signature
    /// against a CA of this store. A CRL whose issuer is unknown or whose
    /// signature is bad is refused, so a forged CRL cannot un-revoke.
    pub fn add_crl(&mut self, crl: Crl) -> Result<(), CertError> {
        let issuer = self
            .cas
            .iter()
            .find(|ca| ca.inner.tbs_certificate.subject == crl.inner.tbs_cert_list.issuer)
            .ok_or_else(|| CertError::UnknownIssuer(format!("CRL of {}", crl.issuer())))?;
        crl.verify(issuer)?;
        self.crls
            .retain(|c| c.inner.tbs_cert_list.issuer != crl.inner.tbs_cert_list.issuer);
        self.crls.push(crl);
        Ok(())
    }

    /// The loaded CRLs.
    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }

    /// Check `cert` for use at `now`: valid, chains (signature by
    /// signature) to a CA of this store that is itself valid, and neither
    /// it nor any CA on the way is revoked by a loaded CRL. Returns the
    /// chain from `cert` to the trust anchor.
    ///
    /// A CA without a loaded CRL is not treated as revoking nothing by
    /// mistake: that is the application's policy (it knows whether a CRL
    /// download failed); see [`TrustStore::has_crl_for`].
    pub fn verify(
        &self,
        cert: &Certificate,
        now: SystemTime,
    ) -> Result<Vec<Certificate>, CertError> {
        let mut chain = vec![cert.clone()];
        let mut current = cert.clone();
        for _ in 0..MAX_CHAIN {
            current.check_validity(now)?;
            if self.crls.iter().any(|crl| crl.is_revoked(&current)) {
                return Err(CertError::Revoked(current.subject()));
            }
            if self.cas.contains(&current) {
                // Reached a configured CA: the trust anchor.
                return Ok(chain);
            }
            let mut issuer = None;
            for ca in &self.cas {
                if current.is_issued_by(ca)? {
                    issuer = Some(ca.clone());
                    break;
                }
            }
            let Some(issuer) = issuer else {
                let named = self.cas.iter().any(|ca| {
                    ca.inner.tbs_certificate.subject == current.inner.tbs_certificate.issuer
                });
                return Err(if named {
                    CertError::BadSignature(current.subject())
                } else {
                    CertError::UnknownIssuer(current.subject())
                });
            };
            chain.push(issuer.clone());
            current = issuer;
        }
        Err(CertError::ChainTooLong(cert.subject()))
    }

    /// Whether a CRL of `cert`'s issuer is loaded.
    pub fn has_crl_for(&self, cert: &Certificate) -> bool {
        self.crls
            .iter()
            .any(|c| c.inner.tbs_cert_list.issuer == cert.inner.tbs_certificate.issuer)
    }
}
