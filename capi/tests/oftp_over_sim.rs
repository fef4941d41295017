//! OFTP sessions (the real `oftp2` driver) over calls through the simulated
//! ISDN exchange: the B3 byte stream stands in for TCP unchanged.

#[path = "../../oftp2/tests/session_support/mod.rs"]
mod session_support;

use std::time::Duration;

use capi::config::B3Mode;
use capi::message::cip;
use capi::sim::Sim;
use capi::stream::{Application, Dial};
use capi::transport::RegisterParams;
use oftp2::driver;
use oftp2::record::Layout;
use oftp2::session::{Event, Handlers, Origin, Role, Session, SessionEnd};
use session_support::*;

const T: Duration = Duration::from_secs(60);

/// Controller 1 ("4930100") dials controller 2 ("4989200"), which accepts.
async fn line() -> (Sim, Application, Application) {
    let sim = Sim::new();
    sim.add_controller(&["4930100"], 2);
    sim.add_controller(&["4989200"], 2);
    let caller = Application::start(sim.register(RegisterParams::default()));
    let callee = Application::start(sim.register(RegisterParams::default()));
    callee
        .listen(2, cip::mask(cip::UNRESTRICTED_DIGITAL))
        .await
        .unwrap();
    (sim, caller, callee)
}

fn dial(mode: B3Mode) -> Dial {
    Dial {
        controller: 1,
        called: "4989200".into(),
        calling: Some("4930100".into()),
        b_protocol: mode.b_protocol(),
    }
}

/// One call: initiator session on the caller's stream, responder on the
/// callee's; returns both ends and events, and the callee application.
async fn session_call(
    mode: B3Mode,
    caller: &Application,
    mut callee: Application,
    initiator: Handlers,
    responder: Handlers,
) -> (
    (SessionEnd, Vec<Event>),
    (SessionEnd, Vec<Event>),
    Application,
) {
    let r = tokio::spawn(async move {
        let call = callee.next_call().await.unwrap();
        assert_eq!(call.calling.as_deref(), Some("4930100"));
        let stream = call.accept(mode.b_protocol()).await.unwrap();
        assert_eq!(stream.b3_mode(), mode);
        let mut s = Session::new(Role::Responder, config(RESPONDER_ID), responder).unwrap();
        let mut events = Vec::new();
        let end = driver::run(&mut s, stream, |e| events.push(e))
            .await
            .unwrap();
        ((end, events), callee)
    });
    let stream = caller.dial(dial(mode)).await.unwrap();
    assert_eq!(stream.b3_mode(), mode);
    if mode == B3Mode::Iso8208 {
        // Appendix D.1: packet size 128, window 7, both directions.
        let n = stream.x25().unwrap();
        assert_eq!(
            (n.tx_packet, n.rx_packet, n.tx_window, n.rx_window),
            (128, 128, 7, 7)
        );
    }
    let mut s = Session::new(Role::Initiator, config(INITIATOR_ID), initiator).unwrap();
    let mut events = Vec::new();
    let end = tokio::time::timeout(T, driver::run(&mut s, stream, |e| events.push(e)))
        .await
        .expect("initiator session ends")
        .unwrap();
    let (r, callee) = tokio::time::timeout(T, r).await.unwrap().unwrap();
    ((end, events), r, callee)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_both_ways_over_a_simulated_isdn_call() {
    files_both_ways(B3Mode::Transparent).await;
}

/// RFC 5024 Appendix D: X.75 + ISO 8208, exchange buffers as M-bit
/// packet sequences of 128 octets, no STH on the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_both_ways_over_iso8208() {
    files_both_ways(B3Mode::Iso8208).await;
}

async fn files_both_ways(mode: B3Mode) {
    let (_sim, caller, callee) = line().await;
    let (i_store, r_store) = (new_store(), new_store());
    let sizes = [0usize, 1, 2048, 99_999, 1_000_000];
    let files = sizes
        .iter()
        .map(|&n| {
            mem_file(
                &format!("ISDN{n}"),
                Layout::unstructured(),
                content(n as u64, n),
            )
        })
        .collect();
    let back = vec![mem_file(
        "BACK",
        Layout::text(),
        b"HELLO\r\nISDN\r\n".to_vec(),
    )];
    let ((ie, _), (re, revents), _callee) = session_call(
        mode,
        &caller,
        callee,
        handlers(
            RESPONDER_ID,
            TestInbox::new(i_store.clone(), Policy::Store),
            TestOutbox::with_files(files),
        ),
        handlers(
            INITIATOR_ID,
            TestInbox::new(r_store.clone(), Policy::Store),
            TestOutbox::with_files(back),
        ),
    )
    .await;
    assert!(ie.is_normal(), "{ie}");
    assert!(re.is_normal(), "{re}");
    for &n in &sizes {
        assert!(
            stored(&r_store, &format!("ISDN{n}")).data == content(n as u64, n),
            "file of {n} octets"
        );
    }
    assert_eq!(stored(&i_store, "BACK").data, b"HELLO\r\nISDN\r\n");
    assert_eq!(done_counts(&revents).len(), sizes.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_drop_mid_file_then_restart_on_the_next_call() {
    line_drop_then_restart(B3Mode::Transparent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_drop_mid_file_then_restart_over_iso8208() {
    line_drop_then_restart(B3Mode::Iso8208).await;
}

async fn line_drop_then_restart(mode: B3Mode) {
    let (sim, caller, mut callee) = line().await;
    let store = new_store();
    let data = content(7, 3_000_000);

    // First call: the line breaks once part of the file has arrived.
    let watch = {
        let (store, sim) = (store.clone(), sim.clone());
        tokio::spawn(async move {
            loop {
                if stored(&store, "RESTART").data.len() > 400_000 {
                    return sim.exchange().break_line(1);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let r_store = store.clone();
    let r = tokio::spawn(async move {
        let call = callee.next_call().await.unwrap();
        let stream = call.accept(mode.b_protocol()).await.unwrap();
        let mut s = Session::new(
            Role::Responder,
            config(RESPONDER_ID),
            handlers(
                INITIATOR_ID,
                TestInbox::new(r_store, Policy::Store),
                TestOutbox::default(),
            ),
        )
        .unwrap();
        let end = driver::run(&mut s, stream, |_| {}).await;
        (end, callee)
    });
    let stream = caller.dial(dial(mode)).await.unwrap();
    let mut s = Session::new(
        Role::Initiator,
        config(INITIATOR_ID),
        handlers(
            RESPONDER_ID,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::with_files(vec![mem_file(
                "RESTART",
                Layout::unstructured(),
                data.clone(),
            )]),
        ),
    )
    .unwrap();
    let mut events = Vec::new();
    let end = tokio::time::timeout(T, driver::run(&mut s, stream, |e| events.push(e)))
        .await
        .unwrap();
    assert_eq!(watch.await.unwrap(), 1, "one call broken");
    // The session sees the connection vanish: end of stream while reading
    // (a network-side end), or a broken pipe while writing, as on TCP.
    match &end {
        Ok(e) => assert_eq!(e.origin, Origin::Network, "{e}"),
        Err(e) => assert!(format!("{e:?}").contains("BrokenPipe"), "{e:?}"),
    }
    let (_rend, callee) = tokio::time::timeout(T, r).await.unwrap().unwrap();
    let partial = stored(&store, "RESTART");
    assert!(partial.committed.is_none());
    assert!(partial.data.len() >= 400_000 && partial.data.len() < data.len());
    assert_eq!(partial.data[..], data[..partial.data.len()]);

    // Second call: the sender offers a restart; the file completes identical.
    let mut file = mem_file("RESTART", Layout::unstructured(), data.clone());
    file.sfid.restart_position = 2_900;
    let ((ie, ievents), (re, _), _callee) = session_call(
        mode,
        &caller,
        callee,
        handlers(
            RESPONDER_ID,
            TestInbox::new(new_store(), Policy::Store),
            TestOutbox::with_files(vec![file]),
        ),
        handlers(
            INITIATOR_ID,
            TestInbox::new(store.clone(), Policy::Store),
            TestOutbox::default(),
        ),
    )
    .await;
    assert!(ie.is_normal() && re.is_normal(), "{ie} / {re}");
    let restart_offset = ievents
        .iter()
        .find_map(|e| match e {
            Event::FileStarted { restart_offset, .. } => Some(*restart_offset),
            _ => None,
        })
        .unwrap();
    assert!(
        restart_offset > 0,
        "the second call resumed, not restarted from 0"
    );
    let fin = stored(&store, "RESTART");
    assert!(fin.data == data, "restarted file differs");
    assert!(fin.committed.is_some());
}
