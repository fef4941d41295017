//! One real session against a partner scripted command by command: credit
//! window, EFID count checks, ESID reason codes, timeouts, deviations.

mod session_support;

use bytes::{Bytes, BytesMut};
use oftp2::codec::{Cdt, Command, Efid, Esid, Sfid, Ssid, Ssrm};
use oftp2::record::Layout;
use oftp2::session::{DeviationReport, Direction, Event, Origin, Role, Session, TimerRequest};
use oftp2::stb::{self, StbDecoder};
use oftp2::value::{
    EndFileRefusal, EndSessionReason, Password, ProtocolLevel, SendReceive, UserData,
};
use session_support::*;

/// The scripted side of a connection to a real [`Session`].
struct Script {
    session: Session,
    level: ProtocolLevel,
    inbound: BytesMut,
    decoder: StbDecoder,
    events: Vec<Event>,
}

impl Script {
    fn new(session: Session) -> Self {
        Self {
            session,
            level: ProtocolLevel::V2_0,
            inbound: BytesMut::new(),
            decoder: StbDecoder::new(),
            events: Vec::new(),
        }
    }

    fn send_raw(&mut self, exchange_buffer: &[u8]) {
        let mut buf = BytesMut::new();
        stb::encode(exchange_buffer, &mut buf).unwrap();
        self.session.handle_input(&mut buf);
        assert!(buf.is_empty());
        self.collect();
    }

    fn send(&mut self, cmd: Command) {
        let mut body = BytesMut::new();
        cmd.encode(self.level, &mut body).unwrap();
        self.send_raw(&body);
    }

    /// Everything the session sends now, decoded.
    fn recv(&mut self) -> Vec<Command> {
        self.session.poll_transmit(&mut self.inbound);
        self.collect();
        let mut out = Vec::new();
        while let Some(frame) = self.decoder.decode(&mut self.inbound).unwrap() {
            out.push(Command::decode(frame, self.level).unwrap());
        }
        out
    }

    fn collect(&mut self) {
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
    }
}

fn partner_ssid(level: ProtocolLevel, credit: u16, buffer_size: u32) -> Ssid {
    Ssid {
        level,
        id: id(INITIATOR_ID),
        password: Password::new("SECRET").unwrap(),
        buffer_size,
        capabilities: SendReceive::Both,
        compression: false,
        restart: true,
        special_logic: false,
        credit,
        secure_authentication: false,
        user_data: UserData::EMPTY,
    }
}

fn responder(store: &Store) -> Script {
    let session = Session::new(
        Role::Responder,
        config(RESPONDER_ID),
        handlers(
            INITIATOR_ID,
            TestInbox::new(store.clone(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    Script::new(session)
}

/// A responder session that has accepted our scripted SSID.
fn connected_responder(store: &Store, level: ProtocolLevel) -> Script {
    let mut s = responder(store);
    assert_eq!(s.recv(), vec![Command::Ssrm(Ssrm)]);
    s.send(Command::Ssid(partner_ssid(level, 10, 2048)));
    let answer = s.recv();
    let [Command::Ssid(answer)] = &answer[..] else {
        panic!("expected SSID, got {answer:?}");
    };
    assert_eq!(answer.level, level);
    assert_eq!((answer.credit, answer.buffer_size), (10, 2048));
    assert_eq!(answer.id, id(RESPONDER_ID));
    s.level = level;
    assert_eq!(s.session.state_name(), "IDLELI");
    s
}

fn expect_esid(s: &mut Script, reason: EndSessionReason) {
    let cmds = s.recv();
    match &cmds[..] {
        [Command::Esid(Esid { reason: r, .. })] => assert_eq!(*r, reason),
        other => panic!("expected ESID {reason}, got {other:?}"),
    }
    let end = ended(&s.events);
    assert_eq!((end.origin, end.reason), (Origin::Local, reason));
    assert!(s.session.is_ended());
    assert_eq!(s.session.state_name(), "WF_NDISC");
    s.session.handle_eof();
    assert!(s.session.is_closed());
}

/// DATA payload of F records: each record one subrecord with End of Record.
fn fixed_records_payload(records: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![b'D'];
    for r in records {
        p.push(0x80 | r.len() as u8);
        p.extend_from_slice(r);
    }
    p
}

fn fixed_sfid(dsn: &str) -> Sfid {
    sfid(dsn, Layout::fixed(10).unwrap(), 30)
}

#[test]
fn credit_window_sender_stops_at_the_limit() {
    let store = new_store();
    let mut ci = config(INITIATOR_ID);
    ci.credit = 4;
    ci.buffer_size = 128;
    let mut pair = Pair::new(
        (
            ci,
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![mem_file(
                    "CREDIT",
                    Layout::unstructured(),
                    content(0, 100_000),
                )]),
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
    );
    // Run the start-up by hand until the initiator has SFPA.
    while pair.initiator.state_name() != "OPO" {
        pair.responder.poll_transmit(&mut pair.r2i);
        pair.initiator.handle_input(&mut pair.r2i);
        if pair.initiator.state_name() == "OPO" {
            break;
        }
        pair.initiator.poll_transmit(&mut pair.i2r);
        pair.responder.handle_input(&mut pair.i2r);
    }
    assert_eq!(pair.responder.negotiated().unwrap().credit, 4);

    // No CDT is delivered: exactly `credit` DATA buffers, then silence.
    let mut wire = BytesMut::new();
    pair.initiator.poll_transmit(&mut wire);
    let sent = frames(&wire);
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent.iter().all(|&(cmd, len)| cmd == b'D' && len <= 128));
    assert_eq!(pair.initiator.state_name(), "OPOWFC");
    for _ in 0..3 {
        let mut more = BytesMut::new();
        assert_eq!(pair.initiator.poll_transmit(&mut more), 0);
    }

    // The listener consumes the window and grants exactly one CDT.
    pair.responder.handle_input(&mut wire);
    let mut answer = BytesMut::new();
    pair.responder.poll_transmit(&mut answer);
    assert_eq!(frames(&answer), vec![(b'C', 3)]);
    pair.initiator.handle_input(&mut answer);
    assert_eq!(pair.initiator.state_name(), "OPO");
    let mut wire = BytesMut::new();
    pair.initiator.poll_transmit(&mut wire);
    assert_eq!(frames(&wire).len(), 4);

    // And the rest completes normally.
    pair.responder.handle_input(&mut wire);
    pair.run();
    assert!(ended(&pair.initiator_events).is_normal());
    assert_eq!(stored(&store, "CREDIT").data, content(0, 100_000));
}

#[test]
fn efid_record_and_unit_counts_are_verified() {
    let store = new_store();
    let mut s = connected_responder(&store, ProtocolLevel::V2_0);
    let records: [&[u8]; 2] = [b"0123456789", b"ABCDEFGHIJ"];
    for (dsn, efid, expected) in [
        (
            "WRONG-RECORDS",
            Efid {
                record_count: 3,
                unit_count: 20,
            },
            Some(EndFileRefusal::InvalidRecordCount),
        ),
        (
            "WRONG-UNITS",
            Efid {
                record_count: 2,
                unit_count: 21,
            },
            Some(EndFileRefusal::InvalidByteCount),
        ),
        (
            "RIGHT",
            Efid {
                record_count: 2,
                unit_count: 20,
            },
            None,
        ),
    ] {
        s.send(Command::Sfid(fixed_sfid(dsn)));
        assert!(matches!(&s.recv()[..], [Command::Sfpa(a)] if a.answer_count == 0));
        s.send_raw(&fixed_records_payload(&records));
        assert!(s.recv().is_empty());
        s.send(Command::Efid(efid));
        let answer = s.recv();
        match expected {
            Some(reason) => {
                assert!(
                    matches!(&answer[..], [Command::Efna(e)] if e.reason == reason && !e.text.is_empty()),
                    "{dsn}: {answer:?}"
                );
                assert!(stored(&store, dsn).aborted);
            }
            None => {
                assert!(matches!(&answer[..], [Command::Efpa(e)] if !e.change_direction));
                assert_eq!(stored(&store, dsn).data, b"0123456789ABCDEFGHIJ");
            }
        }
        assert_eq!(s.session.state_name(), "IDLELI");
    }
    assert!(s.events.iter().any(|e| matches!(
        e,
        Event::FileFailed {
            direction: Direction::Receive,
            reason: EndFileRefusal::InvalidRecordCount,
            ..
        }
    )));
}

#[test]
fn command_out_of_state_is_a_protocol_violation() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    s.send(Command::Cdt(Cdt));
    expect_esid(&mut s, EndSessionReason::ProtocolViolation);
}

#[test]
fn unknown_command_ends_with_esid_01() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    s.send_raw(b"Zgarbage");
    expect_esid(&mut s, EndSessionReason::CommandNotRecognised);
}

#[test]
fn bad_stream_header_ends_the_session() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    // STH version 2.
    let mut buf = BytesMut::from(&[0x20, 0, 0, 6, b'C', b' '][..]);
    s.session.handle_input(&mut buf);
    s.collect();
    expect_esid(&mut s, EndSessionReason::ProtocolViolation);
}

#[test]
fn data_larger_than_negotiated_is_a_buffer_size_error() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    s.send(Command::Sfid(sfid("BIG", Layout::unstructured(), 10)));
    assert!(matches!(&s.recv()[..], [Command::Sfpa(_)]));
    let mut data = vec![b'D'];
    for _ in 0..40 {
        data.push(63);
        data.extend_from_slice(&[b'x'; 63]);
    }
    assert!(data.len() > 2048);
    s.send_raw(&data);
    expect_esid(&mut s, EndSessionReason::ExchangeBufferSizeError);
    // The partial file is handed back for a later restart.
    assert!(s.events.iter().any(|e| matches!(
        e,
        Event::FileInterrupted {
            direction: Direction::Receive,
            units: 0,
            ..
        }
    )));
}

#[test]
fn partner_requiring_secure_authentication_gets_esid_12() {
    let mut s = responder(&new_store());
    s.recv();
    let mut ssid = partner_ssid(ProtocolLevel::V2_0, 10, 2048);
    ssid.secure_authentication = true;
    s.send(Command::Ssid(ssid));
    expect_esid(
        &mut s,
        EndSessionReason::SecureAuthenticationRequirementsIncompatible,
    );
}

#[test]
fn responder_answering_a_larger_credit_is_a_protocol_error() {
    let mut ci = config(INITIATOR_ID);
    ci.credit = 10;
    let session = Session::new(
        Role::Initiator,
        ci,
        handlers(
            RESPONDER_ID,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    let mut s = Script::new(session);
    assert!(s.recv().is_empty(), "the initiator waits for SSRM");
    s.send(Command::Ssrm(Ssrm));
    assert!(matches!(&s.recv()[..], [Command::Ssid(ssid)] if ssid.credit == 10));
    let mut answer = partner_ssid(ProtocolLevel::V2_0, 999, 2048);
    answer.id = id(RESPONDER_ID);
    s.send(Command::Ssid(answer));
    expect_esid(&mut s, EndSessionReason::ProtocolViolation);
}

#[test]
fn sloppy_ssid_terminator_is_accepted_and_reported() {
    let mut s = responder(&new_store());
    s.recv();
    let mut body = BytesMut::new();
    Command::Ssid(partner_ssid(ProtocolLevel::V2_0, 10, 2048))
        .encode(ProtocolLevel::V2_0, &mut body)
        .unwrap();
    let last = body.len() - 1;
    assert_eq!(body[last], b'\r');
    body[last] = b'\n';
    s.send_raw(&body);
    assert!(matches!(&s.recv()[..], [Command::Ssid(_)]));
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, Event::Deviation(DeviationReport::Format(_)))));
    assert!(s.events.iter().any(|e| matches!(e, Event::Connected(_))));
}

#[test]
fn partner_at_level_1_4_is_served_in_1_4_layouts() {
    let store = new_store();
    let mut s = connected_responder(&store, ProtocolLevel::V1_4);
    let n = s.session.negotiated().unwrap();
    assert_eq!(n.level, ProtocolLevel::V1_4);
    let mut sfid = fixed_sfid("OLDPARTNER");
    sfid.description = String::new();
    s.send(Command::Sfid(sfid));
    assert!(matches!(&s.recv()[..], [Command::Sfpa(_)]));
    s.send_raw(&fixed_records_payload(&[b"0123456789"]));
    s.send(Command::Efid(Efid {
        record_count: 1,
        unit_count: 10,
    }));
    assert!(matches!(&s.recv()[..], [Command::Efpa(_)]));
    assert_eq!(stored(&store, "OLDPARTNER").data, b"0123456789");
    // At 1.x ESID has no reason text: a normal end after our CD.
    s.send(Command::Esid(Esid {
        reason: EndSessionReason::Normal,
        text: String::new(),
    }));
    assert_eq!(ended(&s.events).origin, Origin::Remote);
}

#[test]
fn response_timeout_sends_esid_09_then_closes() {
    let mut s = responder(&new_store());
    s.recv();
    let Some(TimerRequest::Arm { id: first, after }) = s.session.poll_timer() else {
        panic!("responder must arm the response timer");
    };
    assert_eq!(after, config(RESPONDER_ID).response_timeout);
    s.session.handle_timeout(first);
    s.collect();
    let cmds = s.recv();
    assert!(matches!(&cmds[..], [Command::Esid(e)] if e.reason == EndSessionReason::TimeOut));
    let end = ended(&s.events).clone();
    assert_eq!(
        (end.origin, end.reason),
        (Origin::Local, EndSessionReason::TimeOut)
    );
    // Now only the disconnect timer runs; the old id is stale.
    let Some(TimerRequest::Arm { id: second, after }) = s.session.poll_timer() else {
        panic!("disconnect timer expected");
    };
    assert_eq!(after, config(RESPONDER_ID).disconnect_timeout);
    s.session.handle_timeout(first);
    assert!(!s.session.is_closed());
    s.session.handle_timeout(second);
    assert!(s.session.is_closed());
    assert_eq!(s.session.poll_timer(), Some(TimerRequest::Disarm));
}

#[test]
fn received_esid_reason_is_reported() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    s.send(Command::Esid(Esid {
        reason: EndSessionReason::LocalSiteEmergencyCloseDown,
        text: "maintenance".into(),
    }));
    let end = ended(&s.events);
    assert_eq!(
        (end.origin, end.reason, end.text.as_str()),
        (
            Origin::Remote,
            EndSessionReason::LocalSiteEmergencyCloseDown,
            "maintenance"
        )
    );
    assert!(s.session.is_closed());
    assert!(s.recv().is_empty(), "no answer to ESID");
}

#[test]
fn application_close_sends_the_given_reason() {
    let mut s = connected_responder(&new_store(), ProtocolLevel::V2_0);
    s.session
        .close(EndSessionReason::ResourcesNotAvailable, "shutting down");
    s.collect();
    expect_esid(&mut s, EndSessionReason::ResourcesNotAvailable);
}

#[test]
fn truncated_input_waits_for_the_rest() {
    let mut s = responder(&new_store());
    s.recv();
    let mut body = BytesMut::new();
    Command::Ssid(partner_ssid(ProtocolLevel::V2_0, 10, 2048))
        .encode(ProtocolLevel::V2_0, &mut body)
        .unwrap();
    let mut wire = BytesMut::new();
    stb::encode(&body, &mut wire).unwrap();
    let all = Bytes::from(wire.to_vec());
    // Feed octet by octet.
    let mut buf = BytesMut::new();
    for b in all.iter() {
        buf.extend_from_slice(&[*b]);
        s.session.handle_input(&mut buf);
    }
    assert!(matches!(&s.recv()[..], [Command::Ssid(_)]));
}
