//! Single-character and small coded attributes: capabilities, record
//! format, file security, cipher suite, file compression and enveloping.

use std::fmt;

/// Send/receive capability of a location (SSIDSR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendReceive {
    /// `S`: the location can only send files.
    Send,
    /// `R`: the location can only receive files.
    Receive,
    /// `B`: the location can both send and receive files.
    Both,
}

impl SendReceive {
    /// The wire character.
    pub const fn as_byte(self) -> u8 {
        match self {
            SendReceive::Send => b'S',
            SendReceive::Receive => b'R',
            SendReceive::Both => b'B',
        }
    }

    /// Parses the wire character (upper case only).
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'S' => Some(SendReceive::Send),
            b'R' => Some(SendReceive::Receive),
            b'B' => Some(SendReceive::Both),
            _ => None,
        }
    }

    /// Whether a location with this capability may send files.
    pub const fn can_send(self) -> bool {
        matches!(self, SendReceive::Send | SendReceive::Both)
    }

    /// Whether a location with this capability may receive files.
    pub const fn can_receive(self) -> bool {
        matches!(self, SendReceive::Receive | SendReceive::Both)
    }

    /// Whether two adjacent locations can work together: RFC 5024 makes it
    /// an error when both only send or both only receive.
    pub const fn compatible_with(self, peer: SendReceive) -> bool {
        !matches!(
            (self, peer),
            (SendReceive::Send, SendReceive::Send) | (SendReceive::Receive, SendReceive::Receive)
        )
    }
}

/// Virtual file record format (SFIDFMT), RFC 5024 section 1.5.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// `F`: fixed format binary file, all records have the same length.
    Fixed,
    /// `V`: variable format binary file.
    Variable,
    /// `U`: unstructured binary file, no records.
    Unstructured,
    /// `T`: text, lines delimited by CR-LF.
    Text,
}

impl RecordFormat {
    /// The wire character.
    pub const fn as_byte(self) -> u8 {
        match self {
            RecordFormat::Fixed => b'F',
            RecordFormat::Variable => b'V',
            RecordFormat::Unstructured => b'U',
            RecordFormat::Text => b'T',
        }
    }

    /// Parses the wire character (upper case only).
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'F' => Some(RecordFormat::Fixed),
            b'V' => Some(RecordFormat::Variable),
            b'U' => Some(RecordFormat::Unstructured),
            b'T' => Some(RecordFormat::Text),
            _ => None,
        }
    }

    /// Whether restart positions and EFIDRCNT count records (F, V) rather
    /// than 1K blocks / nothing (U, T).
    pub const fn has_records(self) -> bool {
        matches!(self, RecordFormat::Fixed | RecordFormat::Variable)
    }
}

impl fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordFormat::Fixed => "F",
            RecordFormat::Variable => "V",
            RecordFormat::Unstructured => "U",
            RecordFormat::Text => "T",
        })
    }
}

/// File security level (SFIDSEC), OFTP 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityLevel {
    /// `00`: no security services.
    #[default]
    None,
    /// `01`: encrypted.
    Encrypted,
    /// `02`: signed.
    Signed,
    /// `03`: encrypted and signed.
    EncryptedAndSigned,
}

impl SecurityLevel {
    /// The two-digit code.
    pub const fn code(self) -> u8 {
        match self {
            SecurityLevel::None => 0,
            SecurityLevel::Encrypted => 1,
            SecurityLevel::Signed => 2,
            SecurityLevel::EncryptedAndSigned => 3,
        }
    }

    /// From the code; the RFC defines no others.
    pub const fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(SecurityLevel::None),
            1 => Some(SecurityLevel::Encrypted),
            2 => Some(SecurityLevel::Signed),
            3 => Some(SecurityLevel::EncryptedAndSigned),
            _ => None,
        }
    }

    /// Whether the file is encrypted.
    pub const fn encrypted(self) -> bool {
        matches!(
            self,
            SecurityLevel::Encrypted | SecurityLevel::EncryptedAndSigned
        )
    }

    /// Whether the file is signed.
    pub const fn signed(self) -> bool {
        matches!(
            self,
            SecurityLevel::Signed | SecurityLevel::EncryptedAndSigned
        )
    }
}

/// Cipher suite (SFIDCIPH), RFC 5024 section 10.2. Further suites are
/// published by ODETTE (section 10.3) and are kept as [`CipherSuite::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CipherSuite {
    /// `00`: no security services.
    #[default]
    None,
    /// `01`: 3DES_EDE_CBC_3KEY, RSA_PKCS1_15, SHA-1.
    TripleDesRsaSha1,
    /// `02`: AES_256_CBC, RSA_PKCS1_15, SHA-1.
    Aes256RsaSha1,
    /// Any other two-digit code (optional suites from the ODETTE list).
    Other(u8),
}

impl CipherSuite {
    /// The two-digit code.
    pub const fn code(self) -> u8 {
        match self {
            CipherSuite::None => 0,
            CipherSuite::TripleDesRsaSha1 => 1,
            CipherSuite::Aes256RsaSha1 => 2,
            CipherSuite::Other(c) => c,
        }
    }

    /// From the code; unknown codes are preserved.
    pub const fn from_code(c: u8) -> Self {
        match c {
            0 => CipherSuite::None,
            1 => CipherSuite::TripleDesRsaSha1,
            2 => CipherSuite::Aes256RsaSha1,
            c => CipherSuite::Other(c),
        }
    }
}

/// File compression algorithm (SFIDCOMP), OFTP 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FileCompression {
    /// `0`: no compression.
    #[default]
    None,
    /// `1`: compressed with the ZLIB algorithm.
    Zlib,
    /// Any other digit (extension per section 10.3).
    Other(u8),
}

impl FileCompression {
    /// The one-digit code.
    pub const fn code(self) -> u8 {
        match self {
            FileCompression::None => 0,
            FileCompression::Zlib => 1,
            FileCompression::Other(c) => c,
        }
    }

    /// From the code; unknown codes are preserved.
    pub const fn from_code(c: u8) -> Self {
        match c {
            0 => FileCompression::None,
            1 => FileCompression::Zlib,
            c => FileCompression::Other(c),
        }
    }
}

/// File enveloping format (SFIDENV), OFTP 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FileEnvelope {
    /// `0`: no envelope.
    #[default]
    None,
    /// `1`: enveloped using CMS.
    Cms,
    /// Any other digit (extension per section 10.3).
    Other(u8),
}

impl FileEnvelope {
    /// The one-digit code.
    pub const fn code(self) -> u8 {
        match self {
            FileEnvelope::None => 0,
            FileEnvelope::Cms => 1,
            FileEnvelope::Other(c) => c,
        }
    }

    /// From the code; unknown codes are preserved.
    pub const fn from_code(c: u8) -> Self {
        match c {
            0 => FileEnvelope::None,
            1 => FileEnvelope::Cms,
            c => FileEnvelope::Other(c),
        }
    }
}
