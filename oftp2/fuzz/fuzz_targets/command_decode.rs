//! Command codec on arbitrary Exchange Buffers: decoding never panics, and
//! whatever decodes and encodes is stable: its encoding decodes and
//! re-encodes to the same octets.
//!
//! Input layout: byte 0 selects the protocol level (SSIDLEV digit 1..=9,
//! so unknown future levels too); the rest is one Exchange Buffer (STH
//! already removed).

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use oftp2::codec::Command;
use oftp2::value::ProtocolLevel;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let Ok(level) = ProtocolLevel::from_digit(selector % 9 + 1) else {
        return;
    };
    let frame = Bytes::copy_from_slice(frame);
    let strict = Command::decode_strict(frame.clone(), level);
    let lenient = Command::decode_lenient(frame.clone(), level);
    let plain = Command::decode(frame, level);
    // Strict acceptance implies lenient acceptance; decode == lenient.
    if strict.is_ok() {
        assert!(lenient.is_ok());
    }
    assert_eq!(plain.is_ok(), lenient.is_ok());

    // Encoding may normalise (e.g. a lenient decode keeps data that the
    // level's layout cannot carry), so the property is on the wire form:
    // once encoded, a command decodes and re-encodes to the same octets.
    if let Ok(cmd) = plain {
        let mut first = BytesMut::new();
        if cmd.encode(level, &mut first).is_ok() {
            let first = first.freeze();
            // Not decode_strict: values a partner sent outside the RFC's
            // character set are kept and echoed byte for byte by design.
            let again = Command::decode(first.clone(), level).expect("an encoded command decodes");
            let mut second = BytesMut::new();
            again
                .encode(level, &mut second)
                .expect("a decoded encoding encodes");
            assert_eq!(first, second.freeze(), "encode/decode/encode is stable");
        }
    }
});
