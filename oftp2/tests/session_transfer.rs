//! Two real sessions connected by an in-memory byte shuttle (pure
//! sans-IO): file transfers of all formats and sizes, both directions,
//! receipts, restart, negotiation.

mod session_support;

use std::sync::{Arc, Mutex};

use oftp2::record::{Counts, Layout};
use oftp2::session::{Direction, Event, Origin, Receipt};
use oftp2::value::{EndSessionReason, ProtocolLevel, SendReceive};
use session_support::*;

/// A pair where the initiator sends `files` to a storing responder.
fn sending_pair(files: Vec<oftp2::session::OutgoingFile>, store: &Store) -> Pair {
    Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(files),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(store.clone(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    )
}

fn assert_normal_end(pair: &Pair) {
    let i = ended(&pair.initiator_events);
    let r = ended(&pair.responder_events);
    assert!(i.is_normal(), "initiator: {i}");
    assert!(r.is_normal(), "responder: {r}");
}

#[test]
fn unstructured_sizes_around_buffer_boundaries() {
    // With SSIDSDEB 128 a DATA payload holds 127 octets: one full
    // subrecord (1 + 63) and one of 62 data octets, i.e. 125 file octets.
    let sizes = [
        0usize, 1, 62, 63, 64, 125, 126, 127, 128, 250, 251, 375, 1000, 12_500,
    ];
    for buffer_size in [128u32, 99_999] {
        let store = new_store();
        let files = sizes
            .iter()
            .map(|&n| {
                mem_file(
                    &format!("U{n}"),
                    Layout::unstructured(),
                    content(n as u64, n),
                )
            })
            .collect();
        let mut pair = sending_pair(files, &store);
        // Lower only the responder: the answer must carry the minimum.
        let mut c = config(RESPONDER_ID);
        c.buffer_size = buffer_size;
        pair.responder = oftp2::session::Session::new(
            oftp2::session::Role::Responder,
            c,
            handlers(
                INITIATOR_ID,
                TestInbox::new(store.clone(), Policy::Store),
                TestOutbox::default(),
            ),
        )
        .unwrap();
        pair.run();
        assert_normal_end(&pair);
        assert_eq!(
            pair.initiator.negotiated().unwrap().buffer_size,
            buffer_size
        );
        for &n in &sizes {
            let got = stored(&store, &format!("U{n}"));
            assert_eq!(got.data, content(n as u64, n), "file of {n} octets");
            assert_eq!(
                got.committed,
                Some(Counts {
                    records: 0,
                    units: n as u64
                })
            );
        }
        assert_eq!(done_counts(&pair.initiator_events).len(), sizes.len());
    }
}

#[test]
fn ten_megabytes() {
    let store = new_store();
    let n = 10_000_000;
    let mut pair = sending_pair(
        vec![mem_file("BIG", Layout::unstructured(), content(7, n))],
        &store,
    );
    pair.run();
    assert_normal_end(&pair);
    let got = stored(&store, "BIG");
    assert!(got.data == content(7, n), "10 MB file differs");
    // Progress was reported on both sides.
    for events in [&pair.initiator_events, &pair.responder_events] {
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Progress { units, .. } if *units >= 4 << 20)));
    }
}

/// Local V representation: 2-octet big-endian length, then the record.
fn v_file(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

#[test]
fn fixed_variable_text_formats() {
    let store = new_store();
    let fixed = content(1, 80 * 1000);
    let records: Vec<Vec<u8>> = (0..700)
        .map(|i| content(i as u64, (i * 37) % 500))
        .collect();
    let variable = v_file(&records);
    let text: Vec<u8> = (0..2000)
        .flat_map(|i| format!("LINE {i:05} OF AN EDIFACT-LIKE TEXT FILE\r\n").into_bytes())
        .collect();
    let files = vec![
        mem_file("FIX", Layout::fixed(80).unwrap(), fixed.clone()),
        mem_file("VAR", Layout::variable(500).unwrap(), variable.clone()),
        mem_file("TXT", Layout::text(), text.clone()),
    ];
    let mut pair = sending_pair(files, &store);
    pair.run();
    assert_normal_end(&pair);
    let f = stored(&store, "FIX");
    assert_eq!(f.data, fixed);
    assert_eq!(
        f.committed,
        Some(Counts {
            records: 1000,
            units: 80_000
        })
    );
    let v = stored(&store, "VAR");
    assert_eq!(v.data, variable);
    let units: usize = records.iter().map(Vec::len).sum();
    assert_eq!(
        v.committed,
        Some(Counts {
            records: 700,
            units: units as u64
        })
    );
    let t = stored(&store, "TXT");
    assert_eq!(t.data, text);
    assert_eq!(t.committed.unwrap().records, 0);
}

#[test]
fn both_directions_in_one_session_via_cd_with_receipts() {
    let i_store = new_store();
    let r_store = new_store();
    let a = mem_file("FROM-I-1", Layout::unstructured(), content(1, 5000));
    let b = mem_file("FROM-I-2", Layout::unstructured(), content(2, 6000));
    let mut c = mem_file("FROM-R", Layout::unstructured(), content(3, 7000));
    c.sfid.originator = id(RESPONDER_ID);
    c.sfid.destination = id(INITIATOR_ID);
    let receipt_sfid = sfid("OLD-FILE", Layout::unstructured(), 10);
    let mut r_outbox = TestOutbox::with_files(vec![c]);
    r_outbox.receipts.push_back(eerp_for(&receipt_sfid));
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(i_store.clone(), Policy::Store),
                TestOutbox::with_files(vec![a, b]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(r_store.clone(), Policy::Store),
                r_outbox,
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    assert_eq!(stored(&r_store, "FROM-I-1").data, content(1, 5000));
    assert_eq!(stored(&r_store, "FROM-I-2").data, content(2, 6000));
    assert_eq!(stored(&i_store, "FROM-R").data, content(3, 7000));
    // The receipt went from responder (speaker after CD) to the initiator.
    assert!(pair
        .initiator_events
        .iter()
        .any(|e| matches!(e, Event::ReceiptReceived(Receipt::Eerp(r)) if r.dataset_name.as_str() == "OLD-FILE")));
    assert!(pair
        .responder_events
        .iter()
        .any(|e| matches!(e, Event::ReceiptSent(_))));
    // The initiator got the turn back last (unsolicited CD) with nothing
    // left to send, so it released the session.
    assert_eq!(ended(&pair.initiator_events).origin, Origin::Local);
    assert_eq!(ended(&pair.responder_events).origin, Origin::Remote);
}

#[test]
fn efpa_change_direction_request_hands_over_the_turn() {
    let i_store = new_store();
    let r_store = new_store();
    let a = mem_file("I-1", Layout::unstructured(), content(1, 3000));
    let b = mem_file("I-2", Layout::unstructured(), content(2, 3000));
    let c = mem_file("R-1", Layout::unstructured(), content(3, 3000));
    let mut r_outbox = TestOutbox::with_files(vec![c]);
    r_outbox.want_turn = true;
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(i_store.clone(), Policy::Store),
                TestOutbox::with_files(vec![a, b]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(r_store.clone(), Policy::Store),
                r_outbox,
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    // Order seen by the initiator: I-1 sent, R-1 received, then I-2 sent.
    let order: Vec<(Direction, String)> = pair
        .initiator_events
        .iter()
        .filter_map(|e| match e {
            Event::FileDone {
                direction, file, ..
            } => Some((*direction, file.dataset_name.as_str().to_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            (Direction::Send, "I-1".to_owned()),
            (Direction::Receive, "R-1".to_owned()),
            (Direction::Send, "I-2".to_owned()),
        ]
    );
    assert_eq!(stored(&r_store, "I-2").data, content(2, 3000));
}

#[test]
fn restart_after_interruption_resumes_byte_identical() {
    for (layout, data, dsn) in [
        (Layout::unstructured(), content(11, 3_000_000), "RESTART-U"),
        (
            Layout::fixed(100).unwrap(),
            content(12, 100 * 30_000),
            "RESTART-F",
        ),
        (
            Layout::variable(999).unwrap(),
            v_file(
                &(0..9000)
                    .map(|i| content(i, (i as usize * 13) % 999))
                    .collect::<Vec<_>>(),
            ),
            "RESTART-V",
        ),
    ] {
        let store = new_store();
        let mut pair = sending_pair(vec![mem_file(dsn, layout, data.clone())], &store);
        // Cut at an arbitrary point, not on any buffer or record boundary.
        pair.run_until_cut(1_234_567);
        let partial = stored(&store, dsn);
        assert!(partial.aborted && partial.committed.is_none());
        assert!(partial.data.len() > 500_000 && partial.data.len() < data.len());
        assert_eq!(partial.data[..], data[..partial.data.len()]);
        assert_eq!(ended(&pair.initiator_events).origin, Origin::Network);
        assert!(pair.responder_events.iter().any(|e| matches!(
            e,
            Event::FileInterrupted { direction: Direction::Receive, units, .. }
                if *units > 0
        )));

        // The sender offers a position past what the receiver has (it does
        // not know exactly); the receiver answers what it holds.
        let mut file = mem_file(dsn, layout, data.clone());
        file.sfid.restart_position = match dsn {
            "RESTART-F" => 30_000,
            "RESTART-V" => 9_000,
            _ => 2_900,
        };
        let mut pair = sending_pair(vec![file], &store);
        pair.run();
        assert_normal_end(&pair);
        let restarted = pair
            .initiator_events
            .iter()
            .find_map(|e| match e {
                Event::FileStarted {
                    restart_position,
                    restart_offset,
                    ..
                } => Some((*restart_position, *restart_offset)),
                _ => None,
            })
            .unwrap();
        assert!(restarted.0 > 0, "{dsn}: no restart happened");
        assert!(restarted.1 <= partial.data.len() as u64);
        let fin = stored(&store, dsn);
        assert!(fin.data == data, "{dsn}: restarted file differs");
        assert_eq!(fin.committed.unwrap().units as usize, {
            if dsn == "RESTART-V" {
                data.len() - 2 * 9000
            } else {
                data.len()
            }
        });
        // Less than the whole file travelled the second time.
        assert!(pair.i2r_total < data.len() as u64);
    }
}

#[test]
fn start_file_refusal_with_retry_later() {
    let offers_store = new_store();
    let refusal = oftp2::session::Refusal::new(oftp2::value::StartFileRefusal::FileSizeTooBig)
        .retry_later(true)
        .with_text("disk full");
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![
                    mem_file("A", Layout::unstructured(), content(0, 10)),
                    mem_file("B", Layout::unstructured(), content(0, 10)),
                ]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(offers_store, Policy::Refuse(refusal)),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    let refused: Vec<_> = pair
        .initiator_events
        .iter()
        .filter_map(|e| match e {
            Event::FileRefused {
                direction: Direction::Send,
                reason,
                retry_later,
                text,
                ..
            } => Some((reason.code(), *retry_later, text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            (6, true, "disk full".to_owned()),
            (6, true, "disk full".to_owned())
        ]
    );
}

#[test]
fn end_file_refusal_from_the_application() {
    struct Rejecting;
    impl std::io::Write for Rejecting {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl oftp2::session::IncomingFile for Rejecting {
        fn commit(
            &mut self,
            _: Counts,
        ) -> Result<(), oftp2::session::Refusal<oftp2::value::EndFileRefusal>> {
            Err(
                oftp2::session::Refusal::new(oftp2::value::EndFileRefusal::InvalidFileSignature)
                    .with_text("signature check failed"),
            )
        }
    }
    struct RejectInbox;
    impl oftp2::session::Inbox for RejectInbox {
        fn accept(
            &mut self,
            _: &oftp2::session::FileOffer<'_>,
        ) -> Result<oftp2::session::Accepted, oftp2::session::Refusal<oftp2::value::StartFileRefusal>>
        {
            Ok(oftp2::session::Accepted {
                writer: Box::new(Rejecting),
                restart: oftp2::record::RestartPoint::START,
            })
        }
    }
    let mut r = handlers(
        INITIATOR_ID,
        TestInbox::new(new_store(), Policy::Store),
        TestOutbox::default(),
    );
    r.inbox = Box::new(RejectInbox);
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![mem_file(
                    "SIGNED",
                    Layout::unstructured(),
                    content(0, 1000),
                )]),
            ),
        ),
        (config(RESPONDER_ID), r),
    );
    pair.run();
    assert_normal_end(&pair);
    assert!(pair.initiator_events.iter().any(|e| matches!(
        e,
        Event::FileFailed { direction: Direction::Send, reason, text, .. }
            if reason.code() == 21 && text == "signature check failed"
    )));
}

fn refused_session(initiator_cfg: oftp2::session::Config, expected: EndSessionReason) {
    let mut pair = Pair::new(
        (
            initiator_cfg,
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
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    let r = ended(&pair.responder_events);
    assert_eq!((r.origin, r.reason), (Origin::Local, expected));
    let i = ended(&pair.initiator_events);
    assert_eq!((i.origin, i.reason), (Origin::Remote, expected));
    assert!(!i.text.is_empty(), "ESID text explains the reason at 2.0");
    assert!(pair.initiator.negotiated().is_none());
}

#[test]
fn wrong_password_ends_with_esid_04() {
    let mut c = config(INITIATOR_ID);
    c.password = oftp2::value::Password::new("WRONG").unwrap();
    refused_session(c, EndSessionReason::InvalidPassword);
}

#[test]
fn unknown_partner_ends_with_esid_03() {
    refused_session(
        config("O0013000000000000OTHER"),
        EndSessionReason::UserCodeNotKnown,
    );
}

#[test]
fn incompatible_modes_end_with_esid_10() {
    let mut c = config(INITIATOR_ID);
    c.mode = SendReceive::Receive;
    let mut pair = Pair::new(
        (
            c,
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
        (
            {
                let mut c = config(RESPONDER_ID);
                c.mode = SendReceive::Receive;
                c
            },
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_eq!(
        ended(&pair.initiator_events).reason,
        EndSessionReason::ModeOrCapabilitiesIncompatible
    );
}

#[test]
fn negotiation_down_to_1_4_and_transfer() {
    let store = new_store();
    let mut pair = sending_pair(
        vec![mem_file("OLD", Layout::unstructured(), content(5, 300_000))],
        &store,
    );
    let mut c = config(RESPONDER_ID);
    c.level = ProtocolLevel::V1_4;
    c.credit = 7;
    c.buffer_size = 4096;
    pair.responder = oftp2::session::Session::new(
        oftp2::session::Role::Responder,
        c,
        handlers(
            INITIATOR_ID,
            TestInbox::new(store.clone(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    pair.run();
    assert_normal_end(&pair);
    let n = pair.initiator.negotiated().unwrap();
    assert_eq!(n.level, ProtocolLevel::V1_4);
    assert_eq!((n.credit, n.buffer_size), (7, 4096));
    assert_eq!(n.partner.level, ProtocolLevel::V1_4);
    assert_eq!(stored(&store, "OLD").data, content(5, 300_000));
}

#[test]
fn compression_negotiated_on_and_off() {
    // Long runs compress well; the wire carries far fewer octets.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i / 1000) as u8).collect();
    for (i_cmp, r_cmp, expect) in [
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ] {
        let store = new_store();
        let mut ci = config(INITIATOR_ID);
        ci.compression = i_cmp;
        let mut cr = config(RESPONDER_ID);
        cr.compression = r_cmp;
        let mut pair = Pair::new(
            (
                ci,
                handlers(
                    RESPONDER_ID,
                    TestInbox::new(new_store(), Policy::Store),
                    TestOutbox::with_files(vec![mem_file(
                        "RUNS",
                        Layout::unstructured(),
                        data.clone(),
                    )]),
                ),
            ),
            (
                cr,
                handlers(
                    INITIATOR_ID,
                    TestInbox::new(store.clone(), Policy::Store),
                    TestOutbox::default(),
                ),
            ),
        );
        pair.run();
        assert_normal_end(&pair);
        assert_eq!(pair.initiator.negotiated().unwrap().compression, expect);
        assert_eq!(pair.responder.negotiated().unwrap().compression, expect);
        assert_eq!(stored(&store, "RUNS").data, data);
        if expect {
            assert!(pair.i2r_total < 20_000, "sent {}", pair.i2r_total);
        } else {
            assert!(pair.i2r_total > 200_000);
        }
    }
}

#[test]
fn mode_narrowing_receive_only_initiator_gets_files() {
    let i_store = new_store();
    let mut ci = config(INITIATOR_ID);
    ci.mode = SendReceive::Receive;
    let mut pair = Pair::new(
        (
            ci,
            handlers(
                RESPONDER_ID,
                TestInbox::new(i_store.clone(), Policy::Store),
                // Would be sent if the mode allowed it; it must not be.
                TestOutbox::with_files(vec![mem_file("NOT-SENT", Layout::unstructured(), vec![1])]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![mem_file(
                    "PICKUP",
                    Layout::unstructured(),
                    content(9, 9999),
                )]),
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    assert_eq!(pair.responder.negotiated().unwrap().mode, SendReceive::Send);
    assert_eq!(stored(&i_store, "PICKUP").data, content(9, 9999));
    assert!(!pair.initiator_events.iter().any(|e| matches!(
        e,
        Event::FileStarted {
            direction: Direction::Send,
            ..
        }
    )));
}

#[test]
fn pattern_check_receiver_sees_the_exact_stream() {
    let report = Arc::new(Mutex::new(CheckReport::default()));
    let n = 5_000_001;
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![pattern_file("STREAM", n)]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Check(report.clone())),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    let report = report.lock().unwrap();
    assert_eq!(report.first_mismatch, None);
    assert_eq!(report.received, n);
    assert_eq!(report.committed.unwrap().units, n);
}

fn nerp_for(sfid: &oftp2::codec::Sfid) -> Receipt {
    Receipt::Nerp(oftp2::codec::Nerp {
        dataset_name: sfid.dataset_name,
        timestamp: sfid.timestamp,
        destination: sfid.originator,
        originator: sfid.destination,
        creator: sfid.destination,
        reason: oftp2::value::NerpReason::from_code(11),
        text: "cannot map".into(),
        hash: bytes::Bytes::new(),
        signature: bytes::Bytes::new(),
    })
}

#[test]
fn eerp_and_nerp_are_delivered_and_acknowledged() {
    let about = sfid("EARLIER", Layout::unstructured(), 1);
    let mut outbox = TestOutbox::default();
    outbox.receipts.push_back(eerp_for(&about));
    outbox.receipts.push_back(nerp_for(&about));
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                outbox,
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    let received: Vec<&Receipt> = pair
        .responder_events
        .iter()
        .filter_map(|e| match e {
            Event::ReceiptReceived(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(received, vec![&eerp_for(&about), &nerp_for(&about)]);
    let sent = pair
        .initiator_events
        .iter()
        .filter(|e| matches!(e, Event::ReceiptSent(_)))
        .count();
    assert_eq!(sent, 2, "each receipt acknowledged by its own RTR");
}

#[test]
fn partner_at_1_3_gets_what_its_level_can_carry() {
    let store = new_store();
    let about = sfid("EARLIER", Layout::unstructured(), 1);
    // 1.3 has no time counter: a file stamped with one cannot be offered.
    let with_counter = mem_file("COUNTER", Layout::unstructured(), content(0, 100));
    let mut plain = mem_file("PLAIN", Layout::unstructured(), content(1, 100));
    plain.sfid.timestamp = oftp2::value::Timestamp::new(
        oftp2::value::Date::new(2026, 11, 24).unwrap(),
        oftp2::value::Time::new(12, 30, 0, 0).unwrap(),
    );
    let mut outbox = TestOutbox::with_files(vec![with_counter, plain]);
    outbox.receipts.push_back(nerp_for(&about));
    let mut cr = config(RESPONDER_ID);
    cr.level = ProtocolLevel::V1_3;
    let mut pair = Pair::new(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                outbox,
            ),
        ),
        (
            cr,
            handlers(
                INITIATOR_ID,
                TestInbox::new(store.clone(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
    );
    pair.run();
    assert_normal_end(&pair);
    assert_eq!(
        pair.initiator.negotiated().unwrap().level,
        ProtocolLevel::V1_3
    );
    assert!(pair
        .initiator_events
        .iter()
        .any(|e| matches!(e, Event::ReceiptSkipped(Receipt::Nerp(_)))));
    assert!(pair.initiator_events.iter().any(
        |e| matches!(e, Event::FileSkipped { file, .. } if file.dataset_name.as_str() == "COUNTER")
    ));
    assert_eq!(stored(&store, "PLAIN").data, content(1, 100));
}

/// The responder's authenticator, with a per-partner answer password.
struct AnswerWith {
    inner: TestAuth,
    answer: Option<oftp2::value::Password>,
}

impl oftp2::session::Authenticator for AnswerWith {
    fn authenticate(&mut self, partner: &oftp2::codec::Ssid) -> Result<(), EndSessionReason> {
        self.inner.authenticate(partner)
    }

    fn answer_password(&mut self, _: &oftp2::codec::Ssid) -> Option<oftp2::value::Password> {
        self.answer
    }
}

/// The initiator expects `PERPART` from the responder, which is not the
/// responder's configured password: the session only comes up when the
/// responder's authenticator supplies the per-partner answer.
fn answer_password_pair(answer: Option<&str>) -> Pair {
    let password = |s: &str| oftp2::value::Password::new(s).unwrap();
    let mut initiator = handlers(
        RESPONDER_ID,
        TestInbox::new(new_store(), Policy::Store),
        TestOutbox::default(),
    );
    initiator.authenticator = Box::new(TestAuth {
        partner: id(RESPONDER_ID),
        password: password("PERPART"),
    });
    let mut responder = handlers(
        INITIATOR_ID,
        TestInbox::new(new_store(), Policy::Store),
        TestOutbox::default(),
    );
    responder.authenticator = Box::new(AnswerWith {
        inner: TestAuth {
            partner: id(INITIATOR_ID),
            password: password("SECRET"),
        },
        answer: answer.map(password),
    });
    let mut pair = Pair::new(
        (config(INITIATOR_ID), initiator),
        (config(RESPONDER_ID), responder),
    );
    pair.run();
    pair
}

#[test]
fn responder_answers_with_the_per_partner_password() {
    let pair = answer_password_pair(Some("PERPART"));
    assert!(pair.initiator.negotiated().is_some());
    assert!(ended(&pair.initiator_events).is_normal());

    let pair = answer_password_pair(None);
    assert!(pair.initiator.negotiated().is_none());
    let i = ended(&pair.initiator_events);
    assert_eq!(
        (i.origin, i.reason),
        (Origin::Local, EndSessionReason::InvalidPassword)
    );
}
