//! The send queue: files waiting to go to trading partners, their state,
//! attempts and receipts, and the send-side settings of each partner
//! (where to connect, how to retry, how often to poll).
//!
//! Tables (component `os4x_store::schema::QUEUE`):
//!
//! * `os4x_send_queue`: one row per virtual file to send. The virtual
//!   file's identity (dataset name, date/time stamp, originator,
//!   destination; RFC 5024 section 1.5.2) is fixed when the entry is
//!   created, so every later attempt — after a crash, a lost connection or
//!   a "retry later" — offers the *same* file, resumed with restart where
//!   the partner supports it, never a new one.
//! * `os4x_send_routes`: per partner, how `os4xsqd` reaches it.
//!
//! The file itself is copied into the durable outbox
//! (`<outbox>/<entry id>`, fsynced, directory fsynced) in the same
//! transaction that inserts the row: either both exist or neither.
//!
//! States: `queued` → `sending` → `sent-awaiting-eerp` → `delivered`;
//! failures go to `retry` (with `next_attempt_at`) or, when permanent or
//! past the partner's attempt limit, `failed` with the reason text;
//! `cancelled` by the admin.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use oftp2::record::{self, Layout};
use oftp2::value::{DatasetName, OdetteId, RecordFormat, Timestamp, UserData};
use os4x_store::sql::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::db::{unix_now, Db, DbError};

/// The state of a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EntryState {
    #[serde(rename = "queued")]
    Queued,
    #[serde(rename = "sending")]
    Sending,
    #[serde(rename = "sent-awaiting-eerp")]
    SentAwaitingEerp,
    #[serde(rename = "delivered")]
    Delivered,
    #[serde(rename = "failed")]
    Failed,
    /// Waiting for `next_attempt_at`.
    #[serde(rename = "retry")]
    Retry,
    #[serde(rename = "cancelled")]
    Cancelled,
}

impl EntryState {
    pub const ALL: [EntryState; 7] = [
        EntryState::Queued,
        EntryState::Sending,
        EntryState::SentAwaitingEerp,
        EntryState::Delivered,
        EntryState::Failed,
        EntryState::Retry,
        EntryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Queued => "queued",
            EntryState::Sending => "sending",
            EntryState::SentAwaitingEerp => "sent-awaiting-eerp",
            EntryState::Delivered => "delivered",
            EntryState::Failed => "failed",
            EntryState::Retry => "retry",
            EntryState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for EntryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = if s == "retry-at" { "retry" } else { s };
        EntryState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}; use one of queued, sending, sent-awaiting-eerp, \
                     delivered, failed, retry, cancelled"
                )
            })
    }
}

/// One queue entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub partner: String,
    pub dataset_name: String,
    pub file_timestamp: String,
    pub user_data: String,
    pub originator: String,
    pub destination: String,
    pub format: String,
    pub max_record_size: u32,
    pub description: String,
    pub priority: i64,
    pub source_path: String,
    pub outbox_path: String,
    pub size: u64,
    pub state: EntryState,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_units: u64,
    /// `none`, `awaiting`, `overdue`, `eerp` or `nerp`.
    pub eerp: String,
    pub eerp_text: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    /// The receipt's signature check: `unsigned`, `valid` or `invalid`.
    pub receipt_verification: Option<String>,
    /// The signer (valid) or the error (invalid).
    pub receipt_verification_text: Option<String>,
    /// Hash of the file as transmitted (lowercase hex), when it was
    /// protected with file services or a signed EERP was requested.
    pub file_hash: Option<String>,
    /// `server_id` of the node that last claimed it.
    pub owner: Option<u32>,
    /// While `sending`: until when (Unix seconds, the database's clock)
    /// the claim holds without renewal.
    pub lease_until: Option<i64>,
}

const ENTRY_COLUMNS: &str = "id, partner, dataset_name, file_timestamp, user_data, originator, \
    destination, format, max_record_size, description, priority, source_path, outbox_path, size, \
    state, attempts, next_attempt_at, last_error, sent_units, eerp, eerp_text, created_at, \
    updated_at, sent_at, delivered_at, receipt_verification, receipt_verification_text, file_hash, \
    owner, lease_until";

fn entry_from_row(r: &Row) -> os4x_store::sql::Result<Entry> {
    let state: String = r.get(14)?;
    Ok(Entry {
        id: r.get(0)?,
        partner: r.get(1)?,
        dataset_name: r.get(2)?,
        file_timestamp: r.get(3)?,
        user_data: r.get(4)?,
        originator: r.get(5)?,
        destination: r.get(6)?,
        format: r.get(7)?,
        max_record_size: r.get(8)?,
        description: r.get(9)?,
        priority: r.get(10)?,
        source_path: r.get(11)?,
        outbox_path: r.get(12)?,
        size: r.get::<_, i64>(13)?.max(0) as u64,
        state: state
            .parse()
            .map_err(|e: String| os4x_store::SqlError::Conversion {
                column: "state".into(),
                message: e,
            })?,
        attempts: r.get(15)?,
        next_attempt_at: r.get(16)?,
        last_error: r.get(17)?,
        sent_units: r.get::<_, i64>(18)?.max(0) as u64,
        eerp: r.get(19)?,
        eerp_text: r.get(20)?,
        created_at: r.get(21)?,
        updated_at: r.get(22)?,
        sent_at: r.get(23)?,
        delivered_at: r.get(24)?,
        receipt_verification: r.get(25)?,
        receipt_verification_text: r.get(26)?,
        file_hash: r
            .get::<_, Option<Vec<u8>>>(27)?
            .map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
        owner: r.get(28)?,
        lease_until: r.get(29)?,
    })
}

impl Entry {
    /// The record layout of the local file.
    pub fn layout(&self) -> Result<Layout, String> {
        let format = self.record_format()?;
        Layout::new(format, self.max_record_size).map_err(|e| e.to_string())
    }

    /// SFIDFMT as stored.
    pub fn record_format(&self) -> Result<RecordFormat, String> {
        match self.format.as_bytes() {
            [b] => RecordFormat::from_byte(*b),
            _ => None,
        }
        .ok_or_else(|| format!("stored record format {:?} is not F, V, U or T", self.format))
    }

    /// The restart position to offer for what earlier attempts sent
    /// (records for F and V, 1K blocks for U and T). The receiver answers
    /// with at most this, from what it holds durably (section 5.3.4), so
    /// over-offering never loses data; under-offering only re-sends.
    pub fn restart_position(&self, file: &mut File) -> u64 {
        if self.sent_units == 0 {
            return 0;
        }
        let Ok(layout) = self.layout() else {
            return 0;
        };
        match layout.format() {
            RecordFormat::Unstructured | RecordFormat::Text => {
                self.sent_units / record::RESTART_BLOCK_LEN
            }
            RecordFormat::Fixed => self.sent_units / u64::from(layout.max_record_len().max(1)),
            // Units do not locate a V record without scanning; offer the
            // whole file and let the receiver answer what it has.
            RecordFormat::Variable => record::inspect(layout, file)
                .map(|s| s.counts.records)
                .unwrap_or(0),
        }
    }
}

/// How `os4xsqd` reaches a partner and how it retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub partner: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// PEM file of CAs the partner's server certificate must chain to.
    pub tls_ca_file: Option<PathBuf>,
    /// Pinned server certificate: lowercase hex SHA-256 of its DER.
    pub tls_pin_sha256: Option<String>,
    /// Concurrent sessions to this partner.
    pub max_sessions: u32,
    /// Attempts per file before it is marked failed.
    pub max_attempts: u32,
    /// First retry delay, seconds; doubles per attempt up to `retry_max`.
    pub retry_base: u64,
    pub retry_max: u64,
    /// Poll (open a session with nothing to send) this often, seconds.
    pub poll_interval: Option<u64>,
    /// A file without EERP this long after sending is flagged `overdue`.
    pub eerp_timeout: u64,
}

impl Route {
    /// A plain-TCP route with the default policy.
    pub fn new(partner: &impl fmt::Display, host: &str, port: u16) -> Route {
        Route {
            partner: partner.to_string(),
            host: host.to_owned(),
            port,
            tls: false,
            tls_ca_file: None,
            tls_pin_sha256: None,
            max_sessions: 1,
            max_attempts: 10,
            retry_base: 60,
            retry_max: 3600,
            poll_interval: None,
            eerp_timeout: 86_400,
        }
    }

    /// Backoff before attempt `attempts + 1`: `retry_base · 2^(attempts-1)`
    /// capped at `retry_max`, then "equal jitter" (half fixed, half random)
    /// so that many entries failing together do not retry in lockstep.
    /// `random` is uniform in `[0, 1)`.
    pub fn backoff(&self, attempts: u32, random: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .max(1)
            .saturating_mul(1u64 << exp)
            .min(self.retry_max.max(1));
        let half = full as f64 / 2.0;
        Duration::from_secs_f64(half + half * random.clamp(0.0, 1.0))
    }
}

const ROUTE_COLUMNS: &str = "partner, host, port, tls, tls_ca_file, tls_pin_sha256, max_sessions, \
    max_attempts, retry_base, retry_max, poll_interval, eerp_timeout";

fn route_from_row(r: &Row) -> os4x_store::sql::Result<Route> {
    Ok(Route {
        partner: r.get(0)?,
        host: r.get(1)?,
        port: r.get(2)?,
        tls: r.get(3)?,
        tls_ca_file: r.get::<_, Option<String>>(4)?.map(PathBuf::from),
        tls_pin_sha256: r.get(5)?,
        max_sessions: r.get(6)?,
        max_attempts: r.get(7)?,
        retry_base: r.get::<_, i64>(8)?.max(1) as u64,
        retry_max: r.get::<_, i64>(9)?.max(1) as u64,
        poll_interval: r.get::<_, Option<i64>>(10)?.map(|v| v.max(1) as u64),
        eerp_timeout: r.get::<_, i64>(11)?.max(1) as u64,
    })
}

/// A queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("partner {0} is not configured; list partners with `os4x partner list`")]
    UnknownPartner(String),
    #[error("cannot read {}: {source}; nothing was queued", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a regular file; nothing was queued", path.display())]
    NotAFile { path: PathBuf },
    #[error("{} does not fit format {format}: {message}; nothing was queued", path.display())]
    Layout {
        path: PathBuf,
        format: String,
        message: String,
    },
    #[error("cannot store the file in the outbox {}: {source}; nothing was queued", dir.display())]
    Outbox {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid {what}: {message}")]
    Invalid { what: &'static str, message: String },
    #[error("queue entry {0} does not exist; list entries with `os4x queue`")]
    NoEntry(i64),
    #[error("queue entry {id} is {state}: {what}")]
    WrongState {
        id: i64,
        state: EntryState,
        what: &'static str,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What `os4x send` asks for.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub partner: OdetteId,
    pub source: PathBuf,
    pub dataset_name: DatasetName,
    pub format: RecordFormat,
    pub max_record_size: u32,
    pub priority: i64,
    pub user_data: UserData,
    pub description: String,
    /// Final destination; the partner itself unless routed through it.
    pub destination: Option<OdetteId>,
}

/// A receipt from a partner, reduced to what matches a queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptMatch {
    pub dataset_name: String,
    pub file_timestamp: String,
    /// The file's originator (EERPDEST / NERPDEST).
    pub originator: String,
    /// The file's destination (EERPORIG / NERPORIG).
    pub destination: String,
}

impl ReceiptMatch {
    /// `WHERE` clause selecting the entry a receipt answers (the virtual
    /// file identity of section 1.5.2; Odette IDs compared as the codec
    /// does, case-insensitively), with [`Self::params`] as `?1`..`?4`.
    const WHERE: &'static str = "WHERE dataset_name = ?1 AND file_timestamp = ?2 \
         AND originator = ?3 COLLATE NOCASE AND destination = ?4 COLLATE NOCASE \
         ORDER BY id LIMIT 1";

    fn params(&self) -> [&str; 4] {
        [
            &self.dataset_name,
            &self.file_timestamp,
            &self.originator,
            &self.destination,
        ]
    }
}

/// The queue entry a receipt names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptEntry {
    pub id: i64,
    /// The partner the file was sent to.
    pub partner: String,
    pub state: EntryState,
    /// `none`, `awaiting`, `overdue`, `eerp` or `nerp`.
    pub eerp: String,
}

/// What [`QueueStore::apply_receipt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptApplied {
    /// The entry is delivered (EERP) or failed (NERP) now.
    Applied,
    /// An earlier receipt settled the entry; it stands.
    AlreadySettled { first: String },
    /// The entry was not sent (or not completely): nothing is awaited.
    NotAwaiting { state: EntryState },
}

/// What was done to a queued file (file services) and requested for its
/// receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// The queue entry.
    pub id: i64,
    /// Hash of the transmitted file (EERPHSH must equal it).
    pub file_hash: Option<Vec<u8>>,
    /// SFIDCIPH as sent.
    pub cipher_suite: u8,
    /// SFIDSIGN as sent.
    pub signed_eerp_requested: bool,
    /// The transmitted file (the outbox copy itself without envelope).
    pub protected_path: Option<String>,
    /// The services applied: `s` signed, `c` compressed, `e` encrypted.
    pub file_services: Option<String>,
}

fn protection_from_row(r: &Row) -> os4x_store::sql::Result<Protection> {
    Ok(Protection {
        id: r.get(0)?,
        file_hash: r.get(1)?,
        cipher_suite: r.get(2)?,
        signed_eerp_requested: r.get(3)?,
        protected_path: r.get(4)?,
        file_services: r.get(5)?,
    })
}

/// Which daemon of a node claims entries: a restarted `os4xsqd` takes
/// back its own claims at once and leaves those of the receive daemon
/// (sending to a partner that called in) to their lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    SendQueue,
    Receiver,
}

impl Claimant {
    fn as_str(self) -> &'static str {
        match self {
            Claimant::SendQueue => "os4xsqd",
            Claimant::Receiver => "os4xrd",
        }
    }
}

/// The condition (parameter `?4`) under which a sender's change applies.
fn holder_guard(held: Option<i64>) -> (&'static str, Option<i64>) {
    match held {
        Some(token) => ("state = 'sending' AND claim_token = ?4", Some(token)),
        // ?4 is NULL then; the cast gives PostgreSQL its type.
        None => (
            "state IN ('queued', 'retry') AND CAST(?4 AS BIGINT) IS NULL",
            None,
        ),
    }
}

/// The send queue and routes in the os4x database.
///
/// Several nodes (each with its own `server_id`) may share one database.
/// An entry being sent is held by a lease: the claim sets `lease_until`
/// (the database's clock) and the sender renews it while it sends; a
/// sender that cannot renew stops before the lease runs out
/// ([`LeaseKeeper`]), and only then may another node claim the entry.
/// Every later change by the sender is guarded by its claim token, so a
/// node that lost an entry cannot overwrite what its successor recorded.
#[derive(Debug, Clone)]
pub struct QueueStore {
    db: Db,
    /// `server_id` of the daemon using this store: its claims, its
    /// recovery.
    owner: u32,
    claimant: Claimant,
    lease: Duration,
}

/// The lease when `[cluster] lease` is not set.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

impl QueueStore {
    /// The queue tables of `db` (the store migrated them on open).
    pub fn open(db: Db) -> Result<QueueStore, DbError> {
        Ok(QueueStore {
            db,
            owner: 0,
            claimant: Claimant::SendQueue,
            lease: DEFAULT_LEASE,
        })
    }

    /// The store as used by the `os4xsqd` of `server_id` (several
    /// instances may share one database; each recovers only its own
    /// claims).
    pub fn for_server(mut self, server_id: u32) -> QueueStore {
        self.owner = server_id;
        self
    }

    /// Claims are made by the receive daemon (responder sessions).
    pub fn as_receiver(mut self) -> QueueStore {
        self.claimant = Claimant::Receiver;
        self
    }

    /// How long a claim holds without renewal (`[cluster] lease`).
    pub fn with_lease(mut self, lease: Duration) -> QueueStore {
        self.lease = lease;
        self
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn lease_secs(&self) -> i64 {
        crate::lease::secs(self.lease)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn sql(&self, e: os4x_store::SqlError) -> QueueError {
        QueueError::Db(self.db.error(e))
    }

    // ------------------------------------------------------------------
    // Enqueueing

    /// Copies `file.source` into `outbox` and queues it, in one
    /// transaction: on any error nothing is queued and no copy is left.
    /// `local_id` is our Odette ID (the file's originator).
    pub fn enqueue(
        &self,
        file: &NewFile,
        local_id: &OdetteId,
        outbox: &Path,
    ) -> Result<Entry, QueueError> {
        let src = File::open(&file.source).map_err(|source| QueueError::Source {
            path: file.source.clone(),
            source,
        })?;
        self.enqueue_open(file, src, local_id, outbox)
    }

    /// [`QueueStore::enqueue`] from `src`, which the caller opened (and
    /// checked) as `file.source`: the path is not looked up again, so it
    /// cannot be swapped for another file in between.
    pub fn enqueue_open(
        &self,
        file: &NewFile,
        mut src: File,
        local_id: &OdetteId,
        outbox: &Path,
    ) -> Result<Entry, QueueError> {
        let source_err = |source| QueueError::Source {
            path: file.source.clone(),
            source,
        };
        let meta = src.metadata().map_err(source_err)?;
        if !meta.is_file() {
            return Err(QueueError::NotAFile {
                path: file.source.clone(),
            });
        }
        let layout =
            Layout::new(file.format, file.max_record_size).map_err(|e| QueueError::Invalid {
                what: "record size",
                message: e.to_string(),
            })?;
        // Validate F/V structure now: the admin learns it here, not from
        // a failed transfer at night.
        record::inspect(layout, &mut src).map_err(|e| QueueError::Layout {
            path: file.source.clone(),
            format: file.format.to_string(),
            message: e.to_string(),
        })?;
        std::io::Seek::rewind(&mut src).map_err(source_err)?;
        let outbox_err = |source| QueueError::Outbox {
            dir: outbox.to_owned(),
            source,
        };
        std::fs::create_dir_all(outbox).map_err(outbox_err)?;

        // Copy first, outside any transaction: a large file must not hold
        // the database's write lock (the daemons would time out on it).
        let staging = outbox.join(format!(
            ".incoming.{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        if let Err(e) = copy_durably(&mut src, &staging) {
            let _ = std::fs::remove_file(&staging);
            return Err(match e {
                CopyError::Read(e) => source_err(e),
                CopyError::Write(e) => outbox_err(e),
            });
        }
        let result = self.insert(file, local_id, meta.len(), outbox, &staging);
        if result.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        let id = result?;
        self.get(id)?.ok_or(QueueError::NoEntry(id))
    }

    /// Inserts the row and gives the staged copy its final name
    /// `<outbox>/<id>`, in one transaction.
    fn insert(
        &self,
        file: &NewFile,
        local_id: &OdetteId,
        size: u64,
        outbox: &Path,
        staging: &Path,
    ) -> Result<i64, QueueError> {
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| self.db.error(e))?;
        let now = unix_now();
        let destination = file.destination.unwrap_or(file.partner);
        let id = tx
            .insert_returning_id(
            "INSERT INTO os4x_send_queue (partner, dataset_name, file_timestamp, user_data, \
             originator, destination, format, max_record_size, description, priority, \
             source_path, outbox_path, size, state, next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, '', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '', ?11, 'queued', ?12, ?12, ?12) \
             RETURNING id",
            params![
                file.partner.as_str(),
                file.dataset_name.as_str(),
                file.user_data.as_str(),
                local_id.as_str(),
                destination.as_str(),
                file.format.to_string(),
                file.max_record_size,
                file.description,
                file.priority,
                std::path::absolute(&file.source)
                    .unwrap_or_else(|_| file.source.clone())
                    .to_string_lossy(),
                i64::try_from(size).unwrap_or(i64::MAX),
                now
            ],
        )
        .map_err(|e| self.db.error(e))?;
        // The counter (cccc) keeps stamps unique per second: entry ids
        // are unique, and ten thousand files of one name within one
        // second would be needed for a clash.
        let counter = u16::try_from(id.rem_euclid(10_000)).unwrap_or(0);
        let stamp =
            Timestamp::from_unix_seconds(now, counter).map_err(|e| QueueError::Invalid {
                what: "clock",
                message: e.to_string(),
            })?;
        let target = outbox.join(id.to_string());
        let outbox_err = |source| QueueError::Outbox {
            dir: outbox.to_owned(),
            source,
        };
        // A leftover `<id>` from a crashed earlier attempt with a rolled
        // back row would be silently replaced by rename; refuse instead.
        if target.exists() {
            return Err(outbox_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists but is not queued; move it away",
                    target.display()
                ),
            )));
        }
        std::fs::rename(staging, &target).map_err(outbox_err)?;
        let committed = File::open(outbox)
            .and_then(|d| d.sync_all())
            .map_err(outbox_err)
            .and_then(|()| {
                tx.execute(
                    "UPDATE os4x_send_queue SET file_timestamp = ?2, outbox_path = ?3 WHERE id = ?1",
                    params![id, stamp.to_string(), target.to_string_lossy()],
                )
                .and_then(|_| tx.commit())
                .map_err(|e| self.sql(e))
            });
        if let Err(e) = committed {
            let _ = std::fs::remove_file(&target);
            return Err(e);
        }
        Ok(id)
    }

    // ------------------------------------------------------------------
    // Reading

    pub fn get(&self, id: i64) -> Result<Option<Entry>, QueueError> {
        let conn = self.db.lock();
        conn.query_row(
            &format!("SELECT {ENTRY_COLUMNS} FROM os4x_send_queue WHERE id = ?1"),
            [id],
            entry_from_row,
        )
        .optional()
        .map_err(|e| self.sql(e))
    }

    /// Entries, newest first, optionally only those in `states`.
    pub fn list(&self, states: &[EntryState]) -> Result<Vec<Entry>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM os4x_send_queue ORDER BY id DESC"
            ))
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], entry_from_row)
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let e = row.map_err(|e| self.sql(e))?;
            if states.is_empty() || states.contains(&e.state) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Number of entries per state.
    pub fn counts(&self) -> Result<Vec<(EntryState, u64)>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM os4x_send_queue GROUP BY state")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (s, n) = row.map_err(|e| self.sql(e))?;
            if let Ok(s) = s.parse() {
                out.push((s, n.max(0) as u64));
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------
    // Admin actions

    /// Makes a failed, waiting or cancelled entry due now, with a fresh
    /// attempt budget.
    pub fn retry(&self, id: i64) -> Result<(), QueueError> {
        let entry = self.get(id)?.ok_or(QueueError::NoEntry(id))?;
        match entry.state {
            EntryState::Failed | EntryState::Retry | EntryState::Cancelled | EntryState::Queued => {
            }
            state => {
                return Err(QueueError::WrongState {
                    id,
                    state,
                    what: "only queued, retry, failed or cancelled entries can be retried",
                })
            }
        }
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET state = 'queued', attempts = 0, next_attempt_at = ?2, \
             claim_token = NULL, updated_at = ?2 WHERE id = ?1",
            params![id, unix_now()],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Cancels an entry that has not gone out yet. An entry being sent
    /// right now cannot be cancelled (the partner may already hold it).
    pub fn cancel(&self, id: i64) -> Result<(), QueueError> {
        let conn = self.db.lock();
        let n = conn
            .execute(
                "UPDATE os4x_send_queue SET state = 'cancelled', updated_at = ?2 \
                 WHERE id = ?1 AND state IN ('queued', 'retry', 'failed')",
                params![id, unix_now()],
            )
            .map_err(|e| self.sql(e))?;
        drop(conn);
        if n == 0 {
            let entry = self.get(id)?.ok_or(QueueError::NoEntry(id))?;
            return Err(QueueError::WrongState {
                id,
                state: entry.state,
                what: "only queued, retry or failed entries can be cancelled",
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // The daemon's side

    /// After a crash of this node's `os4xsqd`: the entries it left in
    /// `sending` are due again at once (no need to wait for their lease).
    /// Their `sent_units` stay, so the next attempt resumes with restart.
    /// Other nodes' claims, and the receive daemon's, are left to their
    /// leases.
    pub fn recover(&self) -> Result<usize, QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET state = 'queued', next_attempt_at = ?1, updated_at = ?1, \
             lease_until = NULL WHERE state = 'sending' AND (owner = ?2 OR owner IS NULL) \
             AND (claimed_by = ?3 OR claimed_by IS NULL)",
            params![unix_now(), self.owner, self.claimant.as_str()],
        )
        .map_err(|e| self.sql(e))
    }

    /// Claims the next due entry for `partner` (highest priority, then
    /// oldest), marking it `sending` under a lease and counting the
    /// attempt. Due are queued and waiting entries whose time has come,
    /// and entries whose sender's lease ran out (a node that died or lost
    /// the database). Entries claimed before under the same `token` (one
    /// per session) are not taken again.
    ///
    /// On PostgreSQL the candidate row is locked with `FOR UPDATE SKIP
    /// LOCKED`, so nodes claiming at once take different entries instead
    /// of queueing behind each other; the outer condition is checked again
    /// on the locked row. SQLite serialises writers anyway.
    pub fn claim_next(&self, partner: &str, token: i64) -> Result<Option<Entry>, QueueError> {
        let conn = self.db.lock();
        let due = "partner = ?1 AND (claim_token IS NULL OR claim_token != ?4) AND \
             ((state IN ('queued', 'retry') AND next_attempt_at <= ?2) \
             OR (state = 'sending' AND lease_until < unixepoch()))";
        let lock = match conn.backend() {
            os4x_store::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            os4x_store::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE os4x_send_queue SET state = 'sending', attempts = attempts + 1, \
             owner = ?3, claim_token = ?4, claimed_by = ?6, updated_at = ?2, \
             lease_until = unixepoch() + ?5 WHERE {due} AND id = (SELECT id \
             FROM os4x_send_queue WHERE {due} ORDER BY priority DESC, id LIMIT 1{lock}) \
             RETURNING {ENTRY_COLUMNS}"
        );
        let claimed = conn
            .query_row(
                &sql,
                params![
                    partner,
                    unix_now(),
                    self.owner,
                    token,
                    self.lease_secs(),
                    self.claimant.as_str()
                ],
                entry_from_row,
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        if let Some(e) = &claimed {
            if e.attempts > 1 && e.sent_units > 0 {
                tracing::debug!(
                    entry = e.id,
                    units = e.sent_units,
                    "claimed an entry with progress; it resumes with restart"
                );
            }
        }
        Ok(claimed)
    }

    /// Extends the lease of entry `id` held under `token`. `false`: the
    /// claim is gone (its lease ran out and another node took the entry,
    /// or the admin changed it); the caller must stop sending it.
    pub fn renew(&self, id: i64, token: i64) -> Result<bool, QueueError> {
        let conn = self.db.lock();
        let n = conn
            .execute(
                "UPDATE os4x_send_queue SET lease_until = unixepoch() + ?3 \
                 WHERE id = ?1 AND claim_token = ?2 AND state = 'sending'",
                params![id, token, self.lease_secs()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Records how far a transfer got (for a later restart), if the
    /// entry is still held under `token`; renews the lease too.
    pub fn progress(&self, id: i64, token: i64, units: u64) -> Result<(), QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET sent_units = MAX(sent_units, ?2), updated_at = ?3, \
             lease_until = unixepoch() + ?5 WHERE id = ?1 AND claim_token = ?4 \
             AND state = 'sending'",
            params![
                id,
                i64::try_from(units).unwrap_or(i64::MAX),
                unix_now(),
                token,
                self.lease_secs()
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The partner acknowledged the file (EFPA), or reported it already
    /// holds it: now the EERP is awaited. A receipt that overtook this
    /// (crash between EFPA and here) keeps the entry delivered.
    pub fn sent(&self, id: i64) -> Result<(), QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET state = 'sent-awaiting-eerp', eerp = 'awaiting', \
             sent_at = ?2, updated_at = ?2, last_error = NULL WHERE id = ?1 \
             AND state NOT IN ('delivered', 'failed')",
            params![id, unix_now()],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// A transient failure: retry after the route's backoff, or fail
    /// for good once the attempts are used up. Returns the new state.
    ///
    /// `held`: the claim token of the session that was sending it; the
    /// change only applies while the entry is still `sending` under that
    /// token (another node may have taken it over meanwhile). `None`: an
    /// entry nobody claimed (queued or waiting).
    pub fn failed_attempt(
        &self,
        id: i64,
        held: Option<i64>,
        route: &Route,
        error: &str,
        random: f64,
    ) -> Result<EntryState, QueueError> {
        let entry = self.get(id)?.ok_or(QueueError::NoEntry(id))?;
        let now = unix_now();
        let conn = self.db.lock();
        let (guard, token) = holder_guard(held);
        if entry.attempts >= route.max_attempts {
            let n = conn
                .execute(
                    &format!(
                        "UPDATE os4x_send_queue SET state = 'failed', last_error = ?2, \
                         updated_at = ?3, lease_until = NULL WHERE id = ?1 AND {guard}"
                    ),
                    params![
                        id,
                        format!("{error} (gave up after {} attempts)", entry.attempts),
                        now,
                        token
                    ],
                )
                .map_err(|e| self.sql(e))?;
            return Ok(if n > 0 {
                EntryState::Failed
            } else {
                entry.state
            });
        }
        let delay = route.backoff(entry.attempts, random);
        let at = now + i64::try_from(delay.as_secs().max(1)).unwrap_or(i64::MAX / 2);
        let n = conn
            .execute(
                &format!(
                    "UPDATE os4x_send_queue SET state = 'retry', last_error = ?2, \
                     next_attempt_at = ?3, updated_at = ?5, lease_until = NULL \
                     WHERE id = ?1 AND {guard}"
                ),
                params![id, error, at, token, now],
            )
            .map_err(|e| self.sql(e))?;
        Ok(if n > 0 {
            EntryState::Retry
        } else {
            entry.state
        })
    }

    /// A permanent failure (e.g. SFNA without retry): `failed` with the
    /// reason text. `held` as for [`QueueStore::failed_attempt`].
    pub fn failed(&self, id: i64, held: Option<i64>, error: &str) -> Result<(), QueueError> {
        let conn = self.db.lock();
        let (guard, token) = holder_guard(held);
        conn.execute(
            &format!(
                "UPDATE os4x_send_queue SET state = 'failed', last_error = ?2, updated_at = ?3, \
                 lease_until = NULL WHERE id = ?1 AND {guard}"
            ),
            params![id, error, unix_now(), token],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The partner could not be reached: every entry due for it counts an
    /// attempt and waits (or fails past the limit). Returns how many.
    pub fn partner_unreachable(
        &self,
        route: &Route,
        error: &str,
        random: &mut dyn FnMut() -> f64,
    ) -> Result<usize, QueueError> {
        let ids: Vec<i64> = {
            let conn = self.db.lock();
            let mut stmt = conn
                .prepare(
                    "SELECT id FROM os4x_send_queue WHERE partner = ?1 \
                     AND state IN ('queued', 'retry') AND next_attempt_at <= ?2",
                )
                .map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map(params![route.partner, unix_now()], |r| r.get(0))
                .map_err(|e| self.sql(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))?
        };
        for &id in &ids {
            {
                let conn = self.db.lock();
                conn.execute(
                    // Not if another node claimed it meanwhile.
                    "UPDATE os4x_send_queue SET attempts = attempts + 1 \
                     WHERE id = ?1 AND state IN ('queued', 'retry')",
                    [id],
                )
                .map_err(|e| self.sql(e))?;
            }
            self.failed_attempt(id, None, route, error, random())?;
        }
        Ok(ids.len())
    }

    /// The protection of entry `id` as stored when it was first sent.
    pub fn protection_of(&self, id: i64) -> Result<Option<Protection>, QueueError> {
        let conn = self.db.lock();
        conn.query_row(
            "SELECT id, file_hash, cipher_suite, signed_eerp, protected_path, file_services \
             FROM os4x_send_queue WHERE id = ?1",
            [id],
            protection_from_row,
        )
        .optional()
        .map_err(|e| self.sql(e))
    }

    /// Records the file services applied to entry `id` (once, before its
    /// first transmission).
    pub fn set_protection(&self, p: &Protection) -> Result<(), QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET file_hash = ?2, cipher_suite = ?3, signed_eerp = ?4, \
             protected_path = ?5, updated_at = ?6, file_services = ?7 WHERE id = ?1",
            params![
                p.id,
                p.file_hash,
                p.cipher_suite,
                p.signed_eerp_requested,
                p.protected_path,
                unix_now(),
                p.file_services
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Records the outcome of checking a received receipt's signature.
    /// A receipt that does not verify also sets `last_error`.
    pub fn set_receipt_verification(
        &self,
        id: i64,
        status: &str,
        text: &str,
    ) -> Result<(), QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_queue SET receipt_verification = ?2, \
             receipt_verification_text = NULLIF(?3, ''), \
             last_error = CASE WHEN ?2 = 'invalid' THEN 'receipt signature invalid: ' || ?3 \
             ELSE last_error END, updated_at = ?4 WHERE id = ?1",
            params![id, status, text, unix_now()],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// The entry a receipt names (by the virtual file's identity alone:
    /// who may settle it is the caller's check, see [`crate::receipts`]).
    pub fn receipt_entry(&self, m: &ReceiptMatch) -> Result<Option<ReceiptEntry>, QueueError> {
        let conn = self.db.lock();
        let found: Option<(i64, String, String, String)> = conn
            .query_row(
                &format!(
                    "SELECT id, partner, state, eerp FROM os4x_send_queue {}",
                    ReceiptMatch::WHERE
                ),
                m.params(),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        found
            .map(|(id, partner, state, eerp)| {
                Ok(ReceiptEntry {
                    id,
                    partner,
                    state: state.parse().map_err(|e: String| {
                        QueueError::Db(self.db.error(os4x_store::SqlError::Conversion {
                            column: "state".into(),
                            message: e,
                        }))
                    })?,
                    eerp,
                })
            })
            .transpose()
    }

    /// Applies a receipt to entry `id`: an EERP (`nerp` `None`) delivers
    /// it, a NERP fails it with the text. Only an entry awaiting its
    /// receipt changes; the first receipt for a file is final (a partner
    /// that repeats one because its RTR was lost, or contradicts it, does
    /// not change the entry again).
    pub fn apply_receipt(&self, id: i64, nerp: Option<&str>) -> Result<ReceiptApplied, QueueError> {
        let (state, eerp) = match nerp {
            None => ("delivered", "eerp"),
            Some(_) => ("failed", "nerp"),
        };
        let conn = self.db.lock();
        let now = unix_now();
        let n = conn
            .execute(
                "UPDATE os4x_send_queue SET state = ?2, eerp = ?3, eerp_text = ?4, \
                 last_error = COALESCE(?4, last_error), delivered_at = CASE WHEN ?2 = 'delivered' \
                 THEN ?5 ELSE delivered_at END, updated_at = ?5 WHERE id = ?1 \
                 AND state = 'sent-awaiting-eerp' AND eerp IN ('awaiting', 'overdue')",
                params![id, state, eerp, nerp, now],
            )
            .map_err(|e| self.sql(e))?;
        if n == 1 {
            return Ok(ReceiptApplied::Applied);
        }
        let (now_state, first): (String, String) = conn
            .query_row(
                "SELECT state, eerp FROM os4x_send_queue WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))?;
        if first == "eerp" || first == "nerp" {
            return Ok(ReceiptApplied::AlreadySettled { first });
        }
        Ok(ReceiptApplied::NotAwaiting {
            state: now_state.parse().unwrap_or(EntryState::Queued),
        })
    }

    /// Flags entries whose EERP is overdue by their partner's
    /// `eerp_timeout`. Returns the ids newly flagged.
    pub fn flag_overdue(&self) -> Result<Vec<i64>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(
                "UPDATE os4x_send_queue SET eerp = 'overdue', updated_at = ?1 \
                 WHERE state = 'sent-awaiting-eerp' AND eerp = 'awaiting' AND sent_at + \
                 COALESCE((SELECT eerp_timeout FROM os4x_send_routes r \
                   WHERE r.partner = os4x_send_queue.partner), 86400) <= ?1 RETURNING id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([unix_now()], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Partners with entries due now.
    pub fn partners_due(&self) -> Result<Vec<String>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT partner FROM os4x_send_queue \
                 WHERE state IN ('queued', 'retry') AND next_attempt_at <= ?1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([unix_now()], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    // ------------------------------------------------------------------
    // Routes

    pub fn route(&self, partner: &str) -> Result<Option<Route>, QueueError> {
        let conn = self.db.lock();
        conn.query_row(
            &format!("SELECT {ROUTE_COLUMNS} FROM os4x_send_routes WHERE partner = ?1"),
            [partner],
            route_from_row,
        )
        .optional()
        .map_err(|e| self.sql(e))
    }

    pub fn routes(&self) -> Result<Vec<Route>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {ROUTE_COLUMNS} FROM os4x_send_routes ORDER BY partner"
            ))
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], route_from_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// Adds or replaces a partner's route. The partner-level backoff is
    /// reset, so a corrected address is tried at once.
    pub fn set_route(&self, r: &Route) -> Result<(), QueueError> {
        if r.host.trim().is_empty() {
            return Err(QueueError::Invalid {
                what: "host",
                message: "must not be empty".into(),
            });
        }
        if r.max_sessions == 0 || r.max_attempts == 0 {
            return Err(QueueError::Invalid {
                what: "route",
                message: "max sessions and max attempts must be at least 1".into(),
            });
        }
        // A new route replaces the old one whole, backoff state included.
        let update: Vec<String> = ROUTE_COLUMNS
            .split(',')
            .map(str::trim)
            .chain([
                "failures",
                "next_session_at",
                "last_session_at",
                "updated_at",
            ])
            .filter(|c| *c != "partner")
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let conn = self.db.lock();
        conn.execute(
            &format!(
                "INSERT INTO os4x_send_routes ({ROUTE_COLUMNS}, failures, \
                 next_session_at, last_session_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, 0, ?13) ON CONFLICT (partner) DO UPDATE SET {}",
                update.join(", ")
            ),
            params![
                r.partner,
                r.host,
                r.port,
                r.tls,
                r.tls_ca_file.as_ref().map(|p| p.to_string_lossy()),
                r.tls_pin_sha256,
                r.max_sessions,
                r.max_attempts,
                i64::try_from(r.retry_base).unwrap_or(i64::MAX),
                i64::try_from(r.retry_max).unwrap_or(i64::MAX),
                r.poll_interval
                    .map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
                i64::try_from(r.eerp_timeout).unwrap_or(i64::MAX),
                unix_now()
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    pub fn remove_route(&self, partner: &str) -> Result<bool, QueueError> {
        let conn = self.db.lock();
        let n = conn
            .execute("DELETE FROM os4x_send_routes WHERE partner = ?1", [partner])
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// `(next_session_at, last_session_at, failures)` of a route.
    pub fn route_timing(&self, partner: &str) -> Result<(i64, i64, u32), QueueError> {
        let conn = self.db.lock();
        conn.query_row(
            "SELECT next_session_at, last_session_at, failures FROM os4x_send_routes \
             WHERE partner = ?1",
            [partner],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map(|o| o.unwrap_or((0, 0, 0)))
        .map_err(|e| self.sql(e))
    }

    /// A session with the partner was established and ended normally.
    pub fn session_ok(&self, partner: &str) -> Result<(), QueueError> {
        let conn = self.db.lock();
        conn.execute(
            "UPDATE os4x_send_routes SET failures = 0, next_session_at = 0, \
             last_session_at = ?2 WHERE partner = ?1",
            params![partner, unix_now()],
        )
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// A session failed: the next one waits `delay`.
    pub fn session_failed(&self, partner: &str, delay: Duration) -> Result<u32, QueueError> {
        let conn = self.db.lock();
        let now = unix_now();
        conn.query_row(
            "UPDATE os4x_send_routes SET failures = failures + 1, next_session_at = ?2, \
             last_session_at = ?3 WHERE partner = ?1 RETURNING failures",
            params![
                partner,
                now + i64::try_from(delay.as_secs().max(1)).unwrap_or(i64::MAX / 2),
                now
            ],
            |r| r.get(0),
        )
        .optional()
        .map(|o| o.unwrap_or(0))
        .map_err(|e| self.sql(e))
    }

    /// Partners (with a route) that have EERPs/NERPs due from us.
    pub fn partners_with_receipts_due(&self) -> Result<Vec<String>, QueueError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT d.partner FROM os4x_receipts_due d \
                 JOIN os4x_send_routes r ON r.partner = d.partner WHERE d.state = 'due'",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `src` to a new file `target` and fsyncs it. Fails if `target`
/// exists.
fn copy_durably(src: &mut File, target: &Path) -> Result<(), CopyError> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(CopyError::Write)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    // The directory entry is made durable by the caller after the
    // rename to the final name.
    out.sync_all().map_err(CopyError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, QueueStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(os4x_store::testing::database_for(dir.path())).unwrap();
        (dir, QueueStore::open(db).unwrap())
    }

    fn new_file(dir: &Path, name: &str, data: &[u8]) -> NewFile {
        let source = dir.join(name);
        std::fs::write(&source, data).unwrap();
        NewFile {
            partner: OdetteId::new("O0013000000B").unwrap(),
            source,
            dataset_name: DatasetName::new(name).unwrap(),
            format: RecordFormat::Unstructured,
            max_record_size: 0,
            priority: 0,
            user_data: UserData::EMPTY,
            description: String::new(),
            destination: None,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let mut r = Route::new(&OdetteId::new("O1").unwrap(), "h", 1);
        r.retry_base = 10;
        r.retry_max = 100;
        assert_eq!(r.backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(r.backoff(1, 1.0), Duration::from_secs(10));
        assert_eq!(r.backoff(2, 0.0), Duration::from_secs(10));
        assert_eq!(r.backoff(3, 0.5), Duration::from_secs(30));
        assert_eq!(r.backoff(30, 1.0), Duration::from_secs(100));
    }

    #[test]
    fn enqueue_claim_send_receipt() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let outbox = dir.path().join("outbox");
        let f = new_file(dir.path(), "INV1", b"hello");
        let e = q.enqueue(&f, &local, &outbox).unwrap();
        assert_eq!(e.state, EntryState::Queued);
        assert_eq!(std::fs::read(&e.outbox_path).unwrap(), b"hello");
        assert_eq!(e.file_timestamp.len(), 18);
        let e2 = q.enqueue(&f, &local, &outbox).unwrap();
        assert_ne!(e.file_timestamp, e2.file_timestamp, "unique stamps");

        let c = q.claim_next("o0013000000b", 1).unwrap().unwrap();
        assert_eq!((c.id, c.state, c.attempts), (e.id, EntryState::Sending, 1));
        q.sent(c.id).unwrap();
        let m = ReceiptMatch {
            dataset_name: "INV1".into(),
            file_timestamp: e.file_timestamp.clone(),
            originator: local.to_string(),
            destination: "O0013000000B".into(),
        };
        let entry = q.receipt_entry(&m).unwrap().unwrap();
        assert_eq!(
            (entry.id, entry.partner.as_str(), entry.state),
            (e.id, "O0013000000B", EntryState::SentAwaitingEerp)
        );
        assert_eq!(
            q.apply_receipt(e.id, None).unwrap(),
            ReceiptApplied::Applied
        );
        let got = q.get(e.id).unwrap().unwrap();
        assert_eq!(
            (got.state, got.eerp.as_str()),
            (EntryState::Delivered, "eerp")
        );
        let other = ReceiptMatch {
            file_timestamp: "202001010000000000".into(),
            ..m
        };
        assert_eq!(q.receipt_entry(&other).unwrap(), None);
    }

    #[test]
    fn the_first_receipt_for_a_file_stands() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "ONCE", b"1");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        q.claim_next(&e.partner, 1).unwrap().unwrap();
        q.sent(e.id).unwrap();
        let m = ReceiptMatch {
            dataset_name: "ONCE".into(),
            file_timestamp: e.file_timestamp.clone(),
            originator: local.to_string(),
            destination: f.partner.to_string(),
        };
        assert_eq!(q.receipt_entry(&m).unwrap().unwrap().id, e.id);
        assert_eq!(
            q.apply_receipt(e.id, None).unwrap(),
            ReceiptApplied::Applied
        );
        let delivered = q.get(e.id).unwrap().unwrap();
        // Repeated, then contradicted: the entry stays delivered.
        let first = ReceiptApplied::AlreadySettled {
            first: "eerp".into(),
        };
        assert_eq!(q.apply_receipt(e.id, None).unwrap(), first);
        assert_eq!(q.apply_receipt(e.id, Some("NERP late")).unwrap(), first);
        assert_eq!(q.get(e.id).unwrap().unwrap(), delivered);

        // A file not sent yet awaits no receipt: nothing changes.
        let f = new_file(dir.path(), "NOPE", b"2");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        assert_eq!(
            q.apply_receipt(e.id, Some("NERP 34")).unwrap(),
            ReceiptApplied::NotAwaiting {
                state: EntryState::Queued
            }
        );
        q.claim_next(&e.partner, 1).unwrap().unwrap();
        q.sent(e.id).unwrap();
        assert_eq!(
            q.apply_receipt(e.id, Some("NERP 34")).unwrap(),
            ReceiptApplied::Applied
        );
        assert_eq!(
            q.apply_receipt(e.id, None).unwrap(),
            ReceiptApplied::AlreadySettled {
                first: "nerp".into()
            }
        );
        let got = q.get(e.id).unwrap().unwrap();
        assert_eq!(
            (got.state, got.eerp.as_str(), got.last_error.as_deref()),
            (EntryState::Failed, "nerp", Some("NERP 34"))
        );
    }

    #[test]
    fn unreadable_file_queues_nothing() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let mut f = new_file(dir.path(), "X", b"x");
        f.source = dir.path().join("missing");
        assert!(matches!(
            q.enqueue(&f, &local, &dir.path().join("outbox")),
            Err(QueueError::Source { .. })
        ));
        // F with a length that is not a multiple of the record size.
        let mut f = new_file(dir.path(), "F", b"12345");
        f.format = RecordFormat::Fixed;
        f.max_record_size = 2;
        assert!(matches!(
            q.enqueue(&f, &local, &dir.path().join("outbox")),
            Err(QueueError::Layout { .. })
        ));
        assert!(q.list(&[]).unwrap().is_empty());
        let left = std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count());
        assert_eq!(left, 0);
    }

    #[test]
    fn retries_then_fails_and_admin_actions() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "R", b"r");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        let mut route = Route::new(&f.partner, "127.0.0.1", 1);
        route.max_attempts = 2;
        q.claim_next(&route.partner, 1).unwrap().unwrap();
        assert_eq!(
            q.failed_attempt(e.id, Some(1), &route, "lost", 0.0)
                .unwrap(),
            EntryState::Retry
        );
        // Not due yet.
        assert!(q.claim_next(&route.partner, 1).unwrap().is_none());
        assert!(matches!(q.cancel(e.id + 100), Err(QueueError::NoEntry(_))));
        q.retry(e.id).unwrap();
        let c = q.claim_next(&route.partner, 1).unwrap().unwrap();
        assert!(matches!(q.cancel(c.id), Err(QueueError::WrongState { .. })));
        q.failed_attempt(c.id, Some(1), &route, "lost", 0.0)
            .unwrap();
        q.claim_next(&route.partner, 1).unwrap();
        // attempts was reset by retry: 1 then 2 → gives up.
        q.failed_attempt(c.id, Some(1), &route, "lost again", 0.0)
            .unwrap();
        let _ = q.retry(c.id);
        let c = q.claim_next(&route.partner, 1).unwrap().unwrap();
        route.max_attempts = 1;
        assert_eq!(
            q.failed_attempt(c.id, Some(1), &route, "lost", 0.0)
                .unwrap(),
            EntryState::Failed
        );
        let got = q.get(c.id).unwrap().unwrap();
        assert!(got.last_error.unwrap().contains("gave up after 1 attempts"));
        q.cancel(c.id).unwrap();
        assert_eq!(q.get(c.id).unwrap().unwrap().state, EntryState::Cancelled);
    }

    #[test]
    fn eerp_overdue_is_flagged_once() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "LATE", b"l");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        let mut route = Route::new(&f.partner, "127.0.0.1", 1);
        route.eerp_timeout = 3600;
        q.set_route(&route).unwrap();
        q.claim_next(&e.partner, 1).unwrap().unwrap();
        q.sent(e.id).unwrap();
        assert!(q.flag_overdue().unwrap().is_empty(), "not yet");
        route.eerp_timeout = 0;
        q.set_route(&route).unwrap();
        assert_eq!(q.flag_overdue().unwrap(), vec![e.id]);
        assert!(q.flag_overdue().unwrap().is_empty(), "flagged once");
        let got = q.get(e.id).unwrap().unwrap();
        assert_eq!(
            (got.state, got.eerp.as_str()),
            (EntryState::SentAwaitingEerp, "overdue")
        );
        // A late EERP still delivers it.
        let m = ReceiptMatch {
            dataset_name: "LATE".into(),
            file_timestamp: got.file_timestamp,
            originator: local.to_string(),
            destination: f.partner.to_string(),
        };
        assert_eq!(q.receipt_entry(&m).unwrap().unwrap().id, e.id);
        assert_eq!(
            q.apply_receipt(e.id, None).unwrap(),
            ReceiptApplied::Applied
        );
    }

    #[test]
    fn a_session_does_not_take_back_its_own_claims() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "T", b"t");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        q.claim_next(&e.partner, 5).unwrap().unwrap();
        q.recover().unwrap(); // due again at once
        assert!(q.claim_next(&e.partner, 5).unwrap().is_none());
        assert_eq!(q.claim_next(&e.partner, 6).unwrap().unwrap().id, e.id);
    }

    #[test]
    fn recovery_is_per_server() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "S", b"s");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        let other = q.clone().for_server(7);
        other.claim_next(&e.partner, 1).unwrap().unwrap();
        assert_eq!(q.recover().unwrap(), 0, "server 0 leaves server 7's claim");
        assert_eq!(other.recover().unwrap(), 1);
    }

    #[test]
    fn recover_keeps_progress() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "BIG", &vec![7u8; 10_000]);
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        q.claim_next(&e.partner, 1).unwrap().unwrap();
        q.progress(e.id, 1, 5_000).unwrap();
        q.progress(e.id, 1, 3_000).unwrap();
        assert_eq!(q.recover().unwrap(), 1);
        let got = q.get(e.id).unwrap().unwrap();
        assert_eq!((got.state, got.sent_units), (EntryState::Queued, 5_000));
        let mut file = File::open(&got.outbox_path).unwrap();
        assert_eq!(got.restart_position(&mut file), 4);
    }

    /// Ends the lease of entry `id` now, as if its holder had died.
    fn expire_lease(q: &QueueStore, id: i64) {
        q.db()
            .lock()
            .execute(
                "UPDATE os4x_send_queue SET lease_until = unixepoch() - 1 WHERE id = ?1",
                [id],
            )
            .unwrap();
    }

    #[test]
    fn a_lease_keeps_other_nodes_off_until_it_runs_out() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "L", &vec![1u8; 4_000]);
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        let one = q.clone().for_server(1).with_lease(Duration::from_secs(30));
        let two = q.clone().for_server(2).with_lease(Duration::from_secs(30));
        let c = one.claim_next(&e.partner, 11).unwrap().unwrap();
        let now = unix_now();
        let until = c.lease_until.unwrap();
        assert!(
            (now + 28..=now + 32).contains(&until),
            "lease {until} at {now}"
        );
        assert_eq!(c.owner, Some(1));
        assert!(two.claim_next(&e.partner, 22).unwrap().is_none(), "held");
        assert!(one.renew(e.id, 11).unwrap());
        one.progress(e.id, 11, 2_000).unwrap();

        expire_lease(&q, e.id);
        let taken = two.claim_next(&e.partner, 22).unwrap().unwrap();
        assert_eq!((taken.id, taken.owner, taken.attempts), (e.id, Some(2), 2));
        assert_eq!(taken.sent_units, 2_000, "the successor resumes");
        // The node that lost it can change nothing any more.
        assert!(!one.renew(e.id, 11).unwrap());
        one.progress(e.id, 11, 3_000).unwrap();
        let route = Route::new(&e.partner, "h", 1);
        assert_eq!(
            one.failed_attempt(e.id, Some(11), &route, "late", 0.0)
                .unwrap(),
            EntryState::Sending
        );
        one.failed(e.id, Some(11), "late").unwrap();
        assert_eq!(one.recover().unwrap(), 0, "not its claim any more");
        let got = q.get(e.id).unwrap().unwrap();
        assert_eq!(
            (got.state, got.owner, got.sent_units, got.last_error),
            (EntryState::Sending, Some(2), 2_000, None)
        );
        // The holder's own outcome applies.
        assert_eq!(
            two.failed_attempt(e.id, Some(22), &route, "lost", 0.0)
                .unwrap(),
            EntryState::Retry
        );
        assert_eq!(q.get(e.id).unwrap().unwrap().lease_until, None);
    }

    #[test]
    fn recovery_leaves_the_receive_daemons_claims_to_their_lease() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let f = new_file(dir.path(), "R", b"r");
        let e = q.enqueue(&f, &local, &dir.path().join("outbox")).unwrap();
        let rd = q.clone().for_server(3).as_receiver();
        let sq = q.clone().for_server(3);
        rd.claim_next(&e.partner, 1).unwrap().unwrap();
        assert_eq!(sq.recover().unwrap(), 0, "os4xrd may be sending it now");
        expire_lease(&q, e.id);
        assert_eq!(sq.claim_next(&e.partner, 2).unwrap().unwrap().id, e.id);
    }

    #[test]
    fn an_unreachable_partner_does_not_touch_entries_being_sent() {
        let (dir, q) = store();
        let local = OdetteId::new("O0013000000A").unwrap();
        let a = new_file(dir.path(), "A", b"a");
        let b = new_file(dir.path(), "B", b"b");
        let ea = q.enqueue(&a, &local, &dir.path().join("outbox")).unwrap();
        let eb = q.enqueue(&b, &local, &dir.path().join("outbox")).unwrap();
        let other = q.clone().for_server(2);
        assert_eq!(other.claim_next(&ea.partner, 9).unwrap().unwrap().id, ea.id);
        let route = Route::new(&ea.partner, "h", 1);
        assert_eq!(
            q.partner_unreachable(&route, "down", &mut || 0.0).unwrap(),
            1
        );
        let (ga, gb) = (
            q.get(ea.id).unwrap().unwrap(),
            q.get(eb.id).unwrap().unwrap(),
        );
        assert_eq!((ga.state, ga.attempts), (EntryState::Sending, 1));
        assert_eq!((gb.state, gb.attempts), (EntryState::Retry, 1));
    }
}
