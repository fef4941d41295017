//! What the cipher suite codes of RFC 5024 section 10.2 mean.

use const_oid::db::rfc5911::{DES_EDE_3_CBC as ID_DES_EDE_3_CBC, ID_AES_256_CBC};
use const_oid::ObjectIdentifier;

use crate::value::CipherSuite;

/// Symmetric content-encryption algorithm (CBC mode, PKCS#7 padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// 3DES_EDE_CBC_3KEY (suites `01`, `03`, `05`).
    TripleDesCbc,
    /// AES_256_CBC (suites `02`, `04`, `06`, `07`).
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

/// Object identifier of SHA3-512 (NIST, 2.16.840.1.101.3.4.2.10).
pub const ID_SHA3_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.10");

/// Hash algorithm of a suite (used for signatures and the EERP file hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1 (suites `01`, `02`).
    Sha1,
    /// SHA-256 (suites `03`, `04` of Odette's list).
    Sha256,
    /// SHA-512 (suites `05`, `06`).
    Sha512,
    /// SHA3-512 (suite `07`).
    Sha3_512,
}

impl DigestAlgorithm {
    /// Object identifier used in CMS `digestAlgorithm`.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlgorithm::Sha1 => const_oid::db::rfc5912::ID_SHA_1,
            DigestAlgorithm::Sha256 => const_oid::db::rfc5912::ID_SHA_256,
            DigestAlgorithm::Sha512 => const_oid::db::rfc5912::ID_SHA_512,
            DigestAlgorithm::Sha3_512 => ID_SHA3_512,
        }
    }

    /// From a digest object identifier.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            const_oid::db::rfc5912::ID_SHA_1 => Some(DigestAlgorithm::Sha1),
            const_oid::db::rfc5912::ID_SHA_256 => Some(DigestAlgorithm::Sha256),
            const_oid::db::rfc5912::ID_SHA_512 => Some(DigestAlgorithm::Sha512),
            ID_SHA3_512 => Some(DigestAlgorithm::Sha3_512),
            _ => None,
        }
    }

    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            DigestAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
            DigestAlgorithm::Sha3_512 => sha3::Sha3_512::digest(data).to_vec(),
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
            DigestAlgorithm::Sha512 => run(sha2::Sha512::new(), &mut reader),
            DigestAlgorithm::Sha3_512 => run(sha3::Sha3_512::new(), &mut reader),
        }
    }
}

/// A cipher suite this implementation cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// `00` where a security service was asked for.
    #[error("cipher suite 00 (none) cannot sign or encrypt; agree on a suite 01..07 with the partner (04 AES-256/SHA-256 is the usual one)")]
    None,
    /// A code outside 01..=07.
    #[error("cipher suite {0:02} is not in Odette's list; use 01..07 (01 3DES/SHA-1, 02 AES-256/SHA-1, 03 3DES/SHA-256, 04 AES-256/SHA-256, 05 3DES/SHA-512, 06 AES-256/SHA-512, 07 AES-256/SHA3-512)")]
    Unsupported(u8),
}

/// The algorithms of a suite code (SFIDCIPH): RFC 5024 section 10.2 for
/// 01 and 02, Odette's code list for 03..07. All use RSA with PKCS#1 v1.5
/// signatures and CBC content encryption.
pub(crate) fn algorithms(
    suite: CipherSuite,
) -> Result<(ContentCipher, DigestAlgorithm), SuiteError> {
    use ContentCipher::{Aes256Cbc, TripleDesCbc};
    use DigestAlgorithm::{Sha1, Sha256, Sha3_512, Sha512};
    match suite {
        CipherSuite::None => Err(SuiteError::None),
        CipherSuite::TripleDesRsaSha1 => Ok((TripleDesCbc, Sha1)),
        CipherSuite::Aes256RsaSha1 => Ok((Aes256Cbc, Sha1)),
        CipherSuite::Other(3) => Ok((TripleDesCbc, Sha256)),
        CipherSuite::Other(4) => Ok((Aes256Cbc, Sha256)),
        CipherSuite::Other(5) => Ok((TripleDesCbc, Sha512)),
        CipherSuite::Other(6) => Ok((Aes256Cbc, Sha512)),
        CipherSuite::Other(7) => Ok((Aes256Cbc, Sha3_512)),
        CipherSuite::Other(c) => Err(SuiteError::Unsupported(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Known answers: each suite's algorithms, and its hash of "abc"
    /// (FIPS 180-4 and FIPS 202 example values).
    #[test]
    fn every_suite_of_odettes_list_with_its_hash_of_abc() {
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let sha512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                      2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        let sha3_512 = "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e\
                        10e116e9192af3c91a7ec57647e39340 57340b4cf408d5a56592f8274eec53f0";
        let sha3_512: String = sha3_512.split_whitespace().collect();
        for (code, cipher, digest, abc) in [
            (1, ContentCipher::TripleDesCbc, DigestAlgorithm::Sha1, sha1),
            (2, ContentCipher::Aes256Cbc, DigestAlgorithm::Sha1, sha1),
            (
                3,
                ContentCipher::TripleDesCbc,
                DigestAlgorithm::Sha256,
                sha256,
            ),
            (4, ContentCipher::Aes256Cbc, DigestAlgorithm::Sha256, sha256),
            (
                5,
                ContentCipher::TripleDesCbc,
                DigestAlgorithm::Sha512,
                sha512,
            ),
            (6, ContentCipher::Aes256Cbc, DigestAlgorithm::Sha512, sha512),
            (
                7,
                ContentCipher::Aes256Cbc,
                DigestAlgorithm::Sha3_512,
                &sha3_512,
            ),
        ] {
            let suite = CipherSuite::from_code(code);
            assert_eq!(
                algorithms(suite).unwrap(),
                (cipher, digest),
                "suite {code:02}"
            );
            assert_eq!(hex(&digest.digest(b"abc")), abc, "suite {code:02}");
            assert_eq!(
                hex(&digest.digest_reader(&b"abc"[..]).unwrap()),
                abc,
                "suite {code:02}, streamed"
            );
            assert_eq!(DigestAlgorithm::from_oid(&digest.oid()), Some(digest));
        }
        assert_eq!(algorithms(CipherSuite::None), Err(SuiteError::None));
        assert_eq!(
            algorithms(CipherSuite::from_code(8)),
            Err(SuiteError::Unsupported(8))
        );
        assert_eq!(ID_SHA3_512.to_string(), "2.16.840.1.101.3.4.2.10");
    }
}
