//! Secure authentication (RFC 5024 section 4.2.3/4.2.4, AUCH and AURP).
//!
//! Each side proves it holds the private key of the certificate its partner
//! has on file: the challenger encrypts 20 random octets to the partner's
//! certificate as CMS EnvelopedData (AUCHCHAL), the partner decrypts them
//! with its private key and sends them back (AURPRSP), the challenger
//! compares. The session ([`crate::session`]) runs the exchange; the
//! application supplies the keys through [`SecureAuthentication`].

use std::collections::HashMap;
use std::fmt;

use rand_core::{OsRng, RngCore};

use super::cert::{Certificate, Identity};
use super::cms::{self, CmsError};
use super::suite::ContentCipher;
use crate::value::{EndSessionReason, OdetteId};

/// Length of the challenge (AURPRSP is `V U(20)`).
pub const CHALLENGE_LEN: usize = 20;

/// The keys secure authentication needs, supplied by the application.
///
/// The partner's certificate comes from the partner table; the application
/// checks it (chain to the CA set, validity, CRL) before returning it, and
/// refuses with a reason otherwise — the session then ends with that ESID.
pub trait SecureAuthentication: Send + Sync + fmt::Debug {
    /// Our certificate and private key: decrypts the partner's AUCH.
    fn identity(&self) -> &Identity;

    /// The certificate of `partner` (its SSIDCODE) to encrypt our
    /// challenge to. Refuse with a reason (e.g.
    /// [`EndSessionReason::SecureAuthenticationRequirementsIncompatible`]
    /// when none is on file, [`EndSessionReason::UserCodeNotKnown`]...).
    fn partner_certificate(&self, partner: &OdetteId) -> Result<Certificate, AuthRefusal>;

    /// Cipher for our challenge; AES-256-CBC (suite 02) unless overridden.
    fn challenge_cipher(&self) -> ContentCipher {
        ContentCipher::Aes256Cbc
    }
}

/// Why the application refuses secure authentication with a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    /// The ESID reason to end the session with.
    pub reason: EndSessionReason,
    /// Text for the partner's and our logs.
    pub text: String,
}

impl AuthRefusal {
    /// A refusal with `reason` and `text`.
    pub fn new(reason: EndSessionReason, text: impl Into<String>) -> Self {
        Self {
            reason,
            text: text.into(),
        }
    }
}

/// A challenge we sent: the plain random value and its envelope.
#[derive(Clone)]
pub struct Challenge {
    plain: [u8; CHALLENGE_LEN],
    envelope: Vec<u8>,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("envelope_len", &self.envelope.len())
            .finish_non_exhaustive()
    }
}

impl Challenge {
    /// A fresh random challenge encrypted to `partner`.
    pub fn new(partner: &Certificate, cipher: ContentCipher) -> Result<Self, CmsError> {
        let mut plain = [0u8; CHALLENGE_LEN];
        OsRng.fill_bytes(&mut plain);
        let envelope = cms::encrypt(&plain, partner, cipher)?;
        Ok(Self { plain, envelope })
    }

    /// AUCHCHAL: the CMS EnvelopedData to send.
    pub fn envelope(&self) -> &[u8] {
        &self.envelope
    }

    /// Whether AURPRSP matches. Compared in constant time.
    pub fn verify(&self, response: &[u8; CHALLENGE_LEN]) -> bool {
        self.plain
            .iter()
            .zip(response)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Answer a received AUCHCHAL: decrypt it with our key. A challenge that
/// is not exactly 20 octets is refused.
pub fn respond(envelope: &[u8], ours: &Identity) -> Result<[u8; CHALLENGE_LEN], CmsError> {
    let (plain, _) = cms::decrypt(envelope, ours)?;
    plain.try_into().map_err(|p: Vec<u8>| {
        CmsError::Malformed(format!(
            "challenge is {} octets, RFC 5024 5.3.17 says 20",
            p.len()
        ))
    })
}

/// A [`SecureAuthentication`] from values in memory: our identity and a
/// map of partner certificates. Daemons usually implement the trait over
/// their partner table instead.
#[derive(Debug, Clone)]
pub struct StaticKeys {
    /// Our certificate and key.
    pub identity: Identity,
    /// Partner certificates by Odette ID.
    pub partners: HashMap<OdetteId, Certificate>,
    /// Cipher for our challenges.
    pub cipher: ContentCipher,
}

impl StaticKeys {
    /// Our identity, no partners yet, AES-256 challenges.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            partners: HashMap::new(),
            cipher: ContentCipher::Aes256Cbc,
        }
    }

    /// Add a partner certificate.
    pub fn with_partner(mut self, partner: OdetteId, cert: Certificate) -> Self {
        self.partners.insert(partner, cert);
        self
    }
}

impl super::receipt::ReceiptSecurity for StaticKeys {
    fn receipt_signers(&self, creator: &OdetteId) -> Vec<Certificate> {
        self.partners.get(creator).cloned().into_iter().collect()
    }
}

impl SecureAuthentication for StaticKeys {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn partner_certificate(&self, partner: &OdetteId) -> Result<Certificate, AuthRefusal> {
        self.partners.get(partner).cloned().ok_or_else(|| {
            AuthRefusal::new(
                EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                format!("no certificate on file for {partner}"),
            )
        })
    }

    fn challenge_cipher(&self) -> ContentCipher {
        self.cipher
    }
}
