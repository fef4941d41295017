//! `os4xdebugd`'s side of the debug protocol: accepts connections,
//! validates frames, and hands records to the writer thread that stores
//! them in the [`Ring`] and logs them to the journal.
//!
//! Bounded everywhere: at most `max_connections` connections (more are
//! closed at once), at most one frame ([`proto::MAX_FRAME`]) buffered per
//! connection, a deadline for the hello and for completing a started frame
//! (slow clients), and a bounded queue to the writer, so a flood slows
//! senders down (they drop and count) instead of growing memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::proto::{self, Decoder, Frame, FrameError, Record};
use super::ring::{Ring, StoredRecord};
use crate::daemon::Shutdown;

/// Records waiting for the writer thread.
const WRITER_QUEUE: usize = 8192;

/// The line a connecting client receives (senders ignore it; a human with
/// `nc` learns what this port is).
pub const GREETING: &[u8] = b"os4xdebugd: debug record collector, framed protocol version 1 (see the os4xdebugd section of the os4x README)\n";

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: u32,
    /// Deadline for the hello frame and for finishing a started frame.
    pub frame_timeout: Duration,
}

/// Counters, logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub records: AtomicU64,
    pub bad_connections: AtomicU64,
}

/// Takes the socket systemd passed (socket activation, `LISTEN_FDS`), or
/// binds `addr`. Shared by `os4xdebugd` and `os4xclientd`.
pub fn listener(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let mut fds = listenfd::ListenFd::from_env();
    let std_listener = match fds.take_tcp_listener(0) {
        Ok(Some(l)) => {
            tracing::info!("using the listening socket passed by systemd");
            l
        }
        Ok(None) => std::net::TcpListener::bind(addr).with_context(|| {
            format!("cannot listen on {addr} ({key}); is another program using the port?")
        })?,
        Err(e) => {
            return Err(e)
                .context("the socket passed by systemd (LISTEN_FDS) is not a TCP listener")
        }
    };
    std_listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(std_listener)?)
}

/// Starts the writer thread: stores records in `ring` and logs each one.
/// It ends when every sender is gone.
pub fn spawn_writer(mut ring: Ring) -> std::io::Result<mpsc::Sender<StoredRecord>> {
    let (tx, mut rx) = mpsc::channel::<StoredRecord>(WRITER_QUEUE);
    std::thread::Builder::new()
        .name("os4xdebugd-writer".into())
        .spawn(move || {
            let mut failing = false;
            while let Some(rec) = rx.blocking_recv() {
                journal(&rec);
                let mut result = ring.append(&rec);
                if result.is_ok() && rx.is_empty() {
                    result = ring.flush();
                }
                match result {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!(error = %e, "cannot write debug records to disk; records still go to the journal");
                    }
                    Err(_) => {}
                }
            }
            let _ = ring.flush();
        })?;
    Ok(tx)
}

/// One record into the journal, with its origin as structured fields.
fn journal(rec: &StoredRecord) {
    let fields = if rec.record.fields.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&rec.record.fields).unwrap_or_default()
    };
    tracing::info!(
        target: "os4xdebugd::record",
        program = %rec.program,
        pid = rec.pid,
        server_id = rec.server_id,
        level = %rec.record.level,
        source = %rec.record.target,
        spans = %rec.record.spans,
        fields = %fields,
        "{}",
        rec.record.message
    );
}

/// Accepts connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    sink: mpsc::Sender<StoredRecord>,
    stats: Arc<Stats>,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        // Closing at once is the cheapest answer; senders retry.
                        let n = stats.refused.fetch_add(1, Ordering::Relaxed);
                        if n.is_power_of_two() {
                            tracing::warn!(%peer, refused_total = n + 1, max = limits.max_connections, "too many connections; closing new ones");
                        }
                        drop(stream);
                        continue;
                    };
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let sink = sink.clone();
                    let stats = stats.clone();
                    tokio::spawn(async move {
                        match connection(stream, limits, &sink, &stats).await {
                            Ok(()) => tracing::debug!(%peer, "sender disconnected"),
                            Err(e) => {
                                stats.bad_connections.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%peer, error = %e, "closed a connection that broke the debug protocol");
                            }
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

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no hello frame within {0:?}")]
    NoHello(Duration),
    #[error("a frame took longer than {0:?} to arrive (slow or stuck client)")]
    Slow(Duration),
    #[error("first frame must be a hello")]
    HelloExpected,
    #[error("second hello")]
    DuplicateHello,
    #[error("unsupported protocol version {0}")]
    Version(u32),
    #[error("connection ended in the middle of a frame")]
    Truncated,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

struct Origin {
    program: String,
    pid: u32,
    server_id: u32,
}

async fn connection(
    mut stream: TcpStream,
    limits: Limits,
    sink: &mpsc::Sender<StoredRecord>,
    stats: &Stats,
) -> Result<(), ConnError> {
    // Best effort; a sender never reads it.
    let _ = stream.write_all(GREETING).await;
    let mut decoder = Decoder::new();
    let mut origin: Option<Origin> = None;
    loop {
        let mid_frame = decoder.is_mid_frame();
        let read = stream.read_buf(decoder.buffer());
        let n = if origin.is_none() {
            tokio::time::timeout(limits.frame_timeout, read)
                .await
                .map_err(|_| ConnError::NoHello(limits.frame_timeout))??
        } else if mid_frame {
            tokio::time::timeout(limits.frame_timeout, read)
                .await
                .map_err(|_| ConnError::Slow(limits.frame_timeout))??
        } else {
            // Between frames a sender may stay idle as long as it likes.
            read.await?
        };
        if n == 0 {
            return if decoder.is_mid_frame() {
                Err(ConnError::Truncated)
            } else {
                Ok(())
            };
        }
        while let Some(frame) = decoder.next_frame()? {
            match (frame, &origin) {
                (Frame::Hello { version, .. }, None) if version != proto::VERSION => {
                    return Err(ConnError::Version(version))
                }
                (
                    Frame::Hello {
                        program,
                        pid,
                        server_id,
                        ..
                    },
                    None,
                ) => {
                    tracing::info!(%program, pid, server_id, "sender connected");
                    origin = Some(Origin {
                        program,
                        pid,
                        server_id,
                    });
                }
                (Frame::Hello { .. }, Some(_)) => return Err(ConnError::DuplicateHello),
                (_, None) => return Err(ConnError::HelloExpected),
                (Frame::Record(record), Some(o)) => {
                    stats.records.fetch_add(1, Ordering::Relaxed);
                    store(sink, o, record).await;
                }
                (Frame::Dropped { count }, Some(o)) => {
                    tracing::warn!(program = %o.program, pid = o.pid, dropped_total = count, "sender reports dropped debug records");
                    let record = Record {
                        ts_us: now_us(),
                        level: "WARN".into(),
                        target: "os4xdebugd".into(),
                        message: format!("{} (pid {}) dropped {count} debug records so far (queue full or os4xdebugd unreachable)", o.program, o.pid),
                        fields: [("dropped_total".to_owned(), count.to_string())].into(),
                        spans: String::new(),
                    };
                    store(sink, o, record).await;
                }
            }
        }
    }
}

async fn store(sink: &mpsc::Sender<StoredRecord>, o: &Origin, record: Record) {
    // Waiting here is the back-pressure: this connection's reads pause,
    // the sender's socket buffer fills, and the sender drops (and counts).
    let _ = sink
        .send(StoredRecord {
            program: o.program.clone(),
            pid: o.pid,
            server_id: o.server_id,
            record,
        })
        .await;
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
