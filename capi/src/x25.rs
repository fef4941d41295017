//! ISO 8208 (X.25 packet layer) for OFTP over ISDN: RFC 5024 Appendix D.
//!
//! # Who does what
//!
//! With CAPI the controller runs the B-channel protocols the application
//! chooses in the B protocol struct: B2 ISO 7776 (X.75 SLP) and B3 ISO 8208
//! (X.25 DTE-DTE, B3 protocol 2) — the controller sends and acknowledges
//! LAPB frames and X.25 packets, keeps the windows and sequence numbers,
//! and answers RR/RNR/REJ. What remains for the application, and lives
//! here:
//!
//! * **B3 configuration** (ISO 8208 struct of the B protocol): Appendix D.1
//!   asks for first LCN 1, one LCN (`LTC = HTC = 1`, no one-way channels),
//!   level-3 window 7, modulo 8; level-2 window 7
//!   ([`crate::message::Iso8208Config::odette`],
//!   [`crate::message::X75Config::odette`]).
//! * **The X.25 call** (NCPI of `CONNECT_B3_REQ`/`_IND`/`_RESP`/`_ACTIVE_IND`):
//!   NCPI contents are the packet's octets after the packet type identifier
//!   — address block, facilities, call user data ([`X25Call`]). Appendix
//!   D.1: window and packet size negotiation "shall be supported by
//!   everybody" and call user data "should not be required" (Appendix C.1:
//!   "user data shall not be used"). The caller therefore requests packet
//!   size 128 and window 7 explicitly (D.4.5: a window mismatch hangs
//!   silently, so the values are stated rather than left to defaults) and
//!   sends no call user data; the called side answers with the negotiated
//!   values ([`negotiate`]).
//! * **Data units**: over X.25 an OFTP exchange buffer is one network
//!   service data unit — a *complete packet sequence*: full packets with
//!   the M-bit set, the last one with M clear — and no Stream
//!   Transmission Header is used (RFC 5024 section 8.1: "The Stream
//!   Transmission Buffer is not used when using ODETTE-FTP over an X.25
//!   network"). The CAPI `DATA_B3` flags carry the M-bit (bit 1), Q-bit
//!   (bit 0) and D-bit (bit 2). Appendix D.4.3 excludes Q-bit and D-bit:
//!   they are never set, and a received Q-bit packet (not OFTP data) is
//!   dropped with a warning.
//!
//! So that the `oftp2` driver runs unchanged, exactly as over TCP, the
//! byte stream the application sees keeps STB framing: [`Segmenter`] takes
//! the driver's STH-framed exchange buffers apart into packet sequences of
//! the negotiated packet size, and [`Reassembler`] puts a received packet
//! sequence back together and prefixes the STH the driver expects. On the
//! ISDN line the partner sees plain Appendix D OFTP-over-X.25.
//!
//! The idle timer of Appendix D.1 ("release the B channel if no X.25
//! packets have been transmitted for a longer time") is the OFTP session
//! timeout here: an idle session is ended by the driver, which clears the
//! call.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

/// Appendix D.1 packet size.
pub const ODETTE_PACKET_SIZE: u16 = 128;
/// Appendix D.1 level-3 (and level-2) window size.
pub const ODETTE_WINDOW: u8 = 7;
/// Appendix D.1: first LCN 1, one LCN.
pub const ODETTE_LCN: u8 = 1;

/// `DATA_B3` flag bits (CAPI 2.0 part I, DATA_B3_REQ).
pub mod flags {
    /// X.25 Q-bit (qualifier).
    pub const QUALIFIER: u16 = 0x0001;
    /// X.25 M-bit (more data).
    pub const MORE_DATA: u16 = 0x0002;
    /// X.25 D-bit (delivery confirmation).
    pub const DELIVERY_CONFIRMATION: u16 = 0x0004;
    /// Expedited data (X.25 interrupt).
    pub const EXPEDITED: u16 = 0x0008;
}

/// Largest OFTP exchange buffer: the STH length limit (100003) less the
/// 4-octet header (RFC 5024 section 8.2).
pub const MAX_NSDU: usize = 99_999;

/// Octets of a Stream Transmission Header.
const STH_LEN: usize = 4;

/// Why X.25 call octets or a data unit are malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X25Error {
    #[error("X.25 address block truncated")]
    AddressTruncated,
    #[error("X.25 address digit 0x{0:X} is not a decimal digit")]
    AddressDigit(u8),
    #[error("X.25 facilities truncated")]
    FacilitiesTruncated,
    #[error("X.25 packet size code {0} out of range (4..=12)")]
    PacketSizeCode(u8),
    #[error("X.25 address '{0}' is not 0..=15 decimal digits")]
    AddressInvalid(String),
    #[error("received OFTP data unit exceeds {MAX_NSDU} octets: the partner's packet sequence is not an OFTP exchange buffer")]
    NsduTooLong,
    #[error("stream octets are not an OFTP Stream Transmission Buffer (STH version {version}, length {length})")]
    NotStb { version: u8, length: usize },
}

/// Packet size and window facilities (ITU-T X.25 section 7.2), the two
/// Appendix D requires to be negotiable. Each pair is (called → calling
/// direction, calling → called direction), the order of the facility's
/// parameter octets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facilities {
    /// Packet sizes in octets (16 ..= 4096, powers of two).
    pub packet_size: Option<(u16, u16)>,
    pub window: Option<(u8, u8)>,
    /// Any other facility octets, kept as received.
    pub other: Vec<u8>,
}

const FAC_PACKET_SIZE: u8 = 0x42;
const FAC_WINDOW: u8 = 0x43;

fn size_code(size: u16) -> u8 {
    // 2^code; sizes between powers round down, as only powers are legal.
    (15 - size.max(16).leading_zeros() as u8).clamp(4, 12)
}

fn size_of_code(code: u8) -> Result<u16, X25Error> {
    if (4..=12).contains(&code) {
        Ok(1 << code)
    } else {
        Err(X25Error::PacketSizeCode(code))
    }
}

impl Facilities {
    /// Appendix D.1: packet size 128 and window 7 in both directions.
    pub fn odette() -> Self {
        Facilities {
            packet_size: Some((ODETTE_PACKET_SIZE, ODETTE_PACKET_SIZE)),
            window: Some((ODETTE_WINDOW, ODETTE_WINDOW)),
            other: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.packet_size.is_none() && self.window.is_none() && self.other.is_empty()
    }

    /// The facility field's octets (without the facility length octet).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some((a, b)) = self.packet_size {
            v.extend_from_slice(&[FAC_PACKET_SIZE, size_code(a), size_code(b)]);
        }
        if let Some((a, b)) = self.window {
            v.extend_from_slice(&[FAC_WINDOW, a, b]);
        }
        v.extend_from_slice(&self.other);
        v
    }

    /// Reads a facility field; codes classes A–D (X.25 section 7.1).
    pub fn decode(mut s: &[u8]) -> Result<Self, X25Error> {
        let mut f = Facilities::default();
        while let Some((&code, rest)) = s.split_first() {
            let n = match code >> 6 {
                0 => 1,
                1 => 2,
                2 => 3,
                _ => 1 + usize::from(*rest.first().ok_or(X25Error::FacilitiesTruncated)?),
            };
            let params = rest.get(..n).ok_or(X25Error::FacilitiesTruncated)?;
            match code {
                FAC_PACKET_SIZE => {
                    f.packet_size = Some((size_of_code(params[0])?, size_of_code(params[1])?))
                }
                FAC_WINDOW => f.window = Some((params[0], params[1])),
                _ => {
                    f.other.push(code);
                    f.other.extend_from_slice(params);
                }
            }
            s = &rest[n..];
        }
        Ok(f)
    }
}

/// The NCPI contents of an ISO 8208 connection: the X.25 call request,
/// incoming call, call accepted or call connected packet after its packet
/// type identifier (CAPI 2.0 part I, NCPI for B3 protocols 2 and 3).
///
/// Addresses use the basic format (X.25 section 5.2.1, not TOA/NPI):
/// one octet with the calling (high nibble) and called (low nibble)
/// address lengths in digits, then the called and calling digits as BCD
/// semi-octets, padded to an octet with 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct X25Call {
    /// Called DTE address (digits); Appendix D.4.2: un-mapped, the last
    /// digits of the ISDN number.
    pub called: String,
    pub calling: String,
    pub facilities: Facilities,
    /// Call user data: not used by OFTP (RFC 5024 Appendix C.1).
    pub user_data: Vec<u8>,
}

fn check_address(a: &str) -> Result<(), X25Error> {
    if a.len() <= 15 && a.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(X25Error::AddressInvalid(a.to_string()))
    }
}

impl X25Call {
    /// A call as Appendix D.1 recommends: explicit packet size 128 and
    /// window 7, no call user data. Addresses longer than 15 digits keep
    /// their last 15 (D.4.2: the called party evaluates the last digits).
    pub fn odette(called: &str, calling: &str) -> Self {
        let last15 = |s: &str| -> String {
            let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            d[d.len().saturating_sub(15)..].to_string()
        };
        X25Call {
            called: last15(called),
            calling: last15(calling),
            facilities: Facilities::odette(),
            user_data: Vec::new(),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, X25Error> {
        check_address(&self.called)?;
        check_address(&self.calling)?;
        let mut v = vec![((self.calling.len() as u8) << 4) | self.called.len() as u8];
        let digits: Vec<u8> = self
            .called
            .bytes()
            .chain(self.calling.bytes())
            .map(|b| b - b'0')
            .collect();
        for pair in digits.chunks(2) {
            v.push((pair[0] << 4) | pair.get(1).copied().unwrap_or(0));
        }
        let fac = self.facilities.encode();
        if fac.len() > 63 {
            return Err(X25Error::FacilitiesTruncated);
        }
        v.push(fac.len() as u8);
        v.extend_from_slice(&fac);
        v.extend_from_slice(&self.user_data);
        Ok(v)
    }

    /// Reads NCPI contents; empty contents (a basic-format call accepted
    /// packet) are an empty call.
    pub fn decode(s: &[u8]) -> Result<Self, X25Error> {
        let Some((&lens, rest)) = s.split_first() else {
            return Ok(X25Call::default());
        };
        let (calling_len, called_len) = (usize::from(lens >> 4), usize::from(lens & 0x0F));
        let octets = (calling_len + called_len).div_ceil(2);
        let addr = rest.get(..octets).ok_or(X25Error::AddressTruncated)?;
        let mut digits = String::with_capacity(calling_len + called_len);
        for i in 0..calling_len + called_len {
            let o = addr[i / 2];
            let d = if i % 2 == 0 { o >> 4 } else { o & 0x0F };
            if d > 9 {
                return Err(X25Error::AddressDigit(d));
            }
            digits.push(char::from(b'0' + d));
        }
        let rest = &rest[octets..];
        let (facilities, user_data) = match rest.split_first() {
            None => (Facilities::default(), Vec::new()),
            Some((&flen, rest)) => {
                let flen = usize::from(flen & 0x3F);
                let fac = rest.get(..flen).ok_or(X25Error::FacilitiesTruncated)?;
                (Facilities::decode(fac)?, rest[flen..].to_vec())
            }
        };
        Ok(X25Call {
            called: digits[..called_len].to_string(),
            calling: digits[called_len..].to_string(),
            facilities,
            user_data,
        })
    }
}

/// Packet sizes and windows in force on an X.25 virtual call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Largest packet this side sends.
    pub tx_packet: u16,
    /// Largest packet this side receives.
    pub rx_packet: u16,
    pub tx_window: u8,
    pub rx_window: u8,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated {
            tx_packet: ODETTE_PACKET_SIZE,
            rx_packet: ODETTE_PACKET_SIZE,
            tx_window: ODETTE_WINDOW,
            rx_window: ODETTE_WINDOW,
        }
    }
}

/// The called DTE's answer to requested facilities (X.25 section 6.12 and
/// 6.13: the called DTE may only move a value towards the default, 128
/// octets / window 2; here: accept what it is asked up to `max_packet`
/// and `max_window`). Absent facilities mean the Appendix D defaults.
/// Returns the facilities for the call accepted packet and what the
/// called side then uses.
pub fn negotiate(
    requested: &Facilities,
    max_packet: u16,
    max_window: u8,
) -> (Facilities, Negotiated) {
    let max_packet = max_packet.max(ODETTE_PACKET_SIZE);
    let pick_size = |p: u16| {
        if p <= ODETTE_PACKET_SIZE {
            p
        } else {
            p.min(max_packet)
        }
    };
    let pick_win = |w: u8| {
        if w <= 2 {
            w.max(1)
        } else {
            w.min(max_window.max(2))
        }
    };
    let packet = requested
        .packet_size
        .map(|(a, b)| (pick_size(a), pick_size(b)));
    let window = requested.window.map(|(a, b)| (pick_win(a), pick_win(b)));
    let (p_cd, p_dc) = packet.unwrap_or((ODETTE_PACKET_SIZE, ODETTE_PACKET_SIZE));
    let (w_cd, w_dc) = window.unwrap_or((ODETTE_WINDOW, ODETTE_WINDOW));
    (
        Facilities {
            packet_size: packet,
            window,
            other: Vec::new(),
        },
        // Pairs are (called → calling, calling → called); we are called.
        Negotiated {
            tx_packet: p_cd,
            rx_packet: p_dc,
            tx_window: w_cd,
            rx_window: w_dc,
        },
    )
}

/// What the calling DTE uses: the call connected facilities where
/// present, else what it requested (X.25: an absent facility in call
/// accepted means the requested values stand).
pub fn caller_negotiated(requested: &Facilities, connected: &Facilities) -> Negotiated {
    let (p_cd, p_dc) = connected
        .packet_size
        .or(requested.packet_size)
        .unwrap_or((ODETTE_PACKET_SIZE, ODETTE_PACKET_SIZE));
    let (w_cd, w_dc) = connected
        .window
        .or(requested.window)
        .unwrap_or((ODETTE_WINDOW, ODETTE_WINDOW));
    Negotiated {
        tx_packet: p_dc,
        rx_packet: p_cd,
        tx_window: w_dc,
        rx_window: w_cd,
    }
}

/// OFTP stream octets (STH-framed exchange buffers) → complete packet
/// sequences (see the module docs). Sans-IO.
#[derive(Debug)]
pub struct Segmenter {
    packet_size: usize,
    buf: BytesMut,
    packets: VecDeque<(Bytes, bool)>,
}

impl Segmenter {
    pub fn new(packet_size: u16) -> Self {
        Segmenter {
            packet_size: usize::from(packet_size.max(16)),
            buf: BytesMut::new(),
            packets: VecDeque::new(),
        }
    }

    /// Adds stream octets; every complete exchange buffer becomes packets.
    pub fn push(&mut self, octets: &[u8]) -> Result<(), X25Error> {
        self.buf.extend_from_slice(octets);
        while let Some(h) = self.buf.get(..STH_LEN) {
            let version = h[0] >> 4;
            let length = (usize::from(h[0] & 0x0F) << 24)
                | (usize::from(h[1]) << 16)
                | (usize::from(h[2]) << 8)
                | usize::from(h[3]);
            if version != 1 || !(STH_LEN + 1..=STH_LEN + MAX_NSDU).contains(&length) {
                return Err(X25Error::NotStb { version, length });
            }
            if self.buf.len() < length {
                break;
            }
            self.buf.advance(STH_LEN);
            let mut oeb = self.buf.split_to(length - STH_LEN).freeze();
            while oeb.len() > self.packet_size {
                self.packets
                    .push_back((oeb.split_to(self.packet_size), true));
            }
            self.packets.push_back((oeb, false));
        }
        Ok(())
    }

    /// The next packet to send and its M-bit.
    pub fn next_packet(&mut self) -> Option<(Bytes, bool)> {
        self.packets.pop_front()
    }

    /// Packets waiting to be sent.
    pub fn queued(&self) -> usize {
        self.packets.len()
    }

    /// Octets of an exchange buffer not yet complete.
    pub fn partial(&self) -> usize {
        self.buf.len()
    }
}

/// Received packets → OFTP stream octets (one STH-framed exchange buffer
/// per complete packet sequence). Sans-IO.
#[derive(Debug, Default)]
pub struct Reassembler {
    cur: Vec<u8>,
}

/// What a received packet amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Part of a sequence; more packets follow.
    Partial,
    /// The sequence is complete: STH and exchange buffer.
    Complete(Bytes),
    /// Not OFTP data (Q-bit packet, or an empty sequence): dropped.
    Ignored(&'static str),
}

impl Reassembler {
    pub fn new() -> Self {
        Reassembler::default()
    }

    /// Takes one `DATA_B3_IND` block with its CAPI flags.
    pub fn packet(&mut self, data: &[u8], flags: u16) -> Result<Received, X25Error> {
        if flags & self::flags::QUALIFIER != 0 {
            // Appendix D.4.3 excludes the Q-bit: qualified data is not
            // OFTP's, and must not be mixed into an exchange buffer.
            return Ok(Received::Ignored("Q-bit packet"));
        }
        if self.cur.len() + data.len() > MAX_NSDU {
            self.cur.clear();
            return Err(X25Error::NsduTooLong);
        }
        self.cur.extend_from_slice(data);
        if flags & self::flags::MORE_DATA != 0 {
            return Ok(Received::Partial);
        }
        let oeb = std::mem::take(&mut self.cur);
        if oeb.is_empty() {
            return Ok(Received::Ignored("empty packet sequence"));
        }
        let len = oeb.len() + STH_LEN;
        let mut v = Vec::with_capacity(len);
        // STH: version 1, flags 0, 24-bit length including the header.
        v.push(0x10 | ((len >> 24) & 0x0F) as u8);
        v.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        v.extend_from_slice(&oeb);
        Ok(Received::Complete(Bytes::from(v)))
    }

    /// Octets of an unfinished sequence.
    pub fn partial(&self) -> usize {
        self.cur.len()
    }
}
