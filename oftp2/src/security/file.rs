//! File services (RFC 5024 section 6): sign, compress, encrypt — in this
//! order, any of them optional — and the reverse on receipt, with the SFID
//! fields (SFIDSEC, SFIDCIPH, SFIDCOMP, SFIDENV, SFIDSIGN, SFIDOSIZ) filled
//! on the way out and honoured on the way in.
//!
//! Section 6.3 recommends doing this outside the session (a large file
//! takes long to encrypt); [`protect`] and [`unprotect`] work on whole
//! files in memory for that, and [`UnwrappingFile`] does it in-session at
//! EFID for receivers that prefer that, answering EFNA 21/22/23 when the
//! file does not verify.
//!
//! Record structure (section 6.5): enveloping makes every file a U file
//! in transit, and SFIDFMT/SFIDLRECL keep the original format. A V file
//! is enveloped in its local form, which already carries the 2-octet
//! record length indicators the RFC requires before signing; an F file
//! is its records concatenated, the record length coming from SFIDLRECL.
//! After unwrapping, the original structure is checked against the SFID,
//! so a file whose records do not add up is rejected, not delivered.

use std::io::Write;
use std::sync::mpsc;

use super::cert::{Certificate, Identity};
use super::cms::{self, CmsError};
use super::suite::{self, ContentCipher, SuiteError};
use crate::codec::Sfid;
use crate::record::{self, Counts, Layout, MAX_LOCAL_VARIABLE_RECORD_LEN};
use crate::session::{IncomingFile, Refusal};
use crate::value::{
    CipherSuite, EndFileRefusal, FileCompression, FileEnvelope, NerpReason, RecordFormat,
    SecurityLevel, StartFileRefusal,
};

/// What to do to an outgoing file (per-partner policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePolicy {
    /// Sign with our key (SignedData).
    pub sign: bool,
    /// Compress (CompressedData, zlib).
    pub compress: bool,
    /// Encrypt to the partner's certificate (EnvelopedData).
    pub encrypt: bool,
    /// Cipher suite (SFIDCIPH): algorithms for signing and encryption, and
    /// for a signed EERP.
    pub suite: CipherSuite,
    /// Ask for a signed EERP (SFIDSIGN).
    pub signed_eerp: bool,
}

impl FilePolicy {
    /// No services: the file goes as it is.
    pub const PLAIN: FilePolicy = FilePolicy {
        sign: false,
        compress: false,
        encrypt: false,
        suite: CipherSuite::None,
        signed_eerp: false,
    };

    /// Whether any service wraps the file in CMS.
    pub fn enveloped(&self) -> bool {
        self.sign || self.compress || self.encrypt
    }
}

/// A file-service failure, with the reason codes to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileServiceError {
    /// Cipher suite unusable.
    #[error(transparent)]
    Suite(#[from] SuiteError),
    /// A key or certificate the policy needs was not given.
    #[error("{0} is needed for this file service but not configured")]
    MissingKey(&'static str),
    /// The (unwrapped or to-be-wrapped) data does not have the record
    /// structure its SFIDFMT/SFIDLRECL announce (section 6.5).
    #[error("record structure of the {format} file does not match SFIDFMT/SFIDLRECL: {detail}")]
    RecordStructure {
        /// SFIDFMT of the original file.
        format: RecordFormat,
        /// What is wrong, for the log and the NERP text.
        detail: String,
    },
    /// Building a CMS layer failed.
    #[error("cannot build the CMS envelope: {0}")]
    Build(CmsError),
    /// SFIDENV/SFIDCOMP announce something we do not handle.
    #[error("file announces {0}, which this implementation does not support")]
    Unsupported(String),
    /// The signature is missing, by someone else, or does not verify.
    #[error("file signature invalid: {0}")]
    Signature(CmsError),
    /// Decryption failed.
    #[error("file decryption failed: {0}")]
    Decryption(CmsError),
    /// Decompression failed.
    #[error("file decompression failed: {0}")]
    Decompression(CmsError),
}

impl FileServiceError {
    /// EFNA reason when unwrapping at EFID (section 5.3.10 codes 21-23).
    pub fn efna_reason(&self) -> EndFileRefusal {
        match self {
            FileServiceError::Signature(_) => EndFileRefusal::InvalidFileSignature,
            FileServiceError::Decryption(_) | FileServiceError::MissingKey(_) => {
                EndFileRefusal::FileDecryptionFailure
            }
            FileServiceError::Decompression(_) => EndFileRefusal::FileDecompressionFailure,
            FileServiceError::Suite(_) => EndFileRefusal::CipherSuiteNotSupported,
            _ => EndFileRefusal::Unspecified,
        }
    }

    /// NERP reason when unwrapping after the session (section 5.3.14
    /// codes 31-34).
    pub fn nerp_reason(&self) -> NerpReason {
        match self {
            FileServiceError::Signature(_) => NerpReason::FileSignatureNotValid,
            FileServiceError::Decryption(_) | FileServiceError::MissingKey(_) => {
                NerpReason::FileDecryptionFailed
            }
            FileServiceError::Decompression(_) => NerpReason::FileDecompressionFailed,
            _ => NerpReason::FileProcessingFailed,
        }
    }
}

/// An outgoing file after the services, with the SFID fields to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The octets to transmit (the virtual file).
    pub data: Vec<u8>,
    /// Octets of the original file.
    pub original_len: u64,
    /// SFIDSEC.
    pub security: SecurityLevel,
    /// SFIDCIPH.
    pub cipher_suite: CipherSuite,
    /// SFIDCOMP.
    pub compression: FileCompression,
    /// SFIDENV.
    pub envelope: FileEnvelope,
    /// SFIDSIGN.
    pub signed_eerp: bool,
}

fn blocks(octets: u64) -> u64 {
    octets.div_ceil(1024)
}

impl Protected {
    /// Fill the SFID's security fields and sizes (SFIDFSIZ is the
    /// transmitted size, SFIDOSIZ the original, both in 1K blocks).
    pub fn apply_to(&self, sfid: &mut Sfid) {
        sfid.security = self.security;
        sfid.cipher_suite = self.cipher_suite;
        sfid.compression = self.compression;
        sfid.envelope = self.envelope;
        sfid.signed_eerp = self.signed_eerp;
        sfid.file_size = blocks(self.data.len() as u64);
        sfid.original_file_size = blocks(self.original_len);
    }
}

/// Apply `policy` to `plain`: sign with `ours`, compress, encrypt to
/// `partner`.
pub fn protect(
    plain: &[u8],
    format: RecordFormat,
    policy: &FilePolicy,
    ours: Option<&Identity>,
    partner: Option<&Certificate>,
) -> Result<Protected, FileServiceError> {
    let needs_suite = policy.sign || policy.encrypt || policy.signed_eerp;
    let algorithms = if needs_suite {
        Some(suite::algorithms(policy.suite)?)
    } else {
        None
    };
    if policy.enveloped() && format == RecordFormat::Variable {
        // The section 6.5 length indicators must chain to the end of the
        // file, or the receiver could not rebuild the records.
        check_record_structure(plain, format, MAX_LOCAL_VARIABLE_RECORD_LEN)?;
    }
    let mut data = plain.to_vec();
    if let (true, Some((_, digest))) = (policy.sign, algorithms) {
        let ours = ours.ok_or(FileServiceError::MissingKey("our signing key"))?;
        data = cms::sign(&data, ours, digest).map_err(FileServiceError::Build)?;
    }
    if policy.compress {
        data = cms::compress(&data).map_err(FileServiceError::Build)?;
    }
    if let (true, Some((cipher, _))) = (policy.encrypt, algorithms) {
        let partner = partner.ok_or(FileServiceError::MissingKey("the partner's certificate"))?;
        data = cms::encrypt(&data, partner, cipher).map_err(FileServiceError::Build)?;
    }
    let security = match (policy.encrypt, policy.sign) {
        (false, false) => SecurityLevel::None,
        (true, false) => SecurityLevel::Encrypted,
        (false, true) => SecurityLevel::Signed,
        (true, true) => SecurityLevel::EncryptedAndSigned,
    };
    Ok(Protected {
        data,
        original_len: plain.len() as u64,
        security,
        cipher_suite: if needs_suite {
            policy.suite
        } else {
            CipherSuite::None
        },
        compression: if policy.compress {
            FileCompression::Zlib
        } else {
            FileCompression::None
        },
        envelope: if policy.enveloped() {
            FileEnvelope::Cms
        } else {
            FileEnvelope::None
        },
        signed_eerp: policy.signed_eerp,
    })
}

/// Checks that `data` holds whole records of `format`: for F a multiple
/// of `max_record_len` (SFIDLRECL), for V length indicators (section 6.5)
/// that chain exactly to the end, none above SFIDLRECL. U and T have no
/// structure to check.
///
/// Section 5.3.3 allows SFIDLRECL up to 65536 for an enveloped V file; the
/// 2-octet indicator cannot exceed 65535, so larger values are clamped.
pub fn check_record_structure(
    data: &[u8],
    format: RecordFormat,
    max_record_len: u32,
) -> Result<(), FileServiceError> {
    let max_record_len = match format {
        RecordFormat::Unstructured | RecordFormat::Text => return Ok(()),
        RecordFormat::Variable if max_record_len == 0 => MAX_LOCAL_VARIABLE_RECORD_LEN,
        RecordFormat::Variable => max_record_len.min(MAX_LOCAL_VARIABLE_RECORD_LEN),
        RecordFormat::Fixed => max_record_len,
    };
    let structure = |detail: String| FileServiceError::RecordStructure { format, detail };
    let layout = Layout::new(format, max_record_len).map_err(|e| structure(e.to_string()))?;
    record::inspect(layout, &mut std::io::Cursor::new(data))
        .map(drop)
        .map_err(|e| structure(e.to_string()))
}

/// An incoming file after the services were undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprotected {
    /// The original file.
    pub data: Vec<u8>,
    /// Whose signature verified, if the file was signed.
    pub signer: Option<Certificate>,
    /// The cipher the file was encrypted with, if it was.
    pub cipher: Option<ContentCipher>,
}

/// Undo the services the SFID announces, in reverse order: decrypt with
/// `ours`, decompress, verify the signature against `signers` (the
/// partner's certificates). Exactly the announced layers are expected; a
/// file whose envelope disagrees with its SFID is refused.
pub fn unprotect(
    data: &[u8],
    sfid: &Sfid,
    ours: Option<&Identity>,
    signers: &[Certificate],
) -> Result<Unprotected, FileServiceError> {
    let encrypted = matches!(
        sfid.security,
        SecurityLevel::Encrypted | SecurityLevel::EncryptedAndSigned
    );
    let signed = matches!(
        sfid.security,
        SecurityLevel::Signed | SecurityLevel::EncryptedAndSigned
    );
    let compressed = match sfid.compression {
        FileCompression::None => false,
        FileCompression::Zlib => true,
        other @ FileCompression::Other(_) => {
            return Err(FileServiceError::Unsupported(format!(
                "compression {}",
                other.code()
            )))
        }
    };
    match sfid.envelope {
        FileEnvelope::None if !(encrypted || signed || compressed) => {
            return Ok(Unprotected {
                data: data.to_vec(),
                signer: None,
                cipher: None,
            })
        }
        FileEnvelope::Cms => {}
        other => {
            return Err(FileServiceError::Unsupported(format!(
                "envelope format {} with security level {:02} and compression {}",
                other.code(),
                sfid.security.code(),
                sfid.compression.code()
            )))
        }
    }
    if encrypted || signed {
        suite::algorithms(sfid.cipher_suite)?;
    }
    let mut data = data.to_vec();
    let mut cipher = None;
    if encrypted {
        let ours = ours.ok_or(FileServiceError::MissingKey("our decryption key"))?;
        let (plain, used) = cms::decrypt(&data, ours).map_err(FileServiceError::Decryption)?;
        data = plain;
        cipher = Some(used);
    }
    if compressed {
        data = cms::decompress_limited(&data, decompression_limit(sfid))
            .map_err(FileServiceError::Decompression)?;
    }
    let mut signer = None;
    if signed {
        let verified = cms::verify(&data, signers).map_err(FileServiceError::Signature)?;
        data = verified.content;
        signer = Some(verified.signer);
    }
    check_record_structure(&data, sfid.format, sfid.max_record_size)?;
    Ok(Unprotected {
        data,
        signer,
        cipher,
    })
}

/// EERPHSH / NERPHSH: hash of the transmitted virtual file (not the
/// original), with the hash algorithm of the file's cipher suite.
pub fn file_hash(transmitted: &[u8], suite: CipherSuite) -> Result<Vec<u8>, SuiteError> {
    let (_, digest) = suite::algorithms(suite)?;
    Ok(digest.digest(transmitted))
}

/// [`file_hash`] of a transmitted file read from `reader` in constant
/// memory. The outer error is the reader's.
pub fn file_hash_reader(
    reader: impl std::io::Read,
    suite: CipherSuite,
) -> std::io::Result<Result<Vec<u8>, SuiteError>> {
    let digest = match suite::algorithms(suite) {
        Ok((_, d)) => d,
        Err(e) => return Ok(Err(e)),
    };
    digest.digest_reader(reader).map(Ok)
}

/// Slack over SFIDOSIZ allowed when decompressing: the size is counted in
/// 1K blocks, and a signed-then-compressed file decompresses to the
/// SignedData around the original (signature, certificates).
pub const DECOMPRESSION_SLACK: u64 = 1 << 20;

/// The most octets a compressed file of `sfid` may decompress to: the
/// announced original size (SFIDOSIZ) plus 1/8 and [`DECOMPRESSION_SLACK`].
/// An SFIDOSIZ of 0 (some implementations leave it empty) falls back to
/// zlib's largest ratio, 1032:1, over the transmitted size (SFIDFSIZ);
/// never more than [`cms::MAX_DECOMPRESSED`]. Past the limit the
/// decompression stops (a zlib bomb costs at most this much memory).
pub fn decompression_limit(sfid: &Sfid) -> u64 {
    let announced = if sfid.original_file_size > 0 {
        sfid.original_file_size
    } else {
        sfid.file_size.max(1).saturating_mul(1032)
    };
    let bytes = announced.saturating_mul(1024);
    bytes
        .saturating_add(bytes / 8)
        .saturating_add(DECOMPRESSION_SLACK)
        .min(cms::MAX_DECOMPRESSED)
}

/// What a receiver accepts (per-partner policy), checked against an SFID
/// before answering SFPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivePolicy {
    /// Refuse unsigned files (SFNA 20).
    pub require_signed: bool,
    /// Refuse unencrypted files (SFNA 17).
    pub require_encrypted: bool,
    /// Refuse signed files (SFNA 19).
    pub allow_signed: bool,
    /// Refuse encrypted files (SFNA 16).
    pub allow_encrypted: bool,
    /// Refuse compressed files (SFNA 18).
    pub allow_compression: bool,
}

impl Default for ReceivePolicy {
    /// Accept everything this implementation can undo, require nothing.
    fn default() -> Self {
        Self {
            require_signed: false,
            require_encrypted: false,
            allow_signed: true,
            allow_encrypted: true,
            allow_compression: true,
        }
    }
}

/// Check an offered file's security fields against `policy` and what this
/// implementation supports; the refusal carries the SFNA reason.
pub fn check_offer(sfid: &Sfid, policy: &ReceivePolicy) -> Result<(), Refusal<StartFileRefusal>> {
    let encrypted = matches!(
        sfid.security,
        SecurityLevel::Encrypted | SecurityLevel::EncryptedAndSigned
    );
    let signed = matches!(
        sfid.security,
        SecurityLevel::Signed | SecurityLevel::EncryptedAndSigned
    );
    let refuse = |reason, text: &str| Err(Refusal::new(reason).with_text(text));
    if (encrypted || signed || sfid.signed_eerp) && suite::algorithms(sfid.cipher_suite).is_err() {
        return refuse(
            StartFileRefusal::CipherSuiteNotSupported,
            "cipher suite not supported",
        );
    }
    if encrypted && !policy.allow_encrypted {
        return refuse(
            StartFileRefusal::EncryptedFileNotAllowed,
            "encrypted files not accepted",
        );
    }
    if !encrypted && policy.require_encrypted {
        return refuse(
            StartFileRefusal::UnencryptedFileNotAllowed,
            "files must be encrypted",
        );
    }
    if signed && !policy.allow_signed {
        return refuse(
            StartFileRefusal::SignedFileNotAllowed,
            "signed files not accepted",
        );
    }
    if !signed && policy.require_signed {
        return refuse(
            StartFileRefusal::UnsignedFileNotAllowed,
            "files must be signed",
        );
    }
    match sfid.compression {
        FileCompression::None => {}
        FileCompression::Zlib if policy.allow_compression => {}
        _ => {
            return refuse(
                StartFileRefusal::CompressionNotAllowed,
                "compression not accepted",
            )
        }
    }
    if !matches!(sfid.envelope, FileEnvelope::None | FileEnvelope::Cms) {
        return refuse(StartFileRefusal::Unspecified, "unknown envelope format");
    }
    Ok(())
}

/// What [`UnwrappingFile`] found, reported when the file is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapReport {
    /// Hash of the transmitted file (for a signed EERP), if the suite
    /// allows one.
    pub transmitted_hash: Option<Vec<u8>>,
    /// Size of the original file in octets.
    pub original_len: u64,
    /// Whose signature verified.
    pub signer: Option<Certificate>,
    /// The unwrap result: `Ok` or the failure that was answered with EFNA.
    pub result: Result<(), FileServiceError>,
}

/// An [`IncomingFile`] that collects the transmitted (enveloped) file,
/// and at EFID undoes the services the SFID announced before handing the
/// original to `inner`. A file that does not verify is refused with EFNA
/// 21/22/23 and `inner` never sees a byte of it.
pub struct UnwrappingFile {
    inner: Box<dyn IncomingFile>,
    sfid: Sfid,
    ours: Option<Identity>,
    signers: Vec<Certificate>,
    buffer: Vec<u8>,
    report: Option<mpsc::Sender<UnwrapReport>>,
}

impl std::fmt::Debug for UnwrappingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwrappingFile")
            .field("dataset", &self.sfid.dataset_name.as_str())
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl UnwrappingFile {
    /// Wrap `inner` for the file `sfid` announces.
    pub fn new(
        inner: Box<dyn IncomingFile>,
        sfid: &Sfid,
        ours: Option<Identity>,
        signers: Vec<Certificate>,
    ) -> Self {
        Self {
            inner,
            sfid: sfid.clone(),
            ours,
            signers,
            buffer: Vec::new(),
            report: None,
        }
    }

    /// Send an [`UnwrapReport`] here at EFID.
    pub fn with_report(mut self, tx: mpsc::Sender<UnwrapReport>) -> Self {
        self.report = Some(tx);
        self
    }
}

impl Write for UnwrappingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl IncomingFile for UnwrappingFile {
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        let transmitted_hash = file_hash(&self.buffer, self.sfid.cipher_suite).ok();
        let outcome = unprotect(&self.buffer, &self.sfid, self.ours.as_ref(), &self.signers);
        let (result, signer, original_len) = match outcome {
            Ok(plain) => {
                let len = plain.data.len() as u64;
                let written = self
                    .inner
                    .write_all(&plain.data)
                    .and_then(|()| self.inner.flush());
                if let Err(e) = written {
                    self.inner.abort();
                    return Err(Refusal::new(EndFileRefusal::AccessMethodFailure)
                        .with_text(format!("cannot store the file: {e}")));
                }
                (Ok(()), plain.signer, len)
            }
            Err(e) => (Err(e), None, 0),
        };
        if let Some(tx) = &self.report {
            let _ = tx.send(UnwrapReport {
                transmitted_hash,
                original_len,
                signer,
                result: result.clone(),
            });
        }
        match result {
            Ok(()) => self.inner.commit(counts),
            Err(e) => {
                tracing::warn!(file = %self.sfid.dataset_name.as_str(), error = %e, "incoming file failed the file services");
                self.inner.abort();
                Err(Refusal::new(e.efna_reason()).with_text(e.to_string()))
            }
        }
    }

    fn abort(&mut self) {
        self.inner.abort();
    }
}
