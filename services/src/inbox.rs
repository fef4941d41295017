//! The durable inbox: where incoming virtual files are written, how they
//! become visible, and what is remembered about them.
//!
//! A file from partner `P` is written to
//! `<inbox>/<P>/.partial/<dataset>.<timestamp>.<originator>.part`. Only
//! after EFID's counts matched is it fsynced, linked to its final name
//! `<inbox>/<P>/<dataset>` (never replacing an existing file: a second
//! file of the same name gets `.<timestamp>` appended), the directory
//! fsynced, and the row in `os4x_received_files` set to `received`
//! together with the EERP now due, in one transaction. A consumer that
//! polls `<inbox>/<P>/` therefore sees complete files only.
//!
//! A transfer that fails (connection lost, disk full, EFNA) keeps its
//! partial file and the durably written length (`restart_offset`, also
//! checkpointed every [`CHECKPOINT_BYTES`] during the transfer), so the
//! partner's restart continues where the data is known to be on disk.
//!
//! Names from the wire never reach the file system as they are:
//! [`safe_file_name`] maps any octets to a name without `/`, NUL or a
//! leading `.`, injectively.
//!
//! All file system access goes through [`Storage`], so tests can inject
//! `ENOSPC` and I/O errors.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oftp2::codec::{Eerp, Nerp, Sfid};
use oftp2::record::{self, Counts, Layout, RestartPoint};
use oftp2::security::file as file_services;
use oftp2::session::{Accepted, FileOffer, Inbox, IncomingFile, Receipt, Refusal};
use oftp2::value::{
    CipherSuite, DatasetName, EndFileRefusal, EndSessionReason, FileCompression, FileEnvelope,
    NerpReason, OdetteId, SecurityLevel, StartFileRefusal, UserData,
};
use os4x_store::sql::{params, OptionalExtension};

use crate::db::{unix_now, Db};
use crate::lease::Lease;
use crate::partner::{Partner, PartnerStore};
use crate::security::Security;

/// How much is written between two durable restart checkpoints.
pub const CHECKPOINT_BYTES: u64 = 64 << 20;

/// Name of the directory of partial files inside a partner's inbox.
pub const PARTIAL_DIR: &str = ".partial";

/// Maps a name from the wire (dataset name, Odette ID) to a file name.
///
/// ASCII letters, digits, `-` and `_` stay; `.` stays except in first
/// position; every other octet becomes `%XX`. The result is never empty,
/// never contains `/` or NUL, never starts with `.` (so it is neither `.`,
/// `..` nor hidden), and distinct inputs give distinct names.
pub fn safe_file_name(name: &[u8]) -> String {
    if name.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for (i, &b) in name.iter().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file being written.
pub trait StoredFile: Read + Write + Seek + Send {
    /// Make the content durable (`fsync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Truncate or extend.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl StoredFile for File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

/// The file system operations of the inbox.
pub trait Storage: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens `path` for reading and writing, creating it if needed,
    /// without truncating.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>>;
    /// Octets available to us in the file system holding `dir`.
    fn available(&self, dir: &Path) -> io::Result<u64>;
    /// Gives `from` the additional name `to`; fails with `AlreadyExists`
    /// rather than replace an existing file.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes directory entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Length of the file at `path`; `None` if there is none.
    fn len(&self, path: &Path) -> io::Result<Option<u64>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    /// Octets the regular files below `dir` take (a partner's inbox for
    /// its quota); 0 if `dir` does not exist.
    fn usage(&self, dir: &Path) -> io::Result<u64> {
        dir_usage(dir)
    }
}

/// Sum of the lengths of the regular files below `dir` (symbolic links
/// are not followed).
pub fn dir_usage(dir: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                // A file taken away meanwhile no longer counts.
                if let Ok(m) = entry.metadata() {
                    total = total.saturating_add(m.len());
                }
            }
        }
    }
    Ok(total)
}

/// Limits of what partners may store, from `[rd]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLimits {
    /// Longest run of a post-receive command.
    pub action_timeout: Duration,
    /// A file may exceed its announced size (SFIDFSIZ) by this percentage
    /// plus [`InboxLimits::size_slack`] octets; past that the session ends
    /// (ESID) and the partial file is discarded.
    pub size_tolerance_percent: u64,
    pub size_slack: u64,
    /// Free space the inbox's file system keeps: files that would eat into
    /// it are refused at SFID (retry later), transfers that reach it end
    /// with ESID 08 and keep their partial file for a restart.
    pub disk_reserve: u64,
    /// Partial files not written to for this long are removed with their
    /// row (`None`: kept until the partner restarts them).
    pub partial_expiry: Option<Duration>,
}

impl Default for InboxLimits {
    fn default() -> Self {
        InboxLimits {
            action_timeout: Duration::from_secs(600),
            size_tolerance_percent: 10,
            size_slack: 1 << 20,
            disk_reserve: 256 << 20,
            partial_expiry: Some(Duration::from_secs(14 * 86_400)),
        }
    }
}

impl InboxLimits {
    pub fn from_config(rd: &crate::rd::settings::RdConfig) -> InboxLimits {
        InboxLimits {
            action_timeout: rd.action_timeout,
            size_tolerance_percent: rd.size_tolerance_percent,
            size_slack: rd.size_slack,
            disk_reserve: rd.disk_reserve,
            partial_expiry: rd.partial_expiry,
        }
    }

    /// The most local octets a file announced by `sfid` may have. A V
    /// file's local form adds a 2-octet length to every record, which the
    /// sender's SFIDFSIZ may not count: up to three times as much is
    /// allowed for it.
    pub fn max_local_size(&self, sfid: &Sfid) -> u64 {
        let announced = sfid.file_size.saturating_mul(1024);
        let announced = if sfid.format == oftp2::value::RecordFormat::Variable
            && !transfer_layout_enveloped(sfid)
        {
            announced.saturating_mul(3)
        } else {
            announced
        };
        announced
            .saturating_add(announced / 100 * self.size_tolerance_percent)
            .saturating_add(self.size_slack)
    }
}

/// How often (in octets written) a transfer checks the disk reserve and
/// the partner's quota.
const SPACE_CHECK_BYTES: u64 = 4 << 20;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskStorage;

impl Storage for DiskStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(file))
    }
    fn available(&self, dir: &Path) -> io::Result<u64> {
        let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
        #[allow(clippy::useless_conversion)] // widths differ between targets
        Ok(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A receipt due to a partner, with its row in `os4x_receipts_due`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReceipt {
    pub id: i64,
    pub receipt: Receipt,
}

/// The receipts of one session: due ones are handed to the session's
/// outbox; sent ones are marked in the database when the partner's RTR
/// arrived.
#[derive(Debug, Default)]
pub struct ReceiptQueue {
    due: VecDeque<DueReceipt>,
    in_flight: VecDeque<DueReceipt>,
}

impl ReceiptQueue {
    pub fn push(&mut self, r: DueReceipt) {
        if !self.due.iter().chain(&self.in_flight).any(|d| d.id == r.id) {
            self.due.push_back(r);
        }
    }

    /// The next receipt to send.
    pub fn next_due(&mut self) -> Option<Receipt> {
        let r = self.due.pop_front()?;
        let receipt = r.receipt.clone();
        self.in_flight.push_back(r);
        Some(receipt)
    }

    /// The partner acknowledged `receipt`: its row id.
    pub fn acknowledged(&mut self, receipt: &Receipt) -> Option<i64> {
        let pos = self.in_flight.iter().position(|d| &d.receipt == receipt)?;
        self.in_flight.remove(pos).map(|d| d.id)
    }
}

/// What one session knows about its partner, filled in when the SSID was
/// accepted.
#[derive(Debug, Default)]
pub struct SessionContext {
    /// The authenticated partner.
    pub partner: OnceLock<Partner>,
    /// Peer address, for logs and the database.
    pub peer: String,
    /// Session id for logs.
    pub session: u64,
    pub receipts: Mutex<ReceiptQueue>,
}

/// The daemon-wide inbox.
pub struct InboxStore {
    db: Db,
    storage: Arc<dyn Storage>,
    root: PathBuf,
    local_id: OdetteId,
    limits: InboxLimits,
    /// Wakes the runner of post-receive commands (queued in the database).
    actions: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    /// Partial files being written right now: a second session offering
    /// the same virtual file must not write into the same partial file.
    receiving: Mutex<std::collections::HashSet<PathBuf>>,
    /// Keys and partner certificates for the file services and signed
    /// receipts ([`InboxStore::set_security`]); without them secured
    /// files are refused.
    security: OnceLock<Arc<Security>>,
    /// This node's `server_id` and the lease on files being received
    /// ([`InboxStore::set_cluster`]).
    cluster: OnceLock<(u32, Duration)>,
}

impl std::fmt::Debug for InboxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxStore")
            .field("root", &self.root)
            .field("local_id", &self.local_id)
            .finish_non_exhaustive()
    }
}

impl InboxStore {
    /// An inbox under `root` for files addressed to `local_id`. Called
    /// inside a tokio runtime, it starts the runner of post-receive
    /// commands (each limited to `limits.action_timeout`), which first
    /// runs the commands still queued from before a restart; outside one,
    /// commands stay queued in the database for the next daemon that runs
    /// them.
    pub fn new(
        db: Db,
        storage: Arc<dyn Storage>,
        root: PathBuf,
        local_id: OdetteId,
        limits: InboxLimits,
    ) -> Arc<InboxStore> {
        let actions = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            rt.spawn(crate::actions::run(
                db.clone(),
                PartnerStore::new(db.clone()),
                rx,
                limits.action_timeout,
            ));
            tx
        });
        Arc::new(InboxStore {
            db,
            storage,
            root,
            local_id,
            limits,
            actions,
            receiving: Mutex::default(),
            security: OnceLock::new(),
            cluster: OnceLock::new(),
        })
    }

    /// The node this inbox runs on (`server_id`) and how long its claim
    /// on a file being received holds without renewal (`[cluster]
    /// lease`); set once, at daemon start. Default: 0 and 60 s.
    pub fn set_cluster(&self, server_id: u32, lease: Duration) {
        let _ = self.cluster.set((server_id, lease));
    }

    fn cluster(&self) -> (u32, Duration) {
        self.cluster
            .get()
            .copied()
            .unwrap_or((0, crate::queue::DEFAULT_LEASE))
    }

    /// The lease on a file being received, in seconds.
    fn lease_secs(&self) -> i64 {
        crate::lease::secs(self.cluster().1)
    }

    /// Extends the lease of `holder` on received-file row `row`.
    fn renew_receiver(&self, row: i64, holder: &str) -> os4x_store::sql::Result<bool> {
        let secs = self.lease_secs();
        self.db
            .lock()
            .execute(
                "UPDATE os4x_received_files SET receiver_until = unixepoch() + ?3 \
                 WHERE id = ?1 AND receiver = ?2 AND state = 'partial'",
                params![row, holder, secs],
            )
            .map(|n| n > 0)
    }

    /// Gives up `holder`'s lease on row `row` (the session is done with
    /// the file, whatever became of it).
    fn release_receiver(&self, row: i64, holder: &str) {
        if let Err(e) = self.db.lock().execute(
            "UPDATE os4x_received_files SET receiver = NULL, receiver_until = NULL \
             WHERE id = ?1 AND receiver = ?2",
            params![row, holder],
        ) {
            tracing::warn!(received = row, error = %e, "cannot release the claim on the file; other nodes take it over once its lease ran out");
        }
    }

    /// Undo file services and sign receipts with `security` (set once,
    /// at daemon start).
    pub fn set_security(&self, security: Arc<Security>) {
        let _ = self.security.set(security);
    }

    /// The receipt a due row stands for, signed when the partner asked
    /// for a signed receipt (SFIDSIGN) and we have a signing key.
    fn build_receipt(&self, row: &DueRow) -> Result<Receipt, oftp2::value::ValueError> {
        let mut receipt = match row.nerp_reason {
            // The identity fields as the partner sent them (lowercase
            // letters included): the receipt must name the file exactly.
            None => Receipt::Eerp(Eerp {
                dataset_name: DatasetName::as_received(&row.dataset_name)?,
                timestamp: row.file_timestamp.parse()?,
                user_data: UserData::as_received(&row.user_data)?,
                destination: OdetteId::as_received(&row.destination)?,
                originator: OdetteId::as_received(&row.originator)?,
                hash: Bytes::new(),
                signature: Bytes::new(),
            }),
            Some(reason) => Receipt::Nerp(Nerp {
                dataset_name: DatasetName::as_received(&row.dataset_name)?,
                timestamp: row.file_timestamp.parse()?,
                destination: OdetteId::as_received(&row.destination)?,
                originator: OdetteId::as_received(&row.originator)?,
                creator: self.local_id,
                reason: NerpReason::from_code(reason),
                text: row.nerp_text.clone(),
                hash: Bytes::new(),
                signature: Bytes::new(),
            }),
        };
        if row.signed {
            let suite = CipherSuite::from_code(row.cipher_suite);
            match (self.security.get().and_then(|s| s.signing()), &row.file_hash) {
                (Some(key), Some(hash)) => {
                    if let Err(e) = oftp2::security::receipt::sign_receipt(&mut receipt, hash, key, suite) {
                        tracing::warn!(receipt = row.id, error = %e, "cannot sign the receipt; sending it unsigned");
                    }
                }
                _ => tracing::warn!(receipt = row.id, "partner asked for a signed receipt but [security] has no signing key (or the file hash is unknown); sending it unsigned"),
            }
        }
        Ok(receipt)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The inbox directory of a partner.
    pub fn partner_dir(&self, partner: &OdetteId) -> PathBuf {
        self.root.join(safe_file_name(partner.as_bytes()))
    }

    /// Loads the receipts still due to `partner` from earlier sessions.
    pub fn load_due(&self, partner: &OdetteId, queue: &mut ReceiptQueue) {
        let conn = self.db.lock();
        let rows = conn
            .prepare(&format!(
                "SELECT {DUE_COLUMNS} FROM os4x_receipts_due WHERE partner = ?1 \
                     AND state = 'due' AND kind IN ('EERP', 'NERP') ORDER BY id"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([partner.as_str()], DueRow::from_row)?
                    .collect::<Result<Vec<_>, _>>()
            });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(partner = %partner, error = %e, "cannot read receipts due; they stay queued");
                return;
            }
        };
        drop(conn);
        for row in rows {
            match self.build_receipt(&row) {
                Ok(receipt) => queue.push(DueReceipt {
                    id: row.id,
                    receipt,
                }),
                Err(e) => {
                    tracing::warn!(partner = %partner, receipt = row.id, error = %e, "queued receipt cannot be rebuilt; left for the send side")
                }
            }
        }
    }

    /// The partner acknowledged `receipt` (RTR) in the session of `ctx`:
    /// if it was one of the EERPs due from us, it is no longer due.
    pub fn receipt_sent(&self, ctx: &SessionContext, receipt: &Receipt) {
        let id = ctx
            .receipts
            .lock()
            .ok()
            .and_then(|mut q| q.acknowledged(receipt));
        let Some(id) = id else { return };
        let conn = self.db.lock();
        if let Err(e) = conn.execute(
            "UPDATE os4x_receipts_due SET state = 'sent', sent_at = ?2 WHERE id = ?1",
            params![id, unix_now()],
        ) {
            tracing::error!(receipt = id, error = %e, "cannot mark EERP as sent; it will be sent again");
        }
    }

    /// Removes partial files (and their rows) that were not written to
    /// for `[rd] partial_expiry`: transfers the partner never restarted.
    /// A file being received by this daemon is kept whatever its age.
    /// Returns how many were removed.
    pub fn expire_partials(&self, now: std::time::SystemTime) -> usize {
        let Some(max_age) = self.limits.partial_expiry else {
            return 0;
        };
        let rows: Vec<(i64, String, String, i64)> = {
            let conn = self.db.lock();
            let rows = conn
                .prepare(
                    "SELECT id, partner, partial_path, started_at FROM os4x_received_files \
                     WHERE state = 'partial' AND (receiver_until IS NULL \
                     OR receiver_until < unixepoch())",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect::<Result<Vec<_>, _>>()
                });
            match rows {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list partial files for expiry");
                    return 0;
                }
            }
        };
        let mut removed = 0;
        for (id, partner, path, started_at) in rows {
            let path = PathBuf::from(path);
            if self
                .receiving
                .lock()
                .map(|set| set.contains(&path))
                .unwrap_or(true)
            {
                continue;
            }
            let last = match std::fs::metadata(&path).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(_) => {
                    std::time::UNIX_EPOCH
                        + Duration::from_secs(u64::try_from(started_at).unwrap_or(0))
                }
            };
            if now.duration_since(last).unwrap_or_default() < max_age {
                continue;
            }
            match self.storage.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(partner, path = %path.display(), error = %e, "cannot remove an expired partial file");
                    continue;
                }
            }
            match self.forget_partial(id) {
                Ok(_) => {
                    removed += 1;
                    tracing::info!(partner, received = id, path = %path.display(), max_age = ?max_age, "partial file expired ([rd] partial_expiry_days); the partner must send it again from the start");
                }
                Err(e) => {
                    tracing::warn!(received = id, error = %e, "cannot remove the row of an expired partial file")
                }
            }
        }
        removed
    }

    /// Removes the row of a partial file (a received one is never
    /// touched): its data is gone or was never kept.
    fn forget_partial(&self, row: i64) -> os4x_store::sql::Result<usize> {
        self.db.lock().execute(
            "DELETE FROM os4x_received_files WHERE id = ?1 AND state = 'partial'",
            [row],
        )
    }

    /// A per-session [`Inbox`] handle.
    pub fn session(self: &Arc<Self>, ctx: Arc<SessionContext>) -> SessionInbox {
        SessionInbox {
            store: self.clone(),
            ctx,
        }
    }

    fn queue_receipt_if_none(
        &self,
        row: i64,
        partner: &OdetteId,
        sfid: &Sfid,
    ) -> Option<DueReceipt> {
        let conn = self.db.lock();
        let existing: Option<i64> = conn
            .query_row(
                "SELECT id FROM os4x_receipts_due WHERE received_id = ?1 AND state = 'due'",
                [row],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        let id = match existing {
            Some(id) => id,
            None => insert_receipt(&conn, row, partner, sfid, &ReceiptFields::default()).ok()?,
        };
        drop(conn);
        self.due_receipt(id)
    }

    /// A due row as the receipt to send.
    fn due_receipt(&self, id: i64) -> Option<DueReceipt> {
        let row = {
            let conn = self.db.lock();
            conn.query_row(
                &format!("SELECT {DUE_COLUMNS} FROM os4x_receipts_due WHERE id = ?1"),
                [id],
                DueRow::from_row,
            )
            .ok()?
        };
        let receipt = self.build_receipt(&row).ok()?;
        Some(DueReceipt { id, receipt })
    }
}

/// Runs CPU-bound work (decrypting and verifying a large file) without
/// stalling the other sessions of the runtime: on a multi-thread runtime
/// the worker first hands its queued tasks to another thread.
fn cpu_heavy<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The columns [`DueRow::from_row`] reads, in its order.
const DUE_COLUMNS: &str = "id, dataset_name, file_timestamp, user_data, destination, originator, \
     file_hash, cipher_suite, signed, nerp_reason, nerp_text";

/// A row of `os4x_receipts_due` as read back.
#[derive(Debug)]
struct DueRow {
    id: i64,
    dataset_name: String,
    file_timestamp: String,
    user_data: String,
    destination: String,
    originator: String,
    file_hash: Option<Vec<u8>>,
    cipher_suite: u8,
    signed: bool,
    /// `Some`: a NERP with this reason.
    nerp_reason: Option<u8>,
    nerp_text: String,
}

impl DueRow {
    /// Reads a row selected with [`DUE_COLUMNS`].
    fn from_row(r: &os4x_store::Row) -> os4x_store::sql::Result<DueRow> {
        Ok(DueRow {
            id: r.get(0)?,
            dataset_name: r.get(1)?,
            file_timestamp: r.get(2)?,
            user_data: r.get(3)?,
            destination: r.get(4)?,
            originator: r.get(5)?,
            file_hash: r.get(6)?,
            cipher_suite: r.get(7)?,
            signed: r.get(8)?,
            nerp_reason: r.get(9)?,
            nerp_text: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
        })
    }
}

/// What a due receipt carries beyond the file's identity.
#[derive(Debug, Default)]
struct ReceiptFields {
    /// EERPHSH / NERPHSH (hash of the transmitted file).
    file_hash: Option<Vec<u8>>,
    /// `Some`: a NERP with this reason and text.
    nerp: Option<(NerpReason, String)>,
}

fn insert_receipt(
    conn: &os4x_store::Connection,
    row: i64,
    partner: &OdetteId,
    sfid: &Sfid,
    fields: &ReceiptFields,
) -> os4x_store::sql::Result<i64> {
    let (kind, reason, text) = match &fields.nerp {
        None => ("EERP", None, None),
        Some((reason, text)) => ("NERP", Some(reason.code()), Some(text.as_str())),
    };
    conn.insert_returning_id(
        "INSERT INTO os4x_receipts_due (received_id, partner, kind, dataset_name, file_timestamp, \
         user_data, destination, originator, created_at, file_hash, cipher_suite, signed, \
         nerp_reason, nerp_text) \
         VALUES (?1, ?2, ?9, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?11, ?12, ?13, ?14) RETURNING id",
        params![
            row,
            partner.as_str(),
            sfid.dataset_name.as_str(),
            sfid.timestamp.to_string(),
            sfid.user_data.as_str(),
            sfid.originator.as_str(),
            sfid.destination.as_str(),
            unix_now(),
            kind,
            fields.file_hash,
            sfid.cipher_suite.code(),
            sfid.signed_eerp,
            reason,
            text
        ],
    )
}

/// The EERP for a received file: back to its originator, from its final
/// destination (5.3.13).
pub fn eerp_for(sfid: &Sfid) -> Eerp {
    Eerp {
        dataset_name: sfid.dataset_name,
        timestamp: sfid.timestamp,
        user_data: sfid.user_data,
        destination: sfid.originator,
        originator: sfid.destination,
        hash: Bytes::new(),
        signature: Bytes::new(),
    }
}

/// Whether file services were applied (signed, encrypted, compressed or
/// enveloped).
fn transfer_layout_enveloped(sfid: &Sfid) -> bool {
    sfid.security != SecurityLevel::None
        || sfid.compression != FileCompression::None
        || sfid.envelope != FileEnvelope::None
}

/// The layout of the Virtual File as transmitted (5.3.3 SFIDFMT): secured,
/// compressed or enveloped files travel as U.
fn transfer_layout(sfid: &Sfid) -> Result<Layout, record::RecordError> {
    if transfer_layout_enveloped(sfid) {
        Ok(Layout::unstructured())
    } else {
        Layout::new(sfid.format, sfid.max_record_size)
    }
}

/// One session's view of the inbox.
pub struct SessionInbox {
    store: Arc<InboxStore>,
    ctx: Arc<SessionContext>,
}

impl std::fmt::Debug for SessionInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInbox")
            .field("session", &self.ctx.session)
            .finish_non_exhaustive()
    }
}

type SfnaResult<T> = Result<T, Refusal<StartFileRefusal>>;

fn access_failure(what: &str, e: impl std::fmt::Display) -> Refusal<StartFileRefusal> {
    Refusal::new(StartFileRefusal::AccessMethodFailure)
        .retry_later(true)
        .with_text(format!("{what}: {e}"))
}

impl SessionInbox {
    /// SFID security fields against what we support and hold keys for:
    /// an encrypted file needs our decryption key, a signed one the
    /// partner's certificate (checked, not revoked), so that a file is
    /// refused at SFID rather than transferred in vain.
    fn check_security(&self, partner: &Partner, sfid: &Sfid) -> SfnaResult<()> {
        file_services::check_offer(sfid, &partner.security.receive_policy())?;
        let encrypted = matches!(
            sfid.security,
            SecurityLevel::Encrypted | SecurityLevel::EncryptedAndSigned
        );
        let signed = matches!(
            sfid.security,
            SecurityLevel::Signed | SecurityLevel::EncryptedAndSigned
        );
        if !(encrypted || signed) {
            return Ok(());
        }
        let Some(security) = self.store.security.get() else {
            return Err(Refusal::new(if encrypted {
                StartFileRefusal::EncryptedFileNotAllowed
            } else {
                StartFileRefusal::SignedFileNotAllowed
            })
            .with_text("this station has no [security] keys for secured files"));
        };
        if encrypted && security.decryption().is_none() {
            return Err(Refusal::new(StartFileRefusal::EncryptedFileNotAllowed)
                .with_text("this station has no decryption key configured"));
        }
        if signed {
            if let Err(e) = security.partner_certificate(partner) {
                return Err(Refusal::new(StartFileRefusal::SignedFileNotAllowed)
                    .with_text(format!("your signature cannot be verified here: {e}")));
            }
        }
        Ok(())
    }
}

impl Inbox for SessionInbox {
    fn accept(&mut self, offer: &FileOffer<'_>) -> SfnaResult<Accepted> {
        let store = &self.store;
        let sfid = offer.sfid;
        let session = self.ctx.session;
        let Some(partner) = self.ctx.partner.get() else {
            return Err(
                Refusal::new(StartFileRefusal::Unspecified).with_text("session partner unknown")
            );
        };
        let file = format!("{} {}", sfid.dataset_name, sfid.timestamp);
        if !partner.directions.may_receive() {
            tracing::warn!(partner = %partner.id, session, file, "refusing file: partner may not send to us");
            return Err(Refusal::new(StartFileRefusal::FileDirectionRefused)
                .with_text("this station does not accept files from you"));
        }
        if !sfid.destination.eq_ignore_case(&store.local_id) {
            tracing::warn!(partner = %partner.id, session, file, destination = %sfid.destination, "refusing file for another destination");
            return Err(
                Refusal::new(StartFileRefusal::InvalidDestination).with_text(format!(
                    "this station is {}, not {}",
                    store.local_id, sfid.destination
                )),
            );
        }
        if !partner.may_originate(&sfid.originator) {
            tracing::warn!(partner = %partner.id, session, file, originator = %sfid.originator, "refusing file: originator not allowed for this partner (`os4x partner set --originators`)");
            return Err(
                Refusal::new(StartFileRefusal::InvalidOrigin).with_text(format!(
                    "you ({}) may not send files originated by {}",
                    partner.id, sfid.originator
                )),
            );
        }
        if !sfid.dataset_name.is_strict() {
            // Accepted (unambiguous); the EERP echoes the name as sent.
            tracing::info!(partner = %partner.id, session, file, "dataset name outside RFC 5024 Appendix B (accepted; receipts repeat it as sent)");
        }
        self.check_security(partner, sfid).inspect_err(|r| {
            tracing::warn!(partner = %partner.id, session, file, reason = %r.reason, text = %r.text, "refusing file: file services");
        })?;
        let layout = transfer_layout(sfid)
            .map_err(|e| Refusal::new(e.sfna_reason()).with_text(e.to_string()))?;
        let dir = store.partner_dir(&partner.id);
        let partial_dir = dir.join(PARTIAL_DIR);
        let partial_path = partial_dir.join(format!(
            "{}.{}.{}.part",
            safe_file_name(sfid.dataset_name.as_bytes()),
            sfid.timestamp,
            safe_file_name(sfid.originator.as_bytes())
        ));

        // The row identifies the virtual file (1.5.2) from this partner.
        let existing = {
            let conn = store.db.lock();
            conn.query_row(
                "SELECT id, state, restart_offset FROM os4x_received_files \
                 WHERE partner = ?1 AND dataset_name = ?2 AND file_timestamp = ?3 \
                 AND originator = ?4 AND destination = ?5",
                params![
                    partner.id.as_str(),
                    sfid.dataset_name.as_str(),
                    sfid.timestamp.to_string(),
                    sfid.originator.as_str(),
                    sfid.destination.as_str()
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| access_failure("database", e))?
        };
        if let Some((row, state, _)) = &existing {
            if state == "received" {
                // The partner did not see our EFPA (or lost track): the
                // file is safe here; make sure it gets its EERP.
                if let Some(due) = store.queue_receipt_if_none(*row, &partner.id, sfid) {
                    if let Ok(mut q) = self.ctx.receipts.lock() {
                        q.push(due);
                    }
                }
                tracing::info!(partner = %partner.id, session, file, "refusing duplicate file; EERP queued again");
                return Err(Refusal::new(StartFileRefusal::DuplicateFile)
                    .with_text("this virtual file was already received"));
            }
        }

        let claimed = store
            .receiving
            .lock()
            .map(|mut set| set.insert(partial_path.clone()))
            .unwrap_or(false);
        if !claimed {
            tracing::warn!(partner = %partner.id, session, file, "refusing file: it is being received in another session");
            return Err(Refusal::new(StartFileRefusal::DuplicateFile)
                .retry_later(true)
                .with_text("this file is being received in another session; retry later"));
        }
        // Released when the writer is done, or here if it never exists;
        // a row or partial file created here for a refused SFID goes too.
        let mut claim = Claim {
            store: Some(self.store.clone()),
            partial: partial_path.clone(),
            new_row: None,
            new_file: false,
            held_row: None,
        };
        // Across nodes: the session holds a lease on the row while it
        // writes the (shared) partial file.
        let (server_id, lease_len) = store.cluster();
        let holder = format!("{server_id}:{}:{session}", std::process::id());
        let lease_secs = store.lease_secs();
        let asked = Instant::now();
        let elsewhere = || {
            tracing::warn!(partner = %partner.id, session, file, "refusing file: another node is receiving it");
            Refusal::new(StartFileRefusal::DuplicateFile)
                .retry_later(true)
                .with_text("this file is being received in another session; retry later")
        };
        if let Some((row, _, _)) = &existing {
            let n = store
                .db
                .lock()
                .execute(
                    "UPDATE os4x_received_files SET receiver = ?2, \
                     receiver_until = unixepoch() + ?3 WHERE id = ?1 AND state = 'partial' \
                     AND (receiver IS NULL OR receiver_until IS NULL \
                     OR receiver_until < unixepoch())",
                    params![row, holder, lease_secs],
                )
                .map_err(|e| access_failure("database", e))?;
            if n == 0 {
                return Err(elsewhere());
            }
            claim.held_row = Some((*row, holder.clone()));
        }

        // Space first, before anything is created: the disk reserve and
        // the partner's quota, for the whole announced size less what a
        // restart keeps.
        let announced = sfid.file_size.saturating_mul(1024);
        let on_disk = store
            .storage
            .len(&partial_path)
            .map_err(|e| access_failure("cannot read the partial file", e))?;
        let kept = if offer.restart_allowed && sfid.restart_position > 0 {
            on_disk.unwrap_or(0)
        } else {
            0
        };
        let needed = announced.saturating_sub(kept);
        let reserve = store.limits.disk_reserve;
        store
            .storage
            .create_dir_all(&partial_dir)
            .map_err(|e| access_failure("cannot create the inbox directory", e))?;
        match store.storage.available(&partial_dir) {
            Ok(free) if free < needed.saturating_add(reserve) => {
                tracing::warn!(partner = %partner.id, session, file, free, needed, reserve, "refusing file: not enough disk space (keeping [rd] disk_reserve free)");
                return Err(Refusal::new(StartFileRefusal::FileSizeTooBig)
                    .retry_later(true)
                    .with_text("not enough disk space at the receiver now; retry later"));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot determine free disk space"),
        }
        let quota = match partner.inbox_quota {
            None => None,
            Some(limit) => {
                let used = store
                    .storage
                    .usage(&dir)
                    .map_err(|e| access_failure("cannot measure the inbox", e))?
                    .saturating_sub(on_disk.unwrap_or(0));
                if used.saturating_add(needed.saturating_add(kept)) > limit {
                    tracing::warn!(partner = %partner.id, session, file, used, announced, quota = limit, "refusing file: partner's inbox quota reached (`os4x partner set --inbox-quota`)");
                    return Err(Refusal::new(StartFileRefusal::FileSizeTooBig)
                        .retry_later(true)
                        .with_text(format!(
                            "your inbox here holds {used} of {limit} octets; retry when files were taken away"
                        )));
                }
                Some(QuotaState { limit, used })
            }
        };

        let (row, persisted_offset) = match existing {
            Some((row, _, offset)) => (row, u64::try_from(offset).unwrap_or(0)),
            None => {
                let conn = store.db.lock();
                let row = conn
                    .insert_returning_id(
                        "INSERT INTO os4x_received_files (partner, dataset_name, file_timestamp, \
                     originator, destination, user_data, format, max_record_size, file_size_1k, \
                     description, state, partial_path, peer, started_at, receiver, \
                     receiver_until) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'partial', ?11, ?12, ?13, \
                     ?14, unixepoch() + ?15) RETURNING id",
                        params![
                            partner.id.as_str(),
                            sfid.dataset_name.as_str(),
                            sfid.timestamp.to_string(),
                            sfid.originator.as_str(),
                            sfid.destination.as_str(),
                            sfid.user_data.as_str(),
                            sfid.format.to_string(),
                            sfid.max_record_size,
                            i64::try_from(sfid.file_size).unwrap_or(i64::MAX),
                            sfid.description,
                            partial_path.to_string_lossy(),
                            self.ctx.peer,
                            unix_now(),
                            holder,
                            lease_secs
                        ],
                    )
                    .map_err(|e| {
                        if e.is_constraint() {
                            // Another node created the row since we looked.
                            elsewhere()
                        } else {
                            access_failure("database", e)
                        }
                    })?;
                claim.new_row = Some(row);
                (row, 0)
            }
        };
        claim.new_file = on_disk.is_none();
        let mut data = store
            .storage
            .open(&partial_path)
            .map_err(|e| access_failure("cannot open the partial file", e))?;
        let on_disk = data
            .seek(SeekFrom::End(0))
            .map_err(|e| access_failure("cannot read the partial file", e))?;
        let restart = if offer.restart_allowed && sfid.restart_position > 0 && on_disk > 0 {
            // Only what was durably checkpointed counts; beyond it the
            // content may not have survived a crash.
            let durable = on_disk.min(persisted_offset);
            data.set_len(durable)
                .and_then(|()| data.seek(SeekFrom::Start(0)).map(drop))
                .map_err(|e| access_failure("cannot truncate the partial file", e))?;
            match record::resume_point(layout, &mut data, sfid.restart_position) {
                Ok(at) => at,
                Err(e) => {
                    tracing::warn!(partner = %partner.id, session, file, error = %e, "partial file unusable; restarting from the beginning");
                    RestartPoint::START
                }
            }
        } else {
            RestartPoint::START
        };
        data.set_len(restart.local_offset)
            .and_then(|()| data.seek(SeekFrom::Start(restart.local_offset)).map(drop))
            .map_err(|e| access_failure("cannot prepare the partial file", e))?;

        tracing::info!(
            partner = %partner.id,
            session,
            file,
            peer = %self.ctx.peer,
            restart = restart.position,
            bytes = restart.local_offset,
            "receiving file"
        );
        claim.store = None; // handed to the writer
        let lease = {
            let store = self.store.clone();
            let holder = holder.clone();
            Lease::new(
                format!("received file {row}"),
                lease_len,
                asked,
                Box::new(move || {
                    store
                        .renew_receiver(row, &holder)
                        .map_err(|e| e.to_string())
                }),
            )
        };
        let writer = ReceivingFile {
            lease,
            holder,
            store: self.store.clone(),
            ctx: self.ctx.clone(),
            row,
            sfid: sfid.clone(),
            dir,
            partial_path,
            out: Some(BufWriter::with_capacity(256 * 1024, data)),
            written: restart.local_offset,
            next_checkpoint: restart.local_offset + CHECKPOINT_BYTES,
            max_size: store.limits.max_local_size(sfid),
            quota,
            next_space_check: restart.local_offset + SPACE_CHECK_BYTES,
            discard: false,
        };
        Ok(Accepted {
            writer: Box::new(writer),
            restart,
        })
    }
}

/// The partner's quota as measured when its file was accepted.
#[derive(Debug, Clone, Copy)]
struct QuotaState {
    limit: u64,
    /// Octets in the partner's inbox apart from this file.
    used: u64,
}

/// One file being received.
struct ReceivingFile {
    /// This session's lease on the row (other nodes keep off).
    lease: Lease,
    holder: String,
    store: Arc<InboxStore>,
    ctx: Arc<SessionContext>,
    row: i64,
    sfid: Sfid,
    dir: PathBuf,
    partial_path: PathBuf,
    out: Option<BufWriter<Box<dyn StoredFile>>>,
    /// Local octets handed to us so far (restarted part included).
    written: u64,
    next_checkpoint: u64,
    /// Announced size plus tolerance: past it the session ends.
    max_size: u64,
    quota: Option<QuotaState>,
    next_space_check: u64,
    /// The data must not be kept for a restart (far larger than
    /// announced).
    discard: bool,
}

impl ReceivingFile {
    fn out(&mut self) -> io::Result<&mut BufWriter<Box<dyn StoredFile>>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("file already closed"))
    }

    /// Flush and fsync, then record the durable length.
    fn checkpoint(&mut self) -> io::Result<u64> {
        let out = self.out()?;
        out.flush()?;
        let file = out.get_mut();
        file.sync()?;
        let len = file.stream_position()?;
        self.persist_offset(len);
        Ok(len)
    }

    fn persist_offset(&self, len: u64) {
        let conn = self.store.db.lock();
        if let Err(e) = conn.execute(
            "UPDATE os4x_received_files SET restart_offset = ?2 WHERE id = ?1 AND receiver = ?3",
            params![
                self.row,
                i64::try_from(len).unwrap_or(i64::MAX),
                self.holder
            ],
        ) {
            tracing::warn!(error = %e, "cannot record the restart point; a restart will begin earlier");
        }
    }

    fn file_label(&self) -> String {
        format!("{} {}", self.sfid.dataset_name, self.sfid.timestamp)
    }

    /// Links `from` to a free final name.
    fn publish(&self, from: &Path) -> io::Result<PathBuf> {
        let base = safe_file_name(self.sfid.dataset_name.as_bytes());
        let ts = self.sfid.timestamp.to_string();
        let candidates = [base.clone(), format!("{base}.{ts}")]
            .into_iter()
            .chain((1..=1000).map(|n| format!("{base}.{ts}.{n}")));
        for name in candidates {
            let target = self.dir.join(name);
            match self.store.storage.link(from, &target) {
                Ok(()) => return Ok(target),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free file name for this dataset"))
    }

    /// Whether the file travels with file services (or with a signed
    /// EERP request, which needs the hash of what was transmitted).
    fn secured(&self) -> bool {
        transfer_layout_enveloped(&self.sfid) || self.sfid.signed_eerp
    }

    /// The transmitted file, read back from the partial file.
    fn read_transmitted(&self) -> io::Result<Vec<u8>> {
        let mut f = self.store.storage.open(&self.partial_path)?;
        f.seek(SeekFrom::Start(0))?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    }

    /// Undoes the file services: `Ok(Ok(plain file, summary))`, or
    /// `Ok(Err(reason, text))` when the file is rejected (NERP).
    fn unwrap_services(
        &self,
        transmitted: &[u8],
    ) -> io::Result<Result<(PathBuf, String), (NerpReason, String)>> {
        let Some(security) = self.store.security.get() else {
            return Ok(Err((
                NerpReason::FileProcessingFailed,
                "no [security] keys at the receiver".into(),
            )));
        };
        let partner = self.ctx.partner.get();
        let signers = match partner.map(|p| security.partner_certificate(p)) {
            Some(Ok(c)) => vec![c],
            Some(Err(e)) => {
                tracing::warn!(error = %e, "partner certificate unusable for the file signature");
                Vec::new()
            }
            None => Vec::new(),
        };
        let plain = match file_services::unprotect(
            transmitted,
            &self.sfid,
            security.decryption(),
            &signers,
        ) {
            Ok(p) => p,
            Err(e) => return Ok(Err((e.nerp_reason(), e.to_string()))),
        };
        let mut summary = Vec::new();
        if let Some(c) = &plain.cipher {
            summary.push(format!("decrypted ({c:?})"));
        }
        if self.sfid.compression != FileCompression::None {
            summary.push("decompressed".to_owned());
        }
        if let Some(signer) = &plain.signer {
            summary.push(format!("signature verified ({})", signer.subject()));
        }
        let path = self.partial_path.with_extension("plain");
        let mut out = self.store.storage.open(&path)?;
        out.set_len(0)?;
        out.write_all(&plain.data)?;
        out.sync()?;
        Ok(Ok((path, summary.join(", "))))
    }

    /// The file failed its file services: nothing is delivered, the row
    /// is `rejected` and a NERP is due.
    fn reject(&mut self, counts: Counts, hash: Option<Vec<u8>>, reason: NerpReason, text: &str) {
        let partner = self
            .ctx
            .partner
            .get()
            .map(|p| p.id)
            .unwrap_or(self.sfid.originator);
        let recorded = (|| {
            let mut conn = self.store.db.lock();
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE os4x_received_files SET state = 'rejected', security_error = ?2, \
                 records = ?3, units = ?4, received_at = ?5, restart_offset = 0 WHERE id = ?1",
                params![
                    self.row,
                    text,
                    i64::try_from(counts.records).unwrap_or(i64::MAX),
                    i64::try_from(counts.units).unwrap_or(i64::MAX),
                    unix_now()
                ],
            )?;
            let fields = ReceiptFields {
                file_hash: hash,
                nerp: Some((reason, text.to_owned())),
            };
            let id = insert_receipt(&tx, self.row, &partner, &self.sfid, &fields)?;
            tx.commit()?;
            Ok::<_, os4x_store::SqlError>(id)
        })();
        let _ = self.store.storage.remove(&self.partial_path);
        match recorded {
            Ok(id) => {
                if let Some(due) = self.store.due_receipt(id) {
                    if let Ok(mut q) = self.ctx.receipts.lock() {
                        q.push(due);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the rejected file; its NERP is not queued")
            }
        }
        tracing::warn!(
            partner = %partner,
            session = self.ctx.session,
            file = %self.file_label(),
            reason = %reason,
            text,
            "file rejected by the file services: nothing delivered; NERP due"
        );
    }

    fn commit_inner(&mut self, counts: Counts) -> Result<Option<PathBuf>, Refusal<EndFileRefusal>> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            Refusal::new(EndFileRefusal::AccessMethodFailure).with_text(format!("{what}: {e}"))
        };
        self.lease
            .check()
            .map_err(|e| fail("the file is no longer this session's", &e))?;
        self.checkpoint()
            .map_err(|e| fail("cannot store the file durably", &e))?;
        let mut fields = ReceiptFields::default();
        let mut source = self.partial_path.clone();
        let mut security_summary: Option<String> = None;
        if self.secured() && !transfer_layout_enveloped(&self.sfid) {
            // Only the hash for the signed EERP: read as a stream, so a
            // plain file of any size costs no memory.
            let mut f = self
                .store
                .storage
                .open(&self.partial_path)
                .map_err(|e| fail("cannot read the received file back", &e))?;
            f.seek(SeekFrom::Start(0))
                .map_err(|e| fail("cannot read the received file back", &e))?;
            fields.file_hash =
                cpu_heavy(|| file_services::file_hash_reader(f, self.sfid.cipher_suite))
                    .map_err(|e| fail("cannot read the received file back", &e))?
                    .ok();
        } else if self.secured() {
            let transmitted = self
                .read_transmitted()
                .map_err(|e| fail("cannot read the received file back", &e))?;
            fields.file_hash = file_services::file_hash(&transmitted, self.sfid.cipher_suite).ok();
            {
                match cpu_heavy(|| self.unwrap_services(&transmitted))
                    .map_err(|e| fail("cannot store the unwrapped file", &e))?
                {
                    Ok((plain, summary)) => {
                        source = plain;
                        security_summary = Some(summary);
                    }
                    Err((reason, text)) => {
                        self.out = None;
                        self.reject(counts, fields.file_hash.take(), reason, &text);
                        return Ok(None);
                    }
                }
            }
        }
        let target = self
            .publish(&source)
            .map_err(|e| fail("cannot move the file into the inbox", &e))?;
        if let Err(e) = self.store.storage.sync_dir(&self.dir) {
            let _ = self.store.storage.remove(&target);
            return Err(fail("cannot store the file durably", &e));
        }
        let partner = self
            .ctx
            .partner
            .get()
            .map(|p| p.id)
            .unwrap_or(self.sfid.originator);
        let recorded = (|| {
            let mut conn = self.store.db.lock();
            let tx = conn.transaction()?;
            // The post-receive command is queued with the file: a crash
            // after this commit still runs it at the next start.
            tx.execute(
                "UPDATE os4x_received_files SET state = 'received', final_path = ?2, records = ?3, \
                 units = ?4, received_at = ?5, restart_offset = 0, security = ?6, \
                 security_error = NULL, action_state = ?7, receiver = NULL, \
                 receiver_until = NULL WHERE id = ?1 AND receiver = ?8",
                params![
                    self.row,
                    target.to_string_lossy(),
                    i64::try_from(counts.records).unwrap_or(i64::MAX),
                    i64::try_from(counts.units).unwrap_or(i64::MAX),
                    unix_now(),
                    security_summary,
                    self.has_action().then_some("pending"),
                    self.holder
                ],
            )
            .and_then(|n| match n {
                0 => Err(os4x_store::SqlError::Constraint(
                    "another node took the file over (this session's lease ran out)".into(),
                )),
                _ => Ok(()),
            })?;
            let receipt = insert_receipt(&tx, self.row, &partner, &self.sfid, &fields)?;
            tx.commit()?;
            Ok::<_, os4x_store::SqlError>(receipt)
        })();
        let receipt_id = match recorded {
            Ok(id) => id,
            Err(e) => {
                // Not recorded means not received: take the name back so
                // the partner's retry finds a clean state.
                let _ = self.store.storage.remove(&target);
                return Err(fail("cannot record the file in the database", &e));
            }
        };
        // The final name holds the data now; the partial name can go.
        if let Err(e) = self.store.storage.remove(&self.partial_path) {
            tracing::warn!(path = %self.partial_path.display(), error = %e, "cannot remove the partial file");
        }
        if source != self.partial_path {
            let _ = self.store.storage.remove(&source);
        }
        if let Some(dir) = self.partial_path.parent() {
            let _ = self.store.storage.sync_dir(dir);
        }
        if let Some(due) = self.store.due_receipt(receipt_id) {
            if let Ok(mut q) = self.ctx.receipts.lock() {
                q.push(due);
            }
        }
        Ok(Some(target))
    }
}

impl ReceivingFile {
    /// The limits a write of `len` more octets must respect.
    fn check_limits(&mut self, len: usize) -> io::Result<()> {
        let after = self.written.saturating_add(len as u64);
        if after > self.max_size {
            self.discard = true;
            tracing::warn!(
                partner = %self.partner_label(),
                session = self.ctx.session,
                file = %self.file_label(),
                announced_kib = self.sfid.file_size,
                bytes = after,
                "file larger than announced (SFIDFSIZ plus [rd] size tolerance); ending the session, nothing kept"
            );
            return Err(oftp2::session::EndSession::new(
                EndSessionReason::Unspecified,
                format!(
                    "file {} exceeds its announced size of {} KiB; send the correct SFIDFSIZ",
                    self.file_label(),
                    self.sfid.file_size
                ),
            )
            .into_io());
        }
        if let Some(q) = self.quota {
            if q.used.saturating_add(after) > q.limit {
                tracing::warn!(partner = %self.partner_label(), session = self.ctx.session, file = %self.file_label(), quota = q.limit, "partner's inbox quota reached during the transfer; ending the session, partial file kept for a restart");
                return Err(oftp2::session::EndSession::new(
                    EndSessionReason::ResourcesNotAvailable,
                    "your inbox quota here is used up; retry when files were taken away",
                )
                .into_io());
            }
        }
        if after >= self.next_space_check {
            self.next_space_check = after.saturating_add(SPACE_CHECK_BYTES);
            let reserve = self.store.limits.disk_reserve;
            let dir = self.partial_path.parent().unwrap_or(&self.dir);
            if let Ok(free) = self.store.storage.available(dir) {
                if free < reserve {
                    tracing::error!(partner = %self.partner_label(), session = self.ctx.session, file = %self.file_label(), free, reserve, "disk reserve reached during the transfer ([rd] disk_reserve); ending the session, partial file kept for a restart");
                    return Err(oftp2::session::EndSession::new(
                        EndSessionReason::ResourcesNotAvailable,
                        "the receiver's disk is full; retry later (restart keeps what arrived)",
                    )
                    .into_io());
                }
            }
        }
        Ok(())
    }

    fn partner_label(&self) -> String {
        self.ctx
            .partner
            .get()
            .map(|p| p.id.to_string())
            .unwrap_or_default()
    }

    /// Closes the file without BufWriter's flush-on-drop: what is still
    /// buffered is not written (a failed write is not retried, a file
    /// another node took over is not touched).
    fn close_unflushed(&mut self) {
        if let Some(out) = self.out.take() {
            let (_file, _unwritten) = out.into_parts();
        }
    }

    /// Removes the partial file and its row: nothing of it is kept.
    fn discard_partial(&mut self) {
        self.close_unflushed();
        if let Err(e) = self.store.storage.remove(&self.partial_path) {
            tracing::warn!(path = %self.partial_path.display(), error = %e, "cannot remove the discarded partial file");
        }
        if let Err(e) = self.store.forget_partial(self.row) {
            tracing::warn!(row = self.row, error = %e, "cannot remove the discarded file's row");
        }
    }
}

impl Write for ReceivingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lease.check()?;
        self.check_limits(buf.len())?;
        let n = self.out()?.write(buf)?;
        self.written += n as u64;
        if self.written >= self.next_checkpoint {
            self.next_checkpoint = self.written + CHECKPOINT_BYTES;
            self.checkpoint()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl IncomingFile for ReceivingFile {
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        let partner = self
            .ctx
            .partner
            .get()
            .map(|p| p.id.to_string())
            .unwrap_or_default();
        match self.commit_inner(counts) {
            // Rejected: logged, NERP due; the transfer itself succeeded.
            Ok(None) => Ok(()),
            Ok(Some(path)) => {
                tracing::info!(
                    partner = %partner,
                    session = self.ctx.session,
                    file = %self.file_label(),
                    bytes = counts.units,
                    records = counts.records,
                    path = %path.display(),
                    "file stored; EERP due"
                );
                self.out = None;
                self.start_action();
                Ok(())
            }
            Err(refusal) => {
                tracing::error!(
                    partner = %partner,
                    session = self.ctx.session,
                    file = %self.file_label(),
                    reason = %refusal.reason,
                    text = %refusal.text,
                    "file not stored; partial file kept for restart"
                );
                Err(refusal)
            }
        }
    }

    fn abort(&mut self) {
        if self.out.is_none() {
            return;
        }
        if self.lease.check().is_err() {
            // Another node may be writing the partial file now: leave it
            // (and its restart offset) alone; what is buffered here is lost.
            self.close_unflushed();
            return;
        }
        if self.discard {
            self.discard_partial();
            return;
        }
        // Keep whatever reached the disk for the restart. If flushing
        // fails (disk full), the file's length is what is durable.
        let durable = match self.checkpoint() {
            Ok(len) => Some(len),
            Err(_) => self.out.as_mut().and_then(|out| {
                let file = out.get_mut();
                file.sync().ok()?;
                file.seek(SeekFrom::End(0)).ok()
            }),
        };
        if let Some(len) = durable {
            self.persist_offset(len);
        }
        // Without BufWriter's flush-on-drop retrying a failed write.
        self.close_unflushed();
        tracing::info!(
            partner = %self.ctx.partner.get().map(|p| p.id.to_string()).unwrap_or_default(),
            session = self.ctx.session,
            file = %self.file_label(),
            bytes = durable.unwrap_or(0),
            "transfer interrupted; partial file kept for restart"
        );
    }
}

impl Drop for ReceivingFile {
    /// A session task cancelled mid-file (daemon shutdown) still leaves a
    /// checkpoint for the restart.
    fn drop(&mut self) {
        if self.out.is_some() {
            self.abort();
        }
        self.store.release_receiver(self.row, &self.holder);
        if let Ok(mut set) = self.store.receiving.lock() {
            set.remove(&self.partial_path);
        }
    }
}

/// The claim on a partial file between the checks in `accept` and the
/// writer. Dropped without being handed on (the SFID was refused), it
/// also removes the row and the empty partial file `accept` created.
struct Claim {
    store: Option<Arc<InboxStore>>,
    partial: PathBuf,
    new_row: Option<i64>,
    new_file: bool,
    /// An existing row whose lease this session took.
    held_row: Option<(i64, String)>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(store) = &self.store else { return };
        if let Some(row) = self.new_row {
            if let Err(e) = store.forget_partial(row) {
                tracing::warn!(row, error = %e, "cannot remove the row of a refused file");
            }
        }
        if let Some((row, holder)) = &self.held_row {
            store.release_receiver(*row, holder);
        }
        if self.new_file {
            if let Ok(Some(0)) = store.storage.len(&self.partial) {
                let _ = store.storage.remove(&self.partial);
            }
        }
        if let Ok(mut set) = store.receiving.lock() {
            set.remove(&self.partial);
        }
    }
}

impl ReceivingFile {
    /// Whether the partner has a post-receive command (queued with the
    /// file, in the same transaction).
    fn has_action(&self) -> bool {
        self.ctx
            .partner
            .get()
            .and_then(|p| p.post_receive.as_deref())
            .is_some_and(|c| !c.trim().is_empty())
    }

    /// Wakes the runner for the command queued with the file.
    fn start_action(&self) {
        if !self.has_action() {
            return;
        }
        match &self.store.actions {
            Some(tx) => {
                if tx.send(()).is_err() {
                    tracing::error!(
                        received = self.row,
                        "post-receive runner stopped; the command stays queued for the next start"
                    );
                }
            }
            None => tracing::warn!(
                received = self.row,
                "no runtime for post-receive commands; the command stays queued"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(safe_file_name(b"INVOICE.2024"), "INVOICE.2024");
        assert_eq!(safe_file_name(b".."), "%2E.");
        assert_eq!(
            safe_file_name(b"../../etc/passwd"),
            "%2E.%2F..%2Fetc%2Fpasswd"
        );
        assert_eq!(safe_file_name(b"A/B"), "A%2FB");
        assert_eq!(safe_file_name(b"A%2FB"), "A%252FB");
        assert_eq!(safe_file_name(b"a\0b c"), "a%00b%20c");
        assert_eq!(safe_file_name(b""), "%");
        for name in [&b"."[..], b"..", b"/", b"\0", b".hidden"] {
            let s = safe_file_name(name);
            assert!(
                !s.starts_with('.') && !s.contains('/') && !s.contains('\0'),
                "{s}"
            );
        }
    }

    #[test]
    fn receipt_queue() {
        let eerp = |n: &str| Eerp {
            dataset_name: n.parse().unwrap(),
            timestamp: "202401020304050000".parse().unwrap(),
            user_data: oftp2::value::UserData::EMPTY,
            destination: "O1".parse().unwrap(),
            originator: "O2".parse().unwrap(),
            hash: Bytes::new(),
            signature: Bytes::new(),
        };
        let mut q = ReceiptQueue::default();
        q.push(DueReceipt {
            id: 1,
            receipt: Receipt::Eerp(eerp("A")),
        });
        q.push(DueReceipt {
            id: 1,
            receipt: Receipt::Eerp(eerp("A")),
        });
        q.push(DueReceipt {
            id: 2,
            receipt: Receipt::Eerp(eerp("B")),
        });
        let a = q.next_due().unwrap();
        assert_eq!(q.acknowledged(&a), Some(1));
        assert_eq!(q.acknowledged(&a), None);
        assert!(q.next_due().is_some());
        assert!(q.next_due().is_none());
    }
}
