//! The one interface between CAPI applications and a controller.
//!
//! It mirrors the CAPI 2.0 operations (part I, chapter 4): an application is
//! registered when the transport is built (`CAPI_REGISTER`), then
//! [`Transport::put_message`] is `CAPI_PUT_MESSAGE` — it does not wait; a
//! full queue is an error the caller sees at once, as in CAPI — and
//! [`Transport::poll_get_message`] is `CAPI_GET_MESSAGE` combined with
//! `CAPI_WAIT_FOR_SIGNAL` in `Future` form. Dropping the transport is
//! `CAPI_RELEASE`.
//!
//! Implementations: [`crate::sim::SimTransport`] (the built-in exchange),
//! [`crate::remote::RemoteTransport`] (remote CAPI over TCP),
//! [`crate::device::DeviceTransport`] (`/dev/capi20`). `Box<dyn Transport>`
//! is a transport too, so the kind can be chosen at run time
//! ([`crate::config::TransportConfig::connect`]).

use std::task::{Context, Poll};

use crate::message::Message;

/// Registration parameters (`CAPI_REGISTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterParams {
    /// Logical connections (B channels) the application uses at most.
    pub max_logical_connections: u16,
    /// Unconfirmed `DATA_B3_REQ` / unanswered `DATA_B3_IND` per connection (≤ 7).
    pub max_b_data_blocks: u16,
    /// Largest data block (CAPI's default and usual maximum: 2048).
    pub max_b_data_len: u16,
}

impl Default for RegisterParams {
    fn default() -> Self {
        RegisterParams {
            max_logical_connections: 2,
            max_b_data_blocks: 7,
            max_b_data_len: 2048,
        }
    }
}

/// Why a transport could not carry a message.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("CAPI message could not be encoded: {0}")]
    Encode(#[from] crate::message::EncodeError),
    #[error("CAPI message from the controller is malformed: {0}")]
    Decode(#[from] crate::message::DecodeError),
    #[error("CAPI message queue full (info 0x1103); the application is not reading its messages")]
    QueueFull,
    #[error(
        "the CAPI controller connection is closed; check the controller and restart the daemon"
    )]
    Closed,
    #[error("CAPI transport unavailable: {0}")]
    Unavailable(String),
    #[error("CAPI transport I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A registered CAPI application on some controller (see the module docs).
pub trait Transport: Send + 'static {
    /// The application id CAPI_REGISTER assigned.
    fn app_id(&self) -> u16;
    /// Registration parameters in force.
    fn params(&self) -> RegisterParams;
    /// `CAPI_PUT_MESSAGE`: queue a request or response; never waits.
    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError>;
    /// `CAPI_GET_MESSAGE`: the next confirmation or indication.
    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>>;
}

impl Transport for Box<dyn Transport> {
    fn app_id(&self) -> u16 {
        (**self).app_id()
    }
    fn params(&self) -> RegisterParams {
        (**self).params()
    }
    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        (**self).put_message(msg)
    }
    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        (**self).poll_get_message(cx)
    }
}
