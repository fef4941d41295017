//! Issue 14: what an attacker on 127.0.0.1 tried, each answered. The
//! receive daemon runs in process over real sockets (`rd_support`), the
//! send daemon and restarts as real processes (`sq_support`).

mod rd_support;
mod sq_support;

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use oftp2::codec::Eerp;
use oftp2::session::{Event, OutgoingFile, Receipt};
use oftp2::value::{
    DatasetName, EndSessionReason, FileCompression, FileEnvelope, OdetteId, StartFileRefusal,
    UserData,
};
use os4x::inbox::{DiskStorage, InboxLimits, InboxStore, Storage, StoredFile};
use os4x::partner::{parse_ids, PartnerStore};
use os4x::queue::{EntryState, NewFile, QueueStore};
use os4x::rd::Transport;
use rd_support::*;

const VICTIM: &str = "O0013000000VICTIM";

/// The station's inbox on the real file system, with its `[rd]` limits.
fn inbox_of(station: &Station) -> Arc<InboxStore> {
    InboxStore::new(
        station.db.clone(),
        Arc::new(DiskStorage),
        station.inbox(),
        OdetteId::new(LOCAL).unwrap(),
        InboxLimits::from_config(&station.config.rd),
    )
}

/// A TCP connection to `addr` from the loopback address `source`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((source, 0))).unwrap();
    s.connect(addr).await.unwrap()
}

fn set_partner(station: &Station, id: &str, f: impl FnOnce(&mut os4x::partner::Partner)) {
    let store = PartnerStore::new(station.db.clone());
    let mut p = store.get(id).unwrap().unwrap();
    f(&mut p);
    store.update(&p).unwrap();
}

fn add_other_partner(station: &Station, id: &str) {
    let p = os4x::partner::Partner::new(
        OdetteId::new(id).unwrap(),
        oftp2::value::Password::new("OTHERPW").unwrap(),
        oftp2::value::Password::new("OTHEROUT").unwrap(),
    );
    PartnerStore::new(station.db.clone()).add(&p).unwrap();
}

// ---------------------------------------------------------------------
// 1. Receipts settle only the entries of the partner that delivers them.

/// A file queued for `to` and sent (awaiting its EERP): the entry and the
/// EERP that would answer it.
fn sent_entry(station: &Station, to: &str, dsn: &str) -> (QueueStore, i64, Eerp) {
    let q = QueueStore::open(station.db.clone()).unwrap();
    let src = station.dir.path().join(dsn);
    std::fs::write(&src, b"payload").unwrap();
    let e = q
        .enqueue(
            &NewFile {
                partner: OdetteId::new(to).unwrap(),
                source: src,
                dataset_name: DatasetName::new(dsn).unwrap(),
                format: oftp2::value::RecordFormat::Unstructured,
                max_record_size: 0,
                priority: 0,
                user_data: UserData::EMPTY,
                description: String::new(),
                destination: None,
            },
            &OdetteId::new(LOCAL).unwrap(),
            &station.dir.path().join("outbox"),
        )
        .unwrap();
    let eerp = Eerp {
        dataset_name: DatasetName::new(dsn).unwrap(),
        timestamp: e.file_timestamp.parse().unwrap(),
        user_data: UserData::EMPTY,
        destination: OdetteId::new(LOCAL).unwrap(),
        originator: OdetteId::new(to).unwrap(),
        hash: Bytes::new(),
        signature: Bytes::new(),
    };
    (q, e.id, eerp)
}

fn mark_sent(q: &QueueStore, id: i64, partner: &str) {
    let c = q.claim_next(partner, 77).unwrap().unwrap();
    assert_eq!(c.id, id);
    q.sent(id).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_settles_only_entries_of_the_partner_that_delivers_it() {
    let station = Station::new("");
    station.add_partner(|_| {});
    add_other_partner(&station, VICTIM);
    let (q, id, eerp) = sent_entry(&station, VICTIM, "FORVICTIM");
    mark_sent(&q, id, VICTIM);
    let rd = start(&station, Transport::Tcp).await;

    // PARTNER forges the EERP of a file we sent to VICTIM.
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send_with_receipts(
        tcp,
        PARTNER,
        PARTNER_PW,
        None,
        vec![Receipt::Eerp(eerp.clone())],
    )
    .await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    let e = q.get(id).unwrap().unwrap();
    assert_eq!(
        (e.state, e.eerp.as_str()),
        (EntryState::SentAwaitingEerp, "awaiting"),
        "a forged receipt settled another partner's file"
    );
    assert!(e.receipt_verification.is_none(), "nothing recorded on it");

    // A NERP for a file not sent yet (the right partner): nothing either.
    // (Waiting for a later attempt, so the session does not send it.)
    let (q2, id2, eerp2) = sent_entry(&station, PARTNER, "NOTSENT");
    station
        .db
        .lock()
        .execute(
            "UPDATE os4x_send_queue SET state = 'retry', next_attempt_at = next_attempt_at + 86400 \
             WHERE id = ?1",
            [id2],
        )
        .unwrap();
    let nerp = Receipt::Nerp(oftp2::codec::Nerp {
        dataset_name: eerp2.dataset_name,
        timestamp: eerp2.timestamp,
        destination: eerp2.destination,
        originator: eerp2.originator,
        creator: eerp2.originator,
        reason: oftp2::value::NerpReason::Unspecified,
        text: "forged".into(),
        hash: Bytes::new(),
        signature: Bytes::new(),
    });
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    send_with_receipts(tcp, PARTNER, PARTNER_PW, None, vec![nerp]).await;
    let e2 = q2.get(id2).unwrap().unwrap();
    assert_eq!((e2.state, e2.eerp.as_str()), (EntryState::Retry, "none"));

    // VICTIM names PARTNER as its receipt forwarder: now it settles.
    set_partner(&station, VICTIM, |p| {
        p.receipts_via = parse_ids(PARTNER).unwrap()
    });
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    send_with_receipts(tcp, PARTNER, PARTNER_PW, None, vec![Receipt::Eerp(eerp)]).await;
    let e = q.get(id).unwrap().unwrap();
    assert_eq!((e.state, e.eerp.as_str()), (EntryState::Delivered, "eerp"));
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_receipt_does_not_settle_a_file_that_asked_for_a_signed_one() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let (q, id, eerp) = sent_entry(&station, PARTNER, "WANTSIGNED");
    let mut p = q.protection_of(id).unwrap().unwrap();
    p.signed_eerp_requested = true;
    p.cipher_suite = 2;
    p.file_hash = Some(vec![1; 20]);
    q.set_protection(&p).unwrap();
    mark_sent(&q, id, PARTNER);
    let rd = start(&station, Transport::Tcp).await;
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    send_with_receipts(tcp, PARTNER, PARTNER_PW, None, vec![Receipt::Eerp(eerp)]).await;
    let e = q.get(id).unwrap().unwrap();
    assert_eq!(e.state, EntryState::SentAwaitingEerp);
    assert_eq!(e.receipt_verification.as_deref(), Some("unsigned"));
    rd.stop().await;
}

/// The send side applies the same rule: a receipt arriving in a session
/// os4xsqd opened (the same `Exchange` its sessions run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_side_refuses_receipts_for_other_partners_files_too() {
    let station = Station::new("");
    station.add_partner(|_| {});
    add_other_partner(&station, VICTIM);
    let (q, id, eerp) = sent_entry(&station, VICTIM, "SQSIDE");
    mark_sent(&q, id, VICTIM);
    let inbox = inbox_of(&station);
    let ctx = Arc::new(os4x::inbox::SessionContext::default());
    let partner = PartnerStore::new(station.db.clone())
        .get(PARTNER)
        .unwrap()
        .unwrap();
    ctx.partner.set(partner).unwrap();
    let mut x = os4x::exchange::Exchange::new(
        q.clone(),
        inbox,
        ctx.clone(),
        Default::default(),
        Arc::new(|| 0.5),
    );
    x.on_event(Event::ReceiptReceived(Receipt::Eerp(eerp.clone())));
    assert_eq!(
        q.get(id).unwrap().unwrap().state,
        EntryState::SentAwaitingEerp
    );
    // From the partner the file went to, it settles.
    let victim = PartnerStore::new(station.db.clone())
        .get(VICTIM)
        .unwrap()
        .unwrap();
    let ctx = Arc::new(os4x::inbox::SessionContext::default());
    ctx.partner.set(victim).unwrap();
    let inbox = inbox_of(&station);
    let mut x =
        os4x::exchange::Exchange::new(q.clone(), inbox, ctx, Default::default(), Arc::new(|| 0.5));
    x.on_event(Event::ReceiptReceived(Receipt::Eerp(eerp)));
    assert_eq!(q.get(id).unwrap().unwrap().state, EntryState::Delivered);
}

// ---------------------------------------------------------------------
// 2. Silent connections cannot keep a partner out; refusals are summed up.

/// Log lines of the server, captured (current-thread runtime: every task
/// logs on this thread).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn silent_connections_do_not_keep_a_partner_out_and_are_logged_as_a_summary() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let station = Station::new(
        "[rd]\nmax_sessions = 2\nmax_pending = 32\nmax_pending_per_ip = 8\n\
         accept_rate = 1000\naccept_burst = 1000\nrefusal_log_interval = 1\n",
    );
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;

    // 200 silent connections from one address, one each from 10 others:
    // more than max_sessions, none of them says anything.
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(connect_from([127, 0, 0, 2], rd.addr).await);
    }
    for i in 0..10u8 {
        silent.push(connect_from([127, 0, 1, 10 + i], rd.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The partner still gets its session and delivers a file.
    let data = content(100_000, 3);
    let sent = send_tcp(rd.addr, "NOTKEPTOUT", data.clone(), 0).await;
    assert!(
        sent.end.as_ref().unwrap().is_normal(),
        "partner kept out: {:?}",
        sent.end
    );
    assert_eq!(
        std::fs::read(station.partner_inbox().join("NOTKEPTOUT")).unwrap(),
        data
    );
    // Let the summary interval pass.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(silent);
    rd.stop().await;
    let text = log.text();
    let summaries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("connections refused"))
        .collect();
    assert!(
        !summaries.is_empty() && summaries.len() <= 3,
        "one summary per interval: {summaries:#?}"
    );
    assert!(
        summaries[0].contains("192 over the per-address limit"),
        "{}",
        summaries[0]
    );
    let warn_lines = text.lines().filter(|l| l.contains("WARN")).count();
    assert!(warn_lines < 10, "{warn_lines} WARN lines:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_log_in_is_closed_after_the_login_timeout() {
    let station = Station::new("[rd]\nidle_timeout = 1\n");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let mut c = connect_from([127, 0, 0, 3], rd.addr).await;
    let mut buf = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt;
        c.read_to_end(&mut buf).await
    })
    .await;
    assert!(read.is_ok(), "still open after 20 s");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // It saw SSRM and nothing else.
    assert!(buf.windows(1).count() > 0);
    rd.stop().await;
}

// ---------------------------------------------------------------------
// 3. Password guessing: late answers; transport rules before the password.

async fn login(addr: SocketAddr, source: [u8; 4], password: &str) -> (Sent, Duration) {
    let tcp = connect_from(source, addr).await;
    let t = Instant::now();
    let sent = send(tcp, PARTNER, password, None).await;
    (sent, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_answered_later_and_later() {
    let station = Station::new(
        "[rd]\nauth_failure_delay_ms = 300\nauth_failure_delay_max = 2\nauth_failure_window = 600\n",
    );
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let mut last = Duration::ZERO;
    for (i, at_least) in [300u64, 600, 1200, 2000].into_iter().enumerate() {
        let (sent, took) = login(rd.addr, [127, 0, 0, 4], "GUESS").await;
        assert_eq!(sent.reason(), Some(EndSessionReason::InvalidPassword));
        assert!(
            took >= Duration::from_millis(at_least),
            "failure {} answered after {took:?}",
            i + 1
        );
        last = took;
    }
    assert!(last < Duration::from_secs(10), "capped: {last:?}");
    // Another address guessing the same partner pays the partner's count.
    let (sent, took) = login(rd.addr, [127, 0, 0, 5], "GUESS2").await;
    assert_eq!(sent.reason(), Some(EndSessionReason::InvalidPassword));
    assert!(took >= Duration::from_millis(2000), "{took:?}");
    // The partner itself logs in as before.
    let (sent, _) = login(rd.addr, [127, 0, 0, 1], PARTNER_PW).await;
    assert!(sent.end.unwrap().is_normal());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_partner_on_the_plain_port_gets_esid_12_whatever_the_password() {
    let station = Station::new("[rd]\nauth_failure_delay_ms = 0\n");
    station.add_partner(|p| p.tls_required = true);
    let rd = start(&station, Transport::Tcp).await;
    let twelve = Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible);
    let (right, _) = login(rd.addr, [127, 0, 0, 6], PARTNER_PW).await;
    let (wrong, _) = login(rd.addr, [127, 0, 0, 6], "WRONG").await;
    assert_eq!(right.reason(), twelve);
    assert_eq!(wrong.reason(), twelve, "the password must not be revealed");
    rd.stop().await;
}

// ---------------------------------------------------------------------
// 5. Disk: announced size, refused SFIDs, quota, reserve, expiry.

fn file_with_sfid(
    dsn: &str,
    data: Vec<u8>,
    f: impl FnOnce(&mut oftp2::codec::Sfid),
) -> OutgoingFile {
    let mut s = sfid(dsn, data.len() as u64);
    f(&mut s);
    OutgoingFile {
        sfid: s,
        data: Box::new(std::io::Cursor::new(data)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_far_larger_than_announced_ends_the_session_and_is_not_kept() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    // Announces 1 KiB, sends 3 MiB.
    let file = file_with_sfid("LIAR", content(3 << 20, 5), |s| {
        s.file_size = 1;
        s.original_file_size = 1;
    });
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    let end = sent.end.unwrap();
    assert_eq!(end.reason, EndSessionReason::Unspecified, "{end}");
    assert!(end.text.contains("announced size"), "{end}");
    assert!(station.received_files().is_empty());
    assert!(tree(&station.partner_inbox()).is_empty(), "nothing kept");
    assert!(station.rows().is_empty(), "{:?}", station.rows());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sfid_leaves_no_row_and_no_partial_file() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let disk = DiskFull::new(u64::MAX);
    disk.free.store(10, Ordering::SeqCst);
    let rd = start_with(&station, Transport::Tcp, Arc::new(disk)).await;
    let sent = send_tcp(rd.addr, "NOSPACE", content(50_000, 1), 0).await;
    assert!(sent.events.iter().any(|e| matches!(
        e,
        Event::FileRefused {
            reason: StartFileRefusal::FileSizeTooBig,
            ..
        }
    )));
    assert!(station.rows().is_empty(), "{:?}", station.rows());
    assert!(
        tree(&station.inbox()).is_empty(),
        "{:?}",
        tree(&station.inbox())
    );
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_quota_refuses_what_does_not_fit_until_files_are_taken_away() {
    let station = Station::new("");
    station.add_partner(|p| p.inbox_quota = Some(1 << 20));
    let rd = start(&station, Transport::Tcp).await;
    let sent = send_tcp(rd.addr, "FIRST", content(700_000, 1), 0).await;
    assert!(sent.file_done());
    let sent = send_tcp(rd.addr, "SECOND", content(700_000, 2), 0).await;
    let refused = sent.events.iter().find_map(|e| match e {
        Event::FileRefused {
            reason,
            retry_later,
            text,
            ..
        } => Some((*reason, *retry_later, text.clone())),
        _ => None,
    });
    let (reason, retry, text) = refused.expect("second file refused");
    assert_eq!(reason, StartFileRefusal::FileSizeTooBig);
    assert!(retry, "retry later");
    assert!(text.contains("of 1048576 octets"), "{text}");
    assert_eq!(station.rows().len(), 1);
    // The consumer takes the first file away: the second fits.
    std::fs::remove_file(station.partner_inbox().join("FIRST")).unwrap();
    let sent = send_tcp(rd.addr, "SECOND", content(700_000, 2), 0).await;
    assert!(sent.file_done());
    rd.stop().await;
}

/// A file system whose free space shrinks by 3 octets for every octet
/// written (another writer fills the disk meanwhile).
struct Shrinking {
    free: Arc<AtomicU64>,
}

struct ShrinkingFile {
    inner: Box<dyn StoredFile>,
    free: Arc<AtomicU64>,
}

impl Write for ShrinkingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let _ = self
            .free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some(f.saturating_sub(3 * n as u64))
            });
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
impl Read for ShrinkingFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}
impl Seek for ShrinkingFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}
impl StoredFile for ShrinkingFile {
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
}
impl Storage for Shrinking {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        DiskStorage.create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> std::io::Result<Box<dyn StoredFile>> {
        Ok(Box::new(ShrinkingFile {
            inner: DiskStorage.open(path)?,
            free: self.free.clone(),
        }))
    }
    fn available(&self, _: &Path) -> std::io::Result<u64> {
        Ok(self.free.load(Ordering::SeqCst))
    }
    fn link(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        DiskStorage.link(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        DiskStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        DiskStorage.sync_dir(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_reserve_is_checked_while_writing() {
    let station = Station::new("[rd]\ndisk_reserve_mb = 8\n");
    station.add_partner(|_| {});
    let free = Arc::new(AtomicU64::new(30 << 20));
    let rd = start_with(
        &station,
        Transport::Tcp,
        Arc::new(Shrinking { free: free.clone() }),
    )
    .await;
    // 16 MiB fits at SFID (30 MiB free, 8 reserved), not by the end.
    let sent = send_tcp(rd.addr, "FILLSUP", content(16 << 20, 9), 0).await;
    let end = sent.end.unwrap();
    assert_eq!(end.reason, EndSessionReason::ResourcesNotAvailable, "{end}");
    assert!(station.received_files().is_empty());
    // What arrived is kept for the restart.
    let rows = station.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "partial");
    let partial = tree(&station.partner_inbox().join(".partial"));
    assert_eq!(partial.len(), 1, "{partial:?}");
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_files_untouched_past_the_expiry_are_removed_with_their_rows() {
    let station = Station::new("[rd]\npartial_expiry_days = 7\n");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    // Two interrupted transfers leave partial files.
    for dsn in ["OLDPART", "NEWPART"] {
        let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
        let mut file = bytes_file(dsn, content(200_000, 1), 0);
        file.data = Box::new(Cut {
            inner: std::io::Cursor::new(content(200_000, 1)),
            left: 100_000,
        });
        let _ = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    }
    rd.stop().await;
    let dir = station.partner_inbox().join(".partial");
    let parts = tree(&dir);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let old = parts
        .iter()
        .find(|p| p.to_string_lossy().starts_with("OLDPART"))
        .unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join(old))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(8 * 86_400))
        .unwrap();
    drop(f);
    let inbox = inbox_of(&station);
    assert_eq!(inbox.expire_partials(std::time::SystemTime::now()), 1);
    let left = tree(&dir);
    assert_eq!(left.len(), 1);
    assert!(left[0].to_string_lossy().starts_with("NEWPART"));
    assert_eq!(station.rows().len(), 1);
}

/// A reader that fails after `left` octets (the connection breaks).
struct Cut<R> {
    inner: R,
    left: usize,
}
impl<R: Read> Read for Cut<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("cut"));
        }
        let n = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..n])?;
        self.left -= n;
        Ok(n)
    }
}
impl<R: Seek> Seek for Cut<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

// ---------------------------------------------------------------------
// 4. Memory: a zlib bomb is stopped at the announced original size.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_file_larger_than_its_announced_original_is_rejected() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    // 64 MiB of zeros compress to about 64 KiB; SFIDOSIZ says 100 KiB.
    let zipped = oftp2::security::cms::compress(&vec![0u8; 64 << 20]).unwrap();
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let file = file_with_sfid("BOMB", zipped, |s| {
        s.compression = FileCompression::Zlib;
        s.envelope = FileEnvelope::Cms;
        s.original_file_size = 100;
    });
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert!(
        sent.events
            .iter()
            .any(|e| matches!(e, Event::ReceiptReceived(Receipt::Nerp(_)))),
        "NERP expected: {:?}",
        sent.events
    );
    assert!(station.received_files().is_empty());
    assert_eq!(station.rows()[0].0, "rejected");
    // The same file with its true size announced is delivered.
    let zipped = oftp2::security::cms::compress(&vec![0u8; 64 << 20]).unwrap();
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let file = file_with_sfid("NOBOMB", zipped, |s| {
        s.compression = FileCompression::Zlib;
        s.envelope = FileEnvelope::Cms;
        s.original_file_size = 64 << 10;
    });
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    assert_eq!(sent.eerps(), 1, "{:?}", sent.events);
    assert_eq!(
        std::fs::metadata(station.partner_inbox().join("NOBOMB"))
            .unwrap()
            .len(),
        64 << 20
    );
    rd.stop().await;
}

// ---------------------------------------------------------------------
// 7. and 8. Originators; lowercase dataset names.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_may_send_files_only_for_its_allowed_originators() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let forged = || {
        file_with_sfid("OTHERORIG", content(1000, 1), |s| {
            s.originator = OdetteId::new("O0013000000SOMEONE").unwrap()
        })
    };
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(forged())).await;
    assert!(sent.events.iter().any(|e| matches!(
        e,
        Event::FileRefused {
            reason: StartFileRefusal::InvalidOrigin,
            ..
        }
    )));
    assert!(station.rows().is_empty());
    // A hub allowed to forward SOMEONE's files.
    set_partner(&station, PARTNER, |p| {
        p.originators = parse_ids("O0013000000SOMEONE").unwrap()
    });
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(forged())).await;
    assert!(sent.file_done());
    rd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowercase_dataset_name_gets_its_eerp_with_the_name_as_sent() {
    let station = Station::new("");
    station.add_partner(|_| {});
    let rd = start(&station, Transport::Tcp).await;
    let tcp = tokio::net::TcpStream::connect(rd.addr).await.unwrap();
    let file = file_with_sfid("X", content(5000, 1), |s| {
        s.dataset_name = DatasetName::as_received("invoice.lower").unwrap()
    });
    let sent = send(tcp, PARTNER, PARTNER_PW, Some(file)).await;
    let eerp = sent.events.iter().find_map(|e| match e {
        Event::ReceiptReceived(Receipt::Eerp(e)) => Some(e.clone()),
        _ => None,
    });
    assert_eq!(
        eerp.expect("EERP in the same session")
            .dataset_name
            .as_str(),
        "invoice.lower"
    );
    assert_eq!(
        station.receipts(),
        vec![("invoice.lower".into(), "sent".into())]
    );
    rd.stop().await;
}

// ---------------------------------------------------------------------
// 10. TLS client certificates and CRLs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tls_client_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let ca = TestCa::new(dir.path(), "partner");
    let station = Station::new(&format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n[rd]\nauth_failure_delay_ms = 0\n",
        cert.cert_pem.display(),
        cert.key_pem.display(),
    ));
    station.add_partner(|p| {
        p.tls_required = true;
        p.client_cert_required = true;
        p.client_ca = Some(ca.pem.clone());
    });
    let crl_dir = station.config.security.crl_dir.clone();
    std::fs::create_dir_all(&crl_dir).unwrap();
    // A CRL that revokes someone else: the certificate is good.
    std::fs::write(crl_dir.join("partner-ca.crl"), ca.crl_pem(&[999])).unwrap();
    let rd = start(&station, Transport::Tls).await;
    let client = ca.issue_serial("partner.example", 4242);
    let session = || async {
        let tls = tls_connect(rd.addr, &tls_connector(&cert.cert_der, Some(&client)))
            .await
            .unwrap();
        send(tls, PARTNER, PARTNER_PW, None).await
    };
    assert!(session().await.end.unwrap().is_normal());
    // The CA revokes it: the next SSID is refused, no reload needed.
    std::fs::write(crl_dir.join("partner-ca.crl"), ca.crl_pem(&[999, 4242])).unwrap();
    assert_eq!(
        session().await.reason(),
        Some(EndSessionReason::SecureAuthenticationRequirementsIncompatible)
    );
    rd.stop().await;
}

// ---------------------------------------------------------------------
// 9. Post-receive commands: process groups, and queued across restarts.

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_post_receive_command_is_killed_with_its_children() {
    let station = Station::new("[rd]\naction_timeout = 1\n");
    let pidfile = station.dir.path().join("child.pid");
    station.add_partner(|p| {
        p.post_receive = Some(format!("sleep 300 & echo $! > {}; wait", pidfile.display()))
    });
    let rd = start(&station, Transport::Tcp).await;
    let sent = send_tcp(rd.addr, "SLOWACTION", content(1000, 1), 0).await;
    assert!(sent.file_done());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        let exit: Option<i64> = station
            .db
            .lock()
            .query_row("SELECT action_exit FROM os4x_received_files", [], |r| {
                r.get(0)
            })
            .unwrap();
        if let Some(e) = exit {
            break e;
        }
        assert!(Instant::now() < deadline, "action never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(exit, -1, "timed out");
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(child) {
        assert!(
            Instant::now() < deadline,
            "the command's child {child} survived its timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rd.stop().await;
}

#[test]
fn a_post_receive_command_interrupted_by_a_crash_runs_after_the_restart() {
    use sq_support::{Station as Sq, RD_TCP};
    let b = Sq::new(sq_support::B, "");
    let started = b.dir.path().join("started");
    let done = b.dir.path().join("done");
    b.add_partner(sq_support::A, |p| {
        p.post_receive = Some(format!(
            "echo run >> {}; sleep 2; echo \"$OS4X_DATASET\" >> {}",
            started.display(),
            done.display()
        ))
    });
    let mut rd = b.start_rd();
    // A's side, in this process: send one file to B's daemon.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], b.tcp_port).into();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut f = bytes_file("CRASHED", content(1000, 1), 0);
        f.sfid.destination = OdetteId::new(sq_support::B).unwrap();
        f.sfid.originator = OdetteId::new(sq_support::A).unwrap();
        let sent = rd_support::send_as(
            tcp,
            sq_support::A,
            &sq_support::password_of(sq_support::A),
            sq_support::B,
            &sq_support::password_of(sq_support::B),
            Some(f),
        )
        .await;
        assert!(sent.file_done(), "{:?}", sent.events);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&started)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "action never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The daemon dies while the command runs.
    rd.kill9();
    let mut rd = b.start_rd();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state: Option<String> = b
            .queue
            .db()
            .lock()
            .query_row("SELECT action_state FROM os4x_received_files", [], |r| {
                r.get(0)
            })
            .unwrap();
        let runs = std::fs::read_to_string(&started).unwrap_or_default();
        if state.as_deref() == Some("done") && runs.lines().count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not run again after the restart: state {state:?}, runs {runs:?}\n{}",
            b.log("os4xrd_tcpip")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b.log("os4xrd_tcpip").contains("running it again"));
    rd.stop();
    let _ = RD_TCP;
}

// ---------------------------------------------------------------------
// 6. os4xsqd never sends in clear to a partner that requires TLS.

#[test]
fn the_send_daemon_refuses_a_plain_route_to_a_tls_only_partner() {
    use sq_support::{Station as Sq, A, B, SQD};
    let a = Sq::new(A, "");
    // Whoever listens on the route's port: nobody may connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    a.add_partner(B, |p| p.tls_required = true);
    a.add_route(B, port, |r| r.tls = false);
    let id = a.send(&a.file("SECRET", b"confidential"), B, "SECRET");
    let mut sqd = a.spawn(SQD);
    let e = a.wait_entry(id, Duration::from_secs(30), |e| {
        e.last_error
            .as_deref()
            .is_some_and(|t| t.contains("requires TLS"))
    });
    assert_ne!(e.state, EntryState::Delivered);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        listener.accept().is_err(),
        "os4xsqd connected in clear to a TLS-only partner"
    );
    sqd.stop();
}

// ---------------------------------------------------------------------
// 4. Limits of the daemons: open files raised; units carry the limits.

#[test]
fn the_receive_daemon_raises_its_open_file_limit_to_fit_max_sessions() {
    use sq_support::{Station as Sq, B, RD_TCP};
    let b = Sq::new(B, "[rd]\nmax_sessions = 1000\n");
    let log = b.log_path("os4xrd_tcpip");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec {RD_TCP} --config {}",
            b.config_path.display()
        ))
        .env("OS4X_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = sq_support::Daemon(child);
    sq_support::wait_port(([127, 0, 0, 1], b.tcp_port).into(), Duration::from_secs(20));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(soft >= 2000, "{line}");
    d.stop();
}

#[test]
fn the_service_units_limit_memory_files_tasks_and_hide_other_processes() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    let mut checked = 0;
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map_or(true, |e| e != "service") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let settings: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let keys: Vec<&str> = settings
            .iter()
            .filter_map(|l| l.split('=').next())
            .collect();
        for key in ["MemoryHigh", "MemoryMax", "LimitNOFILE", "TasksMax"] {
            assert!(keys.contains(&key), "{} lacks {key}=", path.display());
        }
        // One of the two per unit: together they hide the os4x user's own
        // processes in other user namespaces (measured under systemd).
        let invisible = settings.contains(&"ProtectProc=invisible");
        let private_users = settings.contains(&"PrivateUsers=yes");
        if path.ends_with("os4x-web.service") {
            assert!(private_users && !invisible, "{}", path.display());
        } else {
            assert!(invisible && !private_users, "{}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 7, "{checked} units");
}

// ---------------------------------------------------------------------
// 11. `os4x received`: no receipt means "none".

#[test]
fn received_files_without_a_receipt_show_none() {
    let station = Station::new("");
    station
        .db
        .lock()
        .execute_batch(
            "INSERT INTO os4x_received_files (partner, dataset_name, file_timestamp, originator, \
             destination, format, max_record_size, file_size_1k, state, partial_path, started_at) \
             VALUES ('O0013000000PARTNER', 'HALF', '202611241200000001', 'O0013000000PARTNER', \
             'O0013000000OS4X', 'U', 0, 10, 'partial', '/x.part', 1)",
        )
        .unwrap();
    let files = os4x::usecase::received::list(&station.config, None).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].state.as_str(), files[0].eerp.as_str()),
        ("partial", "none")
    );
}

// ---------------------------------------------------------------------
// 4. Memory: the hash for a signed EERP is computed as a stream.

fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// A 256 MiB plain file whose sender asks for a signed EERP (SFIDSIGN=Y):
/// the receiver hashes what it stored. Reading the file into memory to
/// hash it would raise the daemon's peak RSS by the file's size.
#[test]
fn hashing_a_large_file_for_a_signed_eerp_does_not_hold_it_in_memory() {
    use sq_support::{password_of, Station as Sq, A, B};
    let b = Sq::new(B, "");
    b.add_partner(A, |_| {});
    let rd = b.start_rd();
    let before = peak_rss_kib(rd.pid());
    const LEN: u64 = 256 << 20;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], b.tcp_port).into();
    let sent = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = sfid("BIGSIGNED", LEN);
        s.destination = OdetteId::new(B).unwrap();
        s.originator = OdetteId::new(A).unwrap();
        s.signed_eerp = true;
        s.cipher_suite = oftp2::value::CipherSuite::Aes256RsaSha1;
        let file = OutgoingFile {
            sfid: s,
            data: Box::new(Generated::new(LEN)),
        };
        send_as(tcp, A, &password_of(A), B, &password_of(B), Some(file)).await
    });
    assert!(sent.file_done(), "{:?}", sent.events);
    assert_eq!(sent.eerps(), 1, "{:?}", sent.events);
    let after = peak_rss_kib(rd.pid());
    let stored = std::fs::metadata(b.inbox_from(A).join("BIGSIGNED"))
        .unwrap()
        .len();
    assert_eq!(stored, LEN);
    eprintln!("peak RSS {before} KiB -> {after} KiB");
    // Well below the file's 262144 KiB.
    assert!(
        after < before + 96 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB for a {} KiB file",
        LEN / 1024
    );
}
