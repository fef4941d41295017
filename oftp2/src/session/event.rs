//! What a session reports to the application, and its timer requests.

use std::fmt;
use std::time::Duration;

use crate::codec::{Deviation, Sfid};
use crate::record::Counts;
use crate::value::{
    DatasetName, EndFileRefusal, EndSessionReason, OdetteId, StartFileRefusal, Timestamp,
};

use super::app::Receipt;
use super::config::Negotiated;

/// The identity of a virtual file (section 1.5.2): what an EERP/NERP
/// refers back to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualFileId {
    /// Dataset name.
    pub dataset_name: DatasetName,
    /// Date and time stamp set by the originator.
    pub timestamp: Timestamp,
    /// Originator.
    pub originator: OdetteId,
    /// Final destination.
    pub destination: OdetteId,
}

impl VirtualFileId {
    /// The identity of the file an SFID announces.
    pub fn of(sfid: &Sfid) -> Self {
        Self {
            dataset_name: sfid.dataset_name,
            timestamp: sfid.timestamp,
            originator: sfid.originator,
            destination: sfid.destination,
        }
    }
}

impl fmt::Display for VirtualFileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} from {} to {}",
            self.dataset_name, self.timestamp, self.originator, self.destination
        )
    }
}

/// Direction of a file transfer seen from this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We send (Speaker).
    Send,
    /// We receive (Listener).
    Receive,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The SSID exchange succeeded (F_CONNECT_CF / F_CONNECT_RS), and
    /// with secure authentication both sides proved their identity.
    Connected(Box<Negotiated>),
    /// A file transfer began (SFPA sent or received) at `restart_position`
    /// (records or 1K blocks), i.e. local offset `restart_offset`.
    FileStarted {
        /// Send or receive.
        direction: Direction,
        /// Which file.
        file: VirtualFileId,
        /// SFPAACNT.
        restart_position: u64,
        /// Local file offset the transfer continues from.
        restart_offset: u64,
    },
    /// More of the current file went through.
    Progress {
        /// Send or receive.
        direction: Direction,
        /// Virtual File octets so far (restarted part included).
        units: u64,
    },
    /// A file was transferred completely and acknowledged with EFPA.
    FileDone {
        /// Send or receive.
        direction: Direction,
        /// Which file.
        file: VirtualFileId,
        /// The EFID counts.
        counts: Counts,
    },
    /// A file was refused with SFNA (either direction).
    FileRefused {
        /// `Send`: the partner refused our file; `Receive`: we refused.
        direction: Direction,
        /// Which file.
        file: VirtualFileId,
        /// SFNAREAS.
        reason: StartFileRefusal,
        /// SFNARRTR: retry later.
        retry_later: bool,
        /// SFNAREAST.
        text: String,
    },
    /// A file transfer failed at its end with EFNA (either direction).
    FileFailed {
        /// Send or receive.
        direction: Direction,
        /// Which file.
        file: VirtualFileId,
        /// EFNAREAS.
        reason: EndFileRefusal,
        /// EFNAREAST or a local explanation.
        text: String,
    },
    /// The session ended during a transfer. The partial file is kept by
    /// the application's writer (its `abort` was called) and can be
    /// resumed with restart in a later session.
    FileInterrupted {
        /// Send or receive.
        direction: Direction,
        /// Which file.
        file: VirtualFileId,
        /// Virtual File octets transferred up to the interruption (the
        /// restarted part included).
        units: u64,
    },
    /// A file could not be offered because it is not representable at the
    /// negotiated protocol level or its local data is unusable; it was
    /// skipped without sending anything.
    FileSkipped {
        /// Which file.
        file: VirtualFileId,
        /// Why.
        error: String,
    },
    /// We sent a receipt and the partner acknowledged it with RTR.
    ReceiptSent(Receipt),
    /// A receipt could not be sent (a NERP to a 1.3 partner).
    ReceiptSkipped(Receipt),
    /// The partner sent a receipt; RTR has been answered.
    ReceiptReceived(Receipt),
    /// The signature of the receipt just reported in
    /// [`Event::ReceiptReceived`] was checked (only with
    /// [`super::Config::receipt_security`] set). The file hash is not
    /// compared here: check `receipt` against the hash kept with the queue
    /// entry, or call [`crate::security::receipt::verify_receipt`] with it.
    ReceiptChecked {
        /// The receipt.
        receipt: Receipt,
        /// Unsigned, valid (with the signer) or invalid (with the reason).
        verification: crate::security::receipt::ReceiptVerification,
    },
    /// The partner deviated from RFC 5024 in a way that was accepted.
    Deviation(DeviationReport),
    /// The session is over. No further events follow.
    Ended(SessionEnd),
}

/// An accepted deviation from RFC 5024 by the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviationReport {
    /// In a command's format (see [`crate::codec::Deviation`]).
    Format(Deviation),
    /// In the protocol sequence.
    Behaviour(String),
}

impl fmt::Display for DeviationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviationReport::Format(d) => d.fmt(f),
            DeviationReport::Behaviour(s) => f.write_str(s),
        }
    }
}

/// Who ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// We sent ESID (AO = Local in the RFC's F_ABORT_IND).
    Local,
    /// The partner sent ESID (AO = Distant).
    Remote,
    /// The connection ended without ESID (N_DISC_IND / I/O failure).
    Network,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Who ended it.
    pub origin: Origin,
    /// The ESID reason (for [`Origin::Network`]: `Unspecified`).
    pub reason: EndSessionReason,
    /// ESID reason text, or a local explanation.
    pub text: String,
}

impl SessionEnd {
    /// Whether the session ended by a normal release (ESID `00`).
    pub fn is_normal(&self) -> bool {
        self.reason == EndSessionReason::Normal && self.origin != Origin::Network
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.origin {
            Origin::Local => "by us",
            Origin::Remote => "by the partner",
            Origin::Network => "by the network (no ESID)",
        };
        write!(f, "session ended {who}: {}", self.reason)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// Identifies one arming of the session's timer; a timeout for an id that
/// is no longer current is ignored, so a driver need not cancel exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

/// A change to the session's single timer (the RFC's inactivity timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerRequest {
    /// Call [`super::Session::handle_timeout`] with `id` after `after`,
    /// replacing any earlier request.
    Arm {
        /// Pass back on expiry.
        id: TimerId,
        /// From now.
        after: Duration,
    },
    /// No timer is needed any more.
    Disarm,
}
