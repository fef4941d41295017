//! Reaching a configured controller: one [`Transport`] whatever the
//! `[[isdn.controller]] transport` says.

use std::task::{Context, Poll};

use capi::device::DeviceTransport;
use capi::message::Message;
use capi::transport::{RegisterParams, Transport, TransportError};

use super::settings::{ControllerConfig, TransportKind};
use super::simnet::SimNetTransport;

/// A registered CAPI application on a configured controller.
#[derive(Debug)]
pub enum Link {
    Device(DeviceTransport),
    Simulator(SimNetTransport),
}

/// Registration for OFTP: one logical connection per B channel, CAPI's
/// usual window and block size.
pub fn params(c: &ControllerConfig) -> RegisterParams {
    RegisterParams {
        max_logical_connections: c.b_channels,
        ..RegisterParams::default()
    }
}

/// Registers an application on `c`'s transport.
pub async fn open(c: &ControllerConfig) -> Result<Link, TransportError> {
    let p = params(c);
    match &c.transport {
        TransportKind::Device(path) => DeviceTransport::open(path, p).map(Link::Device),
        TransportKind::Simulator(addr) => SimNetTransport::connect(*addr, p)
            .await
            .map(Link::Simulator),
        TransportKind::Remote(addr) => Err(TransportError::Unavailable(format!(
            "remote-CAPI ({addr}) is not available in this build; use capi20:/dev/capi20"
        ))),
    }
}

impl Transport for Link {
    fn app_id(&self) -> u16 {
        match self {
            Link::Device(t) => t.app_id(),
            Link::Simulator(t) => t.app_id(),
        }
    }

    fn params(&self) -> RegisterParams {
        match self {
            Link::Device(t) => t.params(),
            Link::Simulator(t) => t.params(),
        }
    }

    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        match self {
            Link::Device(t) => t.put_message(msg),
            Link::Simulator(t) => t.put_message(msg),
        }
    }

    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        match self {
            Link::Device(t) => t.poll_get_message(cx),
            Link::Simulator(t) => t.poll_get_message(cx),
        }
    }
}
