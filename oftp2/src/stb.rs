//! Stream Transmission Buffer framing (RFC 5024 section 8).
//!
//! Over a byte stream (TCP, TLS) every OFTP Exchange Buffer — a command or a
//! DATA buffer — is preceded by a 4-octet Stream Transmission Header (STH):
//!
//! ```text
//!  0       4       8                               31
//! +-------+-------+--------------------------------+
//! |Version| Flags | Length (STH + buffer, 24 bits) |
//! +-------+-------+--------------------------------+
//! ```
//!
//! Version is always 1, Flags are reserved (0) and Length counts the header
//! itself, so it ranges from 5 (a 1-octet command such as CD) to 100003 (a
//! 99999-octet buffer, the largest that SSID can negotiate).
//!
//! [`StbDecoder`] splits a receive buffer into Exchange Buffers without
//! copying; [`write_header`] and [`encode`] produce the framing on the send
//! side. Nothing here performs I/O.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::value::EndSessionReason;

/// Length of the Stream Transmission Header in octets.
pub const HEADER_LEN: usize = 4;
/// STH version this implementation speaks (section 8.2: `0001` binary).
pub const VERSION: u8 = 1;
/// Smallest valid STB: header plus a 1-octet Exchange Buffer (e.g. CD).
pub const MIN_STB_LEN: usize = HEADER_LEN + 1;
/// Largest Exchange Buffer that SSIDSDEB can negotiate (section 5.3.2).
pub const MAX_EXCHANGE_BUFFER_LEN: usize = 99_999;
/// Largest valid STB length (section 8.2).
pub const MAX_STB_LEN: usize = HEADER_LEN + MAX_EXCHANGE_BUFFER_LEN;

/// A Stream Transmission Header that cannot be accepted.
///
/// Every variant means the stream can no longer be framed reliably: the
/// session must end with ESID carrying [`StbError::esid_reason`] and close
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StbError {
    /// The STH version nibble is not 1. Usually the peer is not speaking
    /// OFTP over TCP at all (e.g. a TLS client on the plain port).
    #[error(
        "stream transmission header version {version} is not supported (only version 1 exists); \
         check that the partner uses plain OFTP on this port (TLS vs. TCP) and speaks RFC 5024 framing"
    )]
    BadVersion {
        /// The version nibble received.
        version: u8,
    },
    /// The reserved flags nibble is not zero and the decoder was told to
    /// reject that (see [`StbDecoder::set_reject_reserved_flags`]).
    #[error("stream transmission header has reserved flags {flags:#x} set; the partner's OFTP stack is not RFC 5024 compliant")]
    ReservedFlags {
        /// The flags nibble received.
        flags: u8,
    },
    /// The STB length is below 5 (no room for even a 1-octet command).
    #[error("stream transmission buffer length {length} is below the minimum of 5 octets")]
    TooShort {
        /// Length field received.
        length: usize,
    },
    /// The STB length exceeds 100003 octets.
    #[error(
        "stream transmission buffer length {length} exceeds the RFC 5024 maximum of 100003 octets"
    )]
    TooLong {
        /// Length field received.
        length: usize,
    },
    /// The Exchange Buffer is larger than the buffer size negotiated in SSID.
    #[error(
        "exchange buffer of {length} octets exceeds the negotiated buffer size of {negotiated} octets; \
         the partner ignores the SSIDSDEB negotiation"
    )]
    OverNegotiated {
        /// Exchange Buffer length (STB length minus the header).
        length: usize,
        /// The negotiated maximum Exchange Buffer length.
        negotiated: usize,
    },
    /// A previous call already failed; the stream is out of sync.
    #[error("stream transmission framing was already lost after an earlier error")]
    Desynchronised,
}

impl StbError {
    /// The ESID reason code (section 5.3.11) to end the session with.
    ///
    /// Length problems map to `07` (Exchange Buffer size error); a wrong
    /// version or reserved flags to `02` (protocol violation).
    pub fn esid_reason(&self) -> EndSessionReason {
        match self {
            StbError::BadVersion { .. }
            | StbError::ReservedFlags { .. }
            | StbError::Desynchronised => EndSessionReason::ProtocolViolation,
            StbError::TooShort { .. }
            | StbError::TooLong { .. }
            | StbError::OverNegotiated { .. } => EndSessionReason::ExchangeBufferSizeError,
        }
    }
}

/// Incremental splitter of a received byte stream into Exchange Buffers.
///
/// Feed it the connection's receive buffer; each successful call to
/// [`decode`](Self::decode) removes one complete STB from the front and
/// returns its Exchange Buffer as a zero-copy [`Bytes`] (the STH is dropped).
/// Partial headers and partial bodies are left in the buffer until more
/// bytes arrive.
///
/// Header validation happens as soon as the 4 header octets are present, so
/// garbage is rejected without waiting for (possibly huge) bodies.
#[derive(Debug, Clone)]
pub struct StbDecoder {
    max_buffer: usize,
    reject_reserved_flags: bool,
    reserved_flags_seen: bool,
    failed: bool,
}

impl Default for StbDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StbDecoder {
    /// A decoder accepting any Exchange Buffer up to 99999 octets — the
    /// right limit before SSID negotiation completes.
    pub fn new() -> Self {
        Self {
            max_buffer: MAX_EXCHANGE_BUFFER_LEN,
            reject_reserved_flags: false,
            reserved_flags_seen: false,
            failed: false,
        }
    }

    /// Limit incoming Exchange Buffers to the negotiated SSIDSDEB size.
    ///
    /// `max_exchange_buffer` counts the whole Exchange Buffer (command
    /// octet included, STH excluded). Values above 99999 are clamped.
    pub fn set_max_buffer(&mut self, max_exchange_buffer: usize) {
        self.max_buffer = max_exchange_buffer.min(MAX_EXCHANGE_BUFFER_LEN);
    }

    /// The current Exchange Buffer limit.
    pub fn max_buffer(&self) -> usize {
        self.max_buffer
    }

    /// Whether a nonzero reserved flags nibble is an error.
    ///
    /// Default `false`: following the robustness principle that section 8.2
    /// itself calls for, nonzero flags are accepted (the frame is still
    /// unambiguous), logged once, and reported by
    /// [`reserved_flags_seen`](Self::reserved_flags_seen).
    pub fn set_reject_reserved_flags(&mut self, reject: bool) {
        self.reject_reserved_flags = reject;
    }

    /// Whether any received header had nonzero reserved flags.
    pub fn reserved_flags_seen(&self) -> bool {
        self.reserved_flags_seen
    }

    /// Split the next complete Exchange Buffer off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a complete STB; call
    /// again after appending more received bytes. After an error the
    /// decoder stays failed (the stream position is unknown).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, StbError> {
        if self.failed {
            return Err(StbError::Desynchronised);
        }
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let length = match self.check_header([header[0], header[1], header[2], header[3]]) {
            Ok(length) => length,
            Err(err) => {
                self.failed = true;
                return Err(err);
            }
        };
        if buf.len() < length {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        Ok(Some(buf.split_to(length - HEADER_LEN).freeze()))
    }

    /// How many more octets `buf` needs before [`decode`](Self::decode) can
    /// return a buffer (0 if it can already; at least 1 while the header is
    /// incomplete). Useful to size reads. Does not validate.
    pub fn bytes_needed(&self, buf: &[u8]) -> usize {
        match buf.get(..HEADER_LEN) {
            None => HEADER_LEN - buf.len(),
            Some(h) => {
                let length = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
                length.max(MIN_STB_LEN).saturating_sub(buf.len())
            }
        }
    }

    /// Validate a header and return the STB length it announces.
    fn check_header(&mut self, h: [u8; 4]) -> Result<usize, StbError> {
        let version = h[0] >> 4;
        let flags = h[0] & 0x0f;
        if version != VERSION {
            return Err(StbError::BadVersion { version });
        }
        if flags != 0 {
            if self.reject_reserved_flags {
                return Err(StbError::ReservedFlags { flags });
            }
            if !self.reserved_flags_seen {
                tracing::warn!(
                    flags,
                    "partner sets reserved STH flags; accepting (RFC 5024 section 8.2 robustness)"
                );
                self.reserved_flags_seen = true;
            }
        }
        let length = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
        if length < MIN_STB_LEN {
            return Err(StbError::TooShort { length });
        }
        if length > MAX_STB_LEN {
            return Err(StbError::TooLong { length });
        }
        if length - HEADER_LEN > self.max_buffer {
            return Err(StbError::OverNegotiated {
                length: length - HEADER_LEN,
                negotiated: self.max_buffer,
            });
        }
        Ok(length)
    }
}

/// The 4-octet STH for an Exchange Buffer of `exchange_buffer_len` octets.
///
/// Fails (with the error a receiver would report) if the length is 0 or
/// above 99999, because such an STB must never be sent.
pub fn header(exchange_buffer_len: usize) -> Result<[u8; HEADER_LEN], StbError> {
    let length = exchange_buffer_len + HEADER_LEN;
    if exchange_buffer_len == 0 {
        return Err(StbError::TooShort { length });
    }
    if exchange_buffer_len > MAX_EXCHANGE_BUFFER_LEN {
        return Err(StbError::TooLong { length });
    }
    // length <= 100003 < 2^24: three octets hold it exactly.
    Ok([
        VERSION << 4,
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
    ])
}

/// Append the STH for an Exchange Buffer of `exchange_buffer_len` octets to
/// `out`. The caller appends the buffer itself next; this lets a command be
/// serialised straight behind its header without an intermediate copy.
pub fn write_header(exchange_buffer_len: usize, out: &mut BytesMut) -> Result<(), StbError> {
    out.put_slice(&header(exchange_buffer_len)?);
    Ok(())
}

/// Append a complete STB (header and `exchange_buffer`) to `out`.
pub fn encode(exchange_buffer: &[u8], out: &mut BytesMut) -> Result<(), StbError> {
    let h = header(exchange_buffer.len())?;
    out.reserve(HEADER_LEN + exchange_buffer.len());
    out.put_slice(&h);
    out.put_slice(exchange_buffer);
    Ok(())
}
