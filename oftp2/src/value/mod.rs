//! Typed protocol values carried in ODETTE-FTP command fields.
//!
//! Every field of a command exchange buffer that has a meaning beyond "some
//! digits" or "some characters" gets its own type here, so that the rest of
//! the crate never passes raw strings around: identification codes
//! ([`OdetteId`]), passwords, dataset names, protocol levels, capabilities,
//! record formats, file date/time stamps and the reason codes of ESID, SFNA,
//! EFNA and NERP, each with the RFC 5024 wording.
//!
//! Constructors (`new`, `FromStr`) are strict: they accept exactly what
//! RFC 5024 allows, so whatever this side sends is correct. Values decoded
//! from a partner may be laxer (see [`crate::codec::Deviation`]); they are
//! kept byte for byte so that they can be echoed back unchanged (an EERP must
//! name the file exactly as its originator did).

mod attrs;
mod level;
mod reason;
pub(crate) mod text;
mod time;

pub use attrs::{
    CipherSuite, FileCompression, FileEnvelope, RecordFormat, SecurityLevel, SendReceive,
};
pub use level::ProtocolLevel;
pub use reason::{EndFileRefusal, EndSessionReason, NerpReason, StartFileRefusal};
pub use text::{DatasetName, OdetteId, Password, UserData};
pub use time::{Date, Time, Timestamp};

/// Why a value was rejected by a strict constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is longer than its field.
    #[error("{what} is {len} characters long; at most {max} fit the field")]
    TooLong {
        /// The kind of value.
        what: &'static str,
        /// Its length in octets.
        len: usize,
        /// The field width.
        max: usize,
    },
    /// The value is empty but the field requires one.
    #[error("{what} must not be empty")]
    Empty {
        /// The kind of value.
        what: &'static str,
    },
    /// A character outside the set RFC 5024 allows for the field.
    #[error(
        "{what} contains {found:?} at position {pos}; allowed are A-Z, 0-9 and / - . & ( ) \
         (RFC 5024 section 5.3, Appendix B)"
    )]
    InvalidChar {
        /// The kind of value.
        what: &'static str,
        /// The offending character.
        found: char,
        /// Its (character) position.
        pos: usize,
    },
    /// A space inside the value (only trailing padding spaces are allowed).
    #[error("{what} contains an embedded space at position {pos}; RFC 5024 allows spaces only as trailing padding")]
    EmbeddedSpace {
        /// The kind of value.
        what: &'static str,
        /// Position of the space.
        pos: usize,
    },
    /// A number or date/time component outside its range.
    #[error("{what} {value} is out of range ({range})")]
    OutOfRange {
        /// The kind of value.
        what: &'static str,
        /// The rejected value.
        value: u64,
        /// The allowed range, for the message.
        range: &'static str,
    },
    /// A textual value that does not parse.
    #[error("{what}: cannot parse {input:?}; expected {expected}")]
    Parse {
        /// The kind of value.
        what: &'static str,
        /// The input (truncated to a sensible length).
        input: String,
        /// What was expected.
        expected: &'static str,
    },
}
