//! Command exchange buffer codec (RFC 5024 section 5).
//!
//! A frame here is one exchange buffer without its Stream Transmission
//! Header (see [`crate::stb`]): the command octet followed by the command's
//! fields. [`Command::decode`] turns a frame into a typed [`Command`];
//! [`Command::encode`] appends the exact RFC layout of a command to a
//! buffer.
//!
//! The layouts differ between protocol levels: 2.0 (SSIDLEV 5, RFC 5024),
//! 1.4 (SSIDLEV 4) and 1.3 (SSIDLEV 1 or 2, RFC 2204). SSRM and SSID carry
//! everything needed to decode them before a level is negotiated (an SSID
//! is laid out after its own SSIDLEV digit).
//!
//! Decoding is lenient where the partner's intent is unambiguous (a line
//! feed instead of a carriage return, lowercase flags, missing trailing
//! padding, ...) and reports each such [`Deviation`]; encoding is strict.
//! DATA frames are decoded without copying: the payload is a slice of the
//! received frame.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use oftp2::codec::{Command, Esid};
//! use oftp2::value::{EndSessionReason, ProtocolLevel};
//!
//! let esid = Command::Esid(Esid { reason: EndSessionReason::Normal, text: String::new() });
//! let mut out = BytesMut::new();
//! esid.encode(ProtocolLevel::V2_0, &mut out).unwrap();
//! assert_eq!(&out[..], b"F00000\r");
//!
//! // A partner that ends its ESID with a line feed is understood, and told about.
//! let (cmd, deviations) =
//!     Command::decode_lenient(Bytes::from_static(b"F00000\n"), ProtocolLevel::V2_0).unwrap();
//! assert_eq!(cmd, esid);
//! assert_eq!(deviations.len(), 1);
//! ```

mod commands;
mod error;
mod layout;
mod wire;

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::value::ProtocolLevel;

pub use commands::{
    Auch, Aurp, Cd, Cdt, Data, Eerp, Efid, Efna, Efpa, Esid, Nerp, Rtr, Secd, Sfid, Sfna, Sfpa,
    Ssid, Ssrm,
};
pub use error::{DecodeError, Deviation, DeviationKind, EncodeError, FieldProblem};

/// The ODETTE-FTP commands, identified by their first octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandId {
    /// `I` Start Session Ready Message.
    Ssrm,
    /// `X` Start Session.
    Ssid,
    /// `H` Start File.
    Sfid,
    /// `2` Start File Positive Answer.
    Sfpa,
    /// `3` Start File Negative Answer.
    Sfna,
    /// `D` Data Exchange Buffer.
    Data,
    /// `C` Set Credit.
    Cdt,
    /// `T` End File.
    Efid,
    /// `4` End File Positive Answer.
    Efpa,
    /// `5` End File Negative Answer.
    Efna,
    /// `F` End Session.
    Esid,
    /// `R` Change Direction.
    Cd,
    /// `E` End to End Response.
    Eerp,
    /// `N` Negative End Response (1.4 and later).
    Nerp,
    /// `P` Ready To Receive.
    Rtr,
    /// `J` Security Change Direction (2.0).
    Secd,
    /// `A` Authentication Challenge (2.0).
    Auch,
    /// `S` Authentication Response (2.0).
    Aurp,
}

impl CommandId {
    /// All commands, in RFC 5024 section order.
    pub const ALL: [CommandId; 18] = [
        CommandId::Ssrm,
        CommandId::Ssid,
        CommandId::Sfid,
        CommandId::Sfpa,
        CommandId::Sfna,
        CommandId::Data,
        CommandId::Cdt,
        CommandId::Efid,
        CommandId::Efpa,
        CommandId::Efna,
        CommandId::Esid,
        CommandId::Cd,
        CommandId::Eerp,
        CommandId::Nerp,
        CommandId::Rtr,
        CommandId::Secd,
        CommandId::Auch,
        CommandId::Aurp,
    ];

    /// The command identifier octet.
    pub const fn code(self) -> u8 {
        match self {
            CommandId::Ssrm => b'I',
            CommandId::Ssid => b'X',
            CommandId::Sfid => b'H',
            CommandId::Sfpa => b'2',
            CommandId::Sfna => b'3',
            CommandId::Data => b'D',
            CommandId::Cdt => b'C',
            CommandId::Efid => b'T',
            CommandId::Efpa => b'4',
            CommandId::Efna => b'5',
            CommandId::Esid => b'F',
            CommandId::Cd => b'R',
            CommandId::Eerp => b'E',
            CommandId::Nerp => b'N',
            CommandId::Rtr => b'P',
            CommandId::Secd => b'J',
            CommandId::Auch => b'A',
            CommandId::Aurp => b'S',
        }
    }

    /// The command for an identifier octet.
    pub const fn from_code(code: u8) -> Option<CommandId> {
        Some(match code {
            b'I' => CommandId::Ssrm,
            b'X' => CommandId::Ssid,
            b'H' => CommandId::Sfid,
            b'2' => CommandId::Sfpa,
            b'3' => CommandId::Sfna,
            b'D' => CommandId::Data,
            b'C' => CommandId::Cdt,
            b'T' => CommandId::Efid,
            b'4' => CommandId::Efpa,
            b'5' => CommandId::Efna,
            b'F' => CommandId::Esid,
            b'R' => CommandId::Cd,
            b'E' => CommandId::Eerp,
            b'N' => CommandId::Nerp,
            b'P' => CommandId::Rtr,
            b'J' => CommandId::Secd,
            b'A' => CommandId::Auch,
            b'S' => CommandId::Aurp,
            _ => return None,
        })
    }

    /// The four-letter name, e.g. "SFID".
    pub const fn name(self) -> &'static str {
        match self {
            CommandId::Ssrm => "SSRM",
            CommandId::Ssid => "SSID",
            CommandId::Sfid => "SFID",
            CommandId::Sfpa => "SFPA",
            CommandId::Sfna => "SFNA",
            CommandId::Data => "DATA",
            CommandId::Cdt => "CDT",
            CommandId::Efid => "EFID",
            CommandId::Efpa => "EFPA",
            CommandId::Efna => "EFNA",
            CommandId::Esid => "ESID",
            CommandId::Cd => "CD",
            CommandId::Eerp => "EERP",
            CommandId::Nerp => "NERP",
            CommandId::Rtr => "RTR",
            CommandId::Secd => "SECD",
            CommandId::Auch => "AUCH",
            CommandId::Aurp => "AURP",
        }
    }

    /// The RFC's long name, e.g. "Start File".
    pub const fn description(self) -> &'static str {
        match self {
            CommandId::Ssrm => "Start Session Ready Message",
            CommandId::Ssid => "Start Session",
            CommandId::Sfid => "Start File",
            CommandId::Sfpa => "Start File Positive Answer",
            CommandId::Sfna => "Start File Negative Answer",
            CommandId::Data => "Data Exchange Buffer",
            CommandId::Cdt => "Set Credit",
            CommandId::Efid => "End File",
            CommandId::Efpa => "End File Positive Answer",
            CommandId::Efna => "End File Negative Answer",
            CommandId::Esid => "End Session",
            CommandId::Cd => "Change Direction",
            CommandId::Eerp => "End to End Response",
            CommandId::Nerp => "Negative End Response",
            CommandId::Rtr => "Ready To Receive",
            CommandId::Secd => "Security Change Direction",
            CommandId::Auch => "Authentication Challenge",
            CommandId::Aurp => "Authentication Response",
        }
    }

    /// Whether the command exists at `level`: NERP from 1.4 on, SECD, AUCH
    /// and AURP from 2.0 on, the rest at every level.
    pub const fn exists_at(self, level: ProtocolLevel) -> bool {
        match self {
            CommandId::Nerp => level.digit() >= 4,
            CommandId::Secd | CommandId::Auch | CommandId::Aurp => level.is_v2(),
            _ => true,
        }
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded ODETTE-FTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // SFID is large; commands are not kept in bulk.
pub enum Command {
    /// Start Session Ready Message.
    Ssrm(Ssrm),
    /// Start Session.
    Ssid(Ssid),
    /// Start File.
    Sfid(Sfid),
    /// Start File Positive Answer.
    Sfpa(Sfpa),
    /// Start File Negative Answer.
    Sfna(Sfna),
    /// Data Exchange Buffer.
    Data(Data),
    /// Set Credit.
    Cdt(Cdt),
    /// End File.
    Efid(Efid),
    /// End File Positive Answer.
    Efpa(Efpa),
    /// End File Negative Answer.
    Efna(Efna),
    /// End Session.
    Esid(Esid),
    /// Change Direction.
    Cd(Cd),
    /// End to End Response.
    Eerp(Eerp),
    /// Negative End Response.
    Nerp(Nerp),
    /// Ready To Receive.
    Rtr(Rtr),
    /// Security Change Direction.
    Secd(Secd),
    /// Authentication Challenge.
    Auch(Auch),
    /// Authentication Response.
    Aurp(Aurp),
}

impl Command {
    /// Decodes one exchange buffer (without STH) at the negotiated `level`,
    /// accepting unambiguous deviations without reporting them. Use
    /// [`Command::decode_lenient`] to log them.
    pub fn decode(frame: Bytes, level: ProtocolLevel) -> Result<Command, DecodeError> {
        let mut sink = wire::Sink::Discard;
        layout::decode(frame, level, &mut sink)
    }

    /// Decodes like [`Command::decode`] and returns the deviations from the
    /// exact RFC format that were accepted (usually none; the vector does
    /// not allocate then).
    pub fn decode_lenient(
        frame: Bytes,
        level: ProtocolLevel,
    ) -> Result<(Command, Vec<Deviation>), DecodeError> {
        let mut found = Vec::new();
        let mut sink = wire::Sink::Collect(&mut found);
        let cmd = layout::decode(frame, level, &mut sink)?;
        Ok((cmd, found))
    }

    /// Decodes and refuses any deviation from the exact RFC format (the
    /// first one is returned as [`DecodeError::Deviation`]).
    pub fn decode_strict(frame: Bytes, level: ProtocolLevel) -> Result<Command, DecodeError> {
        let mut sink = wire::Sink::Reject(None);
        let res = layout::decode(frame, level, &mut sink);
        match sink {
            wire::Sink::Reject(Some(d)) => Err(DecodeError::Deviation(d)),
            _ => res,
        }
    }

    /// Appends the exact wire form of the command at `level` to `out`.
    /// An SSID is always laid out after its own `level` field.
    ///
    /// On error nothing is appended.
    pub fn encode(&self, level: ProtocolLevel, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let res = layout::encode(self, level, out);
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    /// The command's identifier.
    pub fn id(&self) -> CommandId {
        match self {
            Command::Ssrm(_) => CommandId::Ssrm,
            Command::Ssid(_) => CommandId::Ssid,
            Command::Sfid(_) => CommandId::Sfid,
            Command::Sfpa(_) => CommandId::Sfpa,
            Command::Sfna(_) => CommandId::Sfna,
            Command::Data(_) => CommandId::Data,
            Command::Cdt(_) => CommandId::Cdt,
            Command::Efid(_) => CommandId::Efid,
            Command::Efpa(_) => CommandId::Efpa,
            Command::Efna(_) => CommandId::Efna,
            Command::Esid(_) => CommandId::Esid,
            Command::Cd(_) => CommandId::Cd,
            Command::Eerp(_) => CommandId::Eerp,
            Command::Nerp(_) => CommandId::Nerp,
            Command::Rtr(_) => CommandId::Rtr,
            Command::Secd(_) => CommandId::Secd,
            Command::Auch(_) => CommandId::Auch,
            Command::Aurp(_) => CommandId::Aurp,
        }
    }

    /// The four-letter command name, e.g. "SFID".
    pub fn name(&self) -> &'static str {
        self.id().name()
    }
}

macro_rules! from_cmd {
    ($($t:ident),*) => {$(
        impl From<$t> for Command {
            fn from(c: $t) -> Command {
                Command::$t(c)
            }
        }
    )*};
}
from_cmd!(
    Ssrm, Ssid, Sfid, Sfpa, Sfna, Data, Cdt, Efid, Efpa, Efna, Esid, Cd, Eerp, Nerp, Rtr, Secd,
    Auch, Aurp
);
