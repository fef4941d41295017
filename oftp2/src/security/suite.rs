//! What the cipher suite codes of RFC 5024 section 10.2 mean.

use const_oid::db::rfc5911::{DES_EDE_3_CBC as ID_DES_EDE_3_CBC, ID_AES_256_CBC};
use const_oid::ObjectIdentifier;

use crate::value::CipherSuite;

/// Symmetric content-encryption algorithm (CBC mode, PKCS#7 padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// 3DES_EDE_CBC_3KEY (suite `01`).
    TripleDesCbc,
    /// AES_256_CBC (suites `02`, `03`).
    Aes256Cbc,
}

impl ContentCipher {
    /// Object identifier used in CMS `contentEncryptionAlgorithm`.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentCipher::TripleDesCbc => ID_DES_EDE_3_CBC,
            ContentCipher::Aes256Cbc => ID_AES_256_CBC,
        }
    }

    /// From the CMS object identifier.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            ID_DES_EDE_3_CBC => Some(ContentCipher::TripleDesCbc),
            ID_AES_256_CBC => Some(ContentCipher::Aes256Cbc),
            _ => None,
        }
    }

    /// Key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::TripleDesCbc => 24,
            ContentCipher::Aes256Cbc => 32,
        }
    }

    /// Block (and IV) length in octets.
    pub fn block_len(self) -> usize {
        match self {
            ContentCipher::TripleDesCbc => 8,
            ContentCipher::Aes256Cbc => 16,
        }
    }
}

/// Hash algorithm of a suite (used for signatures and the EERP file hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1 (suites `01`, `02`).
    Sha1,
    /// SHA-256 (suite `03` of the ODETTE extended list).
    Sha256,
}

impl DigestAlgorithm {
    /// Object identifier used in CMS `digestAlgorithm`.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => const_oid::db::rfc5912::ID_SHA_1,
            DigestAlgorithm::Sha256 => const_oid::db::rfc5912::ID_SHA_256,
        }
    }

    /// From a digest object identifier.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            const_oid::db::rfc5912::ID_SHA_1 => Some(DigestAlgorithm::Sha1),
            const_oid::db::rfc5912::ID_SHA_256 => Some(DigestAlgorithm::Sha256),
            _ => None,
        }
    }

    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            DigestAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    /// Hash everything `reader` yields, a buffer at a time, so a file of
    /// any size is hashed in constant memory.
    pub fn digest_reader(self, mut reader: impl std::io::Read) -> std::io::Result<Vec<u8>> {
        use sha2::Digest;
        fn run<D: Digest>(mut d: D, reader: &mut dyn std::io::Read) -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return Ok(d.finalize().to_vec()),
                    Ok(n) => d.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match self {
            DigestAlgorithm::Sha1 => run(sha1::Sha1::new(), &mut reader),
            DigestAlgorithm::Sha256 => run(sha2::Sha256::new(), &mut reader),
        }
    }
}

/// A cipher suite this implementation cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// `00` where a security service was asked for.
    #[error("cipher suite 00 (none) cannot sign or encrypt; agree on suite 01, 02 or 03 with the partner")]
    None,
    /// A code outside 01..=03.
    #[error("cipher suite {0:02} is not supported (01 3DES/SHA-1, 02 AES-256/SHA-1, 03 AES-256/SHA-256 are)")]
    Unsupported(u8),
}

pub(crate) fn algorithms(
    suite: CipherSuite,
) -> Result<(ContentCipher, DigestAlgorithm), SuiteError> {
    match suite {
        CipherSuite::None => Err(SuiteError::None),
        CipherSuite::TripleDesRsaSha1 => Ok((ContentCipher::TripleDesCbc, DigestAlgorithm::Sha1)),
        CipherSuite::Aes256RsaSha1 => Ok((ContentCipher::Aes256Cbc, DigestAlgorithm::Sha1)),
        // ODETTE's extended list: 03 = AES_256_CBC, RSA_PKCS1_15, SHA-256.
        CipherSuite::Other(3) => Ok((ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256)),
        CipherSuite::Other(c) => Err(SuiteError::Unsupported(c)),
    }
}
