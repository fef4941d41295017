//! Signed EERP and NERP (RFC 5024 sections 5.3.13 and 5.3.14).
//!
//! The signature is a CMS SignedData with the signed fields attached as
//! `id-data`: for EERP `EERPDSN EERPDATE EERPTIME EERPDEST EERPORIG
//! EERPHSH`, for NERP `NERPDSN NERPDATE NERPTIME NERPDEST NERPORIG NERPCREA
//! NERPHSH`, "each field taken in its entirety, including any padding". The
//! fields are cut out of the command's own OFTP 2.0 encoding, so they are
//! byte for byte what goes on the wire.

use bytes::{Bytes, BytesMut};

use super::cert::{Certificate, Identity};
use super::cms::{self, CmsError};
use super::suite::{self, SuiteError};
use crate::codec::{Command, Eerp, Nerp};
use crate::session::Receipt;
use crate::value::{CipherSuite, ProtocolLevel};

/// Where the session finds the certificates to check received receipts
/// with (see [`crate::session::Config::receipt_security`]).
pub trait ReceiptSecurity: Send + Sync + std::fmt::Debug {
    /// Certificates that may sign receipts created by `creator` (EERPORIG
    /// of an EERP, NERPCREA of a NERP — the file's final recipient, which
    /// behind a clearing centre is not the session partner). Empty when
    /// none is on file: the receipt then counts as invalid if signed.
    fn receipt_signers(&self, creator: &crate::value::OdetteId) -> Vec<Certificate>;
}

/// Why a receipt cannot be signed or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The receipt's fields cannot be encoded (e.g. hash longer than 65535).
    #[error("receipt cannot be encoded: {0}")]
    Encode(String),
    /// Cipher suite unusable.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// Building or checking the CMS signature failed.
    #[error(transparent)]
    Cms(#[from] CmsError),
    /// The signature is valid but covers other field values than the
    /// receipt carries (fields altered after signing).
    #[error("the signed content does not match the receipt's fields (altered receipt)")]
    ContentMismatch,
    /// EERPHSH / NERPHSH differs from the hash of the file we sent.
    #[error("the receipt's file hash does not match the file that was sent")]
    HashMismatch,
}

/// Outcome of checking a received receipt, to be stored with the queue
/// entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptVerification {
    /// No signature (EERPSIGL / NERPSIGL 0).
    Unsigned,
    /// Signature verified with this certificate; the hash matched if one
    /// was expected.
    Valid {
        /// The partner certificate whose signature verified.
        signer: Box<Certificate>,
    },
    /// Signed, but it does not verify.
    Invalid(ReceiptError),
}

impl ReceiptVerification {
    /// Whether the receipt is signed and verified.
    pub fn is_valid(&self) -> bool {
        matches!(self, ReceiptVerification::Valid { .. })
    }
}

fn encoded(cmd: &Command) -> Result<BytesMut, ReceiptError> {
    let mut out = BytesMut::new();
    cmd.encode(ProtocolLevel::V2_0, &mut out)
        .map_err(|e| ReceiptError::Encode(e.to_string()))?;
    Ok(out)
}

fn fields(wire: &[u8], ranges: &[(usize, usize)], hash: &[u8]) -> Result<Vec<u8>, ReceiptError> {
    let mut content = Vec::with_capacity(160 + hash.len());
    for &(from, to) in ranges {
        let part = wire
            .get(from..to)
            .ok_or_else(|| ReceiptError::Encode("command shorter than its layout".into()))?;
        content.extend_from_slice(part);
    }
    content.extend_from_slice(hash);
    Ok(content)
}

/// The octets an EERP signature covers.
pub fn eerp_signed_content(eerp: &Eerp) -> Result<Vec<u8>, ReceiptError> {
    let wire = encoded(&Command::Eerp(Eerp {
        signature: Bytes::new(),
        ..eerp.clone()
    }))?;
    // EERPDSN 1..27, EERPDATE 30..38, EERPTIME 38..48, EERPDEST 56..81,
    // EERPORIG 81..106 (table of 5.3.13).
    fields(&wire, &[(1, 27), (30, 48), (56, 106)], &eerp.hash)
}

/// The octets a NERP signature covers.
pub fn nerp_signed_content(nerp: &Nerp) -> Result<Vec<u8>, ReceiptError> {
    let wire = encoded(&Command::Nerp(Nerp {
        signature: Bytes::new(),
        ..nerp.clone()
    }))?;
    // NERPDSN 1..27, NERPDATE 33..41, NERPTIME 41..51, NERPDEST 51..76,
    // NERPORIG 76..101, NERPCREA 101..126 (table of 5.3.14).
    fields(&wire, &[(1, 27), (33, 51), (51, 126)], &nerp.hash)
}

/// Sign an EERP: sets EERPHSH to `file_hash` (see
/// [`super::file::file_hash`]) and EERPSIG to the CMS signature, with the
/// hash algorithm of `suite` (the file's SFIDCIPH).
pub fn sign_eerp(
    eerp: &mut Eerp,
    file_hash: &[u8],
    signer: &Identity,
    suite: CipherSuite,
) -> Result<(), ReceiptError> {
    let (_, digest) = suite::algorithms(suite)?;
    eerp.hash = Bytes::copy_from_slice(file_hash);
    let content = eerp_signed_content(eerp)?;
    eerp.signature = cms::sign(&content, signer, digest)?.into();
    Ok(())
}

/// Sign a NERP, as [`sign_eerp`].
pub fn sign_nerp(
    nerp: &mut Nerp,
    file_hash: &[u8],
    signer: &Identity,
    suite: CipherSuite,
) -> Result<(), ReceiptError> {
    let (_, digest) = suite::algorithms(suite)?;
    nerp.hash = Bytes::copy_from_slice(file_hash);
    let content = nerp_signed_content(nerp)?;
    nerp.signature = cms::sign(&content, signer, digest)?.into();
    Ok(())
}

/// Sign either kind of receipt.
pub fn sign_receipt(
    receipt: &mut Receipt,
    file_hash: &[u8],
    signer: &Identity,
    suite: CipherSuite,
) -> Result<(), ReceiptError> {
    match receipt {
        Receipt::Eerp(e) => sign_eerp(e, file_hash, signer, suite),
        Receipt::Nerp(n) => sign_nerp(n, file_hash, signer, suite),
    }
}

/// Check a received receipt: the signature must verify with one of
/// `signers` (the partner's certificates), cover exactly the receipt's
/// fields, and — when `expected_hash` is given (the hash of the file we
/// sent, kept with the queue entry) — carry that hash.
pub fn verify_receipt(
    receipt: &Receipt,
    signers: &[Certificate],
    expected_hash: Option<&[u8]>,
) -> ReceiptVerification {
    let (signature, hash, content) = match receipt {
        Receipt::Eerp(e) => (&e.signature, &e.hash, eerp_signed_content(e)),
        Receipt::Nerp(n) => (&n.signature, &n.hash, nerp_signed_content(n)),
    };
    if signature.is_empty() {
        return ReceiptVerification::Unsigned;
    }
    let content = match content {
        Ok(c) => c,
        Err(e) => return ReceiptVerification::Invalid(e),
    };
    let verified = match cms::verify(signature, signers) {
        Ok(v) => v,
        Err(e) => return ReceiptVerification::Invalid(e.into()),
    };
    if verified.content != content {
        return ReceiptVerification::Invalid(ReceiptError::ContentMismatch);
    }
    if expected_hash.is_some_and(|h| h != &hash[..]) {
        return ReceiptVerification::Invalid(ReceiptError::HashMismatch);
    }
    ReceiptVerification::Valid {
        signer: Box::new(verified.signer),
    }
}
