//! Receipts (EERP/NERP) that partners deliver for files we sent, in a
//! session of either side (`os4xrd_*` when the partner calls, `os4xsqd`
//! when we call): the one place that decides whether a receipt may
//! settle a queue entry.
//!
//! A receipt names its file only by the virtual file's identity
//! (dataset name, stamp, originator, destination), which every partner
//! can read off its own traffic or guess. So a receipt settles an entry
//! only when all of these hold, checked in this order:
//!
//! 1. it comes from the partner the file was sent to, or from one that
//!    partner lists in `receipts_via` (`os4x partner set --receipts-via`);
//! 2. the entry awaits a receipt (`sent-awaiting-eerp`): a file not yet
//!    (completely) sent cannot have been received;
//! 3. its signature verifies when it is signed, and it is signed when we
//!    asked for a signed receipt (SFIDSIGN).
//!
//! The signature check comes last so that a receipt from the wrong
//! partner cannot even record a verification result on someone else's
//! entry. The first receipt for a file is final.

use oftp2::session::Receipt;
use oftp2::value::OdetteId;

use crate::partner::PartnerStore;
use crate::queue::{QueueStore, ReceiptApplied, ReceiptMatch};
use crate::security::Security;

/// What became of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Entry `0` is delivered (EERP) or failed (NERP) now.
    Applied(i64),
    /// Entry `0` was settled by an earlier receipt, which stands.
    Repeated(i64),
    /// Not applied, with the reason (logged).
    Refused(String),
    /// No queue entry has this identity.
    Unknown,
}

/// The queue entry a receipt answers: EERPDEST/NERPDEST is the file's
/// originator, EERPORIG/NERPORIG its destination.
pub fn receipt_match(receipt: &Receipt) -> ReceiptMatch {
    match receipt {
        Receipt::Eerp(e) => ReceiptMatch {
            dataset_name: e.dataset_name.to_string(),
            file_timestamp: e.timestamp.to_string(),
            originator: e.destination.to_string(),
            destination: e.originator.to_string(),
        },
        Receipt::Nerp(n) => ReceiptMatch {
            dataset_name: n.dataset_name.to_string(),
            file_timestamp: n.timestamp.to_string(),
            originator: n.destination.to_string(),
            destination: n.originator.to_string(),
        },
    }
}

/// Applies `receipt`, delivered by the authenticated session partner
/// `from`, to its queue entry if `from` may settle it. Logs the outcome
/// with the partner and session.
pub fn receipt_received(
    queue: &QueueStore,
    partners: &PartnerStore,
    security: Option<&Security>,
    from: &OdetteId,
    session: u64,
    receipt: &Receipt,
) -> Outcome {
    let outcome = settle(queue, partners, security, from, receipt);
    let m = receipt_match(receipt);
    let file = format!("{} {}", m.dataset_name, m.file_timestamp);
    let (kind, nerp) = match receipt {
        Receipt::Eerp(_) => ("EERP", None),
        Receipt::Nerp(n) => ("NERP", Some(n.reason)),
    };
    match &outcome {
        Outcome::Applied(entry) => match nerp {
            None => {
                tracing::info!(partner = %from, session, entry, file, kind, "EERP received; delivered")
            }
            Some(reason) => {
                tracing::warn!(partner = %from, session, entry, file, kind, reason = %reason, "NERP received; failed")
            }
        },
        Outcome::Repeated(entry) => {
            tracing::info!(partner = %from, session, entry, file, kind, "receipt repeated; the first one stands")
        }
        Outcome::Refused(why) => {
            tracing::warn!(partner = %from, session, file, kind, "receipt not applied: {why}")
        }
        Outcome::Unknown => {
            tracing::warn!(partner = %from, session, file, kind, originator = %m.originator, "receipt for no known sent file")
        }
    }
    outcome
}

fn settle(
    queue: &QueueStore,
    partners: &PartnerStore,
    security: Option<&Security>,
    from: &OdetteId,
    receipt: &Receipt,
) -> Outcome {
    let m = receipt_match(receipt);
    let entry = match queue.receipt_entry(&m) {
        Ok(Some(e)) => e,
        Ok(None) => return Outcome::Unknown,
        Err(e) => return Outcome::Refused(format!("cannot read the send queue: {e}")),
    };
    let allowed = from.as_str().eq_ignore_ascii_case(&entry.partner)
        || match partners.get(&entry.partner) {
            Ok(Some(p)) => p.accepts_receipts_from(from),
            Ok(None) => false,
            Err(e) => {
                return Outcome::Refused(format!("cannot read partner {}: {e}", entry.partner))
            }
        };
    if !allowed {
        return Outcome::Refused(format!(
            "entry {} was sent to {}, not to {from}; a partner that forwards {}'s receipts \
             must be listed with `os4x partner set {} --receipts-via {from}`",
            entry.id, entry.partner, entry.partner, entry.partner
        ));
    }
    if entry.eerp == "eerp" || entry.eerp == "nerp" {
        return Outcome::Repeated(entry.id);
    }
    if entry.state != crate::queue::EntryState::SentAwaitingEerp {
        return Outcome::Refused(format!(
            "entry {} is {}, not awaiting a receipt",
            entry.id, entry.state
        ));
    }
    if !crate::security::check_receipt(security, queue, entry.id, receipt) {
        return Outcome::Refused(format!(
            "entry {}: the receipt's signature is missing or does not verify \
             (receipt_verification in `os4x queue --json`)",
            entry.id
        ));
    }
    let nerp_text = match receipt {
        Receipt::Eerp(_) => None,
        Receipt::Nerp(n) => Some(
            format!("NERP from {}: {} {}", n.creator, n.reason, n.text)
                .trim_end()
                .to_owned(),
        ),
    };
    match queue.apply_receipt(entry.id, nerp_text.as_deref()) {
        Ok(ReceiptApplied::Applied) => Outcome::Applied(entry.id),
        Ok(ReceiptApplied::AlreadySettled { .. }) => Outcome::Repeated(entry.id),
        Ok(ReceiptApplied::NotAwaiting { state }) => Outcome::Refused(format!(
            "entry {} is {state}, not awaiting a receipt",
            entry.id
        )),
        Err(e) => Outcome::Refused(format!(
            "cannot record it: {e}; the partner will not send it again"
        )),
    }
}
