//! Data path decoders on arbitrary input: STB framing, DATA subrecords and
//! the F/V/U/T record decoders must never panic, and what the encoders
//! produce must decode back to the original.
//!
//! Input layout: byte 0 selects the configuration (record format, maximum
//! record length, negotiated buffer size, feed chunking, compression); the
//! rest is a received byte stream, and also used as a local file for the
//! encode → decode round trip.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use oftp2::deb::{self, SubrecordReader};
use oftp2::record::{self, FileSink, FileSource, Layout, RecordDecoder};
use oftp2::stb::StbDecoder;

fn layout(selector: u8, lrecl: u32) -> Layout {
    match selector % 4 {
        0 => Layout::unstructured(),
        1 => Layout::text(),
        2 => Layout::fixed(lrecl.max(1)).unwrap_or_else(|_| Layout::unstructured()),
        _ => Layout::variable(lrecl).unwrap_or_else(|_| Layout::unstructured()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&config, stream)) = data.split_first() else {
        return;
    };
    let lrecl = u32::from(config >> 2 & 0x0f) * 7;
    let layout = layout(config, lrecl);
    let max_buffer = [128, 5, 99_999, 300][usize::from(config >> 6)];
    let chunk = usize::from(config >> 3 & 0x07) * 13 + 1;
    let compression = config & 0x20 != 0;

    // 1. The stream as received: STB framing, then DATA payloads.
    let mut stb = StbDecoder::new();
    stb.set_max_buffer(max_buffer);
    let mut rx = BytesMut::new();
    let mut decoder = RecordDecoder::new(layout);
    let mut out = Vec::new();
    let mut ok = true;
    'feed: for piece in stream.chunks(chunk) {
        rx.extend_from_slice(piece);
        loop {
            match stb.decode(&mut rx) {
                Ok(Some(buf)) => {
                    assert!(!buf.is_empty() && buf.len() <= max_buffer);
                    if let Some((b'D', payload)) = buf.split_first() {
                        let octets: Result<u64, _> = SubrecordReader::new(payload)
                            .map(|s| s.map(|s| s.chunk.len() as u64))
                            .sum();
                        assert_eq!(octets, deb::validate(payload));
                        if ok && decoder.decode(payload, &mut out).is_err() {
                            ok = false;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    if ok {
        let _ = decoder.finish(&mut out);
    }

    // 2. The stream as a local file: encode and decode back.
    let mut cursor = std::io::Cursor::new(stream);
    let Ok(stats) = record::inspect(layout, &mut cursor) else {
        return;
    };
    let mut source = FileSource::new(stream, layout, max_buffer, compression);
    let mut sink = FileSink::new(Vec::new(), layout);
    while let Some(payload) = source.next_payload().expect("valid local file encodes") {
        assert!(payload.len() < max_buffer, "DATA larger than negotiated");
        sink.write_payload(&payload).expect("own payload decodes");
    }
    let (counts, back) = sink.finish().expect("own file completes");
    assert_eq!(back, stream);
    assert_eq!(counts, stats.counts);
    assert_eq!(source.counts(), stats.counts);
});
