//! Remote CAPI over TCP: the protocol ISDN routers and CAPI servers expose
//! on the LAN, and a server for it that serves the built-in simulator.
//!
//! # Framing (what is implemented, and where it comes from)
//!
//! This is the "remote CAPI" protocol of the Linux CAPI library
//! (`libcapi20`, `capi20.conf` `REMOTE`/`INET` transport), spoken by the
//! isdn4linux remote-CAPI server `rcapid` (capi4k-utils, default port
//! 2662) and by the AVM FRITZ!Box "CAPI over TCP" service (port 5031,
//! libcapi20's `fritzbox` module uses the same commands). There is no
//! published specification; the layout below follows those programs'
//! sources, which agree on it:
//!
//! ```text
//! frame   = length:u16 big-endian (octets of the whole frame, these 2 included)
//!           payload
//! payload = a CAPI 2.0 message exactly as in [`crate::message`]
//!           (little-endian header; DATA_B3_REQ/IND data block after the message)
//!         | a management message: the same 8-octet header with subcommand 0xFF
//!           and one of the commands below, then its parameters
//! ```
//!
//! | Command | Parameters (little-endian) |
//! |---|---|
//! | `0xF2` REGISTER_REQ | dword buffer (0), word message buffer size, word max logical connections, word max B data blocks, word max B data length, byte CAPI version (2) |
//! | `0xF3` REGISTER_CONF | word info (0 = registered) |
//! | `0xE0` GET_PROFILE_REQ | dword controller |
//! | `0xE1` GET_PROFILE_CONF | word info, 64 octets CAPI profile (part I, `CAPI_GET_PROFILE`) |
//! | `0xFA` GET_MANUFACTURER_REQ | dword controller |
//! | `0xFB` GET_MANUFACTURER_CONF | struct of 64 octets, NUL-padded text |
//! | `0xFC` GET_VERSION_REQ | dword controller |
//! | `0xFD` GET_VERSION_CONF | 4 octets (CAPI major, minor, manufacturer major, minor), struct of 64 octets text |
//! | `0xFE` GET_SERIAL_NUMBER_REQ | dword controller |
//! | `0xFF` GET_SERIAL_NUMBER_CONF | struct of 64 octets, NUL-padded text |
//!
//! One TCP connection is one registered application: the first request on
//! it that is not a query is REGISTER_REQ, and closing the connection is
//! `CAPI_RELEASE`. The application id in the CAPI messages is rewritten by
//! the server to its local one in both directions (as rcapid does), so a
//! client uses whatever id it likes; [`RemoteTransport`] uses the id the
//! server reports in REGISTER_CONF's header, or 1. Management messages
//! carry their true total length in the CAPI header (libcapi20 writes 0
//! there and rcapid ignores it; both read what is written here).
//!
//! Known deviations in the wild, handled: libcapi20 before the `fritzbox`
//! module sent REGISTER_REQ without the version octet — a missing version
//! is taken as 2.
//!
//! Not verified against a FRITZ!Box or rcapid here (none available); the
//! tests run [`RemoteTransport`] against [`Server`] on 127.0.0.1 and check
//! the frames octet by octet against the layout above.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::message::{DecodeError, Message, HEADER_LEN};
use crate::sim::Sim;
use crate::transport::{RegisterParams, Transport, TransportError};

/// Default port of the isdn4linux `rcapid` remote-CAPI server.
pub const RCAPID_PORT: u16 = 2662;
/// Port of the FRITZ!Box "CAPI over TCP" service (switched on with `#96*3*`).
pub const FRITZBOX_PORT: u16 = 5031;

/// Largest frame: the 16-bit length field's limit.
pub const MAX_FRAME: usize = 0xFFFF;

/// Subcommand of every management message.
pub const MGMT_SUBCOMMAND: u8 = 0xFF;

/// Management command codes (sent with subcommand [`MGMT_SUBCOMMAND`]).
pub mod mgmt {
    pub const REGISTER_REQ: u8 = 0xF2;
    pub const REGISTER_CONF: u8 = 0xF3;
    pub const GET_PROFILE_REQ: u8 = 0xE0;
    pub const GET_PROFILE_CONF: u8 = 0xE1;
    pub const GET_MANUFACTURER_REQ: u8 = 0xFA;
    pub const GET_MANUFACTURER_CONF: u8 = 0xFB;
    pub const GET_VERSION_REQ: u8 = 0xFC;
    pub const GET_VERSION_CONF: u8 = 0xFD;
    pub const GET_SERIAL_NUMBER_REQ: u8 = 0xFE;
    pub const GET_SERIAL_NUMBER_CONF: u8 = 0xFF;
}

/// `CAPI_REGISTER` info values used here (CAPI 2.0 part I, info 0x10xx).
pub mod register_info {
    pub const OK: u16 = 0;
    pub const LOGICAL_BLOCK_TOO_SMALL: u16 = 0x1002;
    pub const TOO_MANY_CONNECTIONS: u16 = 0x1005;
    pub const OS_RESOURCE_ERROR: u16 = 0x1008;
}

/// The 64-octet `CAPI_GET_PROFILE` structure (CAPI 2.0 part I).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Number of installed controllers.
    pub controllers: u16,
    /// B channels of the asked controller.
    pub b_channels: u16,
    pub global_options: u32,
    /// Bit n set: B1 protocol n supported (likewise B2, B3).
    pub b1_protocols: u32,
    pub b2_protocols: u32,
    pub b3_protocols: u32,
    /// Reserved (24 octets) and manufacturer-specific (20 octets) parts.
    pub rest: [u8; 44],
}

impl Profile {
    pub const LEN: usize = 64;

    pub fn encode(&self) -> [u8; 64] {
        let mut v = [0u8; 64];
        v[0..2].copy_from_slice(&self.controllers.to_le_bytes());
        v[2..4].copy_from_slice(&self.b_channels.to_le_bytes());
        v[4..8].copy_from_slice(&self.global_options.to_le_bytes());
        v[8..12].copy_from_slice(&self.b1_protocols.to_le_bytes());
        v[12..16].copy_from_slice(&self.b2_protocols.to_le_bytes());
        v[16..20].copy_from_slice(&self.b3_protocols.to_le_bytes());
        v[20..].copy_from_slice(&self.rest);
        v
    }

    /// Reads a profile; a short one (some servers send only the
    /// controller count for controller 0) is padded with zeros.
    pub fn decode(s: &[u8]) -> Profile {
        let mut v = [0u8; 64];
        let n = s.len().min(64);
        v[..n].copy_from_slice(&s[..n]);
        let w = |i: usize| u16::from_le_bytes([v[i], v[i + 1]]);
        let d = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let mut rest = [0u8; 44];
        rest.copy_from_slice(&v[20..]);
        Profile {
            controllers: w(0),
            b_channels: w(2),
            global_options: d(4),
            b1_protocols: d(8),
            b2_protocols: d(12),
            b3_protocols: d(16),
            rest,
        }
    }
}

/// A management message's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mgmt {
    RegisterReq {
        buffer: u32,
        message_buffer_size: u16,
        params: RegisterParams,
        capi_version: u8,
    },
    RegisterConf {
        info: u16,
    },
    GetProfileReq {
        controller: u32,
    },
    GetProfileConf {
        info: u16,
        profile: Profile,
    },
    GetManufacturerReq {
        controller: u32,
    },
    GetManufacturerConf {
        text: Vec<u8>,
    },
    GetVersionReq {
        controller: u32,
    },
    GetVersionConf {
        version: [u8; 4],
        text: Vec<u8>,
    },
    GetSerialNumberReq {
        controller: u32,
    },
    GetSerialNumberConf {
        text: Vec<u8>,
    },
}

impl Mgmt {
    pub fn command(&self) -> u8 {
        use mgmt::*;
        match self {
            Mgmt::RegisterReq { .. } => REGISTER_REQ,
            Mgmt::RegisterConf { .. } => REGISTER_CONF,
            Mgmt::GetProfileReq { .. } => GET_PROFILE_REQ,
            Mgmt::GetProfileConf { .. } => GET_PROFILE_CONF,
            Mgmt::GetManufacturerReq { .. } => GET_MANUFACTURER_REQ,
            Mgmt::GetManufacturerConf { .. } => GET_MANUFACTURER_CONF,
            Mgmt::GetVersionReq { .. } => GET_VERSION_REQ,
            Mgmt::GetVersionConf { .. } => GET_VERSION_CONF,
            Mgmt::GetSerialNumberReq { .. } => GET_SERIAL_NUMBER_REQ,
            Mgmt::GetSerialNumberConf { .. } => GET_SERIAL_NUMBER_CONF,
        }
    }
}

/// One frame's payload.
// Frames live one at a time on their way in or out; boxing the message
// would only add an allocation per CAPI message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A CAPI 2.0 message.
    Capi(Message),
    /// A management message with its header's application id and number.
    Mgmt {
        app_id: u16,
        number: u16,
        body: Mgmt,
    },
}

/// Why octets from the peer are not a remote-CAPI frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("remote-CAPI frame length {0} is shorter than length field and CAPI header")]
    TooShort(usize),
    #[error("remote-CAPI frame of {frame} octets holds a CAPI message of {message} octets")]
    LengthMismatch { frame: usize, message: usize },
    #[error("remote-CAPI management message 0x{command:02X} truncated")]
    MgmtTruncated { command: u8 },
    #[error("remote-CAPI frame holds a malformed CAPI message: {0}")]
    Capi(#[from] DecodeError),
    #[error("remote-CAPI frame too long: {0} octets (limit 65535)")]
    TooLong(usize),
    #[error("CAPI message cannot be encoded: {0}")]
    Encode(#[from] crate::message::EncodeError),
}

/// Octets a 64-octet text struct occupies: length octet and text.
fn text_struct(out: &mut Vec<u8>, text: &[u8]) {
    out.push(64);
    let mut t = [0u8; 64];
    let n = text.len().min(64);
    t[..n].copy_from_slice(&text[..n]);
    out.extend_from_slice(&t);
}

fn read_text_struct(s: &[u8]) -> Option<Vec<u8>> {
    let (&len, rest) = s.split_first()?;
    let t = rest.get(..usize::from(len))?;
    // The field is 64 octets of text; longer structs are cut to it.
    let t = &t[..t.len().min(64)];
    let end = t.iter().position(|&b| b == 0).unwrap_or(t.len());
    Some(t[..end].to_vec())
}

impl Frame {
    /// Appends the frame (length field included) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        match self {
            Frame::Capi(m) => m.encode(out)?,
            Frame::Mgmt {
                app_id,
                number,
                body,
            } => {
                let hdr = out.len();
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&app_id.to_le_bytes());
                out.push(body.command());
                out.push(MGMT_SUBCOMMAND);
                out.extend_from_slice(&number.to_le_bytes());
                match body {
                    Mgmt::RegisterReq {
                        buffer,
                        message_buffer_size,
                        params,
                        capi_version,
                    } => {
                        out.extend_from_slice(&buffer.to_le_bytes());
                        out.extend_from_slice(&message_buffer_size.to_le_bytes());
                        out.extend_from_slice(&params.max_logical_connections.to_le_bytes());
                        out.extend_from_slice(&params.max_b_data_blocks.to_le_bytes());
                        out.extend_from_slice(&params.max_b_data_len.to_le_bytes());
                        out.push(*capi_version);
                    }
                    Mgmt::RegisterConf { info } => out.extend_from_slice(&info.to_le_bytes()),
                    Mgmt::GetProfileReq { controller }
                    | Mgmt::GetManufacturerReq { controller }
                    | Mgmt::GetVersionReq { controller }
                    | Mgmt::GetSerialNumberReq { controller } => {
                        out.extend_from_slice(&controller.to_le_bytes())
                    }
                    Mgmt::GetProfileConf { info, profile } => {
                        out.extend_from_slice(&info.to_le_bytes());
                        out.extend_from_slice(&profile.encode());
                    }
                    Mgmt::GetManufacturerConf { text } | Mgmt::GetSerialNumberConf { text } => {
                        text_struct(out, text)
                    }
                    Mgmt::GetVersionConf { version, text } => {
                        out.extend_from_slice(version);
                        text_struct(out, text);
                    }
                }
                let total = (out.len() - hdr) as u16; // < 200 octets
                out[hdr..hdr + 2].copy_from_slice(&total.to_le_bytes());
            }
        }
        let len = out.len() - start;
        let len16 = u16::try_from(len).map_err(|_| FrameError::TooLong(len))?;
        out[start..start + 2].copy_from_slice(&len16.to_be_bytes());
        Ok(())
    }

    pub fn to_vec(&self) -> Result<Vec<u8>, FrameError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Octets of the frame at the start of `buf`, if the length field is
    /// there; the frame may not be complete yet.
    pub fn peek_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(l) = buf.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if len < 2 + HEADER_LEN {
            return Err(FrameError::TooShort(len));
        }
        Ok(Some(len))
    }

    /// Decodes the frame at the start of `buf`: `Ok(None)` when more octets
    /// are needed, else the frame and the octets it occupied. After an
    /// error other than [`FrameError::TooShort`] the frame's octets
    /// ([`Frame::peek_len`]) can be skipped: frames are self-delimiting.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(len) = Self::peek_len(buf)? else {
            return Ok(None);
        };
        let Some(payload) = buf.get(2..len) else {
            return Ok(None);
        };
        let frame = Self::decode_payload(payload)?;
        Ok(Some((frame, len)))
    }

    /// Decodes a frame's payload (the octets after the length field).
    pub fn decode_payload(p: &[u8]) -> Result<Frame, FrameError> {
        let Some(h) = p.get(..HEADER_LEN) else {
            return Err(FrameError::TooShort(p.len() + 2));
        };
        let (command, subcommand) = (h[4], h[5]);
        let is_mgmt = subcommand == MGMT_SUBCOMMAND
            && matches!(command, 0xE0 | 0xE1 | 0xF2 | 0xF3 | 0xFA..=0xFF);
        if !is_mgmt {
            let (m, used) = Message::decode(p)?;
            if used != p.len() {
                return Err(FrameError::LengthMismatch {
                    frame: p.len() + 2,
                    message: used,
                });
            }
            return Ok(Frame::Capi(m));
        }
        let short = FrameError::MgmtTruncated { command };
        let app_id = u16::from_le_bytes([h[2], h[3]]);
        let number = u16::from_le_bytes([h[6], h[7]]);
        let b = p.get(HEADER_LEN..).unwrap_or(&[]);
        let w = |i: usize| -> Result<u16, FrameError> {
            b.get(i..i + 2)
                .map(|x| u16::from_le_bytes([x[0], x[1]]))
                .ok_or(short.clone())
        };
        let d = |i: usize| -> Result<u32, FrameError> {
            b.get(i..i + 4)
                .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                .ok_or(short.clone())
        };
        use mgmt::*;
        let body = match command {
            REGISTER_REQ => Mgmt::RegisterReq {
                buffer: d(0)?,
                message_buffer_size: w(4)?,
                params: RegisterParams {
                    max_logical_connections: w(6)?,
                    max_b_data_blocks: w(8)?,
                    max_b_data_len: w(10)?,
                },
                // Old libcapi20 clients omit the version octet.
                capi_version: b.get(12).copied().unwrap_or(2),
            },
            REGISTER_CONF => Mgmt::RegisterConf { info: w(0)? },
            GET_PROFILE_REQ => Mgmt::GetProfileReq { controller: d(0)? },
            GET_MANUFACTURER_REQ => Mgmt::GetManufacturerReq { controller: d(0)? },
            GET_VERSION_REQ => Mgmt::GetVersionReq { controller: d(0)? },
            GET_SERIAL_NUMBER_REQ => Mgmt::GetSerialNumberReq { controller: d(0)? },
            GET_PROFILE_CONF => Mgmt::GetProfileConf {
                info: w(0)?,
                profile: Profile::decode(b.get(2..).unwrap_or(&[])),
            },
            GET_MANUFACTURER_CONF => Mgmt::GetManufacturerConf {
                text: read_text_struct(b).ok_or(short)?,
            },
            GET_SERIAL_NUMBER_CONF => Mgmt::GetSerialNumberConf {
                text: read_text_struct(b).ok_or(short)?,
            },
            GET_VERSION_CONF => {
                let v = b.get(..4).ok_or(short.clone())?;
                Mgmt::GetVersionConf {
                    version: [v[0], v[1], v[2], v[3]],
                    text: read_text_struct(&b[4..]).ok_or(short)?,
                }
            }
            _ => return Err(short),
        };
        Ok(Frame::Mgmt {
            app_id,
            number,
            body,
        })
    }
}

// ---------------------------------------------------------------------------
// Client.

/// Frames a [`RemoteTransport`] may queue before `put_message` reports a
/// full queue (CAPI info 0x1103), as a controller's message queue would.
const SEND_QUEUE: usize = 4096;

/// Reads frames from a byte source, skipping malformed ones.
#[derive(Debug)]
struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(8192),
        }
    }

    /// The next well-formed frame; `Ok(None)` at end of stream.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Frame>>> {
        loop {
            match Frame::decode(&self.buf) {
                Ok(Some((f, used))) => {
                    self.buf.advance(used);
                    return Poll::Ready(Ok(Some(f)));
                }
                Ok(None) => {}
                Err(FrameError::TooShort(n)) => {
                    // The length field itself is wrong: no way to find the
                    // next frame boundary.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        FrameError::TooShort(n),
                    )));
                }
                Err(e) => {
                    let skip = Frame::peek_len(&self.buf).ok().flatten().unwrap_or(2);
                    tracing::warn!(error = %e, octets = skip, "remote CAPI: malformed frame skipped");
                    self.buf.advance(skip.min(self.buf.len()));
                    continue;
                }
            }
            self.buf.reserve(8192);
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    if !self.buf.is_empty() {
                        tracing::warn!(
                            octets = self.buf.len(),
                            "remote CAPI: connection closed inside a frame"
                        );
                    }
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Ok(())) => self.buf.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    async fn frame(&mut self) -> io::Result<Option<Frame>> {
        std::future::poll_fn(|cx| self.poll_frame(cx)).await
    }
}

/// A CAPI application registered with a remote-CAPI server (see the module docs).
#[derive(Debug)]
pub struct RemoteTransport {
    app_id: u16,
    params: RegisterParams,
    peer: SocketAddr,
    reader: FrameReader<OwnedReadHalf>,
    tx: mpsc::Sender<Vec<u8>>,
}

/// How long connecting and each management answer may take: a router on
/// the LAN answers at once; anything slower is not a usable CAPI server.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn connect_tcp(addr: &str) -> Result<TcpStream, TransportError> {
    let stream = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unavailable(addr, "connection timed out"))?
        .map_err(|e| unavailable(addr, e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn unavailable(addr: &str, what: impl std::fmt::Display) -> TransportError {
    TransportError::Unavailable(format!(
        "remote CAPI server {addr}: {what}; check the address, that the router's remote-CAPI \
         service is switched on (FRITZ!Box: dial #96*3*), and the firewall"
    ))
}

impl RemoteTransport {
    /// Connects to `addr` (`host:port`) and registers an application.
    pub async fn connect(addr: &str, params: RegisterParams) -> Result<Self, TransportError> {
        let stream = connect_tcp(addr).await?;
        let peer = stream.peer_addr()?;
        let (r, mut w) = stream.into_split();
        let mut reader = FrameReader::new(r);
        let req = Frame::Mgmt {
            app_id: 0,
            number: 0,
            body: Mgmt::RegisterReq {
                buffer: 0,
                message_buffer_size: 1024u16
                    .saturating_add(1024u16.saturating_mul(params.max_logical_connections)),
                params,
                capi_version: 2,
            },
        };
        let bytes = req
            .to_vec()
            .map_err(|e| TransportError::Unavailable(e.to_string()))?;
        w.write_all(&bytes).await?;
        let conf = tokio::time::timeout(ANSWER_TIMEOUT, reader.frame())
            .await
            .map_err(|_| unavailable(addr, "no answer to REGISTER_REQ"))??;
        let app_id = match conf {
            Some(Frame::Mgmt {
                app_id,
                body: Mgmt::RegisterConf { info },
                ..
            }) => {
                if info != 0 {
                    return Err(unavailable(
                        addr,
                        format_args!("registration refused with info 0x{info:04X}"),
                    ));
                }
                if app_id == 0 {
                    1
                } else {
                    app_id
                }
            }
            Some(other) => {
                return Err(unavailable(
                    addr,
                    format_args!("answered REGISTER_REQ with {other:?}"),
                ))
            }
            None => return Err(unavailable(addr, "closed the connection on REGISTER_REQ")),
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if let Err(e) = w.write_all(&frame).await {
                    tracing::warn!(error = %e, "remote CAPI: write failed; connection lost");
                    return;
                }
            }
            // Every sender dropped: CAPI_RELEASE is closing the connection.
            let _ = w.shutdown().await;
        });
        tracing::info!(%peer, app_id, "remote CAPI: application registered");
        Ok(RemoteTransport {
            app_id,
            params,
            peer,
            reader,
            tx,
        })
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

impl Transport for RemoteTransport {
    fn app_id(&self) -> u16 {
        self.app_id
    }

    fn params(&self) -> RegisterParams {
        self.params
    }

    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        let mut m = msg.clone();
        m.app_id = self.app_id;
        let frame = Frame::Capi(m).to_vec().map_err(|e| match e {
            FrameError::Encode(e) => TransportError::Encode(e),
            // The message and the 2-octet length field exceed 65535.
            FrameError::TooLong(n) => {
                TransportError::Encode(crate::message::EncodeError::TooLong(n))
            }
            other => TransportError::Unavailable(other.to_string()),
        })?;
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }

    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        loop {
            match self.reader.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    tracing::warn!(peer = %self.peer, error = %e, "remote CAPI: connection failed");
                    return Poll::Ready(Err(TransportError::Closed));
                }
                Poll::Ready(Ok(None)) => return Poll::Ready(Err(TransportError::Closed)),
                Poll::Ready(Ok(Some(Frame::Capi(mut m)))) => {
                    m.app_id = self.app_id;
                    return Poll::Ready(Ok(m));
                }
                Poll::Ready(Ok(Some(Frame::Mgmt { body, .. }))) => {
                    tracing::debug!(
                        command = body.command(),
                        "remote CAPI: management message ignored"
                    );
                }
            }
        }
    }
}

/// What a remote-CAPI server reports about one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerReport {
    pub profile: Profile,
    pub manufacturer: String,
}

/// Asks the server at `addr` for `controller`'s profile and manufacturer on
/// a connection of its own (no application is registered): a cheap check
/// that the controller is there, e.g. for a status display.
pub async fn query_controller(
    addr: &str,
    controller: u32,
) -> Result<ControllerReport, TransportError> {
    let stream = connect_tcp(addr).await?;
    let (r, mut w) = stream.into_split();
    let mut reader = FrameReader::new(r);
    let mut out = Vec::new();
    for (number, body) in [
        (1, Mgmt::GetProfileReq { controller }),
        (2, Mgmt::GetManufacturerReq { controller }),
    ] {
        Frame::Mgmt {
            app_id: 0,
            number,
            body,
        }
        .encode(&mut out)
        .map_err(|e| TransportError::Unavailable(e.to_string()))?;
    }
    w.write_all(&out).await?;
    let (mut profile, mut manufacturer) = (None, None);
    while profile.is_none() || manufacturer.is_none() {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, reader.frame())
            .await
            .map_err(|_| unavailable(addr, "no answer to GET_PROFILE"))??;
        match frame {
            Some(Frame::Mgmt {
                body: Mgmt::GetProfileConf { info, profile: p },
                ..
            }) => {
                if info != 0 {
                    return Err(unavailable(
                        addr,
                        format_args!("controller {controller}: GET_PROFILE info 0x{info:04X}"),
                    ));
                }
                profile = Some(p);
            }
            Some(Frame::Mgmt {
                body: Mgmt::GetManufacturerConf { text },
                ..
            }) => manufacturer = Some(String::from_utf8_lossy(&text).into_owned()),
            Some(_) => {}
            None => return Err(unavailable(addr, "closed the connection on GET_PROFILE")),
        }
    }
    let profile = profile.ok_or(TransportError::Closed)?;
    if u32::from(profile.controllers) < controller || controller == 0 {
        return Err(unavailable(
            addr,
            format_args!(
                "has {} controller(s), no controller {controller}",
                profile.controllers
            ),
        ));
    }
    Ok(ControllerReport {
        profile,
        manufacturer: manufacturer.unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------
// Server.

/// Manufacturer string the simulator reports.
pub const SIM_MANUFACTURER: &str = "os4x ISDN simulator";

/// A remote-CAPI server whose controllers are a simulated exchange's
/// ([`Sim`]): every TCP client becomes one registered application.
/// Lets separate processes (daemons under test, demos) share one
/// simulated ISDN network, each through the same [`RemoteTransport`] it
/// would use with a real router.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    sim: Sim,
}

impl Server {
    /// Binds `addr` (e.g. `127.0.0.1:0`).
    pub async fn bind(addr: &str, sim: Sim) -> io::Result<Server> {
        Ok(Server {
            listener: TcpListener::bind(addr).await?,
            sim,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The exchange served (for fault injection: `server.sim().exchange().break_line(1)`).
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Serves clients until the task is dropped; errors of one connection
    /// end that connection only.
    pub async fn serve(self) -> io::Result<()> {
        serve_sim(self.sim, self.listener).await
    }
}

/// Serves `sim` to every client of `listener` (see [`Server`]).
pub async fn serve_sim(sim: Sim, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "remote CAPI server: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let sim = sim.clone();
        tokio::spawn(async move {
            match serve_connection(sim, stream).await {
                Ok(()) => tracing::debug!(%peer, "remote CAPI server: client left"),
                Err(e) => tracing::info!(%peer, error = %e, "remote CAPI server: client dropped"),
            }
        });
    }
}

fn sim_profile(sim: &Sim, controller: u32) -> (u16, Profile) {
    let ex = sim.exchange();
    let controllers = ex.controller_count() as u16;
    let b_channels = ex.b_channels(controller);
    drop(ex);
    let info = if controller == 0 || b_channels.is_some() {
        0
    } else {
        0x2003 // illegal controller
    };
    let profile = Profile {
        controllers,
        b_channels: b_channels.unwrap_or(0) as u16,
        global_options: 1,   // internal controller
        b1_protocols: 0b11,  // 64k HDLC, 64k transparent
        b2_protocols: 0b11,  // X.75 SLP, transparent
        b3_protocols: 0b101, // transparent, ISO 8208
        rest: [0; 44],
    };
    (info, profile)
}

async fn serve_connection(sim: Sim, stream: TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut reader = FrameReader::new(r);
    let mut app: Option<(crate::sim::SimTransport, u16)> = None;
    let mut out = Vec::new();
    loop {
        out.clear();
        let frame = match &mut app {
            None => match reader.frame().await? {
                Some(f) => f,
                None => return Ok(()),
            },
            Some((t, client_id)) => {
                tokio::select! {
                    f = reader.frame() => match f? {
                        Some(f) => f,
                        None => return Ok(()),
                    },
                    m = std::future::poll_fn(|cx| t.poll_get_message(cx)) => {
                        let mut m = m.map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
                        m.app_id = *client_id;
                        Frame::Capi(m)
                            .encode(&mut out)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        w.write_all(&out).await?;
                        continue;
                    }
                }
            }
        };
        let reply = match frame {
            Frame::Capi(mut m) => {
                let Some((t, client_id)) = &mut app else {
                    tracing::warn!(
                        msg = m.params.name(),
                        "remote CAPI server: CAPI message before REGISTER_REQ; closing"
                    );
                    return Ok(());
                };
                *client_id = m.app_id;
                m.app_id = t.app_id();
                if let Err(e) = t.put_message(&m) {
                    tracing::warn!(error = %e, "remote CAPI server: message refused");
                }
                continue;
            }
            Frame::Mgmt {
                app_id,
                number,
                body,
            } => {
                let answer = match body {
                    Mgmt::RegisterReq {
                        params,
                        capi_version,
                        ..
                    } => {
                        let info = if app.is_some() || capi_version != 2 {
                            register_info::OS_RESOURCE_ERROR
                        } else if params.max_b_data_len < 128 {
                            register_info::LOGICAL_BLOCK_TOO_SMALL
                        } else if params.max_logical_connections == 0 {
                            register_info::TOO_MANY_CONNECTIONS
                        } else {
                            register_info::OK
                        };
                        let mut id = app_id;
                        if info == 0 {
                            let t = sim.register(params);
                            id = t.app_id();
                            app = Some((t, app_id));
                        }
                        return_frame(id, number, Mgmt::RegisterConf { info })
                    }
                    Mgmt::GetProfileReq { controller } => {
                        let (info, profile) = sim_profile(&sim, controller);
                        return_frame(app_id, number, Mgmt::GetProfileConf { info, profile })
                    }
                    Mgmt::GetManufacturerReq { .. } => return_frame(
                        app_id,
                        number,
                        Mgmt::GetManufacturerConf {
                            text: SIM_MANUFACTURER.as_bytes().to_vec(),
                        },
                    ),
                    Mgmt::GetSerialNumberReq { controller } => return_frame(
                        app_id,
                        number,
                        Mgmt::GetSerialNumberConf {
                            text: format!("SIM{controller:04}").into_bytes(),
                        },
                    ),
                    Mgmt::GetVersionReq { .. } => return_frame(
                        app_id,
                        number,
                        Mgmt::GetVersionConf {
                            version: [2, 0, 0, 1],
                            text: SIM_MANUFACTURER.as_bytes().to_vec(),
                        },
                    ),
                    other => {
                        tracing::debug!(
                            command = other.command(),
                            "remote CAPI server: confirmation from a client ignored"
                        );
                        continue;
                    }
                };
                answer
            }
        };
        reply
            .encode(&mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        w.write_all(&out).await?;
    }
}

fn return_frame(app_id: u16, number: u16, body: Mgmt) -> Frame {
    Frame::Mgmt {
        app_id,
        number,
        body,
    }
}

/// Reads a frame from any async reader (for tools and tests that speak
/// the protocol by hand).
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = usize::from(u16::from_be_bytes(len));
    if n < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameError::TooShort(n),
        ));
    }
    let mut v = vec![0u8; n];
    v[..2].copy_from_slice(&len);
    r.read_exact(&mut v[2..]).await?;
    Ok(Some(v))
}
