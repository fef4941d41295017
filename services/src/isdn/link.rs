//! Reaching a configured controller: one registered CAPI application
//! ([`Transport`]) whatever `[[isdn.controller]] transport` says.

use capi::transport::{RegisterParams, Transport, TransportError};

use super::settings::ControllerConfig;

/// Registration for OFTP: one logical connection per B channel, CAPI's
/// usual window and block size.
pub fn params(c: &ControllerConfig) -> RegisterParams {
    RegisterParams {
        max_logical_connections: c.b_channels,
        ..RegisterParams::default()
    }
}

/// Registers an application on `c`'s transport (`CAPI_REGISTER`).
pub async fn open(c: &ControllerConfig) -> Result<Box<dyn Transport>, TransportError> {
    c.transport.to_capi().connect(params(c)).await
}
