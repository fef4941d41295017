//! ODETTE File Transfer Protocol 2.0 (RFC 5024).
//!
//! The protocol core is sans-IO: bytes and timer events go in, bytes, events
//! and timer requests come out. [`driver`] runs a session over any tokio
//! `AsyncRead + AsyncWrite` (TCP, TLS, an ISDN B-channel).

pub mod value;
pub mod codec;
pub mod stb;
pub mod deb;
pub mod record;
pub mod session;
#[cfg(feature = "tokio")]
pub mod driver;

pub use codec::{Command, CommandId, DecodeError, Deviation, EncodeError};
pub use value::{EndSessionReason, OdetteId, ProtocolLevel};
