//! End-to-end send-side throughput, measured in one run with real
//! processes on 127.0.0.1 and fsync on both sides:
//!
//! 1. 10,000 files of 1 KiB: queued with `os4x send`'s code (copy into
//!    the outbox + fsync + one transaction each), then delivered by
//!    `os4xsqd` to `os4xrd_tcpip` until every entry is `delivered` (EERP
//!    back).
//! 2. One 1 GiB file the same way, and the same file copied over a plain
//!    TCP connection into a file that is then fsynced, as the baseline.
//!
//! Run: `cargo bench -p os4x-services --bench sq_throughput`
//! (`SQ_BENCH_FILES` and `SQ_BENCH_MIB` change the sizes,
//! `SQ_BENCH_SESSIONS` the sessions to the partner for the small files).

#[path = "../../tests/sq_support/mod.rs"]
mod sq_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use os4x::queue::EntryState;
use sq_support::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wait_delivered(a: &Station, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let counts = a.queue.counts().unwrap();
        let done = counts
            .iter()
            .find(|(s, _)| *s == EntryState::Delivered)
            .map_or(0, |(_, n)| *n);
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered in time: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let files = env_or("SQ_BENCH_FILES", 10_000);
    let sessions = env_or("SQ_BENCH_SESSIONS", 1) as u32;
    let mib = env_or("SQ_BENCH_MIB", 1024);

    // 1. Many small files.
    let (a, b) = pair("");
    a.add_route(B, b.tcp_port, |r| r.max_sessions = sessions.max(1));
    let _rd = b.start_rd();
    let src = a.file("SMALL", &content(1024, 1));
    // Each phase starts without dirty pages of the previous one.
    nix::unistd::sync();
    let t = Instant::now();
    for i in 0..files {
        a.send_in_process(&src, B, &format!("F{i:06}"));
    }
    let enqueue = t.elapsed();
    nix::unistd::sync();
    let t = Instant::now();
    let sqd = a.spawn(SQD);
    wait_delivered(&a, files as u64, Duration::from_secs(3600));
    let deliver = t.elapsed();
    drop(sqd);
    println!(
        "{files} files of 1 KiB, {sessions} session(s): queued in {:.2} s ({:.0} files/s); delivered with EERP in {:.2} s ({:.0} files/s end to end)",
        enqueue.as_secs_f64(),
        files as f64 / enqueue.as_secs_f64(),
        deliver.as_secs_f64(),
        files as f64 / deliver.as_secs_f64()
    );
    drop((a, b));

    // 2. One large file.
    let (a, b) = pair("");
    let _rd = b.start_rd();
    let len = mib << 20;
    let big = a.dir.path().join("BIG");
    {
        let mut f = std::fs::File::create(&big).unwrap();
        let chunk = content(1 << 20, 5);
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
    }
    nix::unistd::sync();
    let t = Instant::now();
    let id = a.send_in_process(&big, B, "BIG");
    let enqueue = t.elapsed();
    nix::unistd::sync();
    let t = Instant::now();
    let sqd = a.spawn(SQD);
    wait_delivered(&a, 1, Duration::from_secs(3600));
    let deliver = t.elapsed();
    drop(sqd);
    assert_eq!(a.entry(id).state, EntryState::Delivered);
    let mbs = |d: Duration| len as f64 / 1e6 / d.as_secs_f64();
    println!(
        "1 file of {mib} MiB: queued (copy + fsync) in {:.2} s ({:.0} MB/s); delivered with EERP in {:.2} s ({:.0} MB/s)",
        enqueue.as_secs_f64(),
        mbs(enqueue),
        deliver.as_secs_f64(),
        mbs(deliver)
    );

    // Baseline: the same file over a plain TCP connection, written and
    // fsynced at the other end.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let target = b.dir.path().join("baseline");
    let receiver = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut f = std::fs::File::create(&target).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).unwrap();
        }
        f.sync_all().unwrap();
    });
    nix::unistd::sync();
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut f = std::fs::File::open(&big).unwrap();
    std::io::copy(&mut f, &mut s).unwrap();
    drop(s);
    receiver.join().unwrap();
    let base = t.elapsed();
    println!(
        "baseline, plain TCP copy of the same file + fsync: {:.2} s ({:.0} MB/s)",
        base.as_secs_f64(),
        mbs(base)
    );
}
