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
