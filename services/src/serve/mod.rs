//! The responder side of OFTP, shared by every receive transport: TCP
//! and TLS ([`crate::rd`]) and ISDN ([`crate::isdn`]). A transport hands
//! over an established byte stream with what it knows of the peer
//! ([`TransportInfo`]); [`Responder`] runs the session:
//!
//! * [`PartnerAuth`] checks the initiator's SSID against the partner table
//!   (unknown → ESID 03, wrong password → ESID 04, TLS or client
//!   certificate requirement not met → ESID 12, direction not allowed →
//!   ESID 10); a client certificate must chain to the partner's own CA if
//!   it has one, else to `[tls] client_ca`;
//! * [`crate::inbox`] stores incoming files durably;
//! * receipts due are sent in the same session once the partner hands
//!   over the turn (CD), and files queued for the partner go out too
//!   ([`crate::exchange`]); the rest stay queued in the database;
//! * OFTP2 security ([`crate::security`]): secure authentication when the
//!   partner's entry asks for it (keys from `[security]`, the partner's
//!   certificate from its entry; failure → ESID 11/12), a revoked, expired
//!   or untrusted partner certificate refuses the session (ESID 12),
//!   secured files are unwrapped and verified by the inbox before they
//!   count as received (failure → NERP 31-34), signed receipts are
//!   checked before they settle a queue entry.
//!
//! Connections are admitted in two steps ([`admission`]): before its SSID
//! a connection holds one of `[rd] max_pending` slots (capped per source
//! address, rate-limited, `[rd] idle_timeout` to log in); only an accepted
//! SSID takes one of `[rd] max_sessions`, and an SSID beyond those is
//! answered with ESID 08 (resources not available: retry later). Refused
//! SSIDs are answered late, later with each failure.

pub mod admission;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oftp2::codec::Ssid;
use oftp2::session::{
    Authenticator, Direction, Event, Handlers, Outbox, OutgoingFile, Receipt, Role, Session,
};
use oftp2::value::{EndSessionReason, SendReceive};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore};

use crate::config::Config;
use crate::db::Db;
use crate::inbox::{DiskStorage, InboxStore, SessionContext, Storage};
use crate::partner::{sha256_hex, Partner, PartnerStore};
use crate::tls::ClientCa;

/// What the sessions of one receive daemon share, whatever carries them.
pub struct Responder {
    config: Arc<Config>,
    db: Db,
    /// Receipts partners deliver here are for files the send side queued.
    queue: Option<crate::queue::QueueStore>,
    partners: PartnerStore,
    inbox: Arc<InboxStore>,
    session_config: oftp2::session::Config,
    /// One permit per session past its SSID (`[rd] max_sessions`).
    sessions: Arc<Semaphore>,
    admission: Arc<admission::Admission>,
    stats: Stats,
    next_session: AtomicU64,
    /// `[security]`: keys, partner certificates, CRLs.
    security: Option<Arc<crate::security::Security>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("local_id", &self.session_config.id)
            .finish_non_exhaustive()
    }
}

/// Counters for systemd's STATUS= line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions running in this daemon.
    pub active: AtomicUsize,
    changed: Notify,
}

impl Stats {
    fn file_received(&self) {
        self.changed.notify_one();
    }

    /// A connection's task started (before its SSID).
    pub fn session_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// A connection's task ended.
    pub fn session_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Resolves at the next change (coalesce before acting on it).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// Files received since midnight UTC by any os4x daemon of this database.
pub fn files_today(db: &Db) -> u64 {
    let now = crate::db::unix_now();
    let since = now - now.rem_euclid(86_400);
    db.lock()
        .query_row(
            "SELECT count(*) FROM os4x_received_files WHERE state = 'received' AND received_at >= ?1",
            [since],
            |r| r.get::<_, i64>(0),
        )
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

impl Responder {
    /// A responder with the configuration's database and inbox on the
    /// real file system.
    pub fn new(config: Arc<Config>) -> anyhow::Result<Arc<Responder>> {
        Responder::with_storage(config, Arc::new(DiskStorage))
    }

    /// Like [`Responder::new`], with the inbox's file system operations
    /// supplied (tests inject faults this way). Call inside a tokio
    /// runtime (post-receive commands run on it).
    pub fn with_storage(
        config: Arc<Config>,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Arc<Responder>> {
        let local_id = config.local.require_id().map_err(anyhow::Error::msg)?;
        let db = Db::open(&config.database)?;
        let partners = PartnerStore::new(db.clone());
        let mut session_config = oftp2::session::Config::new(local_id, config.local.password);
        session_config.user_data = config.local.user_data;
        session_config.mode = SendReceive::Both;
        session_config.response_timeout = config.rd.response_timeout;
        let security = crate::security::load_for_daemon(&config, partners.clone())?;
        // Secure authentication is per partner (PartnerAuth says whether);
        // the keys are there whenever we have a key pair.
        session_config.authentication_keys = security
            .clone()
            .and_then(crate::security::AuthKeys::new)
            .map(|k| Arc::new(k) as Arc<dyn oftp2::security::auth::SecureAuthentication>);
        session_config.validate().context("session parameters")?;
        let inbox = InboxStore::new(
            db.clone(),
            storage,
            config.rd.inbox_dir.clone(),
            local_id,
            crate::inbox::InboxLimits::from_config(&config.rd),
        );
        inbox.set_cluster(config.server_id, config.cluster.lease);
        if let Some(s) = &security {
            inbox.set_security(s.clone());
        }
        let max = usize::try_from(config.rd.max_sessions).unwrap_or(usize::MAX);
        Ok(Arc::new(Responder {
            partners,
            queue: match crate::queue::QueueStore::open(db.clone()) {
                Ok(q) => Some(
                    q.for_server(config.server_id)
                        .as_receiver()
                        .with_lease(config.cluster.lease),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the send queue; receipts partners deliver here will only be logged");
                    None
                }
            },
            db,
            inbox,
            session_config,
            sessions: Arc::new(Semaphore::new(max)),
            admission: admission::Admission::new(&config.rd),
            stats: Stats::default(),
            next_session: AtomicU64::new(1),
            config,
            security,
        }))
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn partners(&self) -> &PartnerStore {
        &self.partners
    }

    pub fn inbox(&self) -> &Arc<InboxStore> {
        &self.inbox
    }

    /// The number of the next session (logs, session context).
    pub fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// A pre-login slot for a connection from `ip`, or why there is none.
    pub fn admit(&self, ip: IpAddr) -> Result<admission::PendingSlot, admission::Refused> {
        self.admission.admit(ip, std::time::Instant::now())
    }

    /// The summary of connections refused since the last call, if any.
    pub fn take_refusal_summary(&self) -> Option<String> {
        self.admission.refused.take_summary()
    }

    /// Sessions past their SSID now.
    pub fn sessions_active(&self) -> usize {
        usize::try_from(self.config.rd.max_sessions)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.sessions.available_permits())
    }

    /// The STATUS= line for systemd.
    pub fn status_line(&self) -> String {
        format!(
            "{} sessions active, {} connecting, {} files received today",
            self.sessions_active(),
            self.admission.pending(self.config.rd.max_pending),
            files_today(&self.db)
        )
    }

    /// Serves one OFTP session over an established byte stream that is
    /// not one of our TCP connections (an ISDN B channel, see
    /// [`crate::rd::capi`]): the same partner checks, inbox and receipts as
    /// over TCP. `peer` names the caller in logs (`isdn:<number>`);
    /// `line_partners` are the partners the line belongs to (by calling
    /// number): the SSID must name one of them.
    pub async fn serve_stream<S>(self: Arc<Self>, io: S, peer: String, line_partners: Vec<String>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let session = self.next_session();
        self.stats.session_started();
        let info = TransportInfo {
            tls: false,
            client_cert: None,
            tls_version: None,
            peer,
            line_partners: Some(line_partners),
        };
        self.serve_connection(io, info, session, None).await;
        self.stats.session_ended();
    }

    /// Runs one session over `io`: the partner checks, the inbox, the
    /// receipts due and the partner's queued files. `slot` is the
    /// connection's pre-login slot, if it was admitted as one
    /// ([`Responder::admit`]).
    pub async fn serve_connection<S>(
        &self,
        io: S,
        info: TransportInfo,
        session: u64,
        slot: Option<admission::PendingSlot>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let peer = info.peer.clone();
        tracing::info!(peer = %peer, session, tls = ?info.tls_version, "connection");
        let ctx = Arc::new(SessionContext {
            peer: peer.clone(),
            session,
            ..SessionContext::default()
        });
        let gate = Arc::new(admission::Gate::default());
        let ssid_seen = Arc::new(AtomicBool::new(false));
        let handlers = Handlers {
            authenticator: Box::new(PartnerAuth {
                partners: self.partners.clone(),
                inbox: self.inbox.clone(),
                ctx: ctx.clone(),
                transport: info,
                security: self.security.clone(),
                admission: self.admission.clone(),
                sessions: self.sessions.clone(),
                slot,
                session_permit: None,
                gate: gate.clone(),
                ssid_seen: ssid_seen.clone(),
            }),
            inbox: Box::new(self.inbox.session(ctx.clone())),
            outbox: Box::new(ReceiptOutbox { ctx: ctx.clone() }),
        };
        // Files queued for the calling partner go out in its session too
        // (partners poll); the send side records what became of them.
        let exchange = self.queue.clone().map(|q| {
            let x = crate::exchange::Exchange::new(
                q,
                self.inbox.clone(),
                ctx.clone(),
                crate::exchange::Claimed::default(),
                Arc::new(crate::exchange::jitter),
            );
            match &self.security {
                Some(s) => x.with_security(s.clone()),
                None => x,
            }
        });
        let handlers = match &exchange {
            Some(x) => Handlers {
                outbox: x.outbox(),
                ..handlers
            },
            None => handlers,
        };
        let exchange = std::sync::Mutex::new(exchange);
        let mut s = match Session::new(Role::Responder, self.session_config.clone(), handlers) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a session");
                return;
            }
        };

        let partner_of = |ctx: &SessionContext| {
            ctx.partner
                .get()
                .map(|p| p.id.to_string())
                .unwrap_or_default()
        };
        let on_event = |event: Event| match event {
            Event::FileStarted {
                direction: Direction::Send,
                ..
            }
            | Event::Progress {
                direction: Direction::Send,
                ..
            }
            | Event::FileDone {
                direction: Direction::Send,
                ..
            }
            | Event::FileRefused {
                direction: Direction::Send,
                ..
            }
            | Event::FileFailed {
                direction: Direction::Send,
                ..
            }
            | Event::FileInterrupted {
                direction: Direction::Send,
                ..
            }
            | Event::FileSkipped { .. } => {
                if let Some(x) = exchange.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    x.on_event(event);
                }
            }
            Event::Connected(n) => {
                tracing::info!(
                    partner = %n.partner_id(),
                    session,
                    peer = %peer,
                    level = %n.level,
                    buffer = n.buffer_size,
                    credit = n.credit,
                    restart = n.restart,
                    "session started"
                );
            }
            Event::FileDone {
                direction: Direction::Receive,
                file,
                counts,
            } => {
                self.stats.file_received();
                tracing::info!(partner = %partner_of(&ctx), session, file = %file, bytes = counts.units, "file received");
            }
            Event::FileFailed {
                direction,
                file,
                reason,
                text,
            } => {
                tracing::warn!(partner = %partner_of(&ctx), session, file = %file, ?direction, reason = %reason, text, "file transfer failed");
            }
            Event::FileRefused {
                file, reason, text, ..
            } => {
                tracing::warn!(partner = %partner_of(&ctx), session, file = %file, reason = %reason, text, "file refused");
            }
            Event::ReceiptSent(receipt) => {
                self.inbox.receipt_sent(&ctx, &receipt);
                if let Receipt::Eerp(e) = &receipt {
                    tracing::info!(partner = %partner_of(&ctx), session, file = %format!("{} {}", e.dataset_name, e.timestamp), "EERP delivered");
                }
            }
            Event::ReceiptReceived(receipt) => {
                self.receipt_received(&ctx, &receipt);
            }
            Event::Deviation(d) => {
                tracing::info!(partner = %partner_of(&ctx), session, deviation = %d, "partner deviates from RFC 5024 (accepted)");
            }
            Event::Ended(end) => {
                tracing::info!(partner = %partner_of(&ctx), session, peer = %peer, reason = %end.reason, origin = ?end.origin, text = %end.text, "session ended");
            }
            _ => {}
        };
        let idle = self.config.rd.idle_timeout;
        let run = oftp2::driver::run(&mut s, admission::Gated::new(io, gate), on_event);
        tokio::pin!(run);
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        loop {
            tokio::select! {
                result = &mut run => {
                    if let Err(e) = &result {
                        tracing::info!(partner = %partner_of(&ctx), session, peer = %peer, error = %e, "connection lost");
                    }
                    let x = exchange.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(x) = x {
                        x.finish(result.map_err(|e| e.to_string()));
                    }
                    return;
                }
                () = &mut idle_timer, if !ssid_seen.load(Ordering::Relaxed) => {
                    if !ssid_seen.load(Ordering::Relaxed) {
                        tracing::info!(peer = %peer, session, timeout = ?idle, "no SSID within [rd] idle_timeout; closing");
                        return;
                    }
                }
            }
        }
    }
}

impl Responder {
    /// A partner delivered an EERP/NERP for a file the send side queued
    /// (partners often do so in a session they open themselves).
    fn receipt_received(&self, ctx: &SessionContext, receipt: &Receipt) {
        let Some(partner) = ctx.partner.get() else {
            return;
        };
        let Some(queue) = &self.queue else {
            tracing::warn!(partner = %partner.id, session = ctx.session, "receipt received but the send queue is unavailable");
            return;
        };
        crate::receipts::receipt_received(
            queue,
            &self.partners,
            self.security.as_deref(),
            &partner.id,
            ctx.session,
            receipt,
        );
    }
}

/// What the connection tells about the peer.
#[derive(Debug, Clone)]
pub struct TransportInfo {
    pub tls: bool,
    /// The client certificate presented, if any.
    pub client_cert: Option<ClientCertificate>,
    pub tls_version: Option<&'static str>,
    /// `IP:port`, or `isdn:<calling number>` for an ISDN call.
    pub peer: String,
    /// ISDN: the partners the calling number belongs to; an SSID naming
    /// another partner is refused, so a number accepted for one partner
    /// cannot be used to log in as another. `None` over TCP/TLS.
    pub line_partners: Option<Vec<String>>,
}

/// A TLS client certificate as presented; its chain is checked at SSID
/// time against the CA that applies to the partner.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// Lowercase hex SHA-256 of the end-entity certificate (DER).
    pub sha256: String,
    /// End entity first, then the intermediates the client sent; never
    /// empty.
    pub chain: Vec<CertificateDer<'static>>,
    /// `[tls] client_ca` as configured when the handshake started.
    pub global_ca: Option<ClientCa>,
}

impl ClientCertificate {
    /// `None` if `chain` is empty.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        global_ca: Option<ClientCa>,
    ) -> Option<ClientCertificate> {
        Some(ClientCertificate {
            sha256: sha256_hex(chain.first()?),
            chain,
            global_ca,
        })
    }
}

/// Why [`PartnerAuth::check`] refused a session: the ESID reason and the
/// text for the log.
pub type Refusal = (EndSessionReason, String);

/// Checks the initiator's SSID against the partner table, and moves the
/// connection from its pre-login slot to a session slot.
pub struct PartnerAuth {
    partners: PartnerStore,
    inbox: Arc<InboxStore>,
    ctx: Arc<SessionContext>,
    transport: TransportInfo,
    security: Option<Arc<crate::security::Security>>,
    admission: Arc<admission::Admission>,
    sessions: Arc<Semaphore>,
    /// Held until the SSID is accepted (or the connection ends).
    slot: Option<admission::PendingSlot>,
    /// Held from the accepted SSID to the end of the session.
    session_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Delays the answer to a refused SSID.
    gate: Arc<admission::Gate>,
    /// The SSID arrived: the login timer stops.
    ssid_seen: Arc<AtomicBool>,
}

impl PartnerAuth {
    /// The policy decision. Its only I/O is reading the partner's own CA
    /// bundle ([`Partner::client_ca`]) when a client certificate is
    /// presented: read at every such SSID, so `os4x partner set
    /// --client-ca` and a replaced file count from the next session on,
    /// without a reload.
    ///
    /// Client certificates, for a partner:
    /// * with its own CA: a certificate presented must chain to that CA
    ///   (`[tls] client_ca` does not count for this partner);
    /// * else with a pinned fingerprint: the pin decides alone;
    /// * else with `[tls] client_ca`: a certificate presented must chain
    ///   to it;
    /// * a pin, if set, must match in every case, and
    ///   `client_cert_required` demands a certificate that is pinned or
    ///   CA-verified.
    pub fn check(
        partner: Option<&Partner>,
        ssid: &Ssid,
        transport: &TransportInfo,
        crls: &[rustls::pki_types::CertificateRevocationListDer<'static>],
    ) -> Result<(), Refusal> {
        use EndSessionReason as R;
        let refuse = |reason, why: &str| Err((reason, why.to_owned()));
        let Some(p) = partner else {
            return refuse(R::UserCodeNotKnown, "unknown partner");
        };
        if !p.enabled {
            return refuse(R::UserCodeNotKnown, "partner disabled");
        }
        if let Some(line) = &transport.line_partners {
            let id = p.id.to_string();
            if !line.iter().any(|l| l.eq_ignore_ascii_case(&id)) {
                return refuse(
                    R::UserCodeNotKnown,
                    "the SSID names a partner the calling number does not belong to",
                );
            }
        }
        // Transport requirements come before the password, so that a
        // connection that can never succeed (plain TCP for a TLS-only
        // partner, no certificate) learns nothing about the password.
        let tls_refusal = R::SecureAuthenticationRequirementsIncompatible;
        if p.tls_required && !transport.tls {
            return refuse(
                tls_refusal,
                "partner requires TLS but connected over plain TCP",
            );
        }
        let cert = transport.client_cert.as_ref();
        if let (Some(pin), Some(presented)) = (&p.client_cert_sha256, cert) {
            if *pin != presented.sha256 {
                return refuse(
                    tls_refusal,
                    "client certificate does not match the pinned one",
                );
            }
        }
        let ca_verified = match cert {
            None => false,
            Some(c) => Self::check_chain(p, c, crls)?,
        };
        if p.client_cert_required {
            if cert.is_none() {
                return refuse(
                    tls_refusal,
                    "client certificate required but none presented",
                );
            }
            if p.client_cert_sha256.is_none() && !ca_verified {
                return refuse(
                    tls_refusal,
                    "client certificate required but neither pinned nor verifiable \
                     ([tls] client_ca or `os4x partner set --client-ca`)",
                );
            }
        }
        if !p.password_matches(&ssid.password) {
            return refuse(R::InvalidPassword, "wrong password");
        }
        let incompatible = match p.directions {
            crate::partner::Directions::Both => false,
            // We only send: a partner that only sends has nothing to do here.
            crate::partner::Directions::Send => ssid.capabilities == SendReceive::Send,
            crate::partner::Directions::Receive => ssid.capabilities == SendReceive::Receive,
        };
        if incompatible {
            return refuse(
                R::ModeOrCapabilitiesIncompatible,
                "direction not allowed for this partner",
            );
        }
        Ok(())
    }

    /// Checks the chain of `cert` against the CA that applies to `p`:
    /// `Ok(true)` verified, `Ok(false)` no CA applies.
    fn check_chain(
        p: &Partner,
        cert: &ClientCertificate,
        crls: &[rustls::pki_types::CertificateRevocationListDer<'static>],
    ) -> Result<bool, Refusal> {
        use EndSessionReason as R;
        let now = rustls::pki_types::UnixTime::now();
        if let Some(path) = &p.client_ca {
            let ca = ClientCa::from_pem_file("partner client CA", path).map_err(|e| {
                // Our configuration, not the partner's fault: ask it to
                // retry later rather than to change its certificate.
                (
                    R::ResourcesNotAvailable,
                    format!("cannot use the partner's own client CA: {e}; fix the file or `os4x partner set --client-ca`"),
                )
            })?;
            return match ca.verify(&cert.chain, now, crls) {
                Ok(()) => Ok(true),
                Err(e) => Err((
                    R::SecureAuthenticationRequirementsIncompatible,
                    format!(
                        "client certificate (sha256 {}) not accepted by the partner's own CA {}: {e}",
                        cert.sha256,
                        path.display()
                    ),
                )),
            };
        }
        if p.client_cert_sha256.is_some() {
            // Pinned (and matched): the exact certificate is named, which
            // says more than any CA.
            return Ok(false);
        }
        match &cert.global_ca {
            None => Ok(false),
            Some(ca) => match ca.verify(&cert.chain, now, crls) {
                Ok(()) => Ok(true),
                Err(e) => Err((
                    R::SecureAuthenticationRequirementsIncompatible,
                    format!(
                        "client certificate (sha256 {}) not accepted by [tls] client_ca: {e}",
                        cert.sha256
                    ),
                )),
            },
        }
    }
}

impl Authenticator for PartnerAuth {
    fn authenticate(&mut self, ssid: &Ssid) -> Result<(), EndSessionReason> {
        self.ssid_seen.store(true, Ordering::Relaxed);
        let partner = match self.partners.get(ssid.id.as_str()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(partner = %ssid.id, peer = %self.transport.peer, error = %e, "partner lookup failed; refusing with ESID 08");
                return Err(EndSessionReason::ResourcesNotAvailable);
            }
        };
        // Only a presented client certificate needs the CRLs.
        let crls = match (&self.security, &self.transport.client_cert) {
            (Some(s), Some(_)) => s.tls_crls(),
            _ => Vec::new(),
        };
        let checked =
            PartnerAuth::check(partner.as_ref(), ssid, &self.transport, &crls).and_then(|()| {
                // A revoked, expired or untrusted certificate on file for the
                // partner ends its sessions until the certificate is replaced.
                match (&self.security, &partner) {
                    (Some(s), Some(p)) => s.check_partner_for_session(p).map_err(|e| {
                        (
                            EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                            format!("partner certificate unusable: {e}"),
                        )
                    }),
                    _ => Ok(()),
                }
            });
        let host = admission::peer_host(&self.transport.peer);
        match checked {
            Ok(()) => {
                let Ok(permit) = self.sessions.clone().try_acquire_owned() else {
                    self.admission.refused.session_full(host.parse().ok());
                    tracing::debug!(partner = %ssid.id, peer = %self.transport.peer, "all sessions busy; ESID 08");
                    return Err(EndSessionReason::ResourcesNotAvailable);
                };
                self.session_permit = Some(permit);
                self.slot = None;
                self.admission.login_succeeded(&host, ssid.id.as_str());
                if let Some(p) = partner {
                    if let Ok(mut q) = self.ctx.receipts.lock() {
                        self.inbox.load_due(&p.id, &mut q);
                    }
                    let _ = self.ctx.partner.set(p);
                }
                Ok(())
            }
            Err((reason, why)) => {
                // Our own trouble (ESID 08) is no guess: not delayed.
                let delay = if reason == EndSessionReason::ResourcesNotAvailable {
                    Duration::ZERO
                } else {
                    self.admission.login_failed(
                        &host,
                        partner.as_ref().map(|p| p.id.as_str()),
                        std::time::Instant::now(),
                    )
                };
                self.gate.hold_for(delay);
                tracing::warn!(
                    partner = %ssid.id,
                    peer = %self.transport.peer,
                    session = self.ctx.session,
                    reason = %reason,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "session refused: {why}"
                );
                Err(reason)
            }
        }
    }

    /// The partner's own outgoing password (`password_out`), not the
    /// station's `[local] password`: partners are set up with the
    /// password they expect from us.
    fn answer_password(&mut self, _: &Ssid) -> Option<oftp2::value::Password> {
        self.ctx.partner.get().map(|p| p.password_out)
    }

    /// Secure authentication is a per-partner setting (`os4x partner set
    /// --secure-auth`).
    fn secure_authentication(&mut self, _: &Ssid) -> Option<bool> {
        self.ctx.partner.get().map(|p| p.security.secure_auth)
    }
}

/// The receive daemon's outbox: receipts only (files are the send side's).
struct ReceiptOutbox {
    ctx: Arc<SessionContext>,
}

impl Outbox for ReceiptOutbox {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        None
    }

    fn next_receipt(&mut self) -> Option<Receipt> {
        self.ctx.receipts.lock().ok()?.next_due()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oftp2::value::{OdetteId, Password, ProtocolLevel, UserData};

    struct Ca {
        pem: std::path::PathBuf,
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    fn ca(dir: &std::path::Path, name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        Ca { pem, cert, key }
    }

    fn issue(ca: &Ca) -> CertificateDer<'static> {
        let params = rcgen::CertificateParams::new(vec!["partner.example".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        params
            .signed_by(&key, &ca.cert, &ca.key)
            .unwrap()
            .der()
            .clone()
    }

    fn ssid() -> Ssid {
        Ssid {
            level: ProtocolLevel::V2_0,
            id: OdetteId::new("O0013000000PARTNER").unwrap(),
            password: Password::new("SECRET").unwrap(),
            buffer_size: 4096,
            capabilities: SendReceive::Both,
            compression: false,
            restart: true,
            special_logic: false,
            credit: 10,
            secure_authentication: false,
            user_data: UserData::default(),
        }
    }

    fn tls_with(cert: CertificateDer<'static>, global: Option<&Ca>) -> TransportInfo {
        let global_ca = global.map(|g| ClientCa::from_pem_file("client CA", &g.pem).unwrap());
        TransportInfo {
            tls: true,
            client_cert: ClientCertificate::new(vec![cert], global_ca),
            tls_version: Some("TLSv1_3"),
            peer: "127.0.0.1:40000".parse().unwrap(),
            line_partners: None,
        }
    }

    #[test]
    fn an_isdn_line_admits_only_the_partners_of_its_calling_number() {
        let p = Partner::new(
            ssid().id,
            Password::new("SECRET").unwrap(),
            Password::new("HELLO").unwrap(),
        );
        let line = |partners: &[&str]| TransportInfo {
            tls: false,
            client_cert: None,
            tls_version: None,
            peer: "isdn:4930100".into(),
            line_partners: Some(partners.iter().map(|s| s.to_string()).collect()),
        };
        let check = |t: &TransportInfo| PartnerAuth::check(Some(&p), &ssid(), t, &[]);
        assert!(check(&line(&["O0013000000PARTNER"])).is_ok());
        // Case as stored by another tool; a shared line.
        assert!(check(&line(&["O0013000000OTHER", "o0013000000partner"])).is_ok());
        // The number belongs to someone else: the right password is not enough.
        let (reason, why) = check(&line(&["O0013000000OTHER"])).unwrap_err();
        assert_eq!(reason, EndSessionReason::UserCodeNotKnown);
        assert!(why.contains("calling number"), "{why}");
    }

    #[test]
    fn partner_ca_replaces_the_global_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (global, own) = (ca(dir.path(), "global"), ca(dir.path(), "own"));
        let mut p = Partner::new(
            ssid().id,
            Password::new("SECRET").unwrap(),
            Password::new("HELLO").unwrap(),
        );
        p.client_cert_required = true;
        let check = |p: &Partner, t: &TransportInfo| PartnerAuth::check(Some(p), &ssid(), t, &[]);
        let refused = EndSessionReason::SecureAuthenticationRequirementsIncompatible;

        // No own CA: [tls] client_ca decides.
        assert!(check(&p, &tls_with(issue(&global), Some(&global))).is_ok());
        let (reason, why) = check(&p, &tls_with(issue(&own), Some(&global))).unwrap_err();
        assert_eq!(reason, refused);
        assert!(why.contains("[tls] client_ca"), "{why}");
        // Without any CA a certificate proves nothing for a required one.
        assert!(check(&p, &tls_with(issue(&own), None)).is_err());

        // Own CA: it alone decides.
        p.client_ca = Some(own.pem.clone());
        assert!(check(&p, &tls_with(issue(&own), Some(&global))).is_ok());
        assert!(check(&p, &tls_with(issue(&own), None)).is_ok());
        let (reason, why) = check(&p, &tls_with(issue(&global), Some(&global))).unwrap_err();
        assert_eq!(reason, refused);
        assert!(
            why.contains("partner's own CA") && why.contains(&*own.pem.to_string_lossy()),
            "{why}"
        );

        // Own CA and a pin: both must hold.
        let good = issue(&own);
        p.client_cert_sha256 = Some(sha256_hex(&good));
        assert!(check(&p, &tls_with(good.clone(), None)).is_ok());
        assert!(check(&p, &tls_with(issue(&own), None)).is_err());
        // A pin alone overrides [tls] client_ca (the certificate is named).
        p.client_ca = None;
        let pinned = issue(&own);
        p.client_cert_sha256 = Some(sha256_hex(&pinned));
        assert!(check(&p, &tls_with(pinned, Some(&global))).is_ok());

        // An own CA file gone missing is our fault: ESID 08, retry later.
        p.client_cert_sha256 = None;
        p.client_ca = Some(dir.path().join("missing.pem"));
        let (reason, why) = check(&p, &tls_with(issue(&own), None)).unwrap_err();
        assert_eq!(reason, EndSessionReason::ResourcesNotAvailable);
        assert!(why.contains("missing.pem"), "{why}");

        // Not required and none presented: the CA does not demand one.
        p.client_cert_required = false;
        let plain = TransportInfo {
            client_cert: None,
            ..tls_with(issue(&own), None)
        };
        assert!(check(&p, &plain).is_ok());
    }
}
