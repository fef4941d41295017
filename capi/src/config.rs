//! Choosing how to reach a controller, and which B3 protocol to run, from
//! configuration.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use capi::config::{B3Mode, TransportConfig};
//! use capi::message::cip;
//! use capi::stream::{Application, Dial};
//! use capi::transport::RegisterParams;
//!
//! // From a config file: "remote:192.168.178.1:5031", "device:/dev/capi20"
//! let tc: TransportConfig = "remote:127.0.0.1:2662".parse()?;
//! let mut app = Application::start(tc.connect(RegisterParams::default()).await?);
//!
//! // Answer calls on controller 1 ...
//! app.listen(1, cip::mask(cip::UNRESTRICTED_DIGITAL)).await?;
//! if let Some(call) = app.next_call().await {
//!     if call.calling.as_deref() == Some("4930123456") {
//!         let stream = call.accept(B3Mode::Iso8208.b_protocol()).await?;
//!         // run the oftp2 driver over `stream`
//!     } else {
//!         call.reject(0x34A8)?; // Q.850 cause 40+: see stream::IncomingCall::reject
//!     }
//! }
//! // ... or dial.
//! let stream = app
//!     .dial(Dial {
//!         controller: 1,
//!         called: "4930654321".into(),
//!         calling: Some("4930123456".into()),
//!         b_protocol: B3Mode::Iso8208.b_protocol(),
//!     })
//!     .await?;
//! # drop(stream); Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::device::DeviceTransport;
use crate::message::{B3Protocol, BProtocol};
use crate::remote::RemoteTransport;
use crate::sim::Sim;
use crate::transport::{RegisterParams, Transport, TransportError};

/// Where a controller is.
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// A simulated exchange in this process (tests, demos). Across
    /// processes, serve the exchange with [`crate::remote::Server`] (or the
    /// `capi-sim` program) and use [`TransportConfig::Remote`].
    Simulator(Sim),
    /// A remote-CAPI server (`host:port`): a FRITZ!Box (port 5031), rcapid
    /// (2662), or `capi-sim`.
    Remote { addr: String },
    /// The Linux CAPI device (normally `/dev/capi20`).
    Device { path: PathBuf },
}

/// Why a transport description does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "CAPI transport '{0}' not understood: use 'remote:HOST:PORT' (e.g. remote:192.168.178.1:5031) \
     or 'device:PATH' (e.g. device:/dev/capi20)"
)]
pub struct ParseTransportError(String);

impl FromStr for TransportConfig {
    type Err = ParseTransportError;

    /// `remote:HOST:PORT` or `device:PATH` (`device` alone: `/dev/capi20`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || ParseTransportError(s.to_string());
        if let Some(addr) = s.strip_prefix("remote:") {
            // Needs a port: "host" alone would silently pick nothing.
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad());
            }
            return Ok(TransportConfig::Remote {
                addr: addr.to_string(),
            });
        }
        if s == "device" {
            return Ok(TransportConfig::Device {
                path: crate::device::DEVICE.into(),
            });
        }
        if let Some(path) = s.strip_prefix("device:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(TransportConfig::Device { path: path.into() });
        }
        Err(bad())
    }
}

impl fmt::Display for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportConfig::Simulator(_) => f.write_str("simulator (in process)"),
            TransportConfig::Remote { addr } => write!(f, "remote:{addr}"),
            TransportConfig::Device { path } => write!(f, "device:{}", path.display()),
        }
    }
}

impl TransportConfig {
    /// Registers an application (`CAPI_REGISTER`) through this transport.
    /// Needs a tokio runtime.
    pub async fn connect(
        &self,
        params: RegisterParams,
    ) -> Result<Box<dyn Transport>, TransportError> {
        Ok(match self {
            TransportConfig::Simulator(sim) => Box::new(sim.register(params)),
            TransportConfig::Remote { addr } => {
                Box::new(RemoteTransport::connect(addr, params).await?)
            }
            TransportConfig::Device { path } => Box::new(DeviceTransport::open(path, params)?),
        })
    }
}

/// The B-channel protocol stack for OFTP, per controller or partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Mode {
    /// RFC 5024 Appendix D: X.75 SLP + ISO 8208 (X.25 packet layer) with
    /// the ODETTE parameters; OFTP exchange buffers are M-bit packet
    /// sequences. What other OFTP-over-ISDN implementations speak, hence
    /// the default.
    #[default]
    Iso8208,
    /// X.75 SLP + transparent B3: OFTP with Stream Transmission Headers
    /// over the X.75 link, as over TCP. Only between peers that both
    /// agree to it.
    Transparent,
}

impl B3Mode {
    /// The B protocol struct to dial or accept with.
    pub fn b_protocol(self) -> BProtocol {
        match self {
            B3Mode::Iso8208 => BProtocol::odette_iso8208(),
            B3Mode::Transparent => BProtocol::x75_transparent(),
        }
    }

    /// The mode a B protocol struct selects (`None`: B3 protocol not usable for OFTP).
    pub fn of(b: &BProtocol) -> Option<B3Mode> {
        match b.b3 {
            B3Protocol::Iso8208 => Some(B3Mode::Iso8208),
            B3Protocol::Transparent => Some(B3Mode::Transparent),
            _ => None,
        }
    }
}

/// Why a B3 mode name does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("B3 mode '{0}' not understood: use 'iso8208' (RFC 5024 Appendix D, X.25) or 'transparent'")]
pub struct ParseB3ModeError(String);

impl FromStr for B3Mode {
    type Err = ParseB3ModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "iso8208" | "x25" | "x.25" | "iso-8208" => Ok(B3Mode::Iso8208),
            "transparent" => Ok(B3Mode::Transparent),
            _ => Err(ParseB3ModeError(s.to_string())),
        }
    }
}

impl fmt::Display for B3Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            B3Mode::Iso8208 => "iso8208",
            B3Mode::Transparent => "transparent",
        })
    }
}
