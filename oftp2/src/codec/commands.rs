//! One struct per ODETTE-FTP command (RFC 5024 section 5.3), with typed
//! fields named after what they mean; each field's doc names the wire field.

use bytes::Bytes;

use crate::value::{
    CipherSuite, DatasetName, EndFileRefusal, EndSessionReason, FileCompression, FileEnvelope,
    NerpReason, OdetteId, Password, ProtocolLevel, RecordFormat, SecurityLevel, SendReceive,
    StartFileRefusal, Timestamp, UserData,
};

/// SSRM, Start Session Ready Message (`I`): the responder's first words,
/// `"ODETTE FTP READY "` and a carriage return. It has no variable fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ssrm;

impl Ssrm {
    /// SSRMMSG, the fixed ready message (17 octets).
    pub const MESSAGE: &'static [u8; 17] = b"ODETTE FTP READY ";
}

/// SSID, Start Session (`X`), sent by both sides to identify themselves and
/// negotiate the session parameters.
///
/// An SSID carries its own protocol level, so it is encoded and decoded in
/// the layout of [`Ssid::level`] whatever level the caller passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ssid {
    /// SSIDLEV, the protocol release level this side offers.
    pub level: ProtocolLevel,
    /// SSIDCODE, this side's identification code.
    pub id: OdetteId,
    /// SSIDPSWD, the password agreed with the partner.
    pub password: Password,
    /// SSIDSDEB, the largest data exchange buffer this side accepts
    /// (including the command octet, excluding the STH); 128..=99999.
    pub buffer_size: u32,
    /// SSIDSR, send/receive capability.
    pub capabilities: SendReceive,
    /// SSIDCMPR, data exchange buffer compression supported.
    pub compression: bool,
    /// SSIDREST, restart of partially transmitted files supported.
    pub restart: bool,
    /// SSIDSPEC, special logic supported (X.25 asynchronous access only).
    pub special_logic: bool,
    /// SSIDCRED, credit: data exchange buffers the speaker may send before
    /// it must wait for a CDT; 0..=999.
    pub credit: u16,
    /// SSIDAUTH, secure authentication required (OFTP 2.0 only; must be
    /// `false` at lower levels).
    pub secure_authentication: bool,
    /// SSIDUSER, user data.
    pub user_data: UserData,
}

/// SFID, Start File (`H`): the speaker proposes to send a virtual file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sfid {
    /// SFIDDSN, virtual file dataset name.
    pub dataset_name: DatasetName,
    /// SFIDDATE + SFIDTIME, virtual file date and time stamp.
    pub timestamp: Timestamp,
    /// SFIDUSER, user data.
    pub user_data: UserData,
    /// SFIDDEST, the final recipient of the file.
    pub destination: OdetteId,
    /// SFIDORIG, the originator of the file.
    pub originator: OdetteId,
    /// SFIDFMT, record format.
    pub format: RecordFormat,
    /// SFIDLRECL, maximum record size (0 for T and U); 0..=99999.
    pub max_record_size: u32,
    /// SFIDFSIZ, transmitted file size in 1K blocks (13 digits at 2.0,
    /// 7 digits at 1.x).
    pub file_size: u64,
    /// SFIDOSIZ, original file size in 1K blocks (OFTP 2.0). At 1.x it is
    /// not sent; decoding sets it to `file_size` (no security or
    /// compression services exist there), and encoding requires it to be
    /// 0 or equal to `file_size`.
    pub original_file_size: u64,
    /// SFIDREST, restart position: record number for F/V, 1K blocks for
    /// U/T (17 digits at 2.0, 9 digits at 1.x).
    pub restart_position: u64,
    /// SFIDSEC, security level (OFTP 2.0).
    pub security: SecurityLevel,
    /// SFIDCIPH, cipher suite (OFTP 2.0).
    pub cipher_suite: CipherSuite,
    /// SFIDCOMP, file compression algorithm (OFTP 2.0).
    pub compression: FileCompression,
    /// SFIDENV, file enveloping format (OFTP 2.0).
    pub envelope: FileEnvelope,
    /// SFIDSIGN, signed EERP requested (OFTP 2.0).
    pub signed_eerp: bool,
    /// SFIDDESC (length SFIDDESCL), virtual file description, UTF-8, at
    /// most 999 octets (OFTP 2.0).
    pub description: String,
}

/// SFPA, Start File Positive Answer (`2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sfpa {
    /// SFPAACNT, answer count: where transmission restarts (at most the
    /// SFID restart position; 0 without restart). 17 digits at 2.0, 9 at 1.x.
    pub answer_count: u64,
}

/// SFNA, Start File Negative Answer (`3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sfna {
    /// SFNAREAS, answer reason.
    pub reason: StartFileRefusal,
    /// SFNARRTR, the transmission may be retried later (OFTP 1.4 and 2.0;
    /// must be `false` at 1.3).
    pub retry: bool,
    /// SFNAREAST (length SFNAREASL), reason text, UTF-8, at most 999
    /// octets. OFTP 2.0 only: it is advisory, so at lower levels it is
    /// left out when encoding and empty when decoding.
    pub text: String,
}

/// DATA, Data Exchange Buffer (`D`).
///
/// `payload` is everything after the command octet (subrecord headers and
/// subrecords, see [`crate::deb`]); decoding slices it out of the received
/// frame without copying.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// DATABUF, the data exchange buffer payload.
    pub payload: Bytes,
}

/// CDT, Set Credit (`C`). Its two reserved octets are sent as spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cdt;

/// EFID, End File (`T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Efid {
    /// EFIDRCNT, record count (F/V; 0 for U/T). 17 digits at 2.0, 9 at 1.x.
    pub record_count: u64,
    /// EFIDUCNT, unit count: octets transmitted. 17 digits at 2.0, 12 at 1.x.
    pub unit_count: u64,
}

/// EFPA, End File Positive Answer (`4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Efpa {
    /// EFPACD, the listener asks the speaker for a Change Direction.
    pub change_direction: bool,
}

/// EFNA, End File Negative Answer (`5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Efna {
    /// EFNAREAS, answer reason.
    pub reason: EndFileRefusal,
    /// EFNAREAST (length EFNAREASL), reason text, UTF-8, at most 999
    /// octets. OFTP 2.0 only: left out at lower levels when encoding.
    pub text: String,
}

/// ESID, End Session (`F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Esid {
    /// ESIDREAS, reason code.
    pub reason: EndSessionReason,
    /// ESIDREAST (length ESIDREASL), reason text, UTF-8, at most 999
    /// octets. OFTP 2.0 only: left out at lower levels when encoding.
    pub text: String,
}

/// CD, Change Direction (`R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cd;

/// EERP, End to End Response (`E`): the final recipient confirms a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eerp {
    /// EERPDSN, dataset name of the acknowledged file.
    pub dataset_name: DatasetName,
    /// EERPDATE + EERPTIME, the file's date and time stamp.
    pub timestamp: Timestamp,
    /// EERPUSER, user data.
    pub user_data: UserData,
    /// EERPDEST: the location the EERP goes to, i.e. the file's originator.
    pub destination: OdetteId,
    /// EERPORIG: the location that created the EERP, i.e. the file's
    /// final recipient.
    pub originator: OdetteId,
    /// EERPHSH (length EERPHSHL, binary), hash of the transmitted file;
    /// empty when the EERP is not signed. OFTP 2.0 only.
    pub hash: Bytes,
    /// EERPSIG (length EERPSIGL, binary), CMS signature; empty when not
    /// signed. OFTP 2.0 only.
    pub signature: Bytes,
}

/// NERP, Negative End Response (`N`): the file could not be delivered or
/// processed. OFTP 1.4 and 2.0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nerp {
    /// NERPDSN, dataset name of the file.
    pub dataset_name: DatasetName,
    /// NERPDATE + NERPTIME, the file's date and time stamp.
    pub timestamp: Timestamp,
    /// NERPDEST: the location the NERP goes to, i.e. the file's originator.
    pub destination: OdetteId,
    /// NERPORIG: the file's final recipient.
    pub originator: OdetteId,
    /// NERPCREA, the location that created the NERP.
    pub creator: OdetteId,
    /// NERPREAS, reason code.
    pub reason: NerpReason,
    /// NERPREAST (length NERPREASL), reason text, UTF-8, at most 999
    /// octets. OFTP 2.0 only: left out at 1.4 when encoding.
    pub text: String,
    /// NERPHSH (length NERPHSHL, binary), file hash; empty when unsigned.
    /// OFTP 2.0 only.
    pub hash: Bytes,
    /// NERPSIG (length NERPSIGL, binary), CMS signature; empty when
    /// unsigned. OFTP 2.0 only.
    pub signature: Bytes,
}

/// RTR, Ready To Receive (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rtr;

/// SECD, Security Change Direction (`J`). OFTP 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Secd;

/// AUCH, Authentication Challenge (`A`). OFTP 2.0 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auch {
    /// AUCHCHAL (length AUCHCHLL, binary), the CMS-encrypted 20-octet
    /// random number; at most 65535 octets.
    pub challenge: Bytes,
}

/// AURP, Authentication Response (`S`). OFTP 2.0 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aurp {
    /// AURPRSP, the decrypted challenge (20 octets).
    pub response: [u8; 20],
}
