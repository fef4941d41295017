//! `remote::Frame::decode` never panics on any byte string read as a TCP
//! stream of remote-CAPI frames; whatever decodes re-encodes to the same
//! octets' meaning: the re-encoding decodes to the same frame.
#![no_main]

use capi::remote::{Frame, FrameError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match Frame::decode(rest) {
            Ok(None) => break,
            Ok(Some((f, used))) => {
                assert!(used >= 10 && used <= rest.len());
                let again = f.to_vec().expect("a decoded frame encodes");
                let (f2, used2) = Frame::decode(&again)
                    .expect("re-encoding decodes")
                    .expect("re-encoding is complete");
                assert_eq!(used2, again.len());
                assert_eq!(f2, f);
                rest = &rest[used..];
            }
            // No frame boundary to resynchronise on.
            Err(FrameError::TooShort(_)) => break,
            // Self-delimiting: skip the frame, as the transport does.
            Err(_) => match Frame::peek_len(rest) {
                Ok(Some(n)) if n <= rest.len() => rest = &rest[n..],
                _ => break,
            },
        }
    }
});
