//! `os4xclientd`'s connections: optional TLS, greeting, bounded request
//! lines, login with per-connection backoff, role checks, jobs on the
//! blocking pool.
//!
//! Jobs run as tasks inside this process (no child processes), so nothing
//! but the listener holds a listening socket; tokio opens every socket
//! close-on-exec.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

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
/// How long a connection refused as `busy` may take to be told so
/// (including its TLS handshake).
const BUSY_ANSWER: Duration = Duration::from_secs(2);

/// The TLS configuration in use; [`TlsHolder::replace`] swaps it (SIGHUP)
/// for connections accepted afterwards, open ones keep theirs.
#[derive(Debug)]
pub struct TlsHolder(std::sync::RwLock<Arc<rustls::ServerConfig>>);

impl TlsHolder {
    pub fn new(config: Arc<rustls::ServerConfig>) -> TlsHolder {
        TlsHolder(std::sync::RwLock::new(config))
    }

    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Accepts connections until shutdown. With `tls` (from `[client]
/// tls_certificate`/`tls_private_key`) every connection must complete a
/// TLS handshake, within the login timeout, before it is greeted.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsHolder>>,
    jobs: Arc<Jobs>,
    cfg: ClientConfig,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections as usize));
    let logins = Arc::new(Semaphore::new(CONCURRENT_LOGINS));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let tls = tls.as_ref().map(|t| t.acceptor());
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = cfg.max_connections, "too many client connections; refusing");
            tokio::spawn(refuse_busy(stream, tls));
            continue;
        };
        let jobs = jobs.clone();
        let cfg = cfg.clone();
        let logins = logins.clone();
        tokio::spawn(async move {
            accepted(stream, peer, tls, &jobs, &cfg, &logins).await;
            drop(permit);
        });
    }
}

/// Tells a connection over `[client] max_connections` so (after its TLS
/// handshake: a TLS client could not read it otherwise) and closes it.
async fn refuse_busy(stream: TcpStream, tls: Option<TlsAcceptor>) {
    let line = protocol::response(
        &Value::Null,
        Err(ErrorBody::new(
            ErrorCode::Busy,
            "too many connections; try again later",
        )),
    );
    let tell = async {
        match tls {
            Some(tls) => say_and_close(tls.accept(stream).await?, &line).await,
            None => say_and_close(stream, &line).await,
        }
    };
    let _ = tokio::time::timeout(BUSY_ANSWER, tell).await;
}

/// One accepted connection: the TLS handshake if configured (it counts
/// against the login timeout), then the exchange.
async fn accepted(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
    jobs: &Arc<Jobs>,
    cfg: &ClientConfig,
    logins: &Arc<Semaphore>,
) {
    tracing::debug!(%peer, tls = tls.is_some(), "client connected");
    let login_deadline = Instant::now() + cfg.login_timeout;
    let ended = match tls {
        None => connection(stream, peer, login_deadline, jobs, cfg, logins).await,
        Some(tls) => match tokio::time::timeout_at(login_deadline, tls.accept(stream)).await {
            Ok(Ok(stream)) => connection(stream, peer, login_deadline, jobs, cfg, logins).await,
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "client TLS handshake failed (a client without TLS?)");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "client TLS handshake not completed within the login timeout");
                return;
            }
        },
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "client connection ended");
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

/// One connection, plain or TLS, from the greeting on; it must log in by
/// `login_deadline`.
async fn connection<S: AsyncRead + AsyncWrite>(
    stream: S,
    peer: std::net::SocketAddr,
    login_deadline: Instant,
    jobs: &Arc<Jobs>,
    cfg: &ClientConfig,
    logins: &Arc<Semaphore>,
) -> std::io::Result<()> {
    let (rd, mut wr) = tokio::io::split(stream);
    let result = exchange(
        BufReader::new(rd),
        &mut wr,
        peer,
        login_deadline,
        jobs,
        cfg,
        logins,
    )
    .await;
    // Ends TLS with close_notify, so the client can tell a complete
    // answer from a cut connection.
    let _ = wr.shutdown().await;
    result
}

/// Writes `line` and sends it at once (TLS buffers until flushed).
async fn send<W: AsyncWrite + Unpin>(wr: &mut W, line: &[u8]) -> std::io::Result<()> {
    wr.write_all(line).await?;
    wr.flush().await
}

/// Sends one line to a connection that is refused, then closes it.
async fn say_and_close<S: AsyncWrite + Unpin>(mut stream: S, line: &[u8]) -> std::io::Result<()> {
    send(&mut stream, line).await?;
    stream.shutdown().await
}

/// Greeting, then requests and responses until either side ends.
async fn exchange<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut rd: BufReader<R>,
    wr: &mut W,
    peer: std::net::SocketAddr,
    login_deadline: Instant,
    jobs: &Arc<Jobs>,
    cfg: &ClientConfig,
    logins: &Arc<Semaphore>,
) -> std::io::Result<()> {
    send(wr, &protocol::greeting()).await?;
    let mut session: Option<Session> = None;
    let mut failures = 0u32;
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
                let _ = send(
                    wr,
                    &protocol::response(&Value::Null, Err(ErrorBody::new(ErrorCode::Timeout, why))),
                )
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
            send(wr, &protocol::response(&Value::Null, Err(err))).await?;
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
                send(wr, &protocol::response(&id, Err(err))).await?;
                continue;
            }
        };
        let (answer, close) = handle(&req, &mut session, &mut failures, jobs, logins, peer).await;
        send(wr, &protocol::response(&req.id, answer)).await?;
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
