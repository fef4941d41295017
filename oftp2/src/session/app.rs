//! What the session asks of the application: partner authorisation, where
//! incoming files go, which files and receipts to send.
//!
//! These are the RFC's User Monitor decisions (F_CONNECT_RS,
//! F_START_FILE_RS, F_CLOSE_FILE_RS, F_START_FILE_RQ, F_EERP_RQ, ...).
//! They are answered synchronously, so the session collapses the RFC's
//! "waiting for the User Monitor" states (A_WF_CONRS, OPIP, CLIP, RTRP)
//! into the transitions that enter them. All file I/O happens behind these
//! traits, which keeps the protocol core testable without a disk.

use std::fmt;
use std::io::{Read, Seek, Write};

use crate::codec::{Eerp, Nerp, Sfid, Ssid};
use crate::record::{Counts, RestartPoint};
use crate::value::{EndFileRefusal, EndSessionReason, OdetteId, Password, StartFileRefusal};

/// Decides whether the partner that sent an SSID may have a session
/// (the RFC's F_CONNECT_IND / F_CONNECT_RS, section 3.2).
pub trait Authenticator: Send {
    /// Check the partner's SSID: its identification code (SSIDCODE),
    /// password (SSIDPSWD), user data (SSIDUSER). Return the ESID reason
    /// to refuse with: usually [`EndSessionReason::UserCodeNotKnown`],
    /// [`EndSessionReason::InvalidPassword`] or
    /// [`EndSessionReason::ResourcesNotAvailable`].
    ///
    /// Called on both sides: the responder checks the initiator, the
    /// initiator checks that the responder is who it called.
    fn authenticate(&mut self, partner: &Ssid) -> Result<(), EndSessionReason>;

    /// Responder only, after [`Self::authenticate`] accepted the partner:
    /// the SSIDPSWD to answer with, when this partner expects another
    /// password from us than [`super::Config::password`]. Servers keep one
    /// outgoing password per partner, but the session's configuration is
    /// fixed before the partner has said who it is.
    fn answer_password(&mut self, _partner: &Ssid) -> Option<Password> {
        None
    }

    /// Responder only, after [`Self::authenticate`] accepted the partner:
    /// whether secure authentication (SSIDAUTH) is required with this
    /// partner, when that is a per-partner setting. `None` keeps
    /// [`super::Config::secure_authentication`]. `Some(true)` needs
    /// [`super::Config::authentication_keys`]; without them the session
    /// ends with ESID 12.
    fn secure_authentication(&mut self, _partner: &Ssid) -> Option<bool> {
        None
    }
}

/// Where incoming virtual files go (F_START_FILE_IND / F_START_FILE_RS).
pub trait Inbox: Send {
    /// The partner offers a file. Accept it with a writer positioned at the
    /// restart point, or refuse it (SFNA).
    ///
    /// For a restart, `offer.sfid.restart_position` is the most the sender
    /// offers; the returned [`RestartPoint`] must not exceed it (use
    /// [`crate::record::resume_point`] on the partial file and truncate it
    /// to `local_offset`). Without restart (or for a new file) return
    /// [`RestartPoint::START`].
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>>;
}

/// A file the partner offers (the SFID), with context.
#[derive(Debug)]
pub struct FileOffer<'a> {
    /// The partner's identification code (from its SSID).
    pub partner: &'a OdetteId,
    /// The Start File command as received.
    pub sfid: &'a Sfid,
    /// Whether restart was negotiated; if not, `sfid.restart_position` is 0.
    pub restart_allowed: bool,
}

/// Acceptance of an incoming file.
pub struct Accepted {
    /// Receives the local representation of the file (see
    /// [`crate::record`]), positioned at `restart.local_offset`.
    pub writer: Box<dyn IncomingFile>,
    /// Where the transfer resumes ([`RestartPoint::START`] for a new file).
    pub restart: RestartPoint,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// The destination of one incoming file.
pub trait IncomingFile: Write + Send {
    /// EFID arrived and its record and unit counts match what was
    /// received: make the file durable and hand it on (F_CLOSE_FILE_RS).
    /// An error answers EFNA with that reason instead of EFPA.
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>>;

    /// The transfer did not complete (EFNA sent, session ended). Keep the
    /// data for a later restart, or discard it. The writer is dropped next.
    fn abort(&mut self) {}
}

/// What an [`IncomingFile`] returns, wrapped in an `io::Error`
/// ([`EndSession::into_io`]), when the transfer must stop now rather than
/// end with EFNA at EFID: the partner would otherwise keep sending until
/// its EFID (a file far larger than announced, a disk at its reserve).
/// The session answers ESID with this reason and text, and the writer's
/// [`IncomingFile::abort`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSession {
    pub reason: EndSessionReason,
    pub text: String,
}

impl EndSession {
    pub fn new(reason: EndSessionReason, text: impl Into<String>) -> Self {
        EndSession {
            reason,
            text: text.into(),
        }
    }

    /// The error to return from `Write::write`.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The request inside an error returned by a writer, if it is one.
    pub fn from_io(e: &std::io::Error) -> Option<&EndSession> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<EndSession>())
    }
}

impl fmt::Display for EndSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ESID {}: {}", self.reason, self.text)
    }
}

impl std::error::Error for EndSession {}

/// A refusal with its RFC reason code and a text for the partner's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal<R> {
    /// The reason code (SFNAREAS / EFNAREAS).
    pub reason: R,
    /// SFNA only: the partner may try again later (SFNARRTR).
    pub retry_later: bool,
    /// Reason text (SFNAREAST / EFNAREAST, sent at OFTP 2.0 only).
    pub text: String,
}

impl<R> Refusal<R> {
    /// A refusal without retry and without text.
    pub fn new(reason: R) -> Self {
        Self {
            reason,
            retry_later: false,
            text: String::new(),
        }
    }

    /// Set the retry-later indicator.
    pub fn retry_later(mut self, retry: bool) -> Self {
        self.retry_later = retry;
        self
    }

    /// Set the reason text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }
}

/// What this side has to send: files and receipts (F_START_FILE_RQ,
/// F_EERP_RQ, F_NERP_RQ). Each `next_*` call hands over one item; the
/// session reports what became of it through [`super::Event`]s.
pub trait Outbox: Send {
    /// The next file to send to this partner, if any. Only called while
    /// the session may send files (negotiated mode `S` or `B`).
    fn next_file(&mut self) -> Option<OutgoingFile>;

    /// The next EERP or NERP due to this partner, if any.
    fn next_receipt(&mut self) -> Option<Receipt>;

    /// Whether we would like the turn now, asked when the partner's file
    /// was received successfully: `true` answers EFPA with "change
    /// direction requested" (section 5.3.9). Default: `false` — the
    /// partner sends everything first and hands over the turn with CD.
    fn wants_turn(&mut self) -> bool {
        false
    }
}

/// A readable, seekable file source.
pub trait FileData: Read + Seek + Send {}
impl<T: Read + Seek + Send> FileData for T {}

/// A file to send.
pub struct OutgoingFile {
    /// The Start File command to send: dataset name, date/time, user
    /// data, destination, originator, format, record length, sizes,
    /// security attributes and the restart position we offer (records for
    /// F/V, 1K blocks for U/T; 0 for a fresh start; ignored if restart was
    /// not negotiated).
    pub sfid: Sfid,
    /// The local file in the representation of [`crate::record`]. It is
    /// read from the position the receiver answers in SFPA.
    pub data: Box<dyn FileData>,
}

impl fmt::Debug for OutgoingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingFile")
            .field("sfid", &self.sfid)
            .finish_non_exhaustive()
    }
}

/// An end-to-end receipt (unsigned here; signed receipts come with the
/// security work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// End to End Response: the file reached its final destination.
    Eerp(Eerp),
    /// Negative End Response: it could not be delivered or processed.
    Nerp(Nerp),
}

/// The handles a session works with.
pub struct Handlers {
    /// Partner authorisation.
    pub authenticator: Box<dyn Authenticator>,
    /// Incoming files.
    pub inbox: Box<dyn Inbox>,
    /// Outgoing files and receipts.
    pub outbox: Box<dyn Outbox>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers").finish_non_exhaustive()
    }
}
