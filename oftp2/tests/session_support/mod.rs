//! Shared parts of the session and driver tests: in-memory partners,
//! inboxes, outboxes and file contents. Real session code on both sides;
//! only the disk is replaced by memory.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use oftp2::codec::{Eerp, Sfid, Ssid};
use oftp2::record::{self, Counts, Layout, RestartPoint};
use oftp2::session::{
    Accepted, Authenticator, Config, Event, FileOffer, Handlers, Inbox, IncomingFile, Outbox,
    OutgoingFile, Receipt, Refusal, Role, Session,
};
use oftp2::value::{
    CipherSuite, DatasetName, Date, EndFileRefusal, EndSessionReason, FileCompression,
    FileEnvelope, OdetteId, Password, SecurityLevel, StartFileRefusal, Time, Timestamp, UserData,
};

pub const INITIATOR_ID: &str = "O0013000000000000INIT";
pub const RESPONDER_ID: &str = "O0013000000000000RESP";

pub fn id(s: &str) -> OdetteId {
    OdetteId::new(s).unwrap()
}

pub fn config(own: &str) -> Config {
    let mut c = Config::new(id(own), Password::new("SECRET").unwrap());
    c.progress_interval = 4 << 20;
    c
}

// ----------------------------------------------------------------------
// File content

/// Length of the content pattern: a prime, so that no buffer or record
/// size divides it and an offset error shows up as a mismatch.
pub const PATTERN_LEN: usize = 1_048_573;

/// Pseudo-random octets (xorshift), the same in every run.
pub fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..PATTERN_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// `len` octets of the pattern starting at `offset`.
pub fn content(offset: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let p = pattern();
    let mut pos = (offset % PATTERN_LEN as u64) as usize;
    while v.len() < len {
        let take = (len - v.len()).min(PATTERN_LEN - pos);
        v.extend_from_slice(&p[pos..pos + take]);
        pos = 0;
    }
    v
}

/// A file of `len` pattern octets, generated while it is read (a 1 GiB
/// file never exists in memory).
#[derive(Debug, Clone)]
pub struct PatternFile {
    pub len: u64,
    pub pos: u64,
}

impl PatternFile {
    pub fn new(len: u64) -> Self {
        Self { len, pos: 0 }
    }
}

impl Read for PatternFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let p = pattern();
        let left = (self.len - self.pos.min(self.len)) as usize;
        let start = (self.pos % PATTERN_LEN as u64) as usize;
        let n = buf.len().min(left).min(PATTERN_LEN - start);
        buf[..n].copy_from_slice(&p[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PatternFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(n) => n,
            SeekFrom::End(d) => self.len.checked_add_signed(d).unwrap(),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).unwrap(),
        };
        Ok(self.pos)
    }
}

/// Compares what it receives with the pattern on the fly.
pub struct PatternCheck {
    pub pos: u64,
    pub report: Arc<Mutex<CheckReport>>,
}

#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub received: u64,
    pub first_mismatch: Option<u64>,
    pub committed: Option<Counts>,
    pub aborted: bool,
}

impl Write for PatternCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let p = pattern();
        let mut done = 0;
        let mut report = self.report.lock().unwrap();
        while done < buf.len() {
            let start = (self.pos % PATTERN_LEN as u64) as usize;
            let n = (buf.len() - done).min(PATTERN_LEN - start);
            if report.first_mismatch.is_none() && buf[done..done + n] != p[start..start + n] {
                report.first_mismatch = Some(self.pos);
            }
            self.pos += n as u64;
            done += n;
        }
        report.received = self.pos;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl IncomingFile for PatternCheck {
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        self.report.lock().unwrap().committed = Some(counts);
        Ok(())
    }

    fn abort(&mut self) {
        self.report.lock().unwrap().aborted = true;
    }
}

// ----------------------------------------------------------------------
// Files and stores

pub fn timestamp() -> Timestamp {
    Timestamp::new(
        Date::new(2026, 11, 24).unwrap(),
        Time::new(12, 30, 0, 1).unwrap(),
    )
}

/// An SFID for a file in `layout` of `local_len` octets.
pub fn sfid(dsn: &str, layout: Layout, local_len: u64) -> Sfid {
    Sfid {
        dataset_name: DatasetName::new(dsn).unwrap(),
        timestamp: timestamp(),
        user_data: UserData::EMPTY,
        destination: id(RESPONDER_ID),
        originator: id(INITIATOR_ID),
        format: layout.format(),
        max_record_size: layout.max_record_len(),
        file_size: local_len.div_ceil(1024),
        original_file_size: local_len.div_ceil(1024),
        restart_position: 0,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: String::new(),
    }
}

/// An outgoing file held in memory.
pub fn mem_file(dsn: &str, layout: Layout, data: Vec<u8>) -> OutgoingFile {
    let len = data.len() as u64;
    OutgoingFile {
        sfid: sfid(dsn, layout, len),
        data: Box::new(Cursor::new(data)),
    }
}

/// A generated outgoing U file.
pub fn pattern_file(dsn: &str, len: u64) -> OutgoingFile {
    OutgoingFile {
        sfid: sfid(dsn, Layout::unstructured(), len),
        data: Box::new(PatternFile::new(len)),
    }
}

/// Received files by dataset name, as a disk would keep them: partial
/// data survives an interrupted transfer.
#[derive(Debug, Default, Clone)]
pub struct Stored {
    pub data: Vec<u8>,
    pub committed: Option<Counts>,
    pub aborted: bool,
}

pub type Store = Arc<Mutex<HashMap<String, Stored>>>;

pub struct MemWriter {
    store: Store,
    key: String,
}

impl Write for MemWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut store = self.store.lock().unwrap();
        store
            .get_mut(&self.key)
            .unwrap()
            .data
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl IncomingFile for MemWriter {
    fn commit(&mut self, counts: Counts) -> Result<(), Refusal<EndFileRefusal>> {
        let mut store = self.store.lock().unwrap();
        store.get_mut(&self.key).unwrap().committed = Some(counts);
        Ok(())
    }

    fn abort(&mut self) {
        let mut store = self.store.lock().unwrap();
        store.get_mut(&self.key).unwrap().aborted = true;
    }
}

/// How [`TestInbox`] answers an offer.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Store in memory, resuming a partial file if restart is offered.
    Store,
    /// Compare with the pattern on the fly.
    Check(Arc<Mutex<CheckReport>>),
    /// Refuse.
    Refuse(Refusal<StartFileRefusal>),
}

pub struct TestInbox {
    pub store: Store,
    pub policy: Policy,
    pub offers: Arc<Mutex<Vec<Sfid>>>,
}

impl TestInbox {
    pub fn new(store: Store, policy: Policy) -> Self {
        Self {
            store,
            policy,
            offers: Arc::default(),
        }
    }
}

impl Inbox for TestInbox {
    fn accept(&mut self, offer: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        self.offers.lock().unwrap().push(offer.sfid.clone());
        match &self.policy {
            Policy::Refuse(refusal) => Err(refusal.clone()),
            Policy::Check(report) => Ok(Accepted {
                writer: Box::new(PatternCheck {
                    pos: 0,
                    report: report.clone(),
                }),
                restart: RestartPoint::START,
            }),
            Policy::Store => {
                let key = offer.sfid.dataset_name.as_str().to_owned();
                let layout = Layout::new(offer.sfid.format, offer.sfid.max_record_size)
                    .map_err(|e| Refusal::new(e.sfna_reason()))?;
                let mut store = self.store.lock().unwrap();
                let entry = store.entry(key.clone()).or_default();
                let restart = if offer.restart_allowed && offer.sfid.restart_position > 0 {
                    let mut existing = Cursor::new(&entry.data);
                    record::resume_point(layout, &mut existing, offer.sfid.restart_position)
                        .map_err(|e| Refusal::new(e.sfna_reason()))?
                } else {
                    RestartPoint::START
                };
                // Truncate to the restart point, as a disk inbox would.
                entry.data.truncate(restart.local_offset as usize);
                entry.committed = None;
                entry.aborted = false;
                drop(store);
                Ok(Accepted {
                    writer: Box::new(MemWriter {
                        store: self.store.clone(),
                        key,
                    }),
                    restart,
                })
            }
        }
    }
}

#[derive(Default)]
pub struct TestOutbox {
    pub files: VecDeque<OutgoingFile>,
    pub receipts: VecDeque<Receipt>,
    /// Answer EFPA with "change direction requested" while there is work.
    pub want_turn: bool,
}

impl TestOutbox {
    pub fn with_files(files: Vec<OutgoingFile>) -> Self {
        Self {
            files: files.into(),
            ..Self::default()
        }
    }
}

impl Outbox for TestOutbox {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        self.files.pop_front()
    }

    fn next_receipt(&mut self) -> Option<Receipt> {
        self.receipts.pop_front()
    }

    fn wants_turn(&mut self) -> bool {
        self.want_turn && !(self.files.is_empty() && self.receipts.is_empty())
    }
}

/// Accepts exactly one partner id with one password.
pub struct TestAuth {
    pub partner: OdetteId,
    pub password: Password,
}

impl Authenticator for TestAuth {
    fn authenticate(&mut self, partner: &Ssid) -> Result<(), EndSessionReason> {
        if !partner.id.eq_ignore_case(&self.partner) {
            return Err(EndSessionReason::UserCodeNotKnown);
        }
        if partner.password != self.password {
            return Err(EndSessionReason::InvalidPassword);
        }
        Ok(())
    }
}

pub fn handlers(partner: &str, inbox: TestInbox, outbox: TestOutbox) -> Handlers {
    Handlers {
        authenticator: Box::new(TestAuth {
            partner: id(partner),
            password: Password::new("SECRET").unwrap(),
        }),
        inbox: Box::new(inbox),
        outbox: Box::new(outbox),
    }
}

pub fn eerp_for(sfid: &Sfid) -> Receipt {
    Receipt::Eerp(Eerp {
        dataset_name: sfid.dataset_name,
        timestamp: sfid.timestamp,
        user_data: UserData::EMPTY,
        destination: sfid.originator,
        originator: sfid.destination,
        hash: Bytes::new(),
        signature: Bytes::new(),
    })
}

// ----------------------------------------------------------------------
// A pair of sessions shuttling bytes in memory (pure sans-IO)

pub struct Pair {
    pub initiator: Session,
    pub responder: Session,
    /// Initiator -> responder bytes in flight.
    pub i2r: BytesMut,
    /// Responder -> initiator bytes in flight.
    pub r2i: BytesMut,
    pub initiator_events: Vec<Event>,
    pub responder_events: Vec<Event>,
    /// Octets the initiator sent so far.
    pub i2r_total: u64,
}

impl Pair {
    pub fn new(initiator: (Config, Handlers), responder: (Config, Handlers)) -> Self {
        Self {
            initiator: Session::new(Role::Initiator, initiator.0, initiator.1).unwrap(),
            responder: Session::new(Role::Responder, responder.0, responder.1).unwrap(),
            i2r: BytesMut::new(),
            r2i: BytesMut::new(),
            initiator_events: Vec::new(),
            responder_events: Vec::new(),
            i2r_total: 0,
        }
    }

    /// One round: each side transmits, the other processes. Returns the
    /// octets moved.
    pub fn step(&mut self) -> usize {
        let a = self.responder.poll_transmit(&mut self.r2i);
        self.initiator.handle_input(&mut self.r2i);
        let b = self.initiator.poll_transmit(&mut self.i2r);
        self.i2r_total += b as u64;
        self.responder.handle_input(&mut self.i2r);
        self.collect();
        a + b
    }

    pub fn collect(&mut self) {
        while let Some(e) = self.initiator.poll_event() {
            self.initiator_events.push(e);
        }
        while let Some(e) = self.responder.poll_event() {
            self.responder_events.push(e);
        }
    }

    /// Run until both sides have closed; a round without traffic while a
    /// side is still active is a deadlock and fails the test.
    pub fn run(&mut self) {
        loop {
            let moved = self.step();
            if moved > 0 {
                continue;
            }
            if self.initiator.is_ended() && self.responder.is_ended() {
                // The ESID receiver disconnects; the sender sees EOF.
                self.initiator.handle_eof();
                self.responder.handle_eof();
                self.collect();
                assert!(self.initiator.is_closed() && self.responder.is_closed());
                return;
            }
            panic!(
                "deadlock: initiator in {}, responder in {}",
                self.initiator.state_name(),
                self.responder.state_name()
            );
        }
    }

    /// Run until the initiator has sent `limit` octets, then cut the
    /// connection (both sides see EOF).
    pub fn run_until_cut(&mut self, limit: u64) {
        while self.i2r_total < limit {
            let moved = self.step();
            assert!(moved > 0, "transfer ended before the cut");
        }
        // Whatever is in flight is lost with the connection.
        self.i2r.clear();
        self.r2i.clear();
        self.initiator.handle_eof();
        self.responder.handle_eof();
        self.collect();
    }
}

// ----------------------------------------------------------------------
// Event helpers

pub fn ended(events: &[Event]) -> &oftp2::session::SessionEnd {
    events
        .iter()
        .find_map(|e| match e {
            Event::Ended(end) => Some(end),
            _ => None,
        })
        .expect("no Ended event")
}

pub fn done_counts(events: &[Event]) -> Vec<Counts> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::FileDone { counts, .. } => Some(*counts),
            _ => None,
        })
        .collect()
}

pub fn new_store() -> Store {
    Arc::default()
}

pub fn stored(store: &Store, dsn: &str) -> Stored {
    store.lock().unwrap().get(dsn).cloned().unwrap_or_default()
}

/// Parse STBs in `bytes` into (command octet, exchange buffer length).
pub fn frames(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = (usize::from(bytes[pos + 1]) << 16)
            | (usize::from(bytes[pos + 2]) << 8)
            | usize::from(bytes[pos + 3]);
        out.push((bytes[pos + 4], len - 4));
        pos += len;
    }
    assert_eq!(pos, bytes.len(), "partial STB");
    out
}
