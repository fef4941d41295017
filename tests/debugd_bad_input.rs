//! Bad input on os4xdebugd's port: garbage, oversized and slow frames,
//! connection floods. It must keep running, keep memory bounded, and keep
//! serving well-behaved senders.

mod debugd_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use debugd_support::*;
use os4x::debug::proto::{self, Frame, Record};

fn hello(pid: u32) -> Vec<u8> {
    proto::encode(&Frame::Hello {
        version: proto::VERSION,
        program: "os4xsqd".into(),
        pid,
        server_id: 0,
    })
    .unwrap()
}

fn record(msg: &str) -> Vec<u8> {
    proto::encode(&Frame::Record(Record {
        ts_us: 1,
        level: "DEBUG".into(),
        target: "test".into(),
        message: msg.into(),
        fields: Default::default(),
        spans: String::new(),
    }))
    .unwrap()
}

/// Reads until the server closes (greeting included); panics if it does
/// not within `limit`.
fn closed_within(mut s: TcpStream, limit: Duration) {
    s.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => assert!(start.elapsed() < limit, "not closed"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("server did not close the connection: {e}"),
        }
    }
}

#[test]
fn garbage_oversized_slow_and_floods_do_not_hurt() {
    let env = Env::new();
    let inst = env.instance(0, "frame_timeout = 1\nmax_connections = 8", "", "");
    let mut debugd = env.start(DEBUGD, &inst);
    let addr = env.debug_addr;
    let rss_before = debugd.rss_kb();

    // Garbage instead of a hello; a frame announcing 4 GiB; records
    // before hello; invalid JSON after hello.
    for payload in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        u32::MAX.to_be_bytes().to_vec(),
        record("no hello"),
        [hello(1), vec![0, 0, 0, 2, b'{', b'x']].concat(),
        [hello(1), hello(1)].concat(),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&payload).unwrap();
        closed_within(s, Duration::from_secs(10));
    }
    // Silent client (no hello) and slow client (half a frame) are closed
    // after frame_timeout.
    closed_within(TcpStream::connect(addr).unwrap(), Duration::from_secs(10));
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(&hello(2)).unwrap();
    let r = record("slow");
    slow.write_all(&r[..r.len() / 2]).unwrap();
    closed_within(slow, Duration::from_secs(10));

    // Many announced-but-never-sent 64 KiB frames and a connection flood:
    // memory stays bounded (at most max_connections frames buffered).
    for _ in 0..20 {
        let mut held = Vec::new();
        for _ in 0..16 {
            if let Ok(mut s) = TcpStream::connect(addr) {
                let _ = s.write_all(
                    &[
                        hello(3),
                        (proto::MAX_FRAME as u32).to_be_bytes().to_vec(),
                        vec![b'x'; 60_000],
                    ]
                    .concat(),
                );
                held.push(s);
            }
        }
        drop(held);
    }
    assert!(debugd.is_alive(), "os4xdebugd died; log:\n{}", debugd.log());
    let growth = debugd.rss_kb().saturating_sub(rss_before);
    assert!(growth < 64 * 1024, "RSS grew by {growth} kB");

    // A well-behaved sender still gets through. A connect may still land
    // while the flood's slots are being freed (then it is closed at once),
    // so retry until the record is stored.
    let mut held = Vec::new();
    eventually("the good record", || {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(&[hello(4242), record("still works")].concat());
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
        ring_records(&env.state)
            .iter()
            .any(|r| r.pid == 4242 && r.record.message == "still works")
            .then_some(())
    });
    drop(held);
    let log = debugd.log();
    assert!(log.contains("broke the debug protocol"), "{log}");
    assert_eq!(debugd.stop(), Some(0));
}
