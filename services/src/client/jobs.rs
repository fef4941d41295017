//! What each client request does. Blocking (SQLite, argon2, file reads):
//! the server runs these on tokio's blocking pool.
//!
//! `send` queues exactly as `os4x send` does ([`crate::usecase::send::enqueue`]);
//! the file comes from an upload on the connection ([`Upload`]) or a
//! server-side path inside `[client] allowed_paths`. Partner and
//! received-file jobs need the tables of the receive daemons and answer
//! `not_available` if they are missing.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use os4x_store::sql::OptionalExtension;
use os4x_store::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use super::protocol::{ErrorBody, ErrorCode, Request};
use super::upload::{open_allowed_source, Upload};
use crate::config::Config;
use crate::queue::EntryState;
use crate::usecase::send::{self, SendRequest};
use crate::usecase::Error as Failure;
use crate::users::{LockoutPolicy, Role, UserError, UserStore};

/// Largest download chunk.
pub const MAX_CHUNK: u64 = 1 << 20;

/// The least role each job needs; `None` for unknown ops.
pub fn required_role(op: &str) -> Option<Role> {
    Some(match op {
        "status" | "partners" | "received.list" | "queue.list" => Role::Viewer,
        "received.download" | "received.ack" | "send" | "upload.start" | "upload.chunk" => {
            Role::Operator
        }
        _ => return None,
    })
}

/// Shared by all connections.
pub struct Jobs {
    config: Arc<Config>,
    db: Mutex<Connection>,
    users: Mutex<UserStore>,
    policy: LockoutPolicy,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // SQLite rolls back on panic; a poisoned lock holds nothing broken.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal(e: impl std::fmt::Display) -> ErrorBody {
    tracing::error!(error = %e, "job failed");
    ErrorBody::new(ErrorCode::Internal, format!("internal error: {e}"))
}

fn table_exists(conn: &Connection, name: &str) -> os4x_store::sql::Result<bool> {
    conn.table_exists(name)
}

impl Jobs {
    pub fn open(config: Arc<Config>) -> anyhow::Result<Jobs> {
        let path = &config.database;
        let db = os4x_store::open(path)?;
        let users = UserStore::open(path)?;
        let policy = LockoutPolicy {
            max_failures: config.client.max_failed_logins,
            lockout: config.client.lockout,
        };
        Ok(Jobs {
            config,
            db: Mutex::new(db),
            users: Mutex::new(users),
            policy,
        })
    }

    /// Checks a login; slow (argon2).
    pub fn login(&self, user: &str, password: &str) -> Result<Role, ErrorBody> {
        let now = crate::db::unix_now();
        match lock(&self.users).authenticate(user, password, self.policy, now) {
            Ok(role) => Ok(role),
            Err(UserError::BadCredentials) => Err(ErrorBody::new(
                ErrorCode::BadCredentials,
                "wrong user name or password",
            )),
            Err(UserError::Locked(secs)) => Err(ErrorBody::new(
                ErrorCode::Locked,
                format!("too many failed logins; retry in {secs} s, or ask an admin to run `os4x user unlock {user}`"),
            )),
            Err(e) => Err(internal(e)),
        }
    }

    /// Where uploads wait until they are queued.
    pub fn upload_dir(&self) -> PathBuf {
        self.config.state_dir.join("client-uploads")
    }

    /// Runs an authorized job for `user`; `upload` is the connection's
    /// upload in progress.
    pub fn run(
        &self,
        user: &str,
        req: &Request,
        upload: &mut Option<Upload>,
    ) -> Result<Value, ErrorBody> {
        match req.op.as_str() {
            "status" => crate::debug::bundle::status_document(&self.config)
                .map_err(internal)
                .and_then(|d| serde_json::to_value(d).map_err(internal)),
            "partners" => self.partners(),
            "received.list" => self.received_list(req.params()?),
            "received.download" => self.download(req.params()?),
            "received.ack" => self.ack(user, req.params()?),
            "queue.list" => self.queue_list(req.params()?),
            "upload.start" => {
                let p: UploadStartParams = req.params()?;
                // A new upload replaces (and removes) an unfinished one.
                *upload = None;
                let max = self.config.client.max_upload_bytes;
                let u = Upload::start(&self.upload_dir(), &p.name, p.size, max)?;
                tracing::info!(user, name = p.name, size = p.size, "upload started");
                *upload = Some(u);
                // Largest raw chunk whose base64 fits a request line,
                // with room for the rest of the request.
                let line = self.config.client.max_request_bytes;
                let chunk = line.saturating_sub(512) / 4 * 3;
                Ok(json!({ "offset": 0, "max_bytes": max, "chunk_bytes": chunk }))
            }
            "upload.chunk" => {
                let p: UploadChunkParams = req.params()?;
                let u = upload.as_mut().ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::BadRequest,
                        "no upload in progress; send upload.start first",
                    )
                })?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(p.data.as_bytes())
                    .map_err(|e| {
                        ErrorBody::new(ErrorCode::BadRequest, format!("data is not base64: {e}"))
                    })?;
                let offset = u.append(p.offset, &data, self.config.client.max_upload_bytes)?;
                Ok(json!({ "offset": offset }))
            }
            "send" => self.send(user, req.params()?, upload),
            other => Err(ErrorBody::new(
                ErrorCode::UnknownOp,
                format!("unknown op {other:?}"),
            )),
        }
    }

    fn queue_list(&self, p: QueueListParams) -> Result<Value, ErrorBody> {
        let states = p
            .state
            .iter()
            .map(|s| s.parse::<EntryState>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, e))?;
        let queue = send::open_queue(&self.config).map_err(failure)?;
        let entries = queue.list(&states).map_err(|e| failure(Failure::from(e)))?;
        // The document of `os4x queue --json`.
        Ok(json!({ "version": 1, "entries": entries }))
    }

    fn send(
        &self,
        user: &str,
        p: SendParams,
        upload: &mut Option<Upload>,
    ) -> Result<Value, ErrorBody> {
        let mut opened = None;
        let (file, dataset) = match (&p.path, p.upload) {
            (Some(path), false) => {
                let (real, f) = open_allowed_source(&self.config.client.allowed_paths, path)?;
                opened = Some(f);
                // The name the client used, not the link target's.
                let dataset = p
                    .dataset
                    .clone()
                    .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
                (real, dataset)
            }
            (None, true) => {
                let u = upload.as_mut().ok_or_else(|| {
                    ErrorBody::new(ErrorCode::BadRequest, "no upload in progress; send upload.start and upload.chunk first")
                })?;
                (u.finish()?.to_owned(), p.dataset.clone())
            }
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::BadRequest,
                    "give either \"path\" (a file on the server) or \"upload\": true (the file uploaded on this connection)",
                ))
            }
        };
        let format = send::parse_format(p.format.as_deref().unwrap_or("U"))
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, format!("format: {e}")))?;
        let args = SendRequest {
            file,
            to: p.partner.clone(),
            dataset,
            format,
            record_size: p.record_size.unwrap_or(0),
            priority: p.priority.unwrap_or(0),
            user_data: p.user_data.clone().unwrap_or_default(),
            description: p.description.clone().unwrap_or_default(),
            destination: p.destination.clone(),
        };
        let source = args.file.clone();
        let q = send::enqueue_opened(&self.config, args, opened).map_err(failure)?;
        if p.upload {
            // Queued (copied into the outbox): the upload is done.
            *upload = None;
        }
        tracing::info!(
            user,
            partner = q.entry.partner,
            entry = q.entry.id,
            dataset = q.entry.dataset_name,
            bytes = q.entry.size,
            source = %source.display(),
            "file queued by client"
        );
        Ok(json!({ "entry": q.entry, "has_route": q.has_route }))
    }

    fn partners(&self) -> Result<Value, ErrorBody> {
        let conn = lock(&self.db);
        if !table_exists(&conn, "os4x_partners").map_err(internal)? {
            return Err(ErrorBody::new(
                ErrorCode::NotAvailable,
                "no partner table in the database yet (add partners with `os4x partner add`)",
            ));
        }
        // Passwords are never selected.
        let mut stmt = conn
            .prepare(
                "SELECT odette_id, name, direction, tls_required, client_cert_required, enabled
                 FROM os4x_partners ORDER BY odette_id",
            )
            .map_err(internal)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(json!({
                    "odette_id": r.get::<_, String>(0)?,
                    "name": r.get::<_, String>(1)?,
                    "direction": r.get::<_, String>(2)?,
                    "tls_required": r.get::<_, bool>(3)?,
                    "client_cert_required": r.get::<_, bool>(4)?,
                    "enabled": r.get::<_, bool>(5)?,
                }))
            })
            .map_err(internal)?;
        let list: Vec<Value> = rows.collect::<Result<_, _>>().map_err(internal)?;
        Ok(json!({ "partners": list }))
    }

    fn require_received(conn: &Connection) -> Result<(), ErrorBody> {
        if table_exists(conn, "os4x_received_files").map_err(internal)? {
            Ok(())
        } else {
            Err(ErrorBody::new(
                ErrorCode::NotAvailable,
                "no received-files table in the database yet (it appears with the receive daemons)",
            ))
        }
    }

    fn received_list(&self, p: ListParams) -> Result<Value, ErrorBody> {
        let conn = lock(&self.db);
        Self::require_received(&conn)?;
        let limit = p.limit.unwrap_or(100).clamp(1, 1000);
        let mut stmt = conn
            .prepare(
                "SELECT f.id, f.partner, f.dataset_name, f.file_timestamp, f.originator,
                        f.destination, f.format, f.received_at, f.final_path,
                        a.acked_by, a.acked_at
                 FROM os4x_received_files f
                 LEFT JOIN os4x_received_acks a ON a.received_id = f.id
                 WHERE f.state = 'received' AND f.id > ?1
                   AND (?2 = 0 OR a.received_id IS NULL)
                 ORDER BY f.id LIMIT ?3",
            )
            .map_err(internal)?;
        let rows = stmt
            .query_map(
                os4x_store::params![p.after_id.unwrap_or(0), p.unacked.unwrap_or(false), limit],
                |r| {
                    let path: Option<String> = r.get(8)?;
                    let size = path
                        .as_ref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map(|m| m.len());
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "partner": r.get::<_, String>(1)?,
                        "dataset_name": r.get::<_, String>(2)?,
                        "file_timestamp": r.get::<_, String>(3)?,
                        "originator": r.get::<_, String>(4)?,
                        "destination": r.get::<_, String>(5)?,
                        "format": r.get::<_, String>(6)?,
                        "received_at": r.get::<_, Option<i64>>(7)?,
                        "size": size,
                        "acked_by": r.get::<_, Option<String>>(9)?,
                        "acked_at": r.get::<_, Option<i64>>(10)?,
                    }))
                },
            )
            .map_err(internal)?;
        let files: Vec<Value> = rows.collect::<Result<_, _>>().map_err(internal)?;
        Ok(json!({ "files": files }))
    }

    fn received_path(&self, file_id: i64) -> Result<PathBuf, ErrorBody> {
        let conn = lock(&self.db);
        Self::require_received(&conn)?;
        let path: Option<Option<String>> = conn
            .query_row(
                "SELECT final_path FROM os4x_received_files WHERE id = ?1 AND state = 'received'",
                [file_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)?;
        match path.flatten() {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no received file with id {file_id}; see received.list"),
            )),
        }
    }

    fn download(&self, p: DownloadParams) -> Result<Value, ErrorBody> {
        let path = self.received_path(p.file_id)?;
        let mut f = std::fs::File::open(&path).map_err(|e| {
            ErrorBody::new(
                ErrorCode::NotFound,
                format!("received file {} cannot be opened: {e}", p.file_id),
            )
        })?;
        let size = f.metadata().map_err(internal)?.len();
        let offset = p.offset.unwrap_or(0).min(size);
        let want = p.length.unwrap_or(MAX_CHUNK).min(MAX_CHUNK);
        f.seek(SeekFrom::Start(offset)).map_err(internal)?;
        let mut buf = Vec::new();
        f.take(want).read_to_end(&mut buf).map_err(internal)?;
        let end = offset + buf.len() as u64;
        Ok(json!({
            "file_id": p.file_id,
            "offset": offset,
            "size": size,
            "data": base64::engine::general_purpose::STANDARD.encode(&buf),
            "eof": end >= size,
        }))
    }

    fn ack(&self, user: &str, p: AckParams) -> Result<Value, ErrorBody> {
        self.received_path(p.file_id)?;
        let conn = lock(&self.db);
        let now = crate::db::unix_now();
        conn.execute(
            "INSERT INTO os4x_received_acks (received_id, acked_by, acked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (received_id) DO NOTHING",
            os4x_store::params![p.file_id, user, now],
        )
        .map_err(internal)?;
        let (by, at): (String, i64) = conn
            .query_row(
                "SELECT acked_by, acked_at FROM os4x_received_acks WHERE received_id = ?1",
                [p.file_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(internal)?;
        tracing::info!(file_id = p.file_id, user, "received file acknowledged");
        Ok(json!({ "file_id": p.file_id, "acked_by": by, "acked_at": at }))
    }
}

/// A failure of the `os4x` command behind a job, as a protocol error.
fn failure(e: Failure) -> ErrorBody {
    let code = match &e {
        Failure::Invalid(_) => ErrorCode::BadRequest,
        Failure::Refused(_) => ErrorCode::Refused,
        Failure::NotConfigured(_) => ErrorCode::NotAvailable,
        Failure::Store(m) => {
            tracing::error!(error = %m, "job failed");
            ErrorCode::Internal
        }
    };
    ErrorBody::new(code, e.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueListParams {
    #[serde(default)]
    state: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadStartParams {
    name: String,
    size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadChunkParams {
    offset: u64,
    data: String,
}

/// `send`: the options of `os4x send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendParams {
    partner: String,
    path: Option<PathBuf>,
    #[serde(default)]
    upload: bool,
    dataset: Option<String>,
    format: Option<String>,
    record_size: Option<u32>,
    priority: Option<i64>,
    user_data: Option<String>,
    description: Option<String>,
    destination: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    after_id: Option<i64>,
    unacked: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadParams {
    file_id: i64,
    offset: Option<u64>,
    length: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckParams {
    file_id: i64,
}
