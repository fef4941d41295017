//! `os4xsqd` (a real process) against OFTP responders run inside the test
//! over real TCP on 127.0.0.1: one that answers "retry later", one that
//! accepts files and answers them with an EERP or NERP in the same or a
//! later session, and one that is a second os4x station's send side (its
//! real database, queue and inbox through [`os4x::exchange::Exchange`])
//! holding a file for the polling station. Receipts a partner delivers in
//! a session it opens itself go to `os4xrd_tcpip` (a real process).

mod sq_support;

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use oftp2::codec::{Eerp, Nerp, Sfid, Ssid};
use oftp2::record::{Counts, RestartPoint};
use oftp2::session::{
    Accepted, Authenticator, Config as SessionConfig, FileOffer, Handlers, Inbox, IncomingFile,
    Outbox, OutgoingFile, Receipt, Refusal, Role, Session,
};
use oftp2::value::{
    EndFileRefusal, EndSessionReason, NerpReason, OdetteId, Password, StartFileRefusal,
};
use os4x::exchange::{Claimed, Exchange};
use os4x::inbox::{DiskStorage, InboxStore, SessionContext};
use os4x::partner::PartnerStore;
use os4x::queue::EntryState;
use sq_support::*;
use tokio::net::TcpListener;

const LONG: Duration = Duration::from_secs(60);

fn wait<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

struct Anyone;
impl Authenticator for Anyone {
    fn authenticate(&mut self, _: &Ssid) -> Result<(), EndSessionReason> {
        Ok(())
    }
}

type Receipts = Arc<Mutex<Vec<Receipt>>>;

/// Refuses the first offer with "retry later", accepts the next ones.
struct BusyOnce {
    offers: Arc<AtomicU32>,
    data: Arc<Mutex<Vec<u8>>>,
    receipts: Receipts,
}

impl Inbox for BusyOnce {
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        if self.offers.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Refusal::new(StartFileRefusal::Unspecified)
                .retry_later(true)
                .with_text("busy, try again later"));
        }
        let s = offer.sfid;
        let eerp = Eerp {
            dataset_name: s.dataset_name,
            timestamp: s.timestamp,
            user_data: s.user_data,
            destination: s.originator,
            originator: s.destination,
            hash: Bytes::new(),
            signature: Bytes::new(),
        };
        Ok(Accepted {
            writer: Box::new(Collect {
                data: self.data.clone(),
                receipts: self.receipts.clone(),
                eerp: Some(Receipt::Eerp(eerp)),
            }),
            restart: RestartPoint::START,
        })
    }
}

struct Collect {
    data: Arc<Mutex<Vec<u8>>>,
    receipts: Receipts,
    eerp: Option<Receipt>,
}

impl Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.data.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl IncomingFile for Collect {
    fn commit(&mut self, _: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        if let Some(r) = self.eerp.take() {
            self.receipts.lock().unwrap().push(r);
        }
        Ok(())
    }
}

struct ReceiptsOnly(Receipts);
impl Outbox for ReceiptsOnly {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        None
    }
    fn next_receipt(&mut self) -> Option<Receipt> {
        self.0.lock().unwrap().pop()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfna_retry_later_is_honoured_then_delivered() {
    let a = Station::new(A, "");
    a.add_partner(B, |_| {});
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    a.add_route(B, port, |r| {
        r.retry_base = 2;
        r.retry_max = 2;
    });
    let offers = Arc::new(AtomicU32::new(0));
    let data = Arc::new(Mutex::new(Vec::new()));
    let receipts = Receipts::default();
    {
        let (offers, data, receipts) = (offers.clone(), data.clone(), receipts.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let handlers = Handlers {
                    authenticator: Box::new(Anyone),
                    inbox: Box::new(BusyOnce {
                        offers: offers.clone(),
                        data: data.clone(),
                        receipts: receipts.clone(),
                    }),
                    outbox: Box::new(ReceiptsOnly(receipts.clone())),
                };
                let cfg = SessionConfig::new(
                    OdetteId::new(B).unwrap(),
                    Password::new(&password_of(B)).unwrap(),
                );
                let mut s = Session::new(Role::Responder, cfg, handlers).unwrap();
                tokio::spawn(async move {
                    let _ = oftp2::driver::run(&mut s, tcp, |_| {}).await;
                });
            }
        });
    }
    let payload = content(50_000, 3);
    let id = a.send(&a.file("BUSY", &payload), B, "BUSY");
    let _sqd = a.spawn(SQD);
    let e = wait(|| a.wait_entry(id, LONG, |e| e.state == EntryState::Retry));
    let err = e.last_error.clone().unwrap();
    assert!(
        err.contains("retry later") && err.contains("busy, try again later"),
        "{err}"
    );
    assert_eq!(e.attempts, 1);
    assert!(e.next_attempt_at > e.updated_at - 1, "{e:?}");
    let e = wait(|| a.wait_state(id, EntryState::Delivered, LONG));
    assert_eq!(e.attempts, 2, "{e:?}");
    assert_eq!(offers.load(Ordering::SeqCst), 2);
    assert!(*data.lock().unwrap() == payload);
}

/// Station B's send side as responder: checks A, hands it B's queued
/// files and due EERPs, stores A's files in B's inbox.
struct StationAuth {
    partners: PartnerStore,
    inbox: Arc<InboxStore>,
    ctx: Arc<SessionContext>,
}

impl Authenticator for StationAuth {
    fn authenticate(&mut self, ssid: &Ssid) -> Result<(), EndSessionReason> {
        let p = self
            .partners
            .get(ssid.id.as_str())
            .ok()
            .flatten()
            .ok_or(EndSessionReason::UserCodeNotKnown)?;
        if !p.password_matches(&ssid.password) {
            return Err(EndSessionReason::InvalidPassword);
        }
        self.inbox
            .load_due(&p.id, &mut self.ctx.receipts.lock().unwrap());
        let _ = self.ctx.partner.set(p);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fetches_the_file_the_partner_holds_for_us() {
    let a = Station::new(A, "");
    let b = Station::new(B, "");
    a.add_partner(B, |_| {});
    b.add_partner(A, |_| {});
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    a.add_route(B, port, |r| r.poll_interval = Some(1));

    // B holds a file for A (B has no route to A: it waits to be polled).
    let payload = content(2_500_000, 11);
    let id = b.send(&b.file("FORA", &payload), A, "FORA");

    let db = b.queue.db().clone();
    let inbox = InboxStore::new(
        db.clone(),
        Arc::new(DiskStorage),
        b.config.rd.inbox_dir.clone(),
        OdetteId::new(B).unwrap(),
        os4x::inbox::InboxLimits::from_config(&b.config.rd),
    );
    let queue = b.queue.clone();
    let sessions = Arc::new(AtomicU32::new(0));
    {
        let sessions = sessions.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = listener.accept().await.unwrap();
                let n = sessions.fetch_add(1, Ordering::SeqCst);
                let ctx = Arc::new(SessionContext {
                    peer: peer.to_string(),
                    session: u64::from(n),
                    ..SessionContext::default()
                });
                let mut exchange = Exchange::new(
                    queue.clone(),
                    inbox.clone(),
                    ctx.clone(),
                    Claimed::default(),
                    Arc::new(|| 0.5),
                );
                let handlers = Handlers {
                    authenticator: Box::new(StationAuth {
                        partners: PartnerStore::new(db.clone()),
                        inbox: inbox.clone(),
                        ctx: ctx.clone(),
                    }),
                    inbox: Box::new(inbox.session(ctx.clone())),
                    outbox: exchange.outbox(),
                };
                let cfg = SessionConfig::new(
                    OdetteId::new(B).unwrap(),
                    Password::new(&password_of(B)).unwrap(),
                );
                let mut s = Session::new(Role::Responder, cfg, handlers).unwrap();
                tokio::spawn(async move {
                    let r = oftp2::driver::run(&mut s, tcp, |e| exchange.on_event(e)).await;
                    exchange.finish(r.map_err(|e| e.to_string()));
                });
            }
        });
    }
    let _sqd = a.spawn(SQD);
    // B's entry is delivered: A fetched the file and sent the EERP back
    // in the same session.
    let e = wait(|| b.wait_state(id, EntryState::Delivered, LONG));
    assert_eq!(e.eerp, "eerp");
    assert!(std::fs::read(a.inbox_from(B).join("FORA")).unwrap() == payload);
    let received = os4x::usecase::received::list(&a.config, Some(B)).unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].eerp, "sent");
    // Polling continues at the interval with nothing to exchange.
    let before = sessions.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(sessions.load(Ordering::SeqCst) > before, "polls go on");
    assert_eq!(
        std::fs::read_dir(a.inbox_from(B))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_file())
            .count(),
        1,
        "fetched once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_partner_does_not_block_other_partners() {
    let a = Station::new(A, "");
    let c = Station::new(C, "");
    a.add_partner(B, |_| {});
    a.add_partner(C, |_| {});
    c.add_partner(A, |_| {});
    // B accepts connections and then says nothing (no SSRM), ever.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.add_route(B, listener.local_addr().unwrap().port(), |_| {});
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            held.push(tcp);
        }
    });
    a.add_route(C, c.tcp_port, |_| {});
    let _rd_c = c.start_rd();
    let stuck = a.send(&a.file("TOB", b"b"), B, "TOB");
    let _sqd = a.spawn(SQD);
    // Let the session to B start and hang, then queue for C.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ok = a.send(&a.file("TOC", b"c"), C, "TOC");
    wait(|| a.wait_state(ok, EntryState::Delivered, LONG));
    assert_eq!(
        a.entry(stuck).state,
        EntryState::Queued,
        "B still hangs (files are claimed once the session is up)"
    );
    // The response timer (20 s) ends B's session: the entry is retried.
    let e = wait(|| a.wait_entry(stuck, LONG, |e| e.state == EntryState::Retry));
    let err = e.last_error.unwrap();
    assert!(err.contains("Time out") && err.contains("I_WF_RM"), "{err}");
}

/// The EERP for a file received with `sfid`.
fn eerp_for(sfid: &Sfid) -> Receipt {
    Receipt::Eerp(Eerp {
        dataset_name: sfid.dataset_name,
        timestamp: sfid.timestamp,
        user_data: sfid.user_data,
        destination: sfid.originator,
        originator: sfid.destination,
        hash: Bytes::new(),
        signature: Bytes::new(),
    })
}

const NERP_TEXT: &str = "invoice rejected by the ERP system";

/// A NERP "34 File processing failed" for a file received with `sfid`.
fn nerp_for(sfid: &Sfid) -> Receipt {
    Receipt::Nerp(Nerp {
        dataset_name: sfid.dataset_name,
        timestamp: sfid.timestamp,
        destination: sfid.originator,
        originator: sfid.destination,
        creator: sfid.destination,
        reason: NerpReason::FileProcessingFailed,
        text: NERP_TEXT.to_owned(),
        hash: Bytes::new(),
        signature: Bytes::new(),
    })
}

/// A NERP for files named `BAD*`, an EERP for the others.
fn nerp_if_bad(sfid: &Sfid) -> Receipt {
    if sfid.dataset_name.as_str().starts_with("BAD") {
        nerp_for(sfid)
    } else {
        eerp_for(sfid)
    }
}

type MakeReceipt = fn(&Sfid) -> Receipt;

/// A partner that accepts every file and answers it with the receipt
/// `make` builds; receipts go out only in sessions numbered
/// `deliver_from` or later (1: the file's own session, after the turn
/// change), so a test can make them arrive in a later session.
#[derive(Clone)]
struct Receiver {
    make: MakeReceipt,
    deliver_from: u32,
    data: Arc<Mutex<Vec<u8>>>,
    held: Receipts,
    sessions: Arc<AtomicU32>,
    /// Session numbers in which files were accepted / receipts sent.
    accepted_in: Arc<Mutex<Vec<u32>>>,
    receipts_in: Arc<Mutex<Vec<u32>>>,
}

impl Receiver {
    fn new(make: MakeReceipt, deliver_from: u32) -> Receiver {
        Receiver {
            make,
            deliver_from,
            data: Arc::default(),
            held: Receipts::default(),
            sessions: Arc::default(),
            accepted_in: Arc::default(),
            receipts_in: Arc::default(),
        }
    }

    /// Answers every connection on `listener` as station B.
    fn serve(self, listener: TcpListener) {
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let session = self.sessions.fetch_add(1, Ordering::SeqCst) + 1;
                let handlers = Handlers {
                    authenticator: Box::new(Anyone),
                    inbox: Box::new(ReceiverSession {
                        r: self.clone(),
                        session,
                    }),
                    outbox: Box::new(ReceiverSession {
                        r: self.clone(),
                        session,
                    }),
                };
                let cfg = SessionConfig::new(
                    OdetteId::new(B).unwrap(),
                    Password::new(&password_of(B)).unwrap(),
                );
                let mut s = Session::new(Role::Responder, cfg, handlers).unwrap();
                tokio::spawn(async move {
                    let _ = oftp2::driver::run(&mut s, tcp, |_| {}).await;
                });
            }
        });
    }
}

struct ReceiverSession {
    r: Receiver,
    session: u32,
}

impl Inbox for ReceiverSession {
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        self.r.accepted_in.lock().unwrap().push(self.session);
        Ok(Accepted {
            writer: Box::new(Collect {
                data: self.r.data.clone(),
                receipts: self.r.held.clone(),
                eerp: Some((self.r.make)(offer.sfid)),
            }),
            restart: RestartPoint::START,
        })
    }
}

impl Outbox for ReceiverSession {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        None
    }
    fn next_receipt(&mut self) -> Option<Receipt> {
        if self.session < self.r.deliver_from {
            return None;
        }
        let r = self.r.held.lock().unwrap().pop()?;
        self.r.receipts_in.lock().unwrap().push(self.session);
        Some(r)
    }
}

/// Station A with partner B answered by `receiver`; B is polled every
/// second (the way a later session comes about).
async fn station_with_receiver(receiver: &Receiver) -> Station {
    let a = Station::new(A, "");
    a.add_partner(B, |_| {});
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    a.add_route(B, listener.local_addr().unwrap().port(), |r| {
        r.poll_interval = Some(1);
    });
    receiver.clone().serve(listener);
    a
}

/// Checks a NERP-failed entry, in the database and in `os4x queue --json`.
fn assert_failed_by_nerp(a: &Station, id: i64) {
    let e = a.entry(id);
    assert_eq!((e.state, e.eerp.as_str()), (EntryState::Failed, "nerp"));
    let want = format!("NERP from {B}: 34 (File processing failed) {NERP_TEXT}");
    assert_eq!(e.eerp_text.as_deref(), Some(&*want), "{e:?}");
    assert_eq!(e.last_error.as_deref(), Some(&*want), "{e:?}");
    assert_eq!(e.attempts, 1, "a NERP is final, not retried: {e:?}");
    assert_eq!(e.delivered_at, None);
    let (code, out, err) = a.os4x(&["queue", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let shown = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("entry {id} not listed: {out}"));
    assert_eq!(shown["state"], "failed", "{out}");
    assert_eq!(shown["eerp"], "nerp", "{out}");
    assert_eq!(shown["last_error"], want.as_str(), "{out}");
    // Listed under the failed ones too.
    let (_, out, _) = a.os4x(&["queue", "--state", "failed", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nerp_after_the_turn_change_fails_the_entry_with_the_reason() {
    let receiver = Receiver::new(nerp_for, 1);
    let a = station_with_receiver(&receiver).await;
    let payload = content(300_000, 5);
    let id = a.send(&a.file("REJECT", &payload), B, "REJECT");
    let _sqd = a.spawn(SQD);
    wait(|| a.wait_state(id, EntryState::Failed, LONG));
    assert!(
        *receiver.data.lock().unwrap() == payload,
        "the file went over"
    );
    assert_eq!(*receiver.accepted_in.lock().unwrap(), [1]);
    assert_eq!(*receiver.receipts_in.lock().unwrap(), [1], "same session");
    assert_failed_by_nerp(&a, id);
    // Later polls change nothing: the entry is not offered again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(receiver.sessions.load(Ordering::SeqCst) >= 2, "polls go on");
    assert_eq!(*receiver.accepted_in.lock().unwrap(), [1], "sent once");
    assert_failed_by_nerp(&a, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nerp_in_a_later_session_fails_the_sent_entry() {
    let receiver = Receiver::new(nerp_for, 2);
    let a = station_with_receiver(&receiver).await;
    let id = a.send(&a.file("LATER", b"rejected later"), B, "LATER");
    let _sqd = a.spawn(SQD);
    wait(|| a.wait_state(id, EntryState::Failed, LONG));
    assert_eq!(*receiver.accepted_in.lock().unwrap(), [1]);
    assert_eq!(
        *receiver.receipts_in.lock().unwrap(),
        [2],
        "a later session"
    );
    assert_failed_by_nerp(&a, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eerp_in_a_later_session_delivers_the_sent_entry() {
    let receiver = Receiver::new(eerp_for, 2);
    let a = station_with_receiver(&receiver).await;
    let payload = content(100_000, 6);
    let id = a.send(&a.file("EERPLATER", &payload), B, "EERPLATER");
    let _sqd = a.spawn(SQD);
    // The file's session ends without a receipt: sent, EERP awaited.
    let e = wait(|| {
        a.wait_entry(id, LONG, |e| {
            e.state == EntryState::SentAwaitingEerp || e.state == EntryState::Delivered
        })
    });
    if e.state == EntryState::SentAwaitingEerp {
        assert_eq!(e.eerp, "awaiting");
        assert!(e.sent_at.is_some());
    }
    let e = wait(|| a.wait_state(id, EntryState::Delivered, LONG));
    assert_eq!(e.eerp, "eerp");
    assert!(e.delivered_at.is_some() && e.last_error.is_none(), "{e:?}");
    assert!(*receiver.data.lock().unwrap() == payload);
    assert_eq!(*receiver.accepted_in.lock().unwrap(), [1]);
    assert_eq!(
        *receiver.receipts_in.lock().unwrap(),
        [2],
        "a later session"
    );
    assert_eq!(e.attempts, 1);
}

/// B calls A (A's `os4xrd_tcpip`) with nothing but `receipts`.
async fn deliver_receipts_by_calling(a: &Station, receipts: Vec<Receipt>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", a.tcp_port))
        .await
        .unwrap();
    let handlers = Handlers {
        authenticator: Box::new(Anyone),
        inbox: Box::new(RefuseAll),
        outbox: Box::new(ReceiptsOnly(Arc::new(Mutex::new(receipts)))),
    };
    let cfg = SessionConfig::new(
        OdetteId::new(B).unwrap(),
        Password::new(&password_of(B)).unwrap(),
    );
    let mut s = Session::new(Role::Initiator, cfg, handlers).unwrap();
    let end = oftp2::driver::run(&mut s, tcp, |_| {}).await.unwrap();
    assert!(end.is_normal(), "{end}");
}

struct RefuseAll;
impl Inbox for RefuseAll {
    fn accept(&mut self, _: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        Err(Refusal::new(StartFileRefusal::Unspecified))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_the_partner_delivers_in_its_own_session_reach_the_queue() {
    // B accepts both files in A's session and keeps the receipts (never
    // delivers them when called); then B calls A's os4xrd with them.
    let receiver = Receiver::new(nerp_if_bad, u32::MAX);
    let a = station_with_receiver(&receiver).await;
    let good = a.send(&a.file("GOOD", b"good"), B, "GOOD");
    let bad = a.send(&a.file("BAD", b"bad"), B, "BAD");
    let sqd = a.spawn(SQD);
    for id in [good, bad] {
        wait(|| a.wait_state(id, EntryState::SentAwaitingEerp, LONG));
    }
    drop(sqd);
    let _rd = wait(|| a.start_rd());
    let held = std::mem::take(&mut *receiver.held.lock().unwrap());
    assert_eq!(held.len(), 2);
    deliver_receipts_by_calling(&a, held).await;
    let e = wait(|| a.wait_state(good, EntryState::Delivered, LONG));
    assert_eq!(e.eerp, "eerp");
    wait(|| a.wait_state(bad, EntryState::Failed, LONG));
    assert_failed_by_nerp(&a, bad);
}
