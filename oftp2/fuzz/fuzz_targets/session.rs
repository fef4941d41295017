//! The session state machine on arbitrary partner input: it never panics,
//! never loops, and once it has ended it stays ended and silent.
//!
//! Input layout: byte 0 selects the scenario (role, and how much of a
//! valid conversation precedes the fuzz input, so that deep states such as
//! OPI, OPO and WF_RTR are reached); byte 1 the size of the pieces the rest
//! is fed in (exercising partial Stream Transmission Buffers); the rest is
//! what the partner sends. Bytes 0xFF at a piece start also fire the
//! session's timer.

#![no_main]

use std::io::{self, Cursor, Write};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use oftp2::codec::{Command, Sfid, Ssid, Ssrm};
use oftp2::record::{Counts, Layout, RestartPoint};
use oftp2::session::{
    Accepted, Authenticator, Config, FileOffer, Handlers, Inbox, IncomingFile, Outbox,
    OutgoingFile, Receipt, Refusal, Role, Session, TimerId, TimerRequest,
};
use oftp2::stb;
use oftp2::value::{
    CipherSuite, DatasetName, Date, EndFileRefusal, EndSessionReason, FileCompression,
    FileEnvelope, OdetteId, Password, ProtocolLevel, SecurityLevel, SendReceive, StartFileRefusal,
    Time, Timestamp, UserData,
};

struct Discard;
impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl IncomingFile for Discard {
    fn commit(&mut self, _: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        Ok(())
    }
}

struct Everyone;
impl Authenticator for Everyone {
    fn authenticate(&mut self, _: &Ssid) -> Result<(), EndSessionReason> {
        Ok(())
    }
}

struct AcceptAll;
impl Inbox for AcceptAll {
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        if offer.sfid.dataset_name.as_str().starts_with('R') {
            return Err(Refusal::new(StartFileRefusal::DuplicateFile).retry_later(true));
        }
        Ok(Accepted {
            writer: Box::new(Discard),
            restart: RestartPoint::START,
        })
    }
}

struct Queue(Vec<OutgoingFile>);
impl Outbox for Queue {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        self.0.pop()
    }
    fn next_receipt(&mut self) -> Option<Receipt> {
        None
    }
    fn wants_turn(&mut self) -> bool {
        !self.0.is_empty()
    }
}

fn sfid(dsn: &str, layout: Layout) -> Sfid {
    Sfid {
        dataset_name: DatasetName::new(dsn).unwrap(),
        timestamp: Timestamp::new(
            Date::new(2026, 1, 2).unwrap(),
            Time::new(3, 4, 5, 0).unwrap(),
        ),
        user_data: UserData::EMPTY,
        destination: OdetteId::new("O0013FUZZRESP").unwrap(),
        originator: OdetteId::new("O0013FUZZINIT").unwrap(),
        format: layout.format(),
        max_record_size: layout.max_record_len(),
        file_size: 1,
        original_file_size: 1,
        restart_position: 0,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    }
}

fn session(role: Role, compression: bool) -> Session {
    let own = if role == Role::Initiator {
        "O0013FUZZINIT"
    } else {
        "O0013FUZZRESP"
    };
    let mut config = Config::new(OdetteId::new(own).unwrap(), Password::new("FUZZ").unwrap());
    config.buffer_size = 256;
    config.credit = 3;
    config.compression = compression;
    let files = vec![
        OutgoingFile {
            sfid: sfid("OUT.V", Layout::variable(300).unwrap()),
            data: Box::new(Cursor::new(vec![0, 3, b'a', b'b', b'c', 0, 0])),
        },
        OutgoingFile {
            sfid: sfid("OUT.U", Layout::unstructured()),
            data: Box::new(Cursor::new(vec![7u8; 2000])),
        },
    ];
    Session::new(
        role,
        config,
        Handlers {
            authenticator: Box::new(Everyone),
            inbox: Box::new(AcceptAll),
            outbox: Box::new(Queue(files)),
        },
    )
    .unwrap()
}

fn frame(cmd: Command, level: ProtocolLevel, out: &mut Vec<u8>) {
    let mut body = BytesMut::new();
    if cmd.encode(level, &mut body).is_err() {
        return;
    }
    let mut wire = BytesMut::new();
    stb::encode(&body, &mut wire).unwrap();
    out.extend_from_slice(&wire);
}

fn partner_ssid(level: ProtocolLevel, id: &str) -> Ssid {
    Ssid {
        level,
        id: OdetteId::new(id).unwrap(),
        password: Password::new("FUZZ").unwrap(),
        buffer_size: 256,
        capabilities: SendReceive::Both,
        compression: true,
        restart: true,
        special_logic: false,
        credit: 3,
        secure_authentication: false,
        user_data: UserData::EMPTY,
    }
}

fuzz_target!(|data: &[u8]| {
    let [scenario, piece, rest @ ..] = data else {
        return;
    };
    let level = match scenario >> 4 & 3 {
        0 => ProtocolLevel::V2_0,
        1 => ProtocolLevel::V1_4,
        _ => ProtocolLevel::V1_3,
    };
    let compression = scenario & 0x40 != 0;
    // A valid beginning, so the fuzz input lands in a deep state.
    let mut prelude = Vec::new();
    let role = match scenario & 0x0f {
        // Responder from the first byte on.
        0 => Role::Responder,
        // Responder after the SSID exchange: listener in IDLELI.
        1 => {
            frame(
                Command::Ssid(partner_ssid(level, "O0013FUZZINIT")),
                level,
                &mut prelude,
            );
            Role::Responder
        }
        // Responder receiving a file: listener in OPI.
        2 | 3 => {
            frame(
                Command::Ssid(partner_ssid(level, "O0013FUZZINIT")),
                level,
                &mut prelude,
            );
            let layout = if scenario & 1 == 0 {
                Layout::unstructured()
            } else {
                Layout::fixed(10).unwrap()
            };
            frame(Command::Sfid(sfid("IN.FILE", layout)), level, &mut prelude);
            Role::Responder
        }
        // Initiator from the first byte on.
        4 => Role::Initiator,
        // Initiator after SSRM and the responder's SSID: speaker in OPOP.
        _ => {
            frame(Command::Ssrm(Ssrm), level, &mut prelude);
            frame(
                Command::Ssid(partner_ssid(level, "O0013FUZZRESP")),
                level,
                &mut prelude,
            );
            Role::Initiator
        }
    };
    let mut s = session(role, compression);
    let mut timer = None;
    let mut out = BytesMut::new();
    let mut input = BytesMut::new();
    let piece = usize::from(*piece).max(1);
    let mut ended_at = None;

    feed(&mut s, &mut input, &mut out, &prelude, false, &mut timer);
    for chunk in rest.chunks(piece) {
        let fire = chunk.first() == Some(&0xff);
        feed(&mut s, &mut input, &mut out, chunk, fire, &mut timer);
        if s.is_ended() {
            let end = s.end().cloned();
            match &ended_at {
                None => ended_at = end,
                // Once ended, the outcome never changes.
                Some(first) => assert_eq!(Some(first), end.as_ref()),
            }
            // And nothing but the ESID already queued goes out.
            out.clear();
            assert_eq!(s.poll_transmit(&mut out), 0);
        }
    }
    s.handle_eof();
    assert!(s.is_closed() && s.is_ended());
});

/// Deliver `bytes`, optionally fire the timer, and drain all output.
fn feed(
    s: &mut Session,
    input: &mut BytesMut,
    out: &mut BytesMut,
    bytes: &[u8],
    fire: bool,
    timer: &mut Option<TimerId>,
) {
    if fire {
        if let Some(id) = timer.take() {
            s.handle_timeout(id);
        }
    }
    input.extend_from_slice(bytes);
    s.handle_input(input);
    // Bounded: each call produces at most one transmit chunk, and the
    // credit window (3) stops a sender without CDT.
    for _ in 0..8 {
        out.clear();
        if s.poll_transmit(out) == 0 {
            break;
        }
    }
    while let Some(t) = s.poll_timer() {
        *timer = match t {
            TimerRequest::Arm { id, .. } => Some(id),
            TimerRequest::Disarm => None,
        };
    }
    while s.poll_event().is_some() {}
}
