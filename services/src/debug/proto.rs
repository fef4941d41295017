//! The debug wire protocol between daemons and `os4xdebugd`, sans-IO.
//!
//! A TCP stream carries frames, each a 4-byte big-endian length `N`
//! (1..=[`MAX_FRAME`]) followed by `N` bytes of one JSON object
//! ([`Frame`]). The first frame is a [`Frame::Hello`]; records and drop
//! reports follow. The stream is one-way: `os4xdebugd` never answers, so a
//! sender can never wait on it.

use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Protocol version in [`Frame::Hello`].
pub const VERSION: u32 = 1;
/// Largest frame payload accepted. A record whose encoding is larger is
/// shortened by the sender ([`Record::truncate_to_fit`]).
pub const MAX_FRAME: usize = 64 * 1024;

/// One frame's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// Who is sending; must come first.
    Hello {
        version: u32,
        program: String,
        pid: u32,
        server_id: u32,
    },
    /// One debug record.
    Record(Record),
    /// Records this process dropped so far (cumulative since it started):
    /// sent after a reconnect and whenever the count changed.
    Dropped { count: u64 },
}

/// One tracing event as a daemon saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Microseconds since the Unix epoch.
    pub ts_us: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// tracing target (usually the module path).
    pub target: String,
    pub message: String,
    /// Structured fields of the event, formatted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Enclosing spans, outermost first: `name{k=v k=v}:name{..}`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spans: String,
}

impl Record {
    /// Shortens message and fields so the encoded frame fits
    /// [`MAX_FRAME`]: a huge event loses its tail, not the whole record.
    pub fn truncate_to_fit(&mut self) {
        const KEEP: usize = MAX_FRAME / 4;
        let cut = |s: &mut String| {
            if s.len() > KEEP {
                let mut end = KEEP;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
                s.push_str("…[truncated]");
            }
        };
        cut(&mut self.message);
        cut(&mut self.spans);
        // Many small fields can still add up; keep the first ones that fit.
        let mut budget = MAX_FRAME / 2;
        self.fields.retain(|k, v| {
            cut(v);
            let cost = k.len() + v.len() + 8;
            if cost <= budget {
                budget -= cost;
                true
            } else {
                false
            }
        });
    }
}

/// Encodes `frame` with its length prefix. `None` if it exceeds
/// [`MAX_FRAME`] (call [`Record::truncate_to_fit`] first).
pub fn encode(frame: &Frame) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(frame).ok()?;
    if json.is_empty() || json.len() > MAX_FRAME {
        return None;
    }
    let len = u32::try_from(json.len()).ok()?;
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Some(out)
}

/// Why a stream is not valid debug protocol. The receiver closes it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes announced; the limit is {MAX_FRAME}")]
    TooLarge(u64),
    #[error("empty frame")]
    Empty,
    #[error("frame is not a valid debug frame: {0}")]
    BadJson(String),
}

/// Splits a byte stream into frames without ever buffering more than one
/// frame (plus what one read returned).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The buffer to read into. Reserve is bounded by the announced (and
    /// already validated) frame length.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Whether a frame is partly received (for slow-client timeouts).
    pub fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete frame's raw payload, if one is buffered.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes);
        let len = usize::try_from(len).map_err(|_| FrameError::TooLarge(u64::from(len)))?;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len as u64));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The next complete frame, decoded.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.next_payload()? {
            None => Ok(None),
            Some(payload) => serde_json::from_slice(&payload)
                .map(Some)
                .map_err(|e| FrameError::BadJson(e.to_string())),
        }
    }
}

/// `ts_us` as RFC 3339 UTC with microseconds, e.g.
/// `2026-11-24T19:23:49.123456Z`.
pub fn format_timestamp(ts_us: i64) -> String {
    let secs = ts_us.div_euclid(1_000_000);
    let micros = ts_us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(msg: &str) -> Frame {
        Frame::Record(Record {
            ts_us: 1,
            level: "DEBUG".into(),
            target: "t".into(),
            message: msg.into(),
            fields: BTreeMap::from([("partner".into(), "O0013".into())]),
            spans: String::new(),
        })
    }

    #[test]
    fn frames_roundtrip_across_arbitrary_splits() {
        let frames = [
            Frame::Hello {
                version: VERSION,
                program: "os4xsqd".into(),
                pid: 7,
                server_id: 0,
            },
            record("hello"),
            Frame::Dropped { count: 3 },
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|f| encode(f).unwrap()).collect();
        for chunk in [1, 3, 7, wire.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                d.buffer().extend_from_slice(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames);
            assert!(!d.is_mid_frame());
        }
    }

    #[test]
    fn oversized_empty_and_garbage_frames_are_errors() {
        let mut d = Decoder::new();
        d.buffer().extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLarge(u64::from(u32::MAX)))
        );
        let mut d = Decoder::new();
        d.buffer().extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
        let mut d = Decoder::new();
        d.buffer()
            .extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c']);
        assert!(matches!(d.next_frame(), Err(FrameError::BadJson(_))));
    }

    #[test]
    fn huge_records_are_truncated_to_fit() {
        let Frame::Record(mut r) = record(&"x".repeat(MAX_FRAME * 2)) else {
            unreachable!()
        };
        for i in 0..10_000 {
            r.fields.insert(format!("f{i}"), "é".repeat(100));
        }
        assert!(encode(&Frame::Record(r.clone())).is_none());
        r.truncate_to_fit();
        let wire = encode(&Frame::Record(r)).unwrap();
        assert!(wire.len() <= MAX_FRAME + 4);
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_timestamp(1_795_547_464_000_001),
            "2026-11-24T19:11:04.000001Z"
        );
        for days in [-1000, 0, 59, 60, 365, 11_016, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
