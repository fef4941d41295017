//! Malformed input yields typed errors (never a panic) that name the right
//! ESID reason; values a level cannot carry are refused when encoding.

mod codec_support;

use bytes::{Bytes, BytesMut};
use codec_support::{cat, dsn, id, show, ts};
use oftp2::codec::*;
use oftp2::value::*;

const V20: ProtocolLevel = ProtocolLevel::V2_0;
const V14: ProtocolLevel = ProtocolLevel::V1_4;
const V13: ProtocolLevel = ProtocolLevel::V1_3;

fn err(level: ProtocolLevel, frame: &[u8]) -> DecodeError {
    match Command::decode_lenient(Bytes::copy_from_slice(frame), level) {
        Err(e) => e,
        Ok(c) => panic!("{} decoded as {c:?}", show(frame)),
    }
}

fn sfid_v20_frame() -> Vec<u8> {
    cat(&[
        b"H",
        b"PAYMENTS.2024             ",
        b"   ",
        b"20071101",
        b"1230450001",
        b"        ",
        b"O0013PARTNERB            ",
        b"O0013ACMECORP            ",
        b"V",
        b"00512",
        b"0000000000123",
        b"0000000000456",
        b"00000000000000007",
        b"00",
        b"00",
        b"0",
        b"0",
        b"N",
        b"005",
        b"hello",
    ])
}

/// Replaces `buf[pos..pos + with.len()]`.
fn patch(buf: &[u8], pos: usize, with: &[u8]) -> Vec<u8> {
    let mut v = buf.to_vec();
    v[pos..pos + with.len()].copy_from_slice(with);
    v
}

#[test]
fn empty_and_unknown_commands() {
    let e = err(V20, b"");
    assert_eq!(e, DecodeError::Empty);
    assert_eq!(
        e.end_session_reason(),
        EndSessionReason::CommandNotRecognised
    );
    let e = err(V20, b"Zabc");
    assert_eq!(e, DecodeError::UnknownCommand { code: b'Z' });
    assert_eq!(
        e.end_session_reason(),
        EndSessionReason::CommandNotRecognised
    );
    assert_eq!(e.command(), None);
    // Command identifiers are case-sensitive ('x' is not SSID).
    assert!(matches!(
        err(V20, b"x5"),
        DecodeError::UnknownCommand { .. }
    ));
    assert!(e.to_string().contains("'Z'"), "{e}");
}

#[test]
fn commands_missing_at_lower_levels() {
    for (level, frame) in [
        (V14, &b"J"[..]),
        (V14, b"A\x00\x00"),
        (V14, b"S01234567890123456789"),
        (V13, b"N"),
    ] {
        let e = err(level, frame);
        assert!(
            matches!(e, DecodeError::NotAtLevel { level: l, .. } if l == level),
            "{e:?}"
        );
        assert_eq!(
            e.end_session_reason(),
            EndSessionReason::CommandNotRecognised
        );
    }
}

#[test]
fn every_truncation_of_every_command_is_an_error() {
    let frames: Vec<(ProtocolLevel, Vec<u8>)> = vec![
        (V20, sfid_v20_frame()),
        (
            V20,
            b"X5O0013ACMECORP            SECRET  04096BYYN064N    USERDATA\r".to_vec(),
        ),
        (V20, b"200000000000001024".to_vec()),
        (V20, b"306Y019Disk quota exceeded".to_vec()),
        (V20, b"T0000000000000004200000000000131072".to_vec()),
        (V20, b"510021Record count mismatch".to_vec()),
        (V20, b"F04016Invalid password\r".to_vec()),
        (V20, b"A\x00\x05abcde".to_vec()),
        (V20, b"S01234567890123456789".to_vec()),
        (V14, b"T000000042000000131072".to_vec()),
        (V14, b"2000001024".to_vec()),
    ];
    for (level, frame) in frames {
        for cut in 1..frame.len() {
            let prefix = &frame[..cut];
            if let Ok((cmd, devs)) = Command::decode_lenient(Bytes::copy_from_slice(prefix), level)
            {
                // Only terminator/padding-tolerant cuts may succeed, and
                // then only with a deviation on record.
                assert!(
                    !devs.is_empty(),
                    "prefix {} decoded as {cmd:?} without deviation",
                    show(prefix)
                );
            }
        }
        Command::decode_strict(Bytes::from(frame), level).unwrap();
    }
}

#[test]
fn truncated_fixed_commands_name_buffer_size_error() {
    let frame = sfid_v20_frame();
    let e = err(V20, &frame[..100]);
    assert!(matches!(
        e,
        DecodeError::Truncated {
            command: CommandId::Sfid,
            needed: 106,
            actual: 100
        }
    ));
    assert_eq!(
        e.end_session_reason(),
        EndSessionReason::ExchangeBufferSizeError
    );
    assert_eq!(e.command(), Some(CommandId::Sfid));
}

#[test]
fn variable_lengths_must_match_the_buffer() {
    let frame = sfid_v20_frame();
    // SFIDDESCL says 9, only 5 octets follow.
    let e = err(V20, &patch(&frame, 162, b"009"));
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                needed: 174,
                actual: 170,
                ..
            }
        ),
        "{e:?}"
    );
    // SFIDDESCL says 2, 5 octets follow.
    let e = err(V20, &patch(&frame, 162, b"002"));
    assert!(
        matches!(
            e,
            DecodeError::TooLong {
                expected: 167,
                actual: 170,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.end_session_reason(),
        EndSessionReason::ExchangeBufferSizeError
    );
    // ESID text longer than its length field: garbage before the CR.
    assert!(matches!(
        err(V20, b"F04002Invalid\r"),
        DecodeError::TooLong { .. }
    ));
    // EERP hash length beyond the buffer.
    let eerp = cat(&[
        b"E",
        b"PAYMENTS.2024             ",
        b"   ",
        b"20071101",
        b"1230450001",
        b"        ",
        b"O0013ACMECORP            ",
        b"O0013PARTNERB            ",
        &[0xff, 0xff],
        b"abc",
    ]);
    assert!(matches!(
        err(V20, &eerp),
        DecodeError::Truncated { needed: 65643, .. }
    ));
    // AUCH challenge length mismatch both ways.
    assert!(matches!(
        err(V20, b"A\x00\x06abcde"),
        DecodeError::Truncated { .. }
    ));
    assert!(matches!(
        err(V20, b"A\x00\x04abcde"),
        DecodeError::TooLong { .. }
    ));
    // AURP is exactly 20 octets.
    assert!(matches!(
        err(V20, b"S0123456789012345678"),
        DecodeError::Truncated { .. }
    ));
    assert!(matches!(
        err(V20, b"S012345678901234567890"),
        DecodeError::TooLong { .. }
    ));
}

#[test]
fn oversized_fixed_commands() {
    for (level, frame) in [
        (V20, &b"RX"[..]),
        (V20, b"4YN"),
        (V20, b"C   x"),
        (V14, b"511x"),
        (V14, b"2000001024000"),
        (V20, b"F00000\rF00000\r"),
        (V20, b"IODETTE FTP READY \rX"),
    ] {
        let e = err(level, frame);
        assert!(
            matches!(e, DecodeError::TooLong { .. }),
            "{}: {e:?}",
            show(frame)
        );
        assert_eq!(
            e.end_session_reason(),
            EndSessionReason::ExchangeBufferSizeError
        );
    }
}

#[test]
fn bad_field_contents() {
    let frame = sfid_v20_frame();
    let cases: [(Vec<u8>, &str); 10] = [
        (patch(&frame, 112, b"00000000001x3"), "SFIDFSIZ"),
        (patch(&frame, 112, b"0000000 00123"), "SFIDFSIZ"),
        (patch(&frame, 30, b"20071301"), "SFIDDATE"),
        (patch(&frame, 38, b"2460000000"), "SFIDTIME"),
        (patch(&frame, 106, b"X"), "SFIDFMT"),
        (patch(&frame, 155, b"04"), "SFIDSEC"),
        (patch(&frame, 161, b"J"), "SFIDSIGN"),
        (patch(&frame, 1, b"PAY\x01"), "SFIDDSN"),
        (patch(&frame, 1, &[b' '; 26]), "SFIDDSN"),
        (patch(&frame, 56, "Ö".as_bytes()), "SFIDDEST"),
    ];
    for (bad, field) in cases {
        let e = err(V20, &bad);
        match &e {
            DecodeError::InvalidField {
                command: CommandId::Sfid,
                field: f,
                ..
            } => assert_eq!(*f, field, "{e}"),
            other => panic!("{field}: {other:?}"),
        }
        assert_eq!(
            e.end_session_reason(),
            EndSessionReason::CommandContainedInvalidData
        );
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn bad_ssid_fields() {
    let good = b"X5O0013ACMECORP            SECRET  04096BYYN064N    USERDATA\r";
    for (pos, with, field) in [
        (1, &b"0"[..], "SSIDLEV"),
        (1, b"A", "SSIDLEV"),
        (40, b"X", "SSIDSR"),
        (41, b"1", "SSIDCMPR"),
        (44, b"0-1", "SSIDCRED"),
        (47, b" ", "SSIDAUTH"),
        (2, b"\t", "SSIDCODE"),
    ] {
        match err(V20, &patch(good, pos, with)) {
            DecodeError::InvalidField { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // A blank identification code is no identification.
    let blank = patch(good, 2, &[b' '; 25]);
    assert!(matches!(
        err(V20, &blank),
        DecodeError::InvalidField {
            field: "SSIDCODE",
            problem: FieldProblem::Blank,
            ..
        }
    ));
}

#[test]
fn wrong_ssrm_text() {
    assert!(matches!(
        err(V20, b"IODETTE FTP RAEDY \r"),
        DecodeError::InvalidField {
            field: "SSRMMSG",
            problem: FieldProblem::WrongText { .. },
            ..
        }
    ));
    assert!(matches!(err(V20, b"I\r"), DecodeError::Truncated { .. }));
}

fn sfid_plain() -> Sfid {
    Sfid {
        dataset_name: dsn("F"),
        timestamp: ts("200711011230450000"),
        user_data: UserData::EMPTY,
        destination: id("O0013PARTNERB"),
        originator: id("O0013ACMECORP"),
        format: RecordFormat::Unstructured,
        max_record_size: 0,
        file_size: 1,
        original_file_size: 1,
        restart_position: 0,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    }
}

fn enc(cmd: impl Into<Command>, level: ProtocolLevel) -> Result<BytesMut, EncodeError> {
    let mut out = BytesMut::from(&b"prefix"[..]);
    let cmd = cmd.into();
    match cmd.encode(level, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            assert_eq!(&out[..], b"prefix", "a failed encode must not append");
            Err(e)
        }
    }
}

#[test]
fn encode_refuses_what_a_level_cannot_carry() {
    let nra = |r: Result<BytesMut, EncodeError>, field: &str| match r {
        Err(EncodeError::NotRepresentable { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: {other:?}"),
    };
    nra(
        enc(
            Sfid {
                security: SecurityLevel::Signed,
                ..sfid_plain()
            },
            V14,
        ),
        "SFIDSEC",
    );
    nra(
        enc(
            Sfid {
                compression: FileCompression::Zlib,
                ..sfid_plain()
            },
            V13,
        ),
        "SFIDCOMP",
    );
    nra(
        enc(
            Sfid {
                description: "x".into(),
                ..sfid_plain()
            },
            V14,
        ),
        "SFIDDESC",
    );
    nra(
        enc(
            Sfid {
                original_file_size: 9,
                ..sfid_plain()
            },
            V14,
        ),
        "SFIDOSIZ",
    );
    // 1.3 stamps: no counter, two-digit years.
    nra(
        enc(
            Sfid {
                timestamp: ts("200711011230450001"),
                ..sfid_plain()
            },
            V13,
        ),
        "SFIDTIME",
    );
    nra(
        enc(
            Sfid {
                timestamp: ts("207011011230450000"),
                ..sfid_plain()
            },
            V13,
        ),
        "SFIDDATE",
    );
    assert!(enc(
        Sfid {
            timestamp: ts("207011011230450001"),
            ..sfid_plain()
        },
        V14
    )
    .is_ok());
    let ssid = Ssid {
        level: V14,
        id: id("O0013ACMECORP"),
        password: Password::default(),
        buffer_size: 128,
        capabilities: SendReceive::Both,
        compression: false,
        restart: false,
        special_logic: false,
        credit: 1,
        secure_authentication: true,
        user_data: UserData::EMPTY,
    };
    nra(enc(ssid, V20), "SSIDAUTH");
    let eerp = Eerp {
        dataset_name: dsn("F"),
        timestamp: ts("200711011230450000"),
        user_data: UserData::EMPTY,
        destination: id("O0013ACMECORP"),
        originator: id("O0013PARTNERB"),
        hash: Bytes::from_static(b"h"),
        signature: Bytes::new(),
    };
    nra(enc(eerp, V14), "EERPHSH");
}

#[test]
fn encode_refuses_commands_missing_at_a_level() {
    for (cmd, level) in [
        (Command::Secd(Secd), V14),
        (Command::Auch(Auch::default()), V13),
        (Command::Aurp(Aurp::default()), V14),
    ] {
        assert!(matches!(
            enc(cmd, level),
            Err(EncodeError::NotAtLevel { .. })
        ));
    }
}

#[test]
fn encode_range_checks() {
    let e = enc(
        Sfid {
            file_size: 10_000_000_000_000,
            ..sfid_plain()
        },
        V20,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            EncodeError::OutOfRange {
                field: "SFIDFSIZ",
                max: 9_999_999_999_999,
                ..
            }
        ),
        "{e:?}"
    );
    // 1.x has 7 digits for the file size.
    assert!(enc(
        Sfid {
            file_size: 10_000_000,
            original_file_size: 0,
            ..sfid_plain()
        },
        V14
    )
    .is_err());
    assert!(enc(
        Efid {
            record_count: 1_000_000_000,
            unit_count: 0
        },
        V14
    )
    .is_err());
    assert!(enc(
        Efid {
            record_count: 999_999_999,
            unit_count: 999_999_999_999
        },
        V14
    )
    .is_ok());
    assert!(enc(
        Sfpa {
            answer_count: 1_000_000_000
        },
        V13
    )
    .is_err());
    let long = "é".repeat(500); // 1000 octets
    assert!(matches!(
        enc(
            Esid {
                reason: EndSessionReason::Unspecified,
                text: long.clone()
            },
            V20
        ),
        Err(EncodeError::TooLong { max: 999, .. })
    ));
    // At 1.x the advisory text is left out rather than refused.
    let out = enc(
        Esid {
            reason: EndSessionReason::Unspecified,
            text: long,
        },
        V14,
    )
    .unwrap();
    assert_eq!(&out[..], b"prefixF99\r");
    assert!(matches!(
        enc(
            Auch {
                challenge: Bytes::from(vec![0; 65_536])
            },
            V20
        ),
        Err(EncodeError::TooLong { max: 65_535, .. })
    ));
    let mut ssid_big = Ssid {
        level: V20,
        id: id("O0013ACMECORP"),
        password: Password::default(),
        buffer_size: 100_000,
        capabilities: SendReceive::Both,
        compression: false,
        restart: false,
        special_logic: false,
        credit: 1,
        secure_authentication: false,
        user_data: UserData::EMPTY,
    };
    assert!(enc(ssid_big, V20).is_err());
    ssid_big.buffer_size = 99_999;
    ssid_big.credit = 1000;
    assert!(enc(ssid_big, V20).is_err());
}

#[test]
fn error_messages_guide_the_admin() {
    let e = err(V20, &patch(&sfid_v20_frame(), 112, b"00000000001x3"));
    assert_eq!(
        e.to_string(),
        "SFID field SFIDFSIZ: not a number: \"00000000001x3\""
    );
    let e = enc(Secd, V14).unwrap_err();
    assert_eq!(
        e.to_string(),
        "SECD does not exist at protocol level 4 (revision 1.4)"
    );
}
