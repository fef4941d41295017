//! OFTP2 security in the daemons, end to end: real `os4xsqd`,
//! `os4xrd_tcpip` and `os4xrd_tcpip_tls` processes of two stations (own
//! databases, own Odette IDs and key pairs) on 127.0.0.1, certificates
//! from a throw-away CA made with the `openssl` tool, CRLs served by a
//! local HTTP server.

mod security_support;
mod sq_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oftp2::value::CipherSuite;
use os4x::partner::SecurityPolicy;
use os4x::queue::{EntryState, Protection};
use security_support::{CrlServer, Pki};
use sq_support::*;

const LONG: Duration = Duration::from_secs(60);
const PIDCTL: &str = env!("CARGO_BIN_EXE_os4x-pidctl");

/// `[security]` with `name`'s key pair from `pki` and its CA.
fn security_section(pki: &Pki, name: &str) -> String {
    format!(
        "[security]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nca_file = \"{}\"\ncrl_refresh = 1\n",
        pki.path(&format!("{name}.pem")).display(),
        pki.path(&format!("{name}.key")).display(),
        pki.path("ca.pem").display()
    )
}

/// `[tls]` for a receive daemon on `port` with a fresh self-signed server
/// certificate; returns the section and the certificate's pin.
fn tls_section(dir: &Path, port: u16) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.join("tls-server.crt");
    let key = dir.join("tls-server.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (
        format!(
            "[tls]\nlisten = [\"127.0.0.1:{port}\"]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        os4x::partner::sha256_hex(ck.cert.der()),
    )
}

/// One column of a received file's row at station `s`.
fn received(s: &Station, dataset: &str) -> (String, Option<String>, Option<String>) {
    let conn = s.queue.db().lock();
    conn.query_row(
        "SELECT state, security, security_error FROM os4x_received_files WHERE dataset_name = ?1",
        [dataset],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn full_policy() -> SecurityPolicy {
    SecurityPolicy {
        sign: true,
        encrypt: true,
        compress: true,
        signed_eerp: true,
        cipher_suite: CipherSuite::Other(3),
        secure_auth: true,
        require_signed: false,
        require_encrypted: false,
    }
}

#[test]
fn signed_encrypted_compressed_file_over_tls_with_secure_authentication_and_signed_eerp() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let tls_port = free_port();
    let tls_dir = tempfile::tempdir().unwrap();
    let (tls, pin) = tls_section(tls_dir.path(), tls_port);
    let b = Station::new(B, &format!("{tls}{}", security_section(&pki, "station-b")));
    a.add_partner(B, |p| {
        p.certificate = Some(b_cert.clone());
        p.security = full_policy();
    });
    b.add_partner(A, |p| {
        p.certificate = Some(a_cert.clone());
        p.security.secure_auth = true;
        p.tls_required = true;
    });
    a.add_route(B, tls_port, |r| {
        r.tls = true;
        r.tls_pin_sha256 = Some(pin.clone());
    });
    b.add_route(A, a.tcp_port, |_| {});
    let _rd_b = b.spawn(RD_TLS);
    wait_port(([127, 0, 0, 1], tls_port).into(), Duration::from_secs(20));
    let _rd_a = a.start_rd();

    // Text-like content compresses: the transmitted file must be smaller.
    let data: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("LINE {i:06} ORDER 4711\n").into_bytes())
        .collect();
    let id = a.send(&a.file("SECURE", &data), B, "SECURE");
    let _sqd_a = a.spawn(SQD);
    let e = a.wait_state(id, EntryState::Delivered, LONG);

    // B holds the original, verified, decrypted and decompressed.
    assert_eq!(std::fs::read(b.inbox_from(A).join("SECURE")).unwrap(), data);
    let (state, security, error) = received(&b, "SECURE");
    assert_eq!(state, "received");
    assert_eq!(error, None);
    let security = security.unwrap();
    assert!(
        security.contains("decrypted")
            && security.contains("decompressed")
            && security.contains("signature verified")
            && security.contains("station-a"),
        "{security}"
    );
    // A sent the protected file, not the original, and B's signed EERP
    // verified against B's certificate and the hash of what was sent.
    let cms = std::fs::read(format!("{}.cms", e.outbox_path)).unwrap();
    assert!(cms.len() < data.len() / 4, "compressed: {}", cms.len());
    assert!(!cms.windows(10).any(|w| w == b"ORDER 4711"), "encrypted");
    // OpenSSL decrypts what os4xsqd sent with B's key; inside is the
    // compressed layer (Debian's OpenSSL has no zlib to go further).
    let inner = pki.path("inner.der");
    security_support::openssl(
        pki.dir.path(),
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            &format!("{}.cms", e.outbox_path),
            "-recip",
            "station-b.pem",
            "-inkey",
            "station-b.key",
            "-out",
            &inner.to_string_lossy(),
        ],
    );
    let parsed = security_support::openssl(
        pki.dir.path(),
        &[
            "asn1parse",
            "-inform",
            "DER",
            "-in",
            &inner.to_string_lossy(),
        ],
    );
    let parsed = String::from_utf8_lossy(&parsed);
    assert!(parsed.contains("id-smime-ct-compressedData"), "{parsed}");
    assert_eq!(e.receipt_verification.as_deref(), Some("valid"), "{e:#?}");
    assert!(e
        .receipt_verification_text
        .as_deref()
        .unwrap()
        .contains("station-b"));
    assert_eq!(e.file_hash.as_ref().map(String::len), Some(64), "SHA-256");
    let log = b.log("os4xrd_tcpip_tls");
    assert!(log.contains("secure_authentication=true"), "{log}");
    let (_, list, _) = a.os4x(&["queue"]);
    assert!(list.contains("eerp(valid)"), "{list}");

    // The other direction, B initiating with secure authentication to
    // A's plain-TCP receive daemon (A is the responder now). B must not
    // mark A as TLS-only for that: os4xsqd never sends in clear to such a
    // partner.
    let partners = os4x::partner::PartnerStore::new(b.queue.db().clone());
    let mut pa = partners.get(A).unwrap().unwrap();
    pa.tls_required = false;
    partners.update(&pa).unwrap();
    let back = b.send(&b.file("BACK", b"plain back"), A, "BACK");
    let _sqd_b = b.spawn(SQD);
    let e = b.wait_state(back, EntryState::Delivered, LONG);
    // Nothing requested, nothing to check.
    assert_eq!(e.receipt_verification, None);
    assert_eq!(
        std::fs::read(a.inbox_from(B).join("BACK")).unwrap(),
        b"plain back"
    );
    let log = a.log("os4xrd_tcpip");
    assert!(log.contains("secure_authentication=true"), "{log}");
}

#[test]
fn secure_authentication_failure_in_both_directions() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    pki.issue_files("station-b", 365);
    // A holds an impostor's certificate for B: B cannot decrypt A's
    // challenges, whichever side called.
    let (wrong, _) = pki.issue_files("impostor", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let b = Station::new(B, &security_section(&pki, "station-b"));
    a.add_partner(B, |p| {
        p.certificate = Some(wrong.clone());
        p.security.secure_auth = true;
    });
    b.add_partner(A, |p| {
        p.certificate = Some(a_cert.clone());
        p.security.secure_auth = true;
    });
    a.add_route(B, b.tcp_port, |_| {});
    b.add_route(A, a.tcp_port, |_| {});
    let _rd_a = a.start_rd();
    let _rd_b = b.start_rd();

    // A initiates: B ends the session with ESID 11.
    let id = a.send(&a.file("OUT", b"x"), B, "OUT");
    let sqd_a = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.state == EntryState::Retry);
    let err = e.last_error.unwrap();
    assert!(err.contains("Invalid challenge response"), "{err}");
    drop(sqd_a);

    // B initiates, A responds and challenges with the wrong certificate:
    // B cannot answer and ends the session with ESID 11.
    let back = b.send(&b.file("IN", b"y"), A, "IN");
    let sqd_b = b.spawn(SQD);
    let e = b.wait_entry(back, LONG, |e| e.state == EntryState::Retry);
    let err = e.last_error.unwrap();
    assert!(err.contains("Invalid challenge response"), "{err}");
    drop(sqd_b);
    assert!(!b.inbox_from(A).join("OUT").exists());
    assert!(!a.inbox_from(B).join("IN").exists());

    // Only one side requiring secure authentication: ESID 12.
    {
        let store = os4x::partner::PartnerStore::new(b.queue.db().clone());
        let mut p = store.get(A).unwrap().unwrap();
        p.security.secure_auth = false;
        store.update(&p).unwrap();
    }
    a.queue.retry(id).unwrap();
    let _sqd_a = a.spawn(SQD);
    a.wait_entry(id, LONG, |e| {
        e.state == EntryState::Retry
            && e.last_error
                .as_deref()
                .is_some_and(|t| t.contains("Secure authentication requirements incompatible"))
    });
}

/// Writes a signed file for `entry` whose signature is broken, as if it
/// had been altered on the way, and makes it the entry's protected file.
fn tamper_signed(a: &Station, pki: &Pki, entry: i64, data: &[u8]) -> PathBuf {
    use oftp2::security::{cms, DigestAlgorithm, Identity};
    let id = Identity::from_pem_or_der(
        &std::fs::read(pki.path("station-a.pem")).unwrap(),
        &std::fs::read(pki.path("station-a.key")).unwrap(),
    )
    .unwrap();
    let mut signed = cms::sign(data, &id, DigestAlgorithm::Sha1).unwrap();
    // The last octet lies inside the RSA signature value.
    let last = signed.len() - 1;
    signed[last] ^= 0x01;
    let e = a.entry(entry);
    let path = PathBuf::from(format!("{}.cms", e.outbox_path));
    std::fs::write(&path, &signed).unwrap();
    a.queue
        .set_protection(&Protection {
            id: entry,
            file_hash: oftp2::security::file::file_hash(&signed, CipherSuite::Aes256RsaSha1).ok(),
            cipher_suite: 2,
            signed_eerp_requested: false,
            protected_path: Some(path.to_string_lossy().into_owned()),
            file_services: Some("s".into()),
        })
        .unwrap();
    path
}

#[test]
fn tampered_signature_is_answered_with_nerp_and_nothing_is_delivered() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let b = Station::new(B, &security_section(&pki, "station-b"));
    // A's policy for B says nothing: the entry was signed (and altered)
    // at an earlier attempt, and later attempts send what it got then.
    a.add_partner(B, |p| p.certificate = Some(b_cert.clone()));
    b.add_partner(A, |p| p.certificate = Some(a_cert.clone()));
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();

    let id = a.send(&a.file("TAMPERED", b"pay 100 EUR"), B, "TAMPERED");
    tamper_signed(&a, &pki, id, b"pay 100 EUR");
    let _sqd = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.eerp == "nerp");
    assert_eq!(e.state, EntryState::Failed);
    let text = e.eerp_text.unwrap();
    assert!(text.contains("File signature not valid"), "{text}");

    // Nothing delivered at B; the row says why.
    assert!(!b.inbox_from(A).join("TAMPERED").exists());
    let (state, _, error) = received(&b, "TAMPERED");
    assert_eq!(state, "rejected");
    assert!(error.unwrap().contains("signature"));
    let log = b.log("os4xrd_tcpip");
    assert!(log.contains("nothing delivered; NERP due"), "{log}");
}

#[test]
fn forged_signed_eerp_is_rejected_and_recorded() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    pki.issue_files("forger", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    // B signs its receipts with a key that is not the one A has on file
    // for B (a CA-issued certificate of someone else).
    let b = Station::new(B, &security_section(&pki, "forger"));
    a.add_partner(B, |p| {
        p.certificate = Some(b_cert.clone());
        p.security.sign = true;
        p.security.signed_eerp = true;
    });
    b.add_partner(A, |p| p.certificate = Some(a_cert.clone()));
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();

    let id = a.send(&a.file("RECEIPT", b"content"), B, "RECEIPT");
    let _sqd = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.receipt_verification.is_some());
    assert_eq!(e.receipt_verification.as_deref(), Some("invalid"));
    // Not taken as proof of delivery: still awaiting a valid EERP.
    assert_eq!(e.state, EntryState::SentAwaitingEerp, "{e:#?}");
    assert!(e
        .last_error
        .as_deref()
        .unwrap()
        .contains("receipt signature invalid"));
    // B did receive the file (its signature was fine).
    assert_eq!(
        std::fs::read(b.inbox_from(A).join("RECEIPT")).unwrap(),
        b"content"
    );
    let log = a.log("os4xsqd");
    assert!(log.contains("signed receipt does not verify"), "{log}");
}

#[test]
fn revoked_partner_certificate_is_refused_after_a_crl_refresh() {
    let crl_dir = tempfile::tempdir().unwrap();
    let crl_file = crl_dir.path().join("ca-crl.pem");
    let server = CrlServer::start(crl_file.clone());
    let pki = Pki::with_crl_url(&server.url());
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    pki.publish_crl(&crl_file);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let b = Station::new(B, &security_section(&pki, "station-b"));
    a.add_partner(B, |p| p.certificate = Some(b_cert.clone()));
    b.add_partner(A, |p| p.certificate = Some(a_cert.clone()));
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();

    let before = a.send(&a.file("BEFORE", b"1"), B, "BEFORE");
    let _sqd = a.spawn(SQD);
    a.wait_state(before, EntryState::Delivered, LONG);
    let cache = a.config.security.crl_dir.clone();
    let deadline = Instant::now() + LONG;
    while std::fs::read_dir(&cache).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "no CRL downloaded");
        std::thread::sleep(Duration::from_millis(100));
    }

    pki.revoke("station-b");
    pki.publish_crl(&crl_file);
    // Two more downloads: at least one after the new CRL was published.
    let seen = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    while server.requests.load(std::sync::atomic::Ordering::SeqCst) < seen + 2 {
        assert!(Instant::now() < deadline, "no CRL refresh");
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = a.send(&a.file("AFTER", b"2"), B, "AFTER");
    let e = a.wait_entry(after, LONG, |e| e.state == EntryState::Retry);
    let err = e.last_error.unwrap();
    assert!(err.contains("revoked"), "{err}");
    assert!(!b.inbox_from(A).join("AFTER").exists());
    let log = a.log("os4xsqd");
    assert!(log.contains("CRL downloaded and stored"), "{log}");
    assert!(
        log.contains("session refused: partner certificate unusable"),
        "{log}"
    );
}

#[test]
fn expiring_certificates_make_the_check_warn_and_partner_options_are_stored() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    pki.issue_files("station-a", 10);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    let (c_cert, _) = pki.issue_expired_files("station-c");
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let text = std::fs::read_to_string(&a.config_path).unwrap();
    std::fs::write(&a.config_path, format!("required_daemons = []\n{text}")).unwrap();
    let check = || {
        let out = std::process::Command::new(PIDCTL)
            .args(["--config"])
            .arg(&a.config_path)
            .arg("check")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, out) = check();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("OS4X WARNING - our certificate") && out.contains("CN=station-a"),
        "{out}"
    );

    // Partner options through the CLI.
    let b = b_cert.to_string_lossy();
    a.add_partner(B, |_| {});
    let (code, _, err) = a.os4x(&["partner", "set", B, "--encrypt", "true"]);
    assert_eq!(code, 2, "encryption needs the certificate: {err}");
    let (code, _, err) = a.os4x(&[
        "partner",
        "set",
        B,
        "--certificate",
        &b,
        "--sign",
        "true",
        "--encrypt",
        "true",
        "--compress",
        "true",
        "--signed-eerp",
        "true",
        "--cipher-suite",
        "03",
        "--secure-auth",
        "true",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, show, _) = a.os4x(&["partner", "show", B]);
    assert!(
        show.contains("sign yes, encrypt yes, compress yes, signed EERP yes, cipher suite 03")
            && show.contains("secure_auth:          yes"),
        "{show}"
    );
    // 07 (AES-256/SHA3-512) is in Odette's list; 08 is not.
    let (code, _, err) = a.os4x(&["partner", "set", B, "--cipher-suite", "07"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = a.os4x(&["partner", "set", B, "--cipher-suite", "08"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("01..07"), "{err}");
    // A valid partner certificate changes nothing.
    assert_eq!(check().0, 1);

    // An expired partner certificate is critical, and named.
    a.add_partner(C, |p| p.certificate = Some(c_cert.clone()));
    let (code, out) = check();
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("OS4X CRITICAL - partner O0013000000CCCC certificate")
            && out.contains("has expired")
            && out.contains("our certificate"),
        "{out}"
    );
}

#[test]
fn receive_daemon_refuses_a_partner_revoked_by_the_crl_its_sqd_downloaded() {
    let crl_dir = tempfile::tempdir().unwrap();
    let crl_file = crl_dir.path().join("ca-crl.pem");
    let server = CrlServer::start(crl_file.clone());
    let pki = Pki::with_crl_url(&server.url());
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    pki.revoke("station-a");
    pki.publish_crl(&crl_file);
    // A checks nothing (no CA set); B has the CA and downloads its CRL.
    let a = Station::new(
        A,
        &format!(
            "[security]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            pki.path("station-a.pem").display(),
            pki.path("station-a.key").display()
        ),
    );
    let b = Station::new(B, &security_section(&pki, "station-b"));
    a.add_partner(B, |p| p.certificate = Some(b_cert.clone()));
    b.add_partner(A, |p| p.certificate = Some(a_cert.clone()));
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();
    let _sqd_b = b.spawn(SQD);
    let cache = b.config.security.crl_dir.clone();
    let deadline = Instant::now() + LONG;
    while std::fs::read_dir(&cache).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "B downloaded no CRL");
        std::thread::sleep(Duration::from_millis(100));
    }

    let id = a.send(&a.file("REVOKED", b"x"), B, "REVOKED");
    let _sqd_a = a.spawn(SQD);
    let e = a.wait_entry(id, LONG, |e| e.state == EntryState::Retry);
    let err = e.last_error.unwrap();
    assert!(
        err.contains("Secure authentication requirements incompatible"),
        "{err}"
    );
    assert!(!b.inbox_from(A).join("REVOKED").exists());
    let log = b.log("os4xrd_tcpip");
    assert!(
        log.contains("partner certificate unusable") && log.contains("revoked"),
        "{log}"
    );
}

#[test]
fn unsigned_file_from_a_partner_that_must_sign_is_refused_at_sfid() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let b = Station::new(B, "");
    a.add_partner(B, |_| {});
    b.add_partner(A, |p| {
        p.certificate = Some(a_cert.clone());
        p.security.require_signed = true;
    });
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();
    let id = a.send(&a.file("UNSIGNED", b"x"), B, "UNSIGNED");
    let _sqd = a.spawn(SQD);
    let e = a.wait_state(id, EntryState::Failed, LONG);
    let err = e.last_error.unwrap();
    assert!(err.contains("Unsigned file not allowed"), "{err}");
    assert!(!b.inbox_from(A).join("UNSIGNED").exists());
}

#[test]
fn v_format_file_keeps_its_records_through_sign_compress_encrypt() {
    let pki = Pki::with_crl_url("http://127.0.0.1:9/ca.crl");
    let (a_cert, _) = pki.issue_files("station-a", 365);
    let (b_cert, _) = pki.issue_files("station-b", 365);
    let a = Station::new(A, &security_section(&pki, "station-a"));
    let b = Station::new(B, &security_section(&pki, "station-b"));
    a.add_partner(B, |p| {
        p.certificate = Some(b_cert.clone());
        p.security = SecurityPolicy {
            signed_eerp: false,
            secure_auth: false,
            ..full_policy()
        };
    });
    b.add_partner(A, |p| p.certificate = Some(a_cert.clone()));
    a.add_route(B, b.tcp_port, |_| {});
    let _rd_b = b.start_rd();

    // Local V form: each record behind its 2-octet length (section 6.5),
    // lengths from 0 to the SFIDLRECL of 2000.
    let mut data = Vec::new();
    for i in 0..3000u32 {
        let len = (i * 37 % 2001) as u16;
        data.extend_from_slice(&len.to_be_bytes());
        data.extend((0..len).map(|j| (u32::from(j) + i) as u8));
    }
    let file = a.file("VREC", &data);
    let (code, out, err) = a.os4x(&[
        "send",
        &file.to_string_lossy(),
        "--to",
        B,
        "--dataset",
        "VREC",
        "--format",
        "V",
        "--record-size",
        "2000",
    ]);
    assert_eq!(code, 0, "{err}");
    let id: i64 = out.trim().parse().unwrap();
    let _sqd = a.spawn(SQD);
    let e = a.wait_state(id, EntryState::Delivered, LONG);
    // What travelled was the envelope, not the records.
    let cms = std::fs::read(format!("{}.cms", e.outbox_path)).unwrap();
    assert!(!cms
        .windows(data.len().min(64))
        .any(|w| w == &data[..w.len()]));
    // B holds the records again, indicators included, byte for byte.
    assert_eq!(std::fs::read(b.inbox_from(A).join("VREC")).unwrap(), data);
    let (state, security, error) = received(&b, "VREC");
    assert_eq!(state, "received");
    assert_eq!(error, None);
    assert!(security.unwrap().contains("signature verified"));
}
