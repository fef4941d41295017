//! Property tests: every message round-trips; no input makes the decoder panic.

use bytes::Bytes;
use capi::message::*;
use proptest::prelude::*;

fn blob() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short structs, sometimes past the 0xFF length escape.
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(any::<u8>(), 250..400),
    ]
}

fn called() -> impl Strategy<Value = Option<CalledPartyNumber>> {
    proptest::option::of(
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(type_plan, digits)| CalledPartyNumber { type_plan, digits }),
    )
}

fn calling() -> impl Strategy<Value = Option<CallingPartyNumber>> {
    proptest::option::of(
        (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(type_plan, presentation, digits)| CallingPartyNumber {
                type_plan,
                presentation,
                digits,
            }),
    )
}

fn bproto() -> impl Strategy<Value = Option<BProtocol>> {
    proptest::option::of(
        (
            any::<(u16, u16, u16)>(),
            blob(),
            blob(),
            blob(),
            proptest::option::of(blob()),
        )
            .prop_map(|((b1, b2, b3), c1, c2, c3, g)| BProtocol {
                b1: b1.into(),
                b2: b2.into(),
                b3: b3.into(),
                b1_config: c1,
                b2_config: c2,
                b3_config: c3,
                global_config: g,
            }),
    )
}

fn data() -> impl Strategy<Value = DataB3> {
    (
        any::<(u32, u16, u16)>(),
        proptest::collection::vec(any::<u8>(), 0..3000),
    )
        .prop_map(|((ncci, handle, flags), d)| DataB3 {
            ncci,
            handle,
            flags,
            data: Bytes::from(d),
        })
}

fn params() -> impl Strategy<Value = Params> {
    let id = any::<u32>();
    prop_oneof![
        (any::<(u32, u32, u32, u32)>(), calling(), blob()).prop_map(|((c, i, m, m2), n, s)| {
            Params::ListenReq(ListenReq {
                controller: c,
                info_mask: i,
                cip_mask: m,
                cip_mask2: m2,
                calling_number: n,
                calling_subaddress: s,
            })
        }),
        any::<(u32, u16)>()
            .prop_map(|(controller, info)| Params::ListenConf(ListenConf { controller, info })),
        (
            any::<(u32, u16)>(),
            called(),
            calling(),
            (blob(), blob()),
            bproto(),
            (blob(), blob(), blob(), blob())
        )
            .prop_map(|((c, cip), cd, cg, (s1, s2), b, (bc, llc, hlc, ai))| {
                Params::ConnectReq(ConnectReq {
                    controller: c,
                    cip,
                    called_number: cd,
                    calling_number: cg,
                    called_subaddress: s1,
                    calling_subaddress: s2,
                    b_protocol: b,
                    bc,
                    llc,
                    hlc,
                    additional_info: ai,
                })
            }),
        any::<(u32, u16)>()
            .prop_map(|(plci, info)| Params::ConnectConf(ConnectConf { plci, info })),
        (
            any::<(u32, u16)>(),
            called(),
            calling(),
            (blob(), blob()),
            (blob(), blob(), blob(), blob())
        )
            .prop_map(|((plci, cip), cd, cg, (s1, s2), (bc, llc, hlc, ai))| {
                Params::ConnectInd(ConnectInd {
                    plci,
                    cip,
                    called_number: cd,
                    calling_number: cg,
                    called_subaddress: s1,
                    calling_subaddress: s2,
                    bc,
                    llc,
                    hlc,
                    additional_info: ai,
                })
            }),
        (
            any::<(u32, u16)>(),
            bproto(),
            calling(),
            blob(),
            blob(),
            blob()
        )
            .prop_map(|((plci, reject), b, n, s, llc, ai)| Params::ConnectResp(
                ConnectResp {
                    plci,
                    reject,
                    b_protocol: b,
                    connected_number: n,
                    connected_subaddress: s,
                    llc,
                    additional_info: ai,
                }
            )),
        (any::<u32>(), calling(), blob(), blob()).prop_map(|(plci, n, s, llc)| {
            Params::ConnectActiveInd(ConnectActiveInd {
                plci,
                connected_number: n,
                connected_subaddress: s,
                llc,
            })
        }),
        id.prop_map(|id| Params::ConnectActiveResp(Ident { id })),
        (any::<u32>(), blob()).prop_map(|(id, ncpi)| Params::ConnectB3Req(IdentNcpi { id, ncpi })),
        any::<(u32, u16)>().prop_map(|(id, info)| Params::ConnectB3Conf(IdentInfo { id, info })),
        (any::<u32>(), blob()).prop_map(|(id, ncpi)| Params::ConnectB3Ind(IdentNcpi { id, ncpi })),
        (any::<(u32, u16)>(), blob()).prop_map(|((ncci, reject), ncpi)| {
            Params::ConnectB3Resp(ConnectB3Resp { ncci, reject, ncpi })
        }),
        (any::<u32>(), blob())
            .prop_map(|(id, ncpi)| Params::ConnectB3ActiveInd(IdentNcpi { id, ncpi })),
        any::<u32>().prop_map(|id| Params::ConnectB3ActiveResp(Ident { id })),
        data().prop_map(Params::DataB3Req),
        data().prop_map(Params::DataB3Ind),
        any::<(u32, u16, u16)>().prop_map(|(ncci, handle, info)| Params::DataB3Conf(DataB3Conf {
            ncci,
            handle,
            info
        })),
        any::<(u32, u16)>()
            .prop_map(|(ncci, handle)| Params::DataB3Resp(DataB3Resp { ncci, handle })),
        (any::<u32>(), blob())
            .prop_map(|(id, ncpi)| Params::DisconnectB3Req(IdentNcpi { id, ncpi })),
        any::<(u32, u16)>().prop_map(|(id, info)| Params::DisconnectB3Conf(IdentInfo { id, info })),
        (any::<(u32, u16)>(), blob()).prop_map(|((ncci, reason_b3), ncpi)| {
            Params::DisconnectB3Ind(DisconnectB3Ind {
                ncci,
                reason_b3,
                ncpi,
            })
        }),
        any::<u32>().prop_map(|id| Params::DisconnectB3Resp(Ident { id })),
        (any::<u32>(), blob()).prop_map(|(plci, ai)| Params::DisconnectReq(DisconnectReq {
            plci,
            additional_info: ai
        })),
        any::<(u32, u16)>().prop_map(|(id, info)| Params::DisconnectConf(IdentInfo { id, info })),
        any::<(u32, u16)>()
            .prop_map(|(plci, reason)| Params::DisconnectInd(DisconnectInd { plci, reason })),
        any::<u32>().prop_map(|id| Params::DisconnectResp(Ident { id })),
        (any::<(u32, u16)>(), blob()).prop_map(|((id, info_number), ie)| {
            Params::InfoInd(InfoInd {
                id,
                info_number,
                info_element: ie,
            })
        }),
        any::<u32>().prop_map(|id| Params::InfoResp(Ident { id })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(app in any::<u16>(), num in any::<u16>(), p in params()) {
        let m = Message::new(app, num, p);
        let mut buf = m.to_vec().unwrap();
        let len = buf.len();
        // Trailing octets (the next message) are not consumed.
        buf.extend_from_slice(&[0xEE, 0xEE]);
        let (d, used) = Message::decode(&buf).unwrap();
        prop_assert_eq!(used, len);
        prop_assert_eq!(Message::frame_len(&buf).unwrap(), len);
        prop_assert_eq!(d, m);
        // Every strict prefix is reported incomplete or otherwise refused, never panics.
        for cut in [0, 1, 7, 8, len / 2, len - 1] {
            prop_assert!(Message::decode(&buf[..cut.min(len - 1)]).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok((m, used)) = Message::decode(&bytes) {
            prop_assert!(used <= bytes.len());
            // Whatever decodes encodes again, and that decodes to the same message.
            let again = m.to_vec().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap().0, m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(p in params(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut buf = Message::new(1, 1, p).to_vec().unwrap();
        for (at, v) in flips {
            let n = buf.len();
            buf[at % n] = v;
        }
        let _ = Message::decode(&buf);
    }
}
