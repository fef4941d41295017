//! CMS (RFC 5652) structures the OFTP2 file services and receipts use:
//! SignedData, EnvelopedData and CompressedData (RFC 3274), each wrapping
//! `id-data` content as section 6.1 of RFC 5024 demands.
//!
//! * Signing: RSA PKCS#1 v1.5 with SHA-1 or SHA-256, signed attributes
//!   (content type, message digest), signer identified by issuer and serial
//!   number, content attached. The signer's certificate is left out, as
//!   section 6.2 recommends; the receiver has it in its partner table.
//! * Encryption: RSA PKCS#1 v1.5 key transport to the recipient's
//!   certificate; content with 3DES-EDE-CBC or AES-256-CBC.
//! * Compression: zlib (`id-alg-zlibCompress`).
//!
//! Everything goes through the `cms`/`der` types; the only DER written by
//! this module is what those types encode.

use cms::cert::IssuerAndSerialNumber;
use cms::compressed_data::CompressedData;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use const_oid::db::rfc5911::{ID_DATA, ID_ENVELOPED_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc6268::{ID_ALG_ZLIB_COMPRESS, ID_CT_COMPRESSED_DATA};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use rand_core::{OsRng, RngCore};
use rsa::Pkcs1v15Encrypt;
use spki::AlgorithmIdentifierOwned;

use super::cert::{verify_rsa_signature, Certificate, Identity};
use super::suite::{ContentCipher, DigestAlgorithm};

/// Largest decompressed size accepted, against zlib bombs. OFTP file
/// sizes are counted in 1K blocks with 13 digits, but a single in-memory
/// CMS object above this is not something this implementation handles.
pub const MAX_DECOMPRESSED: u64 = 8 << 30;

/// What went wrong building or opening a CMS structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmsError {
    /// Not DER, or not the structure expected.
    #[error("malformed CMS data: {0}")]
    Malformed(String),
    /// Another content type than expected (e.g. SignedData where
    /// EnvelopedData was announced).
    #[error("expected CMS {expected}, found content type {found}")]
    UnexpectedType {
        /// What the caller expected.
        expected: &'static str,
        /// The OID found.
        found: String,
    },
    /// An algorithm this implementation does not support.
    #[error("unsupported algorithm {0} (supported: RSA PKCS#1 v1.5, SHA-1/SHA-256, 3DES/AES-256-CBC, zlib)")]
    UnsupportedAlgorithm(String),
    /// No signer info matches a trusted certificate.
    #[error("the data is not signed by any of the expected certificates ({0})")]
    UnknownSigner(String),
    /// The signature or message digest does not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// Not addressed to our certificate, or the key transport failed.
    #[error("cannot decrypt: {0}")]
    Decryption(String),
    /// zlib failed.
    #[error("cannot decompress: {0}")]
    Decompression(String),
    /// RSA or key error while building.
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
}

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

fn content_info(
    content_type: const_oid::ObjectIdentifier,
    der: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let ci = ContentInfo {
        content_type,
        content: Any::from_der(der).map_err(malformed)?,
    };
    ci.to_der().map_err(malformed)
}

fn open_content_info(
    data: &[u8],
    expected: const_oid::ObjectIdentifier,
    name: &'static str,
) -> Result<Any, CmsError> {
    let ci = ContentInfo::from_der(data).map_err(malformed)?;
    if ci.content_type != expected {
        return Err(CmsError::UnexpectedType {
            expected: name,
            found: ci.content_type.to_string(),
        });
    }
    Ok(ci.content)
}

fn id_data(content: &[u8]) -> Result<EncapsulatedContentInfo, CmsError> {
    let octets = OctetString::new(content).map_err(malformed)?;
    Ok(EncapsulatedContentInfo {
        econtent_type: ID_DATA,
        econtent: Some(Any::encode_from(&octets).map_err(malformed)?),
    })
}

fn id_data_content(eci: &EncapsulatedContentInfo) -> Result<Vec<u8>, CmsError> {
    if eci.econtent_type != ID_DATA {
        return Err(CmsError::UnexpectedType {
            expected: "id-data content",
            found: eci.econtent_type.to_string(),
        });
    }
    let any = eci
        .econtent
        .as_ref()
        .ok_or_else(|| CmsError::Malformed("detached content is not used by OFTP2".into()))?;
    let octets: OctetString = any.decode_as().map_err(malformed)?;
    Ok(octets.into_bytes())
}

fn issuer_and_serial(cert: &Certificate) -> IssuerAndSerialNumber {
    let tbs = &cert.x509().tbs_certificate;
    IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    }
}

/// Sign `content` as CMS SignedData (content attached, `id-data`).
pub fn sign(
    content: &[u8],
    signer: &Identity,
    digest: DigestAlgorithm,
) -> Result<Vec<u8>, CmsError> {
    use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
    let eci = id_data(content)?;
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let sid = SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(signer.certificate()));
    let mut builder = SignedDataBuilder::new(&eci);
    builder
        .add_digest_algorithm(digest_alg.clone())
        .map_err(|e| CmsError::Crypto(e.to_string()))?;
    fn add<S>(
        mut builder: SignedDataBuilder<'_>,
        key: &S,
        sid: SignerIdentifier,
        digest_alg: AlgorithmIdentifierOwned,
        content_digest: &[u8],
    ) -> Result<cms::content_info::ContentInfo, CmsError>
    where
        S: rsa::signature::Keypair
            + spki::DynSignatureAlgorithmIdentifier
            + rsa::signature::Signer<rsa::pkcs1v15::Signature>,
    {
        // The message digest is ours (the builder knows SHA-2 only); the
        // signer info then sees no content, the SignedData carries it.
        let detached = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        };
        let info = SignerInfoBuilder::new(key, sid, digest_alg, &detached, Some(content_digest))
            .map_err(|e| CmsError::Crypto(e.to_string()))?;
        builder
            .add_signer_info::<_, rsa::pkcs1v15::Signature>(info)
            .map_err(|e| CmsError::Crypto(e.to_string()))?
            .build()
            .map_err(|e| CmsError::Crypto(e.to_string()))
    }
    let private = signer.private_key().clone();
    let content_digest = digest.digest(content);
    let content_digest = content_digest.as_slice();
    let ci = match digest {
        DigestAlgorithm::Sha1 => add(
            builder,
            &rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(private),
            sid,
            digest_alg,
            content_digest,
        ),
        DigestAlgorithm::Sha256 => add(
            builder,
            &rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private),
            sid,
            digest_alg,
            content_digest,
        ),
        DigestAlgorithm::Sha512 => add(
            builder,
            &rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private),
            sid,
            digest_alg,
            content_digest,
        ),
        DigestAlgorithm::Sha3_512 => add(
            builder,
            &Sha3_512Signer(private),
            sid,
            digest_alg,
            content_digest,
        ),
    }?;
    ci.to_der().map_err(malformed)
}

/// Object identifier of RSASSA-PKCS1-v1_5 with SHA3-512 (NIST,
/// 2.16.840.1.101.3.4.3.16).
pub const ID_RSASSA_PKCS1_V1_5_WITH_SHA3_512: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.16");

/// RSA PKCS#1 v1.5 signatures over SHA3-512 (suite 07). The `rsa` crate
/// names signature algorithms for SHA-1/SHA-2 only, so this signer
/// supplies the algorithm identifier itself.
struct Sha3_512Signer(rsa::RsaPrivateKey);

impl rsa::signature::Keypair for Sha3_512Signer {
    type VerifyingKey = rsa::RsaPublicKey;
    fn verifying_key(&self) -> rsa::RsaPublicKey {
        self.0.to_public_key()
    }
}

impl spki::DynSignatureAlgorithmIdentifier for Sha3_512Signer {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        // RFC 8702 style: no parameters.
        Ok(AlgorithmIdentifierOwned {
            oid: ID_RSASSA_PKCS1_V1_5_WITH_SHA3_512,
            parameters: None,
        })
    }
}

impl rsa::signature::Signer<rsa::pkcs1v15::Signature> for Sha3_512Signer {
    fn try_sign(&self, msg: &[u8]) -> Result<rsa::pkcs1v15::Signature, rsa::signature::Error> {
        use sha3::Digest;
        let hash = sha3::Sha3_512::digest(msg);
        let raw = self
            .0
            .sign(rsa::Pkcs1v15Sign::new::<sha3::Sha3_512>(), &hash)
            .map_err(rsa::signature::Error::from_source)?;
        rsa::pkcs1v15::Signature::try_from(raw.as_slice())
    }
}

/// A verified SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed content.
    pub content: Vec<u8>,
    /// The certificate whose signature verified.
    pub signer: Certificate,
    /// The digest algorithm the signer used.
    pub digest: DigestAlgorithm,
}

/// Open a SignedData and verify that one of `signers` signed it. Which
/// certificates count is the caller's decision (the partner's current
/// certificate(s), already checked against the trust store and CRLs).
/// A file signed more than once (certificate changeover, section 6.2) is
/// accepted when any signature by an expected certificate verifies.
pub fn verify(data: &[u8], signers: &[Certificate]) -> Result<Verified, CmsError> {
    let any = open_content_info(data, ID_SIGNED_DATA, "SignedData")?;
    let sd: SignedData = any.decode_as().map_err(malformed)?;
    let content = id_data_content(&sd.encap_content_info)?;
    let mut failure = None;
    for info in sd.signer_infos.0.iter() {
        let cert = signers.iter().find(|c| match &info.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => *ias == issuer_and_serial(c),
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                use x509_cert::ext::pkix::SubjectKeyIdentifier;
                matches!(c.x509().tbs_certificate.get::<SubjectKeyIdentifier>(),
                    Ok(Some((_, own))) if own == *ski)
            }
        });
        let Some(cert) = cert else { continue };
        let Some(digest) = DigestAlgorithm::from_oid(&info.digest_alg.oid) else {
            failure = Some(CmsError::UnsupportedAlgorithm(
                info.digest_alg.oid.to_string(),
            ));
            continue;
        };
        let content_digest = digest.digest(&content);
        let signed_message = match &info.signed_attrs {
            Some(attrs) => {
                let md = attrs
                    .iter()
                    .find(|a| a.oid == ID_MESSAGE_DIGEST)
                    .and_then(|a| a.values.get(0))
                    .and_then(|v| v.decode_as::<OctetString>().ok());
                if md.as_ref().map(OctetString::as_bytes) != Some(&content_digest[..]) {
                    failure = Some(CmsError::BadSignature(
                        "message digest does not match the content".into(),
                    ));
                    continue;
                }
                // The signature covers the DER of the attributes as a SET OF.
                attrs.to_der().map_err(malformed)?
            }
            None => content.clone(),
        };
        let sig_alg = signature_oid(&info.signature_algorithm.oid, digest);
        match verify_rsa_signature(
            &cert.x509().tbs_certificate.subject_public_key_info,
            &sig_alg,
            &signed_message,
            Some(info.signature.as_bytes()),
        ) {
            Ok(true) => {
                return Ok(Verified {
                    content,
                    signer: cert.clone(),
                    digest,
                })
            }
            Ok(false) => {
                failure = Some(CmsError::BadSignature(format!(
                    "RSA signature by {} is wrong",
                    cert.subject()
                )))
            }
            Err(alg) => failure = Some(CmsError::UnsupportedAlgorithm(alg)),
        }
    }
    Err(failure.unwrap_or_else(|| {
        CmsError::UnknownSigner(
            signers
                .iter()
                .map(|c| c.subject())
                .collect::<Vec<_>>()
                .join("; "),
        )
    }))
}

/// Signers may name the signature algorithm as plain `rsaEncryption`
/// (OpenSSL does); the digest algorithm then says which hash.
fn signature_oid(
    oid: &const_oid::ObjectIdentifier,
    digest: DigestAlgorithm,
) -> const_oid::ObjectIdentifier {
    use const_oid::db::rfc5912 as oids;
    if *oid == oids::RSA_ENCRYPTION {
        match digest {
            DigestAlgorithm::Sha1 => oids::SHA_1_WITH_RSA_ENCRYPTION,
            DigestAlgorithm::Sha256 => oids::SHA_256_WITH_RSA_ENCRYPTION,
            DigestAlgorithm::Sha512 => oids::SHA_512_WITH_RSA_ENCRYPTION,
            DigestAlgorithm::Sha3_512 => ID_RSASSA_PKCS1_V1_5_WITH_SHA3_512,
        }
    } else {
        *oid
    }
}

/// Encrypt `content` as CMS EnvelopedData for `recipient`.
pub fn encrypt(
    content: &[u8],
    recipient: &Certificate,
    cipher: ContentCipher,
) -> Result<Vec<u8>, CmsError> {
    let mut key = vec![0u8; cipher.key_len()];
    let mut iv = vec![0u8; cipher.block_len()];
    OsRng.fill_bytes(&mut key);
    OsRng.fill_bytes(&mut iv);
    let ciphertext = cbc_encrypt(cipher, &key, &iv, content)?;
    let public = recipient
        .rsa_public_key()
        .map_err(|e| CmsError::Crypto(e.to_string()))?;
    let enc_key = public
        .encrypt(&mut OsRng, Pkcs1v15Encrypt, &key)
        .map_err(|e| CmsError::Crypto(e.to_string()))?;
    let ktri = KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(issuer_and_serial(recipient)),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(enc_key).map_err(malformed)?,
    };
    let recipients = SetOfVec::try_from(vec![RecipientInfo::Ktri(ktri)]).map_err(malformed)?;
    let iv_param =
        Any::encode_from(&OctetString::new(iv).map_err(malformed)?).map_err(malformed)?;
    let ed = EnvelopedData {
        // RFC 5652 6.1: version 0 with only issuerAndSerialNumber KTRIs.
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(recipients),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(iv_param),
            },
            encrypted_content: Some(OctetString::new(ciphertext).map_err(malformed)?),
        },
        unprotected_attrs: None,
    };
    content_info(ID_ENVELOPED_DATA, &ed.to_der().map_err(malformed)?)
}

/// Decrypt a CMS EnvelopedData addressed to `recipient`. Returns the
/// content and the cipher that was used.
pub fn decrypt(data: &[u8], recipient: &Identity) -> Result<(Vec<u8>, ContentCipher), CmsError> {
    let any = open_content_info(data, ID_ENVELOPED_DATA, "EnvelopedData")?;
    let ed: EnvelopedData = any.decode_as().map_err(malformed)?;
    let ours = issuer_and_serial(recipient.certificate());
    let ktri = ed
        .recip_infos
        .0
        .iter()
        .find_map(|ri| match ri {
            RecipientInfo::Ktri(k)
                if k.rid == RecipientIdentifier::IssuerAndSerialNumber(ours.clone()) =>
            {
                Some(k)
            }
            _ => None,
        })
        .ok_or_else(|| {
            CmsError::Decryption(format!(
                "not encrypted for our certificate {} (serial {})",
                recipient.certificate().subject(),
                recipient.certificate().serial_hex()
            ))
        })?;
    if ktri.key_enc_alg.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
        return Err(CmsError::UnsupportedAlgorithm(
            ktri.key_enc_alg.oid.to_string(),
        ));
    }
    let key = recipient
        .private_key()
        .decrypt(Pkcs1v15Encrypt, ktri.enc_key.as_bytes())
        .map_err(|e| CmsError::Decryption(format!("RSA key transport: {e}")))?;
    let eci = &ed.encrypted_content;
    let cipher = ContentCipher::from_oid(&eci.content_enc_alg.oid)
        .ok_or_else(|| CmsError::UnsupportedAlgorithm(eci.content_enc_alg.oid.to_string()))?;
    if key.len() != cipher.key_len() {
        return Err(CmsError::Decryption(
            "content key has the wrong length".into(),
        ));
    }
    let iv: OctetString = eci
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or_else(|| CmsError::Malformed("content encryption without IV".into()))?
        .decode_as()
        .map_err(malformed)?;
    if iv.as_bytes().len() != cipher.block_len() {
        return Err(CmsError::Malformed("IV has the wrong length".into()));
    }
    let ciphertext = eci
        .encrypted_content
        .as_ref()
        .ok_or_else(|| CmsError::Malformed("EnvelopedData without content".into()))?;
    let plain = cbc_decrypt(cipher, &key, iv.as_bytes(), ciphertext.as_bytes())?;
    Ok((plain, cipher))
}

fn cbc_encrypt(
    cipher: ContentCipher,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, CmsError> {
    use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    let err = |e: cbc::cipher::InvalidLength| CmsError::Crypto(e.to_string());
    Ok(match cipher {
        ContentCipher::Aes256Cbc => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(err)?
            .encrypt_padded_vec_mut::<Pkcs7>(data),
        ContentCipher::TripleDesCbc => cbc::Encryptor::<des::TdesEde3>::new_from_slices(key, iv)
            .map_err(err)?
            .encrypt_padded_vec_mut::<Pkcs7>(data),
    })
}

fn cbc_decrypt(
    cipher: ContentCipher,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, CmsError> {
    use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    let err = |e: cbc::cipher::InvalidLength| CmsError::Decryption(e.to_string());
    let pad = |_| CmsError::Decryption("bad padding (wrong key or corrupted data)".into());
    match cipher {
        ContentCipher::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(err)?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(pad),
        ContentCipher::TripleDesCbc => cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
            .map_err(err)?
            .decrypt_padded_vec_mut::<Pkcs7>(data)
            .map_err(pad),
    }
}

/// Compress `content` as CMS CompressedData (zlib, RFC 3274).
pub fn compress(content: &[u8]) -> Result<Vec<u8>, CmsError> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(content)
        .and_then(|()| z.finish())
        .map_err(|e| CmsError::Crypto(e.to_string()))
        .and_then(|zipped| {
            let cd = CompressedData {
                version: CmsVersion::V0,
                compression_alg: AlgorithmIdentifierOwned {
                    oid: ID_ALG_ZLIB_COMPRESS,
                    parameters: None,
                },
                encap_content_info: id_data(&zipped)?,
            };
            content_info(ID_CT_COMPRESSED_DATA, &cd.to_der().map_err(malformed)?)
        })
}

/// Decompress a CMS CompressedData (at most [`MAX_DECOMPRESSED`]).
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, CmsError> {
    decompress_limited(data, MAX_DECOMPRESSED)
}

/// Decompress a CMS CompressedData whose content may be at most `limit`
/// octets: decompression stops as soon as the output exceeds it, so a
/// zlib bomb never costs more than `limit` in memory.
pub fn decompress_limited(data: &[u8], limit: u64) -> Result<Vec<u8>, CmsError> {
    use std::io::Read;
    let limit = limit.min(MAX_DECOMPRESSED);
    let any = open_content_info(data, ID_CT_COMPRESSED_DATA, "CompressedData")?;
    let cd: CompressedData = any.decode_as().map_err(malformed)?;
    if cd.compression_alg.oid != ID_ALG_ZLIB_COMPRESS {
        return Err(CmsError::UnsupportedAlgorithm(
            cd.compression_alg.oid.to_string(),
        ));
    }
    let zipped = id_data_content(&cd.encap_content_info)?;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&zipped[..])
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| CmsError::Decompression(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(CmsError::Decompression(format!(
            "content larger than the {limit} octets the file may have (SFIDOSIZ); refused as a possible zlib bomb"
        )));
    }
    Ok(out)
}

/// The CMS content type at the outside of `data`, if it is a ContentInfo.
pub fn content_type(data: &[u8]) -> Option<const_oid::ObjectIdentifier> {
    ContentInfo::from_der(data).ok().map(|ci| ci.content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Known answers for the two content ciphers the suites use: AES-256-CBC
    /// is NIST SP 800-38A F.2.5; the 3DES value was computed with
    /// `openssl enc -des-ede3-cbc -nopad`. PKCS#7 adds one full block of
    /// padding after the two plaintext blocks.
    #[test]
    fn content_ciphers_match_known_answers() {
        let plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        for (cipher, key, iv, expected) in [
            (
                ContentCipher::Aes256Cbc,
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "000102030405060708090a0b0c0d0e0f",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d",
            ),
            (
                ContentCipher::TripleDesCbc,
                "0123456789abcdef23456789abcdef01456789abcdef0123",
                "f69f2445df4f9b17",
                "2079c3d53aa763e193b79e2569ab5262516570481f25b50f73c0bda85c8e0da7",
            ),
        ] {
            let (key, iv) = (unhex(key), unhex(iv));
            assert_eq!(key.len(), cipher.key_len());
            assert_eq!(iv.len(), cipher.block_len());
            let out = cbc_encrypt(cipher, &key, &iv, &plain).unwrap();
            assert_eq!(out.len(), plain.len() + cipher.block_len(), "{cipher:?}");
            assert_eq!(out[..plain.len()], unhex(expected)[..], "{cipher:?}");
            assert_eq!(cbc_decrypt(cipher, &key, &iv, &out).unwrap(), plain);
            assert!(cbc_decrypt(cipher, &key[..key.len() - 1], &iv, &out).is_err());
        }
    }
}
