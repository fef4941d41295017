//! Property tests of the data path: encode → decode is the identity for
//! every format, buffer size and compression setting, restart from any
//! point yields the same file, and the decoders never panic.

use std::io::Cursor;

use bytes::BytesMut;
use oftp2::deb::{self, BufferWriter, SubrecordReader};
use oftp2::record::{self, FileSink, FileSource, Layout, RecordDecoder};
use oftp2::stb::{self, StbDecoder};
use proptest::prelude::*;

/// File content with a realistic share of repeated octets.
fn content(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max_len),
        prop::collection::vec((any::<u8>(), 1usize..100), 0..max_len / 20).prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(b, n)| std::iter::repeat(b).take(n))
                .collect()
        }),
    ]
}

fn buffer_size() -> impl Strategy<Value = usize> {
    prop_oneof![3usize..200, 128usize..5000, Just(99_999)]
}

/// A layout and a local file valid for it.
fn layout_and_file() -> impl Strategy<Value = (Layout, Vec<u8>)> {
    prop_oneof![
        content(20_000).prop_map(|c| (Layout::unstructured(), c)),
        content(5_000).prop_map(|c| (Layout::text(), c)),
        (1u32..300, content(20_000)).prop_map(|(lrecl, mut c)| {
            c.truncate(c.len() - c.len() % lrecl as usize);
            (Layout::fixed(lrecl).unwrap(), c)
        }),
        prop::collection::vec(content(400), 0..60).prop_map(|records| {
            let mut file = Vec::new();
            for r in &records {
                let r = &r[..r.len().min(400)];
                file.extend_from_slice(&(r.len() as u16).to_be_bytes());
                file.extend_from_slice(r);
            }
            (Layout::variable(400).unwrap(), file)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trip(
        (layout, file) in layout_and_file(),
        size in buffer_size(),
        compression in any::<bool>(),
    ) {
        let stats = record::inspect(layout, &mut Cursor::new(&file)).unwrap();
        let mut source = FileSource::new(&file[..], layout, size, compression);
        let mut sink = FileSink::new(Vec::new(), layout);
        while let Some(p) = source.next_payload().unwrap() {
            prop_assert!(p.len() < size, "buffer over the negotiated size");
            prop_assert!(!p.is_empty());
            sink.write_payload(&p).unwrap();
        }
        let (counts, back) = sink.finish().unwrap();
        prop_assert_eq!(&back, &file);
        prop_assert_eq!(counts, stats.counts);
        prop_assert_eq!(source.counts(), stats.counts);
    }

    #[test]
    fn restart_from_any_point(
        (layout, file) in layout_and_file(),
        cut in any::<prop::sample::Index>(),
        offer in any::<u64>(),
        size in buffer_size(),
        compression in any::<bool>(),
    ) {
        let stats = record::inspect(layout, &mut Cursor::new(&file)).unwrap();
        // The receiver holds an arbitrary prefix of the local file.
        let cut = if file.is_empty() { 0 } else { cut.index(file.len() + 1) };
        let mut partial = file[..cut].to_vec();
        let point = record::resume_point(layout, &mut Cursor::new(&partial), offer).unwrap();
        prop_assert!(point.position <= offer);
        partial.truncate(point.local_offset as usize);

        let (mut source, at) =
            FileSource::resume(Cursor::new(&file), layout, size, compression, point.position)
                .unwrap();
        prop_assert_eq!(at, point);
        let mut sink = FileSink::resume(partial, layout, point);
        while let Some(p) = source.next_payload().unwrap() {
            sink.write_payload(&p).unwrap();
        }
        let (counts, back) = sink.finish().unwrap();
        prop_assert_eq!(&back, &file);
        prop_assert_eq!(counts, stats.counts);
        prop_assert_eq!(source.counts(), stats.counts);
    }

    /// Compression never makes a buffer's content larger.
    #[test]
    fn compression_never_expands(data in content(5_000)) {
        let mut plain = BufferWriter::new(99_999, false);
        let mut packed = BufferWriter::new(99_999, true);
        plain.write(&data, true);
        packed.write(&data, true);
        let (plain, packed) = (plain.finish(), packed.finish());
        prop_assert!(packed.len() <= plain.len(), "{} > {}", packed.len(), plain.len());
        let mut back = Vec::new();
        for sub in SubrecordReader::new(&packed) {
            sub.unwrap().chunk.extend_into(&mut back);
        }
        prop_assert_eq!(back, data);
    }

    #[test]
    fn subrecord_reader_never_panics(payload in prop::collection::vec(any::<u8>(), 0..400)) {
        let total: Option<u64> = SubrecordReader::new(&payload)
            .map(|s| s.map(|s| s.chunk.len() as u64))
            .sum::<Result<u64, _>>()
            .ok();
        prop_assert_eq!(total, deb::validate(&payload).ok());
    }

    #[test]
    fn record_decoder_never_panics(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
        lrecl in 0u32..100,
    ) {
        let mut layouts = vec![Layout::unstructured(), Layout::text(), Layout::variable(lrecl).unwrap()];
        if let Ok(f) = Layout::fixed(lrecl) {
            layouts.push(f);
        }
        for layout in layouts {
            let mut dec = RecordDecoder::new(layout);
            let mut out = Vec::new();
            let mut failed = false;
            for p in &payloads {
                if dec.decode(p, &mut out).is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed {
                let _ = dec.finish(&mut out);
            }
            prop_assert!(dec.counts().units <= payloads.iter().map(|p| p.len() as u64 * 32).sum());
        }
    }

    #[test]
    fn stb_decoder_never_panics_and_agrees_with_encode(
        stream in prop::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..50,
        max in 1usize..200,
    ) {
        let mut dec = StbDecoder::new();
        dec.set_max_buffer(max);
        let mut rx = BytesMut::new();
        let mut consumed = 0;
        for piece in stream.chunks(chunk) {
            rx.extend_from_slice(piece);
            while let Ok(Some(buf)) = dec.decode(&mut rx) {
                // The buffer is exactly the framed octets of the input.
                prop_assert!(!buf.is_empty() && buf.len() <= max);
                let h = &stream[consumed..consumed + 4];
                prop_assert_eq!(h[0] >> 4, 1);
                prop_assert_eq!(&h[1..], &stb::header(buf.len()).unwrap()[1..]);
                prop_assert_eq!(&stream[consumed + 4..consumed + 4 + buf.len()], &buf[..]);
                consumed += 4 + buf.len();
            }
        }
    }
}
