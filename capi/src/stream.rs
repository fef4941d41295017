//! CAPI calls as byte streams: place and accept calls, and run an
//! established B3 connection as `AsyncRead + AsyncWrite`.
//!
//! [`Application::start`] moves a [`Transport`] into a dispatcher task
//! that speaks CAPI on the application's behalf (the message sequences of
//! CAPI 2.0 part I chapter 7). [`Application::dial`] and
//! [`IncomingCall::accept`] return a [`B3Stream`] once the B3 connection
//! is active.
//!
//! **Framing.** The B protocol the call is placed or accepted with decides
//! (see [`crate::config::B3Mode`]):
//!
//! * *Transparent B3*: writes are cut into blocks of at most the registered
//!   `max_b_data_len` and sent as `DATA_B3_REQ`. Block boundaries are not
//!   visible to the reader: the stream is an octet stream, like TCP, and
//!   OFTP frames its commands with the Stream Transmission Header (RFC 5024
//!   section 8) exactly as on TCP.
//! * *ISO 8208* (RFC 5024 Appendix D): the CONNECT_B3 NCPI carries the X.25
//!   call with the ODETTE facilities, and each OFTP exchange buffer travels
//!   as a complete packet sequence of the negotiated packet size (M-bit on
//!   all but the last packet), without STH, as Appendix D partners expect.
//!   The stream still shows STB framing to its user, so the same `oftp2`
//!   driver runs unchanged: written STBs are taken apart into packets,
//!   received packet sequences are put back together with an STH
//!   ([`crate::x25`]). Such a stream carries STB-framed data only.
//!
//! Either way at most `max_b_data_blocks` blocks are unconfirmed at a time,
//! and received `DATA_B3_IND` blocks are answered with `DATA_B3_RESP` only
//! when the reader has taken them (ISO 8208: the last packet of a sequence),
//! so a slow reader throttles the sender end to end.
//!
//! **Clearing.** Shutting down or dropping the stream waits until every
//! block is confirmed, then sends `DISCONNECT_B3_REQ` and `DISCONNECT_REQ`.
//! When the partner or the line clears the call, the reader sees end of
//! stream after the last delivered octet; [`B3Stream::disconnect_reason`]
//! tells why.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::config::B3Mode;
use crate::message::*;
use crate::transport::{Transport, TransportError};
use crate::x25::{self, Negotiated, Reassembler, Received, Segmenter, X25Call};

/// Why a call did not get through or ended.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("call cleared, reason 0x{reason:04X} ({})", describe_reason(*reason))]
    Cleared { reason: u16 },
    #[error("controller refused {message} with info 0x{info:04X}")]
    Refused { message: &'static str, info: u16 },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the CAPI application task has stopped")]
    Stopped,
}

/// Text for a `DISCONNECT_IND` reason, for logs and errors.
pub fn describe_reason(reason: u16) -> &'static str {
    match reason {
        0 => "normal clearing",
        0x3301 => "layer 1 error: line broken",
        0x3302 => "layer 2 (X.75) protocol error: the link to the partner failed",
        0x3303 => "layer 3 (X.25) protocol error: often the partner runs the other b3 mode (iso8208 / transparent)",
        0x3481 => "unallocated number: check the partner's ISDN number",
        0x3490 => "normal call clearing",
        0x3491 => "user busy",
        0x3492 => "no user responding: nobody accepts calls on that number",
        0x3495 => "call rejected",
        0x349B => "destination out of order",
        0x34A2 => "no circuit/channel available",
        0x34D8 => "incompatible destination",
        r if r & 0xFF00 == 0x3400 => "network cause (Q.850)",
        _ => "CAPI reason",
    }
}

/// What is known about a connected call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub controller: u8,
    pub plci: u32,
    pub ncci: u32,
    /// The calling party's digits, when the network presented them.
    pub calling: Option<String>,
    /// The called number (MSN/DDI) digits.
    pub called: Option<String>,
}

/// An incoming call offered by `CONNECT_IND`; answer with `accept` or `reject`.
#[derive(Debug)]
pub struct IncomingCall {
    pub plci: u32,
    pub cip: u16,
    pub calling: Option<String>,
    pub called: Option<String>,
    cmd: mpsc::UnboundedSender<Command>,
}

impl IncomingCall {
    /// Accepts with the given B protocol and waits for the B3 connection.
    pub async fn accept(self, b_protocol: BProtocol) -> Result<B3Stream, CallError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Accept {
                plci: self.plci,
                b_protocol,
                reply: tx,
            })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Rejects with a `CONNECT_RESP` reject value (see [`reject`]).
    pub fn reject(self, reject_value: u16) -> Result<(), CallError> {
        self.cmd
            .send(Command::Reject {
                plci: self.plci,
                reject: reject_value,
            })
            .map_err(|_| CallError::Stopped)
    }
}

/// The parameters of an outgoing call.
#[derive(Debug, Clone)]
pub struct Dial {
    pub controller: u32,
    pub called: String,
    /// Our number to present (an MSN of the controller), if any.
    pub calling: Option<String>,
    pub b_protocol: BProtocol,
}

enum Command {
    Listen {
        controller: u32,
        cip_mask: u32,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Dial {
        dial: Dial,
        reply: oneshot::Sender<Result<B3Stream, CallError>>,
    },
    Accept {
        plci: u32,
        b_protocol: BProtocol,
        reply: oneshot::Sender<Result<B3Stream, CallError>>,
    },
    Reject {
        plci: u32,
        reject: u16,
    },
    /// The partner cleared B3 but left the B channel up: clear it.
    Hangup {
        plci: u32,
    },
}

/// Settings of an [`Application`] beyond its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// ISO 8208: the largest packet size accepted when a caller asks for
    /// more than 128 (never more than the registered `max_b_data_len`).
    /// Appendix D.1 recommends 128.
    pub max_packet: u16,
    /// ISO 8208: the largest window accepted in negotiation.
    pub max_window: u8,
    /// After the partner clears the B3 connection (X.25 clear), how long
    /// to wait for it to clear the B channel too before doing it here, so
    /// no idle B channel stays connected (RFC 5024 Appendix D.2:
    /// "the recipient of the Clear Confirm should then close down the ISDN
    /// connection").
    pub peer_clear_grace: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_packet: x25::ODETTE_PACKET_SIZE,
            max_window: x25::ODETTE_WINDOW,
            peer_clear_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// A CAPI application: the handle to its dispatcher task.
#[derive(Debug)]
pub struct Application {
    cmd: mpsc::UnboundedSender<Command>,
    calls: mpsc::UnboundedReceiver<IncomingCall>,
    task: tokio::task::JoinHandle<Result<(), TransportError>>,
}

impl Application {
    /// Starts the dispatcher task for `transport` (needs a tokio runtime).
    pub fn start<T: Transport>(transport: T) -> Application {
        Self::start_with(transport, Options::default())
    }

    /// [`Application::start`] with non-default [`Options`].
    pub fn start_with<T: Transport>(transport: T, options: Options) -> Application {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (calls_tx, calls_rx) = mpsc::unbounded_channel();
        let mut d = Dispatcher {
            max_len: usize::from(transport.params().max_b_data_len.max(1)),
            window: usize::from(transport.params().max_b_data_blocks.clamp(1, 7)),
            t: transport,
            options,
            cmd: cmd_rx,
            cmd_tx: cmd_tx.clone(),
            calls: calls_tx,
            number: 0,
            listens: HashMap::new(),
            dials: HashMap::new(),
            calls_by_plci: HashMap::new(),
        };
        let task = tokio::spawn(async move { poll_fn(|cx| d.poll(cx)).await });
        Application {
            cmd: cmd_tx,
            calls: calls_rx,
            task,
        }
    }

    /// `LISTEN_REQ` on `controller` for the calls in `cip_mask`.
    pub async fn listen(&self, controller: u32, cip_mask: u32) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Listen {
                controller,
                cip_mask,
                reply: tx,
            })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The next incoming call (`None` when the dispatcher stopped).
    pub async fn next_call(&mut self) -> Option<IncomingCall> {
        self.calls.recv().await
    }

    /// Places a call and waits for the B3 connection.
    pub async fn dial(&self, dial: Dial) -> Result<B3Stream, CallError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Dial { dial, reply: tx })
            .map_err(|_| CallError::Stopped)?;
        rx.await.map_err(|_| CallError::Stopped)?
    }
}

impl Drop for Application {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An established B3 connection as an octet stream (see the module docs).
#[derive(Debug)]
pub struct B3Stream {
    inner: DuplexStream,
    info: CallInfo,
    reason: Arc<Mutex<Option<u16>>>,
    x25: Option<Negotiated>,
}

impl B3Stream {
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// The B3 protocol the connection runs.
    pub fn b3_mode(&self) -> B3Mode {
        if self.x25.is_some() {
            B3Mode::Iso8208
        } else {
            B3Mode::Transparent
        }
    }

    /// Packet sizes and windows of the X.25 call (ISO 8208 mode only).
    pub fn x25(&self) -> Option<Negotiated> {
        self.x25
    }

    /// The `DISCONNECT_IND` reason once the call is cleared.
    pub fn disconnect_reason(&self) -> Option<u16> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AsyncRead for B3Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for B3Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// Waiting for CONNECT_ACTIVE_IND.
    Connecting,
    /// Waiting for the B3 connection.
    B3Connecting,
    Up,
    /// We sent DISCONNECT_B3_REQ (or DISCONNECT_REQ).
    Closing,
    /// B3 gone; waiting for DISCONNECT_IND.
    Down,
}

struct Call {
    outgoing: bool,
    phase: Phase,
    info: CallInfo,
    reply: Option<oneshot::Sender<Result<B3Stream, CallError>>>,
    reason: Arc<Mutex<Option<u16>>>,
    /// Our end of the duplex pipe whose other end is the user's B3Stream.
    pipe: Option<DuplexStream>,
    /// Unconfirmed DATA_B3_REQ.
    in_flight: usize,
    next_handle: u16,
    /// Received blocks not yet fully written into the pipe: (handle, data).
    rx: VecDeque<(u16, Bytes)>,
    user_eof: bool,
    /// DISCONNECT_IND seen; kept only until `rx` has reached the reader.
    cleared: bool,
    read_buf: Vec<u8>,
    /// ISO 8208 B3 (RFC 5024 Appendix D); `None`: transparent B3.
    x25: Option<X25Link>,
}

/// The X.25 side of a call in ISO 8208 mode.
struct X25Link {
    /// Facilities our call request asked for (caller only).
    requested: x25::Facilities,
    neg: Negotiated,
    seg: Segmenter,
    reasm: Reassembler,
}

impl X25Link {
    fn new() -> Self {
        X25Link {
            requested: x25::Facilities::default(),
            neg: Negotiated::default(),
            seg: Segmenter::new(x25::ODETTE_PACKET_SIZE),
            reasm: Reassembler::new(),
        }
    }

    fn set(&mut self, neg: Negotiated) {
        self.neg = neg;
        self.seg = Segmenter::new(neg.tx_packet);
    }
}

fn is_iso8208(b: &BProtocol) -> bool {
    b.b3 == B3Protocol::Iso8208
}

struct Dispatcher<T> {
    t: T,
    options: Options,
    max_len: usize,
    window: usize,
    cmd: mpsc::UnboundedReceiver<Command>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    calls: mpsc::UnboundedSender<IncomingCall>,
    number: u16,
    listens: HashMap<u16, oneshot::Sender<Result<(), CallError>>>,
    /// CONNECT_REQ message number → dial waiting for CONNECT_CONF.
    dials: HashMap<u16, (Dial, oneshot::Sender<Result<B3Stream, CallError>>)>,
    calls_by_plci: HashMap<u32, Call>,
}

impl<T: Transport> Dispatcher<T> {
    fn put(&mut self, params: Params) -> Result<u16, TransportError> {
        self.number = self.number.wrapping_add(1);
        let m = Message::new(self.t.app_id(), self.number, params);
        tracing::trace!(msg = m.params.name(), "capi: put");
        self.t.put_message(&m)?;
        Ok(self.number)
    }

    fn reply_to(&mut self, number: u16, params: Params) -> Result<(), TransportError> {
        let m = Message::new(self.t.app_id(), number, params);
        self.t.put_message(&m)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        loop {
            let mut progress = false;
            while let Poll::Ready(c) = self.cmd.poll_recv(cx) {
                // The Application handle (and every IncomingCall) is gone.
                let Some(c) = c else {
                    return Poll::Ready(Ok(()));
                };
                self.command(c)?;
                progress = true;
            }
            loop {
                match self.t.poll_get_message(cx) {
                    Poll::Ready(Ok(m)) => {
                        self.message(m)?;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            let plcis: Vec<u32> = self.calls_by_plci.keys().copied().collect();
            for plci in plcis {
                progress |= self.pump(plci, cx)?;
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn command(&mut self, c: Command) -> Result<(), TransportError> {
        match c {
            Command::Listen {
                controller,
                cip_mask,
                reply,
            } => {
                let n = self.put(Params::ListenReq(ListenReq {
                    controller,
                    info_mask: 0,
                    cip_mask,
                    cip_mask2: 0,
                    calling_number: None,
                    calling_subaddress: vec![],
                }))?;
                self.listens.insert(n, reply);
            }
            Command::Dial { dial, reply } => {
                let n = self.put(Params::ConnectReq(ConnectReq {
                    controller: dial.controller,
                    cip: cip::UNRESTRICTED_DIGITAL,
                    called_number: Some(CalledPartyNumber::new(&dial.called)),
                    calling_number: dial.calling.as_deref().map(CallingPartyNumber::new),
                    called_subaddress: vec![],
                    calling_subaddress: vec![],
                    b_protocol: Some(dial.b_protocol.clone()),
                    bc: vec![],
                    llc: vec![],
                    hlc: vec![],
                    additional_info: vec![],
                }))?;
                self.dials.insert(n, (dial, reply));
            }
            Command::Accept {
                plci,
                b_protocol,
                reply,
            } => match self.calls_by_plci.get_mut(&plci) {
                Some(call) if call.reply.is_none() && call.phase == Phase::Connecting => {
                    call.reply = Some(reply);
                    if is_iso8208(&b_protocol) {
                        call.x25 = Some(X25Link::new());
                    }
                    self.put(Params::ConnectResp(ConnectResp {
                        plci,
                        reject: reject::ACCEPT,
                        b_protocol: Some(b_protocol),
                        connected_number: None,
                        connected_subaddress: vec![],
                        llc: vec![],
                        additional_info: vec![],
                    }))?;
                }
                _ => {
                    let _ = reply.send(Err(CallError::Cleared {
                        reason: self.reason_of(plci),
                    }));
                }
            },
            Command::Reject { plci, reject } => {
                if self.calls_by_plci.contains_key(&plci) {
                    self.put(Params::ConnectResp(ConnectResp {
                        plci,
                        reject: reject.max(1),
                        b_protocol: None,
                        connected_number: None,
                        connected_subaddress: vec![],
                        llc: vec![],
                        additional_info: vec![],
                    }))?;
                }
            }
            Command::Hangup { plci } => {
                if self
                    .calls_by_plci
                    .get(&plci)
                    .is_some_and(|c| matches!(c.phase, Phase::Down) && !c.cleared)
                {
                    tracing::info!(
                        plci,
                        "capi: partner left the B channel up after clearing B3; clearing it"
                    );
                    self.put(Params::DisconnectReq(DisconnectReq {
                        plci,
                        additional_info: vec![],
                    }))?;
                }
            }
        }
        Ok(())
    }

    fn reason_of(&self, plci: u32) -> u16 {
        self.calls_by_plci
            .get(&plci)
            .and_then(|c| *c.reason.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or(0x3490)
    }

    fn new_call(&mut self, outgoing: bool, info: CallInfo) -> &mut Call {
        self.calls_by_plci.entry(info.plci).or_insert(Call {
            outgoing,
            phase: Phase::Connecting,
            info,
            reply: None,
            reason: Arc::new(Mutex::new(None)),
            pipe: None,
            in_flight: 0,
            next_handle: 0,
            rx: VecDeque::new(),
            user_eof: false,
            cleared: false,
            read_buf: Vec::new(),
            x25: None,
        })
    }

    fn message(&mut self, m: Message) -> Result<(), TransportError> {
        tracing::trace!(msg = m.params.name(), "capi: got");
        let number = m.number;
        match m.params {
            Params::ListenConf(c) => {
                if let Some(reply) = self.listens.remove(&number) {
                    let _ = reply.send(if c.info == 0 {
                        Ok(())
                    } else {
                        Err(CallError::Refused {
                            message: "LISTEN_REQ",
                            info: c.info,
                        })
                    });
                }
            }
            Params::ConnectConf(c) => {
                if let Some((dial, reply)) = self.dials.remove(&number) {
                    if c.info != 0 {
                        let _ = reply.send(Err(CallError::Refused {
                            message: "CONNECT_REQ",
                            info: c.info,
                        }));
                    } else {
                        let call = self.new_call(
                            true,
                            CallInfo {
                                controller: controller_of(c.plci),
                                plci: c.plci,
                                ncci: 0,
                                calling: dial.calling.clone(),
                                called: Some(dial.called.clone()),
                            },
                        );
                        call.reply = Some(reply);
                        if is_iso8208(&dial.b_protocol) {
                            call.x25 = Some(X25Link::new());
                        }
                    }
                }
            }
            Params::ConnectInd(c) => {
                let calling = c.calling_number.as_ref().map(|n| n.digits_str());
                let called = c.called_number.as_ref().map(|n| n.digits_str());
                self.new_call(
                    false,
                    CallInfo {
                        controller: controller_of(c.plci),
                        plci: c.plci,
                        ncci: 0,
                        calling: calling.clone(),
                        called: called.clone(),
                    },
                );
                tracing::info!(plci = c.plci, calling, called, "capi: incoming call");
                let offer = IncomingCall {
                    plci: c.plci,
                    cip: c.cip,
                    calling,
                    called,
                    cmd: self.cmd_tx.clone(),
                };
                if let Err(e) = self.calls.send(offer) {
                    // Nobody takes calls any more: refuse it rather than let it ring.
                    self.command(Command::Reject {
                        plci: e.0.plci,
                        reject: reject::OUT_OF_ORDER,
                    })?;
                }
            }
            Params::ConnectActiveInd(c) => {
                self.reply_to(number, Params::ConnectActiveResp(Ident { id: c.plci }))?;
                let mut b3_req = None;
                if let Some(call) = self.calls_by_plci.get_mut(&c.plci) {
                    call.phase = Phase::B3Connecting;
                    if call.outgoing {
                        b3_req = Some(match call.x25.as_mut() {
                            None => Vec::new(),
                            Some(link) => {
                                // Appendix D.1: explicit packet size and
                                // window, no call user data.
                                let x = X25Call::odette(
                                    call.info.called.as_deref().unwrap_or(""),
                                    call.info.calling.as_deref().unwrap_or(""),
                                );
                                link.requested = x.facilities.clone();
                                X25Ncpi::for_call(x25::ODETTE_LCN, &x)
                                    .map(|n| n.encode())
                                    .unwrap_or_default()
                            }
                        });
                    }
                }
                if let Some(ncpi) = b3_req {
                    self.put(Params::ConnectB3Req(IdentNcpi { id: c.plci, ncpi }))?;
                }
            }
            Params::ConnectB3Conf(c) => {
                if c.info != 0 {
                    let plci = plci_of(c.id);
                    if let Some(call) = self.calls_by_plci.get_mut(&plci) {
                        if let Some(r) = call.reply.take() {
                            let _ = r.send(Err(CallError::Refused {
                                message: "CONNECT_B3_REQ",
                                info: c.info,
                            }));
                        }
                    }
                    self.put(Params::DisconnectReq(DisconnectReq {
                        plci,
                        additional_info: vec![],
                    }))?;
                }
            }
            Params::ConnectB3Ind(c) => {
                let (max_packet, max_window) = (
                    self.options.max_packet.min(self.max_len as u16),
                    self.options.max_window,
                );
                let mut ncpi = Vec::new();
                if let Some(link) = self
                    .calls_by_plci
                    .get_mut(&plci_of(c.id))
                    .and_then(|call| call.x25.as_mut())
                {
                    let (ind, call) = match X25Ncpi::decode(&c.ncpi) {
                        Ok(Some(n)) => {
                            let call = n.call().unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "capi: X.25 incoming call facilities unreadable; Appendix D defaults used");
                                X25Call::default()
                            });
                            (n, call)
                        }
                        _ => (X25Ncpi::default(), X25Call::default()),
                    };
                    if !call.user_data.is_empty() {
                        tracing::info!(
                            octets = call.user_data.len(),
                            "capi: X.25 call user data ignored (RFC 5024 Appendix C.1)"
                        );
                    }
                    let (fac, neg) = x25::negotiate(&call.facilities, max_packet, max_window);
                    tracing::debug!(?neg, called = %call.called, calling = %call.calling, "capi: X.25 incoming call");
                    link.set(neg);
                    if !fac.is_empty() {
                        let accepted = X25Call {
                            facilities: fac,
                            ..X25Call::default()
                        };
                        ncpi = X25Ncpi {
                            flags: 0,
                            group: ind.group,
                            channel: ind.channel,
                            contents: accepted.encode().unwrap_or_default(),
                        }
                        .encode();
                    }
                }
                self.reply_to(
                    number,
                    Params::ConnectB3Resp(ConnectB3Resp {
                        ncci: c.id,
                        reject: 0,
                        ncpi,
                    }),
                )?;
            }
            Params::ConnectB3ActiveInd(c) => {
                self.reply_to(number, Params::ConnectB3ActiveResp(Ident { id: c.id }))?;
                let pipe_size = self.max_len * self.window;
                if let Some(call) = self.calls_by_plci.get_mut(&plci_of(c.id)) {
                    call.info.ncci = c.id;
                    call.phase = Phase::Up;
                    if let (true, Some(link)) = (call.outgoing, call.x25.as_mut()) {
                        let connected = X25Ncpi::decode(&c.ncpi)
                            .ok()
                            .flatten()
                            .and_then(|n| n.call().ok())
                            .map(|c| c.facilities)
                            .unwrap_or_default();
                        let neg = x25::caller_negotiated(&link.requested, &connected);
                        link.set(neg);
                    }
                    let (mine, theirs) = tokio::io::duplex(pipe_size);
                    call.pipe = Some(mine);
                    let stream = B3Stream {
                        inner: theirs,
                        info: call.info.clone(),
                        reason: call.reason.clone(),
                        x25: call.x25.as_ref().map(|l| l.neg),
                    };
                    tracing::info!(plci = call.info.plci, ncci = c.id, "capi: B3 connection up");
                    if let Some(r) = call.reply.take() {
                        if r.send(Ok(stream)).is_err() {
                            call.user_eof = true;
                        }
                    }
                }
            }
            Params::DataB3Ind(d) => {
                if let Some(call) = self.calls_by_plci.get_mut(&plci_of(d.ncci)) {
                    if call.pipe.is_some() {
                        let Some(link) = call.x25.as_mut() else {
                            call.rx.push_back((d.handle, d.data));
                            return Ok(());
                        };
                        match link.reasm.packet(&d.data, d.flags) {
                            // The reader's pace is kept per exchange buffer:
                            // the last packet is answered once it is read.
                            Ok(Received::Complete(stb)) => {
                                call.rx.push_back((d.handle, stb));
                                return Ok(());
                            }
                            Ok(Received::Partial) => {}
                            Ok(Received::Ignored(why)) => {
                                tracing::warn!(ncci = d.ncci, why, "capi: X.25 packet dropped");
                            }
                            Err(e) => {
                                tracing::warn!(ncci = d.ncci, error = %e, "capi: clearing the X.25 call");
                                call.user_eof = true;
                            }
                        }
                    }
                }
                // Nobody reads this connection, or the packet went into a
                // reassembly buffer: answer so the window stays open.
                self.reply_to(
                    number,
                    Params::DataB3Resp(DataB3Resp {
                        ncci: d.ncci,
                        handle: d.handle,
                    }),
                )?;
            }
            Params::DataB3Conf(c) => {
                if let Some(call) = self.calls_by_plci.get_mut(&plci_of(c.ncci)) {
                    call.in_flight = call.in_flight.saturating_sub(1);
                    if c.info != 0 {
                        tracing::warn!(
                            ncci = c.ncci,
                            info = c.info,
                            "capi: DATA_B3_REQ refused; clearing the call"
                        );
                        call.user_eof = true;
                    }
                }
            }
            Params::DisconnectB3Ind(d) => {
                self.reply_to(number, Params::DisconnectB3Resp(Ident { id: d.ncci }))?;
                let plci = plci_of(d.ncci);
                let mut clear = false;
                if let Some(call) = self.calls_by_plci.get_mut(&plci) {
                    // Our clearing, or a B3 connection that never came up
                    // (e.g. the partner runs another B3 protocol): clear
                    // the call so the dial/accept fails with the reason.
                    clear = matches!(call.phase, Phase::Closing | Phase::B3Connecting);
                    call.phase = Phase::Down;
                    if d.reason_b3 != 0 {
                        *call.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(d.reason_b3);
                    }
                }
                if clear {
                    self.put(Params::DisconnectReq(DisconnectReq {
                        plci,
                        additional_info: vec![],
                    }))?;
                } else if self.calls_by_plci.contains_key(&plci) {
                    // Partner's clearing: it should clear the call now.
                    let (tx, grace) = (self.cmd_tx.clone(), self.options.peer_clear_grace);
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        let _ = tx.send(Command::Hangup { plci });
                    });
                }
            }
            Params::DisconnectInd(d) => {
                self.reply_to(number, Params::DisconnectResp(Ident { id: d.plci }))?;
                if let Some(mut call) = self.calls_by_plci.remove(&d.plci) {
                    let mut r = call.reason.lock().unwrap_or_else(|e| e.into_inner());
                    if r.is_none() || d.reason != 0 {
                        *r = Some(d.reason);
                    }
                    let reason = r.unwrap_or(d.reason);
                    drop(r);
                    tracing::info!(
                        plci = d.plci,
                        reason = format_args!("0x{reason:04X}"),
                        "capi: call cleared"
                    );
                    if let Some(reply) = call.reply.take() {
                        let _ = reply.send(Err(CallError::Cleared { reason }));
                    }
                    // Blocks already received still reach the reader; then
                    // end of stream.
                    if call.pipe.is_some() && !call.rx.is_empty() {
                        call.phase = Phase::Down;
                        call.user_eof = true;
                        call.cleared = true;
                        self.calls_by_plci.insert(d.plci, call);
                    }
                }
            }
            Params::InfoInd(i) => {
                self.reply_to(number, Params::InfoResp(Ident { id: i.id }))?;
            }
            Params::DisconnectConf(_) | Params::DisconnectB3Conf(_) => {}
            other => tracing::debug!(msg = other.name(), "capi: unexpected message ignored"),
        }
        Ok(())
    }

    /// Moves data between the call's pipe and CAPI; true if anything moved.
    fn pump(&mut self, key: u32, cx: &mut Context<'_>) -> Result<bool, TransportError> {
        let (max_len, window) = (self.max_len, self.window);
        let Some(call) = self.calls_by_plci.get_mut(&key) else {
            return Ok(false);
        };
        let mut progress = false;
        let mut puts: Vec<Params> = Vec::new();
        let mut remove = false;
        // Received data into the pipe; DATA_B3_RESP once a block is in.
        while let (Some(pipe), Some((handle, data))) = (call.pipe.as_mut(), call.rx.front_mut()) {
            match Pin::new(pipe).poll_write(cx, data) {
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    bytes::Buf::advance(data, n);
                    if data.is_empty() {
                        let handle = *handle;
                        call.rx.pop_front();
                        if !call.cleared {
                            puts.push(Params::DataB3Resp(DataB3Resp {
                                ncci: call.info.ncci,
                                handle,
                            }));
                        }
                    }
                }
                Poll::Ready(Err(_)) => {
                    // The reader is gone: discard, but keep the window open.
                    call.user_eof = true;
                    for (handle, _) in call.rx.drain(..) {
                        if !call.cleared {
                            puts.push(Params::DataB3Resp(DataB3Resp {
                                ncci: call.info.ncci,
                                handle,
                            }));
                        }
                    }
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        // The other side (or the line) cleared: end of stream once drained.
        if matches!(call.phase, Phase::Down) && call.rx.is_empty() && call.pipe.is_some() {
            call.pipe = None;
            progress = true;
            remove = call.cleared;
        }
        // Data to send.
        while call.phase == Phase::Up && call.in_flight < window {
            if let Some(link) = call.x25.as_mut() {
                // ISO 8208: queued packets first, then more stream octets.
                if let Some((packet, more)) = link.seg.next_packet() {
                    progress = true;
                    call.next_handle = call.next_handle.wrapping_add(1);
                    call.in_flight += 1;
                    puts.push(Params::DataB3Req(DataB3 {
                        ncci: call.info.ncci,
                        handle: call.next_handle,
                        flags: if more { x25::flags::MORE_DATA } else { 0 },
                        data: packet,
                    }));
                    continue;
                }
            }
            if call.user_eof {
                break;
            }
            let Some(pipe) = call.pipe.as_mut() else {
                break;
            };
            call.read_buf.resize(max_len, 0);
            let mut rb = ReadBuf::new(&mut call.read_buf);
            match Pin::new(pipe).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    progress = true;
                    let n = rb.filled().len();
                    if n == 0 {
                        call.user_eof = true;
                        break;
                    }
                    if let Some(link) = call.x25.as_mut() {
                        if let Err(e) = link.seg.push(rb.filled()) {
                            tracing::warn!(
                                ncci = call.info.ncci,
                                error = %e,
                                "capi: ISO 8208 stream carries STB-framed OFTP only; clearing"
                            );
                            call.user_eof = true;
                        }
                        continue;
                    }
                    call.next_handle = call.next_handle.wrapping_add(1);
                    call.in_flight += 1;
                    puts.push(Params::DataB3Req(DataB3 {
                        ncci: call.info.ncci,
                        handle: call.next_handle,
                        flags: 0,
                        data: Bytes::copy_from_slice(rb.filled()),
                    }));
                }
                Poll::Ready(Err(_)) => {
                    call.user_eof = true;
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        // The user closed its side: clear once everything is confirmed.
        let queued = call.x25.as_ref().map_or(0, |l| l.seg.queued());
        if call.phase == Phase::Up && call.user_eof && call.in_flight == 0 && queued == 0 {
            if let Some(l) = call.x25.as_ref().filter(|l| l.seg.partial() > 0) {
                tracing::warn!(
                    octets = l.seg.partial(),
                    "capi: stream closed inside an exchange buffer; the rest is not sent"
                );
            }
            call.phase = Phase::Closing;
            progress = true;
            puts.push(Params::DisconnectB3Req(IdentNcpi {
                id: call.info.ncci,
                ncpi: vec![],
            }));
        }
        if remove {
            self.calls_by_plci.remove(&key);
        }
        for p in puts {
            self.put(p)?;
        }
        Ok(progress)
    }
}
