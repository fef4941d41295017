//! Property tests: every valid command round-trips through encode and
//! strict decode at every level where it exists, and decoding arbitrary or
//! mutated bytes never panics.

use bytes::{Bytes, BytesMut};
use oftp2::codec::*;
use oftp2::value::*;
use proptest::prelude::*;

const LEVELS: [ProtocolLevel; 4] = [
    ProtocolLevel::V1_2,
    ProtocolLevel::V1_3,
    ProtocolLevel::V1_4,
    ProtocolLevel::V2_0,
];

fn level() -> impl Strategy<Value = ProtocolLevel> {
    prop::sample::select(LEVELS.to_vec())
}

fn odette_id() -> impl Strategy<Value = OdetteId> {
    "[A-Z0-9][A-Z0-9 /.&()-]{0,24}".prop_map(|s| OdetteId::new(&s).unwrap())
}

fn dataset_name() -> impl Strategy<Value = DatasetName> {
    "[A-Z0-9/.&()-]{1,26}".prop_map(|s| DatasetName::new(&s).unwrap())
}

fn user_data() -> impl Strategy<Value = UserData> {
    "[A-Z0-9/.&()-]{0,8}".prop_map(|s| UserData::new(&s).unwrap())
}

fn password() -> impl Strategy<Value = Password> {
    "[A-Z0-9]{0,8}".prop_map(|s| Password::new(&s).unwrap())
}

/// Text representable at `level`: up to 999 octets of UTF-8 at 2.0,
/// nothing below (the layouts have no text fields there).
fn text(level: ProtocolLevel) -> BoxedStrategy<String> {
    if level.is_v2() {
        prop_oneof![
            Just(String::new()),
            "\\PC{0,200}",
            // Up to the limit in octets.
            "[a-z]{999}",
        ]
        .boxed()
    } else {
        Just(String::new()).boxed()
    }
}

fn binary(level: ProtocolLevel) -> BoxedStrategy<Bytes> {
    if level.is_v2() {
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(Bytes::from)
            .boxed()
    } else {
        Just(Bytes::new()).boxed()
    }
}

fn timestamp(level: ProtocolLevel) -> impl Strategy<Value = Timestamp> {
    let (years, counters) = if level.digit() >= 4 {
        (0u16..=9999, 0u16..=9999)
    } else {
        // OFTP 1.3: YYMMDD in the 1970..=2069 window, no counter.
        (1970u16..=2069, 0u16..=0)
    };
    (
        years,
        1u8..=12,
        1u8..=31,
        0u8..=23,
        0u8..=59,
        0u8..=59,
        counters,
    )
        .prop_filter_map("valid calendar date", |(y, mo, d, h, mi, s, c)| {
            Some(Timestamp::new(
                Date::new(y, mo, d).ok()?,
                Time::new(h, mi, s, c).ok()?,
            ))
        })
}

fn max(digits: u32) -> u64 {
    10u64.pow(digits) - 1
}

fn ssid() -> impl Strategy<Value = Ssid> {
    (
        1u8..=9,
        odette_id(),
        password(),
        0u32..=99_999,
        prop::sample::select(vec![
            SendReceive::Send,
            SendReceive::Receive,
            SendReceive::Both,
        ]),
        any::<[bool; 4]>(),
        0u16..=999,
        user_data(),
    )
        .prop_map(
            |(lev, id, password, buffer_size, capabilities, f, credit, user_data)| {
                let level = ProtocolLevel::from_digit(lev).unwrap();
                Ssid {
                    level,
                    id,
                    password,
                    buffer_size,
                    capabilities,
                    compression: f[0],
                    restart: f[1],
                    special_logic: f[2],
                    credit,
                    secure_authentication: f[3] && level.is_v2(),
                    user_data,
                }
            },
        )
}

fn record_format() -> impl Strategy<Value = RecordFormat> {
    prop::sample::select(vec![
        RecordFormat::Fixed,
        RecordFormat::Variable,
        RecordFormat::Unstructured,
        RecordFormat::Text,
    ])
}

fn sfid(level: ProtocolLevel) -> BoxedStrategy<Sfid> {
    let common = (
        dataset_name(),
        timestamp(level),
        user_data(),
        odette_id(),
        odette_id(),
        record_format(),
        0u32..=99_999,
    );
    if level.is_v2() {
        let v2 = (
            0..=max(13),
            0..=max(13),
            0..=max(17),
            0u8..=3,
            0u8..=99,
            0u8..=9,
            0u8..=9,
            any::<bool>(),
            text(level),
        );
        (common, v2)
            .prop_map(
                |(
                    (dataset_name, timestamp, user_data, destination, originator, format, lrecl),
                    (fsiz, osiz, rest, sec, ciph, comp, env, sign, description),
                )| Sfid {
                    dataset_name,
                    timestamp,
                    user_data,
                    destination,
                    originator,
                    format,
                    max_record_size: lrecl,
                    file_size: fsiz,
                    original_file_size: osiz,
                    restart_position: rest,
                    security: SecurityLevel::from_code(sec).unwrap(),
                    cipher_suite: CipherSuite::from_code(ciph),
                    compression: FileCompression::from_code(comp),
                    envelope: FileEnvelope::from_code(env),
                    signed_eerp: sign,
                    description,
                },
            )
            .boxed()
    } else {
        (common, 0..=max(7), 0..=max(9))
            .prop_map(
                |(
                    (dataset_name, timestamp, user_data, destination, originator, format, lrecl),
                    fsiz,
                    rest,
                )| Sfid {
                    dataset_name,
                    timestamp,
                    user_data,
                    destination,
                    originator,
                    format,
                    max_record_size: lrecl,
                    file_size: fsiz,
                    original_file_size: fsiz,
                    restart_position: rest,
                    security: SecurityLevel::None,
                    cipher_suite: CipherSuite::None,
                    compression: FileCompression::None,
                    envelope: FileEnvelope::None,
                    signed_eerp: false,
                    description: String::new(),
                },
            )
            .boxed()
    }
}

fn command(level: ProtocolLevel) -> BoxedStrategy<Command> {
    let v2 = level.is_v2();
    let count = if v2 { max(17) } else { max(9) };
    let ucount = if v2 { max(17) } else { max(12) };
    let mut options: Vec<BoxedStrategy<Command>> = vec![
        Just(Command::Ssrm(Ssrm)).boxed(),
        ssid().prop_map(Command::Ssid).boxed(),
        sfid(level).prop_map(Command::Sfid).boxed(),
        (0..=count)
            .prop_map(|answer_count| Command::Sfpa(Sfpa { answer_count }))
            .boxed(),
        (0u8..=99, any::<bool>(), text(level))
            .prop_map(|(r, retry, text)| {
                Command::Sfna(Sfna {
                    reason: StartFileRefusal::from_code(r),
                    retry,
                    text,
                })
            })
            .boxed(),
        prop::collection::vec(any::<u8>(), 0..2000)
            .prop_map(|v| {
                Command::Data(Data {
                    payload: Bytes::from(v),
                })
            })
            .boxed(),
        Just(Command::Cdt(Cdt)).boxed(),
        (0..=count, 0..=ucount)
            .prop_map(|(record_count, unit_count)| {
                Command::Efid(Efid {
                    record_count,
                    unit_count,
                })
            })
            .boxed(),
        any::<bool>()
            .prop_map(|change_direction| Command::Efpa(Efpa { change_direction }))
            .boxed(),
        (0u8..=99, text(level))
            .prop_map(|(r, text)| {
                Command::Efna(Efna {
                    reason: EndFileRefusal::from_code(r),
                    text,
                })
            })
            .boxed(),
        (0u8..=99, text(level))
            .prop_map(|(r, text)| {
                Command::Esid(Esid {
                    reason: EndSessionReason::from_code(r),
                    text,
                })
            })
            .boxed(),
        Just(Command::Cd(Cd)).boxed(),
        (
            dataset_name(),
            timestamp(level),
            user_data(),
            odette_id(),
            odette_id(),
            binary(level),
            binary(level),
        )
            .prop_map(|(dsn, ts, user, dest, orig, hash, signature)| {
                Command::Eerp(Eerp {
                    dataset_name: dsn,
                    timestamp: ts,
                    user_data: user,
                    destination: dest,
                    originator: orig,
                    hash,
                    signature,
                })
            })
            .boxed(),
        Just(Command::Rtr(Rtr)).boxed(),
    ];
    if level.digit() >= 4 {
        options.push(
            (
                dataset_name(),
                timestamp(level),
                odette_id(),
                odette_id(),
                odette_id(),
                0u8..=99,
                text(level),
                binary(level),
                binary(level),
            )
                .prop_map(|(dsn, ts, dest, orig, crea, r, text, hash, signature)| {
                    Command::Nerp(Nerp {
                        dataset_name: dsn,
                        timestamp: ts,
                        destination: dest,
                        originator: orig,
                        creator: crea,
                        reason: NerpReason::from_code(r),
                        text,
                        hash,
                        signature,
                    })
                })
                .boxed(),
        );
    }
    if v2 {
        options.push(Just(Command::Secd(Secd)).boxed());
        options.push(
            binary(level)
                .prop_map(|challenge| Command::Auch(Auch { challenge }))
                .boxed(),
        );
        options.push(
            any::<[u8; 20]>()
                .prop_map(|response| Command::Aurp(Aurp { response }))
                .boxed(),
        );
    }
    prop::strategy::Union::new(options).boxed()
}

fn level_and_command() -> impl Strategy<Value = (ProtocolLevel, Command)> {
    level().prop_flat_map(|l| (Just(l), command(l)))
}

fn encode(cmd: &Command, level: ProtocolLevel) -> BytesMut {
    let mut out = BytesMut::new();
    cmd.encode(level, &mut out)
        .unwrap_or_else(|e| panic!("{cmd:?} at {level}: {e}"));
    out
}

/// Whether decoding `frame` at `level` and encoding the result must give
/// `frame` back: true unless it carries the alternative 0x8D carriage
/// return, which is accepted but never sent.
fn canonical(frame: &[u8]) -> bool {
    !matches!(frame.first(), Some(b'I' | b'X' | b'F')) || frame.last() != Some(&0x8d)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip((level, cmd) in level_and_command()) {
        let wire = encode(&cmd, level).freeze();
        let (decoded, devs) = Command::decode_lenient(wire.clone(), level)
            .unwrap_or_else(|e| panic!("{cmd:?} at {level} -> {:?}: {e}", wire));
        prop_assert_eq!(&decoded, &cmd);
        prop_assert!(devs.is_empty(), "deviations {:?}", devs);
        prop_assert_eq!(Command::decode_strict(wire, level).unwrap(), cmd);
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(
        level in level(),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        check_no_panic(level, &bytes);
    }

    #[test]
    fn decode_command_prefixed_noise_never_panics(
        level in level(),
        code in prop::sample::select(CommandId::ALL.to_vec()),
        noise in prop::collection::vec(
            prop_oneof![any::<u8>(), Just(b' '), Just(b'0'), Just(b'\r'), Just(b'Y')],
            0..300,
        ),
    ) {
        let mut frame = vec![code.code()];
        frame.extend_from_slice(&noise);
        check_no_panic(level, &frame);
    }

    #[test]
    fn decode_mutated_commands_never_panics(
        (level, cmd) in level_and_command(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut frame = encode(&cmd, level).to_vec();
        for (at, b) in edits {
            let i = at.index(frame.len());
            frame[i] = b;
        }
        if truncate {
            frame.truncate(cut.index(frame.len() + 1));
        }
        check_no_panic(level, &frame);
    }
}

fn check_no_panic(level: ProtocolLevel, frame: &[u8]) {
    let bytes = Bytes::copy_from_slice(frame);
    match Command::decode_lenient(bytes.clone(), level) {
        Ok((cmd, devs)) => {
            // Whatever was understood can be sent back in some form, and a
            // frame decoded without deviation is exactly what we'd send.
            let mut out = BytesMut::new();
            let encoded = cmd.encode(level, &mut out);
            if devs.is_empty() && canonical(frame) {
                assert!(encoded.is_ok(), "{cmd:?}: {encoded:?}");
                assert_eq!(
                    out.escape_ascii().to_string(),
                    frame.escape_ascii().to_string()
                );
            }
        }
        Err(e) => {
            // Every error maps to an ESID reason and renders a message.
            let _ = e.end_session_reason();
            assert!(!e.to_string().is_empty());
        }
    }
    let _ = Command::decode_strict(bytes.clone(), level);
    let _ = Command::decode(bytes, level);
}
