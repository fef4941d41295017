//! Field-level reading and writing: the RFC 5024 section 5.3 formats
//! `X(n)`, `9(n)`, `U(n)`, `T(n)` and the Y/N, fixed-character fields.

use bytes::{BufMut, Bytes, BytesMut};

use crate::value::{DatasetName, OdetteId, Password, ProtocolLevel, UserData, ValueError};
use crate::value::{Date, Time, Timestamp};

use super::error::{DecodeError, Deviation, DeviationKind, EncodeError, FieldProblem};
use super::CommandId;
use crate::value::text::{laxness, Laxness};

/// Where deviations found while decoding go.
pub(crate) enum Sink<'a> {
    /// Dropped.
    Discard,
    /// Collected for the caller.
    Collect(&'a mut Vec<Deviation>),
    /// The first one is kept; the caller fails the decode with it.
    Reject(Option<Deviation>),
}

impl Sink<'_> {
    pub(crate) fn report(&mut self, command: CommandId, field: &'static str, kind: DeviationKind) {
        let d = Deviation {
            command,
            field,
            kind,
        };
        match self {
            Sink::Discard => {}
            Sink::Collect(v) => v.push(d),
            Sink::Reject(first) => {
                if first.is_none() {
                    *first = Some(d);
                }
            }
        }
    }
}

/// Octets that may trail a command harmlessly: padding and line ends.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\r' | b'\n' | 0)
}

/// Sequential reader over one exchange buffer.
pub(crate) struct Reader<'s, 'v> {
    data: Bytes,
    pos: usize,
    pub(crate) cmd: CommandId,
    pub(crate) sink: &'s mut Sink<'v>,
}

impl<'s, 'v> Reader<'s, 'v> {
    /// A reader positioned after the command octet.
    pub(crate) fn new(data: Bytes, cmd: CommandId, sink: &'s mut Sink<'v>) -> Self {
        Reader {
            data,
            pos: 1,
            cmd,
            sink,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn deviation(&mut self, field: &'static str, kind: DeviationKind) {
        self.sink.report(self.cmd, field, kind);
    }

    pub(crate) fn invalid(&self, field: &'static str, problem: FieldProblem) -> DecodeError {
        DecodeError::InvalidField {
            command: self.cmd,
            field,
            problem,
        }
    }

    /// For fixed-layout commands whose tail is alphanumeric: a buffer that
    /// stops after `paddable_from` octets but short of `full` is padded
    /// with spaces (the sender trimmed its trailing padding).
    pub(crate) fn pad_short(&mut self, full: usize, paddable_from: usize, field: &'static str) {
        let len = self.data.len();
        if len < full && len >= paddable_from {
            let mut v = BytesMut::with_capacity(full);
            v.extend_from_slice(&self.data);
            v.resize(full, b' ');
            self.data = v.freeze();
            self.deviation(
                field,
                DeviationKind::MissingPadding {
                    missing: full - len,
                },
            );
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos + n;
        if end > self.data.len() {
            return Err(DecodeError::Truncated {
                command: self.cmd,
                needed: end,
                actual: self.data.len(),
            });
        }
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A binary field, sliced out of the frame without copying.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n)?;
        Ok(self.data.slice(start..start + n))
    }

    /// One octet.
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// `U(2)`: an unsigned big-endian 16-bit number.
    pub(crate) fn u16_be(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// `9(n)`: zero-padded decimal. Leading spaces (or an all-blank field,
    /// taken as zero) are accepted as a deviation.
    pub(crate) fn numeric(&mut self, field: &'static str, n: usize) -> Result<u64, DecodeError> {
        let cmd = self.cmd;
        let raw = self.take(n)?;
        let digits_from = raw.iter().position(|&b| b != b' ').unwrap_or(n);
        let digits = &raw[digits_from..];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(DecodeError::InvalidField {
                command: cmd,
                field,
                problem: FieldProblem::NotNumeric {
                    found: String::from_utf8_lossy(raw).into_owned(),
                },
            });
        }
        let value = digits
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        if digits_from > 0 {
            self.deviation(field, DeviationKind::SpacePaddedNumber);
        }
        Ok(value)
    }

    /// `X(n)` content: printable ASCII, right-trimmed. Deviations from the
    /// strict character rules are reported and the octets kept.
    fn alnum(
        &mut self,
        field: &'static str,
        n: usize,
        embedded_space_ok: bool,
        required: bool,
    ) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let cmd = self.cmd;
        let raw = self.take(n)?;
        if let Some(pos) = raw.iter().position(|&b| !(0x20..0x7f).contains(&b)) {
            return Err(DecodeError::InvalidField {
                command: cmd,
                field,
                problem: FieldProblem::NotPrintable {
                    byte: raw[pos],
                    pos,
                },
            });
        }
        let end = raw.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        if end == 0 && required {
            return Err(DecodeError::InvalidField {
                command: cmd,
                field,
                problem: FieldProblem::Blank,
            });
        }
        let lax = laxness(&raw[..end], embedded_space_ok);
        if let Some(l) = lax {
            self.deviation(
                field,
                match l {
                    Laxness::Lowercase => DeviationKind::Lowercase,
                    Laxness::OutsideAppendixB => DeviationKind::OutsideAppendixB,
                    Laxness::EmbeddedSpace => DeviationKind::EmbeddedSpace,
                },
            );
        }
        Ok(self.data.slice(start..start + end))
    }

    pub(crate) fn odette_id(&mut self, field: &'static str) -> Result<OdetteId, DecodeError> {
        let v = self.alnum(field, OdetteId::WIDTH, true, true)?;
        Ok(OdetteId::from_wire(&v))
    }

    pub(crate) fn dataset_name(&mut self, field: &'static str) -> Result<DatasetName, DecodeError> {
        let v = self.alnum(field, DatasetName::WIDTH, false, true)?;
        Ok(DatasetName::from_wire(&v))
    }

    pub(crate) fn user_data(&mut self, field: &'static str) -> Result<UserData, DecodeError> {
        let v = self.alnum(field, UserData::WIDTH, false, false)?;
        Ok(UserData::from_wire(&v))
    }

    pub(crate) fn password(&mut self, field: &'static str) -> Result<Password, DecodeError> {
        let v = self.alnum(field, Password::WIDTH, false, false)?;
        Ok(Password::from_wire(&v))
    }

    /// A reserved field: its content is ignored, but reported if not blank.
    pub(crate) fn reserved(&mut self, field: &'static str, n: usize) -> Result<(), DecodeError> {
        let blank = self.take(n)?.iter().all(|&b| b == b' ');
        if !blank {
            self.deviation(field, DeviationKind::ReservedNotBlank);
        }
        Ok(())
    }

    /// A `Y`/`N` indicator (lowercase accepted as a deviation).
    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let b = self.byte()?;
        match b {
            b'Y' => Ok(true),
            b'N' => Ok(false),
            b'y' | b'n' => {
                self.deviation(field, DeviationKind::Lowercase);
                Ok(b == b'y')
            }
            _ => Err(self.invalid(
                field,
                FieldProblem::Unexpected {
                    found: b,
                    expected: "'Y' or 'N'",
                },
            )),
        }
    }

    /// A single upper-case letter from a fixed set, parsed by `parse`
    /// (lowercase accepted as a deviation).
    pub(crate) fn letter<T>(
        &mut self,
        field: &'static str,
        expected: &'static str,
        parse: fn(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let b = self.byte()?;
        if let Some(v) = parse(b) {
            return Ok(v);
        }
        if b.is_ascii_lowercase() {
            if let Some(v) = parse(b.to_ascii_uppercase()) {
                self.deviation(field, DeviationKind::Lowercase);
                return Ok(v);
            }
        }
        Err(self.invalid(field, FieldProblem::Unexpected { found: b, expected }))
    }

    /// `T(n)`: UTF-8 text; invalid sequences are replaced (the texts are
    /// advisory) and reported.
    pub(crate) fn text(&mut self, field: &'static str, n: usize) -> Result<String, DecodeError> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => {
                let s = String::from_utf8_lossy(raw).into_owned();
                self.deviation(field, DeviationKind::InvalidUtf8);
                Ok(s)
            }
        }
    }

    /// A `9(3)` length followed by that many octets of UTF-8 text.
    pub(crate) fn text_with_len(
        &mut self,
        len_field: &'static str,
        field: &'static str,
    ) -> Result<String, DecodeError> {
        let n = self.numeric(len_field, 3)? as usize;
        self.text(field, n)
    }

    /// A `U(2)` length followed by that many binary octets.
    pub(crate) fn binary_with_len(&mut self) -> Result<Bytes, DecodeError> {
        let n = usize::from(self.u16_be()?);
        self.bytes(n)
    }

    /// Date stamp: `CCYYMMDD` (`wide`) or `YYMMDD`.
    pub(crate) fn date(&mut self, field: &'static str, wide: bool) -> Result<Date, DecodeError> {
        let r = if wide {
            let v = self.numeric(field, 8)?;
            Date::from_ccyymmdd(v as u32)
        } else {
            let v = self.numeric(field, 6)?;
            Date::from_yymmdd(v as u32)
        };
        r.map_err(|e| self.invalid(field, FieldProblem::Value(e)))
    }

    /// Time stamp: `HHMMSScccc` (`wide`) or `HHMMSS`.
    pub(crate) fn time(&mut self, field: &'static str, wide: bool) -> Result<Time, DecodeError> {
        let r = if wide {
            let v = self.numeric(field, 10)?;
            Time::from_hhmmsscccc(v)
        } else {
            let v = self.numeric(field, 6)?;
            Time::from_hhmmss(v as u32)
        };
        r.map_err(|e| self.invalid(field, FieldProblem::Value(e)))
    }

    /// Checks the carriage return (0x0D or 0x8D) that ends SSRM, SSID and
    /// ESID. A line feed, CR LF, or nothing at all are accepted as
    /// deviations; anything else means the command is too long.
    pub(crate) fn terminator(&mut self, field: &'static str) -> Result<(), DecodeError> {
        let rest = &self.data[self.pos..];
        let (kind, used) = match rest {
            [] => (Some(DeviationKind::MissingTerminator), 0),
            [b'\r', b'\n', ..] => (Some(DeviationKind::CrLfTerminator), 2),
            [b'\r' | 0x8d, ..] => (None, 1),
            [b'\n', ..] => (Some(DeviationKind::LineFeedTerminator), 1),
            _ => {
                return Err(DecodeError::TooLong {
                    command: self.cmd,
                    expected: self.pos + 1,
                    actual: self.data.len(),
                })
            }
        };
        self.pos += used;
        if let Some(kind) = kind {
            self.deviation(field, kind);
        }
        Ok(())
    }

    /// Removes the terminator from the end of a buffer that is shorter than
    /// its command (so [`Reader::pad_short`] can restore trailing padding).
    pub(crate) fn strip_terminator(&mut self, field: &'static str) {
        let d = &self.data;
        let (kind, cut) = match d.len() {
            n if n >= 2 && d[n - 2] == b'\r' && d[n - 1] == b'\n' => {
                (Some(DeviationKind::CrLfTerminator), 2)
            }
            n if n >= 2 && (d[n - 1] == b'\r' || d[n - 1] == 0x8d) => (None, 1),
            n if n >= 2 && d[n - 1] == b'\n' => (Some(DeviationKind::LineFeedTerminator), 1),
            _ => (Some(DeviationKind::MissingTerminator), 0),
        };
        self.data.truncate(self.data.len() - cut);
        if let Some(kind) = kind {
            self.deviation(field, kind);
        }
    }

    /// The octets not read yet.
    pub(crate) fn rest(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Ends decoding: anything left must be blank (reported) or it is an
    /// error.
    pub(crate) fn finish(mut self) -> Result<(), DecodeError> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Ok(());
        }
        if rest.iter().all(|&b| is_blank(b)) {
            let count = rest.len();
            self.deviation("(end of command)", DeviationKind::TrailingBlanks { count });
            return Ok(());
        }
        Err(DecodeError::TooLong {
            command: self.cmd,
            expected: self.pos,
            actual: self.data.len(),
        })
    }
}

/// Appends fields to an exchange buffer, checking that values fit.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut BytesMut,
    pub(crate) cmd: CommandId,
    pub(crate) level: ProtocolLevel,
}

/// 10^n - 1, the largest value of a `9(n)` field.
pub(crate) const fn max_digits(n: u32) -> u64 {
    10u64.pow(n) - 1
}

impl Writer<'_> {
    pub(crate) fn byte(&mut self, b: u8) {
        self.out.put_u8(b);
    }

    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    pub(crate) fn spaces(&mut self, n: usize) {
        self.out.put_bytes(b' ', n);
    }

    pub(crate) fn flag(&mut self, v: bool) {
        self.out.put_u8(if v { b'Y' } else { b'N' });
    }

    /// `9(n)`: right-justified, zero-padded.
    pub(crate) fn numeric(
        &mut self,
        field: &'static str,
        n: u32,
        v: u64,
    ) -> Result<(), EncodeError> {
        let max = max_digits(n);
        if v > max {
            return Err(EncodeError::OutOfRange {
                command: self.cmd,
                field,
                value: v,
                max,
                level: self.level,
            });
        }
        let mut buf = [b'0'; 20];
        let mut x = v;
        let n = n as usize;
        for slot in buf[..n].iter_mut().rev() {
            *slot = b'0' + (x % 10) as u8;
            x /= 10;
        }
        self.out.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// A `9(3)` length and UTF-8 text of at most 999 octets.
    pub(crate) fn text_with_len(
        &mut self,
        field: &'static str,
        s: &str,
    ) -> Result<(), EncodeError> {
        if s.len() > 999 {
            return Err(EncodeError::TooLong {
                command: self.cmd,
                field,
                len: s.len(),
                max: 999,
            });
        }
        self.numeric(field, 3, s.len() as u64)?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// A `U(2)` length and binary content of at most 65535 octets.
    pub(crate) fn binary_with_len(
        &mut self,
        field: &'static str,
        b: &[u8],
    ) -> Result<(), EncodeError> {
        let len = u16::try_from(b.len()).map_err(|_| EncodeError::TooLong {
            command: self.cmd,
            field,
            len: b.len(),
            max: usize::from(u16::MAX),
        })?;
        self.out.put_u16(len);
        self.out.extend_from_slice(b);
        Ok(())
    }

    pub(crate) fn not_representable(&self, field: &'static str, why: &'static str) -> EncodeError {
        EncodeError::NotRepresentable {
            command: self.cmd,
            field,
            level: self.level,
            why,
        }
    }

    /// Date and time stamp, wide (`CCYYMMDD` + `HHMMSScccc`) or OFTP 1.3
    /// (`YYMMDD` + `HHMMSS`).
    pub(crate) fn timestamp(
        &mut self,
        date_field: &'static str,
        time_field: &'static str,
        ts: &Timestamp,
        wide: bool,
    ) -> Result<(), EncodeError> {
        if wide {
            self.numeric(date_field, 8, ts.date.ccyymmdd().into())?;
            self.numeric(time_field, 10, ts.time.hhmmsscccc())
        } else {
            let d = ts.date.yymmdd().ok_or_else(|| {
                self.not_representable(date_field, "YYMMDD only covers the years 1970 to 2069")
            })?;
            let t = ts.time.hhmmss().ok_or_else(|| {
                self.not_representable(time_field, "HHMMSS has no counter; it must be 0")
            })?;
            self.numeric(date_field, 6, d.into())?;
            self.numeric(time_field, 6, t.into())
        }
    }
}

/// Maps a [`ValueError`] on a field to a decode error.
pub(crate) fn value_err(cmd: CommandId, field: &'static str, e: ValueError) -> DecodeError {
    DecodeError::InvalidField {
        command: cmd,
        field,
        problem: FieldProblem::Value(e),
    }
}
