//! Runs a [`Session`] over any tokio byte stream: TCP, TLS, or anything
//! else that is `AsyncRead + AsyncWrite + Unpin`.
//!
//! The driver owns no protocol logic. It reads into a reusable receive
//! buffer and hands it to [`Session::handle_input`] (frames are split off
//! without copying), writes what [`Session::poll_transmit`] produces, and
//! turns [`TimerRequest`]s into a tokio sleep. It asks the session for more
//! output only when the previous output is fully written, so a slow
//! connection slows down the file reads: at most one transmit chunk
//! (256 KiB plus one buffer) is ever held in memory per direction.
//!
//! Handlers run synchronously inside the driver's task; their file I/O
//! blocks that task briefly (one buffer at a time). Run sessions on a
//! multi-threaded runtime.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep, Instant, Sleep};

use crate::session::{Event, Session, SessionEnd, TimerId, TimerRequest};

/// Receive buffer growth step: a few maximum-size STBs.
const READ_CHUNK: usize = 256 * 1024;

/// Why [`run`] returned without a session end.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Reading from or writing to the connection failed. The session has
    /// been told (as a lost connection) and its final events delivered.
    #[error("connection I/O failed: {0}; the partner or the network dropped the connection")]
    Io(#[from] io::Error),
}

/// Run `session` over `io` until it is closed, passing every event to
/// `on_event`. Returns how the session ended.
///
/// ```no_run
/// # async fn demo(session: &mut oftp2::session::Session) -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpStream::connect("partner.example:3305").await?;
/// let end = oftp2::driver::run(session, tcp, |event| println!("{event:?}")).await?;
/// println!("{end}");
/// # Ok(()) }
/// ```
pub async fn run<S, F>(
    session: &mut Session,
    io: S,
    mut on_event: F,
) -> Result<SessionEnd, DriverError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Event),
{
    // Split so that a pending write and a pending read can wait together;
    // the protocol is half duplex, but ESID or CDT may arrive while we
    // write, and a blocked write must not hide them.
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut rx = BytesMut::with_capacity(READ_CHUNK);
    let mut tx = BytesMut::with_capacity(READ_CHUNK);
    let mut timer = Timer::new();
    let mut read_closed = false;
    let mut write_closed = false;

    loop {
        if tx.is_empty() {
            session.poll_transmit(&mut tx);
        }
        while let Some(event) = session.poll_event() {
            on_event(event);
        }
        while let Some(request) = session.poll_timer() {
            timer.apply(request);
        }
        if tx.is_empty() && session.is_ended() && !write_closed {
            // Everything, ESID included, is written: let the partner see
            // the end of the stream (N_DISC_RQ once it has read ESID).
            let _ = writer.shutdown().await;
            write_closed = true;
        }
        if session.is_closed() && tx.is_empty() {
            break;
        }
        if read_closed && tx.is_empty() && timer.id.is_none() {
            // Nothing can happen any more.
            session.handle_eof();
            continue;
        }
        if rx.capacity() - rx.len() < READ_CHUNK / 4 {
            rx.reserve(READ_CHUNK);
        }

        let armed = timer.id.is_some();
        let result = tokio::select! {
            res = writer.write_buf(&mut tx), if !tx.is_empty() => match res {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => Ok(None),
                Err(err) => Err(err),
            },
            res = reader.read_buf(&mut rx), if !read_closed => res.map(Some),
            () = timer.sleep.as_mut(), if armed => {
                if let Some(id) = timer.id.take() {
                    session.handle_timeout(id);
                }
                Ok(None)
            }
        };
        match result {
            Ok(None) => {}
            Ok(Some(0)) => {
                read_closed = true;
                session.handle_eof();
            }
            Ok(Some(_)) => session.handle_input(&mut rx),
            Err(err) => {
                session.handle_eof();
                while let Some(event) = session.poll_event() {
                    on_event(event);
                }
                return Err(DriverError::Io(err));
            }
        }
    }
    while let Some(event) = session.poll_event() {
        on_event(event);
    }
    Ok(session.end().cloned().unwrap_or_else(|| SessionEnd {
        origin: crate::session::Origin::Network,
        reason: crate::value::EndSessionReason::Unspecified,
        text: "session closed without an end".into(),
    }))
}

/// The session's single timer as one reusable tokio sleep (re-arming
/// happens per received buffer, so the timer entry is reset, not rebuilt).
struct Timer {
    sleep: Pin<Box<Sleep>>,
    id: Option<TimerId>,
}

impl Timer {
    fn new() -> Self {
        Self {
            sleep: Box::pin(sleep(Duration::from_secs(3600))),
            id: None,
        }
    }

    fn apply(&mut self, request: TimerRequest) {
        match request {
            TimerRequest::Arm { id, after } => {
                self.id = Some(id);
                self.sleep.as_mut().reset(Instant::now() + after);
            }
            TimerRequest::Disarm => self.id = None,
        }
    }
}
