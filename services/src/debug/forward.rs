//! The tracing layer that forwards a daemon's events to `os4xdebugd`.
//!
//! Never blocks and never fails the daemon: events go into a bounded
//! channel with `try_send`; a dedicated thread drains it onto one TCP
//! connection with short timeouts. When the channel is full, or
//! `os4xdebugd` is unreachable, records are dropped and counted
//! ([`Forwarder::dropped`]); the count is reported to `os4xdebugd` once it
//! is reachable again, and the daemon's own log says when forwarding stops
//! and resumes.
//!
//! Whether records are forwarded at all is switched at runtime (see
//! [`super::switch`]); while off, the filter rejects events after one
//! atomic load and the thread holds no connection.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::proto::{self, Frame, Record};
use super::switch::{SwitchReader, POLL_INTERVAL};

/// Records waiting for the sender thread; beyond this they are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// Connect and write timeouts towards `os4xdebugd`.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait between reconnection attempts while `os4xdebugd` is down.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Events of this module are about forwarding itself and are never
/// forwarded (that would feed back).
const OWN_TARGET: &str = module_path!();

/// What a daemon needs to forward its records.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub program: String,
    pub server_id: u32,
    /// `os4xdebugd`'s address (`[debug] listen`).
    pub address: SocketAddr,
    /// Forwarding on at start (configuration's `[debug] enable`), until
    /// the database switch says otherwise.
    pub enabled_by_config: bool,
    /// Most verbose level forwarded (`[debug] level`).
    pub level: LevelFilter,
    /// Database holding the runtime switch.
    pub database: os4x_store::Location,
}

#[derive(Debug)]
struct Shared {
    enabled: AtomicBool,
    dropped: AtomicU64,
    sent: AtomicU64,
}

/// Handle on a running forwarder: counters, for tests and diagnostics.
#[derive(Debug, Clone)]
pub struct Forwarder {
    shared: Arc<Shared>,
}

impl Forwarder {
    /// Records dropped since start (queue full or `os4xdebugd` down).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records written to `os4xdebugd` since start.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::Relaxed)
    }
}

/// The layer half: turns events into [`Record`]s.
pub struct ForwardLayer {
    shared: Arc<Shared>,
    tx: SyncSender<Record>,
}

/// The per-layer filter: level, and the runtime switch.
pub struct ForwardFilter {
    shared: Arc<Shared>,
    level: LevelFilter,
}

/// Starts the sender thread and returns the layer (with its filter
/// applied) to add to the subscriber. `Err` only if the thread cannot be
/// spawned; the caller then runs without forwarding.
pub fn start<S>(
    settings: ForwardSettings,
) -> std::io::Result<(
    tracing_subscriber::filter::Filtered<ForwardLayer, ForwardFilter, S>,
    Forwarder,
)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let shared = Arc::new(Shared {
        enabled: AtomicBool::new(settings.enabled_by_config),
        dropped: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let (tx, rx) = sync_channel(QUEUE_CAPACITY);
    let level = settings.level;
    let sender = Sender::new(settings, shared.clone(), rx);
    std::thread::Builder::new()
        .name("os4x-debug-forward".into())
        .spawn(move || sender.run())?;
    let layer = ForwardLayer {
        shared: shared.clone(),
        tx,
    };
    let filter = ForwardFilter {
        shared: shared.clone(),
        level,
    };
    Ok((layer.with_filter(filter), Forwarder { shared }))
}

impl ForwardFilter {
    fn wanted(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.level && !meta.target().starts_with(OWN_TARGET)
    }
}

impl<S> Filter<S> for ForwardFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        self.shared.enabled.load(Ordering::Relaxed) && self.wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // "sometimes": the answer changes with the runtime switch, so it
        // must not be cached per callsite.
        if self.wanted(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level)
    }
}

/// Span fields, formatted once at span creation.
struct SpanFields(String);

impl<S> Layer<S> for ForwardLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut v = Collect::default();
        attrs.record(&mut v);
        let mut text = String::new();
        for (k, val) in &v.fields {
            let _ = write!(text, "{}{k}={val}", if text.is_empty() { "" } else { " " });
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(text));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut v = Collect::default();
        event.record(&mut v);
        let mut spans = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if !spans.is_empty() {
                    spans.push(':');
                }
                spans.push_str(span.name());
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    if !f.0.is_empty() {
                        let _ = write!(spans, "{{{}}}", f.0);
                    }
                }
            }
        }
        let meta = event.metadata();
        let mut record = Record {
            ts_us: now_us(),
            level: meta.level().to_string(),
            target: meta.target().to_owned(),
            message: v.message,
            fields: v.fields,
            spans,
        };
        record.truncate_to_fit();
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default)]
struct Collect {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The thread that owns the connection.
struct Sender {
    settings: ForwardSettings,
    shared: Arc<Shared>,
    rx: Receiver<Record>,
    conn: Option<TcpStream>,
    /// No connection attempt before this instant.
    retry_at: Instant,
    backoff: Duration,
    /// Drop count last reported to `os4xdebugd`.
    reported: u64,
    /// Whether the current outage was logged already.
    outage_logged: bool,
    switch: SwitchReader,
    next_poll: Instant,
}

impl Sender {
    fn new(settings: ForwardSettings, shared: Arc<Shared>, rx: Receiver<Record>) -> Sender {
        let switch = SwitchReader::new(&settings.database);
        Sender {
            settings,
            shared,
            rx,
            conn: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(250),
            reported: 0,
            outage_logged: false,
            switch,
            next_poll: Instant::now(),
        }
    }

    fn run(mut self) {
        loop {
            let now = Instant::now();
            if now >= self.next_poll {
                self.poll_switch();
                self.next_poll = now + POLL_INTERVAL;
            }
            let wait = self.next_poll.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(record) => self.forward(record),
                Err(RecvTimeoutError::Timeout) => {
                    // Report drops even when nothing else is logged.
                    if self.conn.is_some() {
                        self.report_drops();
                    }
                }
                // The subscriber (and with it the layer) is gone.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn poll_switch(&mut self) {
        let s = &self.settings;
        let enabled = match self.switch.read(s.server_id, &s.program) {
            Ok(Some(on)) => on,
            Ok(None) => s.enabled_by_config,
            // Database briefly locked or not there: keep the current state.
            Err(_) => self.shared.enabled.load(Ordering::Relaxed),
        };
        let was = self.shared.enabled.swap(enabled, Ordering::Relaxed);
        if was != enabled {
            tracing::info!(program = %s.program, enabled, "debug forwarding to os4xdebugd switched");
        }
        if !enabled {
            self.conn = None;
        }
    }

    fn forward(&mut self, record: Record) {
        if self.conn.is_none() && !self.connect() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.report_drops();
        match proto::encode(&Frame::Record(record)) {
            Some(bytes) if self.write(&bytes) => {
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn report_drops(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        // Nothing dropped yet is not worth a frame.
        if dropped != self.reported && dropped > 0 {
            if let Some(bytes) = proto::encode(&Frame::Dropped { count: dropped }) {
                if self.write(&bytes) {
                    self.reported = dropped;
                }
            }
        }
    }

    /// Writes one frame; on failure the connection is closed.
    fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        if conn.write_all(bytes).is_ok() {
            return true;
        }
        self.conn = None;
        self.lost("write failed");
        false
    }

    fn connect(&mut self) -> bool {
        let now = Instant::now();
        if now < self.retry_at {
            return false;
        }
        let attempt =
            TcpStream::connect_timeout(&self.settings.address, IO_TIMEOUT).and_then(|s| {
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                Ok(s)
            });
        match attempt {
            Ok(stream) => {
                self.conn = Some(stream);
                self.backoff = Duration::from_millis(250);
                let hello = Frame::Hello {
                    version: proto::VERSION,
                    program: self.settings.program.clone(),
                    pid: std::process::id(),
                    server_id: self.settings.server_id,
                };
                let Some(bytes) = proto::encode(&hello) else {
                    return false;
                };
                if !self.write(&bytes) {
                    return false;
                }
                // Force a drop report on every new connection.
                self.reported = u64::MAX;
                if self.outage_logged {
                    tracing::info!(
                        address = %self.settings.address,
                        dropped_total = self.shared.dropped.load(Ordering::Relaxed),
                        "os4xdebugd reachable again; forwarding debug records"
                    );
                    self.outage_logged = false;
                }
                true
            }
            Err(e) => {
                self.lost(&e.to_string());
                false
            }
        }
    }

    /// Notes an outage: no attempt before the backoff expires, and one log
    /// line per outage.
    fn lost(&mut self, why: &str) {
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if !self.outage_logged {
            self.outage_logged = true;
            tracing::warn!(
                address = %self.settings.address,
                error = why,
                "os4xdebugd not reachable; dropping debug records until it is (the daemon is not affected)"
            );
        }
    }
}

/// Forwarding settings for a daemon `program` under `config`; `None` for
/// `os4xdebugd` itself (it would send its records to itself).
pub fn settings_for(program: &str, config: &crate::config::Config) -> Option<ForwardSettings> {
    if program == crate::programs::OS4XDEBUGD {
        return None;
    }
    Some(ForwardSettings {
        program: program.to_owned(),
        server_id: config.server_id,
        address: config.debug.listen,
        enabled_by_config: config.debug.enabled_for(program),
        level: config.debug.level,
        database: config.database.clone(),
    })
}
