//! CAPI 2.0 messages (CAPI 2.0 specification, part I, chapters 3–5).
//!
//! Every CAPI message is a little-endian byte string: an 8-octet header
//! (total length, application id, command, subcommand, message number)
//! followed by the parameters of that command in a fixed order. Parameters
//! are integers (`byte`, `word`, `dword`, `qword`) or *structs*: a length
//! (one octet, or `0xFF` followed by a `word` for 255 octets and more) and
//! that many octets. An empty struct (length 0) means "default / absent".
//!
//! `DATA_B3_REQ` and `DATA_B3_IND` carry a 32-bit data pointer that means
//! nothing outside the process that wrote it. Like the Linux `/dev/capi20`
//! interface and remote-CAPI protocols, this codec transports the data block
//! right *after* the message: the header's total length covers the message
//! only, and the data length parameter says how many octets follow.
//!
//! Decoding never panics: every malformed input is a typed [`DecodeError`].
//! Parameters appended by later revisions of the specification after the
//! last one known here are ignored, as the specification asks of
//! applications.

use bytes::Bytes;

/// Octets in the message header.
pub const HEADER_LEN: usize = 8;

/// Total length of `DATA_B3_REQ`/`DATA_B3_IND` without the 64-bit data
/// pointer (CAPI 2.0 before 64-bit support).
pub const DATA_B3_LEN: u16 = 22;
/// Total length of `DATA_B3_REQ`/`DATA_B3_IND` with the 64-bit data pointer.
pub const DATA_B3_LEN64: u16 = 30;

/// Command codes (CAPI 2.0 part I, 5.x).
pub mod command {
    pub const ALERT: u8 = 0x01;
    pub const CONNECT: u8 = 0x02;
    pub const CONNECT_ACTIVE: u8 = 0x03;
    pub const DISCONNECT: u8 = 0x04;
    pub const LISTEN: u8 = 0x05;
    pub const INFO: u8 = 0x08;
    pub const SELECT_B_PROTOCOL: u8 = 0x41;
    pub const FACILITY: u8 = 0x80;
    pub const CONNECT_B3: u8 = 0x82;
    pub const CONNECT_B3_ACTIVE: u8 = 0x83;
    pub const DISCONNECT_B3: u8 = 0x84;
    pub const DATA_B3: u8 = 0x86;
    pub const RESET_B3: u8 = 0x87;
    pub const CONNECT_B3_T90_ACTIVE: u8 = 0x88;
    pub const MANUFACTURER: u8 = 0xFF;
}

/// Subcommand codes: direction of a message.
pub mod subcommand {
    /// Application → CAPI: request.
    pub const REQ: u8 = 0x80;
    /// CAPI → application: confirmation of a request.
    pub const CONF: u8 = 0x81;
    /// CAPI → application: indication.
    pub const IND: u8 = 0x82;
    /// Application → CAPI: response to an indication.
    pub const RESP: u8 = 0x83;
}

/// CIP values (compatibility information profile, CAPI 2.0 part I, CONNECT_REQ).
pub mod cip {
    /// No predefined profile: use BC/LLC/HLC.
    pub const NO_PROFILE: u16 = 0;
    pub const SPEECH: u16 = 1;
    /// Unrestricted digital information: the bearer for OFTP/X.25 data calls.
    pub const UNRESTRICTED_DIGITAL: u16 = 2;
    pub const RESTRICTED_DIGITAL: u16 = 3;
    pub const AUDIO_3K1: u16 = 4;
    /// Mask bit for `LISTEN_REQ` accepting calls with CIP `n`.
    pub const fn mask(cip: u16) -> u32 {
        if cip < 32 {
            1 << cip
        } else {
            0
        }
    }
}

/// The message header (CAPI 2.0 part I, 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Octets of the whole message including this header (not including a
    /// `DATA_B3` data block, see the module docs).
    pub total_length: u16,
    pub app_id: u16,
    pub command: u8,
    pub subcommand: u8,
    /// Message number: chosen by the sender of a request or indication,
    /// echoed in the confirmation or response.
    pub number: u16,
}

impl Header {
    /// Reads the header at the start of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(buf, "header");
        let total_length = r.word()?;
        let app_id = r.word()?;
        let command = r.byte()?;
        let subcommand = r.byte()?;
        let number = r.word()?;
        if usize::from(total_length) < HEADER_LEN {
            return Err(DecodeError::BadLength(total_length));
        }
        Ok(Header {
            total_length,
            app_id,
            command,
            subcommand,
            number,
        })
    }
}

/// Why a byte string is not a CAPI message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("CAPI message incomplete: {need} octets needed, {have} available")]
    Incomplete { need: usize, have: usize },
    #[error("CAPI message header gives total length {0}, less than the 8-octet header")]
    BadLength(u16),
    #[error("CAPI message parameter '{0}' runs past the end of the message")]
    Truncated(&'static str),
    #[error("CAPI command 0x{command:02X} subcommand 0x{subcommand:02X} is not supported")]
    Unsupported { command: u8, subcommand: u8 },
    #[error("CAPI struct '{field}' is malformed: {why}")]
    BadStruct {
        field: &'static str,
        why: &'static str,
    },
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("CAPI message of {0} octets exceeds the 65535-octet limit of the length field")]
    TooLong(usize),
    #[error("CAPI struct '{0}' exceeds 65535 octets")]
    StructTooLong(&'static str),
    #[error("DATA_B3 block of {0} octets exceeds the 65535-octet data length field")]
    DataTooLong(usize),
}

// ---------------------------------------------------------------------------
// Reading and writing primitives.

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    field: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], field: &'static str) -> Self {
        Reader { buf, pos: 0, field }
    }

    fn field(&mut self, field: &'static str) -> &mut Self {
        self.field = field;
        self
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated(self.field))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(self.field))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn word(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn dword(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A struct: its contents without the length prefix.
    fn struct_(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = match self.byte()? {
            0xFF => usize::from(self.word()?),
            n => usize::from(n),
        };
        self.take(len)
    }

    fn struct_vec(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        Ok(self.field(field).struct_()?.to_vec())
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn byte(&mut self, v: u8) {
        self.out.push(v);
    }
    fn word(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn dword(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn struct_(&mut self, field: &'static str, s: &[u8]) -> Result<(), EncodeError> {
        if s.len() < 0xFF {
            self.out.push(s.len() as u8);
        } else {
            let len = u16::try_from(s.len()).map_err(|_| EncodeError::StructTooLong(field))?;
            self.out.push(0xFF);
            self.word(len);
        }
        self.out.extend_from_slice(s);
        Ok(())
    }
}

/// Encodes the contents of a struct built from parts (a struct inside a struct).
fn nested(
    field: &'static str,
    f: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<Vec<u8>, EncodeError> {
    let mut v = Vec::new();
    f(&mut Writer { out: &mut v })?;
    if v.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StructTooLong(field));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Structs with meaning to us.

/// Called party number (CAPI 2.0 part I, 6.x "Called party number"):
/// octet 3 of the Q.931 information element, then the IA5 digits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalledPartyNumber {
    /// Type of number and numbering plan (Q.931 octet 3); `0x80` is
    /// "unknown type, unknown plan", what most exchanges expect.
    pub type_plan: u8,
    /// IA5 digits `0`–`9`, `*`, `#`.
    pub digits: Vec<u8>,
}

impl CalledPartyNumber {
    /// An ISDN number of unknown type and plan (`0x80`), the usual choice.
    pub fn new(digits: &str) -> Self {
        CalledPartyNumber {
            type_plan: 0x80,
            digits: digits.as_bytes().to_vec(),
        }
    }

    /// The digits as text (non-IA5 octets replaced).
    pub fn digits_str(&self) -> String {
        String::from_utf8_lossy(&self.digits).into_owned()
    }

    fn decode(s: &[u8]) -> Result<Option<Self>, DecodeError> {
        match s.split_first() {
            None => Ok(None),
            Some((&type_plan, digits)) => Ok(Some(CalledPartyNumber {
                type_plan,
                digits: digits.to_vec(),
            })),
        }
    }

    fn encode(this: &Option<Self>) -> Vec<u8> {
        match this {
            None => Vec::new(),
            Some(n) => {
                let mut v = vec![n.type_plan];
                v.extend_from_slice(&n.digits);
                v
            }
        }
    }
}

/// Calling (or connected) party number: Q.931 octets 3 and 3a, then digits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallingPartyNumber {
    /// Type of number and numbering plan (Q.931 octet 3, extension bit clear).
    pub type_plan: u8,
    /// Presentation and screening indicator (Q.931 octet 3a); `0x80` is
    /// "presentation allowed, user-provided, not screened".
    pub presentation: u8,
    pub digits: Vec<u8>,
}

impl CallingPartyNumber {
    pub fn new(digits: &str) -> Self {
        CallingPartyNumber {
            type_plan: 0x00,
            presentation: 0x80,
            digits: digits.as_bytes().to_vec(),
        }
    }

    pub fn digits_str(&self) -> String {
        String::from_utf8_lossy(&self.digits).into_owned()
    }

    fn decode(s: &[u8], field: &'static str) -> Result<Option<Self>, DecodeError> {
        match s {
            [] => Ok(None),
            [_] => Err(DecodeError::BadStruct {
                field,
                why: "presentation/screening octet missing",
            }),
            [type_plan, presentation, digits @ ..] => Ok(Some(CallingPartyNumber {
                type_plan: *type_plan,
                presentation: *presentation,
                digits: digits.to_vec(),
            })),
        }
    }

    fn encode(this: &Option<Self>) -> Vec<u8> {
        match this {
            None => Vec::new(),
            Some(n) => {
                let mut v = vec![n.type_plan, n.presentation];
                v.extend_from_slice(&n.digits);
                v
            }
        }
    }
}

/// B1 (physical layer) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B1Protocol {
    /// 64 kbit/s with HDLC framing (default, 0).
    Hdlc64,
    /// 64 kbit/s bit-transparent (1).
    Transparent64,
    Other(u16),
}

/// B2 (data link layer) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B2Protocol {
    /// ISO 7776 (X.75 SLP), the default (0); RFC 5024 Appendix D's layer 2.
    X75Slp,
    /// Transparent (1).
    Transparent,
    Other(u16),
}

/// B3 (network layer) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Protocol {
    /// Transparent (0, default).
    Transparent,
    /// T.90NL with compatibility to T.70NL (1).
    T90,
    /// ISO 8208 (X.25 DTE-DTE) (2); RFC 5024 Appendix D's layer 3.
    Iso8208,
    /// X.25 DCE side (3).
    X25Dce,
    Other(u16),
}

macro_rules! code_enum {
    ($t:ident { $($v:ident = $n:expr),* }) => {
        impl From<u16> for $t {
            fn from(n: u16) -> Self {
                match n { $($n => $t::$v,)* n => $t::Other(n) }
            }
        }
        impl From<$t> for u16 {
            fn from(p: $t) -> u16 {
                match p { $($t::$v => $n,)* $t::Other(n) => n }
            }
        }
    };
}
code_enum!(B1Protocol {
    Hdlc64 = 0,
    Transparent64 = 1
});
code_enum!(B2Protocol {
    X75Slp = 0,
    Transparent = 1
});
code_enum!(B3Protocol {
    Transparent = 0,
    T90 = 1,
    Iso8208 = 2,
    X25Dce = 3
});

/// B protocol struct (CAPI 2.0 part I, "B protocol"): protocol choice for
/// the three B-channel layers and their configuration structs. The
/// configuration structs are kept as octets so that any controller's
/// configuration round-trips; [`X75Config`] and [`Iso8208Config`] give
/// them meaning for the protocols OFTP uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BProtocol {
    pub b1: B1Protocol,
    pub b2: B2Protocol,
    pub b3: B3Protocol,
    pub b1_config: Vec<u8>,
    pub b2_config: Vec<u8>,
    pub b3_config: Vec<u8>,
    /// Global configuration (added in later CAPI 2.0 revisions; absent in
    /// messages from older implementations).
    pub global_config: Option<Vec<u8>>,
}

impl BProtocol {
    /// HDLC, X.75 SLP, transparent B3: an octet stream over an X.75 link,
    /// the "transparent B3" alternative for OFTP.
    pub fn x75_transparent() -> Self {
        BProtocol {
            b1: B1Protocol::Hdlc64,
            b2: B2Protocol::X75Slp,
            b3: B3Protocol::Transparent,
            b1_config: Vec::new(),
            b2_config: Vec::new(),
            b3_config: Vec::new(),
            global_config: None,
        }
    }

    /// HDLC, X.75 SLP, ISO 8208: RFC 5024 Appendix D.
    pub fn x75_iso8208(x75: &X75Config, x25: &Iso8208Config) -> Self {
        BProtocol {
            b1: B1Protocol::Hdlc64,
            b2: B2Protocol::X75Slp,
            b3: B3Protocol::Iso8208,
            b1_config: Vec::new(),
            b2_config: x75.encode(),
            b3_config: x25.encode(),
            global_config: None,
        }
    }

    /// RFC 5024 Appendix D.1 exactly: HDLC, X.75 SLP (modulo 8, window 7),
    /// ISO 8208 with first LCN 1, one LCN, modulo 8, window 7.
    pub fn odette_iso8208() -> Self {
        Self::x75_iso8208(&X75Config::odette(), &Iso8208Config::odette())
    }

    fn decode(s: &[u8]) -> Result<Option<Self>, DecodeError> {
        if s.is_empty() {
            return Ok(None);
        }
        let mut r = Reader::new(s, "B protocol");
        let b1 = r.word()?.into();
        let b2 = r.word()?.into();
        let b3 = r.word()?.into();
        let b1_config = r.struct_vec("B1 configuration")?;
        let b2_config = r.struct_vec("B2 configuration")?;
        let b3_config = r.struct_vec("B3 configuration")?;
        let global_config = if r.remaining() > 0 {
            Some(r.struct_vec("global configuration")?)
        } else {
            None
        };
        Ok(Some(BProtocol {
            b1,
            b2,
            b3,
            b1_config,
            b2_config,
            b3_config,
            global_config,
        }))
    }

    fn encode(this: &Option<Self>) -> Result<Vec<u8>, EncodeError> {
        let Some(p) = this else {
            return Ok(Vec::new());
        };
        nested("B protocol", |w| {
            w.word(p.b1.into());
            w.word(p.b2.into());
            w.word(p.b3.into());
            w.struct_("B1 configuration", &p.b1_config)?;
            w.struct_("B2 configuration", &p.b2_config)?;
            w.struct_("B3 configuration", &p.b3_config)?;
            if let Some(g) = &p.global_config {
                w.struct_("global configuration", g)?;
            }
            Ok(())
        })
    }
}

/// B2 configuration for ISO 7776 / X.75 SLP (CAPI 2.0 part I, "B2 configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X75Config {
    /// Address A (command address of the calling side; default 3).
    pub address_a: u8,
    /// Address B (default 1).
    pub address_b: u8,
    /// 8 (basic) or 128 (extended) sequence numbering.
    pub modulo: u8,
    /// Window size k (default 7).
    pub window: u8,
    /// XID parameters (empty: none).
    pub xid: Vec<u8>,
}

impl Default for X75Config {
    fn default() -> Self {
        X75Config {
            address_a: 3,
            address_b: 1,
            modulo: 8,
            window: 7,
            xid: Vec::new(),
        }
    }
}

impl X75Config {
    /// Appendix D.1: ISO 7776, level-2 window 7 (modulo 8, addresses A=3/B=1).
    pub fn odette() -> Self {
        X75Config {
            window: crate::x25::ODETTE_WINDOW,
            ..X75Config::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.address_a, self.address_b, self.modulo, self.window];
        // XID longer than a struct can hold is cut: it cannot be sent anyway.
        let xid = &self.xid[..self.xid.len().min(254)];
        v.push(xid.len() as u8);
        v.extend_from_slice(xid);
        v
    }

    /// Reads a B2 configuration struct's contents; empty means the defaults.
    pub fn decode(s: &[u8]) -> Result<Self, DecodeError> {
        if s.is_empty() {
            return Ok(X75Config::default());
        }
        let mut r = Reader::new(s, "B2 configuration (X.75)");
        Ok(X75Config {
            address_a: r.byte()?,
            address_b: r.byte()?,
            modulo: r.byte()?,
            window: r.byte()?,
            xid: if r.remaining() > 0 {
                r.struct_vec("XID")?
            } else {
                Vec::new()
            },
        })
    }
}

/// B3 configuration for ISO 8208 (CAPI 2.0 part I, "B3 configuration"):
/// logical channel ranges, modulo and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso8208Config {
    /// Lowest/highest incoming-only channel.
    pub lic: u16,
    pub hic: u16,
    /// Lowest/highest two-way channel.
    pub ltc: u16,
    pub htc: u16,
    /// Lowest/highest outgoing-only channel.
    pub loc: u16,
    pub hoc: u16,
    /// 8 or 128.
    pub modulo: u16,
    /// Packet window (default 2).
    pub window: u16,
}

impl Default for Iso8208Config {
    /// CAPI defaults: one two-way logical channel, modulo 8, window 2.
    fn default() -> Self {
        Iso8208Config {
            lic: 0,
            hic: 0,
            ltc: 1,
            htc: 1,
            loc: 0,
            hoc: 0,
            modulo: 8,
            window: 2,
        }
    }
}

impl Iso8208Config {
    /// Appendix D.1: first LCN 1, one LCN (a two-way channel), modulo 8,
    /// level-3 window 7.
    pub fn odette() -> Self {
        Iso8208Config {
            lic: 0,
            hic: 0,
            ltc: 1,
            htc: 1,
            loc: 0,
            hoc: 0,
            modulo: 8,
            window: u16::from(crate::x25::ODETTE_WINDOW),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        for w in [
            self.lic,
            self.hic,
            self.ltc,
            self.htc,
            self.loc,
            self.hoc,
            self.modulo,
            self.window,
        ] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    /// Reads a B3 configuration struct's contents; empty means the defaults.
    pub fn decode(s: &[u8]) -> Result<Self, DecodeError> {
        if s.is_empty() {
            return Ok(Iso8208Config::default());
        }
        let mut r = Reader::new(s, "B3 configuration (ISO 8208)");
        Ok(Iso8208Config {
            lic: r.word()?,
            hic: r.word()?,
            ltc: r.word()?,
            htc: r.word()?,
            loc: r.word()?,
            hoc: r.word()?,
            modulo: r.word()?,
            window: r.word()?,
        })
    }
}

/// NCPI for ISO 8208 / X.25 (CAPI 2.0 part I, "NCPI"): the network control
/// protocol information of CONNECT_B3 and DISCONNECT_B3 messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct X25Ncpi {
    /// Bit 0: use the D-bit.
    pub flags: u8,
    /// Logical channel group number.
    pub group: u8,
    /// Logical channel number.
    pub channel: u8,
    /// The rest of the X.25 packet (facilities, call user data) from octet 4 on.
    pub contents: Vec<u8>,
}

impl X25Ncpi {
    /// NCPI for an X.25 call on `channel` (group 0), D-bit not used
    /// (Appendix D.4.3), with the call's address block and facilities.
    pub fn for_call(channel: u8, call: &crate::x25::X25Call) -> Result<Self, crate::x25::X25Error> {
        Ok(X25Ncpi {
            flags: 0,
            group: 0,
            channel,
            contents: call.encode()?,
        })
    }

    /// The contents read as an X.25 call packet.
    pub fn call(&self) -> Result<crate::x25::X25Call, crate::x25::X25Error> {
        crate::x25::X25Call::decode(&self.contents)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.flags, self.group, self.channel];
        v.extend_from_slice(&self.contents);
        v
    }

    pub fn decode(s: &[u8]) -> Result<Option<Self>, DecodeError> {
        match s {
            [] => Ok(None),
            [flags, group, channel, contents @ ..] => Ok(Some(X25Ncpi {
                flags: *flags,
                group: *group,
                channel: *channel,
                contents: contents.to_vec(),
            })),
            _ => Err(DecodeError::BadStruct {
                field: "NCPI",
                why: "shorter than flags, group and channel",
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Messages.

/// `LISTEN_REQ`: which calls (by CIP and info) the application wants offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenReq {
    pub controller: u32,
    pub info_mask: u32,
    pub cip_mask: u32,
    pub cip_mask2: u32,
    pub calling_number: Option<CallingPartyNumber>,
    pub calling_subaddress: Vec<u8>,
}

/// `LISTEN_CONF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConf {
    pub controller: u32,
    pub info: u16,
}

/// `CONNECT_REQ`: place a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReq {
    pub controller: u32,
    pub cip: u16,
    pub called_number: Option<CalledPartyNumber>,
    pub calling_number: Option<CallingPartyNumber>,
    pub called_subaddress: Vec<u8>,
    pub calling_subaddress: Vec<u8>,
    pub b_protocol: Option<BProtocol>,
    pub bc: Vec<u8>,
    pub llc: Vec<u8>,
    pub hlc: Vec<u8>,
    pub additional_info: Vec<u8>,
}

/// `CONNECT_CONF`: the PLCI assigned to the outgoing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConf {
    pub plci: u32,
    pub info: u16,
}

/// `CONNECT_IND`: an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectInd {
    pub plci: u32,
    pub cip: u16,
    pub called_number: Option<CalledPartyNumber>,
    pub calling_number: Option<CallingPartyNumber>,
    pub called_subaddress: Vec<u8>,
    pub calling_subaddress: Vec<u8>,
    pub bc: Vec<u8>,
    pub llc: Vec<u8>,
    pub hlc: Vec<u8>,
    pub additional_info: Vec<u8>,
}

/// `CONNECT_RESP`: accept (reject 0), ignore (1) or reject (2..) a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResp {
    pub plci: u32,
    pub reject: u16,
    pub b_protocol: Option<BProtocol>,
    pub connected_number: Option<CallingPartyNumber>,
    pub connected_subaddress: Vec<u8>,
    pub llc: Vec<u8>,
    pub additional_info: Vec<u8>,
}

/// `CONNECT_RESP` reject values (CAPI 2.0 part I).
pub mod reject {
    pub const ACCEPT: u16 = 0;
    pub const IGNORE: u16 = 1;
    pub const NORMAL_CLEARING: u16 = 2;
    pub const USER_BUSY: u16 = 3;
    pub const NO_CHANNEL: u16 = 4;
    pub const FACILITY_REJECTED: u16 = 5;
    pub const CHANNEL_UNACCEPTABLE: u16 = 6;
    pub const INCOMPATIBLE_DESTINATION: u16 = 7;
    pub const OUT_OF_ORDER: u16 = 8;
}

/// `CONNECT_ACTIVE_IND`: the B channel is through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectActiveInd {
    pub plci: u32,
    pub connected_number: Option<CallingPartyNumber>,
    pub connected_subaddress: Vec<u8>,
    pub llc: Vec<u8>,
}

/// A message whose only parameter is a PLCI, NCCI or controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub id: u32,
}

/// A confirmation: an identifier and an info (0 = success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentInfo {
    pub id: u32,
    pub info: u16,
}

/// An identifier and an NCPI struct (`CONNECT_B3_REQ`, `CONNECT_B3_IND`,
/// `CONNECT_B3_ACTIVE_IND`, `DISCONNECT_B3_REQ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentNcpi {
    pub id: u32,
    pub ncpi: Vec<u8>,
}

/// `CONNECT_B3_RESP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectB3Resp {
    pub ncci: u32,
    pub reject: u16,
    pub ncpi: Vec<u8>,
}

/// `DATA_B3_REQ` / `DATA_B3_IND`: one block of B-channel data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataB3 {
    pub ncci: u32,
    /// Application-chosen handle echoed in the confirmation / response.
    pub handle: u16,
    /// Bit 0 qualifier (X.25 Q-bit), bit 1 more-data (M-bit), bit 2 delivery
    /// confirmation (D-bit), bit 3 expedited, bit 4 break/UI frame, bit 15
    /// framing error.
    pub flags: u16,
    pub data: Bytes,
}

/// `DATA_B3_CONF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataB3Conf {
    pub ncci: u32,
    pub handle: u16,
    pub info: u16,
}

/// `DATA_B3_RESP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataB3Resp {
    pub ncci: u32,
    pub handle: u16,
}

/// `DISCONNECT_B3_IND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectB3Ind {
    pub ncci: u32,
    pub reason_b3: u16,
    pub ncpi: Vec<u8>,
}

/// `DISCONNECT_REQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectReq {
    pub plci: u32,
    pub additional_info: Vec<u8>,
}

/// `DISCONNECT_IND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectInd {
    pub plci: u32,
    /// 0 normal; `0x34xx` the network's Q.850 cause `xx & 0x7F`.
    pub reason: u16,
}

/// `INFO_IND`: a D-channel information element or progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoInd {
    /// PLCI, or controller for information outside a call.
    pub id: u32,
    pub info_number: u16,
    pub info_element: Vec<u8>,
}

/// The parameters of one message, by command and subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Params {
    ListenReq(ListenReq),
    ListenConf(ListenConf),
    ConnectReq(ConnectReq),
    ConnectConf(ConnectConf),
    ConnectInd(ConnectInd),
    ConnectResp(ConnectResp),
    ConnectActiveInd(ConnectActiveInd),
    ConnectActiveResp(Ident),
    ConnectB3Req(IdentNcpi),
    ConnectB3Conf(IdentInfo),
    ConnectB3Ind(IdentNcpi),
    ConnectB3Resp(ConnectB3Resp),
    ConnectB3ActiveInd(IdentNcpi),
    ConnectB3ActiveResp(Ident),
    DataB3Req(DataB3),
    DataB3Conf(DataB3Conf),
    DataB3Ind(DataB3),
    DataB3Resp(DataB3Resp),
    DisconnectB3Req(IdentNcpi),
    DisconnectB3Conf(IdentInfo),
    DisconnectB3Ind(DisconnectB3Ind),
    DisconnectB3Resp(Ident),
    DisconnectReq(DisconnectReq),
    DisconnectConf(IdentInfo),
    DisconnectInd(DisconnectInd),
    DisconnectResp(Ident),
    InfoInd(InfoInd),
    InfoResp(Ident),
}

impl Params {
    /// Command and subcommand codes of this message.
    pub fn codes(&self) -> (u8, u8) {
        use command::*;
        use subcommand::*;
        match self {
            Params::ListenReq(_) => (LISTEN, REQ),
            Params::ListenConf(_) => (LISTEN, CONF),
            Params::ConnectReq(_) => (CONNECT, REQ),
            Params::ConnectConf(_) => (CONNECT, CONF),
            Params::ConnectInd(_) => (CONNECT, IND),
            Params::ConnectResp(_) => (CONNECT, RESP),
            Params::ConnectActiveInd(_) => (CONNECT_ACTIVE, IND),
            Params::ConnectActiveResp(_) => (CONNECT_ACTIVE, RESP),
            Params::ConnectB3Req(_) => (CONNECT_B3, REQ),
            Params::ConnectB3Conf(_) => (CONNECT_B3, CONF),
            Params::ConnectB3Ind(_) => (CONNECT_B3, IND),
            Params::ConnectB3Resp(_) => (CONNECT_B3, RESP),
            Params::ConnectB3ActiveInd(_) => (CONNECT_B3_ACTIVE, IND),
            Params::ConnectB3ActiveResp(_) => (CONNECT_B3_ACTIVE, RESP),
            Params::DataB3Req(_) => (DATA_B3, REQ),
            Params::DataB3Conf(_) => (DATA_B3, CONF),
            Params::DataB3Ind(_) => (DATA_B3, IND),
            Params::DataB3Resp(_) => (DATA_B3, RESP),
            Params::DisconnectB3Req(_) => (DISCONNECT_B3, REQ),
            Params::DisconnectB3Conf(_) => (DISCONNECT_B3, CONF),
            Params::DisconnectB3Ind(_) => (DISCONNECT_B3, IND),
            Params::DisconnectB3Resp(_) => (DISCONNECT_B3, RESP),
            Params::DisconnectReq(_) => (DISCONNECT, REQ),
            Params::DisconnectConf(_) => (DISCONNECT, CONF),
            Params::DisconnectInd(_) => (DISCONNECT, IND),
            Params::DisconnectResp(_) => (DISCONNECT, RESP),
            Params::InfoInd(_) => (INFO, IND),
            Params::InfoResp(_) => (INFO, RESP),
        }
    }

    /// The message's name as the specification writes it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Params::ListenReq(_) => "LISTEN_REQ",
            Params::ListenConf(_) => "LISTEN_CONF",
            Params::ConnectReq(_) => "CONNECT_REQ",
            Params::ConnectConf(_) => "CONNECT_CONF",
            Params::ConnectInd(_) => "CONNECT_IND",
            Params::ConnectResp(_) => "CONNECT_RESP",
            Params::ConnectActiveInd(_) => "CONNECT_ACTIVE_IND",
            Params::ConnectActiveResp(_) => "CONNECT_ACTIVE_RESP",
            Params::ConnectB3Req(_) => "CONNECT_B3_REQ",
            Params::ConnectB3Conf(_) => "CONNECT_B3_CONF",
            Params::ConnectB3Ind(_) => "CONNECT_B3_IND",
            Params::ConnectB3Resp(_) => "CONNECT_B3_RESP",
            Params::ConnectB3ActiveInd(_) => "CONNECT_B3_ACTIVE_IND",
            Params::ConnectB3ActiveResp(_) => "CONNECT_B3_ACTIVE_RESP",
            Params::DataB3Req(_) => "DATA_B3_REQ",
            Params::DataB3Conf(_) => "DATA_B3_CONF",
            Params::DataB3Ind(_) => "DATA_B3_IND",
            Params::DataB3Resp(_) => "DATA_B3_RESP",
            Params::DisconnectB3Req(_) => "DISCONNECT_B3_REQ",
            Params::DisconnectB3Conf(_) => "DISCONNECT_B3_CONF",
            Params::DisconnectB3Ind(_) => "DISCONNECT_B3_IND",
            Params::DisconnectB3Resp(_) => "DISCONNECT_B3_RESP",
            Params::DisconnectReq(_) => "DISCONNECT_REQ",
            Params::DisconnectConf(_) => "DISCONNECT_CONF",
            Params::DisconnectInd(_) => "DISCONNECT_IND",
            Params::DisconnectResp(_) => "DISCONNECT_RESP",
            Params::InfoInd(_) => "INFO_IND",
            Params::InfoResp(_) => "INFO_RESP",
        }
    }
}

/// One CAPI message: header fields and typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub app_id: u16,
    pub number: u16,
    pub params: Params,
}

impl Message {
    pub fn new(app_id: u16, number: u16, params: Params) -> Self {
        Message {
            app_id,
            number,
            params,
        }
    }

    /// Appends the message (and a `DATA_B3` data block after it) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let (cmd, sub) = self.params.codes();
        let mut w = Writer { out };
        w.word(0); // total length, patched below
        w.word(self.app_id);
        w.byte(cmd);
        w.byte(sub);
        w.word(self.number);
        let mut data: Option<&Bytes> = None;
        match &self.params {
            Params::ListenReq(m) => {
                w.dword(m.controller);
                w.dword(m.info_mask);
                w.dword(m.cip_mask);
                w.dword(m.cip_mask2);
                w.struct_(
                    "calling party number",
                    &CallingPartyNumber::encode(&m.calling_number),
                )?;
                w.struct_("calling party subaddress", &m.calling_subaddress)?;
            }
            Params::ListenConf(m) => {
                w.dword(m.controller);
                w.word(m.info);
            }
            Params::ConnectReq(m) => {
                w.dword(m.controller);
                w.word(m.cip);
                w.struct_(
                    "called party number",
                    &CalledPartyNumber::encode(&m.called_number),
                )?;
                w.struct_(
                    "calling party number",
                    &CallingPartyNumber::encode(&m.calling_number),
                )?;
                w.struct_("called party subaddress", &m.called_subaddress)?;
                w.struct_("calling party subaddress", &m.calling_subaddress)?;
                w.struct_("B protocol", &BProtocol::encode(&m.b_protocol)?)?;
                w.struct_("BC", &m.bc)?;
                w.struct_("LLC", &m.llc)?;
                w.struct_("HLC", &m.hlc)?;
                w.struct_("additional info", &m.additional_info)?;
            }
            Params::ConnectConf(m) => {
                w.dword(m.plci);
                w.word(m.info);
            }
            Params::ConnectInd(m) => {
                w.dword(m.plci);
                w.word(m.cip);
                w.struct_(
                    "called party number",
                    &CalledPartyNumber::encode(&m.called_number),
                )?;
                w.struct_(
                    "calling party number",
                    &CallingPartyNumber::encode(&m.calling_number),
                )?;
                w.struct_("called party subaddress", &m.called_subaddress)?;
                w.struct_("calling party subaddress", &m.calling_subaddress)?;
                w.struct_("BC", &m.bc)?;
                w.struct_("LLC", &m.llc)?;
                w.struct_("HLC", &m.hlc)?;
                w.struct_("additional info", &m.additional_info)?;
            }
            Params::ConnectResp(m) => {
                w.dword(m.plci);
                w.word(m.reject);
                w.struct_("B protocol", &BProtocol::encode(&m.b_protocol)?)?;
                w.struct_(
                    "connected number",
                    &CallingPartyNumber::encode(&m.connected_number),
                )?;
                w.struct_("connected subaddress", &m.connected_subaddress)?;
                w.struct_("LLC", &m.llc)?;
                w.struct_("additional info", &m.additional_info)?;
            }
            Params::ConnectActiveInd(m) => {
                w.dword(m.plci);
                w.struct_(
                    "connected number",
                    &CallingPartyNumber::encode(&m.connected_number),
                )?;
                w.struct_("connected subaddress", &m.connected_subaddress)?;
                w.struct_("LLC", &m.llc)?;
            }
            Params::ConnectActiveResp(m)
            | Params::ConnectB3ActiveResp(m)
            | Params::DisconnectB3Resp(m)
            | Params::DisconnectResp(m)
            | Params::InfoResp(m) => w.dword(m.id),
            Params::ConnectB3Req(m)
            | Params::ConnectB3Ind(m)
            | Params::ConnectB3ActiveInd(m)
            | Params::DisconnectB3Req(m) => {
                w.dword(m.id);
                w.struct_("NCPI", &m.ncpi)?;
            }
            Params::ConnectB3Conf(m) | Params::DisconnectB3Conf(m) | Params::DisconnectConf(m) => {
                w.dword(m.id);
                w.word(m.info);
            }
            Params::ConnectB3Resp(m) => {
                w.dword(m.ncci);
                w.word(m.reject);
                w.struct_("NCPI", &m.ncpi)?;
            }
            Params::DataB3Req(m) | Params::DataB3Ind(m) => {
                let len = u16::try_from(m.data.len())
                    .map_err(|_| EncodeError::DataTooLong(m.data.len()))?;
                w.dword(m.ncci);
                w.dword(0); // 32-bit data pointer: meaningless across processes
                w.word(len);
                w.word(m.handle);
                w.word(m.flags);
                data = Some(&m.data);
            }
            Params::DataB3Conf(m) => {
                w.dword(m.ncci);
                w.word(m.handle);
                w.word(m.info);
            }
            Params::DataB3Resp(m) => {
                w.dword(m.ncci);
                w.word(m.handle);
            }
            Params::DisconnectB3Ind(m) => {
                w.dword(m.ncci);
                w.word(m.reason_b3);
                w.struct_("NCPI", &m.ncpi)?;
            }
            Params::DisconnectReq(m) => {
                w.dword(m.plci);
                w.struct_("additional info", &m.additional_info)?;
            }
            Params::DisconnectInd(m) => {
                w.dword(m.plci);
                w.word(m.reason);
            }
            Params::InfoInd(m) => {
                w.dword(m.id);
                w.word(m.info_number);
                w.struct_("info element", &m.info_element)?;
            }
        }
        let len = out.len() - start;
        let total = u16::try_from(len).map_err(|_| EncodeError::TooLong(len))?;
        out[start..start + 2].copy_from_slice(&total.to_le_bytes());
        if let Some(d) = data {
            out.extend_from_slice(d);
        }
        Ok(())
    }

    /// Encodes into a new buffer.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Octets the message at the start of `buf` occupies (header's total
    /// length plus a `DATA_B3` data block), or `Incomplete`.
    pub fn frame_len(buf: &[u8]) -> Result<usize, DecodeError> {
        let h = Header::decode(buf).map_err(|e| match e {
            DecodeError::Truncated(_) => DecodeError::Incomplete {
                need: HEADER_LEN,
                have: buf.len(),
            },
            e => e,
        })?;
        let total = usize::from(h.total_length);
        let data = if h.command == command::DATA_B3
            && (h.subcommand == subcommand::REQ || h.subcommand == subcommand::IND)
        {
            // Data length word at offset 16 (after NCCI and data pointer).
            match buf.get(16..18) {
                Some(b) if total >= usize::from(DATA_B3_LEN) => {
                    usize::from(u16::from_le_bytes([b[0], b[1]]))
                }
                Some(_) => return Err(DecodeError::Truncated("DATA_B3 data length")),
                None => {
                    return Err(DecodeError::Incomplete {
                        need: total.max(18),
                        have: buf.len(),
                    })
                }
            }
        } else {
            0
        };
        let need = total + data;
        if buf.len() < need {
            return Err(DecodeError::Incomplete {
                need,
                have: buf.len(),
            });
        }
        Ok(need)
    }

    /// Decodes the message at the start of `buf`; returns it and the octets
    /// it occupied (see [`Message::frame_len`]).
    pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
        let used = Self::frame_len(buf)?;
        let h = Header::decode(buf)?;
        let total = usize::from(h.total_length);
        let body = buf.get(HEADER_LEN..total).unwrap_or(&[]);
        let mut r = Reader::new(body, "");
        let r = &mut r;
        use command::*;
        use subcommand::*;
        let params = match (h.command, h.subcommand) {
            (LISTEN, REQ) => Params::ListenReq(ListenReq {
                controller: r.field("controller").dword()?,
                info_mask: r.field("info mask").dword()?,
                cip_mask: r.field("CIP mask").dword()?,
                cip_mask2: r.field("CIP mask 2").dword()?,
                calling_number: CallingPartyNumber::decode(
                    r.field("calling party number").struct_()?,
                    "calling party number",
                )?,
                calling_subaddress: r.struct_vec("calling party subaddress")?,
            }),
            (LISTEN, CONF) => Params::ListenConf(ListenConf {
                controller: r.field("controller").dword()?,
                info: r.field("info").word()?,
            }),
            (CONNECT, REQ) => Params::ConnectReq(ConnectReq {
                controller: r.field("controller").dword()?,
                cip: r.field("CIP value").word()?,
                called_number: CalledPartyNumber::decode(
                    r.field("called party number").struct_()?,
                )?,
                calling_number: CallingPartyNumber::decode(
                    r.field("calling party number").struct_()?,
                    "calling party number",
                )?,
                called_subaddress: r.struct_vec("called party subaddress")?,
                calling_subaddress: r.struct_vec("calling party subaddress")?,
                b_protocol: BProtocol::decode(r.field("B protocol").struct_()?)?,
                bc: r.struct_vec("BC")?,
                llc: r.struct_vec("LLC")?,
                hlc: r.struct_vec("HLC")?,
                additional_info: r.struct_vec("additional info")?,
            }),
            (CONNECT, CONF) => Params::ConnectConf(ConnectConf {
                plci: r.field("PLCI").dword()?,
                info: r.field("info").word()?,
            }),
            (CONNECT, IND) => Params::ConnectInd(ConnectInd {
                plci: r.field("PLCI").dword()?,
                cip: r.field("CIP value").word()?,
                called_number: CalledPartyNumber::decode(
                    r.field("called party number").struct_()?,
                )?,
                calling_number: CallingPartyNumber::decode(
                    r.field("calling party number").struct_()?,
                    "calling party number",
                )?,
                called_subaddress: r.struct_vec("called party subaddress")?,
                calling_subaddress: r.struct_vec("calling party subaddress")?,
                bc: r.struct_vec("BC")?,
                llc: r.struct_vec("LLC")?,
                hlc: r.struct_vec("HLC")?,
                additional_info: r.struct_vec("additional info")?,
            }),
            (CONNECT, RESP) => Params::ConnectResp(ConnectResp {
                plci: r.field("PLCI").dword()?,
                reject: r.field("reject").word()?,
                b_protocol: BProtocol::decode(r.field("B protocol").struct_()?)?,
                connected_number: CallingPartyNumber::decode(
                    r.field("connected number").struct_()?,
                    "connected number",
                )?,
                connected_subaddress: r.struct_vec("connected subaddress")?,
                llc: r.struct_vec("LLC")?,
                additional_info: r.struct_vec("additional info")?,
            }),
            (CONNECT_ACTIVE, IND) => Params::ConnectActiveInd(ConnectActiveInd {
                plci: r.field("PLCI").dword()?,
                connected_number: CallingPartyNumber::decode(
                    r.field("connected number").struct_()?,
                    "connected number",
                )?,
                connected_subaddress: r.struct_vec("connected subaddress")?,
                llc: r.struct_vec("LLC")?,
            }),
            (CONNECT_ACTIVE, RESP) => Params::ConnectActiveResp(ident(r, "PLCI")?),
            (CONNECT_B3, REQ) => Params::ConnectB3Req(ident_ncpi(r, "PLCI")?),
            (CONNECT_B3, CONF) => Params::ConnectB3Conf(ident_info(r, "NCCI")?),
            (CONNECT_B3, IND) => Params::ConnectB3Ind(ident_ncpi(r, "NCCI")?),
            (CONNECT_B3, RESP) => Params::ConnectB3Resp(ConnectB3Resp {
                ncci: r.field("NCCI").dword()?,
                reject: r.field("reject").word()?,
                ncpi: r.struct_vec("NCPI")?,
            }),
            (CONNECT_B3_ACTIVE, IND) => Params::ConnectB3ActiveInd(ident_ncpi(r, "NCCI")?),
            (CONNECT_B3_ACTIVE, RESP) => Params::ConnectB3ActiveResp(ident(r, "NCCI")?),
            (DATA_B3, REQ | IND) => {
                let ncci = r.field("NCCI").dword()?;
                let _pointer = r.field("data pointer").dword()?;
                let len = usize::from(r.field("data length").word()?);
                let handle = r.field("data handle").word()?;
                let flags = r.field("flags").word()?;
                let data = buf
                    .get(total..total + len)
                    .ok_or(DecodeError::Truncated("DATA_B3 data block"))?;
                let m = DataB3 {
                    ncci,
                    handle,
                    flags,
                    data: Bytes::copy_from_slice(data),
                };
                if h.subcommand == REQ {
                    Params::DataB3Req(m)
                } else {
                    Params::DataB3Ind(m)
                }
            }
            (DATA_B3, CONF) => Params::DataB3Conf(DataB3Conf {
                ncci: r.field("NCCI").dword()?,
                handle: r.field("data handle").word()?,
                info: r.field("info").word()?,
            }),
            (DATA_B3, RESP) => Params::DataB3Resp(DataB3Resp {
                ncci: r.field("NCCI").dword()?,
                handle: r.field("data handle").word()?,
            }),
            (DISCONNECT_B3, REQ) => Params::DisconnectB3Req(ident_ncpi(r, "NCCI")?),
            (DISCONNECT_B3, CONF) => Params::DisconnectB3Conf(ident_info(r, "NCCI")?),
            (DISCONNECT_B3, IND) => Params::DisconnectB3Ind(DisconnectB3Ind {
                ncci: r.field("NCCI").dword()?,
                reason_b3: r.field("reason B3").word()?,
                ncpi: r.struct_vec("NCPI")?,
            }),
            (DISCONNECT_B3, RESP) => Params::DisconnectB3Resp(ident(r, "NCCI")?),
            (DISCONNECT, REQ) => Params::DisconnectReq(DisconnectReq {
                plci: r.field("PLCI").dword()?,
                additional_info: r.struct_vec("additional info")?,
            }),
            (DISCONNECT, CONF) => Params::DisconnectConf(ident_info(r, "PLCI")?),
            (DISCONNECT, IND) => Params::DisconnectInd(DisconnectInd {
                plci: r.field("PLCI").dword()?,
                reason: r.field("reason").word()?,
            }),
            (DISCONNECT, RESP) => Params::DisconnectResp(ident(r, "PLCI")?),
            (INFO, IND) => Params::InfoInd(InfoInd {
                id: r.field("PLCI").dword()?,
                info_number: r.field("info number").word()?,
                info_element: r.struct_vec("info element")?,
            }),
            (INFO, RESP) => Params::InfoResp(ident(r, "PLCI")?),
            (command, subcommand) => {
                return Err(DecodeError::Unsupported {
                    command,
                    subcommand,
                })
            }
        };
        Ok((Message::new(h.app_id, h.number, params), used))
    }
}

fn ident(r: &mut Reader<'_>, field: &'static str) -> Result<Ident, DecodeError> {
    Ok(Ident {
        id: r.field(field).dword()?,
    })
}

fn ident_info(r: &mut Reader<'_>, field: &'static str) -> Result<IdentInfo, DecodeError> {
    Ok(IdentInfo {
        id: r.field(field).dword()?,
        info: r.field("info").word()?,
    })
}

fn ident_ncpi(r: &mut Reader<'_>, field: &'static str) -> Result<IdentNcpi, DecodeError> {
    Ok(IdentNcpi {
        id: r.field(field).dword()?,
        ncpi: r.struct_vec("NCPI")?,
    })
}

/// Controller number of a PLCI or NCCI (bits 0–6; bit 7 external controller).
pub fn controller_of(id: u32) -> u8 {
    (id & 0x7F) as u8
}

/// PLCI part of an NCCI (controller and PLCI octet).
pub fn plci_of(ncci: u32) -> u32 {
    ncci & 0xFFFF
}
