//! `Message::decode` and `frame_len` never panic on any byte string; whatever
//! decodes re-encodes, and the re-encoding decodes to the same message.
//! Several messages are read back to back, as a transport's stream would be.
#![no_main]

use capi::message::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        let framed = Message::frame_len(rest);
        match Message::decode(rest) {
            Ok((m, used)) => {
                assert_eq!(framed, Ok(used));
                assert!(used > 0 && used <= rest.len());
                let again = m.to_vec().expect("a decoded message encodes");
                let (m2, used2) = Message::decode(&again).expect("re-encoding decodes");
                assert_eq!(used2, again.len());
                assert_eq!(m2, m);
                rest = &rest[used..];
            }
            Err(_) => match framed {
                // A frame whose parameters are malformed: skip it like a transport would.
                Ok(n) if n > 0 => rest = &rest[n..],
                _ => break,
            },
        }
    }
});
