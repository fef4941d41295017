//! Decoding and encoding errors, and reported deviations.

use std::fmt;

use crate::value::{EndSessionReason, ProtocolLevel, ValueError};

use super::CommandId;

/// Why a command exchange buffer could not be decoded.
///
/// [`DecodeError::end_session_reason`] gives the ESID reason to end the
/// session with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The exchange buffer has no octets at all.
    #[error("empty exchange buffer (no command octet)")]
    Empty,
    /// The first octet is no ODETTE-FTP command identifier.
    #[error("unknown command identifier {code:#04x} ({printable})", printable = printable(*code))]
    UnknownCommand {
        /// The octet received.
        code: u8,
    },
    /// The command exists, but not at the negotiated protocol level.
    #[error("{command} does not exist at protocol level {level}")]
    NotAtLevel {
        /// The command received.
        command: CommandId,
        /// The level in force.
        level: ProtocolLevel,
    },
    /// The buffer ends before the command does.
    #[error("{command} is truncated: it needs at least {needed} octets, the buffer has {actual}")]
    Truncated {
        /// The command.
        command: CommandId,
        /// Octets needed (for what the command declares so far).
        needed: usize,
        /// Octets present.
        actual: usize,
    },
    /// The buffer is longer than the command.
    #[error("{command} is {actual} octets long, but its fields make {expected}")]
    TooLong {
        /// The command.
        command: CommandId,
        /// Length implied by the command's fields.
        expected: usize,
        /// Octets present.
        actual: usize,
    },
    /// A field holds something its format does not allow.
    #[error("{command} field {field}: {problem}")]
    InvalidField {
        /// The command.
        command: CommandId,
        /// The RFC's field name, e.g. "SFIDFSIZ".
        field: &'static str,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// Strict decoding refused a deviation that lenient decoding accepts.
    #[error("{0} (rejected by strict decoding)")]
    Deviation(Deviation),
}

impl DecodeError {
    /// The ESID reason code to end the session with because of this error
    /// (RFC 5024 section 5.3.11): an unknown or out-of-level command is
    /// "01 Command not recognised", a buffer whose length does not fit the
    /// command is "07 Exchange Buffer size error", a bad field is
    /// "06 Command contained invalid data".
    pub fn end_session_reason(&self) -> EndSessionReason {
        match self {
            DecodeError::Empty
            | DecodeError::UnknownCommand { .. }
            | DecodeError::NotAtLevel { .. } => EndSessionReason::CommandNotRecognised,
            DecodeError::Truncated { .. } | DecodeError::TooLong { .. } => {
                EndSessionReason::ExchangeBufferSizeError
            }
            DecodeError::InvalidField { .. } | DecodeError::Deviation(_) => {
                EndSessionReason::CommandContainedInvalidData
            }
        }
    }

    /// The command concerned, if the first octet was recognised.
    pub fn command(&self) -> Option<CommandId> {
        match self {
            DecodeError::Empty | DecodeError::UnknownCommand { .. } => None,
            DecodeError::NotAtLevel { command, .. }
            | DecodeError::Truncated { command, .. }
            | DecodeError::TooLong { command, .. }
            | DecodeError::InvalidField { command, .. } => Some(*command),
            DecodeError::Deviation(d) => Some(d.command),
        }
    }
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        "not a printable character".to_owned()
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    /// A numeric field holds something other than digits.
    #[error("not a number: {found:?}")]
    NotNumeric {
        /// The field content (lossy).
        found: String,
    },
    /// An alphanumeric field holds a control or non-ASCII octet.
    #[error("octet {byte:#04x} at offset {pos} is not printable ASCII")]
    NotPrintable {
        /// The octet.
        byte: u8,
        /// Its offset within the field.
        pos: usize,
    },
    /// A fixed-value field holds an unexpected octet.
    #[error("found {found}, expected {expected}", found = printable(*found))]
    Unexpected {
        /// What was received.
        found: u8,
        /// What the RFC allows.
        expected: &'static str,
    },
    /// A required value is blank.
    #[error("blank, but a value is required")]
    Blank,
    /// The value is well-formed but out of range (a date, a level...).
    #[error("{0}")]
    Value(ValueError),
    /// The message text is not the one the RFC prescribes.
    #[error("unexpected text {found:?}")]
    WrongText {
        /// The content (lossy).
        found: String,
    },
}

/// Why a command could not be encoded at the requested level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The command does not exist at that protocol level.
    #[error("{command} does not exist at protocol level {level}")]
    NotAtLevel {
        /// The command.
        command: CommandId,
        /// The level requested.
        level: ProtocolLevel,
    },
    /// A numeric value does not fit its field.
    #[error(
        "{command} field {field}: {value} does not fit (maximum {max} at protocol level {level})"
    )]
    OutOfRange {
        /// The command.
        command: CommandId,
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The largest value the field holds at this level.
        max: u64,
        /// The level requested.
        level: ProtocolLevel,
    },
    /// A variable-length value is longer than its field allows.
    #[error("{command} field {field}: {len} octets, at most {max} allowed")]
    TooLong {
        /// The command.
        command: CommandId,
        /// The field.
        field: &'static str,
        /// The value's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The value has no representation at this level (e.g. a file
    /// security setting, a signed receipt or a time counter at OFTP 1.x).
    #[error("{command} field {field} cannot be represented at protocol level {level}: {why}")]
    NotRepresentable {
        /// The command.
        command: CommandId,
        /// The field.
        field: &'static str,
        /// The level requested.
        level: ProtocolLevel,
        /// Why, for the log.
        why: &'static str,
    },
}

/// An accepted departure from the exact RFC format, found while decoding a
/// partner's command. The command was understood; log the deviation so the
/// partner's administrator can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The command.
    pub command: CommandId,
    /// The RFC's name of the field concerned.
    pub field: &'static str,
    /// What was different.
    pub kind: DeviationKind,
}

/// The kinds of [`Deviation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviationKind {
    /// Line feed (0x0A) where a carriage return is required.
    LineFeedTerminator,
    /// Carriage return followed by a line feed instead of a lone CR.
    CrLfTerminator,
    /// The closing carriage return is missing.
    MissingTerminator,
    /// Lowercase letters where upper case is required; the value is kept
    /// as received.
    Lowercase,
    /// Printable ASCII outside the Appendix B subset; kept as received.
    OutsideAppendixB,
    /// A space inside (or leading) a value; kept as received.
    EmbeddedSpace,
    /// The buffer ended inside trailing alphanumeric fields; the missing
    /// octets were taken as padding spaces.
    MissingPadding {
        /// How many octets were missing.
        missing: usize,
    },
    /// Blank octets (space, CR, LF, NUL) after the end of the command,
    /// ignored.
    TrailingBlanks {
        /// How many.
        count: usize,
    },
    /// A reserved field is not blank; its content is ignored.
    ReservedNotBlank,
    /// A numeric field padded with leading spaces instead of zeros, or
    /// entirely blank (taken as zero).
    SpacePaddedNumber,
    /// A UTF-8 text field is not valid UTF-8; invalid sequences were
    /// replaced with U+FFFD.
    InvalidUtf8,
    /// The command uses the layout of another protocol level (an ESID
    /// without reason text at 2.0, or with it at 1.x), told apart by its
    /// length.
    OtherLevelLayout,
}

impl fmt::Display for DeviationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviationKind::LineFeedTerminator => {
                f.write_str("line feed (0x0A) instead of carriage return")
            }
            DeviationKind::CrLfTerminator => {
                f.write_str("carriage return + line feed instead of a lone carriage return")
            }
            DeviationKind::MissingTerminator => f.write_str("carriage return missing"),
            DeviationKind::Lowercase => f.write_str("lowercase letters (kept as received)"),
            DeviationKind::OutsideAppendixB => {
                f.write_str("characters outside RFC 5024 Appendix B (kept as received)")
            }
            DeviationKind::EmbeddedSpace => {
                f.write_str("embedded or leading space (kept as received)")
            }
            DeviationKind::MissingPadding { missing } => {
                write!(
                    f,
                    "{missing} trailing padding octets missing, taken as spaces"
                )
            }
            DeviationKind::TrailingBlanks { count } => {
                write!(
                    f,
                    "{count} blank octets after the end of the command, ignored"
                )
            }
            DeviationKind::ReservedNotBlank => f.write_str("reserved field not blank, ignored"),
            DeviationKind::SpacePaddedNumber => {
                f.write_str("number padded with spaces instead of zeros")
            }
            DeviationKind::InvalidUtf8 => f.write_str("invalid UTF-8, replaced with U+FFFD"),
            DeviationKind::OtherLevelLayout => {
                f.write_str("layout of another protocol level, recognised by its length")
            }
        }
    }
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.command, self.field, self.kind)
    }
}
