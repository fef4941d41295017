//! In-memory session throughput: a 1 GiB U-format file from an initiator
//! to a responder, both real [`Session`]s on one thread (one core), with
//! the largest buffer (99999) and credit (999), against a plain memcpy of
//! the same number of octets in the same run.
//!
//! `cargo bench -p oftp2 --bench session_throughput` (set `OFTP2_BENCH_MIB`
//! to change the size; default 1024).

use std::hint::black_box;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use oftp2::codec::{Sfid, Ssid};
use oftp2::record::{Counts, Layout, RestartPoint};
use oftp2::session::{
    Accepted, Authenticator, Config, Event, FileOffer, Handlers, Inbox, IncomingFile, Outbox,
    OutgoingFile, Receipt, Refusal, Role, Session,
};
use oftp2::value::{
    CipherSuite, DatasetName, Date, EndFileRefusal, EndSessionReason, FileCompression,
    FileEnvelope, OdetteId, Password, SecurityLevel, StartFileRefusal, Time, Timestamp, UserData,
};

/// Source pattern: 1 MiB minus a little, so buffers never align with it.
const PATTERN_LEN: usize = (1 << 20) - 3;

fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..PATTERN_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A file of `len` octets generated from the pattern while it is read.
struct Generated {
    pattern: &'static [u8],
    len: u64,
    pos: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = (self.pos % PATTERN_LEN as u64) as usize;
        let left = (self.len - self.pos) as usize;
        let n = buf.len().min(left).min(PATTERN_LEN - start);
        buf[..n].copy_from_slice(&self.pattern[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Generated {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        if let SeekFrom::Start(n) = to {
            self.pos = n;
        }
        Ok(self.pos)
    }
}

/// Receives the file: keeps a running checksum so the work is not
/// optimised away, and counts octets.
#[derive(Default)]
struct Sink {
    octets: u64,
    checksum: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.octets += buf.len() as u64;
        // One word per 4 KiB: enough to touch the data, cheap to compute.
        for chunk in buf.chunks(4096) {
            self.checksum = self.checksum.rotate_left(5) ^ u64::from(chunk[0]);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl IncomingFile for Sink {
    fn commit(&mut self, _: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        black_box(self.checksum);
        Ok(())
    }
}

struct AcceptAll;
impl Authenticator for AcceptAll {
    fn authenticate(&mut self, _: &Ssid) -> Result<(), EndSessionReason> {
        Ok(())
    }
}

struct SinkInbox;
impl Inbox for SinkInbox {
    fn accept(&mut self, _: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        Ok(Accepted {
            writer: Box::new(Sink::default()),
            restart: RestartPoint::START,
        })
    }
}

struct OneFile(Option<OutgoingFile>);
impl Outbox for OneFile {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        self.0.take()
    }
    fn next_receipt(&mut self) -> Option<Receipt> {
        None
    }
}

fn config(id: &str) -> Config {
    let mut c = Config::new(OdetteId::new(id).unwrap(), Password::new("BENCH").unwrap());
    c.buffer_size = 99_999;
    c.credit = 999;
    c.progress_interval = u64::MAX / 2;
    c
}

fn handlers(outbox: OneFile) -> Handlers {
    Handlers {
        authenticator: Box::new(AcceptAll),
        inbox: Box::new(SinkInbox),
        outbox: Box::new(outbox),
    }
}

fn sfid(len: u64) -> Sfid {
    Sfid {
        dataset_name: DatasetName::new("BENCH.1GIB").unwrap(),
        timestamp: Timestamp::new(
            Date::new(2026, 1, 1).unwrap(),
            Time::new(0, 0, 0, 1).unwrap(),
        ),
        user_data: UserData::EMPTY,
        destination: OdetteId::new("O0013BENCHRESP").unwrap(),
        originator: OdetteId::new("O0013BENCHINIT").unwrap(),
        format: Layout::unstructured().format(),
        max_record_size: 0,
        file_size: len.div_ceil(1024),
        original_file_size: len.div_ceil(1024),
        restart_position: 0,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    }
}

/// One complete session transferring `len` octets; returns the time and
/// the unit count the receiver confirmed.
fn session_run(pattern: &'static [u8], len: u64) -> (Duration, u64) {
    let file = OutgoingFile {
        sfid: sfid(len),
        data: Box::new(Generated {
            pattern,
            len,
            pos: 0,
        }),
    };
    let start = Instant::now();
    let mut i = Session::new(
        Role::Initiator,
        config("O0013BENCHINIT"),
        handlers(OneFile(Some(file))),
    )
    .unwrap();
    let mut r = Session::new(
        Role::Responder,
        config("O0013BENCHRESP"),
        handlers(OneFile(None)),
    )
    .unwrap();
    let mut i2r = BytesMut::with_capacity(1 << 20);
    let mut r2i = BytesMut::with_capacity(4096);
    let mut received = 0;
    loop {
        let a = r.poll_transmit(&mut r2i);
        i.handle_input(&mut r2i);
        let b = i.poll_transmit(&mut i2r);
        r.handle_input(&mut i2r);
        while let Some(e) = r.poll_event() {
            if let Event::FileDone { counts, .. } = e {
                received = counts.units;
            }
        }
        while i.poll_event().is_some() {}
        if a + b == 0 {
            break;
        }
    }
    assert!(i.end().is_some_and(|e| e.is_normal()), "{:?}", i.end());
    (start.elapsed(), received)
}

/// Copy `len` octets from the same pattern in 256 KiB pieces.
fn memcpy_run(pattern: &[u8], len: u64) -> Duration {
    let mut dst = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut pos = 0u64;
    while pos < len {
        let s = (pos % PATTERN_LEN as u64) as usize;
        let n = dst.len().min((len - pos) as usize).min(PATTERN_LEN - s);
        dst[..n].copy_from_slice(&pattern[s..s + n]);
        black_box(&mut dst);
        pos += n as u64;
    }
    start.elapsed()
}

fn mb_per_s(len: u64, t: Duration) -> f64 {
    len as f64 / t.as_secs_f64() / 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; a plain run of the binary works too.
    let mib: u64 = std::env::var("OFTP2_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let len = mib << 20;
    let pattern: &'static [u8] = Box::leak(pattern().into_boxed_slice());
    let runs = 3;
    println!("session_throughput: {mib} MiB U file, buffer 99999, credit 999, one thread");
    println!(
        "{:<6} {:>14} {:>14} {:>8}",
        "run", "session MB/s", "memcpy MB/s", "ratio"
    );
    let mut best = (0.0f64, 0.0f64);
    for run in 1..=runs {
        let (t, received) = session_run(pattern, len);
        assert_eq!(received, len, "receiver confirmed a different size");
        let m = memcpy_run(pattern, len);
        let (s, c) = (mb_per_s(len, t), mb_per_s(len, m));
        println!("{run:<6} {s:>14.0} {c:>14.0} {:>7.1}%", 100.0 * s / c);
        if s > best.0 {
            best = (s, c);
        }
    }
    println!(
        "best: session {:.0} MB/s, memcpy {:.0} MB/s, session/memcpy = {:.3} ({:.1}x slower)",
        best.0,
        best.1,
        best.0 / best.1,
        best.1 / best.0
    );
}
