//! One outgoing session to one partner: connect (TCP or TLS), run the
//! oftp2 session as initiator, send the partner's due files one after the
//! other (each claimed from the queue only when the session is ready for
//! it, so files queued meanwhile go out in the same session), hand over
//! the turn so the partner can send its files and EERPs, deliver EERPs due
//! from us, and record every outcome in the queue.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

use oftp2::codec::{Sfid, Ssid};
use oftp2::session::{
    Authenticator, Direction, Event, Handlers, Outbox, OutgoingFile, Receipt, Role, Session,
    SessionEnd, VirtualFileId,
};
use oftp2::value::{
    CipherSuite, DatasetName, EndSessionReason, FileCompression, FileEnvelope, OdetteId,
    SecurityLevel, StartFileRefusal, Timestamp, UserData,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use crate::inbox::{InboxStore, SessionContext, SessionInbox};
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

/// Entries this session claimed, shared with the scheduler so it can put
/// them back if the task dies.
pub type Claimed = Arc<Mutex<Vec<i64>>>;

/// Per-session bookkeeping shared by the outbox (which claims files) and
/// the event handler (which records what became of them).
#[derive(Debug, Default)]
struct Tracker {
    by_file: HashMap<VirtualFileId, i64>,
    /// Entry being transferred and its last checkpoint.
    current: Option<(i64, u64)>,
    /// Entries that reached a final outcome in this session.
    settled: std::collections::HashSet<i64>,
}

/// Runs one session with `partner` over `route`.
pub async fn run(
    shared: Arc<Shared>,
    route: Route,
    partner: Partner,
    session_no: u64,
    claimed: Claimed,
) -> Outcome {
    // A revoked, expired or untrusted partner certificate stops every
    // exchange with the partner until it is replaced.
    if let Some(security) = &shared.security {
        if let Err(e) = security.check_partner_for_session(&partner) {
            tracing::error!(partner = %partner.id, session = session_no, error = %e, "session refused: partner certificate unusable");
            return unreachable(format!("session refused: {e}"));
        }
    }
    // A partner that must use TLS gets nothing in clear: not over a plain
    // TCP route, not over ISDN.
    if partner.tls_required && !route.tls {
        tracing::error!(partner = %partner.id, session = session_no, "partner requires TLS but its route has none; nothing sent. Fix it with `os4x route set {} --tls true` (or `os4x partner set {} --tls-required false`)", partner.id, partner.id);
        return unreachable(format!(
            "partner {} requires TLS but its route is plain; run `os4x route set {} --tls true`",
            partner.id, partner.id
        ));
    }
    // A partner with an ISDN number is dialled instead (sq/isdn.rs).
    let db = shared.queue.db();
    match super::isdn::dial_if_isdn(&shared.config, db, &partner.id.to_string(), session_no).await {
        Some(Ok((io, peer))) => {
            return drive(shared, route, partner, session_no, claimed, io, peer).await
        }
        Some(Err(e)) => return unreachable(e),
        None => {}
    }
    let addr = format!("{}:{}", route.host, route.port);
    let connect_timeout = shared.config.sq.connect_timeout;
    tracing::info!(partner = %partner.id, session = session_no, address = %addr, tls = route.tls, "connecting");
    let tcp =
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return unreachable(format!("cannot connect to {addr}: {e}")),
            Err(_) => {
                return unreachable(format!(
                    "cannot connect to {addr}: no answer within {connect_timeout:?}"
                ))
            }
        };
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.clone());
    if route.tls {
        let (connector, name) = match crate::tls::client::connector(&route, &shared.config.rd.tls) {
            Ok(c) => c,
            Err(e) => return unreachable(e.to_string()),
        };
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => drive(shared, route, partner, session_no, claimed, tls, peer).await,
            Ok(Err(e)) => unreachable(format!("TLS handshake with {addr} failed: {e}")),
            Err(_) => unreachable(format!("TLS handshake with {addr} timed out")),
        }
    } else {
        drive(shared, route, partner, session_no, claimed, tcp, peer).await
    }
}

fn unreachable(error: String) -> Outcome {
    Outcome {
        error: Some(error),
        ..Outcome::default()
    }
}

async fn drive<S>(
    shared: Arc<Shared>,
    route: Route,
    partner: Partner,
    session_no: u64,
    claimed: Claimed,
    io: S,
    peer: String,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ctx = Arc::new(SessionContext {
        peer: peer.clone(),
        session: session_no,
        ..SessionContext::default()
    });
    let _ = ctx.partner.set(partner.clone());
    if let Ok(mut q) = ctx.receipts.lock() {
        shared.inbox.load_due(&partner.id, &mut q);
    }
    let mut exchange = Exchange::new(
        shared.queue.clone(),
        shared.inbox.clone(),
        ctx.clone(),
        claimed,
        Arc::new(super::jitter),
    )
    .with_route(route)
    .with_stats(shared.clone());
    if let Some(security) = &shared.security {
        exchange = exchange.with_security(security.clone());
    }
    let handlers = Handlers {
        authenticator: Box::new(ResponderCheck {
            partner: partner.clone(),
        }),
        inbox: Box::new(PolledInbox(shared.inbox.session(ctx.clone()))),
        outbox: exchange.outbox(),
    };
    let mut cfg = oftp2::session::Config::new(shared.local_id, partner.password_out);
    cfg.user_data = shared.config.local.user_data;
    cfg.response_timeout = shared.config.sq.response_timeout;
    if partner.security.secure_auth {
        let keys = shared
            .security
            .clone()
            .and_then(crate::security::AuthKeys::new);
        match keys {
            Some(keys) => cfg = cfg.with_secure_authentication(Arc::new(keys)),
            None => {
                return unreachable(format!(
                    "secure authentication is set for {} but [security] has no key pair \
                     (certificate, private_key)",
                    partner.id
                ))
            }
        }
    }
    let mut session = match Session::new(Role::Initiator, cfg, handlers) {
        Ok(s) => s,
        Err(e) => return unreachable(format!("session parameters: {e}")),
    };
    let result = oftp2::driver::run(&mut session, io, |event| exchange.on_event(event)).await;
    let outcome = exchange.finish(result.map_err(|e| e.to_string()));
    tracing::info!(
        partner = %partner.id,
        session = session_no,
        peer = %peer,
        sent = outcome.files_sent,
        received = outcome.files_received,
        end = outcome.error.as_deref().unwrap_or("normal"),
        "session finished"
    );
    outcome
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
    stats: Option<Arc<Shared>>,
    outcome: Outcome,
    end: Option<SessionEnd>,
    token: i64,
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
        Exchange {
            partners: crate::partner::PartnerStore::new(queue.db().clone()),
            queue,
            inbox,
            ctx,
            tracker: Arc::default(),
            claimed,
            random,
            route: None,
            stats: None,
            outcome: Outcome::default(),
            end: None,
            token: session_token(),
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

    fn with_stats(mut self, shared: Arc<Shared>) -> Exchange {
        self.stats = Some(shared);
        self
    }

    /// The session's outbox: due receipts, then queued files.
    pub fn outbox(&self) -> Box<dyn Outbox> {
        Box::new(QueueOutbox {
            queue: self.queue.clone(),
            token: self.token,
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
        match self.queue.failed_attempt(id, &route, text, random) {
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
            let t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            let c = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
            c.iter()
                .filter(|id| !t.settled.contains(id))
                .copied()
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
                        if let Err(e) = self.queue.progress(id, units) {
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
                        s.stats.sent();
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
                    if let Err(e) = self.queue.failed(id, &detail) {
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
                    let _ = self.queue.progress(id, units);
                    self.retry_later(
                        id,
                        &format!("transfer interrupted after {units} octets; resumes with restart"),
                    );
                }
            }
            Event::FileSkipped { file, error } => {
                if let Some(id) = settle(&self.tracker, &file) {
                    let _ = self
                        .queue
                        .failed(id, &format!("file cannot be sent: {error}"));
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
            s.stats.changed();
        }
    }
}

/// Checks the responder's SSID: it must be the partner we called, with
/// the password agreed for it.
struct ResponderCheck {
    partner: Partner,
}

impl Authenticator for ResponderCheck {
    fn authenticate(&mut self, ssid: &Ssid) -> Result<(), EndSessionReason> {
        if !ssid.id.eq_ignore_case(&self.partner.id) {
            tracing::warn!(expected = %self.partner.id, answered = %ssid.id, "the called station is not the partner; ending the session");
            return Err(EndSessionReason::UserCodeNotKnown);
        }
        if !self.partner.password_matches(&ssid.password) {
            tracing::warn!(partner = %self.partner.id, "the partner answered with a wrong password (check password_in); ending the session");
            return Err(EndSessionReason::InvalidPassword);
        }
        Ok(())
    }
}

/// Files the partner sends us in this session go to the same inbox as
/// `os4xrd`'s.
struct PolledInbox(SessionInbox);

impl oftp2::session::Inbox for PolledInbox {
    fn accept(
        &mut self,
        offer: &oftp2::session::FileOffer<'_>,
    ) -> Result<oftp2::session::Accepted, oftp2::session::Refusal<StartFileRefusal>> {
        self.0.accept(offer)
    }
}

/// The session's outbox: due receipts first, then the partner's due
/// files, claimed one at a time.
struct QueueOutbox {
    queue: QueueStore,
    /// Marks this session's claims.
    token: i64,
    ctx: Arc<SessionContext>,
    tracker: Arc<Mutex<Tracker>>,
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
            let entry = match self.queue.claim_next(partner.id.as_str(), self.token) {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(partner = %partner.id, error = %e, "cannot read the queue");
                    return None;
                }
            };
            if let Ok(mut c) = self.claimed.lock() {
                c.push(entry.id);
            }
            match outgoing(&entry, &partner, &self.queue, self.security.as_deref()) {
                Ok(file) => {
                    let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
                    t.by_file.insert(VirtualFileId::of(&file.sfid), entry.id);
                    return Some(file);
                }
                Err(error) => {
                    tracing::error!(partner = %partner.id, entry = entry.id, error, "queued file cannot be sent; marked failed");
                    let _ = self.queue.failed(entry.id, &error);
                    if let Ok(mut t) = self.tracker.lock() {
                        t.settled.insert(entry.id);
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
            data: Box::new(std::io::BufReader::with_capacity(256 * 1024, file)),
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
        data: Box::new(std::io::BufReader::with_capacity(256 * 1024, file)),
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
