//! The ISO 8208 pieces that read partner input never panic: NCPI and X.25
//! call octets (address block, facilities), and the packet reassembler
//! fed arbitrary packets and flags. What decodes re-encodes to a decodable
//! equal value; the segmenter turns what the reassembler produced back
//! into the same packet sequence content.
#![no_main]

use capi::message::X25Ncpi;
use capi::x25::{flags, Reassembler, Received, Segmenter, X25Call};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(n)) = X25Ncpi::decode(data) {
        assert_eq!(X25Ncpi::decode(&n.encode()), Ok(Some(n.clone())));
        if let Ok(call) = n.call() {
            if let Ok(again) = call.encode() {
                assert_eq!(X25Call::decode(&again), Ok(call));
            }
        }
    }
    // Packets: first octet of each chunk gives flags and length.
    let mut r = Reassembler::new();
    let mut rest = data;
    let mut payload = Vec::new();
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = usize::from(ctl & 0x3F).min(tail.len());
        let (pkt, tail) = tail.split_at(len);
        rest = tail;
        let f = u16::from(ctl >> 6) & (flags::QUALIFIER | flags::MORE_DATA);
        if f & flags::QUALIFIER == 0 {
            payload.extend_from_slice(pkt);
        }
        match r.packet(pkt, f) {
            Ok(Received::Complete(stb)) => {
                assert_eq!(&stb[4..], &payload[..]);
                let mut s = Segmenter::new(16);
                s.push(&stb).expect("a reassembled buffer is a valid STB");
                let mut back = Vec::new();
                while let Some((p, _more)) = s.next_packet() {
                    assert!(p.len() <= 16);
                    back.extend_from_slice(&p);
                }
                assert_eq!(back, payload);
                payload.clear();
            }
            Ok(Received::Ignored(_)) => {
                if f & flags::QUALIFIER == 0 {
                    payload.clear();
                }
            }
            Ok(Received::Partial) => {}
            Err(_) => payload.clear(),
        }
    }
});
