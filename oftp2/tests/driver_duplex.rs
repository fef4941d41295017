//! Sessions run by the tokio driver over `tokio::io::duplex` pipes.

mod session_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oftp2::driver;
use oftp2::record::Layout;
use oftp2::session::{Config, Event, Handlers, Origin, Role, Session, SessionEnd};
use oftp2::value::EndSessionReason;
use session_support::*;

async fn run_pair(
    initiator: (Config, Handlers),
    responder: (Config, Handlers),
    pipe_size: usize,
) -> ((SessionEnd, Vec<Event>), (SessionEnd, Vec<Event>)) {
    let (a, b) = tokio::io::duplex(pipe_size);
    let mut i = Session::new(Role::Initiator, initiator.0, initiator.1).unwrap();
    let mut r = Session::new(Role::Responder, responder.0, responder.1).unwrap();
    let ti = tokio::spawn(async move {
        let mut events = Vec::new();
        let end = driver::run(&mut i, a, |e| events.push(e)).await.unwrap();
        (end, events)
    });
    let tr = tokio::spawn(async move {
        let mut events = Vec::new();
        let end = driver::run(&mut r, b, |e| events.push(e)).await.unwrap();
        (end, events)
    });
    (ti.await.unwrap(), tr.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_both_ways_over_a_duplex_pipe() {
    let i_store = new_store();
    let r_store = new_store();
    let sizes = [0usize, 1, 99_998, 99_999, 100_000, 3 * 99_999, 10_000_000];
    let files = sizes
        .iter()
        .map(|&n| {
            mem_file(
                &format!("I{n}"),
                Layout::unstructured(),
                content(n as u64, n),
            )
        })
        .collect();
    let back = vec![
        mem_file("R-F", Layout::fixed(128).unwrap(), content(1, 128 * 500)),
        mem_file("R-T", Layout::text(), b"HELLO\r\nWORLD\r\n".to_vec()),
    ];
    let ((ie, _), (re, revents)) = run_pair(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(i_store.clone(), Policy::Store),
                TestOutbox::with_files(files),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(r_store.clone(), Policy::Store),
                TestOutbox::with_files(back),
            ),
        ),
        64 * 1024,
    )
    .await;
    assert!(ie.is_normal(), "{ie}");
    assert!(re.is_normal(), "{re}");
    for &n in &sizes {
        assert!(
            stored(&r_store, &format!("I{n}")).data == content(n as u64, n),
            "file of {n} octets"
        );
    }
    assert_eq!(stored(&i_store, "R-F").data, content(1, 128 * 500));
    assert_eq!(stored(&i_store, "R-T").data, b"HELLO\r\nWORLD\r\n");
    assert_eq!(done_counts(&revents).len(), sizes.len() + 2);
}

/// 1 GiB generated on the fly by the sender and checked on the fly by the
/// receiver; neither side ever holds the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gibibyte_streamed() {
    const GIB: u64 = 1 << 30;
    let report = Arc::new(Mutex::new(CheckReport::default()));
    let ((ie, ievents), (re, _)) = run_pair(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![pattern_file("ONE-GIB", GIB)]),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Check(report.clone())),
                TestOutbox::default(),
            ),
        ),
        1 << 20,
    )
    .await;
    assert!(ie.is_normal() && re.is_normal(), "{ie} / {re}");
    let report = report.lock().unwrap();
    assert_eq!(report.first_mismatch, None);
    assert_eq!(report.received, GIB);
    assert_eq!(report.committed.unwrap().units, GIB);
    assert_eq!(done_counts(&ievents)[0].units, GIB);
}

#[tokio::test]
async fn silent_partner_times_out() {
    let (a, _silent_end) = tokio::io::duplex(4096);
    let mut c = config(INITIATOR_ID);
    c.response_timeout = Duration::from_millis(200);
    c.disconnect_timeout = Duration::from_millis(100);
    let mut i = Session::new(
        Role::Initiator,
        c,
        handlers(
            RESPONDER_ID,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), driver::run(&mut i, a, |_| {}))
        .await
        .expect("driver must give up by itself")
        .unwrap();
    assert_eq!(
        (end.origin, end.reason),
        (Origin::Local, EndSessionReason::TimeOut)
    );
    assert!(i.is_closed());
}

#[tokio::test]
async fn partner_hanging_up_is_reported() {
    let (a, b) = tokio::io::duplex(4096);
    drop(b);
    let mut r = Session::new(
        Role::Responder,
        config(RESPONDER_ID),
        handlers(
            INITIATOR_ID,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .unwrap();
    match driver::run(&mut r, a, |_| {}).await {
        Ok(end) => assert_eq!(end.origin, Origin::Network),
        // Writing SSRM into a closed pipe fails: also a network end.
        Err(driver::DriverError::Io(_)) => {
            assert_eq!(r.end().unwrap().origin, Origin::Network)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_over_the_driver() {
    let mut c = config(INITIATOR_ID);
    c.password = oftp2::value::Password::new("NOPE").unwrap();
    let ((ie, _), (re, _)) = run_pair(
        (
            c,
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
        (
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::default(),
            ),
        ),
        4096,
    )
    .await;
    assert_eq!(
        (ie.origin, ie.reason),
        (Origin::Remote, EndSessionReason::InvalidPassword)
    );
    assert_eq!(
        (re.origin, re.reason),
        (Origin::Local, EndSessionReason::InvalidPassword)
    );
}

/// The sender reads its file only as fast as the connection drains: the
/// distance between what was read from the source and what the receiver
/// has written stays bounded by buffers, not by the file size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_read_ahead() {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::sync::atomic::{AtomicU64, Ordering};

    const LEN: u64 = 64 << 20;
    let read_pos = Arc::new(AtomicU64::new(0));
    let max_lag = Arc::new(AtomicU64::new(0));

    struct Tracked(PatternFile, Arc<AtomicU64>);
    impl Read for Tracked {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.store(self.0.pos, Ordering::SeqCst);
            Ok(n)
        }
    }
    impl Seek for Tracked {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.0.seek(to)
        }
    }
    struct Lagging {
        written: u64,
        read_pos: Arc<AtomicU64>,
        max_lag: Arc<AtomicU64>,
    }
    impl Write for Lagging {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.written += b.len() as u64;
            let lag = self.read_pos.load(Ordering::SeqCst) - self.written;
            self.max_lag.fetch_max(lag, Ordering::SeqCst);
            // A slow disk: the sender must wait for us, not buffer ahead.
            std::thread::sleep(Duration::from_micros(50));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl oftp2::session::IncomingFile for Lagging {
        fn commit(
            &mut self,
            _: oftp2::record::Counts,
        ) -> Result<(), oftp2::session::Refusal<oftp2::value::EndFileRefusal>> {
            Ok(())
        }
    }
    struct LagInbox(Arc<AtomicU64>, Arc<AtomicU64>);
    impl oftp2::session::Inbox for LagInbox {
        fn accept(
            &mut self,
            _: &oftp2::session::FileOffer<'_>,
        ) -> Result<oftp2::session::Accepted, oftp2::session::Refusal<oftp2::value::StartFileRefusal>>
        {
            Ok(oftp2::session::Accepted {
                writer: Box::new(Lagging {
                    written: 0,
                    read_pos: self.0.clone(),
                    max_lag: self.1.clone(),
                }),
                restart: oftp2::record::RestartPoint::START,
            })
        }
    }

    let file = oftp2::session::OutgoingFile {
        sfid: sfid("SLOW", Layout::unstructured(), LEN),
        data: Box::new(Tracked(PatternFile::new(LEN), read_pos.clone())),
    };
    let mut r = handlers(
        INITIATOR_ID,
        TestInbox::new(new_store(), Policy::Store),
        TestOutbox::default(),
    );
    r.inbox = Box::new(LagInbox(read_pos.clone(), max_lag.clone()));
    let ((ie, _), (re, _)) = run_pair(
        (
            config(INITIATOR_ID),
            handlers(
                RESPONDER_ID,
                TestInbox::new(new_store(), Policy::Store),
                TestOutbox::with_files(vec![file]),
            ),
        ),
        (config(RESPONDER_ID), r),
        64 * 1024,
    )
    .await;
    assert!(ie.is_normal() && re.is_normal(), "{ie} / {re}");
    let lag = max_lag.load(Ordering::SeqCst);
    // Pipe 64 KiB + transmit chunk (256 KiB + a buffer) + source read-ahead
    // (256 KiB) + receive buffer: about 1 MiB. The credit window alone
    // would allow 999 x 100 KB.
    eprintln!("largest read-ahead: {lag} octets");
    assert!(
        lag < 2 << 20,
        "sender ran {lag} octets ahead of the receiver"
    );
    assert!(lag > 0);
}
