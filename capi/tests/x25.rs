//! RFC 5024 Appendix D over CAPI: the ISO 8208 B protocol and NCPI octets
//! against hand-built bytes, packet sequences ⇄ OFTP exchange buffers, and
//! what the (simulated) line carries when a `B3Stream` runs ISO 8208.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use capi::config::B3Mode;
use capi::message::*;
use capi::sim::{reason, Sim, SimTransport};
use capi::stream::{Application, CallError, Dial, Options};
use capi::transport::{RegisterParams, Transport};
use capi::x25::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(20);

async fn get<X: Transport>(t: &mut X) -> Message {
    tokio::time::timeout(T, poll_fn(|cx| t.poll_get_message(cx)))
        .await
        .expect("message within time")
        .unwrap()
}

fn put<X: Transport>(t: &mut X, number: u16, p: Params) {
    let id = t.app_id();
    t.put_message(&Message::new(id, number, p)).unwrap();
}

/// The Appendix D call request of "4930100" to "4989200".
const ODETTE_CALL: [u8; 15] = [
    0x77, // calling address 7 digits | called address 7 digits
    0x49, 0x89, 0x20, 0x04, 0x93, 0x01, 0x00, // 4989200 then 4930100, BCD
    0x06, // facility length
    0x42, 0x07, 0x07, // packet size: 2^7 = 128 both directions
    0x43, 0x07, 0x07, // window size: 7 both directions
];

#[test]
fn odette_call_request_octets() {
    let call = X25Call::odette("4989200", "4930100");
    assert_eq!(call.encode().unwrap(), ODETTE_CALL);
    assert_eq!(X25Call::decode(&ODETTE_CALL).unwrap(), call);
    // NCPI: flags (no D-bit), group 0, LCN 1 (Appendix D.1), contents.
    let ncpi = X25Ncpi::for_call(ODETTE_LCN, &call).unwrap().encode();
    assert_eq!(&ncpi[..3], &[0x00, 0x00, 0x01]);
    assert_eq!(&ncpi[3..], &ODETTE_CALL);
    // The whole CONNECT_B3_REQ as a controller receives it.
    let m = Message::new(
        1,
        5,
        Params::ConnectB3Req(IdentNcpi {
            id: 0x0101,
            ncpi: ncpi.clone(),
        }),
    );
    let mut want = vec![
        0x1F, 0x00, // total length 31
        0x01, 0x00, // application id
        0x82, 0x80, // CONNECT_B3_REQ
        0x05, 0x00, // message number
        0x01, 0x01, 0x00, 0x00, // PLCI
        0x12, // NCPI struct length 18
        0x00, 0x00, 0x01,
    ];
    want.extend_from_slice(&ODETTE_CALL);
    assert_eq!(m.to_vec().unwrap(), want);
    assert_eq!(Message::decode(&want).unwrap(), (m, want.len()));
}

#[test]
fn addresses_with_odd_digit_counts_and_long_numbers() {
    let call = X25Call {
        called: "123".into(),
        calling: "45".into(),
        facilities: Facilities::default(),
        user_data: vec![],
    };
    // 2 calling | 3 called; 1 2 3 4 5 and a padding semi-octet; no facilities.
    assert_eq!(call.encode().unwrap(), [0x23, 0x12, 0x34, 0x50, 0x00]);
    assert_eq!(
        X25Call::decode(&[0x23, 0x12, 0x34, 0x50, 0x00]).unwrap(),
        call
    );
    // More than 15 digits: the last 15 (D.4.2), separators dropped.
    let c = X25Call::odette("0049-89-1234567890123", "");
    assert_eq!(c.called, "891234567890123");
    assert_eq!(c.encode().unwrap()[0], 0x0F);
    let too_long = X25Call {
        called: "1234567890123456".into(),
        ..X25Call::default()
    };
    assert!(matches!(
        too_long.encode(),
        Err(X25Error::AddressInvalid(_))
    ));
}

#[test]
fn call_accepted_without_addresses_and_other_facilities_kept() {
    // Call accepted, extended format: no addresses, packet size 1024/512,
    // a class A facility (0x01 reverse charging), a class D one with 2
    // parameter octets, then call user data.
    let octets = [
        0x00, 0x09, 0x42, 0x0A, 0x09, 0x01, 0x01, 0xC3, 0x02, 0xAA, 0xBB, 0x00, 0xCC,
    ];
    let c = X25Call::decode(&octets).unwrap();
    assert_eq!(c.called, "");
    assert_eq!(c.calling, "");
    assert_eq!(c.facilities.packet_size, Some((1024, 512)));
    assert_eq!(c.facilities.window, None);
    assert_eq!(c.facilities.other, [0x01, 0x01, 0xC3, 0x02, 0xAA, 0xBB]);
    assert_eq!(c.user_data, [0x00, 0xCC]);
    assert_eq!(c.encode().unwrap(), octets);
    // Empty NCPI contents: a basic-format packet, nothing negotiated.
    assert_eq!(X25Call::decode(&[]).unwrap(), X25Call::default());
}

#[test]
fn malformed_call_octets_are_typed_errors() {
    assert_eq!(
        X25Call::decode(&[0x77, 0x49]),
        Err(X25Error::AddressTruncated)
    );
    assert_eq!(
        X25Call::decode(&[0x01, 0xA0]),
        Err(X25Error::AddressDigit(0xA))
    );
    assert_eq!(
        X25Call::decode(&[0x00, 0x03, 0x42, 0x03, 0x07]),
        Err(X25Error::PacketSizeCode(3))
    );
    assert_eq!(
        X25Call::decode(&[0x00, 0x05, 0x42, 0x07]),
        Err(X25Error::FacilitiesTruncated)
    );
    assert_eq!(
        X25Call::decode(&[0x00, 0x02, 0xC0, 0x05]),
        Err(X25Error::FacilitiesTruncated)
    );
    assert!(X25Ncpi::decode(&[0x00, 0x00]).is_err());
}

#[test]
fn odette_b_protocol_octets() {
    let b = BProtocol::odette_iso8208();
    let m = Message::new(
        1,
        1,
        Params::ConnectResp(ConnectResp {
            plci: 0x0102,
            reject: 0,
            b_protocol: Some(b),
            connected_number: None,
            connected_subaddress: vec![],
            llc: vec![],
            additional_info: vec![],
        }),
    );
    let bytes = m.to_vec().unwrap();
    let b_protocol = [
        0x1E, // struct length 30
        0x00, 0x00, // B1: 64 kbit/s HDLC
        0x00, 0x00, // B2: ISO 7776 (X.75 SLP)
        0x02, 0x00, // B3: ISO 8208
        0x00, // B1 configuration: default
        0x05, 0x03, 0x01, 0x08, 0x07,
        0x00, // B2: address A 3, B 1, modulo 8, window 7, no XID
        0x10, // B3 configuration, 16 octets:
        0x00, 0x00, 0x00, 0x00, // LIC 0, HIC 0 (no incoming-only channels)
        0x01, 0x00, 0x01, 0x00, // LTC 1, HTC 1: first LCN 1, one LCN
        0x00, 0x00, 0x00, 0x00, // LOC 0, HOC 0
        0x08, 0x00, 0x07, 0x00, // modulo 8, window 7
    ];
    // Header (8), PLCI (4), reject (2), then the B protocol struct.
    assert_eq!(&bytes[14..14 + b_protocol.len()], &b_protocol);
    assert_eq!(B3Mode::Iso8208.b_protocol(), BProtocol::odette_iso8208());
    assert_eq!(
        B3Mode::of(&BProtocol::x75_transparent()),
        Some(B3Mode::Transparent)
    );
}

fn stb(oeb: &[u8]) -> Vec<u8> {
    let len = oeb.len() + 4;
    let mut v = vec![
        0x10 | (len >> 24) as u8,
        (len >> 16) as u8,
        (len >> 8) as u8,
        len as u8,
    ];
    v.extend_from_slice(oeb);
    v
}

#[test]
fn exchange_buffers_become_complete_packet_sequences_and_back() {
    let oeb: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let small = b"SSRM".to_vec();
    let mut stream = stb(&oeb);
    stream.extend_from_slice(&stb(&small));
    let mut seg = Segmenter::new(128);
    // Fed in awkward pieces, as a byte stream arrives.
    for piece in stream.chunks(5) {
        seg.push(piece).unwrap();
    }
    let packets: Vec<(Bytes, bool)> = std::iter::from_fn(|| seg.next_packet()).collect();
    let shape: Vec<(usize, bool)> = packets.iter().map(|(p, m)| (p.len(), *m)).collect();
    assert_eq!(shape, [(128, true), (128, true), (44, false), (4, false)]);
    assert_eq!(seg.partial(), 0);
    let mut r = Reassembler::new();
    let mut out = Vec::new();
    for (p, more) in &packets {
        match r
            .packet(p, if *more { flags::MORE_DATA } else { 0 })
            .unwrap()
        {
            Received::Complete(b) => out.extend_from_slice(&b),
            Received::Partial => assert!(*more),
            Received::Ignored(w) => panic!("{w}"),
        }
    }
    assert_eq!(out, stream);
    // Exactly one packet's worth: no empty trailing packet.
    let mut seg = Segmenter::new(128);
    seg.push(&stb(&[1; 128])).unwrap();
    assert_eq!(seg.queued(), 1);
}

#[test]
fn what_is_not_oftp_data_is_refused_or_dropped() {
    let mut seg = Segmenter::new(128);
    assert_eq!(
        seg.push(b"GET / HTTP/1.0\r\n"),
        Err(X25Error::NotStb {
            version: 4,
            length: 0x0745_5420
        })
    );
    let mut r = Reassembler::new();
    assert_eq!(
        r.packet(b"x", flags::QUALIFIER).unwrap(),
        Received::Ignored("Q-bit packet")
    );
    assert_eq!(
        r.packet(b"", 0).unwrap(),
        Received::Ignored("empty packet sequence")
    );
    let full = vec![0u8; 1024];
    let mut err = None;
    for _ in 0..100 {
        if let Err(e) = r.packet(&full, flags::MORE_DATA) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(X25Error::NsduTooLong));
    // After the error the reassembler starts afresh.
    assert_eq!(r.partial(), 0);
}

#[test]
fn facilities_negotiation() {
    // Caller asks for 1024-octet packets and window 7; we accept up to 128.
    let asked = Facilities {
        packet_size: Some((1024, 1024)),
        window: Some((7, 7)),
        other: vec![],
    };
    let (fac, n) = negotiate(&asked, 128, 7);
    assert_eq!(fac.packet_size, Some((128, 128)));
    assert_eq!(fac.window, Some((7, 7)));
    assert_eq!((n.tx_packet, n.rx_packet), (128, 128));
    // Below the default: must be accepted as asked.
    let asked = Facilities {
        packet_size: Some((64, 32)),
        window: Some((2, 2)),
        other: vec![],
    };
    let (fac, n) = negotiate(&asked, 1024, 7);
    assert_eq!(fac.packet_size, Some((64, 32)));
    // We are called: we send called → calling (64) and receive 32.
    assert_eq!((n.tx_packet, n.rx_packet), (64, 32));
    // Nothing asked: nothing answered, Appendix D defaults in force.
    let (fac, n) = negotiate(&Facilities::default(), 128, 7);
    assert!(fac.is_empty());
    assert_eq!(n, Negotiated::default());
    // The caller takes the call connected values, or its own request.
    let n = caller_negotiated(&Facilities::odette(), &Facilities::default());
    assert_eq!((n.tx_packet, n.tx_window), (128, 7));
    let connected = Facilities {
        packet_size: Some((256, 64)),
        ..Facilities::default()
    };
    let n = caller_negotiated(&Facilities::odette(), &connected);
    assert_eq!((n.tx_packet, n.rx_packet), (64, 256));
}

/// A raw application on controller 2 answering an ISO 8208 call from a
/// `B3Stream` on controller 1; returns the raw side, its NCCI and the
/// caller's stream.
async fn raw_callee(
    accept_facilities: Option<Facilities>,
    options: Options,
) -> (Sim, SimTransport, u32, capi::stream::B3Stream, Application) {
    let sim = Sim::new();
    sim.add_controller(&["4930100"], 2);
    sim.add_controller(&["4989200"], 2);
    let a = Application::start_with(sim.register(RegisterParams::default()), options);
    let mut b = sim.register(RegisterParams::default());
    put(
        &mut b,
        1,
        Params::ListenReq(ListenReq {
            controller: 2,
            info_mask: 0,
            cip_mask: cip::mask(cip::UNRESTRICTED_DIGITAL),
            cip_mask2: 0,
            calling_number: None,
            calling_subaddress: vec![],
        }),
    );
    get(&mut b).await;
    let dial = tokio::spawn({
        let d = Dial {
            controller: 1,
            called: "4989200".into(),
            calling: Some("4930100".into()),
            b_protocol: B3Mode::Iso8208.b_protocol(),
        };
        async move {
            let s = a.dial(d).await;
            (s, a)
        }
    });
    let m = get(&mut b).await;
    let Params::ConnectInd(ind) = m.params else {
        panic!("{m:?}")
    };
    put(
        &mut b,
        m.number,
        Params::ConnectResp(ConnectResp {
            plci: ind.plci,
            reject: 0,
            b_protocol: Some(BProtocol::odette_iso8208()),
            connected_number: None,
            connected_subaddress: vec![],
            llc: vec![],
            additional_info: vec![],
        }),
    );
    let m = get(&mut b).await;
    assert!(matches!(m.params, Params::ConnectActiveInd(_)), "{m:?}");
    put(
        &mut b,
        m.number,
        Params::ConnectActiveResp(Ident { id: ind.plci }),
    );
    let m = get(&mut b).await;
    let Params::ConnectB3Ind(IdentNcpi { id: ncci, ncpi }) = m.params else {
        panic!("{m:?}")
    };
    // The incoming call as the stream's CONNECT_B3_REQ built it.
    assert_eq!(&ncpi[..3], &[0, 0, ODETTE_LCN]);
    assert_eq!(&ncpi[3..], &ODETTE_CALL);
    let resp_ncpi = match accept_facilities {
        None => vec![],
        Some(f) => X25Ncpi {
            flags: 0,
            group: 0,
            channel: ODETTE_LCN,
            contents: X25Call {
                facilities: f,
                ..X25Call::default()
            }
            .encode()
            .unwrap(),
        }
        .encode(),
    };
    put(
        &mut b,
        m.number,
        Params::ConnectB3Resp(ConnectB3Resp {
            ncci,
            reject: 0,
            ncpi: resp_ncpi,
        }),
    );
    let m = get(&mut b).await;
    assert!(matches!(m.params, Params::ConnectB3ActiveInd(_)), "{m:?}");
    put(
        &mut b,
        m.number,
        Params::ConnectB3ActiveResp(Ident { id: ncci }),
    );
    let (s, a) = tokio::time::timeout(T, dial).await.unwrap().unwrap();
    (sim, b, ncci, s.unwrap(), a)
}

#[tokio::test]
async fn the_line_carries_m_bit_sequences_without_sth() {
    let (_sim, mut b, ncci, mut stream, _a) = raw_callee(None, Options::default()).await;
    assert_eq!(stream.x25().unwrap().tx_packet, 128);
    let oeb: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    stream.write_all(&stb(&oeb)).await.unwrap();
    stream.flush().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = get(&mut b).await;
        let Params::DataB3Ind(d) = m.params else {
            panic!("{m:?}")
        };
        got.push((d.data.len(), d.flags));
        put(
            &mut b,
            m.number,
            Params::DataB3Resp(DataB3Resp {
                ncci,
                handle: d.handle,
            }),
        );
        if d.flags & flags::MORE_DATA == 0 {
            break;
        }
    }
    // 128 + 128 + 44 octets, M-bit on all but the last: exactly the
    // exchange buffer, no Stream Transmission Header on the line.
    assert_eq!(got, [(128, 2), (128, 2), (44, 0)]);

    // The other way: a packet sequence becomes one STH-framed buffer.
    for (i, (chunk, more)) in [
        (&oeb[..128], true),
        (&oeb[128..256], true),
        (&oeb[256..], false),
    ]
    .into_iter()
    .enumerate()
    {
        put(
            &mut b,
            50 + i as u16,
            Params::DataB3Req(DataB3 {
                ncci,
                handle: i as u16,
                flags: if more { flags::MORE_DATA } else { 0 },
                data: Bytes::copy_from_slice(chunk),
            }),
        );
    }
    let mut buf = vec![0u8; 304];
    tokio::time::timeout(T, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, stb(&oeb));
}

#[tokio::test]
async fn negotiated_packet_size_is_used_for_sending() {
    // The callee accepts with 64-octet packets towards itself.
    let (_sim, mut b, ncci, mut stream, _a) = raw_callee(
        Some(Facilities {
            packet_size: Some((128, 64)),
            window: Some((7, 7)),
            other: vec![],
        }),
        Options::default(),
    )
    .await;
    let n = stream.x25().unwrap();
    assert_eq!((n.tx_packet, n.rx_packet), (64, 128));
    stream.write_all(&stb(&[7u8; 150])).await.unwrap();
    let mut sizes = Vec::new();
    loop {
        let m = get(&mut b).await;
        let Params::DataB3Ind(d) = m.params else {
            panic!("{m:?}")
        };
        sizes.push(d.data.len());
        put(
            &mut b,
            m.number,
            Params::DataB3Resp(DataB3Resp {
                ncci,
                handle: d.handle,
            }),
        );
        if d.flags & flags::MORE_DATA == 0 {
            break;
        }
    }
    assert_eq!(sizes, [64, 64, 22]);
}

#[tokio::test]
async fn simulated_controller_cuts_large_blocks_into_packets() {
    let (_sim, mut b, ncci, mut stream, _a) = raw_callee(None, Options::default()).await;
    // A 300-octet block from the raw side: the controller sends three
    // packets, the stream reassembles one exchange buffer.
    let oeb: Vec<u8> = (0..300u32).map(|i| (i ^ 0x55) as u8).collect();
    put(
        &mut b,
        9,
        Params::DataB3Req(DataB3 {
            ncci,
            handle: 77,
            flags: 0,
            data: Bytes::from(oeb.clone()),
        }),
    );
    let mut buf = vec![0u8; 304];
    tokio::time::timeout(T, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, stb(&oeb));
    // One confirmation for the one block.
    let m = get(&mut b).await;
    assert_eq!(
        m.params,
        Params::DataB3Conf(DataB3Conf {
            ncci,
            handle: 77,
            info: 0
        })
    );
    // M-bit on a block that does not fill its last packet: refused.
    put(
        &mut b,
        10,
        Params::DataB3Req(DataB3 {
            ncci,
            handle: 78,
            flags: flags::MORE_DATA,
            data: Bytes::from(vec![0u8; 100]),
        }),
    );
    assert_eq!(
        get(&mut b).await.params,
        Params::DataB3Conf(DataB3Conf {
            ncci,
            handle: 78,
            info: 0x2007
        })
    );
}

#[tokio::test]
async fn b3_protocol_mismatch_fails_the_call_with_layer3_error() {
    let sim = Sim::new();
    sim.add_controller(&["100"], 2);
    sim.add_controller(&["200"], 2);
    let a = Application::start(sim.register(RegisterParams::default()));
    let mut b = Application::start(sim.register(RegisterParams::default()));
    b.listen(2, cip::mask(cip::UNRESTRICTED_DIGITAL))
        .await
        .unwrap();
    let callee = tokio::spawn(async move {
        let call = b.next_call().await.unwrap();
        let r = call.accept(B3Mode::Transparent.b_protocol()).await;
        (r.map(|_| ()), b)
    });
    let r = a
        .dial(Dial {
            controller: 1,
            called: "200".into(),
            calling: None,
            b_protocol: B3Mode::Iso8208.b_protocol(),
        })
        .await;
    match r {
        Err(CallError::Cleared { reason: r }) => assert_eq!(r, reason::LAYER3_ERROR),
        other => panic!("{other:?}"),
    }
    let (r, _b) = tokio::time::timeout(T, callee).await.unwrap().unwrap();
    assert!(matches!(r, Err(CallError::Cleared { .. })), "{r:?}");
    // Both channels are free again.
    assert_eq!(sim.exchange().channels_in_use(1), Some(0));
    assert_eq!(sim.exchange().channels_in_use(2), Some(0));
}

#[tokio::test]
async fn b_channel_left_up_after_the_partners_clear_is_cleared_here() {
    let options = Options {
        peer_clear_grace: Duration::from_millis(100),
        ..Options::default()
    };
    let (_sim, mut b, ncci, mut stream, _a) = raw_callee(None, options).await;
    // The partner clears the X.25 call (DISCONNECT_B3_REQ) but keeps the
    // B channel.
    put(
        &mut b,
        30,
        Params::DisconnectB3Req(IdentNcpi {
            id: ncci,
            ncpi: vec![],
        }),
    );
    let mut seen = Vec::new();
    loop {
        let m = get(&mut b).await;
        seen.push(m.params.name());
        match m.params {
            Params::DisconnectB3Ind(d) => put(
                &mut b,
                m.number,
                Params::DisconnectB3Resp(Ident { id: d.ncci }),
            ),
            Params::DisconnectInd(d) => {
                // Cleared from the stream's side: the network's normal clearing.
                assert_eq!(d.reason, reason::NORMAL_CLEARING);
                put(
                    &mut b,
                    m.number,
                    Params::DisconnectResp(Ident { id: d.plci }),
                );
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        ["DISCONNECT_B3_CONF", "DISCONNECT_B3_IND", "DISCONNECT_IND"]
    );
    let mut rest = Vec::new();
    tokio::time::timeout(T, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

mod prop {
    use super::stb;
    use capi::x25::*;
    use proptest::prelude::*;

    proptest! {
        /// Any exchange buffers, any packet size, the stream fed in any
        /// pieces: only full packets carry the M-bit, and reassembly gives
        /// back exactly the stream.
        #[test]
        fn segment_then_reassemble(
            oebs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..3000), 1..6),
            size_exp in 4u32..=10,
            piece in 1usize..700,
        ) {
            let size = 1u16 << size_exp;
            let stream: Vec<u8> = oebs.iter().flat_map(|o| stb(o)).collect();
            let mut seg = Segmenter::new(size);
            for p in stream.chunks(piece) {
                seg.push(p).unwrap();
            }
            let mut r = Reassembler::new();
            let mut out = Vec::new();
            let mut sequences = 0;
            while let Some((p, more)) = seg.next_packet() {
                prop_assert!(p.len() <= usize::from(size) && !p.is_empty());
                if more {
                    prop_assert_eq!(p.len(), usize::from(size));
                }
                match r.packet(&p, if more { flags::MORE_DATA } else { 0 }).unwrap() {
                    Received::Complete(b) => {
                        out.extend_from_slice(&b);
                        sequences += 1;
                    }
                    Received::Partial => {}
                    Received::Ignored(w) => prop_assert!(false, "{}", w),
                }
            }
            prop_assert_eq!(sequences, oebs.len());
            prop_assert!(out == stream);
        }
    }
}
