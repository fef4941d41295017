//! A built-in ISDN exchange: simulated controllers on simulated lines.
//!
//! [`Exchange`] is the sans-IO core. It plays both the network (routing a
//! call by the called number to the controller that owns that number, busy
//! when its B channels are taken, unallocated number, no answer) and each
//! controller's CAPI side (PLCI/NCCI allocation, the message sequences of
//! CAPI 2.0 part I chapter 7 for incoming and outgoing calls, B3 set-up,
//! data and clearing). Applications talk to it only in CAPI messages.
//!
//! B-channel data with transparent B3 is moved as frames: a `DATA_B3_REQ`
//! block becomes exactly one `DATA_B3_IND` block on the other side (as
//! X.75 I-frames carry it), never larger than the receiver registered
//! (`max_b_data_len`).
//!
//! With B3 ISO 8208 (both ends must choose it; different B3 protocols at
//! the two ends fail the B3 connection with reason 0x3303, as a packet
//! layer talking to a transparent one would) the exchange plays the two
//! controllers' X.25 packet layers: the `CONNECT_B3_REQ` NCPI must be a
//! readable X.25 call (else info 0x2007) and reaches the callee as the
//! incoming call; the callee's `CONNECT_B3_RESP` NCPI (call accepted)
//! reaches the caller in `CONNECT_B3_ACTIVE_IND`, and the packet sizes of
//! both directions follow from the facilities (default 128). A block
//! larger than the sender's packet size is cut into packets, all but the
//! last with the M-bit, each its own `DATA_B3_IND`; an M-bit on a block
//! that does not fill its last packet is refused (info 0x2007), as X.25
//! allows the M-bit on full packets only; Q- and D-bits pass through.
//!
//! Flow
//! control is CAPI's: at most `max_b_data_blocks` indications are
//! outstanding at the receiver; the sender's `DATA_B3_CONF` comes when its
//! block has been handed to the receiving application, so a slow reader
//! slows the sender down, as a real X.75 window does.
//!
//! [`Sim`] shares an `Exchange` between tasks; [`SimTransport`] is one
//! registered application, implementing [`Transport`].
//!
//! Simplifications (documented, not hidden): an incoming call is offered to
//! the first application listening on the controller (real CAPI offers it
//! to all and the first to answer wins); no bit rate is imposed (tests run
//! at memory speed); only the B3 protocols of the two ends are compared
//! (not B1/B2 or their configurations); X.25 windows are not modelled
//! (CAPI's `max_b_data_blocks` window is); X.25 resets, interrupts and
//! clear causes are not produced.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::message::*;
use crate::transport::{RegisterParams, Transport, TransportError};

/// `DISCONNECT_IND` reasons (`0x34xx`: Q.850 cause `xx & 0x7F` from the network).
pub mod reason {
    pub const NORMAL: u16 = 0x0000;
    pub const UNALLOCATED_NUMBER: u16 = 0x3481;
    pub const NORMAL_CLEARING: u16 = 0x3490;
    pub const USER_BUSY: u16 = 0x3491;
    pub const NO_USER_RESPONDING: u16 = 0x3492;
    pub const CALL_REJECTED: u16 = 0x3495;
    pub const DESTINATION_OUT_OF_ORDER: u16 = 0x349B;
    pub const INCOMPATIBLE_DESTINATION: u16 = 0x34D8;
    /// Reason B3 / reason: protocol error layer 1 (line broken).
    pub const LAYER1_ERROR: u16 = 0x3301;
    /// Reason B3: protocol error layer 3 (e.g. the two ends run different
    /// B3 protocols).
    pub const LAYER3_ERROR: u16 = 0x3303;
}

/// `info` values in confirmations.
pub mod info {
    pub const OK: u16 = 0;
    pub const ILLEGAL_CONTROLLER: u16 = 0x2003;
    pub const ILLEGAL_IDENT: u16 = 0x2002;
    pub const WRONG_STATE: u16 = 0x2001;
    pub const NO_PLCI: u16 = 0x2004;
    pub const DATA_LENGTH: u16 = 0x300C;
}

/// Maximum message queue per application before `put` reports a full queue
/// of the *receiving* side; protects tests from a runaway loop.
const QUEUE_LIMIT: usize = 100_000;

#[derive(Debug)]
struct Controller {
    numbers: Vec<String>,
    b_channels: usize,
    in_use: usize,
    next_plci: u8,
}

#[derive(Debug)]
struct App {
    params: RegisterParams,
    listen: HashMap<u32, u32>,
    out: VecDeque<Message>,
    waker: Option<Waker>,
    next_number: u16,
    released: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Outgoing, waiting for the callee to answer.
    Calling,
    /// Incoming, offered with CONNECT_IND.
    Offered,
    Active,
    /// Cleared; waiting for DISCONNECT_RESP.
    Clearing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum B3State {
    Idle,
    /// CONNECT_B3_IND sent to this side, waiting for CONNECT_B3_RESP.
    Offered,
    Active,
}

/// A block (transparent B3) or packet (ISO 8208) on its way.
#[derive(Debug)]
struct Block {
    /// Sender's NCCI and handle, for its DATA_B3_CONF.
    from: u32,
    from_handle: u16,
    flags: u16,
    data: Bytes,
    /// Last packet of the sender's block: confirm it when taken.
    confirm: bool,
}

#[derive(Debug)]
struct Plci {
    app: u16,
    controller: u32,
    peer: Option<u32>,
    state: CallState,
    b3: B3State,
    /// Channel taken on the controller (released once).
    holds_channel: bool,
    /// Blocks waiting for this side's application.
    rx_pending: VecDeque<Block>,
    /// B3 protocol this side chose (CONNECT_REQ / CONNECT_RESP B protocol).
    b3_protocol: B3Protocol,
    /// ISO 8208: facilities of our call request (caller side).
    x25_requested: crate::x25::Facilities,
    /// ISO 8208: largest packet this side may send (0: no packet layer).
    tx_packet: usize,
    /// DATA_B3_IND outstanding at this side's application: our handle → nothing.
    rx_outstanding: usize,
    next_handle: u16,
    called: String,
}

/// The exchange and its controllers (sans-IO core; see the module docs).
#[derive(Debug, Default)]
pub struct Exchange {
    controllers: Vec<Controller>,
    apps: HashMap<u16, App>,
    plcis: HashMap<u32, Plci>,
    next_app: u16,
}

fn ncci_of(plci: u32) -> u32 {
    plci | 0x0001_0000
}

/// The B3 protocol of a B protocol struct; absent means CAPI's default
/// (transparent).
fn b3_of(b: &Option<BProtocol>) -> B3Protocol {
    b.as_ref().map_or(B3Protocol::Transparent, |b| b.b3)
}

/// CAPI info: illegal message parameter coding.
const ILLEGAL_PARAMETER: u16 = 0x2007;

impl Exchange {
    pub fn new() -> Self {
        Exchange::default()
    }

    /// Connects a controller with `b_channels` B channels (2 for a basic
    /// rate interface) answering the given numbers (MSNs/DDIs); returns its
    /// CAPI controller number (1, 2, ...).
    pub fn add_controller(&mut self, numbers: &[&str], b_channels: usize) -> u32 {
        self.controllers.push(Controller {
            numbers: numbers.iter().map(|s| s.to_string()).collect(),
            b_channels,
            in_use: 0,
            next_plci: 1,
        });
        self.controllers.len() as u32
    }

    /// Controllers connected so far (numbered 1 ..= count).
    pub fn controller_count(&self) -> usize {
        self.controllers.len()
    }

    /// B channels of `controller`, `None` if there is no such controller.
    pub fn b_channels(&self, controller: u32) -> Option<usize> {
        self.controllers
            .get((controller as usize).checked_sub(1)?)
            .map(|c| c.b_channels)
    }

    /// B channels of `controller` in use by calls (for status displays).
    pub fn channels_in_use(&self, controller: u32) -> Option<usize> {
        self.controllers
            .get((controller as usize).checked_sub(1)?)
            .map(|c| c.in_use)
    }

    /// `CAPI_REGISTER`: a new application id.
    pub fn register(&mut self, params: RegisterParams) -> u16 {
        self.next_app = self.next_app.wrapping_add(1).max(1);
        let id = self.next_app;
        self.apps.insert(
            id,
            App {
                params,
                listen: HashMap::new(),
                out: VecDeque::new(),
                waker: None,
                next_number: 0,
                released: false,
            },
        );
        id
    }

    /// `CAPI_RELEASE`: clears the application's calls.
    pub fn release(&mut self, app: u16) {
        let mine: Vec<u32> = self
            .plcis
            .iter()
            .filter(|(_, p)| p.app == app)
            .map(|(&k, _)| k)
            .collect();
        for plci in mine {
            self.clear_call(plci, reason::NORMAL, reason::NORMAL_CLEARING);
            self.plcis.remove(&plci);
        }
        if let Some(a) = self.apps.get_mut(&app) {
            a.released = true;
            a.out.clear();
        }
        self.apps.remove(&app);
    }

    /// Takes the next message for `app`, or remembers `waker`.
    pub fn poll_message(&mut self, app: u16, waker: &Waker) -> Option<Message> {
        let a = self.apps.get_mut(&app)?;
        let m = a.out.pop_front();
        if m.is_none() {
            a.waker = Some(waker.clone());
        }
        m
    }

    /// Messages waiting for `app` (for tests and diagnostics).
    pub fn pending(&self, app: u16) -> usize {
        self.apps.get(&app).map_or(0, |a| a.out.len())
    }

    /// Breaks every active call on `controller` as a failing line would:
    /// both ends see DISCONNECT_B3_IND and DISCONNECT_IND with reason
    /// 0x3301 (layer 1 error). Returns the number of calls broken.
    pub fn break_line(&mut self, controller: u32) -> usize {
        let hit: Vec<u32> = self
            .plcis
            .iter()
            .filter(|(_, p)| p.controller == controller && p.state != CallState::Clearing)
            .map(|(&k, _)| k)
            .collect();
        for &plci in &hit {
            self.clear_call(plci, reason::LAYER1_ERROR, reason::LAYER1_ERROR);
        }
        hit.len()
    }

    fn send(&mut self, app: u16, number: Option<u16>, params: Params) {
        let Some(a) = self.apps.get_mut(&app) else {
            return;
        };
        let number = number.unwrap_or_else(|| {
            a.next_number = a.next_number.wrapping_add(1);
            a.next_number
        });
        tracing::trace!(app, msg = params.name(), "sim: to application");
        if a.out.len() < QUEUE_LIMIT {
            a.out.push_back(Message::new(app, number, params));
        }
        if let Some(w) = a.waker.take() {
            w.wake();
        }
    }

    fn controller(&mut self, c: u32) -> Option<&mut Controller> {
        self.controllers.get_mut((c as usize).checked_sub(1)?)
    }

    fn new_plci(&mut self, c: u32, app: u16, state: CallState, called: String) -> Option<u32> {
        self.controller(c)?;
        // PLCI = controller | plci octet << 8; skip octets still in use.
        for _ in 0..255 {
            let ctl = self.controller(c)?;
            let n = ctl.next_plci;
            ctl.next_plci = ctl.next_plci.checked_add(1).unwrap_or(1);
            let plci = c | (u32::from(n) << 8);
            if self.plcis.contains_key(&plci) {
                continue;
            }
            self.plcis.insert(
                plci,
                Plci {
                    app,
                    controller: c,
                    peer: None,
                    state,
                    b3: B3State::Idle,
                    holds_channel: false,
                    rx_pending: VecDeque::new(),
                    b3_protocol: B3Protocol::Transparent,
                    x25_requested: crate::x25::Facilities::default(),
                    tx_packet: 0,
                    rx_outstanding: 0,
                    next_handle: 0,
                    called,
                },
            );
            return Some(plci);
        }
        None
    }

    fn take_channel(&mut self, plci: u32) {
        let Some(p) = self.plcis.get_mut(&plci) else {
            return;
        };
        if p.holds_channel {
            return;
        }
        p.holds_channel = true;
        let c = p.controller;
        if let Some(ctl) = self.controller(c) {
            ctl.in_use += 1;
        }
    }

    fn free_channel(&mut self, plci: u32) {
        let Some(p) = self.plcis.get_mut(&plci) else {
            return;
        };
        if !std::mem::take(&mut p.holds_channel) {
            return;
        }
        let c = p.controller;
        if let Some(ctl) = self.controller(c) {
            ctl.in_use = ctl.in_use.saturating_sub(1);
        }
    }

    /// Clears `plci` (this side gets `own_reason`) and its peer (`peer_reason`).
    fn clear_call(&mut self, plci: u32, own_reason: u16, peer_reason: u16) {
        let peer = self.plcis.get(&plci).and_then(|p| p.peer);
        for (side, why) in [(Some(plci), own_reason), (peer, peer_reason)] {
            let Some(side) = side else { continue };
            let Some(p) = self.plcis.get_mut(&side) else {
                continue;
            };
            if p.state == CallState::Clearing {
                continue;
            }
            let (app, b3) = (p.app, p.b3);
            p.state = CallState::Clearing;
            p.b3 = B3State::Idle;
            p.peer = None;
            p.rx_pending.clear();
            if b3 != B3State::Idle {
                let reason_b3 = if why == reason::LAYER1_ERROR { why } else { 0 };
                self.send(
                    app,
                    None,
                    Params::DisconnectB3Ind(DisconnectB3Ind {
                        ncci: ncci_of(side),
                        reason_b3,
                        ncpi: vec![],
                    }),
                );
            }
            self.free_channel(side);
            self.send(
                app,
                None,
                Params::DisconnectInd(DisconnectInd {
                    plci: side,
                    reason: why,
                }),
            );
        }
    }

    /// The controller's answer to `CAPI_PUT_MESSAGE` from `app`.
    pub fn put(&mut self, app: u16, msg: &Message) -> Result<(), TransportError> {
        if !self.apps.contains_key(&app) || msg.app_id != app {
            return Err(TransportError::Unavailable(format!(
                "application id {} is not registered",
                msg.app_id
            )));
        }
        tracing::trace!(app, msg = msg.params.name(), "sim: from application");
        let n = Some(msg.number);
        match &msg.params {
            Params::ListenReq(m) => {
                let c = m.controller & 0x7F;
                let info = if self.controller(c).is_some() {
                    if let Some(a) = self.apps.get_mut(&app) {
                        a.listen.insert(c, m.cip_mask);
                    }
                    info::OK
                } else {
                    info::ILLEGAL_CONTROLLER
                };
                self.send(
                    app,
                    n,
                    Params::ListenConf(ListenConf {
                        controller: m.controller,
                        info,
                    }),
                );
            }
            Params::ConnectReq(m) => self.connect_req(app, n, m),
            Params::ConnectResp(m) => self.connect_resp(app, m),
            Params::ConnectActiveResp(_)
            | Params::ConnectB3ActiveResp(_)
            | Params::InfoResp(_)
            | Params::DisconnectB3Resp(_) => {}
            Params::DisconnectResp(m) => {
                if self
                    .plcis
                    .get(&m.id)
                    .is_some_and(|p| p.app == app && p.state == CallState::Clearing)
                {
                    self.plcis.remove(&m.id);
                }
            }
            Params::ConnectB3Req(m) => {
                let plci = m.id;
                let ok = self.plcis.get(&plci).is_some_and(|p| {
                    p.app == app && p.state == CallState::Active && p.b3 == B3State::Idle
                });
                let peer = self.plcis.get(&plci).and_then(|p| p.peer);
                let own_b3 = self.plcis.get(&plci).map(|p| p.b3_protocol);
                let peer_b3 = peer.and_then(|x| self.plcis.get(&x)).map(|p| p.b3_protocol);
                if ok && own_b3 == Some(B3Protocol::Iso8208) {
                    // The controller builds a call request packet from the
                    // NCPI: it must be readable.
                    let call = X25Ncpi::decode(&m.ncpi).map_err(|_| ()).and_then(|n| {
                        n.map_or(Ok(crate::x25::X25Call::default()), |n| {
                            n.call().map_err(|_| ())
                        })
                    });
                    match call {
                        Ok(c) => {
                            if let Some(p) = self.plcis.get_mut(&plci) {
                                p.x25_requested = c.facilities;
                            }
                        }
                        Err(()) => {
                            self.send(
                                app,
                                n,
                                Params::ConnectB3Conf(IdentInfo {
                                    id: plci,
                                    info: ILLEGAL_PARAMETER,
                                }),
                            );
                            return Ok(());
                        }
                    }
                }
                if ok && peer.is_some() && own_b3 != peer_b3 {
                    // Different B3 protocols at the two ends: the packet
                    // layer never comes up (layer 3 protocol error).
                    tracing::info!(
                        ?own_b3,
                        ?peer_b3,
                        "sim: B3 protocols differ; B3 connection fails"
                    );
                    self.send(
                        app,
                        n,
                        Params::ConnectB3Conf(IdentInfo {
                            id: ncci_of(plci),
                            info: info::OK,
                        }),
                    );
                    if let Some(p) = self.plcis.get_mut(&plci) {
                        p.b3 = B3State::Offered;
                    }
                    self.send(
                        app,
                        None,
                        Params::DisconnectB3Ind(DisconnectB3Ind {
                            ncci: ncci_of(plci),
                            reason_b3: reason::LAYER3_ERROR,
                            ncpi: vec![],
                        }),
                    );
                    if let Some(p) = self.plcis.get_mut(&plci) {
                        p.b3 = B3State::Idle;
                    }
                    return Ok(());
                }
                match (ok, peer) {
                    (true, Some(peer)) => {
                        self.send(
                            app,
                            n,
                            Params::ConnectB3Conf(IdentInfo {
                                id: ncci_of(plci),
                                info: info::OK,
                            }),
                        );
                        if let Some(p) = self.plcis.get_mut(&peer) {
                            p.b3 = B3State::Offered;
                            let papp = p.app;
                            self.send(
                                papp,
                                None,
                                Params::ConnectB3Ind(IdentNcpi {
                                    id: ncci_of(peer),
                                    ncpi: m.ncpi.clone(),
                                }),
                            );
                        }
                    }
                    _ => self.send(
                        app,
                        n,
                        Params::ConnectB3Conf(IdentInfo {
                            id: plci,
                            info: info::WRONG_STATE,
                        }),
                    ),
                }
            }
            Params::ConnectB3Resp(m) => {
                let plci = plci_of(m.ncci);
                let Some(p) = self.plcis.get(&plci) else {
                    return Ok(());
                };
                if p.app != app || p.b3 != B3State::Offered {
                    return Ok(());
                }
                let peer = p.peer;
                if m.reject != 0 {
                    if let Some(p) = self.plcis.get_mut(&plci) {
                        p.b3 = B3State::Idle;
                    }
                    if let Some(peer) = peer {
                        let papp = self.plcis.get(&peer).map(|p| p.app).unwrap_or(0);
                        self.send(
                            papp,
                            None,
                            Params::DisconnectB3Ind(DisconnectB3Ind {
                                ncci: ncci_of(peer),
                                reason_b3: 0,
                                ncpi: vec![],
                            }),
                        );
                    }
                    return Ok(());
                }
                if self.plcis.get(&plci).map(|p| p.b3_protocol) == Some(B3Protocol::Iso8208) {
                    // Call accepted → call connected: the X.25 packet sizes
                    // are now fixed for both directions.
                    let connected = X25Ncpi::decode(&m.ncpi)
                        .ok()
                        .flatten()
                        .and_then(|n| n.call().ok())
                        .map(|c| c.facilities)
                        .unwrap_or_default();
                    let requested = peer
                        .and_then(|x| self.plcis.get(&x))
                        .map(|p| p.x25_requested.clone())
                        .unwrap_or_default();
                    let caller = crate::x25::caller_negotiated(&requested, &connected);
                    if let Some(p) = self.plcis.get_mut(&plci) {
                        p.tx_packet = usize::from(caller.rx_packet);
                    }
                    if let Some(p) = peer.and_then(|x| self.plcis.get_mut(&x)) {
                        p.tx_packet = usize::from(caller.tx_packet);
                    }
                }
                for side in [Some(plci), peer].into_iter().flatten() {
                    if let Some(p) = self.plcis.get_mut(&side) {
                        p.b3 = B3State::Active;
                        let a = p.app;
                        // The caller sees the call connected packet.
                        let ncpi = if side == plci { vec![] } else { m.ncpi.clone() };
                        self.send(
                            a,
                            None,
                            Params::ConnectB3ActiveInd(IdentNcpi {
                                id: ncci_of(side),
                                ncpi,
                            }),
                        );
                    }
                }
            }
            Params::DataB3Req(m) => self.data_req(app, n, m),
            Params::DataB3Resp(m) => {
                let plci = plci_of(m.ncci);
                if let Some(p) = self.plcis.get_mut(&plci) {
                    if p.app == app {
                        p.rx_outstanding = p.rx_outstanding.saturating_sub(1);
                        self.pump(plci);
                    }
                }
            }
            Params::DisconnectB3Req(m) => {
                let plci = plci_of(m.id);
                let active = self
                    .plcis
                    .get(&plci)
                    .is_some_and(|p| p.app == app && p.b3 != B3State::Idle);
                let info = if active { info::OK } else { info::WRONG_STATE };
                self.send(
                    app,
                    n,
                    Params::DisconnectB3Conf(IdentInfo { id: m.id, info }),
                );
                if active {
                    let peer = self.plcis.get(&plci).and_then(|p| p.peer);
                    for side in [Some(plci), peer].into_iter().flatten() {
                        if let Some(p) = self.plcis.get_mut(&side) {
                            p.b3 = B3State::Idle;
                            p.rx_pending.clear();
                            let a = p.app;
                            self.send(
                                a,
                                None,
                                Params::DisconnectB3Ind(DisconnectB3Ind {
                                    ncci: ncci_of(side),
                                    reason_b3: 0,
                                    ncpi: vec![],
                                }),
                            );
                        }
                    }
                }
            }
            Params::DisconnectReq(m) => {
                let ok = self
                    .plcis
                    .get(&m.plci)
                    .is_some_and(|p| p.app == app && p.state != CallState::Clearing);
                let info = if ok { info::OK } else { info::ILLEGAL_IDENT };
                self.send(
                    app,
                    n,
                    Params::DisconnectConf(IdentInfo { id: m.plci, info }),
                );
                if ok {
                    self.clear_call(m.plci, reason::NORMAL, reason::NORMAL_CLEARING);
                }
            }
            // Confirmations and indications go the other way.
            other => {
                tracing::debug!(
                    app,
                    msg = other.name(),
                    "sim: message not valid from an application, ignored"
                );
            }
        }
        Ok(())
    }

    fn connect_req(&mut self, app: u16, n: Option<u16>, m: &ConnectReq) {
        let c = m.controller & 0x7F;
        let called = m
            .called_number
            .as_ref()
            .map(|x| x.digits_str())
            .unwrap_or_default();
        let Some(plci) = self.new_plci(c, app, CallState::Calling, called.clone()) else {
            let info = if self.controller(c).is_none() {
                info::ILLEGAL_CONTROLLER
            } else {
                info::NO_PLCI
            };
            self.send(app, n, Params::ConnectConf(ConnectConf { plci: c, info }));
            return;
        };
        if let Some(p) = self.plcis.get_mut(&plci) {
            p.b3_protocol = b3_of(&m.b_protocol);
        }
        self.send(
            app,
            n,
            Params::ConnectConf(ConnectConf {
                plci,
                info: info::OK,
            }),
        );
        // Our own B channel.
        let own_free = self.controller(c).is_some_and(|x| x.in_use < x.b_channels);
        if !own_free {
            // No channel at our end: the network refuses at once (cause 34).
            self.clear_call(plci, 0x34A2, 0);
            return;
        }
        self.take_channel(plci);
        let dest = self
            .controllers
            .iter()
            .position(|x| x.numbers.contains(&called))
            .map(|i| i as u32 + 1);
        let Some(d) = dest else {
            self.clear_call(plci, reason::UNALLOCATED_NUMBER, 0);
            return;
        };
        if self.controller(d).is_some_and(|x| x.in_use >= x.b_channels) {
            self.clear_call(plci, reason::USER_BUSY, 0);
            return;
        }
        let cip_bit = cip::mask(m.cip);
        let listener = {
            let mut ids: Vec<u16> = self
                .apps
                .iter()
                .filter(|(_, a)| {
                    a.listen
                        .get(&d)
                        .is_some_and(|mask| mask & cip_bit != 0 || mask & 1 != 0)
                })
                .map(|(&id, _)| id)
                .collect();
            ids.sort_unstable();
            ids.first().copied()
        };
        let Some(lapp) = listener else {
            self.clear_call(plci, reason::NO_USER_RESPONDING, 0);
            return;
        };
        let Some(inc) = self.new_plci(d, lapp, CallState::Offered, called.clone()) else {
            self.clear_call(plci, reason::USER_BUSY, 0);
            return;
        };
        self.take_channel(inc);
        if let Some(p) = self.plcis.get_mut(&plci) {
            p.peer = Some(inc);
        }
        if let Some(p) = self.plcis.get_mut(&inc) {
            p.peer = Some(plci);
        }
        self.send(
            lapp,
            None,
            Params::ConnectInd(ConnectInd {
                plci: inc,
                cip: m.cip,
                called_number: m.called_number.clone(),
                calling_number: m.calling_number.clone(),
                called_subaddress: m.called_subaddress.clone(),
                calling_subaddress: m.calling_subaddress.clone(),
                bc: m.bc.clone(),
                llc: m.llc.clone(),
                hlc: m.hlc.clone(),
                additional_info: vec![],
            }),
        );
    }

    fn connect_resp(&mut self, app: u16, m: &ConnectResp) {
        let Some(p) = self.plcis.get(&m.plci) else {
            return;
        };
        if p.app != app || p.state != CallState::Offered {
            return;
        }
        let peer = p.peer;
        let called = p.called.clone();
        if m.reject != reject::ACCEPT {
            let to_caller = match m.reject {
                reject::IGNORE => reason::NO_USER_RESPONDING,
                reject::NORMAL_CLEARING => reason::NORMAL_CLEARING,
                reject::USER_BUSY => reason::USER_BUSY,
                reject::NO_CHANNEL => 0x34A2,
                reject::INCOMPATIBLE_DESTINATION => reason::INCOMPATIBLE_DESTINATION,
                reject::OUT_OF_ORDER => reason::DESTINATION_OUT_OF_ORDER,
                r if r & 0xFF00 == 0x3400 => r,
                _ => reason::CALL_REJECTED,
            };
            self.clear_call(m.plci, reason::NORMAL, to_caller);
            return;
        }
        if let Some(p) = self.plcis.get_mut(&m.plci) {
            p.b3_protocol = b3_of(&m.b_protocol);
        }
        for side in [Some(m.plci), peer].into_iter().flatten() {
            if let Some(p) = self.plcis.get_mut(&side) {
                p.state = CallState::Active;
                let a = p.app;
                let connected = (side != m.plci).then(|| CallingPartyNumber::new(&called));
                self.send(
                    a,
                    None,
                    Params::ConnectActiveInd(ConnectActiveInd {
                        plci: side,
                        connected_number: connected,
                        connected_subaddress: vec![],
                        llc: vec![],
                    }),
                );
            }
        }
    }

    fn data_req(&mut self, app: u16, n: Option<u16>, m: &DataB3) {
        let plci = plci_of(m.ncci);
        let (ok, peer) = match self.plcis.get(&plci) {
            Some(p) if p.app == app && p.b3 == B3State::Active => (true, p.peer),
            _ => (false, None),
        };
        let peer_max = peer
            .and_then(|x| self.plcis.get(&x))
            .and_then(|p| self.apps.get(&p.app))
            .map_or(0, |a| usize::from(a.params.max_b_data_len));
        let tx_packet = self.plcis.get(&plci).map_or(0, |p| p.tx_packet);
        // ISO 8208: the controller cuts a block into packets of the
        // negotiated size; each must fit the receiver's blocks.
        let unit = if tx_packet > 0 {
            tx_packet
        } else {
            m.data.len()
        };
        let more = m.flags & crate::x25::flags::MORE_DATA != 0;
        let info = if !ok || peer.is_none() {
            info::WRONG_STATE
        } else if unit.min(m.data.len()) > peer_max {
            info::DATA_LENGTH
        } else if tx_packet > 0 && more && m.data.len() % tx_packet != 0 {
            // X.25: only a full packet may carry the M-bit.
            tracing::info!(
                len = m.data.len(),
                packet = tx_packet,
                "sim: M-bit on a block that does not fill its last packet"
            );
            ILLEGAL_PARAMETER
        } else {
            info::OK
        };
        if info != info::OK {
            self.send(
                app,
                n,
                Params::DataB3Conf(DataB3Conf {
                    ncci: m.ncci,
                    handle: m.handle,
                    info,
                }),
            );
            return;
        }
        let Some(peer) = peer else { return };
        if let Some(p) = self.plcis.get_mut(&peer) {
            if tx_packet == 0 || m.data.len() <= tx_packet {
                p.rx_pending.push_back(Block {
                    from: m.ncci,
                    from_handle: m.handle,
                    flags: m.flags,
                    data: m.data.clone(),
                    confirm: true,
                });
            } else {
                let mut data = m.data.clone();
                while !data.is_empty() {
                    let chunk = data.split_to(tx_packet.min(data.len()));
                    let last = data.is_empty();
                    let flags = if last {
                        m.flags
                    } else {
                        m.flags | crate::x25::flags::MORE_DATA
                    };
                    p.rx_pending.push_back(Block {
                        from: m.ncci,
                        from_handle: m.handle,
                        flags,
                        data: chunk,
                        confirm: last,
                    });
                }
            }
        }
        self.pump(peer);
    }

    /// Hands waiting blocks to `plci`'s application while its window allows,
    /// confirming each to the sender.
    fn pump(&mut self, plci: u32) {
        loop {
            let Some(p) = self.plcis.get_mut(&plci) else {
                return;
            };
            let window = self
                .apps
                .get(&p.app)
                .map_or(1, |a| usize::from(a.params.max_b_data_blocks.max(1)));
            if p.b3 != B3State::Active || p.rx_outstanding >= window {
                return;
            }
            let Some(Block {
                from,
                from_handle,
                flags,
                data,
                confirm,
            }) = p.rx_pending.pop_front()
            else {
                return;
            };
            p.rx_outstanding += 1;
            p.next_handle = p.next_handle.wrapping_add(1);
            let (app, handle) = (p.app, p.next_handle);
            self.send(
                app,
                None,
                Params::DataB3Ind(DataB3 {
                    ncci: ncci_of(plci),
                    handle,
                    flags,
                    data,
                }),
            );
            if let Some(s) = self.plcis.get(&plci_of(from)).filter(|_| confirm) {
                let sapp = s.app;
                self.send(
                    sapp,
                    None,
                    Params::DataB3Conf(DataB3Conf {
                        ncci: from,
                        handle: from_handle,
                        info: info::OK,
                    }),
                );
            }
        }
    }
}

/// An [`Exchange`] shared between tasks.
#[derive(Debug, Clone, Default)]
pub struct Sim {
    inner: Arc<Mutex<Exchange>>,
}

impl Sim {
    pub fn new() -> Self {
        Sim::default()
    }

    /// Locks the exchange (for configuration and fault injection).
    pub fn exchange(&self) -> MutexGuard<'_, Exchange> {
        // A panic while holding the lock can only come from a bug in this
        // module; keep serving rather than poisoning every other task.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// See [`Exchange::add_controller`].
    pub fn add_controller(&self, numbers: &[&str], b_channels: usize) -> u32 {
        self.exchange().add_controller(numbers, b_channels)
    }

    /// Registers an application.
    pub fn register(&self, params: RegisterParams) -> SimTransport {
        let app_id = self.exchange().register(params);
        SimTransport {
            sim: self.clone(),
            app_id,
            params,
        }
    }
}

/// One application registered with a [`Sim`].
#[derive(Debug)]
pub struct SimTransport {
    sim: Sim,
    app_id: u16,
    params: RegisterParams,
}

impl Transport for SimTransport {
    fn app_id(&self) -> u16 {
        self.app_id
    }

    fn params(&self) -> RegisterParams {
        self.params
    }

    fn put_message(&mut self, msg: &Message) -> Result<(), TransportError> {
        // Round-trip through the codec so the simulator exercises the same
        // octets a real controller would receive.
        let bytes = msg.to_vec()?;
        let (decoded, _) = Message::decode(&bytes)?;
        self.sim.exchange().put(self.app_id, &decoded)
    }

    fn poll_get_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, TransportError>> {
        let mut ex = self.sim.exchange();
        if !ex.apps.contains_key(&self.app_id) {
            return Poll::Ready(Err(TransportError::Closed));
        }
        match ex.poll_message(self.app_id, cx.waker()) {
            Some(m) => {
                drop(ex);
                let bytes = m.to_vec()?;
                Poll::Ready(Ok(Message::decode(&bytes)?.0))
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        self.sim.exchange().release(self.app_id);
    }
}
