//! The ISDN exchange simulator as a process: `os4x-isdn-sim` runs one
//! [`capi::sim::Sim`] and lets applications in other processes register on
//! it over TCP (`[[isdn.controller]] transport = "sim:HOST:PORT"`), so two
//! os4x installations on one host share a simulated line — the test and
//! demo set-up without ISDN hardware.
//!
//! Wire protocol (private to os4x, 127.0.0.1 use): the client sends
//! `OS4XSIM1` and its registration parameters (three little-endian u16:
//! logical connections, data blocks, block length); the server answers
//! `OS4XSIM1` and the application id. After that both sides send CAPI 2.0
//! messages back to back, exactly as [`capi::message::Message::encode`]
//! writes them (a `DATA_B3` block follows its message). Closing the
//! connection is `CAPI_RELEASE`.
//!
//! This stands in for a remote-CAPI server until the `capi` crate has one;
//! the daemons only see a [`Transport`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use capi::message::{DecodeError, Message};
use capi::sim::Sim;
use capi::transport::{RegisterParams, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const MAGIC: &[u8; 8] = b"OS4XSIM1";

/// Octets queued for sending before `put_message` reports a full queue.
const OUT_LIMIT: usize = 1 << 20;

/// One application registered on a simulator in another process.
#[derive(Debug)]
pub struct SimNetTransport {
    stream: TcpStream,
    app_id: u16,
    params: RegisterParams,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
}

impl SimNetTransport {
    /// Connects to `os4x-isdn-sim` at `addr` and registers.
    pub async fn connect(
        addr: SocketAddr,
        params: RegisterParams,
    ) -> Result<SimNetTransport, TransportError> {
        let unavailable = |e: io::Error| {
            TransportError::Unavailable(format!(
                "ISDN simulator at {addr}: {e}; is os4x-isdn-sim running there?"
            ))
        };
        let mut stream = TcpStream::connect(addr).await.map_err(unavailable)?;
        let _ = stream.set_nodelay(true);
        let mut hello = MAGIC.to_vec();
        for v in [
            params.max_logical_connections,
            params.max_b_data_blocks,
            params.max_b_data_len,
        ] {
            hello.extend_from_slice(&v.to_le_bytes());
        }
        stream.write_all(&hello).await.map_err(unavailable)?;
        let mut answer = [0u8; 10];
        stream.read_exact(&mut answer).await.map_err(unavailable)?;
        if &answer[..8] != MAGIC {
            return Err(TransportError::Unavailable(format!(
                "{addr} is not an os4x ISDN simulator"
            )));
        }
        Ok(SimNetTransport {
            stream,
            app_id: u16::from_le_bytes([answer[8], answer[9]]),
            params,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
        })
    }

    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Result<(), TransportError> {
        while self.out_pos < self.out.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => return Err(TransportError::Closed),
                Poll::Ready(Ok(n)) => self.out_pos += n,
                Poll::Ready(Err(e)) => return Err(TransportError::Io(e)),
                Poll::Pending => break,
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }
}

impl Transport for SimNetTransport {
    fn app_id(&self) -> u16 {
        self.app_id
    }

    fn params(&self) -> RegisterParams {
        self.params
    }

    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        if self.out.len() - self.out_pos > OUT_LIMIT {
            return Err(TransportError::QueueFull);
        }
        msg.encode(&mut self.out)?;
        // Send what the socket takes now; the rest goes out from
        // `poll_get_message`, which the dispatcher calls after every put.
        while self.out_pos < self.out.len() {
            match self.stream.try_write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(TransportError::Closed),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
        Ok(())
    }

    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        if let Err(e) = self.poll_flush_out(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            match Message::decode(&self.inbuf) {
                Ok((m, used)) => {
                    self.inbuf.drain(..used);
                    return Poll::Ready(Ok(m));
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return Poll::Ready(Err(TransportError::Closed))
                }
                Poll::Ready(Ok(())) => self.inbuf.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(TransportError::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Serves applications of other processes on `sim` until the listener fails.
pub async fn serve(sim: Sim, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let sim = sim.clone();
        tokio::spawn(async move {
            if let Err(e) = client(sim, stream).await {
                tracing::debug!(peer = %peer, error = %e, "simulator client ended");
            }
        });
    }
}

enum Step {
    Read(io::Result<usize>),
    Deliver(Result<Message, TransportError>),
}

async fn client(sim: Sim, mut stream: TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut hello = [0u8; 14];
    stream.read_exact(&mut hello).await?;
    if &hello[..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an os4x simulator client",
        ));
    }
    let word = |i: usize| u16::from_le_bytes([hello[i], hello[i + 1]]);
    let params = RegisterParams {
        max_logical_connections: word(8).max(1),
        max_b_data_blocks: word(10).clamp(1, 7),
        max_b_data_len: word(12).clamp(128, 2048),
    };
    let mut t = sim.register(params);
    let mut answer = MAGIC.to_vec();
    answer.extend_from_slice(&t.app_id().to_le_bytes());
    stream.write_all(&answer).await?;
    tracing::info!(app = t.app_id(), "simulator: application registered");
    let (mut rd, mut wr) = stream.into_split();
    let mut inbuf = Vec::new();
    let mut chunk = vec![0u8; 16384];
    let mut out = Vec::new();
    loop {
        let step = tokio::select! {
            n = rd.read(&mut chunk) => Step::Read(n),
            m = std::future::poll_fn(|cx| t.poll_get_message(cx)) => Step::Deliver(m),
        };
        match step {
            Step::Read(Ok(0)) => return Ok(()),
            Step::Read(Ok(n)) => {
                inbuf.extend_from_slice(&chunk[..n]);
                loop {
                    match Message::decode(&inbuf) {
                        Ok((m, used)) => {
                            inbuf.drain(..used);
                            if let Err(e) = t.put_message(&m) {
                                tracing::warn!(app = t.app_id(), error = %e, "simulator: message refused");
                            }
                        }
                        Err(DecodeError::Incomplete { .. }) => break,
                        Err(e) => {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
                        }
                    }
                }
            }
            Step::Read(Err(e)) => return Err(e),
            Step::Deliver(Ok(m)) => {
                out.clear();
                m.encode(&mut out)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                wr.write_all(&out).await?;
            }
            Step::Deliver(Err(e)) => {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, e.to_string()))
            }
        }
    }
}

/// Runs `os4x-isdn-sim`: one controller per entry of `lines` (the numbers
/// it answers, comma-separated), `b_channels` each, served on `listen`.
/// Prints `listening ADDR` and one `controller N: NUMBERS` line per
/// controller on stdout, then reads commands from stdin: `break N` breaks
/// every call on controller N as a failing line would (layer 1 error).
pub async fn run_exchange(
    listen: SocketAddr,
    lines: &[String],
    b_channels: usize,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use tokio::io::AsyncBufReadExt;
    let sim = Sim::new();
    let mut out = String::new();
    let listener = TcpListener::bind(listen).await?;
    out.push_str(&format!("listening {}\n", listener.local_addr()?));
    for line in lines {
        let numbers: Vec<String> = line
            .split(',')
            .map(super::settings::digits)
            .filter(|d| !d.is_empty())
            .collect();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let n = sim.add_controller(&refs, b_channels);
        out.push_str(&format!("controller {n}: {}\n", numbers.join(",")));
    }
    {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
    let control = {
        let sim = sim.clone();
        async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(cmd)) = lines.next_line().await {
                let mut words = cmd.split_whitespace();
                let reply = match (words.next(), words.next().map(str::parse::<u32>)) {
                    (Some("break"), Some(Ok(c))) => {
                        let n = sim.exchange().break_line(c);
                        tracing::info!(controller = c, calls = n, "simulator: line broken");
                        format!("broken {c} calls={n}\n")
                    }
                    (None, _) => continue,
                    _ => "error: commands are `break CONTROLLER`\n".to_owned(),
                };
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(reply.as_bytes());
                let _ = stdout.flush();
            }
            // stdin closed (run in the background): keep serving.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = serve(sim, listener) => r?,
        () = control => {}
    }
    Ok(())
}
