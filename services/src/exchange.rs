//! The send side of one OFTP session, in either role: hands the session
//! the partner's due receipts and queued files, claimed from the queue
//! one at a time, and records in the queue what became of them.
//!
//! `os4xsqd` runs it as initiator ([`crate::sq::session`]); the receive
//! daemons run it as responder ([`crate::serve`]), so a partner calling
//! us (or polling) gets its queued files in the same session. It lives
//! apart from both so neither daemon imports the other.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use oftp2::codec::Sfid;
use oftp2::session::{Direction, Event, Outbox, OutgoingFile, Receipt, SessionEnd, VirtualFileId};
use oftp2::value::{
    CipherSuite, DatasetName, FileCompression, FileEnvelope, OdetteId, SecurityLevel,
    StartFileRefusal, Timestamp, UserData,
};

use crate::inbox::{InboxStore, SessionContext};
use crate::lease::Lease;
use crate::partner::Partner;
use crate::queue::{Entry, Protection, QueueStore, Route};
use crate::security::Security;

/// Octets between two restart checkpoints of a file being sent.
const PROGRESS_CHECKPOINT: u64 = 8 << 20;

/// What a session did, for the scheduler's bookkeeping and logs.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// The SSID exchange succeeded.
    pub connected: bool,
    /// Ended normally (ESID 00 either way).
    pub normal: bool,
    pub files_sent: u64,
    pub files_received: u64,
    pub error: Option<String>,
}

/// The entries one session claimed and the token that marks its claims
/// in the queue, shared with the scheduler so it can put them back if the
/// task dies.
#[derive(Debug, Clone)]
pub struct Claimed {
    token: i64,
    ids: Arc<Mutex<Vec<i64>>>,
}

impl Default for Claimed {
    fn default() -> Self {
        Claimed {
            token: session_token(),
            ids: Arc::default(),
        }
    }
}

impl Claimed {
    /// The session's claim token: changes to its entries apply only
    /// while they are still held under it.
    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn ids(&self) -> Vec<i64> {
        self.ids
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn push(&self, id: i64) {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).push(id);
    }
}

/// The lease of entry `id` claimed under `token` at `asked`.
fn entry_lease(queue: &QueueStore, id: i64, token: i64, asked: Instant) -> Lease {
    let q = queue.clone();
    Lease::new(
        format!("queue entry {id}"),
        queue.lease(),
        asked,
        Box::new(move || q.renew(id, token).map_err(|e| e.to_string())),
    )
}

/// The data of an entry being sent, read only while its lease holds.
struct LeasedReader<R> {
    inner: R,
    lease: Arc<Lease>,
}

impl<R: std::io::Read> std::io::Read for LeasedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.lease.check()?;
        self.inner.read(buf)
    }
}

impl<R: std::io::Seek> std::io::Seek for LeasedReader<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Per-session bookkeeping shared by the outbox (which claims files) and
/// the event handler (which records what became of them).
#[derive(Debug, Default)]
struct Tracker {
    by_file: HashMap<VirtualFileId, i64>,
    /// Entry being transferred and its last checkpoint.
    current: Option<(i64, u64)>,
    /// Entries that reached a final outcome in this session.
    settled: std::collections::HashSet<i64>,
    /// Leases of claimed entries without an outcome yet, by entry: kept
    /// renewed by [`keep_leases`] also while no data is read (the partner
    /// holds back credit, or checks the file before its EFPA).
    leases: HashMap<i64, Arc<Lease>>,
}

/// Renews the leases in `tracker` every second (each only when due) until
/// the session's tracker is gone. A lease found lost stops the transfer
/// at its next read.
fn keep_leases(tracker: std::sync::Weak<Mutex<Tracker>>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return; // outside a runtime only reads renew
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(t) = tracker.upgrade() else { return };
            let leases: Vec<Arc<Lease>> = t
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .leases
                .values()
                .cloned()
                .collect();
            drop(t);
            if leases.is_empty() {
                continue;
            }
            // The database calls block: off the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                for l in leases {
                    let _ = l.check();
                }
            })
            .await;
        }
    });
}

/// What a daemon counts of its sessions' sends (systemd's STATUS= line).
pub trait SendStats: Send + Sync {
    /// A file was sent (EFPA received).
    fn file_sent(&self);
    /// A receipt settled one of our queue entries.
    fn receipt_applied(&self);
}

/// Uniform in `[0, 1)` from the system's random source, for backoff
/// jitter (0.5 if it fails).
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// The send side of one session, either role: hands the session the
/// partner's due receipts and queued files, and records in the queue what
/// became of them (EFPA, SFNA, EFNA, interruption, EERP/NERP received).
///
/// `os4xsqd` uses it as initiator; a receive daemon can use it as
/// responder so that a partner calling us (or polling) gets its queued
/// files in the same session. The partner is taken from the session
/// context once its SSID was accepted.
pub struct Exchange {
    queue: QueueStore,
    inbox: Arc<InboxStore>,
    ctx: Arc<SessionContext>,
    tracker: Arc<Mutex<Tracker>>,
    claimed: Claimed,
    random: Arc<dyn Fn() -> f64 + Send + Sync>,
    route: Option<Route>,
    stats: Option<Arc<dyn SendStats>>,
    outcome: Outcome,
    end: Option<SessionEnd>,
    security: Option<Arc<Security>>,
    /// Who may deliver receipts for whose files.
    partners: crate::partner::PartnerStore,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("session", &self.ctx.session)
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// `random` is uniform in `[0, 1)` (backoff jitter).
    pub fn new(
        queue: QueueStore,
        inbox: Arc<InboxStore>,
        ctx: Arc<SessionContext>,
        claimed: Claimed,
        random: Arc<dyn Fn() -> f64 + Send + Sync>,
    ) -> Exchange {
        let tracker: Arc<Mutex<Tracker>> = Arc::default();
        keep_leases(Arc::downgrade(&tracker));
        Exchange {
            partners: crate::partner::PartnerStore::new(queue.db().clone()),
            queue,
            inbox,
            ctx,
            tracker,
            claimed,
            random,
            route: None,
            stats: None,
            outcome: Outcome::default(),
            end: None,
            security: None,
        }
    }

    /// Protect outgoing files per partner policy and check the
    /// signatures of receipts with these keys.
    pub fn with_security(mut self, security: Arc<Security>) -> Exchange {
        self.security = Some(security);
        self
    }

    /// The retry policy to apply (default: the partner's stored route,
    /// or the default policy without one).
    pub fn with_route(mut self, route: Route) -> Exchange {
        self.route = Some(route);
        self
    }

    /// Count sent files and applied receipts here.
    pub fn with_stats(mut self, stats: Arc<dyn SendStats>) -> Exchange {
        self.stats = Some(stats);
        self
    }

    /// The session's outbox: due receipts, then queued files.
    pub fn outbox(&self) -> Box<dyn Outbox> {
        Box::new(QueueOutbox {
            queue: self.queue.clone(),
            ctx: self.ctx.clone(),
            tracker: self.tracker.clone(),
            claimed: self.claimed.clone(),
            security: self.security.clone(),
        })
    }

    fn partner_label(&self) -> String {
        self.ctx
            .partner
            .get()
            .map(|p| p.id.to_string())
            .unwrap_or_default()
    }

    fn route(&mut self) -> Route {
        if let Some(r) = &self.route {
            return r.clone();
        }
        let r = self
            .ctx
            .partner
            .get()
            .map(|p| {
                self.queue
                    .route(p.id.as_str())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Route::new(&p.id, "-", 0))
            })
            .unwrap_or_else(|| Route::new(&"-", "-", 0));
        self.route = Some(r.clone());
        r
    }

    fn retry_later(&mut self, id: i64, text: &str) {
        let route = self.route();
        let random = (self.random)();
        match self
            .queue
            .failed_attempt(id, Some(self.claimed.token()), &route, text, random)
        {
            Ok(state) => {
                tracing::warn!(partner = %route.partner, entry = id, state = %state, error = text, "file not delivered")
            }
            Err(e) => {
                tracing::error!(entry = id, error = %e, "cannot record the failed attempt; the entry is recovered at the next start")
            }
        }
    }

    /// Ends the exchange once the session is over: files claimed but
    /// without an outcome (connection lost before SFPA, ...) are retried.
    pub fn finish(mut self, result: Result<SessionEnd, String>) -> Outcome {
        let end_text = match &result {
            Err(e) => format!("connection lost: {e}"),
            Ok(end) => end.to_string(),
        };
        self.outcome.normal = matches!(&result, Ok(end) if end.is_normal());
        if !self.outcome.normal {
            self.outcome.error = Some(end_text.clone());
        }
        let open: Vec<i64> = {
            let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            t.leases.clear();
            self.claimed
                .ids()
                .into_iter()
                .filter(|id| !t.settled.contains(id))
                .collect()
        };
        for id in open {
            let text = format!(
                "session with {} ended before the file was confirmed: {end_text}",
                self.partner_label()
            );
            self.retry_later(id, &text);
        }
        self.outcome
    }

    /// Records what an event means for the queue.
    pub fn on_event(&mut self, event: Event) {
        let partner = self.partner_label();
        let session_no = self.ctx.session;
        let settle = |tracker: &Mutex<Tracker>, file: &VirtualFileId| -> Option<i64> {
            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
            let id = t.by_file.get(file).copied()?;
            t.settled.insert(id);
            t.leases.remove(&id);
            if t.current.map(|(c, _)| c) == Some(id) {
                t.current = None;
            }
            Some(id)
        };
        match event {
            Event::Connected(n) => {
                self.outcome.connected = true;
                tracing::info!(partner = %n.partner_id(), session = session_no, level = %n.level, buffer = n.buffer_size, credit = n.credit, restart = n.restart, "session started");
            }
            Event::FileStarted {
                direction: Direction::Send,
                file,
                restart_position,
                restart_offset,
            } => {
                let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(&id) = t.by_file.get(&file) {
                    t.current = Some((id, restart_offset));
                    tracing::info!(partner, session = session_no, entry = id, file = %file, restart = restart_position, bytes = restart_offset, "sending file");
                }
            }
            Event::Progress {
                direction: Direction::Send,
                units,
            } => {
                let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((id, last)) = t.current {
                    if units >= last + PROGRESS_CHECKPOINT {
                        t.current = Some((id, units));
                        if let Err(e) = self.queue.progress(id, self.claimed.token(), units) {
                            tracing::warn!(entry = id, error = %e, "cannot record progress");
                        }
                    }
                }
            }
            Event::FileDone {
                direction: Direction::Send,
                file,
                counts,
            } => {
                if let Some(id) = settle(&self.tracker, &file) {
                    self.outcome.files_sent += 1;
                    if let Some(s) = &self.stats {
                        s.file_sent();
                    }
                    if let Err(e) = self.queue.sent(id) {
                        tracing::error!(entry = id, error = %e, "cannot record the file as sent");
                    }
                    tracing::info!(partner, session = session_no, entry = id, file = %file, bytes = counts.units, "file sent; awaiting EERP");
                }
            }
            Event::FileDone {
                direction: Direction::Receive,
                file,
                counts,
            } => {
                self.outcome.files_received += 1;
                tracing::info!(partner, session = session_no, file = %file, bytes = counts.units, "file received");
            }
            Event::FileRefused {
                direction: Direction::Send,
                file,
                reason,
                retry_later: retry,
                text,
            } => {
                let Some(id) = settle(&self.tracker, &file) else {
                    return;
                };
                let detail = if text.is_empty() {
                    format!("SFNA {reason}")
                } else {
                    format!("SFNA {reason}: {text}")
                };
                if reason == StartFileRefusal::DuplicateFile {
                    // Same virtual file (our stamp is unique per entry):
                    // the partner already holds it from an attempt whose
                    // EFPA we did not record. It is sent; the EERP follows.
                    tracing::info!(partner, entry = id, file = %file, "partner already holds the file; awaiting EERP");
                    let _ = self.queue.sent(id);
                } else if retry {
                    self.retry_later(id, &format!("{detail} (partner asks to retry later)"));
                } else {
                    tracing::warn!(partner, entry = id, file = %file, reason = %reason, text, "file refused permanently");
                    if let Err(e) = self.queue.failed(id, Some(self.claimed.token()), &detail) {
                        tracing::error!(entry = id, error = %e, "cannot record the refusal");
                    }
                }
            }
            Event::FileFailed {
                direction: Direction::Send,
                file,
                reason,
                text,
            } => {
                if let Some(id) = settle(&self.tracker, &file) {
                    self.retry_later(id, &format!("EFNA {reason}: {text}"));
                }
            }
            Event::FileInterrupted {
                direction: Direction::Send,
                file,
                units,
            } => {
                if let Some(id) = settle(&self.tracker, &file) {
                    let _ = self.queue.progress(id, self.claimed.token(), units);
                    self.retry_later(
                        id,
                        &format!("transfer interrupted after {units} octets; resumes with restart"),
                    );
                }
            }
            Event::FileSkipped { file, error } => {
                if let Some(id) = settle(&self.tracker, &file) {
                    let _ = self.queue.failed(
                        id,
                        Some(self.claimed.token()),
                        &format!("file cannot be sent: {error}"),
                    );
                }
            }
            Event::ReceiptReceived(receipt) => self.receipt_received(&receipt),
            Event::ReceiptSent(receipt) => {
                self.inbox.receipt_sent(&self.ctx, &receipt);
                tracing::info!(partner, session = session_no, ?receipt, "receipt delivered");
            }
            Event::Deviation(d) => {
                tracing::info!(partner, session = session_no, deviation = %d, "partner deviates from RFC 5024 (accepted)");
            }
            Event::Ended(e) => self.end = Some(e),
            _ => {}
        }
    }

    fn receipt_received(&mut self, receipt: &Receipt) {
        let Some(partner) = self.ctx.partner.get() else {
            return;
        };
        let outcome = crate::receipts::receipt_received(
            &self.queue,
            &self.partners,
            self.security.as_deref(),
            &partner.id,
            self.ctx.session,
            receipt,
        );
        if let (crate::receipts::Outcome::Applied(_), Some(s)) = (&outcome, &self.stats) {
            s.receipt_applied();
        }
    }
}

/// The session's outbox: due receipts first, then the partner's due
/// files, claimed one at a time.
struct QueueOutbox {
    queue: QueueStore,
    ctx: Arc<SessionContext>,
    tracker: Arc<Mutex<Tracker>>,
    /// What this session claimed, and the token that marks its claims.
    claimed: Claimed,
    security: Option<Arc<Security>>,
}

impl Outbox for QueueOutbox {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        let partner = self.ctx.partner.get()?.clone();
        if !partner.directions.may_send() {
            return None;
        }
        loop {
            let asked = Instant::now();
            let entry = match self
                .queue
                .claim_next(partner.id.as_str(), self.claimed.token())
            {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(partner = %partner.id, error = %e, "cannot read the queue");
                    return None;
                }
            };
            self.claimed.push(entry.id);
            let lease = Arc::new(entry_lease(
                &self.queue,
                entry.id,
                self.claimed.token(),
                asked,
            ));
            self.tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .leases
                .insert(entry.id, lease.clone());
            match outgoing(
                &entry,
                &partner,
                &self.queue,
                self.security.as_deref(),
                lease,
            ) {
                Ok(file) => {
                    let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
                    t.by_file.insert(VirtualFileId::of(&file.sfid), entry.id);
                    return Some(file);
                }
                Err(error) => {
                    tracing::error!(partner = %partner.id, entry = entry.id, error, "queued file cannot be sent; marked failed");
                    let _ = self
                        .queue
                        .failed(entry.id, Some(self.claimed.token()), &error);
                    if let Ok(mut t) = self.tracker.lock() {
                        t.settled.insert(entry.id);
                        t.leases.remove(&entry.id);
                    }
                }
            }
        }
    }

    fn next_receipt(&mut self) -> Option<Receipt> {
        self.ctx.receipts.lock().ok()?.next_due()
    }
}

/// A token that tells this session's claims from others'.
fn session_token() -> i64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    // Mixed with the clock and PID in case the random source failed.
    i64::from_le_bytes(b) ^ i64::from(std::process::id()) ^ crate::db::unix_now()
}

/// The file as transmitted after the partner's file services: written
/// once next to the outbox copy (`<entry>.cms`) and reused by every later
/// attempt, so a restart continues the same octets and the stored hash
/// stays the one the EERP must carry.
fn protect(
    e: &Entry,
    partner: &Partner,
    queue: &QueueStore,
    security: Option<&Security>,
) -> Result<Option<(oftp2::security::file::Protected, std::path::PathBuf)>, String> {
    use oftp2::security::file;
    let stored = queue
        .protection_of(e.id)
        .map_err(|err| format!("queue: {err}"))?;
    // Protected before: sent as it was then, whatever the partner's
    // policy says now (the partner may hold part of it for a restart, and
    // its EERP must carry the hash of these octets).
    if let Some(p) = stored.filter(|p| p.protected_path.is_some() && p.file_services.is_some()) {
        return protected_before(e, &p).map(Some);
    }
    let policy = partner.security.file_policy();
    if !policy.enveloped() && !policy.signed_eerp {
        return Ok(None);
    }
    let security = security.ok_or_else(|| {
        format!(
            "partner {} has file services set but [security] is not configured",
            partner.id
        )
    })?;
    let format = e.record_format()?;
    let partner_cert = if policy.encrypt {
        Some(
            security
                .partner_certificate(partner)
                .map_err(|err| err.to_string())?,
        )
    } else {
        None
    };
    let plain = std::fs::read(&e.outbox_path)
        .map_err(|err| format!("outbox file {} cannot be read: {err}", e.outbox_path))?;
    let protected = file::protect(
        &plain,
        format,
        &policy,
        security.signing(),
        partner_cert.as_ref(),
    )
    .map_err(|err| err.to_string())?;
    let path = if policy.enveloped() {
        let cms_path = std::path::PathBuf::from(format!("{}.cms", e.outbox_path));
        write_durably(&cms_path, &protected.data)
            .map_err(|err| format!("cannot write {}: {err}", cms_path.display()))?;
        cms_path
    } else {
        std::path::PathBuf::from(&e.outbox_path)
    };
    let services: String = [
        (policy.sign, 's'),
        (policy.compress, 'c'),
        (policy.encrypt, 'e'),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
    .collect();
    queue
        .set_protection(&Protection {
            id: e.id,
            file_hash: file::file_hash(&protected.data, policy.suite).ok(),
            cipher_suite: policy.suite.code(),
            signed_eerp_requested: policy.signed_eerp,
            protected_path: Some(path.to_string_lossy().into_owned()),
            file_services: Some(services),
        })
        .map_err(|err| format!("queue: {err}"))?;
    Ok(Some((protected, path)))
}

/// The protection an entry got at its first attempt, from the queue.
fn protected_before(
    e: &Entry,
    p: &Protection,
) -> Result<(oftp2::security::file::Protected, std::path::PathBuf), String> {
    use oftp2::value::CipherSuite as Suite;
    let path = std::path::PathBuf::from(p.protected_path.clone().unwrap_or_default());
    let services = p.file_services.as_deref().unwrap_or_default();
    let (sign, compress, encrypt) = (
        services.contains('s'),
        services.contains('c'),
        services.contains('e'),
    );
    let data = std::fs::read(&path)
        .map_err(|err| format!("protected file {} cannot be read: {err}", path.display()))?;
    let enveloped = sign || compress || encrypt;
    Ok((
        oftp2::security::file::Protected {
            data,
            original_len: e.size,
            security: match (encrypt, sign) {
                (false, false) => SecurityLevel::None,
                (true, false) => SecurityLevel::Encrypted,
                (false, true) => SecurityLevel::Signed,
                (true, true) => SecurityLevel::EncryptedAndSigned,
            },
            cipher_suite: if sign || encrypt || p.signed_eerp_requested {
                Suite::from_code(p.cipher_suite)
            } else {
                Suite::None
            },
            compression: if compress {
                FileCompression::Zlib
            } else {
                FileCompression::None
            },
            envelope: if enveloped {
                FileEnvelope::Cms
            } else {
                FileEnvelope::None
            },
            signed_eerp: p.signed_eerp_requested,
        },
        path,
    ))
}

fn write_durably(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// The SFID and data of a queue entry, with the partner's file services.
fn outgoing(
    e: &Entry,
    partner: &Partner,
    queue: &QueueStore,
    security: Option<&Security>,
    lease: Arc<Lease>,
) -> Result<OutgoingFile, String> {
    if let Some((protected, path)) = protect(e, partner, queue, security)? {
        let mut sfid = plain_sfid(e, 0)?;
        protected.apply_to(&mut sfid);
        if protected.envelope != FileEnvelope::None {
            // Enveloped files travel as U: restart in 1K blocks.
            sfid.restart_position = e.sent_units / oftp2::record::RESTART_BLOCK_LEN;
        } else {
            let mut file = File::open(&path)
                .map_err(|err| format!("outbox file {} cannot be read: {err}", path.display()))?;
            sfid.restart_position = e.restart_position(&mut file);
        }
        tracing::debug!(entry = e.id, security = ?sfid.security, compression = ?sfid.compression, suite = sfid.cipher_suite.code(), "file services applied");
        let file = File::open(&path)
            .map_err(|err| format!("file {} cannot be read: {err}", path.display()))?;
        return Ok(OutgoingFile {
            sfid,
            data: Box::new(LeasedReader {
                inner: std::io::BufReader::with_capacity(256 * 1024, file),
                lease,
            }),
        });
    }
    let mut file = File::open(&e.outbox_path)
        .map_err(|err| format!("outbox file {} cannot be read: {err}", e.outbox_path))?;
    let restart_position = e.restart_position(&mut file);
    let sfid = plain_sfid(e, restart_position)?;
    use std::io::Seek;
    file.rewind()
        .map_err(|err| format!("outbox file {}: {err}", e.outbox_path))?;
    Ok(OutgoingFile {
        sfid,
        data: Box::new(LeasedReader {
            inner: std::io::BufReader::with_capacity(256 * 1024, file),
            lease,
        }),
    })
}

/// The SFID of a queue entry without file services.
fn plain_sfid(e: &Entry, restart_position: u64) -> Result<Sfid, String> {
    let format = e.record_format()?;
    let dataset_name =
        DatasetName::new(&e.dataset_name).map_err(|m| format!("dataset name: {m}"))?;
    let timestamp: Timestamp = e
        .file_timestamp
        .parse()
        .map_err(|m| format!("timestamp: {m}"))?;
    let user_data = UserData::new(&e.user_data).map_err(|m| format!("user data: {m}"))?;
    let destination = OdetteId::new(&e.destination).map_err(|m| format!("destination: {m}"))?;
    let originator = OdetteId::new(&e.originator).map_err(|m| format!("originator: {m}"))?;
    let blocks = e.size.div_ceil(oftp2::record::RESTART_BLOCK_LEN);
    let sfid = Sfid {
        dataset_name,
        timestamp,
        user_data,
        destination,
        originator,
        format,
        max_record_size: e.max_record_size,
        file_size: blocks,
        original_file_size: blocks,
        restart_position,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: e.description.clone(),
    };
    Ok(sfid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::queue::NewFile;
    use oftp2::value::{DatasetName, RecordFormat, UserData};
    use std::time::Duration;

    fn claimed_entry(lease: Duration) -> (tempfile::TempDir, QueueStore, i64) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(os4x_store::testing::database_for(dir.path())).unwrap();
        let q = QueueStore::open(db).unwrap().with_lease(lease);
        let source = dir.path().join("F");
        std::fs::write(&source, b"data").unwrap();
        let f = NewFile {
            partner: OdetteId::new("O0013000000B").unwrap(),
            source,
            dataset_name: DatasetName::new("F").unwrap(),
            format: RecordFormat::Unstructured,
            max_record_size: 0,
            priority: 0,
            user_data: UserData::EMPTY,
            description: String::new(),
            destination: None,
        };
        let local = OdetteId::new("O0013000000A").unwrap();
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        q.claim_next(&e.partner, 7).unwrap().unwrap();
        (dir, q, e.id)
    }

    #[test]
    fn an_entry_lease_is_lost_once_another_node_took_the_entry() {
        let (_dir, q, id) = claimed_entry(Duration::from_secs(9));
        // Due for renewal at once.
        let asked = Instant::now() - Duration::from_secs(4);
        let lease = entry_lease(&q, id, 7, asked);
        lease.check().unwrap();
        q.db()
            .lock()
            .execute(
                "UPDATE os4x_send_queue SET lease_until = unixepoch() - 1 WHERE id = ?1",
                [id],
            )
            .unwrap();
        let two = q.clone().for_server(2);
        assert_eq!(two.claim_next("O0013000000B", 8).unwrap().unwrap().id, id);
        let err = entry_lease(&q, id, 7, asked).check().unwrap_err();
        assert!(err.to_string().contains("another node"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_are_renewed_while_no_data_is_read_until_the_session_is_gone() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let renewals = Arc::new(AtomicUsize::new(0));
        let lease = |n: &Arc<AtomicUsize>| {
            let n = n.clone();
            Arc::new(Lease::new(
                "entry 1",
                Duration::from_secs(30),
                // Due for renewal at once, then in 10 s.
                Instant::now() - Duration::from_secs(11),
                Box::new(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                    Ok(true)
                }),
            ))
        };
        let tracker: Arc<Mutex<Tracker>> = Arc::default();
        tracker.lock().unwrap().leases.insert(1, lease(&renewals));
        keep_leases(Arc::downgrade(&tracker));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(
            renewals.load(Ordering::SeqCst),
            1,
            "renewed once, then not due"
        );
        // The session is over: nothing renews any more.
        let after = Arc::new(AtomicUsize::new(0));
        tracker.lock().unwrap().leases.insert(2, lease(&after));
        drop(tracker);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(after.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn leased_reads_fail_once_the_lease_is_lost() {
        use std::io::Read;
        let (_dir, q, id) = claimed_entry(Duration::from_secs(9));
        let keeper = Arc::new(entry_lease(&q, id, 7, Instant::now()));
        let mut r = LeasedReader {
            inner: std::io::Cursor::new(&b"abcdef"[..]),
            lease: keeper.clone(),
        };
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        keeper.lose("gone");
        assert!(r.read(&mut buf).is_err());
    }
}
