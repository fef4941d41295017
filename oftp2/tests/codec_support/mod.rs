//! Helpers shared by the codec tests. Nothing here produces wire bytes:
//! expected buffers are written by hand in the tests themselves.

#![allow(dead_code)] // each test crate uses a different subset

use bytes::{Bytes, BytesMut};
use oftp2::codec::{Command, Deviation};
use oftp2::value::{DatasetName, OdetteId, ProtocolLevel, Timestamp, UserData};

/// Joins hand-written field literals into one buffer.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Shows a buffer with control and non-ASCII octets escaped.
pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Asserts that `buf[pos..]` starts with `expected` (a field at the
/// position the RFC's table gives).
#[track_caller]
pub fn field_at(buf: &[u8], pos: usize, expected: &[u8]) {
    let got = buf.get(pos..pos + expected.len());
    assert_eq!(
        got.map(show),
        Some(show(expected)),
        "field at position {pos} of {}",
        show(buf)
    );
}

/// decode(literal) == cmd with no deviation, strictly and leniently, and
/// encode(cmd) == literal.
#[track_caller]
pub fn exact(level: ProtocolLevel, literal: &[u8], cmd: &Command) {
    let frame = Bytes::copy_from_slice(literal);
    let decoded = Command::decode_strict(frame.clone(), level)
        .unwrap_or_else(|e| panic!("decode {} at {level}: {e}", show(literal)));
    assert_eq!(&decoded, cmd, "decoded {}", show(literal));
    let (lenient, devs) = Command::decode_lenient(frame, level).unwrap();
    assert_eq!(&lenient, cmd);
    assert!(devs.is_empty(), "unexpected deviations {devs:?}");
    let mut out = BytesMut::new();
    cmd.encode(level, &mut out)
        .unwrap_or_else(|e| panic!("encode {cmd:?} at {level}: {e}"));
    assert_eq!(show(&out), show(literal), "encoded {cmd:?}");
}

/// Lenient decode that must succeed; returns the command and deviations.
#[track_caller]
pub fn lenient(level: ProtocolLevel, literal: &[u8]) -> (Command, Vec<Deviation>) {
    Command::decode_lenient(Bytes::copy_from_slice(literal), level)
        .unwrap_or_else(|e| panic!("lenient decode {} at {level}: {e}", show(literal)))
}

pub fn id(s: &str) -> OdetteId {
    OdetteId::new(s).unwrap()
}

pub fn dsn(s: &str) -> DatasetName {
    DatasetName::new(s).unwrap()
}

pub fn user(s: &str) -> UserData {
    UserData::new(s).unwrap()
}

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}
