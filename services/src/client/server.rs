//! `os4xclientd`'s connections: greeting, bounded request lines, login
//! with per-connection backoff, role checks, jobs on the blocking pool.
//!
//! Jobs run as tasks inside this process (no child processes), so nothing
//! but the listener holds a listening socket; tokio opens every socket
//! close-on-exec.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::jobs::{required_role, Jobs};
use super::protocol::{self, ErrorBody, ErrorCode, Request};
use super::settings::ClientConfig;
use super::upload::Upload;
use crate::daemon::Shutdown;
use crate::users::Role;

/// Failed logins on one connection before it is closed.
const FAILURES_PER_CONNECTION: u32 = 3;
/// Delay before answering a failed login, times the failures so far on the
/// connection: slows guessing without locking anyone out.
const FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Concurrent argon2 checks (each takes ~19 MiB for a moment).
const CONCURRENT_LOGINS: usize = 4;

/// Accepts connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    jobs: Arc<Jobs>,
    cfg: ClientConfig,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections as usize));
    let logins = Arc::new(Semaphore::new(CONCURRENT_LOGINS));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((mut stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = cfg.max_connections, "too many client connections; refusing");
                        tokio::spawn(async move {
                            let line = protocol::response(&Value::Null, Err(ErrorBody::new(ErrorCode::Busy, "too many connections; try again later")));
                            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&line)).await;
                        });
                        continue;
                    };
                    let jobs = jobs.clone();
                    let cfg = cfg.clone();
                    let logins = logins.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "client connected");
                        if let Err(e) = connection(stream, &jobs, &cfg, &logins).await {
                            tracing::debug!(%peer, error = %e, "client connection ended");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginParams {
    user: String,
    password: String,
}

struct Session {
    user: String,
    role: Role,
    /// The upload in progress for `send` (removed with the session).
    upload: Option<Upload>,
}

async fn connection(
    stream: TcpStream,
    jobs: &Arc<Jobs>,
    cfg: &ClientConfig,
    logins: &Arc<Semaphore>,
) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(&protocol::greeting()).await?;
    let mut session: Option<Session> = None;
    let mut failures = 0u32;
    let login_deadline = Instant::now() + cfg.login_timeout;
    let limit = cfg.max_request_bytes as u64;
    let mut line = Vec::new();
    loop {
        let deadline = match session {
            None => login_deadline,
            Some(_) => Instant::now() + cfg.idle_timeout,
        };
        line.clear();
        // At most limit+1 bytes are ever buffered for one request.
        let mut bounded = (&mut rd).take(limit + 1);
        let read = bounded.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout_at(deadline, read).await {
            Ok(r) => r?,
            Err(_) => {
                let why = if session.is_none() {
                    "no login within the login timeout"
                } else {
                    "idle timeout"
                };
                let _ = wr
                    .write_all(&protocol::response(
                        &Value::Null,
                        Err(ErrorBody::new(ErrorCode::Timeout, why)),
                    ))
                    .await;
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() as u64 > limit {
            tracing::warn!(%peer, limit, "request too large; closing the connection");
            let err = ErrorBody::new(
                ErrorCode::RequestTooLarge,
                format!("request longer than {limit} bytes ([client] max_request_bytes); closing the connection"),
            );
            wr.write_all(&protocol::response(&Value::Null, Err(err)))
                .await?;
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let req = match protocol::parse_request(text) {
            Ok(r) => r,
            Err((id, err)) => {
                wr.write_all(&protocol::response(&id, Err(err))).await?;
                continue;
            }
        };
        let (answer, close) = handle(&req, &mut session, &mut failures, jobs, logins, peer).await;
        wr.write_all(&protocol::response(&req.id, answer)).await?;
        if close {
            return Ok(());
        }
    }
}

/// One request; returns the answer and whether to close afterwards.
async fn handle(
    req: &Request,
    session: &mut Option<Session>,
    failures: &mut u32,
    jobs: &Arc<Jobs>,
    logins: &Arc<Semaphore>,
    peer: std::net::SocketAddr,
) -> (Result<Value, ErrorBody>, bool) {
    match req.op.as_str() {
        "login" => {
            let p: LoginParams = match req.params() {
                Ok(p) => p,
                Err(e) => return (Err(e), false),
            };
            let Ok(_permit) = logins.acquire().await else {
                return (
                    Err(ErrorBody::new(ErrorCode::Internal, "shutting down")),
                    true,
                );
            };
            let j = jobs.clone();
            let user = p.user.clone();
            let result = tokio::task::spawn_blocking(move || j.login(&p.user, &p.password))
                .await
                .unwrap_or_else(|e| Err(ErrorBody::new(ErrorCode::Internal, e.to_string())));
            match result {
                Ok(role) => {
                    tracing::info!(%peer, user, %role, "client logged in");
                    *session = Some(Session {
                        user: user.clone(),
                        role,
                        upload: None,
                    });
                    (Ok(json!({"user": user, "role": role})), false)
                }
                Err(e) => {
                    *failures += 1;
                    *session = None;
                    tracing::warn!(%peer, user, code = ?e.code, "client login failed");
                    tokio::time::sleep(FAILURE_DELAY * *failures).await;
                    (Err(e), *failures >= FAILURES_PER_CONNECTION)
                }
            }
        }
        "logout" => {
            *session = None;
            (Ok(json!({})), false)
        }
        op => {
            let Some(s) = session.as_mut() else {
                return (
                    Err(ErrorBody::new(
                        ErrorCode::Unauthenticated,
                        "log in first: {\"op\":\"login\",\"user\":...,\"password\":...}",
                    )),
                    false,
                );
            };
            if op == "whoami" {
                return (Ok(json!({"user": s.user, "role": s.role})), false);
            }
            let Some(needed) = required_role(op) else {
                return (
                    Err(ErrorBody::new(
                        ErrorCode::UnknownOp,
                        format!("unknown op {op:?}"),
                    )),
                    false,
                );
            };
            if s.role < needed {
                tracing::warn!(%peer, user = s.user, role = %s.role, op, "job refused: role too low");
                return (
                    Err(ErrorBody::new(
                        ErrorCode::Forbidden,
                        format!(
                            "{op} needs role {needed} or higher; user {} has role {}",
                            s.user, s.role
                        ),
                    )),
                    false,
                );
            }
            let j = jobs.clone();
            let user = s.user.clone();
            let req = req.clone();
            let mut upload = s.upload.take();
            let result = tokio::task::spawn_blocking(move || {
                let r = j.run(&user, &req, &mut upload);
                (r, upload)
            })
            .await;
            match result {
                Ok((r, upload)) => {
                    s.upload = upload;
                    (r, false)
                }
                Err(e) => (
                    Err(ErrorBody::new(ErrorCode::Internal, e.to_string())),
                    false,
                ),
            }
        }
    }
}
