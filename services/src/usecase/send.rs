//! Queueing a file for a partner: `os4x send`, the `send` job of
//! `os4xclientd`, and uploads in `os4x-web`.

use std::path::PathBuf;

use oftp2::value::{DatasetName, OdetteId, RecordFormat, UserData};

use super::Error as Failure;
use crate::config::Config;
use crate::db::Db;
use crate::partner::PartnerStore;
use crate::queue::{NewFile, QueueError, QueueStore};

/// What to queue (the fields of `os4x send`).
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// The file to send; it is copied into the outbox at once.
    pub file: PathBuf,
    /// Odette ID of the partner.
    pub to: String,
    /// SFIDDSN; the file name when `None`.
    pub dataset: Option<String>,
    pub format: RecordFormat,
    /// Record length for F, maximum record length for V.
    pub record_size: u32,
    /// Higher is sent first.
    pub priority: i64,
    /// SFIDUSER (up to 8 characters).
    pub user_data: String,
    /// SFIDDESC.
    pub description: String,
    /// Final destination when it differs from the partner.
    pub destination: Option<String>,
}

/// Parses a record format letter (F, V, U, T; any case).
pub fn parse_format(s: &str) -> Result<RecordFormat, String> {
    match s.as_bytes() {
        [b] => RecordFormat::from_byte(b.to_ascii_uppercase()),
        _ => None,
    }
    .ok_or_else(|| "use F, V, U or T".into())
}

fn usage(msg: String) -> Failure {
    Failure::Invalid(msg)
}

/// Opens the database with the queue tables.
pub fn open_queue(config: &Config) -> Result<QueueStore, Failure> {
    let db = Db::open(&config.database)?;
    Ok(QueueStore::open(db)?)
}

/// A queued file.
#[derive(Debug)]
pub struct Queued {
    pub entry: crate::queue::Entry,
    /// Whether the partner has a route (os4xsqd sends only then).
    pub has_route: bool,
}

/// What `os4x send` does, without printing (also used by `os4xclientd`).
pub fn enqueue(config: &Config, a: SendRequest) -> Result<Queued, Failure> {
    enqueue_opened(config, a, None)
}

/// [`enqueue`], copying from `opened` (the already opened and checked
/// `a.file`) when given, so the path is not looked up a second time.
pub fn enqueue_opened(
    config: &Config,
    a: SendRequest,
    opened: Option<std::fs::File>,
) -> Result<Queued, Failure> {
    let local = config.local.require_id().map_err(Failure::NotConfigured)?;
    let queue = open_queue(config)?;
    let partners = PartnerStore::new(queue.db().clone());
    let partner = partners
        .get(&a.to)?
        .ok_or_else(|| Failure::Refused(QueueError::UnknownPartner(a.to.clone()).to_string()))?;
    if !partner.directions.may_send() {
        return Err(Failure::Refused(format!(
                "partner {} is configured for receiving only; change it with `os4x partner set {} --direction both`; nothing was queued",
                partner.id, partner.id
            ),
        ));
    }
    let name = match &a.dataset {
        Some(n) => n.clone(),
        None => a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let dataset_name = DatasetName::new(&name).map_err(|e| {
        usage(format!(
            "dataset name {name:?}: {e}; give one with --dataset (up to 26 characters: A-Z 0-9 and a few punctuation marks)"
        ))
    })?;
    let destination = a
        .destination
        .as_deref()
        .map(|d| OdetteId::new(d).map_err(|e| usage(format!("--destination {d:?}: {e}"))))
        .transpose()?;
    let file = NewFile {
        partner: partner.id,
        source: a.file,
        dataset_name,
        format: a.format,
        max_record_size: a.record_size,
        priority: a.priority,
        user_data: UserData::new(&a.user_data).map_err(|e| usage(format!("--user-data: {e}")))?,
        description: a.description,
        destination,
    };
    let entry = match opened {
        Some(src) => queue.enqueue_open(&file, src, &local, &config.sq.outbox_dir)?,
        None => queue.enqueue(&file, &local, &config.sq.outbox_dir)?,
    };
    let has_route = queue.route(partner.id.as_str())?.is_some();
    Ok(Queued { entry, has_route })
}
