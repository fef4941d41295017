//! Byte-exact tests for every command, at every level where it exists.
//!
//! Each expected buffer is written by hand from the field tables: RFC 5024
//! section 5.3 for OFTP 2.0, RFC 2204 section 5.3 for OFTP 1.3, and the
//! OFTP 1.4 layout (1.3 with `CCYYMMDD`/`HHMMSScccc` stamps, plus NERP).
//! One literal per field, commented with its RFC name, position and format;
//! `field_at` checks the table positions of the assembled buffer. Each test
//! decodes the literal to the struct and encodes the struct to the literal.

mod codec_support;

use bytes::Bytes;
use codec_support::{cat, dsn, exact, field_at, id, ts, user};
use oftp2::codec::*;
use oftp2::value::*;

const V20: ProtocolLevel = ProtocolLevel::V2_0;
const V14: ProtocolLevel = ProtocolLevel::V1_4;
const V13: ProtocolLevel = ProtocolLevel::V1_3;
/// RFC 2204 (revision 1.3) sends SSIDLEV '1'.
const V12: ProtocolLevel = ProtocolLevel::V1_2;

// Identification codes used throughout (ISO 6523 SIO: 'O', ICD, org).
const ACME: &[u8] = b"O0013ACMECORP            "; // X(25): 13 chars + 12 spaces
const PARTNER: &[u8] = b"O0013PARTNERB            "; // X(25): 13 chars + 12 spaces
const DSN: &[u8] = b"PAYMENTS.2024             "; // X(26): 13 chars + 13 spaces

#[test]
fn ssrm() {
    let lit = cat(&[
        b"I",                 // SSRMCMD pos 0  F X(1)
        b"ODETTE FTP READY ", // SSRMMSG pos 1  F X(17)
        b"\r",                // SSRMCR  pos 18 F X(1)
    ]);
    assert_eq!(lit.len(), 19);
    for level in [V20, V14, V13, V12] {
        exact(level, &lit, &Command::Ssrm(Ssrm));
    }
    // 0x8D is an allowed SSRMCR too (decoded, not re-sent).
    let alt = cat(&[b"IODETTE FTP READY ", &[0x8d]]);
    assert_eq!(
        Command::decode_strict(Bytes::from(alt), V20).unwrap(),
        Command::Ssrm(Ssrm)
    );
}

fn ssid_acme(level: ProtocolLevel) -> Ssid {
    Ssid {
        level,
        id: id("O0013ACMECORP"),
        password: Password::new("SECRET").unwrap(),
        buffer_size: 4096,
        capabilities: SendReceive::Both,
        compression: true,
        restart: true,
        special_logic: false,
        credit: 64,
        secure_authentication: false,
        user_data: user("USERDATA"),
    }
}

#[test]
fn ssid_v20() {
    let lit = cat(&[
        b"X",        // SSIDCMD  pos 0  F X(1)
        b"5",        // SSIDLEV  pos 1  F 9(1)   revision 2.0
        ACME,        // SSIDCODE pos 2  V X(25)
        b"SECRET  ", // SSIDPSWD pos 27 V X(8)
        b"04096",    // SSIDSDEB pos 35 V 9(5)
        b"B",        // SSIDSR   pos 40 F X(1)
        b"Y",        // SSIDCMPR pos 41 F X(1)
        b"Y",        // SSIDREST pos 42 F X(1)
        b"N",        // SSIDSPEC pos 43 F X(1)
        b"064",      // SSIDCRED pos 44 V 9(3)
        b"Y",        // SSIDAUTH pos 47 F X(1)
        b"    ",     // SSIDRSV1 pos 48 F X(4)
        b"USERDATA", // SSIDUSER pos 52 V X(8)
        b"\r",       // SSIDCR   pos 60 F X(1)
    ]);
    assert_eq!(lit.len(), 61);
    field_at(&lit, 2, ACME);
    field_at(&lit, 27, b"SECRET");
    field_at(&lit, 35, b"04096");
    field_at(&lit, 44, b"064Y");
    field_at(&lit, 52, b"USERDATA\r");
    let cmd = Ssid {
        secure_authentication: true,
        ..ssid_acme(V20)
    };
    // The SSID carries its own level: decoding at 1.4 still reads 2.0.
    exact(V20, &lit, &Command::Ssid(cmd));
    exact(V14, &lit, &Command::Ssid(cmd));
}

#[test]
fn ssid_v20_blank_password_and_user_data() {
    let lit = cat(&[
        b"X5",                        // SSIDCMD, SSIDLEV
        b"O0013000000000000TEST1   ", // SSIDCODE X(25): 22 chars + 3 spaces
        b"        ",                  // SSIDPSWD X(8) unused
        b"99999",                     // SSIDSDEB maximum
        b"R",                         // SSIDSR
        b"N",                         // SSIDCMPR
        b"N",                         // SSIDREST
        b"N",                         // SSIDSPEC
        b"999",                       // SSIDCRED maximum
        b"N",                         // SSIDAUTH
        b"    ",                      // SSIDRSV1
        b"        ",                  // SSIDUSER unused
        b"\r",                        // SSIDCR
    ]);
    assert_eq!(lit.len(), 61);
    let cmd = Ssid {
        level: V20,
        id: id("O0013000000000000TEST1"),
        password: Password::default(),
        buffer_size: 99_999,
        capabilities: SendReceive::Receive,
        compression: false,
        restart: false,
        special_logic: false,
        credit: 999,
        secure_authentication: false,
        user_data: UserData::EMPTY,
    };
    exact(V20, &lit, &Command::Ssid(cmd));
}

#[test]
fn ssid_v14_and_v13() {
    for (digit, level) in [(b"4", V14), (b"2", V13), (b"1", V12)] {
        let lit = cat(&[
            b"X",        // SSIDCMD  pos 0  F X(1)
            digit,       // SSIDLEV  pos 1  F 9(1)
            ACME,        // SSIDCODE pos 2  V X(25)
            b"SECRET  ", // SSIDPSWD pos 27 V X(8)
            b"04096",    // SSIDSDEB pos 35 V 9(5)
            b"B",        // SSIDSR   pos 40 F X(1)
            b"Y",        // SSIDCMPR pos 41 F X(1)
            b"Y",        // SSIDREST pos 42 F X(1)
            b"N",        // SSIDSPEC pos 43 F X(1)
            b"064",      // SSIDCRED pos 44 V 9(3)
            b"     ",    // SSIDRSV1 pos 47 F X(5)  (no SSIDAUTH before 2.0)
            b"USERDATA", // SSIDUSER pos 52 V X(8)
            b"\r",       // SSIDCR   pos 60 F X(1)
        ]);
        assert_eq!(lit.len(), 61);
        field_at(&lit, 47, b"     USERDATA");
        // Decoded at 2.0 too: SSIDLEV decides the layout.
        exact(V20, &lit, &Command::Ssid(ssid_acme(level)));
        exact(level, &lit, &Command::Ssid(ssid_acme(level)));
    }
}

fn sfid_v20() -> Sfid {
    Sfid {
        dataset_name: dsn("PAYMENTS.2024"),
        timestamp: ts("200711011230450001"),
        user_data: UserData::EMPTY,
        destination: id("O0013PARTNERB"),
        originator: id("O0013ACMECORP"),
        format: RecordFormat::Variable,
        max_record_size: 512,
        file_size: 123,
        original_file_size: 456,
        restart_position: 7,
        security: SecurityLevel::EncryptedAndSigned,
        cipher_suite: CipherSuite::Aes256RsaSha1,
        compression: FileCompression::Zlib,
        envelope: FileEnvelope::Cms,
        signed_eerp: true,
        description: "Grüße".to_owned(),
    }
}

#[test]
fn sfid_v20_all_fields() {
    let lit = cat(&[
        b"H",                 // SFIDCMD   pos 0   F X(1)
        DSN,                  // SFIDDSN   pos 1   V X(26)
        b"   ",               // SFIDRSV1  pos 27  F X(3)
        b"20071101",          // SFIDDATE  pos 30  V 9(8)  CCYYMMDD
        b"1230450001",        // SFIDTIME  pos 38  V 9(10) HHMMSScccc
        b"        ",          // SFIDUSER  pos 48  V X(8)
        PARTNER,              // SFIDDEST  pos 56  V X(25)
        ACME,                 // SFIDORIG  pos 81  V X(25)
        b"V",                 // SFIDFMT   pos 106 F X(1)
        b"00512",             // SFIDLRECL pos 107 V 9(5)
        b"0000000000123",     // SFIDFSIZ  pos 112 V 9(13)
        b"0000000000456",     // SFIDOSIZ  pos 125 V 9(13)
        b"00000000000000007", // SFIDREST  pos 138 V 9(17)
        b"03",                // SFIDSEC   pos 155 F 9(2)  encrypted and signed
        b"02",                // SFIDCIPH  pos 157 F 9(2)  AES_256_CBC
        b"1",                 // SFIDCOMP  pos 159 F 9(1)  ZLIB
        b"1",                 // SFIDENV   pos 160 F 9(1)  CMS
        b"Y",                 // SFIDSIGN  pos 161 F X(1)
        b"007",               // SFIDDESCL pos 162 V 9(3)
        "Grüße".as_bytes(),   // SFIDDESC  pos 165 V T(7) UTF-8: ü and ß take 2 octets
    ]);
    assert_eq!(lit.len(), 172);
    field_at(&lit, 27, b"   20071101");
    field_at(&lit, 38, b"1230450001");
    field_at(&lit, 56, PARTNER);
    field_at(&lit, 81, ACME);
    field_at(&lit, 106, b"V00512");
    field_at(&lit, 112, b"0000000000123");
    field_at(&lit, 125, b"0000000000456");
    field_at(&lit, 138, b"00000000000000007");
    field_at(&lit, 155, b"030211Y007");
    exact(V20, &lit, &Command::Sfid(sfid_v20()));
}

#[test]
fn sfid_v20_plain_no_description() {
    let lit = cat(&[
        b"H",                          // SFIDCMD
        b"A                         ", // SFIDDSN X(26): 1 char + 25 spaces
        b"   ",                        // SFIDRSV1
        b"20240229",                   // SFIDDATE (a leap day)
        b"2359590000",                 // SFIDTIME (counter 0000)
        b"ORDERS  ",                   // SFIDUSER
        PARTNER,                       // SFIDDEST
        ACME,                          // SFIDORIG
        b"T",                          // SFIDFMT   text
        b"00000",                      // SFIDLRECL 0 for T
        b"9999999999999",              // SFIDFSIZ  maximum
        b"0000000000000",              // SFIDOSIZ  unknown
        b"99999999999999999",          // SFIDREST  maximum
        b"00",                         // SFIDSEC
        b"00",                         // SFIDCIPH
        b"0",                          // SFIDCOMP
        b"0",                          // SFIDENV
        b"N",                          // SFIDSIGN
        b"000",                        // SFIDDESCL no description
    ]);
    assert_eq!(lit.len(), 165);
    let cmd = Sfid {
        dataset_name: dsn("A"),
        timestamp: ts("202402292359590000"),
        user_data: user("ORDERS"),
        destination: id("O0013PARTNERB"),
        originator: id("O0013ACMECORP"),
        format: RecordFormat::Text,
        max_record_size: 0,
        file_size: 9_999_999_999_999,
        original_file_size: 0,
        restart_position: 99_999_999_999_999_999,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    };
    exact(V20, &lit, &Command::Sfid(cmd));
}

fn sfid_1x(timestamp: &str, format: RecordFormat, lrecl: u32, rest: u64) -> Sfid {
    Sfid {
        dataset_name: dsn("PAYMENTS.2024"),
        timestamp: ts(timestamp),
        user_data: UserData::EMPTY,
        destination: id("O0013PARTNERB"),
        originator: id("O0013ACMECORP"),
        format,
        max_record_size: lrecl,
        file_size: 123,
        original_file_size: 123,
        restart_position: rest,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    }
}

#[test]
fn sfid_v14() {
    let lit = cat(&[
        b"H",          // SFIDCMD   pos 0   F X(1)
        DSN,           // SFIDDSN   pos 1   V X(26)
        b"   ",        // SFIDRSV1  pos 27  F X(3)
        b"20071101",   // SFIDDATE  pos 30  V 9(8)  CCYYMMDD
        b"1230450001", // SFIDTIME  pos 38  V 9(10) HHMMSScccc
        b"        ",   // SFIDUSER  pos 48  V X(8)
        PARTNER,       // SFIDDEST  pos 56  V X(25)
        ACME,          // SFIDORIG  pos 81  V X(25)
        b"U",          // SFIDFMT   pos 106 F X(1)
        b"00000",      // SFIDLRECL pos 107 V 9(5)
        b"0000123",    // SFIDFSIZ  pos 112 V 9(7)
        b"000000000",  // SFIDREST  pos 119 V 9(9)
    ]);
    assert_eq!(lit.len(), 128);
    field_at(&lit, 106, b"U000000000123000000000");
    exact(
        V14,
        &lit,
        &Command::Sfid(sfid_1x(
            "200711011230450001",
            RecordFormat::Unstructured,
            0,
            0,
        )),
    );
}

#[test]
fn sfid_v13_rfc2204() {
    let lit = cat(&[
        b"H",         // SFIDCMD   pos 0   F X(1)
        DSN,          // SFIDDSN   pos 1   V X(26)
        b"         ", // SFIDRSV1  pos 27  F X(9)
        b"071101",    // SFIDDATE  pos 36  V 9(6)  YYMMDD
        b"123045",    // SFIDTIME  pos 42  V 9(6)  HHMMSS
        b"        ",  // SFIDUSER  pos 48  V X(8)
        PARTNER,      // SFIDDEST  pos 56  V X(25)
        ACME,         // SFIDORIG  pos 81  V X(25)
        b"F",         // SFIDFMT   pos 106 F X(1)
        b"00080",     // SFIDLRECL pos 107 V 9(5)
        b"0000123",   // SFIDFSIZ  pos 112 V 9(7)
        b"000000010", // SFIDREST  pos 119 V 9(9)
    ]);
    assert_eq!(lit.len(), 128);
    field_at(&lit, 36, b"071101123045");
    field_at(&lit, 119, b"000000010");
    let cmd = Command::Sfid(sfid_1x("200711011230450000", RecordFormat::Fixed, 80, 10));
    exact(V13, &lit, &cmd);
    exact(V12, &lit, &cmd);
}

#[test]
fn sfpa_all_levels() {
    let v20 = cat(&[
        b"2",                 // SFPACMD  pos 0 F X(1)
        b"00000000000001024", // SFPAACNT pos 1 V 9(17)
    ]);
    let v1x = cat(&[
        b"2",         // SFPACMD  pos 0 F X(1)
        b"000001024", // SFPAACNT pos 1 V 9(9)
    ]);
    let cmd = Command::Sfpa(Sfpa { answer_count: 1024 });
    exact(V20, &v20, &cmd);
    exact(V14, &v1x, &cmd);
    exact(V13, &v1x, &cmd);
}

#[test]
fn sfna_v20() {
    let no_text = cat(&[
        b"3",   // SFNACMD   pos 0 F X(1)
        b"13",  // SFNAREAS  pos 1 F 9(2) duplicate file
        b"N",   // SFNARRTR  pos 3 F X(1)
        b"000", // SFNAREASL pos 4 V 9(3)
    ]);
    exact(
        V20,
        &no_text,
        &Command::Sfna(Sfna {
            reason: StartFileRefusal::DuplicateFile,
            retry: false,
            text: String::new(),
        }),
    );
    let with_text = cat(&[
        b"3",                   // SFNACMD   pos 0
        b"06",                  // SFNAREAS  pos 1 file size is too big
        b"Y",                   // SFNARRTR  pos 3
        b"019",                 // SFNAREASL pos 4
        b"Disk quota exceeded", // SFNAREAST pos 7 T(19)
    ]);
    exact(
        V20,
        &with_text,
        &Command::Sfna(Sfna {
            reason: StartFileRefusal::FileSizeTooBig,
            retry: true,
            text: "Disk quota exceeded".to_owned(),
        }),
    );
}

#[test]
fn sfna_v1x() {
    let lit = cat(&[
        b"3",  // SFNACMD  pos 0 F X(1)
        b"13", // SFNAREAS pos 1 F 9(2)
        b"Y",  // SFNARRTR pos 3 F X(1)
    ]);
    let cmd = Command::Sfna(Sfna {
        reason: StartFileRefusal::DuplicateFile,
        retry: true,
        text: String::new(),
    });
    exact(V14, &lit, &cmd);
    exact(V13, &lit, &cmd);
    // Unknown reason codes are kept.
    exact(
        V14,
        b"377N",
        &Command::Sfna(Sfna {
            reason: StartFileRefusal::Other(77),
            retry: false,
            text: String::new(),
        }),
    );
}

#[test]
fn data_rfc5024_appendix_a_buffer() {
    // Appendix A, "Exchange Buffer 1": the high and low nibble lines of
    // the RFC's hexadecimal dump, verbatim.
    const HI: [&str; 13] = [
        "4347267266266666672467666720046626627767767626662662767662002472",
        "7367266662676726667626662666776766626762004672766766676277677277",
        "2376672663000025662476666766627266677267626766662766620046624266",
        "2366772662666300566267677726762667227662666772672767300467277266",
        "6372766266777266622000046266667266627676266727666672666620025667",
        "6327672627667222776762662002466626662276666626622676726667626666",
        "2320046776667266726666267677266200004626666726662767626672666776",
        "7366626762200566256666662476772776662776662004662667766726666262",
        "7367662766773266666300566246766672667626672766620000566256666662",
        "4376772767266262776663004626666672667762677266673004662767727766",
        "6326627667266666672666200566267666726766246766672000056627667276",
        "7326666766227662667667726666766200467766726662762676700466672766",
        "2B667622666672766266662004666727662666672667762767200",
    ];
    const LO: [&str; 13] = [
        "4F9409301E01E395E40D129E52CDA1E4085034F005480FE50F6048255EDA2290",
        "4F890CFE70725902512401E407C944529E70595CDAEF70785256F25034F00734",
        "0F48F50D5FDADA248502294572FFD7304FF2301250F05E5407945CDA1E40901D",
        "0FE5840F60B9EBDA485075534301250D54C04850651340930354ADAD19734085",
        "1F204850D5229049EE2DADA8508FC43089D07948089303B9EE9081E4CDA24852",
        "5F07130103890C2015F48085EDA28FC40F66105E81E40D5C07259D251240CFFE",
        "1F2DA5643FFE30893081E4042F04085EDADA8508FC43089D07948089307C9445",
        "2F9E70595DDDA485075449E7D75534034FF40349CCCDA1E40C9345E30C9B5010",
        "4F8255095123B0389C4ADA4850D129E52081480893079CCEDADA485075449E7D",
        "7F553403140FE01034FE5ADA85031EEF4038535025408512BDA1E4048530301B",
        "5F0FE0481401E395E40D1ECDA4850229784D59540D129E52EDADA48503890071",
        "3F03855254C048508122F5203C51254CDAD5229C90494075042F0DA25CF70485",
        "03B92BC025CF70485089CCCDA25CF704850C9784D8F53504F0EDA",
    ];
    let nibble = |c: u8| (c as char).to_digit(16).unwrap() as u8;
    let mut buffer = Vec::new();
    for (hi, lo) in HI.iter().zip(LO) {
        assert_eq!(hi.len(), lo.len());
        for (h, l) in hi.bytes().zip(lo.bytes()) {
            buffer.push(nibble(h) << 4 | nibble(l));
        }
    }
    assert_eq!(&buffer[..6], b"D\x3fIt i"); // 'D', first subrecord header (63 octets)
    let payload = Bytes::copy_from_slice(&buffer[1..]);
    for level in [V20, V14, V13] {
        exact(
            level,
            &buffer,
            &Command::Data(Data {
                payload: payload.clone(),
            }),
        );
    }
}

#[test]
fn data_payload_is_a_slice_of_the_frame() {
    let frame = Bytes::from_static(b"D\x85hello");
    let Command::Data(d) = Command::decode(frame.clone(), V20).unwrap() else {
        panic!("not DATA");
    };
    assert_eq!(&d.payload[..], b"\x85hello");
    // Same memory: the payload starts one octet into the frame.
    assert_eq!(d.payload.as_ptr(), frame[1..].as_ptr());
}

#[test]
fn cdt_cd_rtr() {
    for level in [V20, V14, V13] {
        exact(
            level,
            &cat(&[
                b"C",  // CDTCMD  pos 0 F X(1)
                b"  ", // CDTRSV1 pos 1 F X(2)
            ]),
            &Command::Cdt(Cdt),
        );
        exact(level, b"R", &Command::Cd(Cd)); // CDCMD  pos 0 F X(1)
        exact(level, b"P", &Command::Rtr(Rtr)); // RTRCMD pos 0 F X(1)
    }
}

#[test]
fn efid_all_levels() {
    let cmd = Command::Efid(Efid {
        record_count: 42,
        unit_count: 131_072,
    });
    exact(
        V20,
        &cat(&[
            b"T",                 // EFIDCMD  pos 0  F X(1)
            b"00000000000000042", // EFIDRCNT pos 1  V 9(17)
            b"00000000000131072", // EFIDUCNT pos 18 V 9(17)
        ]),
        &cmd,
    );
    let v1x = cat(&[
        b"T",            // EFIDCMD  pos 0  F X(1)
        b"000000042",    // EFIDRCNT pos 1  V 9(9)
        b"000000131072", // EFIDUCNT pos 10 V 9(12)
    ]);
    assert_eq!(v1x.len(), 22);
    exact(V14, &v1x, &cmd);
    exact(V13, &v1x, &cmd);
}

#[test]
fn efpa_all_levels() {
    for level in [V20, V14, V13] {
        // EFPACMD pos 0 F X(1), EFPACD pos 1 F X(1)
        exact(
            level,
            b"4Y",
            &Command::Efpa(Efpa {
                change_direction: true,
            }),
        );
        exact(
            level,
            b"4N",
            &Command::Efpa(Efpa {
                change_direction: false,
            }),
        );
    }
}

#[test]
fn efna_all_levels() {
    exact(
        V20,
        &cat(&[
            b"5",                     // EFNACMD   pos 0 F X(1)
            b"10",                    // EFNAREAS  pos 1 F 9(2) invalid record count
            b"021",                   // EFNAREASL pos 3 V 9(3)
            b"Record count mismatch", // EFNAREAST pos 6 V T(21)
        ]),
        &Command::Efna(Efna {
            reason: EndFileRefusal::InvalidRecordCount,
            text: "Record count mismatch".to_owned(),
        }),
    );
    exact(
        V20,
        b"523000", // EFNACMD, EFNAREAS 23 decompression failure, EFNAREASL 000
        &Command::Efna(Efna {
            reason: EndFileRefusal::FileDecompressionFailure,
            text: String::new(),
        }),
    );
    let cmd = Command::Efna(Efna {
        reason: EndFileRefusal::InvalidByteCount,
        text: String::new(),
    });
    exact(V14, b"511", &cmd); // EFNACMD pos 0, EFNAREAS pos 1 F 9(2)
    exact(V13, b"511", &cmd);
}

#[test]
fn esid_all_levels() {
    let normal = Command::Esid(Esid {
        reason: EndSessionReason::Normal,
        text: String::new(),
    });
    exact(
        V20,
        &cat(&[
            b"F",   // ESIDCMD   pos 0 F X(1)
            b"00",  // ESIDREAS  pos 1 F 9(2)
            b"000", // ESIDREASL pos 3 V 9(3)
            b"\r",  // ESIDCR    pos 6 F X(1)
        ]),
        &normal,
    );
    exact(
        V20,
        &cat(&[
            b"F",                // ESIDCMD
            b"04",               // ESIDREAS  invalid password
            b"016",              // ESIDREASL
            b"Invalid password", // ESIDREAST T(16)
            b"\r",               // ESIDCR
        ]),
        &Command::Esid(Esid {
            reason: EndSessionReason::InvalidPassword,
            text: "Invalid password".to_owned(),
        }),
    );
    for level in [V14, V13] {
        exact(
            level,
            &cat(&[
                b"F",  // ESIDCMD  pos 0 F X(1)
                b"00", // ESIDREAS pos 1 F 9(2)
                b"\r", // ESIDCR   pos 3 F X(1)
            ]),
            &normal,
        );
        exact(
            level,
            b"F09\r",
            &Command::Esid(Esid {
                reason: EndSessionReason::TimeOut,
                text: String::new(),
            }),
        );
    }
}

fn eerp(timestamp: &str, hash: &'static [u8], signature: &'static [u8]) -> Eerp {
    Eerp {
        dataset_name: dsn("PAYMENTS.2024"),
        timestamp: ts(timestamp),
        user_data: user("REF42"),
        destination: id("O0013ACMECORP"),
        originator: id("O0013PARTNERB"),
        hash: Bytes::from_static(hash),
        signature: Bytes::from_static(signature),
    }
}

#[test]
fn eerp_v20_unsigned() {
    let lit = cat(&[
        b"E",          // EERPCMD  pos 0   F X(1)
        DSN,           // EERPDSN  pos 1   V X(26)
        b"   ",        // EERPRSV1 pos 27  F X(3)
        b"20071101",   // EERPDATE pos 30  V 9(8)
        b"1230450001", // EERPTIME pos 38  V 9(10)
        b"REF42   ",   // EERPUSER pos 48  V X(8)
        ACME,          // EERPDEST pos 56  V X(25) (the file's originator)
        PARTNER,       // EERPORIG pos 81  V X(25) (the file's recipient)
        &[0, 0],       // EERPHSHL pos 106 V U(2)  no hash
        &[0, 0],       // EERPSIGL pos 108 V U(2)  not signed
    ]);
    assert_eq!(lit.len(), 110);
    field_at(&lit, 48, b"REF42   ");
    exact(
        V20,
        &lit,
        &Command::Eerp(eerp("200711011230450001", b"", b"")),
    );
}

#[test]
fn eerp_v20_signed() {
    const HASH: &[u8; 20] =
        b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14";
    let lit = cat(&[
        b"E",          // EERPCMD  pos 0
        DSN,           // EERPDSN  pos 1
        b"   ",        // EERPRSV1 pos 27
        b"20071101",   // EERPDATE pos 30
        b"1230450001", // EERPTIME pos 38
        b"REF42   ",   // EERPUSER pos 48
        ACME,          // EERPDEST pos 56
        PARTNER,       // EERPORIG pos 81
        &[0x00, 0x14], // EERPHSHL pos 106 U(2) = 20, network byte order
        HASH,          // EERPHSH  pos 108 U(20)
        &[0x01, 0x02], // EERPSIGL pos 128 U(2) = 258
        &[0xAB; 258],  // EERPSIG  pos 130 U(258)
    ]);
    assert_eq!(lit.len(), 130 + 258);
    static SIG: [u8; 258] = [0xAB; 258];
    exact(
        V20,
        &lit,
        &Command::Eerp(eerp("200711011230450001", HASH, &SIG)),
    );
}

#[test]
fn eerp_v14_and_v13() {
    let v14 = cat(&[
        b"E",          // EERPCMD  pos 0  F X(1)
        DSN,           // EERPDSN  pos 1  V X(26)
        b"   ",        // EERPRSV1 pos 27 F X(3)
        b"20071101",   // EERPDATE pos 30 V 9(8)
        b"1230450001", // EERPTIME pos 38 V 9(10)
        b"REF42   ",   // EERPUSER pos 48 V X(8)
        ACME,          // EERPDEST pos 56 V X(25)
        PARTNER,       // EERPORIG pos 81 V X(25)
    ]);
    assert_eq!(v14.len(), 106);
    exact(
        V14,
        &v14,
        &Command::Eerp(eerp("200711011230450001", b"", b"")),
    );
    let v13 = cat(&[
        b"E",         // EERPCMD  pos 0  F X(1)
        DSN,          // EERPDSN  pos 1  V X(26)
        b"         ", // EERPRSV1 pos 27 F X(9)
        b"071101",    // EERPDATE pos 36 V 9(6) YYMMDD
        b"123045",    // EERPTIME pos 42 V 9(6) HHMMSS
        b"REF42   ",  // EERPUSER pos 48 V X(8)
        ACME,         // EERPDEST pos 56 V X(25)
        PARTNER,      // EERPORIG pos 81 V X(25)
    ]);
    assert_eq!(v13.len(), 106);
    exact(
        V13,
        &v13,
        &Command::Eerp(eerp("200711011230450000", b"", b"")),
    );
}

fn nerp(text: &str, hash: &'static [u8], signature: &'static [u8]) -> Nerp {
    Nerp {
        dataset_name: dsn("PAYMENTS.2024"),
        timestamp: ts("200711011230450001"),
        destination: id("O0013ACMECORP"),
        originator: id("O0013PARTNERB"),
        creator: id("O0013PARTNERB"),
        reason: NerpReason::FileSignatureNotValid,
        text: text.to_owned(),
        hash: Bytes::from_static(hash),
        signature: Bytes::from_static(signature),
    }
}

#[test]
fn nerp_v20() {
    let lit = cat(&[
        b"N",                        // NERPCMD   pos 0   F X(1)
        DSN,                         // NERPDSN   pos 1   V X(26)
        b"      ",                   // NERPRSV1  pos 27  F X(6)
        b"20071101",                 // NERPDATE  pos 33  V 9(8)
        b"1230450001",               // NERPTIME  pos 41  V 9(10)
        ACME,                        // NERPDEST  pos 51  V X(25)
        PARTNER,                     // NERPORIG  pos 76  V X(25)
        PARTNER,                     // NERPCREA  pos 101 V X(25)
        b"31",                       // NERPREAS  pos 126 F 9(2) signature not valid
        b"024",                      // NERPREASL pos 128 V 9(3)
        b"File signature not valid", // NERPREAST pos 131 V T(24)
        &[0x00, 0x03],               // NERPHSHL  pos 155 V U(2)
        b"\xde\xad\xbf",             // NERPHSH   pos 157 V U(3)
        &[0x00, 0x02],               // NERPSIGL  pos 160 V U(2)
        b"\x30\x80",                 // NERPSIG   pos 162 V U(2)
    ]);
    assert_eq!(lit.len(), 164);
    field_at(&lit, 33, b"20071101");
    field_at(&lit, 51, ACME);
    field_at(&lit, 126, b"31024File");
    exact(
        V20,
        &lit,
        &Command::Nerp(nerp(
            "File signature not valid",
            b"\xde\xad\xbf",
            b"\x30\x80",
        )),
    );
    let unsigned = cat(&[
        b"N",          // NERPCMD
        DSN,           // NERPDSN
        b"      ",     // NERPRSV1
        b"20071101",   // NERPDATE
        b"1230450001", // NERPTIME
        ACME,          // NERPDEST
        PARTNER,       // NERPORIG
        PARTNER,       // NERPCREA
        b"31",         // NERPREAS
        b"000",        // NERPREASL no text
        &[0, 0],       // NERPHSHL
        &[0, 0],       // NERPSIGL
    ]);
    assert_eq!(unsigned.len(), 135);
    exact(V20, &unsigned, &Command::Nerp(nerp("", b"", b"")));
}

#[test]
fn nerp_v14() {
    let lit = cat(&[
        b"N",          // NERPCMD  pos 0   F X(1)
        DSN,           // NERPDSN  pos 1   V X(26)
        b"      ",     // NERPRSV1 pos 27  F X(6)
        b"20071101",   // NERPDATE pos 33  V 9(8)
        b"1230450001", // NERPTIME pos 41  V 9(10)
        ACME,          // NERPDEST pos 51  V X(25)
        PARTNER,       // NERPORIG pos 76  V X(25)
        PARTNER,       // NERPCREA pos 101 V X(25)
        b"31",         // NERPREAS pos 126 F 9(2)
    ]);
    assert_eq!(lit.len(), 128);
    exact(V14, &lit, &Command::Nerp(nerp("", b"", b"")));
}

#[test]
fn secd_auch_aurp_v20() {
    exact(V20, b"J", &Command::Secd(Secd)); // SECDCMD pos 0 F X(1)
    let auch = cat(&[
        b"A",                    // AUCHCMD  pos 0 F X(1)
        &[0x00, 0x05],           // AUCHCHLL pos 1 V U(2)
        b"\x00\x01\x02\xfe\xff", // AUCHCHAL pos 3 V U(5)
    ]);
    exact(
        V20,
        &auch,
        &Command::Auch(Auch {
            challenge: Bytes::from_static(b"\x00\x01\x02\xfe\xff"),
        }),
    );
    let mut response = [0u8; 20];
    for (i, b) in response.iter_mut().enumerate() {
        *b = 0xF0 ^ i as u8;
    }
    let aurp = cat(&[
        b"S",      // AURPCMD pos 0 F X(1)
        &response, // AURPRSP pos 1 V U(20)
    ]);
    assert_eq!(aurp.len(), 21);
    exact(V20, &aurp, &Command::Aurp(Aurp { response }));
}

#[test]
fn command_ids_and_names() {
    for id in CommandId::ALL {
        assert_eq!(CommandId::from_code(id.code()), Some(id));
    }
    let codes: String = CommandId::ALL.iter().map(|c| c.code() as char).collect();
    assert_eq!(codes, "IXH23DCT45FRENPJAS");
    assert_eq!(Command::Cd(Cd).name(), "CD");
    assert_eq!(CommandId::Eerp.description(), "End to End Response");
    assert!(!CommandId::Secd.exists_at(V14));
    assert!(CommandId::Nerp.exists_at(V14));
    assert!(!CommandId::Nerp.exists_at(V13));
}
