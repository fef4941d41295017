//! ODETTE File Transfer Protocol 2.0 (RFC 5024).
//!
//! The protocol core is sans-IO: bytes and timer events go in, bytes, events
//! and timer requests come out. [`driver`] runs a session over any tokio
//! `AsyncRead + AsyncWrite` (TCP, TLS, an ISDN B-channel).
//!
//! | Module | Holds |
//! |---|---|
//! | [`value`] | typed field values: [`OdetteId`], passwords, dataset names, levels, reason codes |
//! | [`codec`] | every command of section 5, exact layouts for 2.0, 1.4 and 1.3, lenient decoding with reported deviations |
//! | [`stb`] | Stream Transmission Buffer framing (section 8) |
//! | [`deb`] | Data Exchange Buffer subrecords and buffer compression (section 7) |
//! | [`record`] | F, V, U, T formats between local files and DATA payloads; counts and restart points |
//! | [`session`] | the state machine of section 9, both roles, speaker and listener, secure authentication |
//! | [`security`] | CMS sign/encrypt/compress, X.509 and CRLs, AUCH/AURP challenges, signed EERP/NERP, the file services of section 6 |
//! | [`driver`] | the tokio driver (feature `tokio`, on by default) |
//!
//! # Driving a session
//!
//! The application answers the RFC's User Monitor questions through
//! [`session::Handlers`]: may this partner connect, where does an incoming
//! file go, what is there to send. Here two sessions talk through memory;
//! over a network, [`driver::run`] does the shuttling.
//!
//! ```
//! use std::io::{Cursor, Write};
//! use std::sync::{Arc, Mutex};
//!
//! use bytes::BytesMut;
//! use oftp2::codec::{Sfid, Ssid};
//! use oftp2::record::{Counts, Layout, RestartPoint};
//! use oftp2::session::*;
//! use oftp2::value::*;
//!
//! // Partner check: accept anyone with the right password.
//! struct Auth;
//! impl Authenticator for Auth {
//!     fn authenticate(&mut self, partner: &Ssid) -> Result<(), EndSessionReason> {
//!         match partner.password.as_str() {
//!             "SECRET" => Ok(()),
//!             _ => Err(EndSessionReason::InvalidPassword),
//!         }
//!     }
//! }
//!
//! // Incoming files go into a shared buffer.
//! #[derive(Clone, Default)]
//! struct Received(Arc<Mutex<Vec<u8>>>);
//! impl Write for Received {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
//!         self.0.lock().unwrap().write(b)
//!     }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//! impl IncomingFile for Received {
//!     fn commit(&mut self, _: Counts) -> Result<(), Refusal<EndFileRefusal>> { Ok(()) }
//! }
//! impl Inbox for Received {
//!     fn accept(&mut self, _: &FileOffer<'_>) -> Result<Accepted, Refusal<StartFileRefusal>> {
//!         Ok(Accepted { writer: Box::new(self.clone()), restart: RestartPoint::START })
//!     }
//! }
//!
//! // Outgoing files come from a queue.
//! struct Queue(Vec<OutgoingFile>);
//! impl Outbox for Queue {
//!     fn next_file(&mut self) -> Option<OutgoingFile> { self.0.pop() }
//!     fn next_receipt(&mut self) -> Option<Receipt> { None }
//! }
//!
//! let id = |s| OdetteId::new(s).unwrap();
//! let config = |me| Config::new(id(me), Password::new("SECRET").unwrap());
//! let sfid = Sfid {
//!     dataset_name: DatasetName::new("INVOICES").unwrap(),
//!     timestamp: Timestamp::from_unix_seconds(1_790_000_000, 1).unwrap(),
//!     user_data: UserData::EMPTY,
//!     destination: id("O0013BUYER"),
//!     originator: id("O0013SUPPLIER"),
//!     format: RecordFormat::Unstructured,
//!     max_record_size: 0,
//!     file_size: 1,
//!     original_file_size: 1,
//!     restart_position: 0,
//!     security: SecurityLevel::None,
//!     cipher_suite: CipherSuite::None,
//!     compression: FileCompression::None,
//!     envelope: FileEnvelope::None,
//!     signed_eerp: false,
//!     description: String::new(),
//! };
//! let file = OutgoingFile { sfid, data: Box::new(Cursor::new(b"UNA:+.? '".to_vec())) };
//!
//! let inbox = Received::default();
//! let mut supplier = Session::new(Role::Initiator, config("O0013SUPPLIER"), Handlers {
//!     authenticator: Box::new(Auth),
//!     inbox: Box::new(Received::default()),
//!     outbox: Box::new(Queue(vec![file])),
//! })?;
//! let mut buyer = Session::new(Role::Responder, config("O0013BUYER"), Handlers {
//!     authenticator: Box::new(Auth),
//!     inbox: Box::new(inbox.clone()),
//!     outbox: Box::new(Queue(vec![])),
//! })?;
//!
//! // Shuttle bytes until both sides are done. A real driver also feeds
//! // timer expiries (`poll_timer` / `handle_timeout`) and end of stream.
//! let (mut to_buyer, mut to_supplier) = (BytesMut::new(), BytesMut::new());
//! while buyer.poll_transmit(&mut to_supplier) + supplier.poll_transmit(&mut to_buyer) > 0 {
//!     supplier.handle_input(&mut to_supplier);
//!     buyer.handle_input(&mut to_buyer);
//! }
//! while let Some(event) = buyer.poll_event() {
//!     if let Event::FileDone { file, counts, .. } = event {
//!         println!("received {} ({} octets)", file.dataset_name, counts.units);
//!     }
//! }
//! assert_eq!(&inbox.0.lock().unwrap()[..], b"UNA:+.? '");
//! assert!(supplier.end().unwrap().is_normal());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codec;
pub mod deb;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod record;
pub mod security;
pub mod session;
pub mod stb;
pub mod value;

pub use codec::{Command, CommandId, DecodeError, Deviation, EncodeError};
pub use value::{EndSessionReason, OdetteId, ProtocolLevel};
