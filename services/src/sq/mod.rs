//! `os4xsqd`, the send-queue daemon: delivers queued files to trading
//! partners, retries with backoff, polls partners for their files, and
//! exchanges receipts.
//!
//! A scheduler looks at the queue every `[sq] scan_interval` (and right
//! after each session): for every partner with due entries, due EERPs or a
//! due poll, and a route (`os4x route`), it starts a session task unless
//! the partner already has `max_sessions` running or is in backoff after
//! failed connections. Sessions are supervised tokio tasks under a global
//! limit (`[sq] max_sessions`); each has connect/handshake timeouts and the
//! OFTP response timer, so a hanging partner holds one slot, never the
//! scheduler. A task that dies puts its claimed entries back.
//!
//! Crash safety: entries are claimed (`sending`) one at a time; at start
//! every `sending` entry is queued again. Its virtual file keeps its
//! date/time stamp and the octets already sent, so the next session
//! offers a restart of the same file (and a receiver that already holds
//! it answers "duplicate file", which counts as sent).

pub mod isdn;
pub mod session;
/// `[sq]` settings (they live in the configuration crate).
pub use os4x_config::sq as settings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oftp2::value::OdetteId;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::db::{unix_now, Db};
use crate::exchange::{Claimed, Outcome};
use crate::inbox::{DiskStorage, InboxStore};
use crate::partner::PartnerStore;
use crate::queue::{EntryState, QueueStore, Route};

/// What the daemon's sessions share.
pub struct Shared {
    pub config: Arc<Config>,
    pub local_id: OdetteId,
    pub queue: QueueStore,
    pub partners: PartnerStore,
    pub inbox: Arc<InboxStore>,
    pub stats: Stats,
    /// `[security]` keys, partner CAs and CRLs (`None`: not configured).
    pub security: Option<Arc<crate::security::Security>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Opens the database and inbox for `config`. Call inside a tokio
    /// runtime (post-receive commands of polled files run on it).
    pub fn new(config: Arc<Config>) -> anyhow::Result<Arc<Shared>> {
        let local_id = config.local.require_id().map_err(anyhow::Error::msg)?;
        let db = Db::open(&config.database)?;
        let queue = QueueStore::open(db.clone())?
            .for_server(config.server_id)
            .with_lease(config.cluster.lease);
        let inbox = InboxStore::new(
            db.clone(),
            Arc::new(DiskStorage),
            config.rd.inbox_dir.clone(),
            local_id,
            crate::inbox::InboxLimits::from_config(&config.rd),
        );
        let partners = PartnerStore::new(db);
        let security = crate::security::load_for_daemon(&config, partners.clone())?;
        inbox.set_cluster(config.server_id, config.cluster.lease);
        if let Some(s) = &security {
            inbox.set_security(s.clone());
        }
        Ok(Arc::new(Shared {
            local_id,
            queue,
            partners,
            inbox,
            stats: Stats::default(),
            config,
            security,
        }))
    }
}

pub use crate::exchange::jitter;

/// Counters for systemd's STATUS= line.
#[derive(Debug, Default)]
pub struct Stats {
    active: AtomicU64,
    sent_today: AtomicU64,
    day: AtomicU64,
    changed: Notify,
}

/// Sessions in either role count into the daemon's STATUS= line.
impl crate::exchange::SendStats for Shared {
    fn file_sent(&self) {
        self.stats.sent();
    }

    fn receipt_applied(&self) {
        self.stats.changed();
    }
}

impl Stats {
    fn sent(&self) {
        let today = u64::try_from(unix_now() / 86_400).unwrap_or(0);
        if self.day.swap(today, Ordering::Relaxed) != today {
            self.sent_today.store(0, Ordering::Relaxed);
        }
        self.sent_today.fetch_add(1, Ordering::Relaxed);
        self.changed();
    }

    fn changed(&self) {
        self.changed.notify_one();
    }

    fn sent_today(&self) -> u64 {
        let today = u64::try_from(unix_now() / 86_400).unwrap_or(0);
        if self.day.load(Ordering::Relaxed) == today {
            self.sent_today.load(Ordering::Relaxed)
        } else {
            0
        }
    }
}

/// One session task: its partner and the entries it claimed.
struct Running {
    partner: String,
    claimed: Claimed,
}

/// The scheduler.
pub struct Scheduler {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    tasks: JoinSet<(u64, Outcome)>,
    running: HashMap<u64, Running>,
    /// Task id → our session number.
    ids: HashMap<tokio::task::Id, u64>,
    next_session: u64,
    /// Partners without a route, logged once per daemon run.
    warned_no_route: std::collections::HashSet<String>,
}

impl Scheduler {
    pub fn new(shared: Arc<Shared>) -> Scheduler {
        let max = usize::try_from(shared.config.sq.max_sessions).unwrap_or(usize::MAX);
        Scheduler {
            shared,
            slots: Arc::new(Semaphore::new(max)),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            ids: HashMap::new(),
            next_session: 1,
            warned_no_route: Default::default(),
        }
    }

    fn active_for(&self, partner: &str) -> u32 {
        self.running
            .values()
            .filter(|r| r.partner.eq_ignore_ascii_case(partner))
            .count() as u32
    }

    /// Starts the sessions that are due now.
    pub fn schedule(&mut self) {
        let q = &self.shared.queue;
        match q.flag_overdue() {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(entries = ?ids, "no EERP within the partner's eerp_timeout; flagged overdue")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot check for overdue EERPs"),
        }
        let now = unix_now();
        let due = q.partners_due().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the queue");
            Vec::new()
        });
        let receipts = q.partners_with_receipts_due().unwrap_or_default();
        let routes = q.routes().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the partner routes");
            Vec::new()
        });
        let mut wanted: Vec<(Route, &'static str)> = Vec::new();
        for p in &due {
            match routes.iter().find(|r| r.partner.eq_ignore_ascii_case(p)) {
                Some(r) => wanted.push((r.clone(), "files due")),
                None => {
                    if self.warned_no_route.insert(p.to_ascii_uppercase()) {
                        tracing::warn!(partner = %p, "files queued for a partner without a route; set one with `os4x route set`");
                    }
                }
            }
        }
        for r in &routes {
            if wanted.iter().any(|(w, _)| w.partner == r.partner) {
                continue;
            }
            let Ok((_, last, _)) = q.route_timing(&r.partner) else {
                continue;
            };
            let poll_due = r
                .poll_interval
                .is_some_and(|i| now >= last + i64::try_from(i).unwrap_or(i64::MAX / 2));
            let receipts_due = receipts.iter().any(|p| p.eq_ignore_ascii_case(&r.partner))
                && now >= last + i64::try_from(r.retry_base).unwrap_or(60);
            if poll_due {
                wanted.push((r.clone(), "poll"));
            } else if receipts_due {
                wanted.push((r.clone(), "receipts due"));
            }
        }
        for (route, why) in wanted {
            let Ok((next_session_at, _, _)) = q.route_timing(&route.partner) else {
                continue;
            };
            if now < next_session_at {
                continue;
            }
            let active = self.active_for(&route.partner);
            // A second session for the same partner only for files: one
            // poll or receipt run at a time is enough.
            if active >= route.max_sessions || (active > 0 && why != "files due") {
                continue;
            }
            let partner = match self.shared.partners.get(&route.partner) {
                Ok(Some(p)) if p.enabled => p,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    if self
                        .warned_no_route
                        .insert(route.partner.to_ascii_uppercase())
                    {
                        tracing::warn!(partner = %route.partner, "route for a partner that is not configured; add it with `os4x partner add`");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(partner = %route.partner, error = %e, "cannot read the partner");
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::debug!("all session slots busy");
                break;
            };
            let no = self.next_session;
            self.next_session += 1;
            let claimed = Claimed::default();
            self.running.insert(
                no,
                Running {
                    partner: route.partner.clone(),
                    claimed: claimed.clone(),
                },
            );
            tracing::info!(partner = %route.partner, session = no, reason = why, "starting session");
            let shared = self.shared.clone();
            shared.stats.active.fetch_add(1, Ordering::Relaxed);
            shared.stats.changed();
            let handle = self.tasks.spawn(async move {
                let outcome =
                    session::run(shared.clone(), route.clone(), partner, no, claimed).await;
                after_session(&shared, &route, &outcome);
                drop(permit);
                (no, outcome)
            });
            self.ids.insert(handle.id(), no);
        }
    }

    /// Waits for the next session to finish (pending forever if none).
    pub async fn join_next(&mut self) {
        let Some(res) = self.tasks.join_next_with_id().await else {
            std::future::pending::<()>().await;
            return;
        };
        let (no, panicked) = match res {
            Ok((id, (no, _))) => {
                self.ids.remove(&id);
                (no, false)
            }
            Err(e) => {
                let no = self.ids.remove(&e.id()).unwrap_or(0);
                tracing::error!(session = no, error = %e, "session task died; its files are queued again");
                (no, true)
            }
        };
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
        self.shared.stats.changed();
        if let Some(r) = self.running.remove(&no) {
            if panicked {
                self.requeue(&r);
            }
        }
    }

    fn requeue(&self, r: &Running) {
        for id in r.claimed.ids() {
            if let Ok(Some(e)) = self.shared.queue.get(id) {
                if e.state == EntryState::Sending {
                    let route = Route::new(&self.shared.local_id, "", 0);
                    let _ = self.shared.queue.failed_attempt(
                        id,
                        Some(r.claimed.token()),
                        &Route {
                            max_attempts: u32::MAX,
                            retry_base: 1,
                            retry_max: 1,
                            ..route
                        },
                        "session task died",
                        0.0,
                    );
                }
            }
        }
    }

    /// Stops all sessions (shutdown): their claimed entries are queued
    /// again, keeping their progress for a restart.
    pub async fn stop(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.join_next()).await {
                Ok(()) => {}
                Err(_) => break,
            }
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let running: Vec<Running> = self.running.drain().map(|(_, r)| r).collect();
        for r in &running {
            self.requeue(r);
        }
    }

    pub fn active(&self) -> usize {
        self.running.len()
    }
}

/// Partner-level bookkeeping after a session.
fn after_session(shared: &Shared, route: &Route, outcome: &Outcome) {
    let q = &shared.queue;
    if outcome.connected && outcome.normal {
        let _ = q.session_ok(&route.partner);
        return;
    }
    let error = outcome
        .error
        .clone()
        .unwrap_or_else(|| "session failed".to_owned());
    let failures = q
        .route_timing(&route.partner)
        .map(|(_, _, f)| f)
        .unwrap_or(0);
    let delay = route.backoff(failures + 1, jitter());
    if !outcome.connected {
        // Nothing was claimed: every due file counts this attempt.
        let mut rnd = jitter;
        match q.partner_unreachable(route, &error, &mut rnd) {
            Ok(n) => {
                tracing::warn!(partner = %route.partner, files = n, retry_in = ?delay, error, "partner not reachable")
            }
            Err(e) => tracing::error!(error = %e, "cannot record the failed attempt"),
        }
    }
    if let Err(e) = q.session_failed(&route.partner, delay) {
        tracing::error!(error = %e, "cannot record the session failure");
    }
}

fn status_line(shared: &Shared) -> String {
    let counts = shared.queue.counts().unwrap_or_default();
    let n = |s: EntryState| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    format!(
        "{} sessions active, {} queued, {} waiting to retry, {} awaiting EERP, {} failed, {} sent today",
        shared.stats.active.load(Ordering::Relaxed),
        n(EntryState::Queued) + n(EntryState::Sending),
        n(EntryState::Retry),
        n(EntryState::SentAwaitingEerp),
        n(EntryState::Failed),
        shared.stats.sent_today()
    )
}

/// The body of `os4xsqd`.
pub async fn run(d: Daemon) -> anyhow::Result<()> {
    let shared = Shared::new(d.config().clone())?;
    let recovered = shared
        .queue
        .recover()
        .context("cannot recover entries left in `sending`")?;
    if recovered > 0 {
        tracing::warn!(
            entries = recovered,
            "entries left in `sending` by a previous run are queued again (restart keeps their progress)"
        );
    }
    d.ready();
    // CRLs of partner and CA certificates, downloaded on a schedule for
    // every daemon of this station (they read `[security] crl_dir`).
    let crl_task = shared
        .security
        .clone()
        .map(|s| tokio::spawn(crate::security::crl::run(s)));
    let mut scheduler = Scheduler::new(shared.clone());
    let mut shutdown = d.shutdown();
    let scan = shared.config.sq.scan_interval;
    let mut tick = tokio::time::interval(scan);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    let mut last_status = String::new();
    loop {
        let line = status_line(&shared);
        if line != last_status {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
            last_status = line;
        }
        if watchdog {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
        tokio::select! {
            () = shutdown.wait() => break,
            _ = tick.tick() => scheduler.schedule(),
            () = scheduler.join_next() => scheduler.schedule(),
            () = shared.stats.changed.notified() => {}
        }
    }
    tracing::info!(
        sessions = scheduler.active(),
        "stopping; running sessions get a moment to finish"
    );
    scheduler.stop(Duration::from_secs(3)).await;
    if let Some(t) = crl_task {
        t.abort();
    }
    Ok(())
}

/// Configuration problems found before the daemon starts: printed, and
/// the process exits with [`crate::exit::CONFIG`] (78).
pub fn precheck(args: &crate::daemon::DaemonArgs) -> Option<std::process::ExitCode> {
    let config = Config::load(args.config.as_deref()).ok()?;
    let problem = config.local.require_id().err()?;
    eprintln!("os4xsqd: {problem}");
    Some(std::process::ExitCode::from(crate::exit::CONFIG))
}
