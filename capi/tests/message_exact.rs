//! Byte-exact encoding and decoding of each supported message against
//! octets written by hand from the CAPI 2.0 layouts (part I, chapter 5:
//! parameter order; 3.1: header; all integers little-endian).

use bytes::Bytes;
use capi::message::*;

/// Encodes `m`, compares with `bytes`, decodes `bytes` back to `m`.
fn exact(m: Params, bytes: &[u8]) {
    let msg = Message::new(0x0001, 0x0102, m);
    let enc = msg.to_vec().unwrap();
    assert_eq!(enc, bytes, "{}: encoding", msg.params.name());
    let (dec, used) = Message::decode(bytes).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(dec, msg, "{}: decoding", msg.params.name());
}

/// Header octets for app id 1, message number 0x0102.
macro_rules! hdr {
    ($len:expr, $cmd:expr, $sub:expr) => {
        [$len as u8, 0x00, 0x01, 0x00, $cmd, $sub, 0x02, 0x01]
    };
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn listen_req() {
    let b = cat(&[
        &hdr!(26, 0x05, 0x80),
        &[0x01, 0, 0, 0],    // controller 1
        &[0x00, 0x01, 0, 0], // info mask 0x100
        &[0x04, 0, 0, 0],    // CIP mask: bit 2 unrestricted digital
        &[0, 0, 0, 0],       // CIP mask 2
        &[0x00],             // calling party number: empty
        &[0x00],             // calling party subaddress: empty
    ]);
    exact(
        Params::ListenReq(ListenReq {
            controller: 1,
            info_mask: 0x100,
            cip_mask: cip::mask(cip::UNRESTRICTED_DIGITAL),
            cip_mask2: 0,
            calling_number: None,
            calling_subaddress: vec![],
        }),
        &b,
    );
}

#[test]
fn listen_conf() {
    let b = cat(&[&hdr!(14, 0x05, 0x81), &[1, 0, 0, 0], &[0x00, 0x00]]);
    exact(
        Params::ListenConf(ListenConf {
            controller: 1,
            info: 0,
        }),
        &b,
    );
}

#[test]
fn connect_req_with_x75_iso8208() {
    let bproto: &[u8] = &[
        0x1E, // B protocol struct length 30
        0x00, 0x00, // B1: 64 kbit/s HDLC
        0x00, 0x00, // B2: X.75 SLP
        0x02, 0x00, // B3: ISO 8208
        0x00, // B1 configuration: empty
        0x05, 0x03, 0x01, 0x08, 0x07, 0x00, // B2 config: A=3 B=1 modulo 8 window 7, XID empty
        0x10, // B3 configuration length 16
        0, 0, 0, 0, // LIC, HIC
        1, 0, 1, 0, // LTC, HTC
        0, 0, 0, 0, // LOC, HOC
        8, 0, // modulo 8
        2, 0, // window 2
    ];
    let b = cat(&[
        &hdr!(8 + 4 + 2 + 7 + 6 + 1 + 1 + 31 + 4, 0x02, 0x80),
        &[0x01, 0, 0, 0],                            // controller 1
        &[0x02, 0x00],                               // CIP 2
        &[0x06, 0x80, b'5', b'5', b'5', b'0', b'1'], // called: type/plan 0x80, "55501"
        &[0x05, 0x00, 0x80, b'4', b'2', b'1'],       // calling: 0x00, presentation 0x80, "421"
        &[0x00],                                     // called subaddress
        &[0x00],                                     // calling subaddress
        bproto,
        &[0x00, 0x00, 0x00, 0x00], // BC, LLC, HLC, additional info
    ]);
    exact(
        Params::ConnectReq(ConnectReq {
            controller: 1,
            cip: cip::UNRESTRICTED_DIGITAL,
            called_number: Some(CalledPartyNumber::new("55501")),
            calling_number: Some(CallingPartyNumber::new("421")),
            called_subaddress: vec![],
            calling_subaddress: vec![],
            b_protocol: Some(BProtocol::x75_iso8208(
                &X75Config::default(),
                &Iso8208Config::default(),
            )),
            bc: vec![],
            llc: vec![],
            hlc: vec![],
            additional_info: vec![],
        }),
        &b,
    );
}

#[test]
fn connect_conf() {
    let b = cat(&[&hdr!(14, 0x02, 0x81), &[0x01, 0x01, 0, 0], &[0x00, 0x00]]);
    exact(
        Params::ConnectConf(ConnectConf {
            plci: 0x0101,
            info: 0,
        }),
        &b,
    );
}

#[test]
fn connect_ind() {
    let b = cat(&[
        &hdr!(8 + 4 + 2 + 4 + 5 + 6, 0x02, 0x82),
        &[0x01, 0x02, 0, 0],                   // PLCI 0x0201
        &[0x02, 0x00],                         // CIP 2
        &[0x03, 0x81, b'1', b'2'],             // called: 0x81 "12"
        &[0x04, 0x21, 0x83, b'9', b'9'],       // calling: national, presentation 0x83, "99"
        &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // subaddresses, BC, LLC, HLC, additional info
    ]);
    exact(
        Params::ConnectInd(ConnectInd {
            plci: 0x0201,
            cip: 2,
            called_number: Some(CalledPartyNumber {
                type_plan: 0x81,
                digits: b"12".to_vec(),
            }),
            calling_number: Some(CallingPartyNumber {
                type_plan: 0x21,
                presentation: 0x83,
                digits: b"99".to_vec(),
            }),
            called_subaddress: vec![],
            calling_subaddress: vec![],
            bc: vec![],
            llc: vec![],
            hlc: vec![],
            additional_info: vec![],
        }),
        &b,
    );
}

#[test]
fn connect_resp_accept_transparent_b3() {
    let b = cat(&[
        &hdr!(8 + 4 + 2 + 10 + 4, 0x02, 0x83),
        &[0x01, 0x02, 0, 0],                                           // PLCI
        &[0x00, 0x00],                                                 // reject 0: accept
        &[0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // B protocol: HDLC, X.75, transparent, 3 empty configs
        &[0x00, 0x00, 0x00, 0x00], // connected number, subaddress, LLC, additional info
    ]);
    exact(
        Params::ConnectResp(ConnectResp {
            plci: 0x0201,
            reject: reject::ACCEPT,
            b_protocol: Some(BProtocol::x75_transparent()),
            connected_number: None,
            connected_subaddress: vec![],
            llc: vec![],
            additional_info: vec![],
        }),
        &b,
    );
}

#[test]
fn connect_resp_reject_has_empty_structs() {
    let b = cat(&[
        &hdr!(19, 0x02, 0x83),
        &[0x01, 0x02, 0, 0],
        &[0x03, 0x00], // reject 3: user busy
        &[0, 0, 0, 0, 0],
    ]);
    exact(
        Params::ConnectResp(ConnectResp {
            plci: 0x0201,
            reject: reject::USER_BUSY,
            b_protocol: None,
            connected_number: None,
            connected_subaddress: vec![],
            llc: vec![],
            additional_info: vec![],
        }),
        &b,
    );
}

#[test]
fn connect_active_ind_and_resp() {
    let b = cat(&[
        &hdr!(8 + 4 + 5 + 2, 0x03, 0x82),
        &[0x01, 0x01, 0, 0],
        &[0x04, 0x00, 0x80, b'1', b'2'], // connected number "12"
        &[0x00, 0x00],                   // connected subaddress, LLC
    ]);
    exact(
        Params::ConnectActiveInd(ConnectActiveInd {
            plci: 0x0101,
            connected_number: Some(CallingPartyNumber::new("12")),
            connected_subaddress: vec![],
            llc: vec![],
        }),
        &b,
    );
    let b = cat(&[&hdr!(12, 0x03, 0x83), &[0x01, 0x01, 0, 0]]);
    exact(Params::ConnectActiveResp(Ident { id: 0x0101 }), &b);
}

#[test]
fn connect_b3_family() {
    // CONNECT_B3_REQ: PLCI, NCPI (X.25: flags 0, group 0, channel 1)
    let b = cat(&[&hdr!(16, 0x82, 0x80), &[0x01, 0x01, 0, 0], &[3, 0, 0, 1]]);
    exact(
        Params::ConnectB3Req(IdentNcpi {
            id: 0x0101,
            ncpi: X25Ncpi {
                flags: 0,
                group: 0,
                channel: 1,
                contents: vec![],
            }
            .encode(),
        }),
        &b,
    );
    // CONNECT_B3_CONF: NCCI 0x00010101, info 0
    let b = cat(&[&hdr!(14, 0x82, 0x81), &[0x01, 0x01, 0x01, 0], &[0, 0]]);
    exact(
        Params::ConnectB3Conf(IdentInfo {
            id: 0x0001_0101,
            info: 0,
        }),
        &b,
    );
    // CONNECT_B3_IND: NCCI, empty NCPI
    let b = cat(&[&hdr!(13, 0x82, 0x82), &[0x01, 0x01, 0x01, 0], &[0]]);
    exact(
        Params::ConnectB3Ind(IdentNcpi {
            id: 0x0001_0101,
            ncpi: vec![],
        }),
        &b,
    );
    // CONNECT_B3_RESP: NCCI, reject 0, NCPI empty
    let b = cat(&[&hdr!(15, 0x82, 0x83), &[0x01, 0x01, 0x01, 0], &[0, 0], &[0]]);
    exact(
        Params::ConnectB3Resp(ConnectB3Resp {
            ncci: 0x0001_0101,
            reject: 0,
            ncpi: vec![],
        }),
        &b,
    );
    // CONNECT_B3_ACTIVE_IND / RESP
    let b = cat(&[&hdr!(13, 0x83, 0x82), &[0x01, 0x01, 0x01, 0], &[0]]);
    exact(
        Params::ConnectB3ActiveInd(IdentNcpi {
            id: 0x0001_0101,
            ncpi: vec![],
        }),
        &b,
    );
    let b = cat(&[&hdr!(12, 0x83, 0x83), &[0x01, 0x01, 0x01, 0]]);
    exact(Params::ConnectB3ActiveResp(Ident { id: 0x0001_0101 }), &b);
}

#[test]
fn data_b3_family() {
    let data = b"HELLO";
    // DATA_B3_REQ: NCCI, data pointer (0), length 5, handle 7, flags 0; data follows
    let b = cat(&[
        &hdr!(22, 0x86, 0x80),
        &[0x01, 0x01, 0x01, 0],
        &[0, 0, 0, 0],
        &[5, 0],
        &[7, 0],
        &[0, 0],
        data,
    ]);
    exact(
        Params::DataB3Req(DataB3 {
            ncci: 0x0001_0101,
            handle: 7,
            flags: 0,
            data: Bytes::from_static(data),
        }),
        &b,
    );
    let mut ind = b.clone();
    ind[5] = 0x82;
    exact(
        Params::DataB3Ind(DataB3 {
            ncci: 0x0001_0101,
            handle: 7,
            flags: 0,
            data: Bytes::from_static(data),
        }),
        &ind,
    );
    // DATA_B3_CONF: NCCI, handle, info
    let b = cat(&[
        &hdr!(16, 0x86, 0x81),
        &[0x01, 0x01, 0x01, 0],
        &[7, 0],
        &[0, 0],
    ]);
    exact(
        Params::DataB3Conf(DataB3Conf {
            ncci: 0x0001_0101,
            handle: 7,
            info: 0,
        }),
        &b,
    );
    // DATA_B3_RESP: NCCI, handle
    let b = cat(&[&hdr!(14, 0x86, 0x83), &[0x01, 0x01, 0x01, 0], &[7, 0]]);
    exact(
        Params::DataB3Resp(DataB3Resp {
            ncci: 0x0001_0101,
            handle: 7,
        }),
        &b,
    );
}

#[test]
fn data_b3_ind_with_64_bit_pointer_is_read() {
    // A 64-bit controller sends total length 30 with the Data64 qword.
    let b = cat(&[
        &hdr!(30, 0x86, 0x82),
        &[0x01, 0x01, 0x01, 0],
        &[0, 0, 0, 0],
        &[2, 0],
        &[9, 0],
        &[0, 0],
        &[0xAA; 8], // Data64
        b"OK",
    ]);
    let (m, used) = Message::decode(&b).unwrap();
    assert_eq!(used, b.len());
    let Params::DataB3Ind(d) = m.params else {
        panic!("{m:?}")
    };
    assert_eq!((d.handle, &d.data[..]), (9, &b"OK"[..]));
}

#[test]
fn disconnect_b3_family() {
    let b = cat(&[&hdr!(13, 0x84, 0x80), &[0x01, 0x01, 0x01, 0], &[0]]);
    exact(
        Params::DisconnectB3Req(IdentNcpi {
            id: 0x0001_0101,
            ncpi: vec![],
        }),
        &b,
    );
    let b = cat(&[&hdr!(14, 0x84, 0x81), &[0x01, 0x01, 0x01, 0], &[0, 0]]);
    exact(
        Params::DisconnectB3Conf(IdentInfo {
            id: 0x0001_0101,
            info: 0,
        }),
        &b,
    );
    // DISCONNECT_B3_IND: NCCI, reason B3 0x3301 (protocol error layer 1), NCPI empty
    let b = cat(&[
        &hdr!(15, 0x84, 0x82),
        &[0x01, 0x01, 0x01, 0],
        &[0x01, 0x33],
        &[0],
    ]);
    exact(
        Params::DisconnectB3Ind(DisconnectB3Ind {
            ncci: 0x0001_0101,
            reason_b3: 0x3301,
            ncpi: vec![],
        }),
        &b,
    );
    let b = cat(&[&hdr!(12, 0x84, 0x83), &[0x01, 0x01, 0x01, 0]]);
    exact(Params::DisconnectB3Resp(Ident { id: 0x0001_0101 }), &b);
}

#[test]
fn disconnect_family() {
    let b = cat(&[&hdr!(13, 0x04, 0x80), &[0x01, 0x01, 0, 0], &[0]]);
    exact(
        Params::DisconnectReq(DisconnectReq {
            plci: 0x0101,
            additional_info: vec![],
        }),
        &b,
    );
    let b = cat(&[&hdr!(14, 0x04, 0x81), &[0x01, 0x01, 0, 0], &[0, 0]]);
    exact(
        Params::DisconnectConf(IdentInfo {
            id: 0x0101,
            info: 0,
        }),
        &b,
    );
    // DISCONNECT_IND: reason 0x3491 = Q.850 cause 17 user busy
    let b = cat(&[&hdr!(14, 0x04, 0x82), &[0x01, 0x01, 0, 0], &[0x91, 0x34]]);
    exact(
        Params::DisconnectInd(DisconnectInd {
            plci: 0x0101,
            reason: 0x3491,
        }),
        &b,
    );
    let b = cat(&[&hdr!(12, 0x04, 0x83), &[0x01, 0x01, 0, 0]]);
    exact(Params::DisconnectResp(Ident { id: 0x0101 }), &b);
}

#[test]
fn info_family() {
    // INFO_IND: PLCI, info number 0x0008 (cause IE), info element: cause 0x80 0x90
    let b = cat(&[
        &hdr!(17, 0x08, 0x82),
        &[0x01, 0x01, 0, 0],
        &[0x08, 0x00],
        &[0x02, 0x80, 0x90],
    ]);
    exact(
        Params::InfoInd(InfoInd {
            id: 0x0101,
            info_number: 0x0008,
            info_element: vec![0x80, 0x90],
        }),
        &b,
    );
    let b = cat(&[&hdr!(12, 0x08, 0x83), &[0x01, 0x01, 0, 0]]);
    exact(Params::InfoResp(Ident { id: 0x0101 }), &b);
}

#[test]
fn long_struct_uses_ff_and_word_length() {
    let ie = vec![0x55u8; 300];
    let msg = Message::new(
        1,
        2,
        Params::InfoInd(InfoInd {
            id: 1,
            info_number: 0x70,
            info_element: ie.clone(),
        }),
    );
    let enc = msg.to_vec().unwrap();
    // header 8 + PLCI 4 + info number 2, then 0xFF, 300 as a word
    assert_eq!(&enc[14..17], &[0xFF, 0x2C, 0x01]);
    assert_eq!(enc.len(), 17 + 300);
    assert_eq!(u16::from_le_bytes([enc[0], enc[1]]) as usize, enc.len());
    assert_eq!(Message::decode(&enc).unwrap().0, msg);
    // 254 octets still fit the one-octet form, 255 do not.
    for (n, prefix) in [(254usize, 1usize), (255, 3)] {
        let m = Message::new(
            1,
            2,
            Params::InfoInd(InfoInd {
                id: 1,
                info_number: 0,
                info_element: vec![0; n],
            }),
        );
        assert_eq!(m.to_vec().unwrap().len(), 14 + prefix + n);
    }
}

#[test]
fn malformed_inputs_are_typed_errors() {
    assert!(matches!(
        Message::decode(&[0x0C, 0x00, 1, 0]),
        Err(DecodeError::Incomplete { .. })
    ));
    assert_eq!(
        Message::decode(&[4, 0, 1, 0, 2, 0x80, 0, 0]),
        Err(DecodeError::BadLength(4))
    );
    assert!(matches!(
        Message::decode(&[12, 0, 1, 0, 0x41, 0x80, 0, 0, 1, 0, 0, 0]),
        Err(DecodeError::Unsupported {
            command: 0x41,
            subcommand: 0x80
        })
    ));
    // LISTEN_CONF cut after the controller: the info word is missing.
    assert_eq!(
        Message::decode(&[12, 0, 1, 0, 5, 0x81, 0, 0, 1, 0, 0, 0]),
        Err(DecodeError::Truncated("info"))
    );
    // A struct claiming more octets than the message holds.
    assert_eq!(
        Message::decode(&[13, 0, 1, 0, 0x84, 0x80, 0, 0, 1, 0, 0, 0, 9]),
        Err(DecodeError::Truncated("NCPI"))
    );
    // Calling party number with only one octet.
    let mut b = cat(&[&hdr!(26, 0x05, 0x80), &[0; 16], &[1, 0x00], &[0]]);
    b[0] = b.len() as u8;
    assert!(matches!(
        Message::decode(&b),
        Err(DecodeError::BadStruct { .. })
    ));
    // DATA_B3_IND whose data block has not fully arrived.
    let b = cat(&[
        &hdr!(22, 0x86, 0x82),
        &[1, 0, 0, 0],
        &[0; 4],
        &[10, 0],
        &[0; 4],
        b"abc",
    ]);
    assert!(matches!(
        Message::decode(&b),
        Err(DecodeError::Incomplete { need: 32, have: 25 })
    ));
}

#[test]
fn trailing_parameters_of_later_revisions_are_ignored() {
    // DISCONNECT_IND with two extra octets after the reason.
    let b = cat(&[&hdr!(16, 0x04, 0x82), &[1, 1, 0, 0], &[0x90, 0x34], &[0, 0]]);
    let (m, used) = Message::decode(&b).unwrap();
    assert_eq!(used, 16);
    assert_eq!(
        m.params,
        Params::DisconnectInd(DisconnectInd {
            plci: 0x0101,
            reason: 0x3490
        })
    );
}

#[test]
fn b_protocol_configuration_structs() {
    let x75 = X75Config {
        address_a: 1,
        address_b: 3,
        modulo: 128,
        window: 15,
        xid: vec![0x82, 0x80],
    };
    assert_eq!(x75.encode(), [1, 3, 128, 15, 2, 0x82, 0x80]);
    assert_eq!(X75Config::decode(&x75.encode()).unwrap(), x75);
    assert_eq!(X75Config::decode(&[]).unwrap(), X75Config::default());
    assert!(X75Config::decode(&[1, 3]).is_err());
    let x25 = Iso8208Config {
        ltc: 1,
        htc: 4,
        modulo: 128,
        window: 7,
        ..Default::default()
    };
    assert_eq!(
        x25.encode(),
        [0, 0, 0, 0, 1, 0, 4, 0, 0, 0, 0, 0, 128, 0, 7, 0]
    );
    assert_eq!(Iso8208Config::decode(&x25.encode()).unwrap(), x25);
    assert_eq!(u16::from(B3Protocol::Iso8208), 2);
    assert_eq!(B2Protocol::from(1), B2Protocol::Transparent);
    assert_eq!(B1Protocol::from(9), B1Protocol::Other(9));
}
