//! Stream Transmission Buffer framing, checked against RFC 5024 section 8.2.

use bytes::{BufMut, BytesMut};
use oftp2::stb::{self, StbDecoder, StbError};
use oftp2::value::EndSessionReason;

/// Section 8.2: "The smallest STB is 5 octets consisting of a 4-octet
/// header followed by a 1-octet Exchange Buffer such as a Change Direction
/// (CD) command." CD is 'R' (section 5.3.12); version 1 in the high nibble,
/// flags 0, length 5 in network byte order.
#[test]
fn cd_command_is_five_octet_stb() {
    let mut out = BytesMut::new();
    stb::encode(b"R", &mut out).unwrap();
    assert_eq!(&out[..], &[0x10, 0x00, 0x00, 0x05, b'R']);

    let mut dec = StbDecoder::new();
    let buf = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(&buf[..], b"R");
    assert!(out.is_empty());
}

/// Largest STB: 99999-octet buffer, length 100003 = 0x0186A3.
#[test]
fn maximum_stb_length() {
    assert_eq!(stb::header(99_999).unwrap(), [0x10, 0x01, 0x86, 0xA3]);
    let mut out = BytesMut::new();
    stb::write_header(99_999, &mut out).unwrap();
    out.put_bytes(b'D', 99_999);
    let mut dec = StbDecoder::new();
    assert_eq!(dec.decode(&mut out).unwrap().unwrap().len(), 99_999);
}

#[test]
fn header_refuses_unsendable_lengths() {
    assert_eq!(stb::header(0), Err(StbError::TooShort { length: 4 }));
    assert_eq!(
        stb::header(100_000),
        Err(StbError::TooLong { length: 100_004 })
    );
    let mut out = BytesMut::new();
    assert!(stb::encode(b"", &mut out).is_err());
    assert!(out.is_empty(), "nothing is written on error");
}

#[test]
fn partial_header_and_body_across_feeds() {
    let mut wire = BytesMut::new();
    stb::encode(b"SSRM-like buffer", &mut wire).unwrap();
    stb::encode(b"R", &mut wire).unwrap();
    let wire = wire.freeze();

    // Feed one octet at a time: each buffer appears exactly when its last
    // octet arrives, never earlier.
    let mut dec = StbDecoder::new();
    let mut rx = BytesMut::new();
    let mut got = Vec::new();
    for (i, b) in wire.iter().enumerate() {
        rx.put_u8(*b);
        while let Some(buf) = dec.decode(&mut rx).unwrap() {
            got.push((i, buf));
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, 4 + 16 - 1);
    assert_eq!(&got[0].1[..], b"SSRM-like buffer");
    assert_eq!(got[1].0, wire.len() - 1);
    assert_eq!(&got[1].1[..], b"R");
    assert!(rx.is_empty());
}

#[test]
fn bytes_needed_tracks_progress() {
    let dec = StbDecoder::new();
    assert_eq!(dec.bytes_needed(&[]), 4);
    assert_eq!(dec.bytes_needed(&[0x10, 0]), 2);
    assert_eq!(dec.bytes_needed(&[0x10, 0, 0, 10]), 6);
    assert_eq!(dec.bytes_needed(&[0x10, 0, 0, 5, b'R']), 0);
}

#[test]
fn several_buffers_in_one_read() {
    let mut rx = BytesMut::new();
    for cmd in [&b"R"[..], b"C  ", b"F00000\r"] {
        stb::encode(cmd, &mut rx).unwrap();
    }
    rx.put_slice(&[0x10, 0x00]); // start of a fourth header
    let mut dec = StbDecoder::new();
    assert_eq!(&dec.decode(&mut rx).unwrap().unwrap()[..], b"R");
    assert_eq!(&dec.decode(&mut rx).unwrap().unwrap()[..], b"C  ");
    assert_eq!(&dec.decode(&mut rx).unwrap().unwrap()[..], b"F00000\r");
    assert_eq!(dec.decode(&mut rx).unwrap(), None);
    assert_eq!(&rx[..], &[0x10, 0x00]);
}

fn decode_one(bytes: &[u8]) -> Result<Option<bytes::Bytes>, StbError> {
    let mut dec = StbDecoder::new();
    dec.decode(&mut BytesMut::from(bytes))
}

#[test]
fn bad_version_is_protocol_violation() {
    for first in [0x00, 0x20, 0xF0, 0x21] {
        let err = decode_one(&[first, 0, 0, 5, b'R']).unwrap_err();
        assert_eq!(
            err,
            StbError::BadVersion {
                version: first >> 4
            }
        );
        assert_eq!(err.esid_reason(), EndSessionReason::ProtocolViolation);
    }
    // Version 1 with reserved flags is not a version error.
    assert!(decode_one(&[0x16, 0, 0, 5, b'R']).is_ok());
    // A TLS ClientHello on the plain port (16 03 01 ..) reads as version 1,
    // flags 6 and a length far above 100003.
    assert!(matches!(
        decode_one(&[0x16, 0x03, 0x01, 0x02]),
        Err(StbError::TooLong { .. })
    ));
}

#[test]
fn header_is_checked_before_body_arrives() {
    // Only the header is there; a bad version is reported at once rather
    // than after waiting for a body that may never come.
    assert!(matches!(
        decode_one(&[0x20, 0x01, 0x86, 0xA3]),
        Err(StbError::BadVersion { version: 2 })
    ));
}

#[test]
fn reserved_flags_accepted_by_default_rejected_when_strict() {
    let mut dec = StbDecoder::new();
    let mut rx = BytesMut::from(&[0x1F, 0, 0, 5, b'R'][..]);
    assert_eq!(&dec.decode(&mut rx).unwrap().unwrap()[..], b"R");
    assert!(dec.reserved_flags_seen());

    let mut strict = StbDecoder::new();
    strict.set_reject_reserved_flags(true);
    let mut rx = BytesMut::from(&[0x12, 0, 0, 5, b'R'][..]);
    let err = strict.decode(&mut rx).unwrap_err();
    assert_eq!(err, StbError::ReservedFlags { flags: 2 });
    assert_eq!(err.esid_reason(), EndSessionReason::ProtocolViolation);
    assert!(!StbDecoder::new().reserved_flags_seen());
}

#[test]
fn too_short_and_too_long() {
    for length in [0u8, 1, 4] {
        let err = decode_one(&[0x10, 0, 0, length]).unwrap_err();
        assert_eq!(
            err,
            StbError::TooShort {
                length: length.into()
            }
        );
        assert_eq!(err.esid_reason(), EndSessionReason::ExchangeBufferSizeError);
    }
    // 100004 = 0x0186A4
    let err = decode_one(&[0x10, 0x01, 0x86, 0xA4]).unwrap_err();
    assert_eq!(err, StbError::TooLong { length: 100_004 });
    assert_eq!(err.esid_reason(), EndSessionReason::ExchangeBufferSizeError);
    assert_eq!(
        decode_one(&[0x10, 0xFF, 0xFF, 0xFF]).unwrap_err(),
        StbError::TooLong { length: 0xFF_FFFF }
    );
}

#[test]
fn over_negotiated_buffer_size() {
    let mut dec = StbDecoder::new();
    dec.set_max_buffer(128);
    assert_eq!(dec.max_buffer(), 128);

    let mut rx = BytesMut::new();
    stb::write_header(128, &mut rx).unwrap();
    rx.put_bytes(b'D', 128);
    assert_eq!(dec.decode(&mut rx).unwrap().unwrap().len(), 128);

    stb::write_header(129, &mut rx).unwrap();
    let err = dec.decode(&mut rx).unwrap_err();
    assert_eq!(
        err,
        StbError::OverNegotiated {
            length: 129,
            negotiated: 128
        }
    );
    assert_eq!(err.esid_reason(), EndSessionReason::ExchangeBufferSizeError);

    dec.set_max_buffer(1_000_000);
    assert_eq!(dec.max_buffer(), 99_999, "clamped to the RFC maximum");
}

#[test]
fn decoder_stays_failed_after_an_error() {
    let mut dec = StbDecoder::new();
    let mut rx = BytesMut::from(&[0x00, 0, 0, 5, b'R'][..]);
    assert!(dec.decode(&mut rx).is_err());
    let mut good = BytesMut::new();
    stb::encode(b"R", &mut good).unwrap();
    assert_eq!(dec.decode(&mut good), Err(StbError::Desynchronised));
}

#[test]
fn decoded_buffers_share_the_receive_allocation() {
    let mut rx = BytesMut::with_capacity(1024);
    stb::encode(&[b'D'; 500], &mut rx).unwrap();
    let base = rx.as_ptr() as usize;
    let buf = StbDecoder::new().decode(&mut rx).unwrap().unwrap();
    assert_eq!(buf.as_ptr() as usize, base + 4, "zero-copy split");
}
