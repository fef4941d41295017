//! Security services through real in-memory sessions: secure
//! authentication (AUCH/AURP) in both roles, a signed + compressed +
//! encrypted file end to end, a tampered file refused, signed receipts.
//! All key material comes from the openssl CLI (see `pki_support`).

mod pki_support;
mod session_support;

use std::io::Cursor;
use std::sync::{mpsc, Arc};

use bytes::{Bytes, BytesMut};
use oftp2::codec::{Auch, Aurp, Command, Esid, Secd, Ssid};
use oftp2::record::{Counts, Layout, RestartPoint};
use oftp2::security::auth::{self, Challenge, StaticKeys};
use oftp2::security::file::{self, FilePolicy, UnwrapReport, UnwrappingFile};
use oftp2::security::receipt::{self, ReceiptError, ReceiptVerification};
use oftp2::security::{ContentCipher, Identity};
use oftp2::session::{
    Accepted, Config, Event, FileOffer, Handlers, Inbox, OutgoingFile, Receipt, Refusal, Role,
    Session,
};
use oftp2::stb::{self, StbDecoder};
use oftp2::value::{
    CipherSuite, EndFileRefusal, EndSessionReason, NerpReason, Password, ProtocolLevel,
    RecordFormat, SendReceive, StartFileRefusal, UserData,
};
use pki_support::Pki;
use session_support::*;

struct Parties {
    pki: Pki,
    initiator: Identity,
    responder: Identity,
}

fn parties() -> Parties {
    let pki = Pki::new();
    let initiator = pki.issue("initiator", 365);
    let responder = pki.issue("responder", 365);
    Parties {
        pki,
        initiator,
        responder,
    }
}

/// `own` authenticates with `identity` and knows `partner`'s certificate.
fn secure_config(own: &str, identity: &Identity, partner: &str, partner_id: &Identity) -> Config {
    let keys = StaticKeys::new(identity.clone())
        .with_partner(id(partner), partner_id.certificate().clone());
    config(own).with_secure_authentication(Arc::new(keys))
}

fn connected(events: &[Event]) -> Option<bool> {
    events.iter().find_map(|e| match e {
        Event::Connected(n) => Some(n.secure_authentication),
        _ => None,
    })
}

#[test]
fn secure_authentication_succeeds_in_both_directions_and_files_flow() {
    let p = parties();
    let store = new_store();
    let file = mem_file("AUTHENTICATED", Layout::unstructured(), content(0, 5000));
    let mut pair = Pair::new(
        (
            secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![file]),
            ),
        ),
        (
            secure_config(RESPONDER_ID, &p.responder, INITIATOR_ID, &p.initiator),
            handlers(
                INITIATOR_ID,
                TestInbox::new(store.clone(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_eq!(connected(&pair.initiator_events), Some(true));
    assert_eq!(connected(&pair.responder_events), Some(true));
    assert!(ended(&pair.initiator_events).reason == EndSessionReason::Normal);
    assert_eq!(stored(&store, "AUTHENTICATED").data, content(0, 5000));
}

#[test]
fn impostor_initiator_cannot_answer_the_challenge() {
    // The responder has the genuine initiator certificate on file; the
    // caller holds another key pair (same CA, same name).
    let p = parties();
    let impostor = p.pki.issue("initiator-impostor", 365);
    let mut pair = Pair::new(
        (
            secure_config(INITIATOR_ID, &impostor, RESPONDER_ID, &p.responder),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![mem_file("X", Layout::unstructured(), vec![1])]),
            ),
        ),
        (
            secure_config(RESPONDER_ID, &p.responder, INITIATOR_ID, &p.initiator),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_eq!(connected(&pair.initiator_events), None);
    assert_eq!(connected(&pair.responder_events), None);
    assert_eq!(
        ended(&pair.responder_events).reason,
        EndSessionReason::InvalidChallengeResponse
    );
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::InvalidChallengeResponse
    );
}

#[test]
fn impostor_responder_cannot_answer_the_challenge() {
    let p = parties();
    let impostor = p.pki.issue("responder-impostor", 365);
    let mut pair = Pair::new(
        (
            secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![mem_file("X", Layout::unstructured(), vec![1])]),
            ),
        ),
        (
            secure_config(RESPONDER_ID, &impostor, INITIATOR_ID, &p.initiator),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    // The initiator was authenticated by the impostor, but the impostor
    // cannot decrypt the initiator's challenge.
    assert_eq!(connected(&pair.initiator_events), None);
    assert_eq!(connected(&pair.responder_events), None);
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::InvalidChallengeResponse
    );
}

#[test]
fn no_certificate_on_file_ends_with_esid_12() {
    let p = parties();
    let keys = StaticKeys::new(p.responder.clone()); // knows no partner
    let mut pair = Pair::new(
        (
            secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
        (
            config(RESPONDER_ID).with_secure_authentication(Arc::new(keys)),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_eq!(
        ended(&pair.responder_events).reason,
        EndSessionReason::SecureAuthenticationRequirementsIncompatible
    );
}

#[test]
fn secure_authentication_without_keys_is_a_config_error() {
    let mut c = config(INITIATOR_ID);
    c.secure_authentication = true;
    assert!(c.validate().is_err());
}

// ----------------------------------------------------------------------
// A scripted partner, to send wrong AURPs a real session never would.

struct Script {
    session: Session,
    inbound: BytesMut,
    decoder: StbDecoder,
    events: Vec<Event>,
}

impl Script {
    fn send(&mut self, cmd: Command) {
        let mut body = BytesMut::new();
        cmd.encode(ProtocolLevel::V2_0, &mut body).unwrap();
        let mut buf = BytesMut::new();
        stb::encode(&body, &mut buf).unwrap();
        self.session.handle_input(&mut buf);
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }

    fn recv(&mut self) -> Vec<Command> {
        self.session.poll_transmit(&mut self.inbound);
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
        let mut out = Vec::new();
        while let Some(frame) = self.decoder.decode(&mut self.inbound).unwrap() {
            out.push(Command::decode(frame, ProtocolLevel::V2_0).unwrap());
        }
        out
    }
}

fn ssid_of(own: &str) -> Ssid {
    Ssid {
        level: ProtocolLevel::V2_0,
        id: id(own),
        password: Password::new("SECRET").unwrap(),
        buffer_size: 4096,
        capabilities: SendReceive::Both,
        compression: false,
        restart: true,
        special_logic: false,
        credit: 10,
        secure_authentication: true,
        user_data: UserData::EMPTY,
    }
}

fn script(role: Role, config: Config, partner: &str) -> Script {
    let session = Session::new(
        role,
        config,
        handlers(
            partner,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    Script {
        session,
        inbound: BytesMut::new(),
        decoder: StbDecoder::new(),
        events: Vec::new(),
    }
}

fn esid(cmds: &[Command]) -> EndSessionReason {
    match cmds {
        [Command::Esid(Esid { reason, .. })] => *reason,
        other => panic!("expected ESID, got {other:?}"),
    }
}

#[test]
fn responder_refuses_a_wrong_aurp_and_accepts_the_right_one() {
    let p = parties();
    for honest in [false, true] {
        let mut s = script(
            Role::Responder,
            secure_config(RESPONDER_ID, &p.responder, INITIATOR_ID, &p.initiator),
            INITIATOR_ID,
        );
        s.recv(); // SSRM
        s.send(Command::Ssid(ssid_of(INITIATOR_ID)));
        assert!(matches!(&s.recv()[..], [Command::Ssid(a)] if a.secure_authentication));
        assert_eq!(s.session.state_name(), "WF_SECD");
        s.send(Command::Secd(Secd));
        let cmds = s.recv();
        let [Command::Auch(auch)] = &cmds[..] else {
            panic!("expected AUCH, got {cmds:?}")
        };
        let mut response = auth::respond(&auch.challenge, &p.initiator).unwrap();
        if !honest {
            response[7] ^= 1;
        }
        s.send(Command::Aurp(Aurp { response }));
        if !honest {
            assert_eq!(esid(&s.recv()), EndSessionReason::InvalidChallengeResponse);
            assert!(!s.events.iter().any(|e| matches!(e, Event::Connected(_))));
            continue;
        }
        // Now the responder proves itself: SECD, our AUCH, its AURP.
        assert_eq!(s.recv(), vec![Command::Secd(Secd)]);
        let challenge =
            Challenge::new(p.responder.certificate(), ContentCipher::TripleDesCbc).unwrap();
        s.send(Command::Auch(Auch {
            challenge: Bytes::copy_from_slice(challenge.envelope()),
        }));
        let cmds = s.recv();
        let [Command::Aurp(aurp)] = &cmds[..] else {
            panic!("expected AURP, got {cmds:?}")
        };
        assert!(challenge.verify(&aurp.response));
        assert_eq!(s.session.state_name(), "IDLELI");
        assert!(s.events.iter().any(|e| matches!(e, Event::Connected(_))));
    }
}

#[test]
fn initiator_refuses_a_wrong_aurp() {
    let p = parties();
    let mut s = script(
        Role::Initiator,
        secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder),
        RESPONDER_ID,
    );
    s.send(Command::Ssrm(oftp2::codec::Ssrm));
    assert!(matches!(&s.recv()[..], [Command::Ssid(_)]));
    s.send(Command::Ssid(ssid_of(RESPONDER_ID)));
    assert_eq!(s.recv(), vec![Command::Secd(Secd)]);
    // Challenge the initiator properly; it answers.
    let challenge = Challenge::new(p.initiator.certificate(), ContentCipher::Aes256Cbc).unwrap();
    s.send(Command::Auch(Auch {
        challenge: Bytes::copy_from_slice(challenge.envelope()),
    }));
    let cmds = s.recv();
    let [Command::Aurp(aurp)] = &cmds[..] else {
        panic!("expected AURP, got {cmds:?}")
    };
    assert!(challenge.verify(&aurp.response));
    // Our turn to be challenged; answer with garbage.
    s.send(Command::Secd(Secd));
    let cmds = s.recv();
    assert!(matches!(&cmds[..], [Command::Auch(_)]), "{cmds:?}");
    s.send(Command::Aurp(Aurp { response: [0; 20] }));
    assert_eq!(esid(&s.recv()), EndSessionReason::InvalidChallengeResponse);
    assert!(!s.events.iter().any(|e| matches!(e, Event::Connected(_))));
}

// ----------------------------------------------------------------------
// File services end to end

/// Inbox that unwraps every file with [`UnwrappingFile`] into the store.
struct SecureInbox {
    store: Store,
    ours: Identity,
    partner: Identity,
    reports: mpsc::Sender<UnwrapReport>,
}

impl Inbox for SecureInbox {
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        file::check_offer(offer.sfid, &file::ReceivePolicy::default())?;
        let key = offer.sfid.dataset_name.as_str().to_owned();
        self.store
            .lock()
            .unwrap()
            .insert(key.clone(), Stored::default());
        let plain = StoreWriter {
            store: self.store.clone(),
            key,
        };
        let writer = UnwrappingFile::new(
            Box::new(plain),
            offer.sfid,
            Some(self.ours.clone()),
            vec![self.partner.certificate().clone()],
        )
        .with_report(self.reports.clone());
        Ok(Accepted {
            writer: Box::new(writer),
            restart: RestartPoint::START,
        })
    }
}

struct StoreWriter {
    store: Store,
    key: String,
}

impl std::io::Write for StoreWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.store.lock().unwrap();
        s.get_mut(&self.key).unwrap().data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl oftp2::session::IncomingFile for StoreWriter {
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        self.store
            .lock()
            .unwrap()
            .get_mut(&self.key)
            .unwrap()
            .committed = Some(counts);
        Ok(())
    }
    fn abort(&mut self) {
        self.store
            .lock()
            .unwrap()
            .get_mut(&self.key)
            .unwrap()
            .aborted = true;
    }
}

fn protected_file(
    dsn: &str,
    plain: &[u8],
    policy: &FilePolicy,
    p: &Parties,
    tamper: bool,
) -> (OutgoingFile, Vec<u8>) {
    protected_layout_file(dsn, Layout::unstructured(), plain, policy, p, tamper)
}

fn protected_layout_file(
    dsn: &str,
    layout: Layout,
    plain: &[u8],
    policy: &FilePolicy,
    p: &Parties,
    tamper: bool,
) -> (OutgoingFile, Vec<u8>) {
    let protected = file::protect(
        plain,
        layout.format(),
        policy,
        Some(&p.initiator),
        Some(p.responder.certificate()),
    )
    .unwrap();
    let mut sfid = sfid(dsn, layout, 0);
    protected.apply_to(&mut sfid);
    let mut data = protected.data.clone();
    if tamper {
        let last = data.len() - 1;
        data[last] ^= 1;
    }
    let hash = file::file_hash(&data, policy.suite).unwrap();
    (
        OutgoingFile {
            sfid,
            data: Box::new(Cursor::new(data)),
        },
        hash,
    )
}

fn run_secure_transfer(files: Vec<OutgoingFile>, p: &Parties) -> (Pair, Store, Vec<UnwrapReport>) {
    let store = new_store();
    let (tx, rx) = mpsc::channel();
    let inbox = SecureInbox {
        store: store.clone(),
        ours: p.responder.clone(),
        partner: p.initiator.clone(),
        reports: tx,
    };
    let mut pair = Pair::new(
        (
            secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(files),
            ),
        ),
        (
            secure_config(RESPONDER_ID, &p.responder, INITIATOR_ID, &p.initiator),
            Handlers {
                authenticator: Box::new(TestAuth {
                    partner: id(INITIATOR_ID),
                    password: Password::new("SECRET").unwrap(),
                }),
                inbox: Box::new(inbox),
                outbox: Box::new(TestOutbox::default()),
            },
        ),
    );
    pair.run();
    let reports = rx.try_iter().collect();
    (pair, store, reports)
}

#[test]
fn signed_compressed_encrypted_file_arrives_verified() {
    let p = parties();
    let plain = content(0, 300_000);
    let mut files = Vec::new();
    let mut hashes = Vec::new();
    // Every combination SFID allows, in every suite of Odette's list
    // (01/02 of RFC 5024, 03..07).
    let mut n = 0;
    for suite in (1..=7).map(CipherSuite::from_code) {
        for bits in 0..8u8 {
            let policy = FilePolicy {
                sign: bits & 1 != 0,
                compress: bits & 2 != 0,
                encrypt: bits & 4 != 0,
                suite,
                signed_eerp: true,
            };
            let (f, h) = protected_file(&format!("F{n}"), &plain, &policy, &p, false);
            files.push(f);
            hashes.push(h);
            n += 1;
        }
    }
    let (pair, store, reports) = run_secure_transfer(files, &p);
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::Normal
    );
    for i in 0..n {
        let s = stored(&store, &format!("F{i}"));
        assert!(s.committed.is_some(), "F{i} not committed");
        assert_eq!(s.data, plain, "F{i} differs");
    }
    assert_eq!(reports.len(), n);
    for (i, r) in reports.iter().enumerate() {
        assert!(r.result.is_ok());
        assert_eq!(r.transmitted_hash.as_deref(), Some(&hashes[i][..]));
        // Signed ones name the initiator.
        assert_eq!(r.signer.is_some(), i % 8 % 2 == 1, "F{i}");
    }
}

/// V records in their local form: each preceded by its 2-octet length
/// (the section 6.5 record length indicator).
fn v_records(lengths: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
        out.extend((0..len).map(|j| (i * 31 + j) as u8));
    }
    out
}

#[test]
fn v_and_f_files_keep_their_records_through_sign_compress_encrypt() {
    let p = parties();
    let policy = FilePolicy {
        sign: true,
        compress: true,
        encrypt: true,
        suite: CipherSuite::Aes256RsaSha1,
        signed_eerp: false,
    };
    // Records of every awkward length, an empty one and one of 65535
    // octets (the largest a length indicator holds) among them.
    let v_plain = v_records(&[0, 1, 80, 65_535, 10, 4096, 0, 3]);
    let f_plain: Vec<u8> = (0..80 * 500).map(|i| (i % 251) as u8).collect();
    let (v, _) = protected_layout_file(
        "VRECORDS",
        Layout::variable(65_535).unwrap(),
        &v_plain,
        &policy,
        &p,
        false,
    );
    let (f, _) = protected_layout_file(
        "FRECORDS",
        Layout::fixed(80).unwrap(),
        &f_plain,
        &policy,
        &p,
        false,
    );
    // SFIDFMT/SFIDLRECL keep the original format (section 5.3.3).
    assert_eq!(v.sfid.format, RecordFormat::Variable);
    assert_eq!(v.sfid.max_record_size, 65_535);
    assert_eq!(f.sfid.format, RecordFormat::Fixed);
    let (pair, store, reports) = run_secure_transfer(vec![v, f], &p);
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::Normal
    );
    assert!(reports.iter().all(|r| r.result.is_ok()), "{reports:?}");
    // Delivered in the local form again: the records are all there.
    assert_eq!(stored(&store, "VRECORDS").data, v_plain);
    assert_eq!(stored(&store, "FRECORDS").data, f_plain);
}

#[test]
fn record_structure_is_checked_before_wrapping_and_after_unwrapping() {
    let p = parties();
    let policy = FilePolicy {
        sign: true,
        compress: false,
        encrypt: false,
        suite: CipherSuite::Aes256RsaSha1,
        signed_eerp: false,
    };
    // A V file whose last indicator promises more than there is.
    let mut broken = v_records(&[5, 7]);
    broken.truncate(broken.len() - 1);
    let err = file::protect(
        &broken,
        RecordFormat::Variable,
        &policy,
        Some(&p.initiator),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            file::FileServiceError::RecordStructure {
                format: RecordFormat::Variable,
                ..
            }
        ),
        "{err}"
    );

    // A sender that announces F 80 for 100 octets: verified, but not
    // deliverable as records, so rejected with NERP 34 (not "signature").
    let plain = vec![b'x'; 100];
    let protected = file::protect(
        &plain,
        RecordFormat::Fixed,
        &policy,
        Some(&p.initiator),
        None,
    )
    .unwrap();
    let mut sfid = sfid("FBROKEN", Layout::fixed(80).unwrap(), 0);
    protected.apply_to(&mut sfid);
    let signers = [p.initiator.certificate().clone()];
    let err = file::unprotect(&protected.data, &sfid, None, &signers).unwrap_err();
    assert!(err.to_string().contains("record structure"), "{err}");
    assert_eq!(err.nerp_reason(), NerpReason::FileProcessingFailed);
    // The same octets announced as F 20 are five whole records.
    sfid.max_record_size = 20;
    let ok = file::unprotect(&protected.data, &sfid, None, &signers).unwrap();
    assert_eq!(ok.data, plain);
    // V with SFIDLRECL 65536 (allowed for enveloped V, section 5.3.3)
    // and records up to the indicator's limit.
    let v = v_records(&[65_535, 1]);
    assert!(file::check_record_structure(&v, RecordFormat::Variable, 65_536).is_ok());
    // ... but a record above a smaller SFIDLRECL is not accepted.
    assert!(file::check_record_structure(&v, RecordFormat::Variable, 100).is_err());
}

#[test]
fn tampered_signed_file_is_refused_with_efna_21_and_nerp_31() {
    let p = parties();
    let plain = content(7, 50_000);
    let policy = FilePolicy {
        sign: true,
        compress: false,
        encrypt: false,
        suite: CipherSuite::Aes256RsaSha1,
        signed_eerp: false,
    };
    let (tampered, _) = protected_file("TAMPERED", &plain, &policy, &p, true);
    let (good, _) = protected_file("GOOD", &plain, &policy, &p, false);
    let (pair, store, reports) = run_secure_transfer(vec![tampered, good], &p);
    // Nothing of the tampered file was delivered as good.
    let t = stored(&store, "TAMPERED");
    assert!(t.committed.is_none() && t.aborted && t.data.is_empty());
    assert!(pair.initiator_events.iter().any(|e| matches!(
        e,
        Event::FileFailed {
            reason: EndFileRefusal::InvalidFileSignature,
            ..
        }
    )));
    assert_eq!(stored(&store, "GOOD").data, plain);
    let err = reports[0].result.clone().unwrap_err();
    assert_eq!(err.nerp_reason(), NerpReason::FileSignatureNotValid);
    assert_eq!(err.nerp_reason().code(), 31);
}

#[test]
fn encrypted_file_for_someone_else_fails_decryption() {
    let p = parties();
    let stranger = p.pki.issue("stranger", 365);
    let plain = content(3, 4000);
    let protected = file::protect(
        &plain,
        RecordFormat::Unstructured,
        &FilePolicy {
            sign: false,
            compress: true,
            encrypt: true,
            suite: CipherSuite::TripleDesRsaSha1,
            signed_eerp: false,
        },
        None,
        Some(stranger.certificate()),
    )
    .unwrap();
    let mut sfid = sfid("WRONGKEY", Layout::unstructured(), 0);
    protected.apply_to(&mut sfid);
    let err = file::unprotect(&protected.data, &sfid, Some(&p.responder), &[]).unwrap_err();
    assert_eq!(err.efna_reason(), EndFileRefusal::FileDecryptionFailure);
    assert_eq!(err.nerp_reason(), NerpReason::FileDecryptionFailed);
    // The SFID fields say what was done.
    assert_eq!(sfid.security.code(), 1);
    assert_eq!(sfid.cipher_suite.code(), 1);
    assert_eq!(sfid.compression.code(), 1);
    assert_eq!(sfid.envelope.code(), 1);
    assert_eq!(sfid.original_file_size, 4);
}

#[test]
fn receiver_policy_refuses_offers_with_the_sfna_reason() {
    let mut s = sfid("X", Layout::unstructured(), 10);
    let strict = file::ReceivePolicy {
        require_signed: true,
        require_encrypted: true,
        ..Default::default()
    };
    let r = file::check_offer(&s, &strict).unwrap_err();
    assert_eq!(r.reason, StartFileRefusal::UnencryptedFileNotAllowed);
    s.security = oftp2::value::SecurityLevel::Encrypted;
    s.cipher_suite = CipherSuite::Other(9);
    let r = file::check_offer(&s, &strict).unwrap_err();
    assert_eq!(r.reason, StartFileRefusal::CipherSuiteNotSupported);
    s.cipher_suite = CipherSuite::Aes256RsaSha1;
    let r = file::check_offer(&s, &strict).unwrap_err();
    assert_eq!(r.reason, StartFileRefusal::UnsignedFileNotAllowed);
    s.security = oftp2::value::SecurityLevel::EncryptedAndSigned;
    assert!(file::check_offer(&s, &strict).is_ok());
}

// ----------------------------------------------------------------------
// Signed receipts

#[test]
fn signed_eerp_travels_and_verifies_tampered_is_rejected() {
    let p = parties();
    let sent = sfid("INVOICE", Layout::unstructured(), 100);
    let transmitted = b"the transmitted virtual file".to_vec();
    let hash = file::file_hash(&transmitted, CipherSuite::Aes256RsaSha1).unwrap();
    // The responder (final recipient) signs the EERP and sends it back.
    let mut eerp = eerp_for(&sent);
    receipt::sign_receipt(&mut eerp, &hash, &p.responder, CipherSuite::Aes256RsaSha1).unwrap();
    let mut signed_nerp = Receipt::Nerp(oftp2::codec::Nerp {
        dataset_name: sent.dataset_name,
        timestamp: sent.timestamp,
        destination: sent.originator,
        originator: sent.destination,
        creator: sent.destination,
        reason: NerpReason::FileSignatureNotValid,
        text: "signature did not verify".into(),
        hash: Bytes::new(),
        signature: Bytes::new(),
    });
    receipt::sign_receipt(&mut signed_nerp, &hash, &p.responder, CipherSuite::Other(3)).unwrap();

    // A third one altered in transit (EERPUSER is not signed, EERPDSN is).
    let Receipt::Eerp(mut forged) = eerp.clone() else {
        panic!()
    };
    forged.dataset_name = oftp2::value::DatasetName::new("OTHERFILE").unwrap();
    let outbox = TestOutbox {
        receipts: vec![eerp, signed_nerp, Receipt::Eerp(forged)].into(),
        ..TestOutbox::default()
    };
    // The originator checks receipts in the session.
    let mut originator = config(INITIATOR_ID);
    originator.receipt_security = Some(Arc::new(
        StaticKeys::new(p.initiator.clone())
            .with_partner(id(RESPONDER_ID), p.responder.certificate().clone()),
    ));
    let mut pair = Pair::new(
        (
            originator,
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                outbox,
            ),
        ),
    );
    pair.run();
    let received: Vec<Receipt> = pair
        .initiator_events
        .iter()
        .filter_map(|e| match e {
            Event::ReceiptReceived(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 3);
    let checked: Vec<ReceiptVerification> = pair
        .initiator_events
        .iter()
        .filter_map(|e| match e {
            Event::ReceiptChecked { verification, .. } => Some(verification.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(checked.len(), 3);
    assert!(checked[0].is_valid() && checked[1].is_valid());
    assert_eq!(
        checked[2],
        ReceiptVerification::Invalid(ReceiptError::ContentMismatch)
    );
    let partner = [p.responder.certificate().clone()];
    for r in &received[..2] {
        let v = receipt::verify_receipt(r, &partner, Some(&hash));
        assert!(v.is_valid(), "{v:?}");
    }
    // Signed by the wrong party.
    assert!(matches!(
        receipt::verify_receipt(&received[0], &[p.initiator.certificate().clone()], None),
        ReceiptVerification::Invalid(ReceiptError::Cms(_))
    ));
    // A different file hash than the one we sent.
    assert!(matches!(
        receipt::verify_receipt(&received[0], &partner, Some(&[0u8; 20])),
        ReceiptVerification::Invalid(ReceiptError::HashMismatch)
    ));
    // A field altered after signing (EERPDEST), signature itself intact.
    let Receipt::Eerp(mut altered) = received[0].clone() else {
        panic!()
    };
    altered.destination = id("O0013MALLORY");
    assert!(matches!(
        receipt::verify_receipt(&Receipt::Eerp(altered.clone()), &partner, None),
        ReceiptVerification::Invalid(ReceiptError::ContentMismatch)
    ));
    // The signature octets corrupted.
    let mut sig = altered.signature.to_vec();
    let mid = sig.len() - 10;
    sig[mid] ^= 0xff;
    let Receipt::Eerp(mut corrupted) = received[0].clone() else {
        panic!()
    };
    corrupted.signature = sig.into();
    assert!(!receipt::verify_receipt(&Receipt::Eerp(corrupted), &partner, None).is_valid());
    // Unsigned stays unsigned.
    assert_eq!(
        receipt::verify_receipt(&eerp_for(&sent), &partner, None),
        ReceiptVerification::Unsigned
    );
}

#[test]
fn eerp_signature_covers_exactly_the_rfc_fields() {
    let sent = sfid("DSN", Layout::unstructured(), 1);
    let Receipt::Eerp(mut e) = eerp_for(&sent) else {
        panic!()
    };
    e.hash = Bytes::from_static(b"HASH");
    let content = receipt::eerp_signed_content(&e).unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(e.dataset_name.padded());
    expected.extend_from_slice(b"20261124");
    expected.extend_from_slice(b"1230000001");
    expected.extend_from_slice(e.destination.padded());
    expected.extend_from_slice(e.originator.padded());
    expected.extend_from_slice(b"HASH");
    assert_eq!(content, expected);
    // EERPUSER is not signed.
    e.user_data = UserData::new("USERDATA").unwrap();
    assert_eq!(receipt::eerp_signed_content(&e).unwrap(), expected);
}

/// A responder whose secure authentication requirement is per partner:
/// decided by the authenticator once the partner's SSID is known.
struct PerPartner {
    inner: Box<dyn oftp2::session::Authenticator>,
    require: bool,
}

impl oftp2::session::Authenticator for PerPartner {
    fn authenticate(&mut self, partner: &Ssid) -> Result<(), EndSessionReason> {
        self.inner.authenticate(partner)
    }

    fn secure_authentication(&mut self, _: &Ssid) -> Option<bool> {
        Some(self.require)
    }
}

fn per_partner_responder(keys: Option<StaticKeys>, require: bool) -> (Config, Handlers) {
    let mut cfg = config(RESPONDER_ID);
    // Keys present, requirement off: the authenticator decides.
    cfg.authentication_keys = keys.map(|k| Arc::new(k) as Arc<dyn auth::SecureAuthentication>);
    let h = handlers(
        INITIATOR_ID,
        TestInbox::new(new_store(), Policy::Store),
        TestOutbox::default(),
    );
    (
        cfg,
        Handlers {
            authenticator: Box::new(PerPartner {
                inner: h.authenticator,
                require,
            }),
            ..h
        },
    )
}

#[test]
fn responder_requirement_per_partner_from_the_authenticator() {
    let p = parties();
    let responder_keys = || {
        StaticKeys::new(p.responder.clone())
            .with_partner(id(INITIATOR_ID), p.initiator.certificate().clone())
    };
    let initiator = |secure: bool| {
        let cfg = if secure {
            secure_config(INITIATOR_ID, &p.initiator, RESPONDER_ID, &p.responder)
        } else {
            config(INITIATOR_ID)
        };
        (
            cfg,
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        )
    };

    // Required for this partner, and the partner offers it: authenticated.
    let mut pair = Pair::new(
        initiator(true),
        per_partner_responder(Some(responder_keys()), true),
    );
    pair.run();
    assert_eq!(connected(&pair.responder_events), Some(true));
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::Normal
    );

    // Not required for this partner: a plain partner connects although
    // the responder holds keys.
    let mut pair = Pair::new(
        initiator(false),
        per_partner_responder(Some(responder_keys()), false),
    );
    pair.run();
    assert_eq!(connected(&pair.responder_events), Some(false));

    // Required, but the partner does not offer it: ESID 12.
    let mut pair = Pair::new(
        initiator(false),
        per_partner_responder(Some(responder_keys()), true),
    );
    pair.run();
    assert_eq!(
        ended(&pair.responder_events).reason,
        EndSessionReason::SecureAuthenticationRequirementsIncompatible
    );

    // Required without keys: ESID 12 with the reason, not a panic.
    let mut pair = Pair::new(initiator(true), per_partner_responder(None, true));
    pair.run();
    let end = ended(&pair.responder_events);
    assert_eq!(
        end.reason,
        EndSessionReason::SecureAuthenticationRequirementsIncompatible
    );
    assert!(end.text.contains("no key pair"), "{}", end.text);
}
