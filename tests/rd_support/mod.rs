//! Shared parts of the receive-daemon tests: a station (config, database,
//! partner), an in-process server on 127.0.0.1, and an OFTP initiator
//! (the oftp2 session through its tokio driver) that sends one file.

#![allow(dead_code)]

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oftp2::codec::{Sfid, Ssid};
use oftp2::session::{
    Accepted, Authenticator, Config as SessionConfig, Event, FileOffer, Handlers, Inbox, Outbox,
    OutgoingFile, Receipt, Refusal, Role, Session, SessionEnd,
};
use oftp2::value::{
    CipherSuite, DatasetName, EndSessionReason, FileCompression, FileEnvelope, OdetteId, Password,
    RecordFormat, SecurityLevel, StartFileRefusal, Timestamp, UserData,
};
use os4x::config::Config;
use os4x::db::Db;
use os4x::inbox::{DiskStorage, Storage, StoredFile};
use os4x::partner::{Partner, PartnerStore};
use os4x::rd::{Server, Transport};
use tokio::io::{AsyncRead, AsyncWrite};

pub const LOCAL: &str = "O0013000000OS4X";
pub const LOCAL_PW: &str = "LOCALPW";
/// The password [`PARTNER`] expects from us (its `password_out`), which
/// differs from `[local] password` so every session proves the responder
/// answers with the per-partner password.
pub const PARTNER_EXPECTS: &str = "HELLO";
pub const PARTNER: &str = "O0013000000PARTNER";
pub const PARTNER_PW: &str = "SECRET";

/// A configuration, database and inbox in a temporary directory.
pub struct Station {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: Arc<Config>,
    pub db: Db,
}

impl Station {
    /// `extra` is appended to the configuration file.
    pub fn new(extra: &str) -> Station {
        Station::new_in(None, extra)
    }

    /// Like [`Station::new`], in a temporary directory below `parent`.
    pub fn new_in(parent: Option<&Path>, extra: &str) -> Station {
        let dir = match parent {
            Some(p) => tempfile::tempdir_in(p).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let root = dir.path().display().to_string();
        // SQLite in the state directory, or a PostgreSQL database with
        // OS4X_TEST_BACKEND=postgres.
        let database = os4x_store::testing::database_url_for(&dir.path().join("state"));
        let text = format!(
            "state_dir = \"{root}/state\"\ntmp_dir = \"{root}/run\"\ndatabase = \"{database}\"\n\
             [local]\nodette_id = \"{LOCAL}\"\npassword = \"{LOCAL_PW}\"\n{extra}\n"
        );
        let config_path = dir.path().join("os4x.toml");
        std::fs::write(&config_path, text).unwrap();
        let config = Arc::new(Config::load(Some(&config_path)).unwrap());
        let db = Db::open(&config.database).unwrap();
        Station {
            dir,
            config_path,
            config,
            db,
        }
    }

    /// Adds the partner [`PARTNER`] with password [`PARTNER_PW`], changed by `f`.
    pub fn add_partner(&self, f: impl FnOnce(&mut Partner)) {
        let mut p = Partner::new(
            OdetteId::new(PARTNER).unwrap(),
            Password::new(PARTNER_PW).unwrap(),
            Password::new(PARTNER_EXPECTS).unwrap(),
        );
        f(&mut p);
        PartnerStore::new(self.db.clone()).add(&p).unwrap();
    }

    pub fn inbox(&self) -> PathBuf {
        self.config.rd.inbox_dir.clone()
    }

    pub fn partner_inbox(&self) -> PathBuf {
        self.inbox().join(PARTNER)
    }

    /// Final files (not the partial directory) in the partner's inbox.
    pub fn received_files(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.partner_inbox()) else {
            return Vec::new();
        };
        let mut v: Vec<_> = dir
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    }

    /// `(state, units, final_path)` of every row in os4x_received_files.
    pub fn rows(&self) -> Vec<(String, Option<i64>, Option<String>)> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare("SELECT state, units, final_path FROM os4x_received_files ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    pub fn receipts(&self) -> Vec<(String, String)> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare("SELECT dataset_name, state FROM os4x_receipts_due ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// An in-process daemon on 127.0.0.1.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Arc<Server>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

pub async fn start(station: &Station, transport: Transport) -> Running {
    start_with(station, transport, Arc::new(DiskStorage)).await
}

pub async fn start_with(
    station: &Station,
    transport: Transport,
    storage: Arc<dyn Storage>,
) -> Running {
    let server = Server::with_storage(station.config.clone(), transport, storage).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.clone().serve(
        vec![listener],
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(2),
    ));
    Running {
        addr,
        server,
        stop: Some(tx),
        task: Some(task),
    }
}

/// Deterministic test content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sfid(dsn: &str, len: u64) -> Sfid {
    Sfid {
        dataset_name: DatasetName::new(dsn).unwrap(),
        timestamp: "202611241200000001".parse::<Timestamp>().unwrap(),
        user_data: UserData::new("USR1").unwrap(),
        destination: OdetteId::new(LOCAL).unwrap(),
        originator: OdetteId::new(PARTNER).unwrap(),
        format: RecordFormat::Unstructured,
        max_record_size: 0,
        file_size: len.div_ceil(1024),
        original_file_size: len.div_ceil(1024),
        restart_position: 0,
        security: SecurityLevel::None,
        cipher_suite: CipherSuite::None,
        compression: FileCompression::None,
        envelope: FileEnvelope::None,
        signed_eerp: false,
        description: "test file".into(),
    }
}

/// What the initiator saw.
#[derive(Debug)]
pub struct Sent {
    /// `Err`: the connection broke (text of the driver error).
    pub end: Result<SessionEnd, String>,
    pub events: Vec<Event>,
}

impl Sent {
    pub fn reason(&self) -> Option<EndSessionReason> {
        self.end.as_ref().ok().map(|e| e.reason)
    }

    pub fn file_done(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, Event::FileDone { .. }))
    }

    pub fn eerps(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::ReceiptReceived(Receipt::Eerp(_))))
            .count()
    }

    /// Restart position the receiver answered (SFPA).
    pub fn restart_position(&self) -> Option<u64> {
        self.events.iter().find_map(|e| match e {
            Event::FileStarted {
                restart_position, ..
            } => Some(*restart_position),
            _ => None,
        })
    }
}

/// The initiator's partner check: the responder must be `id` (default
/// [`LOCAL`]) and answer with `password` (default [`PARTNER_EXPECTS`]).
struct ExpectResponder {
    id: String,
    password: String,
}
impl Authenticator for ExpectResponder {
    fn authenticate(&mut self, ssid: &Ssid) -> Result<(), EndSessionReason> {
        if ssid.id.as_str() == self.id && ssid.password.as_str() == self.password {
            Ok(())
        } else {
            Err(EndSessionReason::UserCodeNotKnown)
        }
    }
}

struct NoInbox;
impl Inbox for NoInbox {
    fn accept(&mut self, _: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
        Err(Refusal::new(StartFileRefusal::Unspecified))
    }
}

struct OneFile(Option<OutgoingFile>, Vec<Receipt>);
impl Outbox for OneFile {
    fn next_file(&mut self) -> Option<OutgoingFile> {
        self.0.take()
    }
    fn next_receipt(&mut self) -> Option<Receipt> {
        self.1.pop()
    }
}

/// A file source that produces `len` octets of [`content`] without
/// holding them.
pub struct Generated {
    pub len: u64,
    pub pos: u64,
    pub block: Vec<u8>,
}

impl Generated {
    pub fn new(len: u64) -> Generated {
        Generated {
            len,
            pos: 0,
            block: content(1 << 16, 7),
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len - self.pos;
        let bl = self.block.len() as u64;
        let off = (self.pos % bl) as usize;
        let n = buf.len().min(left as usize).min(self.block.len() - off);
        buf[..n].copy_from_slice(&self.block[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Generated {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => (self.len as i64 + d) as u64,
            SeekFrom::Current(d) => (self.pos as i64 + d) as u64,
        };
        Ok(self.pos)
    }
}

/// Sends one file as `id`/`password` over `io`.
pub async fn send<S>(io: S, id: &str, password: &str, file: Option<OutgoingFile>) -> Sent
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_with_receipts(io, id, password, file, Vec::new()).await
}

/// Sends receipts, then one file, as `id`/`password` over `io`.
pub async fn send_with_receipts<S>(
    io: S,
    id: &str,
    password: &str,
    file: Option<OutgoingFile>,
    receipts: Vec<Receipt>,
) -> Sent
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    session_with(io, id, password, (LOCAL, PARTNER_EXPECTS), file, receipts).await
}

/// Sends one file as `id`/`password` to a responder that must answer as
/// `responder_id`/`responder_password`.
pub async fn send_as<S>(
    io: S,
    id: &str,
    password: &str,
    responder_id: &str,
    responder_password: &str,
    file: Option<OutgoingFile>,
) -> Sent
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    session_with(
        io,
        id,
        password,
        (responder_id, responder_password),
        file,
        Vec::new(),
    )
    .await
}

async fn session_with<S>(
    io: S,
    id: &str,
    password: &str,
    responder: (&str, &str),
    file: Option<OutgoingFile>,
    receipts: Vec<Receipt>,
) -> Sent
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = SessionConfig::new(
        OdetteId::new(id).unwrap(),
        Password::new_relaxed(password).unwrap(),
    );
    let handlers = Handlers {
        authenticator: Box::new(ExpectResponder {
            id: responder.0.to_owned(),
            password: responder.1.to_owned(),
        }),
        inbox: Box::new(NoInbox),
        outbox: Box::new(OneFile(file, receipts)),
    };
    let mut session = Session::new(Role::Initiator, config, handlers).unwrap();
    let mut events = Vec::new();
    let end = tokio::time::timeout(
        Duration::from_secs(120),
        oftp2::driver::run(&mut session, io, |e| events.push(e)),
    )
    .await
    .expect("session must end")
    .map_err(|e| e.to_string());
    Sent { end, events }
}

pub fn bytes_file(dsn: &str, data: Vec<u8>, restart: u64) -> OutgoingFile {
    let mut s = sfid(dsn, data.len() as u64);
    s.restart_position = restart;
    OutgoingFile {
        sfid: s,
        data: Box::new(Cursor::new(data)),
    }
}

/// Sends `data` as dataset `dsn` over plain TCP.
pub async fn send_tcp(addr: SocketAddr, dsn: &str, data: Vec<u8>, restart: u64) -> Sent {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    send(
        tcp,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file(dsn, data, restart)),
    )
    .await
}

// ---------------------------------------------------------------------
// TLS

/// A self-signed certificate for `localhost` and its key, as PEM files.
pub struct TlsFiles {
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pub cert_der: rustls::pki_types::CertificateDer<'static>,
}

pub fn server_cert(dir: &Path, name: &str) -> TlsFiles {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = dir.join(format!("{name}.crt"));
    let key_pem = dir.join(format!("{name}.key"));
    std::fs::write(&cert_pem, ck.cert.pem()).unwrap();
    std::fs::write(&key_pem, ck.key_pair.serialize_pem()).unwrap();
    TlsFiles {
        cert_pem,
        key_pem,
        cert_der: ck.cert.der().clone(),
    }
}

/// A client certificate and key in memory.
pub struct ClientCert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub key: Vec<u8>,
}

pub fn client_cert() -> ClientCert {
    let ck = rcgen::generate_simple_self_signed(vec!["partner.example".to_string()]).unwrap();
    ClientCert {
        der: ck.cert.der().clone(),
        key: ck.key_pair.serialize_der(),
    }
}

pub fn tls_connector(
    trust: &rustls::pki_types::CertificateDer<'static>,
    client: Option<&ClientCert>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.der.clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(c.key.clone().into()),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A CA made in the test, its certificate written as PEM to `pem`.
pub struct TestCa {
    pub pem: PathBuf,
    pub der: rustls::pki_types::CertificateDer<'static>,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).unwrap();
        TestCa {
            pem,
            der: cert.der().clone(),
            cert,
            key,
        }
    }

    /// A client certificate for `cn` issued by this CA, valid now.
    pub fn issue(&self, cn: &str) -> ClientCert {
        self.issue_with(cn, |_| {})
    }

    /// A client certificate for `cn` that expired in 2020.
    pub fn issue_expired(&self, cn: &str) -> ClientCert {
        self.issue_with(cn, |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    fn issue_with(&self, cn: &str, f: impl FnOnce(&mut rcgen::CertificateParams)) -> ClientCert {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        f(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        ClientCert {
            der: cert.der().clone(),
            key: key.serialize_der(),
        }
    }

    /// A client certificate for `cn` with serial number `serial`.
    pub fn issue_serial(&self, cn: &str, serial: u64) -> ClientCert {
        self.issue_with(cn, |p| {
            p.serial_number = Some(rcgen::SerialNumber::from(serial))
        })
    }

    /// A CRL of this CA (PEM) revoking the certificates with `serials`.
    pub fn crl_pem(&self, serials: &[u64]) -> String {
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: rcgen::date_time_ymd(2024, 1, 2),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .unwrap()
            .pem()
            .unwrap()
    }

    /// The CA's subject as rustls puts it into a CertificateRequest.
    pub fn hint(&self) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        roots.subjects()[0].as_ref().to_vec()
    }
}

/// Presents `cert` whatever the server asks, and records the CA names the
/// server announced (root hints of its CertificateRequest).
#[derive(Debug)]
pub struct RecordingResolver {
    key: Arc<rustls::sign::CertifiedKey>,
    pub hints: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl rustls::client::ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.hints.lock().unwrap() = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Like [`tls_connector`] with `client`, also returning what the server
/// announced.
pub fn recording_connector(
    trust: &rustls::pki_types::CertificateDer<'static>,
    client: &ClientCert,
) -> (tokio_rustls::TlsConnector, Arc<RecordingResolver>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::sign::CertifiedKey::from_der(
        vec![client.der.clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(client.key.clone().into()),
        &provider,
    )
    .unwrap();
    let resolver = Arc::new(RecordingResolver {
        key: Arc::new(key),
        hints: std::sync::Mutex::new(Vec::new()),
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver.clone());
    (tokio_rustls::TlsConnector::from(Arc::new(config)), resolver)
}

/// A client that speaks TLS 1.2 only.
pub fn tls12_connector(
    trust: &rustls::pki_types::CertificateDer<'static>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

pub async fn tls_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

// ---------------------------------------------------------------------
// Fault injection

/// The real file system, except that file writes fail with ENOSPC once
/// `budget` octets have been written (all files together).
#[derive(Clone)]
pub struct DiskFull {
    pub budget: Arc<AtomicU64>,
    /// What `available` reports.
    pub free: Arc<AtomicU64>,
}

impl DiskFull {
    pub fn new(budget: u64) -> DiskFull {
        DiskFull {
            budget: Arc::new(AtomicU64::new(budget)),
            free: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

struct LimitedFile {
    inner: Box<dyn StoredFile>,
    budget: Arc<AtomicU64>,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl Write for LimitedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            return Err(enospc());
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.write(&buf[..n])?;
        self.budget.fetch_sub(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Read for LimitedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for LimitedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl StoredFile for LimitedFile {
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for DiskFull {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DiskStorage.create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoredFile>> {
        Ok(Box::new(LimitedFile {
            inner: DiskStorage.open(path)?,
            budget: self.budget.clone(),
        }))
    }
    fn available(&self, _dir: &Path) -> io::Result<u64> {
        Ok(self.free.load(Ordering::SeqCst))
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        DiskStorage.link(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        DiskStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        DiskStorage.sync_dir(dir)
    }
}

/// Every file below `root`, relative.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}
