//! Record formats F/V/U/T: round trips, counts, limits, errors, restart.

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Seek, SeekFrom, Write};

use bytes::Bytes;
use oftp2::deb::{self, SubrecordReader};
use oftp2::record::{
    self, Counts, FileSink, FileSource, Layout, RecordDecoder, RecordEncoder, RecordError,
    RestartPoint,
};
use oftp2::value::{EndFileRefusal, RecordFormat, StartFileRefusal};

fn send_all(file: &[u8], layout: Layout, size: usize, compression: bool) -> (Vec<Bytes>, Counts) {
    let mut source = FileSource::new(file, layout, size, compression);
    let mut payloads = Vec::new();
    while let Some(p) = source.next_payload().unwrap() {
        assert!(p.len() < size);
        deb::validate(&p).unwrap();
        payloads.push(p);
    }
    assert!(source.is_finished());
    (payloads, source.counts())
}

fn receive_all(payloads: &[Bytes], layout: Layout) -> (Vec<u8>, Counts) {
    let mut sink = FileSink::new(Vec::new(), layout);
    for p in payloads {
        sink.write_payload(p).unwrap();
    }
    let (counts, file) = sink.finish().unwrap();
    (file, counts)
}

fn v_file(records: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

fn round_trip(file: &[u8], layout: Layout, size: usize, compression: bool) -> Counts {
    let (payloads, sent) = send_all(file, layout, size, compression);
    let (back, received) = receive_all(&payloads, layout);
    assert_eq!(
        back, file,
        "{layout:?} size {size} compression {compression}"
    );
    assert_eq!(sent, received);
    let stats = record::inspect(layout, &mut Cursor::new(file)).unwrap();
    assert_eq!(stats.counts, sent);
    sent
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn stream_formats_round_trip_edge_sizes() {
    // Payload of a 128-octet buffer: 127 = 64 + 63, i.e. 63 + 62 octets.
    let sizes = [
        0,
        1,
        62,
        63,
        64,
        124,
        125,
        126,
        250,
        251,
        1024,
        1025,
        99_998 * 3,
        100_000,
    ];
    for layout in [Layout::unstructured(), Layout::text()] {
        for len in sizes {
            for (size, compression) in [(128, false), (128, true), (99_999, false), (99_999, true)]
            {
                let counts = round_trip(&sample(len), layout, size, compression);
                assert_eq!(
                    counts,
                    Counts {
                        records: 0,
                        units: len as u64
                    }
                );
            }
        }
    }
}

#[test]
fn stream_end_of_file_marker() {
    // U: one record for the whole file, End of Record on the last subrecord.
    let (payloads, _) = send_all(&sample(1000), Layout::unstructured(), 200, false);
    let flags: Vec<bool> = payloads
        .iter()
        .flat_map(|p| {
            SubrecordReader::new(p)
                .map(|s| s.unwrap().end_of_record)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(flags.last().copied().unwrap());
    assert_eq!(flags.iter().filter(|f| **f).count(), 1);
    // An empty file sends no DATA at all.
    assert!(send_all(b"", Layout::unstructured(), 200, false)
        .0
        .is_empty());
    assert_eq!(
        send_all(b"x", Layout::text(), 200, false).0[0][..],
        *b"\x81x"
    );
}

#[test]
fn fixed_round_trip_and_counts() {
    for lrecl in [1u32, 10, 62, 63, 64, 126, 127, 1000, 99_999] {
        let layout = Layout::fixed(lrecl).unwrap();
        for records in [0usize, 1, 3] {
            let file = sample(lrecl as usize * records);
            for (size, compression) in [(128, false), (128, true), (99_999, false)] {
                let counts = round_trip(&file, layout, size, compression);
                assert_eq!(counts.records, records as u64);
                assert_eq!(counts.units, file.len() as u64);
            }
        }
    }
}

#[test]
fn fixed_records_end_with_end_of_record() {
    let (payloads, _) = send_all(b"abcdefghij", Layout::fixed(5).unwrap(), 1000, false);
    assert_eq!(&payloads[0][..], b"\x85abcde\x85fghij");
}

#[test]
fn variable_round_trip_and_counts() {
    let big = sample(65_535);
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![],
        vec![b""],
        vec![b"", b""],
        vec![b"x"],
        vec![b"abc", b"", b"defgh"],
        vec![&big[..], b"", &big[..10]],
        vec![&big[..63], &big[..64], &big[..126], &big[..127]],
    ];
    for records in cases {
        let file = v_file(&records);
        for (size, compression) in [(128, false), (128, true), (3, false), (99_999, true)] {
            let counts = round_trip(&file, Layout::variable(65_535).unwrap(), size, compression);
            assert_eq!(counts.records, records.len() as u64);
            assert_eq!(
                counts.units,
                records.iter().map(|r| r.len() as u64).sum::<u64>()
            );
        }
    }
    // The prefixes are local only: the Virtual File carries record data.
    let (payloads, _) = send_all(
        &v_file(&[b"abc", b""]),
        Layout::variable(10).unwrap(),
        1000,
        false,
    );
    assert_eq!(&payloads[0][..], b"\x83abc\x80");
}

#[test]
fn record_length_limits() {
    assert!(Layout::fixed(1).is_ok());
    assert!(Layout::fixed(99_999).is_ok());
    assert!(Layout::variable(0).is_ok());
    assert!(Layout::variable(65_535).is_ok());
    for err in [
        Layout::fixed(0).unwrap_err(),
        Layout::fixed(100_000).unwrap_err(),
        Layout::variable(65_536).unwrap_err(),
        Layout::variable(99_999).unwrap_err(),
    ] {
        assert!(matches!(err, RecordError::UnsupportedRecordLength { .. }));
        assert_eq!(
            err.sfna_reason(),
            StartFileRefusal::MaxRecordLengthNotSupported
        );
    }
    // U and T carry 00000; anything else is meaningless and ignored.
    assert_eq!(
        Layout::new(RecordFormat::Text, 80)
            .unwrap()
            .max_record_len(),
        0
    );
    assert_eq!(Layout::unstructured().max_record_len(), 0);
    assert_eq!(Layout::fixed(80).unwrap().max_record_len(), 80);
}

fn send_err(file: &[u8], layout: Layout) -> RecordError {
    let mut source = FileSource::new(file, layout, 1000, false);
    loop {
        match source.next_payload() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("expected an error"),
            Err(err) => return err,
        }
    }
}

#[test]
fn malformed_local_files_are_refused_by_the_sender() {
    let err = send_err(&sample(25), Layout::fixed(10).unwrap());
    assert!(matches!(
        err,
        RecordError::LocalFileTruncated {
            format: RecordFormat::Fixed,
            offset: 20
        }
    ));
    let mut v = v_file(&[b"abc"]);
    v.push(0);
    assert!(matches!(
        send_err(&v, Layout::variable(100).unwrap()),
        RecordError::LocalFileTruncated { offset: 6, .. }
    ));
    let mut v = v_file(&[b"abc"]);
    v.extend([0, 5, b'x']);
    assert!(matches!(
        send_err(&v, Layout::variable(100).unwrap()),
        RecordError::LocalFileTruncated { .. }
    ));
    let v = v_file(&[b"abc", b"defghi"]);
    assert!(matches!(
        send_err(&v, Layout::variable(5).unwrap()),
        RecordError::LocalRecordTooLong {
            offset: 5,
            length: 6,
            max: 5
        }
    ));
    // inspect catches the same before SFID is sent.
    assert!(record::inspect(Layout::fixed(10).unwrap(), &mut Cursor::new(sample(25))).is_err());
    assert!(record::inspect(Layout::variable(5).unwrap(), &mut Cursor::new(v)).is_err());
}

fn decode_err(payloads: &[&[u8]], layout: Layout) -> RecordError {
    let mut dec = RecordDecoder::new(layout);
    let mut out = Vec::new();
    for p in payloads {
        if let Err(e) = dec.decode(p, &mut out) {
            return e;
        }
    }
    dec.finish(&mut out).unwrap_err()
}

#[test]
fn receiver_checks_record_lengths() {
    let f5 = Layout::fixed(5).unwrap();
    let err = decode_err(&[b"\x85abcde\x83abc"], f5);
    assert!(matches!(
        err,
        RecordError::FixedRecordLength {
            record: 2,
            length: 3,
            expected: 5
        }
    ));
    assert_eq!(err.efna_reason(), EndFileRefusal::Unspecified);
    let err = decode_err(&[b"\x03abc", b"\x83def"], f5);
    assert!(matches!(err, RecordError::RecordTooLong { record: 1, .. }));
    assert_eq!(
        err.efna_reason(),
        EndFileRefusal::MaxRecordLengthNotSupported
    );
    assert!(matches!(
        decode_err(&[b"\x85abcde\x02ab"], f5),
        RecordError::IncompleteRecord {
            record: 2,
            length: 2
        }
    ));
    let err = decode_err(&[b"\x03abc", b"\x03def"], Layout::variable(5).unwrap());
    assert!(matches!(
        err,
        RecordError::RecordTooLong {
            record: 1,
            length: 6,
            max: 5
        }
    ));
    let err = decode_err(&[b"\x05abc"], Layout::unstructured());
    assert!(
        err.esid_reason().is_some(),
        "malformed DATA ends the session"
    );
}

#[test]
fn receiver_tolerates_missing_end_of_record_where_unambiguous() {
    // F without End of Record flags: the fixed length delimits records
    // (at subrecord boundaries; a subrecord spanning two records is an error).
    let mut dec = RecordDecoder::new(Layout::fixed(3).unwrap());
    let mut out = Vec::new();
    dec.decode(b"\x03abc\x03def\x03ghi", &mut out).unwrap();
    assert_eq!(
        dec.finish(&mut out).unwrap(),
        Counts {
            records: 3,
            units: 9
        }
    );
    assert_eq!(out, b"abcdefghi");
    // V: a last record without End of Record is kept.
    let mut dec = RecordDecoder::new(Layout::variable(10).unwrap());
    let mut out = Vec::new();
    dec.decode(b"\x82ab\x03cde", &mut out).unwrap();
    assert_eq!(
        dec.finish(&mut out).unwrap(),
        Counts {
            records: 2,
            units: 5
        }
    );
    assert_eq!(out, v_file(&[b"ab", b"cde"]));
    // U and T: End of Record flags anywhere are simply ignored.
    let mut dec = RecordDecoder::new(Layout::unstructured());
    let mut out = Vec::new();
    dec.decode(b"\x82ab\x82cd\x01e", &mut out).unwrap();
    assert_eq!(dec.finish(&mut out).unwrap().units, 5);
}

#[test]
fn compressed_subrecords_decode_in_every_format() {
    let mut out = Vec::new();
    let mut dec = RecordDecoder::new(Layout::fixed(6).unwrap());
    dec.decode(b"\x02ab\xC4 ", &mut out).unwrap();
    assert_eq!(out, b"ab    ");
    assert_eq!(
        dec.counts(),
        Counts {
            records: 1,
            units: 6
        }
    );
}

/// Restart with real files: the receiver holds an arbitrary prefix of the
/// file, answers the restart point its data supports, truncates, and the
/// sender resumes from there; the result is byte-identical and the counts
/// cover the whole file (section 5.3.8).
#[test]
fn restart_resumes_to_a_byte_identical_file() {
    let v_records: Vec<Vec<u8>> = (0..300).map(|i| sample(i * 7 % 200)).collect();
    let v_refs: Vec<&[u8]> = v_records.iter().map(|r| &r[..]).collect();
    let files = [
        (Layout::unstructured(), sample(50_000)),
        (Layout::text(), sample(10_240)),
        (Layout::fixed(100).unwrap(), sample(30_000)),
        (Layout::variable(300).unwrap(), v_file(&v_refs)),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (layout, content) in files {
        let full_path = dir.path().join("outgoing");
        std::fs::write(&full_path, &content).unwrap();
        let stats = record::inspect(layout, &mut File::open(&full_path).unwrap()).unwrap();
        for cut in [
            0,
            1,
            1023,
            1024,
            1025,
            4099,
            content.len() / 2,
            content.len(),
        ] {
            for sender_offer in [u64::MAX, 3] {
                let recv_path = dir.path().join("incoming");
                std::fs::write(&recv_path, &content[..cut]).unwrap();

                // Receiver: find the restart point, truncate, append.
                let mut partial = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&recv_path)
                    .unwrap();
                let sender_rest = sender_offer;
                let point = record::resume_point(layout, &mut partial, sender_rest).unwrap();
                assert!(point.position <= sender_rest);
                assert!(point.local_offset <= cut as u64);
                partial.set_len(point.local_offset).unwrap();
                partial.seek(SeekFrom::End(0)).unwrap();
                let mut sink = FileSink::resume(partial, layout, point);

                // Sender: resume at the receiver's answer count.
                let (mut source, at) = FileSource::resume(
                    File::open(&full_path).unwrap(),
                    layout,
                    512,
                    true,
                    point.position,
                )
                .unwrap();
                assert_eq!(at, point, "both sides agree on {layout:?} cut {cut}");
                while let Some(p) = source.next_payload().unwrap() {
                    sink.write_payload(&p).unwrap();
                }
                let (counts, mut f) = sink.finish().unwrap();
                f.flush().unwrap();
                drop(f);
                assert_eq!(counts, stats.counts, "{layout:?} cut {cut}");
                assert_eq!(source.counts(), stats.counts);
                assert!(
                    std::fs::read(&recv_path).unwrap() == content,
                    "{layout:?} cut {cut}: file differs"
                );
            }
        }
    }
}

#[test]
fn restart_positions_use_the_rfc_units() {
    // U/T: 1K blocks; F/V: records.
    let mut u = Cursor::new(sample(5000));
    let p = record::locate(Layout::unstructured(), &mut u, 3).unwrap();
    assert_eq!(
        p,
        RestartPoint {
            position: 3,
            local_offset: 3072,
            counts: Counts {
                records: 0,
                units: 3072
            }
        }
    );
    let mut f = Cursor::new(sample(500));
    let p = record::locate(Layout::fixed(50).unwrap(), &mut f, 4).unwrap();
    assert_eq!(p.local_offset, 200);
    assert_eq!(
        p.counts,
        Counts {
            records: 4,
            units: 200
        }
    );
    let mut v = Cursor::new(v_file(&[b"abc", b"", b"de", b"f"]));
    let p = record::locate(Layout::variable(10).unwrap(), &mut v, 3).unwrap();
    assert_eq!(p.local_offset, 2 + 3 + 2 + 2 + 2);
    assert_eq!(
        p.counts,
        Counts {
            records: 3,
            units: 5
        }
    );
    // Receiver side with a partial V record: back to the last complete one.
    let mut partial = Cursor::new(v_file(&[b"abc", b"defg"])[..8].to_vec());
    let p = record::resume_point(Layout::variable(10).unwrap(), &mut partial, 99).unwrap();
    assert_eq!((p.position, p.local_offset), (1, 5));
}

#[test]
fn restart_beyond_the_end_is_refused() {
    let err =
        record::locate(Layout::unstructured(), &mut Cursor::new(sample(2047)), 2).unwrap_err();
    assert!(matches!(
        err,
        RecordError::RestartBeyondEnd {
            position: 2,
            available: 1
        }
    ));
    assert!(FileSource::resume(
        Cursor::new(sample(100)),
        Layout::fixed(10).unwrap(),
        128,
        false,
        11
    )
    .is_err());
    // Resuming exactly at the end sends nothing and reports full counts.
    let (mut s, _) = FileSource::resume(
        Cursor::new(sample(100)),
        Layout::fixed(10).unwrap(),
        128,
        false,
        10,
    )
    .unwrap();
    assert!(s.next_payload().unwrap().is_none());
    assert_eq!(
        s.counts(),
        Counts {
            records: 10,
            units: 100
        }
    );
}

#[test]
fn inspect_reports_sfid_values() {
    let stats = record::inspect(Layout::unstructured(), &mut Cursor::new(sample(2049))).unwrap();
    assert_eq!(stats.size_1k_blocks(), 3);
    assert_eq!(stats.local_len, 2049);
    let v = v_file(&[b"abc", b"", b"defgh"]);
    let stats = record::inspect(Layout::variable(100).unwrap(), &mut Cursor::new(v)).unwrap();
    assert_eq!(stats.longest_record, 5);
    assert_eq!(
        stats.counts,
        Counts {
            records: 3,
            units: 8
        }
    );
}

#[test]
fn pure_encoder_reports_full_buffers() {
    let mut enc = RecordEncoder::new(Layout::unstructured(), 10, false);
    let data = sample(20);
    let n = enc.encode(&data, true).unwrap();
    assert_eq!(n, 8, "payload limit 9 = header + 8");
    assert!(!enc.is_finished());
    assert_eq!(enc.take_payload().unwrap().len(), 9);
    let m = enc.encode(&data[n..], true).unwrap();
    assert_eq!(m, 8);
    enc.take_payload();
    assert_eq!(enc.encode(&data[16..], true).unwrap(), 4);
    assert!(enc.is_finished());
    let last = enc.take_payload().unwrap();
    assert_eq!(last[0], 0x84);
    assert_eq!(last[1..], data[16..]);
    assert_eq!(enc.counts().units, 20);
}

/// Found by fuzzing: a zero-length V record at the end of the file when
/// the previous record filled the buffer must go into the next buffer, not
/// be reported as a truncated local file.
#[test]
fn empty_last_record_after_a_full_buffer() {
    let file = v_file(&[b"ab\0", b""]);
    let (payloads, counts) = send_all(&file, Layout::variable(70).unwrap(), 5, false);
    assert_eq!(payloads, [&b"\x83ab\0"[..], &b"\x80"[..]]);
    assert_eq!(
        counts,
        Counts {
            records: 2,
            units: 3
        }
    );
    assert_eq!(
        receive_all(&payloads, Layout::variable(70).unwrap()).0,
        file
    );
}
