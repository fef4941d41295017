//! Command codec on arbitrary Exchange Buffers: decoding never panics, and
//! whatever decodes and re-encodes decodes again to the same command.
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

    if let Ok(cmd) = plain {
        let mut out = BytesMut::new();
        if cmd.encode(level, &mut out).is_ok() {
            let again = Command::decode(out.freeze(), level)
                .expect("an encoded command decodes");
            assert_eq!(again, cmd, "encode/decode round trip");
        }
    }
});
