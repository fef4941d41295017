//! Data Exchange Buffer subrecords (RFC 5024 section 7, Appendix A).

use oftp2::deb::{self, BufferWriter, Chunk, DebError, Subrecord, SubrecordReader, Written};
use oftp2::record::{FileSink, FileSource, Layout};
use oftp2::value::EndSessionReason;

/// Appendix A, "Exchange Buffer 1", exactly as printed in the RFC: each
/// pair is the high-nibble row and the low-nibble row of 64 octets.
const APPENDIX_A_NIBBLES: &[(&str, &str)] = &[
    (
        "4347267266266666672467666720046626627767767626662662767662002472",
        "4F9409301E01E395E40D129E52CDA1E4085034F005480FE50F6048255EDA2290",
    ),
    (
        "7367266662676726667626662666776766626762004672766766676277677277",
        "4F890CFE70725902512401E407C944529E70595CDAEF70785256F25034F00734",
    ),
    (
        "2376672663000025662476666766627266677267626766662766620046624266",
        "0F48F50D5FDADA248502294572FFD7304FF2301250F05E5407945CDA1E40901D",
    ),
    (
        "2366772662666300566267677726762667227662666772672767300467277266",
        "0FE5840F60B9EBDA485075534301250D54C04850651340930354ADAD19734085",
    ),
    (
        "6372766266777266622000046266667266627676266727666672666620025667",
        "1F204850D5229049EE2DADA8508FC43089D07948089303B9EE9081E4CDA24852",
    ),
    (
        "6327672627667222776762662002466626662276666626622676726667626666",
        "5F07130103890C2015F48085EDA28FC40F66105E81E40D5C07259D251240CFFE",
    ),
    (
        "2320046776667266726666267677266200004626666726662767626672666776",
        "1F2DA5643FFE30893081E4042F04085EDADA8508FC43089D07948089307C9445",
    ),
    (
        "7366626762200566256666662476772776662776662004662667766726666262",
        "2F9E70595DDDA485075449E7D75534034FF40349CCCDA1E40C9345E30C9B5010",
    ),
    (
        "7367662766773266666300566246766672667626672766620000566256666662",
        "4F8255095123B0389C4ADA4850D129E52081480893079CCEDADA485075449E7D",
    ),
    (
        "4376772767266262776663004626666672667762677266673004662767727766",
        "7F553403140FE01034FE5ADA85031EEF4038535025408512BDA1E4048530301B",
    ),
    (
        "6326627667266666672666200566267666726766246766672000056627667276",
        "5F0FE0481401E395E40D1ECDA4850229784D59540D129E52EDADA48503890071",
    ),
    (
        "7326666766227662667667726666766200467766726662762676700466672766",
        "3F03855254C048508122F5203C51254CDAD5229C90494075042F0DA25CF70485",
    ),
    (
        "2B667622666672766266662004666727662666672667762767200",
        "03B92BC025CF70485089CCCDA25CF704850C9784D8F53504F0EDA",
    ),
];

/// The T file of Appendix A: the poem with CR LF line ends.
const RIME: &str = "It is an ancient Mariner,
And he stoppeth one of three.
\"By thy long grey beard and glittering eye,
Now wherefore stopp'st thou me?

\"The Bridegroom's doors are opened wide,
And I am next of kin;
The guests are met, the feast is set:
May'st hear the merry din.\"

He holds him with his skinny hand,
\"There was a ship,\" quoth he.
\"Hold off! unhand me, grey-beard loon!\"
Eftsoons his hand dropt he.

He holds him with his glittering eye--
The Wedding-Guest stood still,
And listens like a three years; child:
The Mariner hath his will.

The Wedding-Guest sat on a stone:
He cannot chuse but hear;
And thus spake on that ancient man,
The bright-eyed Mariner.

The ship was cheered, the harbour cleared,
Merrily did we drop
Below the kirk, below the hill,
Below the light-house top.
";

fn appendix_a_buffer() -> Vec<u8> {
    let nibble = |c: u8| (c as char).to_digit(16).unwrap() as u8;
    let mut out = Vec::new();
    for (high, low) in APPENDIX_A_NIBBLES {
        assert_eq!(high.len(), low.len());
        out.extend(
            high.bytes()
                .zip(low.bytes())
                .map(|(h, l)| nibble(h) << 4 | nibble(l)),
        );
    }
    out
}

fn rime_crlf() -> Vec<u8> {
    RIME.replace('\n', "\r\n").into_bytes()
}

#[test]
fn appendix_a_encoding_is_byte_exact() {
    let rfc = appendix_a_buffer();
    assert_eq!(rfc[0], b'D');
    let file = rime_crlf();
    let mut source = FileSource::new(&file[..], Layout::text(), 99_999, false);
    let payload = source.next_payload().unwrap().unwrap();
    assert!(source.next_payload().unwrap().is_none());
    assert_eq!(&payload[..], &rfc[1..]);
    // EFID for T: record count zero, unit count the octets.
    assert_eq!(source.counts().records, 0);
    assert_eq!(source.counts().units, file.len() as u64);
}

#[test]
fn appendix_a_decodes_to_the_poem() {
    let rfc = appendix_a_buffer();
    let headers: Vec<u8> = {
        let mut pos = 1;
        let mut h = Vec::new();
        while pos < rfc.len() {
            h.push(rfc[pos]);
            pos += 1 + usize::from(rfc[pos] & 0x3f);
        }
        h
    };
    // Twelve full 63-octet subrecords, then End of Record with 51 octets.
    assert_eq!(headers[..12], [0x3F; 12]);
    assert_eq!(headers[12], 0x80 | 51);

    let mut sink = FileSink::new(Vec::new(), Layout::text());
    sink.write_payload(&rfc[1..]).unwrap();
    let (counts, file) = sink.finish().unwrap();
    assert_eq!(file, rime_crlf());
    assert_eq!(counts.units, 807);
}

fn written(consumed: usize, complete: bool) -> Written {
    Written { consumed, complete }
}

#[test]
fn literal_subrecords_are_at_most_63_octets() {
    let data: Vec<u8> = (0..200u8).collect();
    let mut w = BufferWriter::new(1000, false);
    assert_eq!(w.write(&data, true), written(200, true));
    let payload = w.finish();
    let subs: Vec<Subrecord> = SubrecordReader::new(&payload).map(Result::unwrap).collect();
    let lens: Vec<usize> = subs.iter().map(|s| s.chunk.len()).collect();
    assert_eq!(lens, [63, 63, 63, 11]);
    assert_eq!(payload[0], 63);
    assert_eq!(payload[64], 63);
    assert_eq!(payload[128], 63);
    assert_eq!(payload[192], 0x80 | 11);
    assert_eq!(payload.len(), 204);
}

#[test]
fn compression_of_repeated_octets() {
    let mut w = BufferWriter::new(1000, true);
    let mut data = b"ab".to_vec();
    data.extend([b'x'; 10]);
    data.extend(b"cd");
    assert_eq!(w.write(&data, true), written(14, true));
    assert_eq!(
        &w.finish()[..],
        &[0x02, b'a', b'b', 0x40 | 10, b'x', 0x80 | 0x02, b'c', b'd']
    );

    // A whole record that is one run: End of Record and Compression flags.
    assert_eq!(w.write(&[b' '; 10], true), written(10, true));
    assert_eq!(&w.finish()[..], &[0xC0 | 10, b' ']);

    // Runs longer than 63 continue in further compressed subrecords.
    w.write(&[0u8; 100], false);
    assert_eq!(&w.finish()[..], &[0x40 | 63, 0, 0x40 | 37, 0]);
}

#[test]
fn compression_only_when_it_pays() {
    let mut w = BufferWriter::new(1000, true);
    // Runs of 3 stay literal: compressing would not save anything.
    w.write(b"aaabbbccc", false);
    assert_eq!(&w.finish()[..], b"\x09aaabbbccc");
    // A run of exactly MIN_COMPRESSED_RUN is compressed.
    w.write(b"zaaaaz", false);
    assert_eq!(&w.finish()[..], &[1, b'z', 0x44, b'a', 1, b'z']);
    assert_eq!(deb::MIN_COMPRESSED_RUN, 4);
}

#[test]
fn compression_not_used_unless_negotiated() {
    let mut w = BufferWriter::new(1000, false);
    w.write(&[7u8; 10], false);
    assert_eq!(&w.finish()[..], &[10, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
}

#[test]
fn zero_length_record_and_late_end_of_record() {
    let mut w = BufferWriter::new(100, false);
    // An empty record is a zero-length subrecord with End of Record.
    assert_eq!(w.write(&[], true), written(0, true));
    // A record whose end is only known later gets the flag set in place.
    assert_eq!(w.write(b"abc", false), written(3, true));
    assert_eq!(w.write(&[], true), written(0, true));
    // After a completed record, an empty one needs its own subrecord.
    assert_eq!(w.write(&[], true), written(0, true));
    assert_eq!(&w.finish()[..], &[0x80, 0x83, b'a', b'b', b'c', 0x80]);
    // In a new buffer the earlier record's tail is gone: zero-length EoR.
    w.write(b"x", false);
    w.finish();
    w.write(&[], true);
    assert_eq!(&w.finish()[..], &[0x80]);
}

#[test]
fn zero_length_subrecords_accepted_on_receipt() {
    let payload = [
        0x00, 0x80, 0x03, b'a', b'b', b'c', 0x40, b'z', 0xC3, b'q', 0x00,
    ];
    let subs: Vec<Subrecord> = SubrecordReader::new(&payload).map(Result::unwrap).collect();
    assert_eq!(
        subs,
        [
            Subrecord {
                chunk: Chunk::Literal(b""),
                end_of_record: false
            },
            Subrecord {
                chunk: Chunk::Literal(b""),
                end_of_record: true
            },
            Subrecord {
                chunk: Chunk::Literal(b"abc"),
                end_of_record: false
            },
            Subrecord {
                chunk: Chunk::Repeat {
                    octet: b'z',
                    count: 0
                },
                end_of_record: false
            },
            Subrecord {
                chunk: Chunk::Repeat {
                    octet: b'q',
                    count: 3
                },
                end_of_record: true
            },
            Subrecord {
                chunk: Chunk::Literal(b""),
                end_of_record: false
            },
        ]
    );
    assert_eq!(deb::validate(&payload), Ok(6));
    assert_eq!(deb::validate(&[]), Ok(0));
}

#[test]
fn malformed_buffers_are_typed_errors() {
    let err = deb::validate(&[0x01, b'a', 0x05, b'a', b'b']).unwrap_err();
    assert_eq!(
        err,
        DebError::Truncated {
            offset: 2,
            needed: 5,
            available: 2
        }
    );
    assert_eq!(err.esid_reason(), EndSessionReason::ExchangeBufferSizeError);
    // A compressed subrecord needs its octet.
    assert_eq!(
        deb::validate(&[0x01, b'a', 0x45]).unwrap_err(),
        DebError::Truncated {
            offset: 2,
            needed: 1,
            available: 0
        }
    );
    // The iterator yields the error once, then ends.
    let mut it = SubrecordReader::new(&[0x01, b'a', 0x3F, 1, 2]);
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

/// Section 7.3: a buffer never exceeds the negotiated size and a subrecord
/// is never split between buffers — every buffer parses on its own.
#[test]
fn filling_respects_the_negotiated_size() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 13) as u8).collect();
    for compression in [false, true] {
        for size in [3usize, 4, 5, 64, 65, 66, 128, 129, 1000] {
            let mut w = BufferWriter::new(size, compression);
            assert_eq!(w.payload_limit(), size - 1);
            let mut rest = &data[..];
            let mut payloads = Vec::new();
            loop {
                let r = w.write(rest, true);
                rest = &rest[r.consumed..];
                if r.complete {
                    payloads.push(w.finish());
                    break;
                }
                assert!(w.len() >= size - 2, "strategy 2: buffer filled up");
                payloads.push(w.finish());
            }
            let mut back = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                assert!(p.len() < size, "DATA of {} octets > {size}", 1 + p.len());
                for sub in SubrecordReader::new(p) {
                    let sub = sub.unwrap();
                    sub.chunk.extend_into(&mut back);
                    let last = i == payloads.len() - 1 && back.len() == data.len();
                    assert_eq!(sub.end_of_record, last);
                }
            }
            assert_eq!(back, data, "size {size} compression {compression}");
        }
    }
}

#[test]
fn full_buffer_reports_incomplete_write() {
    // Payload limit 4: header + 3 octets.
    let mut w = BufferWriter::new(5, false);
    assert_eq!(w.write(b"abcdef", true), written(3, false));
    assert!(w.is_full());
    assert_eq!(&w.finish()[..], b"\x03abc");
    assert_eq!(w.write(b"def", true), written(3, true));
    assert_eq!(&w.finish()[..], b"\x83def");
    // An end-of-record that does not fit anymore is reported as such.
    let mut w = BufferWriter::new(5, false);
    w.write(b"abc", true);
    assert_eq!(w.write(&[], true), written(0, false));
}
