//! Receive-daemon benchmark against the real `os4xrd_tcpip` and
//! `os4xrd_tcpip_tls` processes on 127.0.0.1 (run with `cargo bench -p
//! os4x-services --bench rd_bench`):
//!
//! 1. N concurrent sessions past the SSID exchange (default 1,000), and the
//!    daemon's resident memory before and with them;
//! 2. a 1 GiB file sent by the oftp2 initiator over TCP and TLS into the
//!    durable inbox, compared in the same run with a raw TCP/TLS copy of
//!    the same bytes into a file (write + fsync).
//!
//! `RD_BENCH_SESSIONS` and `RD_BENCH_BYTES` override the sizes;
//! `RD_BENCH_DIR` puts database, inbox and raw copies elsewhere (e.g.
//! `/dev/shm` to take the disk out of the comparison).

#[path = "../../tests/rd_support/mod.rs"]
mod rd_support;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use oftp2::codec::{Command as OftpCommand, Ssid};
use oftp2::session::OutgoingFile;
use oftp2::stb::{self, StbDecoder};
use oftp2::value::{OdetteId, Password, ProtocolLevel, SendReceive, UserData};
use rd_support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TCPIP: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip");
const TLS: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip_tls");

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

impl Daemon {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Starts `program` with `listener` as its socket-activated fd 3.
fn activated(program: &str, config: &Path, listener: std::net::TcpListener) -> Daemon {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .arg("--config")
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env("OS4X_LOG", "error")
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                nix::fcntl::fcntl(
                    3,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            } else {
                nix::unistd::dup2(fd, 3)?;
            }
            Ok(())
        });
    }
    let d = Daemon(cmd.spawn().unwrap());
    drop(listener);
    d
}

/// Reads one exchange buffer.
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> bytes::Bytes {
    let mut dec = StbDecoder::new();
    loop {
        if let Some(frame) = dec.decode(buf).unwrap() {
            return frame;
        }
        let n = io.read_buf(buf).await.unwrap();
        assert!(n > 0, "daemon closed the connection");
    }
}

/// Opens a session and stops after the SSID exchange: the daemon holds an
/// idle listener session for it.
async fn connected_session<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> S {
    let mut buf = BytesMut::new();
    let ssrm = read_frame(&mut io, &mut buf).await;
    assert_eq!(ssrm.first(), Some(&b'I'));
    let ssid = Ssid {
        level: ProtocolLevel::V2_0,
        id: OdetteId::new(PARTNER).unwrap(),
        password: Password::new(PARTNER_PW).unwrap(),
        buffer_size: 99_999,
        capabilities: SendReceive::Send,
        compression: false,
        restart: true,
        special_logic: false,
        credit: 999,
        secure_authentication: false,
        user_data: UserData::EMPTY,
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; stb::HEADER_LEN]);
    OftpCommand::Ssid(ssid)
        .encode(ProtocolLevel::V2_0, &mut out)
        .unwrap();
    let header = stb::header(out.len() - stb::HEADER_LEN).unwrap();
    out[..stb::HEADER_LEN].copy_from_slice(&header);
    io.write_all(&out).await.unwrap();
    let answer = read_frame(&mut io, &mut buf).await;
    assert_eq!(answer.first(), Some(&b'X'), "SSID expected");
    io
}

async fn wait_ready(addr: std::net::SocketAddr) {
    // The listening socket exists before the daemon runs; a full session
    // start proves it is serving.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut tcp = tcp;
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await
    })
    .await;
}

/// A listening socket with the backlog a systemd socket unit has
/// (SOMAXCONN), so a burst of connects is not throttled by SYN retries.
fn listener() -> std::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(4096).unwrap().into_std().unwrap()
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

/// Raw copy: receive `len` octets on a socket, write them to `path`, fsync.
async fn raw_sink<S: AsyncRead + Unpin>(mut io: S, path: &Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = io.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).unwrap();
        total += n as u64;
    }
    file.sync_all().unwrap();
    total
}

async fn raw_source<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, len: u64) {
    use std::io::Read;
    let mut src = Generated::new(len);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        io.write_all(&buf[..n]).await.unwrap();
    }
    io.shutdown().await.unwrap();
    // Read to the end (TLS 1.3 session tickets), so closing does not
    // reset the connection before the sink has read everything.
    let mut rest = Vec::new();
    let _ = io.read_to_end(&mut rest).await;
}

fn generated_file(dsn: &str, len: u64) -> OutgoingFile {
    OutgoingFile {
        sfid: sfid(dsn, len),
        data: Box::new(Generated::new(len)),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sessions: usize = std::env::var("RD_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let bytes: u64 = std::env::var("RD_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let base = std::env::var_os("RD_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let cert = server_cert(dir.path(), "server");
    let station = Station::new_in(
        base.as_deref(),
        &format!(
            "[rd]\nmax_sessions = {}\nidle_timeout = 600\nresponse_timeout = 600\n\
         [tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            sessions + 10,
            cert.cert_pem.display(),
            cert.key_pem.display()
        ),
    );
    station.add_partner(|_| {});
    let tcp_listener = listener();
    let tcp_addr = tcp_listener.local_addr().unwrap();
    let tls_listener = listener();
    let tls_addr = tls_listener.local_addr().unwrap();
    let tcp_daemon = activated(TCPIP, &station.config_path, tcp_listener);
    let tls_daemon = activated(TLS, &station.config_path, tls_listener);
    wait_ready(tcp_addr).await;
    let connector = tls_connector(&cert.cert_der, None);
    let _ = tls_connect(tls_addr, &connector).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("| measurement | value |\n|---|---|");
    // 1. Concurrent sessions.
    for (name, daemon, tls) in [("TCP", &tcp_daemon, false), ("TLS", &tls_daemon, true)] {
        let before = daemon.rss_kib();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let connector = connector.clone();
        for _ in 0..sessions {
            let connector = connector.clone();
            let addr = if tls { tls_addr } else { tcp_addr };
            tasks.spawn(async move {
                if tls {
                    let s = tls_connect(addr, &connector).await.unwrap();
                    Box::new(connected_session(s).await) as Box<dyn Send + Sync>
                } else {
                    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    Box::new(connected_session(s).await) as Box<dyn Send + Sync>
                }
            });
        }
        let mut held = Vec::new();
        while let Some(s) = tasks.join_next().await {
            held.push(s.unwrap());
        }
        let took = start.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with = daemon.rss_kib();
        println!(
            "| {name}: {} sessions connected (SSID exchanged) in | {:.2} s |",
            held.len(),
            took.as_secs_f64()
        );
        println!(
            "| {name}: daemon RSS idle / with {} sessions | {:.1} MiB / {:.1} MiB ({:.1} KiB per session) |",
            held.len(),
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            (with.saturating_sub(before)) as f64 / held.len() as f64
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 2. Throughput: OFTP into the inbox vs a raw copy into a file.
    let gib = bytes as f64 / (1u64 << 30) as f64;
    for (name, tls) in [("TCP", false), ("TLS", true)] {
        let start = Instant::now();
        let dsn = format!("BENCH.{name}");
        let sent = if tls {
            let s = tls_connect(tls_addr, &connector).await.unwrap();
            send(s, PARTNER, PARTNER_PW, Some(generated_file(&dsn, bytes))).await
        } else {
            let s = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
            send(s, PARTNER, PARTNER_PW, Some(generated_file(&dsn, bytes))).await
        };
        let oftp = start.elapsed();
        assert!(sent.file_done(), "{:?}", sent.end);
        let stored = station.partner_inbox().join(&dsn);
        assert_eq!(std::fs::metadata(&stored).unwrap().len(), bytes);
        std::fs::remove_file(&stored).unwrap();

        // Raw: the same bytes through a socket into a file, in this process.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink_path = dir.path().join(format!("raw.{name}"));
        let server_config = if tls {
            let snapshot = os4x::tls::server::load(&station.config.rd.tls).unwrap();
            Some(tokio_rustls::TlsAcceptor::from(snapshot.server))
        } else {
            None
        };
        let path = sink_path.clone();
        let start = Instant::now();
        let sink = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            match server_config {
                Some(acceptor) => raw_sink(acceptor.accept(s).await.unwrap(), &path).await,
                None => raw_sink(s, &path).await,
            }
        });
        if tls {
            raw_source(tls_connect(addr, &connector).await.unwrap(), bytes).await;
        } else {
            raw_source(tokio::net::TcpStream::connect(addr).await.unwrap(), bytes).await;
        }
        assert_eq!(sink.await.unwrap(), bytes);
        let raw = start.elapsed();
        std::fs::remove_file(&sink_path).unwrap();
        println!(
            "| {name}: {gib:.2} GiB via OFTP into the inbox / raw copy into a file | {:.2} s ({:.0} MiB/s) / {:.2} s ({:.0} MiB/s): OFTP at {:.0}% of raw |",
            oftp.as_secs_f64(),
            mib_s(bytes, oftp),
            raw.as_secs_f64(),
            mib_s(bytes, raw),
            100.0 * raw.as_secs_f64() / oftp.as_secs_f64()
        );
    }
}
