//! Record formats F, V, U and T: mapping between a local file and the
//! Virtual File carried in DATA buffers (RFC 5024 sections 1.5.3, 1.5.4,
//! 5.3.3, 5.3.8, 6.5 and 7).
//!
//! # Local representation
//!
//! RFC 5024 leaves the local mapping to the implementation (section 1.5).
//! os4x stores files like this — what an administrator finds on disk:
//!
//! | Format | Local file on disk | Virtual File records |
//! |---|---|---|
//! | `F` fixed | records concatenated, no separators; the file size is a multiple of the record length (SFIDLRECL, 1..=99999) | one record per `lrecl` octets, each ended by the End of Record flag |
//! | `V` variable | each record preceded by its length as a 2-octet big-endian number (the record length indicator of section 6.5), data octets only | one record per length-prefixed block; the prefixes are not transmitted |
//! | `U` unstructured | the raw octets | the whole file is one record; End of Record on the last subrecord marks the end of file (section 7.2) |
//! | `T` text | the octets exactly as transmitted: ASCII lines ending in CR LF | as `U` (Appendix A sends a T file this way, CR LF included) |
//!
//! Why these choices:
//!
//! * `V` uses the section 6.5 prefix rather than newline separation because
//!   V records are binary and may contain any octet, including newlines;
//!   the prefix is also exactly the form the RFC requires before a V file
//!   is signed, compressed or encrypted, so one local form serves both. The
//!   2-octet prefix caps local V records at 65535 octets: a partner's
//!   SFIDLRECL above that is refused with SFNA `05`.
//! * `T` is kept byte for byte, CR LF line ends included, with no newline
//!   conversion. The T definition (section 1.5.3) makes CR LF part of the
//!   Virtual File, and restart positions count 1K blocks of the Virtual
//!   File (section 1.5.4): with a transparent mapping a local offset *is* a
//!   Virtual File offset, so restart stays exact and EFID unit counts
//!   equal file sizes. Convert to LF-only text after reception if the
//!   consuming application needs it. Deviations from the T definition
//!   (control or non-ASCII octets) are logged once per file on receipt,
//!   not rejected; the sender does not check its T files.
//!
//! On receipt, the End of Record flag is ignored for U and T (only the
//! octets matter), and an F record that reaches the record length at a
//! subrecord boundary without the flag is accepted as complete (logged):
//! the fixed length makes the boundary unambiguous.
//!
//! # Counts and restart
//!
//! [`Counts`] are the EFID values: `records` is the exact record count for
//! F and V and zero for U and T (EFIDRCNT); `units` the Virtual File octets
//! (EFIDUCNT) — record data only, no V prefixes, before buffer compression.
//! Both always count the whole file, also after a restart (section 5.3.8).
//!
//! Restart positions (SFIDREST, SFPAACNT) count records for F and V and
//! 1024-octet blocks of the Virtual File for U and T (section 5.3.3).
//! [`RestartPoint`] ties a position to its local file offset and counts.
//!
//! # Layers
//!
//! [`RecordEncoder`] and [`RecordDecoder`] are pure state machines over
//! byte slices; [`FileSource`] (sender, over [`Read`]) and [`FileSink`]
//! (receiver, over [`Write`]) add the file I/O.

use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};

use bytes::Bytes;

use crate::deb::{BufferWriter, DebError, SubrecordReader};
use crate::value::{EndFileRefusal, EndSessionReason, RecordFormat, StartFileRefusal};

/// Largest SFIDLRECL (section 5.3.3).
pub const MAX_RECORD_LEN: u32 = 99_999;
/// Largest V record the local representation (2-octet prefix) can hold.
pub const MAX_LOCAL_VARIABLE_RECORD_LEN: u32 = u16::MAX as u32;
/// Restart unit of U and T files: 1K blocks (section 1.5.4).
pub const RESTART_BLOCK_LEN: u64 = 1024;

/// Read buffer of a [`FileSource`]: large enough to fill several maximum
/// size DATA buffers per `read` call.
const SOURCE_READ_BUF: usize = 256 * 1024;

/// A validated format and maximum record length (SFIDFMT + SFIDLRECL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    format: RecordFormat,
    max_record_len: u32,
}

impl Layout {
    /// Validate `max_record_len` (SFIDLRECL) for `format`.
    ///
    /// F needs 1..=99999; V 0..=65535 (the local prefix limit, see the
    /// module docs). For U and T the RFC requires `00000`; any other value
    /// is ignored (logged) as it is meaningless for a stream.
    pub fn new(format: RecordFormat, max_record_len: u32) -> Result<Self, RecordError> {
        let limit = match format {
            RecordFormat::Fixed => MAX_RECORD_LEN,
            RecordFormat::Variable => MAX_LOCAL_VARIABLE_RECORD_LEN,
            RecordFormat::Unstructured | RecordFormat::Text => {
                if max_record_len != 0 {
                    tracing::debug!(%format, max_record_len, "ignoring nonzero SFIDLRECL for a stream format");
                }
                return Ok(Self {
                    format,
                    max_record_len: 0,
                });
            }
        };
        if max_record_len > limit || (format == RecordFormat::Fixed && max_record_len == 0) {
            return Err(RecordError::UnsupportedRecordLength {
                format,
                max_record_len,
                limit,
            });
        }
        Ok(Self {
            format,
            max_record_len,
        })
    }

    /// `F` with records of `record_len` octets.
    pub fn fixed(record_len: u32) -> Result<Self, RecordError> {
        Self::new(RecordFormat::Fixed, record_len)
    }

    /// `V` with records of at most `max_record_len` octets.
    pub fn variable(max_record_len: u32) -> Result<Self, RecordError> {
        Self::new(RecordFormat::Variable, max_record_len)
    }

    /// `U`.
    pub fn unstructured() -> Self {
        Self {
            format: RecordFormat::Unstructured,
            max_record_len: 0,
        }
    }

    /// `T`.
    pub fn text() -> Self {
        Self {
            format: RecordFormat::Text,
            max_record_len: 0,
        }
    }

    /// The format.
    pub fn format(&self) -> RecordFormat {
        self.format
    }

    /// The value for SFIDLRECL: the record length (F), the maximum record
    /// length (V) or 0 (U, T).
    pub fn max_record_len(&self) -> u32 {
        self.max_record_len
    }

    /// Local file offset of restart `position` for F, U and T (V needs a
    /// scan of the file, see [`locate`]).
    fn direct_offset(&self, position: u64) -> Option<u64> {
        match self.format {
            RecordFormat::Fixed => position.checked_mul(u64::from(self.max_record_len)),
            RecordFormat::Unstructured | RecordFormat::Text => {
                position.checked_mul(RESTART_BLOCK_LEN)
            }
            RecordFormat::Variable => None,
        }
    }

    /// Counts of the Virtual File before restart `position` at local
    /// `offset` (F, U, T).
    fn direct_counts(&self, position: u64, offset: u64) -> Counts {
        Counts {
            records: if self.format.has_records() {
                position
            } else {
                0
            },
            units: offset,
        }
    }
}

/// EFID counts (section 5.3.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    /// EFIDRCNT: records for F and V, always 0 for U and T.
    pub records: u64,
    /// EFIDUCNT: Virtual File octets (record data, before compression).
    pub units: u64,
}

/// A restart position and where it is in the local file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RestartPoint {
    /// The SFIDREST / SFPAACNT value: records (F, V) or 1K blocks (U, T).
    pub position: u64,
    /// Local file offset where transmission resumes; a receiver truncates
    /// its partial file to this length before appending.
    pub local_offset: u64,
    /// Counts of the Virtual File before the position.
    pub counts: Counts,
}

impl RestartPoint {
    /// The beginning of the file.
    pub const START: RestartPoint = RestartPoint {
        position: 0,
        local_offset: 0,
        counts: Counts {
            records: 0,
            units: 0,
        },
    };
}

/// Size and counts of a local file, for filling in SFID and checking EFID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStats {
    /// Counts the complete transfer will report in EFID.
    pub counts: Counts,
    /// Local file size in octets.
    pub local_len: u64,
    /// Longest record (F, V), 0 for U and T.
    pub longest_record: u32,
}

impl FileStats {
    /// SFIDFSIZ: local size in 1K blocks, rounded up.
    pub fn size_1k_blocks(&self) -> u64 {
        self.local_len.div_ceil(RESTART_BLOCK_LEN)
    }
}

/// Problems mapping between a local file and the Virtual File.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing the local file failed.
    #[error("local file I/O failed: {0}; check the file system (space, permissions, media)")]
    Io(#[from] io::Error),
    /// A received DATA buffer is malformed.
    #[error(transparent)]
    Buffer(#[from] DebError),
    /// SFIDLRECL outside what the format (and local representation) allows.
    #[error(
        "record length {max_record_len} is not supported for format {format} (allowed up to {limit}{})",
        if *format == RecordFormat::Fixed { ", and at least 1" } else { "" }
    )]
    UnsupportedRecordLength {
        /// The format.
        format: RecordFormat,
        /// The offending SFIDLRECL.
        max_record_len: u32,
        /// The largest accepted value.
        limit: u32,
    },
    /// A record exceeds the maximum record length.
    #[error(
        "record {record} is longer than the maximum record length of {max} octets \
         (at least {length} octets); the file does not match its SFIDLRECL"
    )]
    RecordTooLong {
        /// 1-based number of the record in the Virtual File.
        record: u64,
        /// Octets seen so far in that record.
        length: u64,
        /// The maximum record length.
        max: u32,
    },
    /// An F record whose length differs from the fixed record length.
    #[error(
        "fixed-format record {record} has {length} octets instead of {expected}; \
         the partner sends a file that is not in F format"
    )]
    FixedRecordLength {
        /// 1-based number of the record.
        record: u64,
        /// Its length.
        length: u64,
        /// The fixed record length (SFIDLRECL).
        expected: u32,
    },
    /// The transfer ended inside an F record.
    #[error("transfer ended inside record {record} after {length} octets; the last record is incomplete")]
    IncompleteRecord {
        /// 1-based number of the record.
        record: u64,
        /// Octets received of it.
        length: u64,
    },
    /// The local file ends inside a record: an F file whose size is not a
    /// multiple of the record length, or a V file with a cut-off record.
    #[error(
        "local {format} file ends inside a record at offset {offset}; \
         {format} files must be stored as described in the oftp2::record docs"
    )]
    LocalFileTruncated {
        /// The format.
        format: RecordFormat,
        /// Local offset of the incomplete record.
        offset: u64,
    },
    /// A V record prefix in the local file is larger than the maximum.
    #[error("local V record at offset {offset} is {length} octets, above the maximum record length {max}")]
    LocalRecordTooLong {
        /// Local offset of the record's prefix.
        offset: u64,
        /// The record length in the prefix.
        length: u32,
        /// The maximum record length.
        max: u32,
    },
    /// A restart position behind the end of the local file.
    #[error("restart position {position} is beyond the end of the local file ({available} available); restart from 0")]
    RestartBeyondEnd {
        /// Requested position.
        position: u64,
        /// Positions the file holds.
        available: u64,
    },
}

impl RecordError {
    /// For errors that break the session rather than the file (a malformed
    /// DATA buffer), the ESID reason code to end the session with.
    pub fn esid_reason(&self) -> Option<EndSessionReason> {
        match self {
            RecordError::Buffer(err) => Some(err.esid_reason()),
            _ => None,
        }
    }

    /// The SFNA reason (section 5.3.5) when this error refuses a file at
    /// its start (record length checks, restart positioning).
    pub fn sfna_reason(&self) -> StartFileRefusal {
        StartFileRefusal::from_code(self.answer_code())
    }

    /// The EFNA reason (section 5.3.10) when a file fails with this error
    /// during the transfer.
    pub fn efna_reason(&self) -> EndFileRefusal {
        EndFileRefusal::from_code(self.answer_code())
    }

    /// SFNA and EFNA share the codes used here.
    fn answer_code(&self) -> u8 {
        match self {
            RecordError::Io(_)
            | RecordError::LocalFileTruncated { .. }
            | RecordError::LocalRecordTooLong { .. } => 12,
            RecordError::UnsupportedRecordLength { .. } | RecordError::RecordTooLong { .. } => 5,
            RecordError::RestartBeyondEnd { .. } => 12,
            RecordError::Buffer(_)
            | RecordError::FixedRecordLength { .. }
            | RecordError::IncompleteRecord { .. } => 99,
        }
    }
}

// ---------------------------------------------------------------------------
// Sender

#[derive(Debug, Clone, Copy)]
enum EncState {
    /// U, T: one record for the whole file.
    Stream { sent_any: bool },
    /// F: octets of the current record already written.
    Fixed { in_record: u32 },
    /// V: reading the local 2-octet prefix (`got` octets of it so far).
    VarPrefix { got: u8, high: u8 },
    /// V: octets of the current record still to write.
    VarBody { left: u32 },
}

/// Pure sender-side state machine: local-file octets in, DATA payloads out.
///
/// Feed the local file in order through [`encode`](Self::encode); take each
/// full payload with [`take_payload`](Self::take_payload). [`FileSource`]
/// drives it from a [`Read`].
#[derive(Debug)]
pub struct RecordEncoder {
    layout: Layout,
    writer: BufferWriter,
    state: EncState,
    counts: Counts,
    /// Local file offset of the next input octet (for error messages).
    offset: u64,
    finished: bool,
}

impl RecordEncoder {
    /// Encoder for a session with negotiated `buffer_size` (SSIDSDEB) and
    /// buffer `compression`, starting at the beginning of the file.
    pub fn new(layout: Layout, buffer_size: usize, compression: bool) -> Self {
        Self::resume(layout, buffer_size, compression, RestartPoint::START)
    }

    /// Encoder continuing at `at` (from [`locate`]); input starts at
    /// `at.local_offset` and the counts include what precedes it.
    pub fn resume(layout: Layout, buffer_size: usize, compression: bool, at: RestartPoint) -> Self {
        let state = match layout.format {
            RecordFormat::Fixed => EncState::Fixed { in_record: 0 },
            RecordFormat::Variable => EncState::VarPrefix { got: 0, high: 0 },
            RecordFormat::Unstructured | RecordFormat::Text => EncState::Stream { sent_any: false },
        };
        Self {
            layout,
            writer: BufferWriter::new(buffer_size, compression),
            state,
            counts: at.counts,
            offset: at.local_offset,
            finished: false,
        }
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Counts so far (complete: the EFID values once finished).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Whether the whole file is encoded (the last payload may still be
    /// waiting in [`take_payload`](Self::take_payload)).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether the current payload cannot take more data.
    pub fn is_full(&self) -> bool {
        self.writer.is_full()
    }

    /// Take the current payload, `None` if it holds nothing.
    pub fn take_payload(&mut self) -> Option<Bytes> {
        if self.writer.is_empty() {
            None
        } else {
            Some(self.writer.finish())
        }
    }

    /// Encode local-file octets `input` (the next ones in order) into the
    /// current payload; `eof` says `input` runs to the end of the file.
    ///
    /// Returns the number of octets consumed. When not everything was
    /// consumed — or `eof` was given but [`is_finished`](Self::is_finished)
    /// is still false — the payload is full: take it and call again with
    /// the rest.
    pub fn encode(&mut self, input: &[u8], eof: bool) -> Result<usize, RecordError> {
        if self.finished {
            return Ok(0);
        }
        let consumed = match self.state {
            EncState::Stream { sent_any } => self.encode_stream(input, eof, sent_any),
            EncState::Fixed { in_record } => self.encode_fixed(input, eof, in_record)?,
            EncState::VarPrefix { .. } | EncState::VarBody { .. } => {
                self.encode_variable(input, eof)?
            }
        };
        self.offset += consumed as u64;
        Ok(consumed)
    }

    fn encode_stream(&mut self, input: &[u8], eof: bool, sent_any: bool) -> usize {
        if input.is_empty() && !sent_any {
            // An empty (rest of the) file sends no DATA at all.
            self.finished = eof;
            return 0;
        }
        let w = self.writer.write(input, eof);
        self.counts.units += w.consumed as u64;
        self.state = EncState::Stream { sent_any: true };
        self.finished = eof && w.complete;
        w.consumed
    }

    fn encode_fixed(
        &mut self,
        input: &[u8],
        eof: bool,
        mut in_record: u32,
    ) -> Result<usize, RecordError> {
        let lrecl = self.layout.max_record_len;
        if eof && (u64::from(in_record) + input.len() as u64) % u64::from(lrecl) != 0 {
            let partial = (u64::from(in_record) + input.len() as u64) % u64::from(lrecl);
            return Err(RecordError::LocalFileTruncated {
                format: RecordFormat::Fixed,
                offset: self.offset + input.len() as u64 - partial,
            });
        }
        let mut pos = 0;
        while pos < input.len() {
            let want = (lrecl - in_record) as usize;
            let take = want.min(input.len() - pos);
            let eor = take == want;
            let w = self.writer.write(&input[pos..pos + take], eor);
            pos += w.consumed;
            in_record += w.consumed as u32;
            self.counts.units += w.consumed as u64;
            if !w.complete {
                break;
            }
            if eor {
                in_record = 0;
                self.counts.records += 1;
            }
        }
        self.state = EncState::Fixed { in_record };
        self.finished = eof && pos == input.len();
        Ok(pos)
    }

    fn encode_variable(&mut self, input: &[u8], eof: bool) -> Result<usize, RecordError> {
        let max = self.layout.max_record_len;
        let mut pos = 0;
        loop {
            match self.state {
                EncState::VarPrefix { got, high } => {
                    let Some(&octet) = input.get(pos) else {
                        break;
                    };
                    pos += 1;
                    if got == 0 {
                        self.state = EncState::VarPrefix {
                            got: 1,
                            high: octet,
                        };
                        continue;
                    }
                    let length = u32::from(u16::from_be_bytes([high, octet]));
                    if length > max {
                        return Err(RecordError::LocalRecordTooLong {
                            offset: self.offset + pos as u64 - 2,
                            length,
                            max,
                        });
                    }
                    self.state = EncState::VarBody { left: length };
                }
                EncState::VarBody { left } => {
                    let take = (left as usize).min(input.len() - pos);
                    let eor = take == left as usize;
                    if take == 0 && !eor {
                        break;
                    }
                    let w = self.writer.write(&input[pos..pos + take], eor);
                    pos += w.consumed;
                    self.counts.units += w.consumed as u64;
                    let left = left - w.consumed as u32;
                    if !w.complete {
                        self.state = EncState::VarBody { left };
                        // The payload is full, not the input short: the
                        // caller continues after taking the payload.
                        return Ok(pos);
                    }
                    if eor {
                        self.counts.records += 1;
                        self.state = EncState::VarPrefix { got: 0, high: 0 };
                    } else {
                        self.state = EncState::VarBody { left };
                    }
                }
                _ => break,
            }
        }
        if eof && pos == input.len() {
            if let EncState::VarPrefix { got: 0, .. } = self.state {
                self.finished = true;
            } else {
                return Err(RecordError::LocalFileTruncated {
                    format: RecordFormat::Variable,
                    offset: self.offset + pos as u64,
                });
            }
        }
        Ok(pos)
    }
}

/// Sender side over a local file: reads it and yields DATA payloads.
///
/// ```
/// # use oftp2::record::{FileSource, Layout};
/// let file: &[u8] = b"hello";
/// let mut source = FileSource::new(file, Layout::unstructured(), 4096, false);
/// let payload = source.next_payload().unwrap().unwrap();
/// assert_eq!(&payload[..], b"\x85hello"); // End of Record | 5 octets
/// assert!(source.next_payload().unwrap().is_none());
/// assert_eq!(source.counts().units, 5);
/// ```
#[derive(Debug)]
pub struct FileSource<R> {
    reader: R,
    encoder: RecordEncoder,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> FileSource<R> {
    /// Send `reader` from its current position as the start of the file.
    pub fn new(reader: R, layout: Layout, buffer_size: usize, compression: bool) -> Self {
        Self::with_encoder(reader, RecordEncoder::new(layout, buffer_size, compression))
    }

    fn with_encoder(reader: R, encoder: RecordEncoder) -> Self {
        Self {
            reader,
            encoder,
            buf: vec![0; SOURCE_READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next DATA payload (without the `'D'`), or `None` when the file
    /// is complete and [`counts`](Self::counts) hold the EFID values.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, RecordError> {
        loop {
            if self.encoder.is_finished() {
                return Ok(self.encoder.take_payload());
            }
            // Read ahead so that the end of file is usually known before
            // the last subrecord is written (it carries End of Record).
            if !self.eof && self.end - self.start <= self.encoder.writer.remaining() {
                self.refill()?;
                continue;
            }
            let n = self
                .encoder
                .encode(&self.buf[self.start..self.end], self.eof)?;
            self.start += n;
            if self.encoder.is_finished() {
                return Ok(self.encoder.take_payload());
            }
            if self.start < self.end || self.eof {
                // The payload is full.
                if let Some(payload) = self.encoder.take_payload() {
                    return Ok(Some(payload));
                }
            }
        }
    }

    fn refill(&mut self) -> Result<(), RecordError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Counts so far; the EFID values once [`next_payload`](Self::next_payload)
    /// returned `None`.
    pub fn counts(&self) -> Counts {
        self.encoder.counts()
    }

    /// Whether all payloads have been produced.
    pub fn is_finished(&self) -> bool {
        self.encoder.is_finished() && self.encoder.writer.is_empty()
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.encoder.layout()
    }

    /// The reader back.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: Read + Seek> FileSource<R> {
    /// Send `reader` (positioned anywhere) from restart `position` (the
    /// SFPAACNT the receiver answered). Returns the source and the restart
    /// point it seeked to.
    pub fn resume(
        mut reader: R,
        layout: Layout,
        buffer_size: usize,
        compression: bool,
        position: u64,
    ) -> Result<(Self, RestartPoint), RecordError> {
        let at = locate(layout, &mut reader, position)?;
        reader.seek(SeekFrom::Start(at.local_offset))?;
        let encoder = RecordEncoder::resume(layout, buffer_size, compression, at);
        Ok((Self::with_encoder(reader, encoder), at))
    }
}

/// Find restart `position` in a local file: its offset and the counts
/// before it. Fails with [`RecordError::RestartBeyondEnd`] if the file does
/// not reach that far. Leaves the reader at an unspecified position.
pub fn locate<R: Read + Seek + ?Sized>(
    layout: Layout,
    reader: &mut R,
    position: u64,
) -> Result<RestartPoint, RecordError> {
    let at = scan(layout, reader, position)?;
    if at.position < position {
        return Err(RecordError::RestartBeyondEnd {
            position,
            available: at.position,
        });
    }
    Ok(at)
}

/// Where a receiver can resume a partially received local file: the
/// largest restart point at most `max_position` (the sender's SFIDREST)
/// that the file holds completely. Answer its `position` in SFPA, truncate
/// the file to its `local_offset`, and continue with
/// [`RecordDecoder::resume`] / [`FileSink::resume`].
pub fn resume_point<R: Read + Seek + ?Sized>(
    layout: Layout,
    existing: &mut R,
    max_position: u64,
) -> Result<RestartPoint, RecordError> {
    scan(layout, existing, max_position)
}

/// Size and counts of a local file, validating its structure (F size a
/// multiple of the record length, V prefixes within the maximum). Reads
/// only V files; F, U and T are measured by seeking.
pub fn inspect<R: Read + Seek + ?Sized>(
    layout: Layout,
    reader: &mut R,
) -> Result<FileStats, RecordError> {
    let local_len = reader.seek(SeekFrom::End(0))?;
    let (counts, longest_record) = match layout.format {
        RecordFormat::Fixed => {
            let lrecl = u64::from(layout.max_record_len);
            if local_len % lrecl != 0 {
                return Err(RecordError::LocalFileTruncated {
                    format: RecordFormat::Fixed,
                    offset: local_len - local_len % lrecl,
                });
            }
            let records = local_len / lrecl;
            let longest = if records > 0 {
                layout.max_record_len
            } else {
                0
            };
            (
                Counts {
                    records,
                    units: local_len,
                },
                longest,
            )
        }
        RecordFormat::Unstructured | RecordFormat::Text => (
            Counts {
                records: 0,
                units: local_len,
            },
            0,
        ),
        RecordFormat::Variable => {
            reader.seek(SeekFrom::Start(0))?;
            let v = scan_variable(layout, reader, u64::MAX)?;
            if v.local_offset != local_len {
                return Err(RecordError::LocalFileTruncated {
                    format: RecordFormat::Variable,
                    offset: v.local_offset,
                });
            }
            (v.counts, v.longest)
        }
    };
    Ok(FileStats {
        counts,
        local_len,
        longest_record,
    })
}

/// The restart point at `max_position` or, if the file ends before it,
/// at the last complete record / block.
fn scan<R: Read + Seek + ?Sized>(
    layout: Layout,
    reader: &mut R,
    max_position: u64,
) -> Result<RestartPoint, RecordError> {
    if layout.format == RecordFormat::Variable {
        reader.seek(SeekFrom::Start(0))?;
        let v = scan_variable(layout, reader, max_position)?;
        return Ok(RestartPoint {
            position: v.counts.records,
            local_offset: v.local_offset,
            counts: v.counts,
        });
    }
    let len = reader.seek(SeekFrom::End(0))?;
    let unit = layout.direct_offset(1).unwrap_or(1).max(1);
    let position = (len / unit).min(max_position);
    let local_offset = position * unit;
    Ok(RestartPoint {
        position,
        local_offset,
        counts: layout.direct_counts(position, local_offset),
    })
}

struct VariableScan {
    counts: Counts,
    local_offset: u64,
    longest: u32,
}

/// Walk V records from the reader's position up to `max_records` complete
/// records, stopping early at a truncated one.
fn scan_variable<R: Read + Seek + ?Sized>(
    layout: Layout,
    reader: &mut R,
    max_records: u64,
) -> Result<VariableScan, RecordError> {
    let mut scan = VariableScan {
        counts: Counts::default(),
        local_offset: 0,
        longest: 0,
    };
    let file_len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let mut prefix = [0u8; 2];
    while scan.counts.records < max_records && scan.local_offset + 2 <= file_len {
        reader.seek(SeekFrom::Start(scan.local_offset))?;
        reader.read_exact(&mut prefix)?;
        let length = u32::from(u16::from_be_bytes(prefix));
        if length > layout.max_record_len {
            return Err(RecordError::LocalRecordTooLong {
                offset: scan.local_offset,
                length,
                max: layout.max_record_len,
            });
        }
        let next = scan.local_offset + 2 + u64::from(length);
        if next > file_len {
            break;
        }
        scan.local_offset = next;
        scan.counts.records += 1;
        scan.counts.units += u64::from(length);
        scan.longest = scan.longest.max(length);
    }
    Ok(scan)
}

// ---------------------------------------------------------------------------
// Receiver

/// Pure receiver-side state machine: DATA payloads in, local-file octets
/// out. [`FileSink`] drives it into a [`Write`].
#[derive(Debug)]
pub struct RecordDecoder {
    layout: Layout,
    counts: Counts,
    /// F: octets of the open record. V: unused (see `record`).
    in_record: u64,
    /// V: the open record, held until its End of Record to prefix it.
    record: Vec<u8>,
    warned: bool,
}

impl RecordDecoder {
    /// Decoder for a file received from the beginning.
    pub fn new(layout: Layout) -> Self {
        Self::resume(layout, RestartPoint::START)
    }

    /// Decoder continuing a restarted file at `at` (from [`resume_point`]);
    /// counts include what precedes it.
    pub fn resume(layout: Layout, at: RestartPoint) -> Self {
        Self {
            layout,
            counts: at.counts,
            in_record: 0,
            record: Vec::new(),
            warned: false,
        }
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Counts received so far (complete records only), to compare with
    /// EFID after [`finish`](Self::finish).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Restart position covered by what has been decoded: complete
    /// records (F, V) or whole 1K blocks (U, T).
    pub fn restart_position(&self) -> u64 {
        if self.layout.format.has_records() {
            self.counts.records
        } else {
            self.counts.units / RESTART_BLOCK_LEN
        }
    }

    /// Decode one DATA payload (without `'D'`), appending the local
    /// representation to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        match self.layout.format {
            RecordFormat::Unstructured | RecordFormat::Text => self.decode_stream(payload, out),
            RecordFormat::Fixed => self.decode_fixed(payload, out),
            RecordFormat::Variable => self.decode_variable(payload, out),
        }
    }

    fn decode_stream(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let before = out.len();
        out.reserve(payload.len());
        for sub in SubrecordReader::new(payload) {
            sub?.chunk.extend_into(out);
        }
        let new = &out[before..];
        if self.layout.format == RecordFormat::Text && !self.warned {
            if let Some(i) = new
                .iter()
                .position(|&b| b >= 0x80 || (b < 0x20 && b != b'\r' && b != b'\n'))
            {
                self.warned = true;
                tracing::warn!(
                    offset = self.counts.units + i as u64,
                    octet = new[i],
                    "T file contains an octet outside ASCII text with CR LF; storing it unchanged"
                );
            }
        }
        self.counts.units += new.len() as u64;
        Ok(())
    }

    fn decode_fixed(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let lrecl = u64::from(self.layout.max_record_len);
        out.reserve(payload.len());
        for sub in SubrecordReader::new(payload) {
            let sub = sub?;
            let n = sub.chunk.len() as u64;
            if n > 0 && self.in_record == lrecl {
                // Data beyond a full record without End of Record: the
                // boundary is unambiguous in F, so accept it as implicit.
                self.implicit_end();
            }
            if self.in_record + n > lrecl {
                return Err(RecordError::RecordTooLong {
                    record: self.counts.records + 1,
                    length: self.in_record + n,
                    max: self.layout.max_record_len,
                });
            }
            sub.chunk.extend_into(out);
            self.in_record += n;
            self.counts.units += n;
            if sub.end_of_record {
                if self.in_record != lrecl {
                    return Err(RecordError::FixedRecordLength {
                        record: self.counts.records + 1,
                        length: self.in_record,
                        expected: self.layout.max_record_len,
                    });
                }
                self.in_record = 0;
                self.counts.records += 1;
            }
        }
        Ok(())
    }

    fn implicit_end(&mut self) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                record = self.counts.records + 1,
                "partner omits End of Record flags in an F file; using the fixed record length"
            );
        }
        self.in_record = 0;
        self.counts.records += 1;
    }

    fn decode_variable(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let max = self.layout.max_record_len as usize;
        for sub in SubrecordReader::new(payload) {
            let sub = sub?;
            let n = sub.chunk.len();
            if self.record.len() + n > max {
                return Err(RecordError::RecordTooLong {
                    record: self.counts.records + 1,
                    length: (self.record.len() + n) as u64,
                    max: self.layout.max_record_len,
                });
            }
            sub.chunk.extend_into(&mut self.record);
            self.counts.units += n as u64;
            if sub.end_of_record {
                self.emit_variable(out);
            }
        }
        Ok(())
    }

    fn emit_variable(&mut self, out: &mut Vec<u8>) {
        // record.len() <= max_record_len <= 65535 (checked in Layout::new).
        let len = self.record.len() as u16;
        out.reserve(2 + self.record.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.record);
        self.record.clear();
        self.counts.records += 1;
    }

    /// End of the file (EFID received): complete the last record and return
    /// the final counts to compare with EFIDRCNT / EFIDUCNT.
    ///
    /// A last F record of full length or a last non-empty V record without
    /// End of Record is accepted (unambiguous; logged); a partial F record
    /// is an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<Counts, RecordError> {
        match self.layout.format {
            RecordFormat::Fixed if self.in_record == u64::from(self.layout.max_record_len) => {
                self.implicit_end();
            }
            RecordFormat::Fixed if self.in_record > 0 => {
                return Err(RecordError::IncompleteRecord {
                    record: self.counts.records + 1,
                    length: self.in_record,
                });
            }
            RecordFormat::Variable if !self.record.is_empty() => {
                tracing::warn!(
                    record = self.counts.records + 1,
                    "last V record arrived without End of Record; keeping it"
                );
                self.emit_variable(out);
            }
            _ => {}
        }
        Ok(self.counts)
    }
}

/// Receiver side over a local file: decodes DATA payloads and writes the
/// local representation to a [`Write`] (one `write_all` per payload).
#[derive(Debug)]
pub struct FileSink<W> {
    writer: W,
    decoder: RecordDecoder,
    staging: Vec<u8>,
}

impl<W: Write> FileSink<W> {
    /// Receive a file from the beginning into `writer`.
    pub fn new(writer: W, layout: Layout) -> Self {
        Self::resume(writer, layout, RestartPoint::START)
    }

    /// Continue a restarted file; `writer` must already be positioned at
    /// `at.local_offset` (truncate the file to that length, then append).
    pub fn resume(writer: W, layout: Layout, at: RestartPoint) -> Self {
        Self {
            writer,
            decoder: RecordDecoder::resume(layout, at),
            staging: Vec::new(),
        }
    }

    /// Decode one DATA payload (without `'D'`) and write it out.
    pub fn write_payload(&mut self, payload: &[u8]) -> Result<(), RecordError> {
        self.staging.clear();
        let result = self.decoder.decode(payload, &mut self.staging);
        // Whatever decoded before an error is still good file content.
        self.writer.write_all(&self.staging)?;
        result
    }

    /// Counts received so far.
    pub fn counts(&self) -> Counts {
        self.decoder.counts()
    }

    /// Restart position covered by what was written (see
    /// [`RecordDecoder::restart_position`]); durable only once flushed.
    pub fn restart_position(&self) -> u64 {
        self.decoder.restart_position()
    }

    /// End of file: complete the last record, flush, and return the counts
    /// to compare with EFID, plus the writer.
    pub fn finish(mut self) -> Result<(Counts, W), RecordError> {
        self.staging.clear();
        let counts = self.decoder.finish(&mut self.staging)?;
        self.writer.write_all(&self.staging)?;
        self.writer.flush()?;
        Ok((counts, self.writer))
    }

    /// The writer, e.g. to sync a file.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.writer
    }
}
