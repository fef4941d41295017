//! Lenient decoding: unambiguous deviations from RFC 5024 are accepted,
//! reported as [`Deviation`]s, and refused by strict decoding.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{cat, lenient, show};
use oftp2::codec::*;
use oftp2::value::*;

const V20: ProtocolLevel = ProtocolLevel::V2_0;
const V14: ProtocolLevel = ProtocolLevel::V1_4;

const SSID_BODY: &[u8] = b"X5O0013ACMECORP            SECRET  04096BYYN064N    USERDATA";

fn kinds(devs: &[Deviation]) -> Vec<(CommandId, &'static str, DeviationKind)> {
    devs.iter().map(|d| (d.command, d.field, d.kind)).collect()
}

fn strict_rejects(level: ProtocolLevel, frame: &[u8], kind: DeviationKind) {
    match Command::decode_strict(Bytes::copy_from_slice(frame), level) {
        Err(DecodeError::Deviation(d)) => {
            assert_eq!(d.kind, kind, "{}", show(frame));
            assert_eq!(
                DecodeError::Deviation(d).end_session_reason(),
                EndSessionReason::CommandContainedInvalidData
            );
        }
        other => panic!("strict decode of {} gave {other:?}", show(frame)),
    }
}

fn reference_ssid() -> Command {
    Command::decode_strict(Bytes::copy_from_slice(&cat(&[SSID_BODY, b"\r"])), V20).unwrap()
}

#[test]
fn ssid_line_feed_terminator() {
    let frame = cat(&[SSID_BODY, b"\n"]);
    let (cmd, devs) = lenient(V20, &frame);
    assert_eq!(cmd, reference_ssid());
    assert_eq!(
        kinds(&devs),
        [(CommandId::Ssid, "SSIDCR", DeviationKind::LineFeedTerminator)]
    );
    assert_eq!(
        devs[0].to_string(),
        "SSID SSIDCR: line feed (0x0A) instead of carriage return"
    );
    strict_rejects(V20, &frame, DeviationKind::LineFeedTerminator);
    // Plain decode accepts it silently.
    assert_eq!(
        Command::decode(Bytes::from(frame), V20).unwrap(),
        reference_ssid()
    );
}

#[test]
fn ssid_other_terminators() {
    let (cmd, devs) = lenient(V20, &cat(&[SSID_BODY, b"\r\n"]));
    assert_eq!(cmd, reference_ssid());
    assert_eq!(devs[0].kind, DeviationKind::CrLfTerminator);

    let (cmd, devs) = lenient(V20, SSID_BODY);
    assert_eq!(cmd, reference_ssid());
    assert_eq!(devs[0].kind, DeviationKind::MissingTerminator);

    // 0x8D is one of the two values the RFC allows: no deviation.
    let (cmd, devs) = lenient(V20, &cat(&[SSID_BODY, &[0x8d]]));
    assert_eq!(cmd, reference_ssid());
    assert!(devs.is_empty());
}

#[test]
fn ssid_trimmed_user_data_is_padded() {
    // Sender stripped the trailing padding of SSIDUSER ("USER" + 4 spaces).
    let frame = b"X5O0013ACMECORP            SECRET  04096BYYN064N    USER\r";
    let (cmd, devs) = lenient(V20, frame);
    let Command::Ssid(s) = cmd else {
        panic!("not SSID")
    };
    assert_eq!(s.user_data.as_str(), "USER");
    assert_eq!(
        kinds(&devs),
        [(
            CommandId::Ssid,
            "SSIDUSER",
            DeviationKind::MissingPadding { missing: 4 }
        )]
    );
    // Reserved field and user data both missing, and an LF terminator.
    let frame = b"X5O0013ACMECORP            SECRET  04096BYYN064N\n";
    let (_, devs) = lenient(V20, frame);
    assert_eq!(
        devs.iter().map(|d| d.kind).collect::<Vec<_>>(),
        [
            DeviationKind::LineFeedTerminator,
            DeviationKind::MissingPadding { missing: 12 }
        ]
    );
    // But not when a numeric field would be cut: that is ambiguous.
    let frame = b"X5O0013ACMECORP            SECRET  04096BYYN06\r";
    assert!(matches!(
        Command::decode_lenient(Bytes::from_static(frame), V20),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn lowercase_flags_and_letters() {
    let frame = b"X5O0013ACMECORP            SECRET  04096byyn064n    USERDATA\r";
    let (cmd, devs) = lenient(V20, frame);
    assert_eq!(cmd, reference_ssid());
    let fields: Vec<_> = devs.iter().map(|d| (d.field, d.kind)).collect();
    assert_eq!(
        fields,
        [
            ("SSIDSR", DeviationKind::Lowercase),
            ("SSIDCMPR", DeviationKind::Lowercase),
            ("SSIDREST", DeviationKind::Lowercase),
            ("SSIDSPEC", DeviationKind::Lowercase),
            ("SSIDAUTH", DeviationKind::Lowercase),
        ]
    );
    strict_rejects(V20, frame, DeviationKind::Lowercase);
}

#[test]
fn lowercase_identifiers_are_kept_and_echoed() {
    // A partner using a lowercase dataset name and originator: kept as
    // received so the EERP names the file exactly as its originator did.
    let frame = cat(&[
        b"E",
        b"orders.edi                ",
        b"   ",
        b"20240101",
        b"0000000000",
        b"        ",
        b"o0013acme                ",
        b"O0013PARTNERB            ",
        &[0, 0, 0, 0],
    ]);
    let (cmd, devs) = lenient(V20, &frame);
    let Command::Eerp(e) = &cmd else {
        panic!("not EERP")
    };
    assert_eq!(e.dataset_name.as_str(), "orders.edi");
    assert_eq!(e.destination.as_str(), "o0013acme");
    assert!(!e.destination.is_strict());
    assert!(e
        .destination
        .eq_ignore_case(&OdetteId::new("O0013ACME").unwrap()));
    assert_eq!(
        kinds(&devs),
        [
            (CommandId::Eerp, "EERPDSN", DeviationKind::Lowercase),
            (CommandId::Eerp, "EERPDEST", DeviationKind::Lowercase),
        ]
    );
    let mut out = BytesMut::new();
    cmd.encode(V20, &mut out).unwrap();
    assert_eq!(show(&out), show(&frame));
}

#[test]
fn foreign_characters_and_embedded_spaces_reported() {
    let frame = b"X5O0013_ACME               SECRET  04096BYYN064N    USER DAT\r";
    let (_, devs) = lenient(V20, frame);
    assert_eq!(
        kinds(&devs),
        [
            (CommandId::Ssid, "SSIDCODE", DeviationKind::OutsideAppendixB),
            (CommandId::Ssid, "SSIDUSER", DeviationKind::EmbeddedSpace),
        ]
    );
}

#[test]
fn esid_line_feed_and_cross_level_forms() {
    let (cmd, devs) = lenient(V20, b"F00000\n");
    assert_eq!(
        cmd,
        Command::Esid(Esid {
            reason: EndSessionReason::Normal,
            text: String::new()
        })
    );
    assert_eq!(devs[0].kind, DeviationKind::LineFeedTerminator);

    // A 1.x responder refusing a 2.0 SSID answers in the 1.x layout.
    let (cmd, devs) = lenient(V20, b"F04\r");
    assert_eq!(
        cmd,
        Command::Esid(Esid {
            reason: EndSessionReason::InvalidPassword,
            text: String::new()
        })
    );
    assert_eq!(
        kinds(&devs),
        [(
            CommandId::Esid,
            "ESIDREASL",
            DeviationKind::OtherLevelLayout
        )]
    );
    // And the other way round.
    let (cmd, devs) = lenient(V14, b"F03007Unknown\r");
    assert_eq!(
        cmd,
        Command::Esid(Esid {
            reason: EndSessionReason::UserCodeNotKnown,
            text: "Unknown".into()
        })
    );
    assert_eq!(devs[0].kind, DeviationKind::OtherLevelLayout);
    // 1.x form with a line feed.
    let (_, devs) = lenient(V14, b"F00\n");
    assert_eq!(devs[0].kind, DeviationKind::LineFeedTerminator);
}

#[test]
fn ssrm_variants() {
    let (cmd, devs) = lenient(V20, b"IODETTE FTP READY \n");
    assert_eq!(cmd, Command::Ssrm(Ssrm));
    assert_eq!(devs[0].kind, DeviationKind::LineFeedTerminator);
    let (cmd, devs) = lenient(V20, b"IODETTE FTP READY\r");
    assert_eq!(cmd, Command::Ssrm(Ssrm));
    assert_eq!(
        kinds(&devs),
        [(
            CommandId::Ssrm,
            "SSRMMSG",
            DeviationKind::MissingPadding { missing: 1 }
        )]
    );
    let (_, devs) = lenient(V20, b"IODETTE FTP READY \r\n");
    assert_eq!(devs[0].kind, DeviationKind::CrLfTerminator);
}

#[test]
fn cdt_padding_and_reserved() {
    let (cmd, devs) = lenient(V20, b"C");
    assert_eq!(cmd, Command::Cdt(Cdt));
    assert_eq!(devs[0].kind, DeviationKind::MissingPadding { missing: 2 });
    let (cmd, devs) = lenient(V20, b"C00");
    assert_eq!(cmd, Command::Cdt(Cdt));
    assert_eq!(
        kinds(&devs),
        [(CommandId::Cdt, "CDTRSV1", DeviationKind::ReservedNotBlank)]
    );
    strict_rejects(V20, b"C00", DeviationKind::ReservedNotBlank);
}

#[test]
fn trailing_blanks_ignored() {
    let (cmd, devs) = lenient(V20, b"R\r\n");
    assert_eq!(cmd, Command::Cd(Cd));
    assert_eq!(devs[0].kind, DeviationKind::TrailingBlanks { count: 2 });
    let (cmd, devs) = lenient(V14, b"4Y  ");
    assert_eq!(
        cmd,
        Command::Efpa(Efpa {
            change_direction: true
        })
    );
    assert_eq!(devs[0].kind, DeviationKind::TrailingBlanks { count: 2 });
}

#[test]
fn space_padded_numbers() {
    let (cmd, devs) = lenient(V20, b"2             1024");
    assert_eq!(cmd, Command::Sfpa(Sfpa { answer_count: 1024 }));
    assert_eq!(
        kinds(&devs),
        [(
            CommandId::Sfpa,
            "SFPAACNT",
            DeviationKind::SpacePaddedNumber
        )]
    );
    // All blank counts as zero.
    let (cmd, _) = lenient(V14, b"2         ");
    assert_eq!(cmd, Command::Sfpa(Sfpa { answer_count: 0 }));
    strict_rejects(V14, b"2         ", DeviationKind::SpacePaddedNumber);
}

#[test]
fn invalid_utf8_reason_text_replaced() {
    let (cmd, devs) = lenient(V20, b"F99004ab\xffc\r");
    assert_eq!(
        cmd,
        Command::Esid(Esid {
            reason: EndSessionReason::Unspecified,
            text: "ab\u{fffd}c".into()
        })
    );
    assert_eq!(
        kinds(&devs),
        [(CommandId::Esid, "ESIDREAST", DeviationKind::InvalidUtf8)]
    );
}

#[test]
fn v14_style_eerp_and_nerp_at_v20() {
    let eerp = cat(&[
        b"E",
        b"PAYMENTS.2024             ",
        b"   ",
        b"20071101",
        b"1230450001",
        b"        ",
        b"O0013ACMECORP            ",
        b"O0013PARTNERB            ",
    ]);
    let (cmd, devs) = lenient(V20, &eerp);
    let Command::Eerp(e) = cmd else {
        panic!("not EERP")
    };
    assert!(e.hash.is_empty() && e.signature.is_empty());
    assert_eq!(
        kinds(&devs),
        [(CommandId::Eerp, "EERPHSHL", DeviationKind::OtherLevelLayout)]
    );
    let nerp = cat(&[
        b"N",
        b"PAYMENTS.2024             ",
        b"      ",
        b"20071101",
        b"1230450001",
        b"O0013ACMECORP            ",
        b"O0013PARTNERB            ",
        b"O0013PARTNERB            ",
        b"35",
    ]);
    let (cmd, devs) = lenient(V20, &nerp);
    let Command::Nerp(n) = cmd else {
        panic!("not NERP")
    };
    assert_eq!(n.reason, NerpReason::NotDelivered);
    assert_eq!(devs[0].kind, DeviationKind::OtherLevelLayout);
}

#[test]
fn trimmed_v1x_eerp_originator_is_padded() {
    let eerp = cat(&[
        b"E",
        b"PAYMENTS.2024             ",
        b"   ",
        b"20071101",
        b"1230450001",
        b"        ",
        b"O0013ACMECORP            ",
        b"O0013PARTNERB", // EERPORIG without its 12 padding spaces
    ]);
    let (cmd, devs) = lenient(V14, &eerp);
    let Command::Eerp(e) = cmd else {
        panic!("not EERP")
    };
    assert_eq!(e.originator.as_str(), "O0013PARTNERB");
    assert_eq!(devs[0].kind, DeviationKind::MissingPadding { missing: 12 });
}
