//! Interoperability of the CMS layer with OpenSSL's `cms` command, both
//! ways, and the certificate/CRL checks on OpenSSL-made PKI material.

mod pki_support;

use std::time::{Duration, SystemTime};

use oftp2::security::cms::{self, CmsError};
use oftp2::security::{CertError, ContentCipher, DigestAlgorithm, TrustStore};
use pki_support::{openssl, openssl_try, Pki};

const DAY: Duration = Duration::from_secs(86_400);

fn content() -> Vec<u8> {
    (0..70_001u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn openssl_verifies_our_signed_data_with_every_suite_hash() {
    let pki = Pki::new();
    let us = pki.issue("O0013SUPPLIER", 365);
    let data = content();
    for (digest, name) in [
        (DigestAlgorithm::Sha1, "sha1"),
        (DigestAlgorithm::Sha256, "sha256"),
        (DigestAlgorithm::Sha512, "sha512"),
        (DigestAlgorithm::Sha3_512, "sha3-512"),
    ] {
        let signed = cms::sign(&data, &us, digest).unwrap();
        let file = pki.path(&format!("signed-{name}.der"));
        std::fs::write(&file, &signed).unwrap();
        let out = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
                "-certfile",
                "O0013SUPPLIER.pem",
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
            ],
        );
        assert_eq!(
            out, data,
            "openssl must recover the signed content ({name})"
        );
        // And openssl names the digest we used.
        let printed = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-cmsout",
                "-print",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
            ],
        );
        let printed = String::from_utf8_lossy(&printed);
        assert!(printed.contains(name), "{printed}");
    }
}

#[test]
fn openssl_decrypts_our_enveloped_data_3des_and_aes256() {
    let pki = Pki::new();
    let partner = pki.issue("O0013BUYER", 365);
    let data = content();
    for (cipher, name) in [
        (ContentCipher::TripleDesCbc, "des-ede3-cbc"),
        (ContentCipher::Aes256Cbc, "aes-256-cbc"),
    ] {
        let enveloped = cms::encrypt(&data, partner.certificate(), cipher).unwrap();
        let file = pki.path(&format!("env-{name}.der"));
        std::fs::write(&file, &enveloped).unwrap();
        let out = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
                "-recip",
                "O0013BUYER.pem",
                "-inkey",
                "O0013BUYER.key",
            ],
        );
        assert_eq!(out, data, "openssl must decrypt our {name} envelope");
    }
}

#[test]
fn openssl_uncompresses_our_compressed_data() {
    let pki = Pki::new();
    let data = content();
    let compressed = cms::compress(&data).unwrap();
    assert!(compressed.len() < data.len());
    let file = pki.path("comp.der");
    std::fs::write(&file, &compressed).unwrap();
    let (ok, out, err) = openssl_try(
        pki.dir.path(),
        &[
            "cms",
            "-uncompress",
            "-binary",
            "-inform",
            "DER",
            "-in",
            file.to_str().unwrap(),
        ],
    );
    if !ok && err.contains("unsupported") {
        // Debian builds OpenSSL without zlib; then only the structure can
        // be checked: openssl must parse it as CompressedData.
        let printed = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-cmsout",
                "-print",
                "-inform",
                "DER",
                "-in",
                file.to_str().unwrap(),
            ],
        );
        let printed = String::from_utf8_lossy(&printed);
        assert!(printed.contains("id-smime-ct-compressedData"), "{printed}");
        assert!(printed.contains("zlib"), "{printed}");
        // And the eContent OpenSSL's parser finds is a zlib stream of the
        // original: locate the last OCTET STRING in `asn1parse` output
        // ("  off:d=N  hl=H l=  L prim: OCTET STRING ...") and inflate it.
        let parsed = openssl(
            pki.dir.path(),
            &["asn1parse", "-inform", "DER", "-in", file.to_str().unwrap()],
        );
        let parsed = String::from_utf8_lossy(&parsed);
        let line = parsed
            .lines()
            .rfind(|l| l.contains("OCTET STRING"))
            .expect("an OCTET STRING");
        let offset: usize = line.split(':').next().unwrap().trim().parse().unwrap();
        let field = |name: &str| -> usize {
            let rest = &line[line.find(name).unwrap() + name.len()..];
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        let (hl, l) = (field("hl="), field(" l="));
        let zipped = &compressed[offset + hl..offset + hl + l];
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(zipped), &mut inflated)
            .unwrap();
        assert_eq!(inflated, data);
        return;
    }
    assert!(ok, "{err}");
    assert_eq!(out, data);
}

#[test]
fn we_verify_openssl_signed_data_and_reject_tampering() {
    let pki = Pki::new();
    let partner = pki.issue("O0013BUYER", 365);
    let other = pki.issue("O0013OTHER", 365);
    let data = content();
    std::fs::write(pki.path("plain.bin"), &data).unwrap();
    for (md, digest) in [
        ("sha1", DigestAlgorithm::Sha1),
        ("sha256", DigestAlgorithm::Sha256),
        ("sha512", DigestAlgorithm::Sha512),
        ("sha3-512", DigestAlgorithm::Sha3_512),
    ] {
        let signed = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-outform",
                "DER",
                "-in",
                "plain.bin",
                "-signer",
                "O0013BUYER.pem",
                "-inkey",
                "O0013BUYER.key",
                "-md",
                md,
                "-nocerts",
            ],
        );
        let verified = cms::verify(
            &signed,
            &[other.certificate().clone(), partner.certificate().clone()],
        )
        .unwrap();
        assert_eq!(verified.content, data);
        assert_eq!(verified.signer, *partner.certificate());
        assert_eq!(verified.digest, digest, "{md}");

        // Signed by someone else than expected.
        assert!(matches!(
            cms::verify(&signed, &[other.certificate().clone()]),
            Err(CmsError::UnknownSigner(_))
        ));

        // One content octet changed: message digest mismatch.
        let mut tampered = signed.clone();
        let at = tampered
            .windows(16)
            .position(|w| w == &data[1000..1016])
            .unwrap();
        tampered[at] ^= 1;
        assert!(matches!(
            cms::verify(&tampered, &[partner.certificate().clone()]),
            Err(CmsError::BadSignature(_))
        ));
        // Last octet is inside the RSA signature value.
        let mut tampered = signed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x80;
        assert!(matches!(
            cms::verify(&tampered, &[partner.certificate().clone()]),
            Err(CmsError::BadSignature(_))
        ));
    }
}

#[test]
fn we_decrypt_openssl_enveloped_data() {
    let pki = Pki::new();
    let us = pki.issue("O0013SUPPLIER", 365);
    let data = content();
    std::fs::write(pki.path("plain.bin"), &data).unwrap();
    for (cipher, expected) in [
        ("-des3", ContentCipher::TripleDesCbc),
        ("-aes256", ContentCipher::Aes256Cbc),
    ] {
        let enveloped = openssl(
            pki.dir.path(),
            &[
                "cms",
                "-encrypt",
                "-binary",
                "-outform",
                "DER",
                "-in",
                "plain.bin",
                cipher,
                "O0013SUPPLIER.pem",
            ],
        );
        let (plain, used) = cms::decrypt(&enveloped, &us).unwrap();
        assert_eq!(plain, data);
        assert_eq!(used, expected);
    }
    // Not for us: a clear error, no garbage.
    let stranger = pki.issue("O0013STRANGER", 365);
    let enveloped = openssl(
        pki.dir.path(),
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "plain.bin",
            "-aes256",
            "O0013STRANGER.pem",
        ],
    );
    assert!(cms::decrypt(&enveloped, &stranger).is_ok());
    assert!(matches!(
        cms::decrypt(&enveloped, &us),
        Err(CmsError::Decryption(_))
    ));
}

#[test]
fn we_uncompress_openssl_compressed_data_if_openssl_has_zlib() {
    let pki = Pki::new();
    let data = content();
    std::fs::write(pki.path("plain.bin"), &data).unwrap();
    let (ok, out, err) = openssl_try(
        pki.dir.path(),
        &[
            "cms",
            "-compress",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "plain.bin",
        ],
    );
    if !ok {
        // Debian's OpenSSL is built without zlib ("unsupported
        // compression algorithm"); our own round trip is tested elsewhere.
        eprintln!("openssl cannot compress here: {err}");
        return;
    }
    assert_eq!(cms::decompress(&out).unwrap(), data);
}

#[test]
fn identity_refuses_a_key_of_another_certificate() {
    let pki = Pki::new();
    pki.issue("a", 30);
    pki.issue("b", 30);
    let cert = std::fs::read(pki.path("a.pem")).unwrap();
    let key = std::fs::read(pki.path("b.key")).unwrap();
    assert!(matches!(
        oftp2::security::Identity::from_pem_or_der(&cert, &key),
        Err(CertError::KeyMismatch(_))
    ));
    // PKCS#1 ("BEGIN RSA PRIVATE KEY") and DER keys load too.
    let pkcs1 = openssl(pki.dir.path(), &["rsa", "-in", "a.key", "-traditional"]);
    assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PRIVATE KEY"));
    oftp2::security::Identity::from_pem_or_der(&cert, &pkcs1).unwrap();
    let der = openssl(
        pki.dir.path(),
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "a.key", "-outform", "DER",
        ],
    );
    let cert_der = openssl(pki.dir.path(), &["x509", "-in", "a.pem", "-outform", "DER"]);
    oftp2::security::Identity::from_pem_or_der(&cert_der, &der).unwrap();
}

#[test]
fn chain_validity_expiry_and_crl_revocation() {
    let pki = Pki::new();
    let good = pki.issue("O0013GOOD", 365);
    let soon = pki.issue("O0013SOON", 10);
    let revoked = pki.issue("O0013REVOKED", 365);
    let impostor = pki.self_signed("O0013GOOD-IMPOSTOR");
    let now = SystemTime::now();

    let mut trust = TrustStore::new();
    trust.add_ca(pki.ca());
    let chain = trust.verify(good.certificate(), now).unwrap();
    assert_eq!(chain.len(), 2);
    assert!(matches!(
        trust.verify(impostor.certificate(), now),
        Err(CertError::UnknownIssuer(_))
    ));
    // Past notAfter.
    assert!(matches!(
        trust.verify(soon.certificate(), now + 11 * DAY),
        Err(CertError::Expired { .. })
    ));

    // The 30-day warning.
    assert!(soon.certificate().expires_within(now, 30 * DAY));
    assert!(!good.certificate().expires_within(now, 30 * DAY));
    let left = soon.certificate().remaining(now).unwrap();
    assert!(left > 9 * DAY && left <= 10 * DAY, "{left:?}");

    // Revocation: before the CRL refresh the certificate passes, after it
    // it is refused.
    assert!(trust.verify(revoked.certificate(), now).is_ok());
    pki.revoke("O0013REVOKED");
    let crl = pki.crl();
    assert_eq!(crl.revoked_count(), 1);
    assert!(crl.next_update().is_some());
    assert!(crl.is_revoked(revoked.certificate()));
    assert!(!crl.is_revoked(good.certificate()));
    trust.add_crl(crl).unwrap();
    assert!(trust.has_crl_for(good.certificate()));
    assert!(matches!(
        trust.verify(revoked.certificate(), now),
        Err(CertError::Revoked(_))
    ));
    assert!(trust.verify(good.certificate(), now).is_ok());

    // Distribution points for the daemon's download.
    assert_eq!(
        good.certificate().crl_distribution_points(),
        vec!["http://127.0.0.1:8080/ca.crl".to_string()]
    );

    // A CRL not signed by the CA is refused (a forged CRL cannot
    // un-revoke): make one with another CA.
    let other_ca = Pki::new();
    let forged = other_ca.crl();
    assert!(trust.add_crl(forged).is_err());
}

#[test]
fn chain_through_an_intermediate_ca() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    std::fs::write(
        pki.path("int.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=os4x intermediate",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "int.pem",
            "-days",
            "100",
            "-extfile",
            "int.ext",
            "-sha256",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=O0013LEAF",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "50",
            "-sha1",
        ],
    );
    let leaf = pki.identity("leaf");
    let int =
        oftp2::security::Certificate::from_pem_or_der(&std::fs::read(pki.path("int.pem")).unwrap())
            .unwrap();
    let now = SystemTime::now();

    let mut root_only = TrustStore::new();
    root_only.add_ca(pki.ca());
    assert!(matches!(
        root_only.verify(leaf.certificate(), now),
        Err(CertError::UnknownIssuer(_))
    ));

    let mut trust = root_only.clone();
    trust.add_ca(int.clone());
    let chain = trust.verify(leaf.certificate(), now).unwrap();
    // leaf -> intermediate; the intermediate is a configured CA (anchor).
    assert_eq!(chain[1], int);
    assert!(leaf.certificate().is_issued_by(&int).unwrap());
    assert!(int.is_issued_by(&pki.ca()).unwrap());
    assert!(!leaf.certificate().is_issued_by(&pki.ca()).unwrap());
    // The leaf outlives nothing: at day 60 it has expired.
    assert!(trust.verify(leaf.certificate(), now + 60 * DAY).is_err());
}
