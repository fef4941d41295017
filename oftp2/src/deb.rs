//! Data Exchange Buffer subrecords (RFC 5024 section 7).
//!
//! A DATA command is the octet `'D'` followed by subrecords, each preceded
//! by a 1-octet header:
//!
//! ```text
//!   bit 0 (0x80)  End of Record: the following subrecord ends the record
//!   bit 1 (0x40)  Compression: the following subrecord is one octet to be
//!                 repeated COUNT times
//!   bits 2-7      COUNT (0..=63): octets of the Virtual File represented
//! ```
//!
//! This module works on the DATA *payload* — everything after the `'D'` —
//! matching `codec`'s `Data` command. [`BufferWriter`] fills a payload on
//! the sending side; [`SubrecordReader`] walks a received payload without
//! allocating. Record formats on top of this live in [`crate::record`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::value::EndSessionReason;

/// Largest number of Virtual File octets one subrecord can represent.
pub const MAX_SUBRECORD_LEN: usize = 63;
/// Header bit: the following subrecord is the last one of its record.
pub const END_OF_RECORD: u8 = 0x80;
/// Header bit: the following subrecord is a compressed (repeated) octet.
pub const COMPRESSED: u8 = 0x40;
/// Header bits holding the subrecord count.
pub const COUNT_MASK: u8 = 0x3f;

/// Shortest run of one octet worth a compressed subrecord.
///
/// A compressed subrecord costs 2 octets, and when it interrupts literal
/// data the literal needs a fresh header afterwards: 3 octets in total. A
/// run of 4 is the shortest that strictly saves space in every position.
pub const MIN_COMPRESSED_RUN: usize = 4;

/// Smallest buffer size [`BufferWriter`] works with.
pub const MIN_BUFFER_SIZE: usize = 3;

/// A received DATA payload that does not parse as subrecords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebError {
    /// A subrecord header announces more octets than the buffer holds.
    #[error(
        "data exchange buffer truncated: subrecord header at payload offset {offset} needs \
         {needed} octets but only {available} remain; the partner's buffer filling is broken"
    )]
    Truncated {
        /// Offset of the offending header within the payload.
        offset: usize,
        /// Octets the header announces after itself.
        needed: usize,
        /// Octets actually left after the header.
        available: usize,
    },
}

impl DebError {
    /// The ESID reason code (section 5.3.11) to end the session with: `07`,
    /// because the Exchange Buffer length given by the STH disagrees with
    /// the length its subrecord headers imply.
    pub fn esid_reason(&self) -> EndSessionReason {
        EndSessionReason::ExchangeBufferSizeError
    }
}

/// What one subrecord contributes to the Virtual File.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Octets copied verbatim (0..=63 of them).
    Literal(&'a [u8]),
    /// `octet` repeated `count` (0..=63) times.
    Repeat {
        /// The octet to repeat.
        octet: u8,
        /// How many times it appears in the Virtual File.
        count: u8,
    },
}

impl Chunk<'_> {
    /// Number of Virtual File octets represented.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Literal(data) => data.len(),
            Chunk::Repeat { count, .. } => usize::from(*count),
        }
    }

    /// Whether the chunk represents no octets at all (legal, section 7.3).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append the represented octets to `out`.
    pub fn extend_into(&self, out: &mut Vec<u8>) {
        match *self {
            Chunk::Literal(data) => out.extend_from_slice(data),
            Chunk::Repeat { octet, count } => out.resize(out.len() + usize::from(count), octet),
        }
    }
}

/// One decoded subrecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subrecord<'a> {
    /// The octets it stands for.
    pub chunk: Chunk<'a>,
    /// End of Record flag: this subrecord completes the current record.
    pub end_of_record: bool,
}

/// Zero-allocation iterator over the subrecords of a DATA payload.
///
/// Yields `Err` once for a malformed payload and then ends. Zero-length
/// subrecords (and so zero-length records) are yielded as they are, as
/// section 7.3 allows them anywhere. Compressed subrecords are accepted
/// whether or not compression was negotiated: they are unambiguous.
#[derive(Debug, Clone)]
pub struct SubrecordReader<'a> {
    payload: &'a [u8],
    pos: usize,
}

impl<'a> SubrecordReader<'a> {
    /// Walk `payload`, the DATA command without its leading `'D'`.
    pub fn new(payload: &'a [u8]) -> Self {
        Self { payload, pos: 0 }
    }
}

impl<'a> Iterator for SubrecordReader<'a> {
    type Item = Result<Subrecord<'a>, DebError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let offset = self.pos;
        let header = *self.payload.get(offset)?;
        let count = header & COUNT_MASK;
        let end_of_record = header & END_OF_RECORD != 0;
        let body = offset + 1;
        let (needed, chunk) = if header & COMPRESSED != 0 {
            let octet = self.payload.get(body).copied();
            (1, octet.map(|octet| Chunk::Repeat { octet, count }))
        } else {
            let len = usize::from(count);
            (len, self.payload.get(body..body + len).map(Chunk::Literal))
        };
        match chunk {
            Some(chunk) => {
                self.pos = body + needed;
                Some(Ok(Subrecord {
                    chunk,
                    end_of_record,
                }))
            }
            None => {
                // Poison: a truncated buffer has no further subrecords.
                self.pos = self.payload.len();
                Some(Err(DebError::Truncated {
                    offset,
                    needed,
                    available: self.payload.len() - body,
                }))
            }
        }
    }
}

/// Check a payload's subrecord structure and return the number of Virtual
/// File octets it represents.
pub fn validate(payload: &[u8]) -> Result<u64, DebError> {
    SubrecordReader::new(payload).try_fold(0u64, |n, sub| Ok(n + sub?.chunk.len() as u64))
}

/// Outcome of one [`BufferWriter::write`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Input octets now in the buffer.
    pub consumed: usize,
    /// All input was consumed and, if requested, the end of the record
    /// was marked. When `false` the buffer is full: send it and call again
    /// with the unconsumed rest.
    pub complete: bool,
}

/// Fills one DATA payload at a time with subrecords, following the buffer
/// filling rules of section 7.3.
///
/// The payload never exceeds the negotiated buffer size minus the `'D'`
/// octet; a subrecord is never split across buffers — when the space left
/// is too small, the subrecord is split into two (strategy 2 of 7.3), so
/// buffers are filled completely. With compression negotiated, runs of at
/// least [`MIN_COMPRESSED_RUN`] equal octets become compressed subrecords.
#[derive(Debug)]
pub struct BufferWriter {
    buf: BytesMut,
    limit: usize,
    compression: bool,
    /// Index in `buf` of the last header if it belongs to a record that is
    /// still open, so a later end-of-record can be set on it in place.
    open_tail: Option<usize>,
}

impl BufferWriter {
    /// A writer for a session that negotiated `buffer_size` (SSIDSDEB: the
    /// whole DATA command, `'D'` included, STH excluded) and, with
    /// `compression`, buffer compression (SSIDCMPR `Y` on both sides).
    ///
    /// `buffer_size` is clamped to 3..=99999 (3 octets: `'D'`, a header
    /// and one data octet, the least that always makes progress; SSID
    /// never negotiates below 128 anyway).
    pub fn new(buffer_size: usize, compression: bool) -> Self {
        let limit = buffer_size.clamp(MIN_BUFFER_SIZE, crate::stb::MAX_EXCHANGE_BUFFER_LEN) - 1;
        Self {
            buf: BytesMut::new(),
            limit,
            compression,
            open_tail: None,
        }
    }

    /// Largest payload this writer produces (negotiated size minus `'D'`).
    pub fn payload_limit(&self) -> usize {
        self.limit
    }

    /// Whether buffer compression is used.
    pub fn compression(&self) -> bool {
        self.compression
    }

    /// Octets in the current payload.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the current payload has no subrecords yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Octets still free in the current payload.
    pub fn remaining(&self) -> usize {
        self.limit - self.buf.len()
    }

    /// Whether no further input octet fits (a subrecord needs its header
    /// plus at least one octet).
    pub fn is_full(&self) -> bool {
        self.remaining() < 2
    }

    /// Take the current payload (possibly empty) and start a new one.
    ///
    /// Payloads are split off a shared allocation, so a steady stream of
    /// buffers costs one allocation per several buffers, not one each.
    pub fn finish(&mut self) -> Bytes {
        self.open_tail = None;
        let payload = self.buf.split().freeze();
        self.buf.reserve(self.limit);
        payload
    }

    /// Append `data`, the next octets of the current record, as subrecords.
    ///
    /// With `end_of_record`, the last subrecord carrying `data` is flagged
    /// as the end of the record; an empty `data` ends the record by setting
    /// the flag on the record's last subrecord if it is still in this
    /// buffer, else by a zero-length subrecord (section 7.3).
    ///
    /// Consumes as much as fits and reports how much; the caller sends the
    /// full buffer ([`finish`](Self::finish)) and continues with the rest.
    pub fn write(&mut self, data: &[u8], end_of_record: bool) -> Written {
        if self.buf.capacity() < self.limit {
            self.buf.reserve(self.limit - self.buf.len());
        }
        let consumed = if self.compression {
            self.write_compressed(data)
        } else {
            self.write_literal(data)
        };
        if consumed < data.len() {
            return Written {
                consumed,
                complete: false,
            };
        }
        if !end_of_record {
            return Written {
                consumed,
                complete: true,
            };
        }
        let complete = match self.open_tail.take() {
            Some(at) => {
                self.buf[at] |= END_OF_RECORD;
                true
            }
            None if self.buf.len() < self.limit => {
                self.buf.put_u8(END_OF_RECORD);
                true
            }
            None => false,
        };
        Written { consumed, complete }
    }

    /// Uncompressed fast path: 63-octet subrecords straight from `data`.
    fn write_literal(&mut self, data: &[u8]) -> usize {
        let mut consumed = 0;
        for chunk in data.chunks(MAX_SUBRECORD_LEN) {
            let space = self.limit - self.buf.len();
            if space < 2 {
                break;
            }
            let take = chunk.len().min(space - 1);
            self.open_tail = Some(self.buf.len());
            // take <= 63, so it fits the count bits.
            self.buf.put_u8(take as u8);
            self.buf.extend_from_slice(&chunk[..take]);
            consumed += take;
            if take < chunk.len() {
                break;
            }
        }
        consumed
    }

    /// Compressing path: runs of [`MIN_COMPRESSED_RUN`]+ equal octets become
    /// 2-octet compressed subrecords, everything else literal subrecords.
    fn write_compressed(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            let space = self.limit - self.buf.len();
            if space < 2 {
                break;
            }
            let window = &data[pos..data.len().min(pos + MAX_SUBRECORD_LEN)];
            let run = run_len(window);
            self.open_tail = Some(self.buf.len());
            if run >= MIN_COMPRESSED_RUN {
                // run <= 63, so it fits the count bits.
                self.buf.put_slice(&[COMPRESSED | run as u8, window[0]]);
                pos += run;
                continue;
            }
            let take = literal_len(window).min(space - 1);
            self.buf.put_u8(take as u8);
            self.buf.extend_from_slice(&window[..take]);
            pos += take;
        }
        pos
    }
}

/// Length of the run of `window[0]` at the start of `window`.
#[inline]
fn run_len(window: &[u8]) -> usize {
    match window.split_first() {
        Some((first, rest)) => 1 + rest.iter().take_while(|b| *b == first).count(),
        None => 0,
    }
}

/// Length of the literal prefix of `window`: up to the start of the first
/// run worth compressing, or all of it.
#[inline]
fn literal_len(window: &[u8]) -> usize {
    // Skip 8 positions at a time while no two neighbouring octets are equal
    // (the common case for data that does not compress): a run of 4 needs
    // three equal neighbour pairs, so it cannot start inside such a block.
    let mut start = 0;
    while let Some(next9) = window.get(start..start + 9) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&next9[..8]);
        b.copy_from_slice(&next9[1..]);
        if has_zero_byte(u64::from_le_bytes(a) ^ u64::from_le_bytes(b)) {
            break;
        }
        start += 8;
    }
    let mut run = 1;
    for i in start + 1..window.len() {
        if window[i] == window[i - 1] {
            run += 1;
            if run == MIN_COMPRESSED_RUN {
                return i + 1 - MIN_COMPRESSED_RUN;
            }
        } else {
            run = 1;
        }
    }
    window.len()
}

/// Whether any of the 8 octets of `v` is zero (classic SWAR test).
#[inline]
fn has_zero_byte(v: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    v.wrapping_sub(LO) & !v & HI != 0
}
