//! `os4x send FILE --to PARTNER`: queue a file for `os4xsqd`.

use std::path::PathBuf;

use clap::Args;
use oftp2::value::{DatasetName, OdetteId, RecordFormat, UserData};

use crate::config::Config;
use crate::db::Db;
use crate::exit;
use crate::partner::PartnerStore;
use crate::partner_cli::Failure;
use crate::queue::{NewFile, QueueError, QueueStore};

/// Queue a file for a partner
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The file to send; it is copied into the outbox at once
    pub file: PathBuf,
    /// Odette ID of the partner
    #[arg(long, value_name = "PARTNER")]
    pub to: String,
    /// Virtual file dataset name (SFIDDSN) [default: the file name]
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Record format: F (fixed), V (variable), U (unstructured), T (text)
    #[arg(long, default_value = "U", value_parser = parse_format)]
    pub format: RecordFormat,
    /// Record length for F, maximum record length for V
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub record_size: u32,
    /// Higher is sent first
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub priority: i64,
    /// SFIDUSER (up to 8 characters)
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub user_data: String,
    /// SFIDDESC, a description for the partner
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,
    /// Final destination when it differs from the partner (routed via it)
    #[arg(long, value_name = "ODETTE_ID")]
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
    Failure(exit::USAGE, msg)
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        let code = match e {
            QueueError::Db(_) => exit::IOERR,
            QueueError::Invalid { .. } => exit::USAGE,
            QueueError::Source { .. } | QueueError::NotAFile { .. } => exit::FAILURE,
            _ => exit::FAILURE,
        };
        Failure(code, e.to_string())
    }
}

/// Opens the database with the queue tables.
pub fn open_queue(config: &Config) -> Result<QueueStore, Failure> {
    let db =
        Db::open(config.database.sqlite_path()).map_err(|e| Failure(exit::IOERR, e.to_string()))?;
    QueueStore::open(db).map_err(|e| Failure(exit::IOERR, e.to_string()))
}

/// A queued file.
#[derive(Debug)]
pub struct Queued {
    pub entry: crate::queue::Entry,
    /// Whether the partner has a route (os4xsqd sends only then).
    pub has_route: bool,
}

/// Queues the file; prints the entry id.
pub fn run(config: &Config, a: SendArgs) -> Result<(), Failure> {
    let q = enqueue(config, a)?;
    println!("{}", q.entry.id);
    if !q.has_route {
        eprintln!(
            "os4x: note: partner {p} has no route yet; os4xsqd sends once one is set with `os4x route set {p} --host HOST`",
            p = q.entry.partner
        );
    }
    Ok(())
}

/// What `os4x send` does, without printing (also used by `os4xclientd`).
pub fn enqueue(config: &Config, a: SendArgs) -> Result<Queued, Failure> {
    enqueue_opened(config, a, None)
}

/// [`enqueue`], copying from `opened` (the already opened and checked
/// `a.file`) when given, so the path is not looked up a second time.
pub fn enqueue_opened(
    config: &Config,
    a: SendArgs,
    opened: Option<std::fs::File>,
) -> Result<Queued, Failure> {
    let local = config
        .local
        .require_id()
        .map_err(|m| Failure(exit::CONFIG, m))?;
    let queue = open_queue(config)?;
    let partners = PartnerStore::new(queue.db().clone());
    let partner = partners.get(&a.to)?.ok_or_else(|| {
        Failure(
            exit::FAILURE,
            QueueError::UnknownPartner(a.to.clone()).to_string(),
        )
    })?;
    if !partner.directions.may_send() {
        return Err(Failure(
            exit::FAILURE,
            format!(
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
