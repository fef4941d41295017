//! The ODETTE-FTP session: a sans-IO state machine following the state
//! tables of RFC 5024 section 9.
//!
//! A [`Session`] never touches a socket, a file descriptor or a clock.
//! Its owner (the tokio [`crate::driver`], a test, a fuzzer) moves data:
//!
//! * received bytes go in with [`Session::handle_input`] (complete Stream
//!   Transmission Buffers are split off the front of the caller's buffer
//!   without copying; a partial one stays there until more bytes arrive);
//! * bytes to send come out of [`Session::poll_transmit`], which appends
//!   commands and, while the credit window allows, DATA buffers read from
//!   the file being sent — never more than one transmit chunk per call,
//!   so the owner's write speed paces the file reads (backpressure);
//! * [`Session::poll_timer`] says when to call [`Session::handle_timeout`]
//!   (the RFC's inactivity timer);
//! * [`Session::handle_eof`] reports that the connection closed;
//! * [`Session::poll_event`] yields [`Event`]s for the application.
//!
//! The User Monitor of the RFC is the application's [`Handlers`]
//! (authorisation, inbox, outbox), called synchronously from the calls
//! above.
//!
//! # States
//!
//! [`Session::state_name`] returns the RFC's state name, so a trace can be
//! checked against the tables: session connection (9.8: `I_WF_RM`,
//! `I_WF_SSID`, `A_NC_ONLY`), speaker (9.10, 9.11: `IDLESP`, `IDLESPCD`,
//! `WF_RTR`, `OPOP`, `OPO`, `OPOWFC`, `CLOP`), listener (9.12: `IDLELI`,
//! `IDLELICD`, `OPI`, `WF_CD`), error and abort (9.9: `WF_NDISC`, `IDLE`).
//!
//! States in which the RFC waits for a User Monitor response (`A_WF_CONRS`,
//! `OPIP`, `CLIP`, `RTRP`) are passed through within one call, because the
//! handlers answer synchronously; the states that store a request while
//! waiting for CD (`ERSTWFCD`, `NRSTWFCD`, `SFSTWFCD`, `CDSTWFCD`) do not
//! arise because the session itself decides what to send once it holds the
//! turn.
//!
//! Secure authentication (section 4.2.4, transitions D, G, I, J, K of 9.8)
//! runs between the SSID exchange and `Connected` when both SSIDs say
//! `SSIDAUTH=Y`: the initiator sends SECD (`WF_AUCH`), the responder
//! challenges it (AUCH, `WF_AURP`), the initiator answers (AURP,
//! `WF_SECD`), and the same the other way round. The keys come from
//! [`Config::authentication_keys`]. A wrong AURP, or a challenge we cannot
//! decrypt with our key, ends the session with ESID `11`; a partner whose
//! SSIDAUTH differs from ours with ESID `12`; no usable partner
//! certificate with the reason the application gives.

mod app;
mod config;
mod event;

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{
    Auch, Aurp, Cd, Cdt, Command, Efid, Efna, Efpa, Esid, Rtr, Secd, Sfid, Sfna, Sfpa, Ssid, Ssrm,
};
use crate::record::{self, Counts, FileSource, Layout, RecordDecoder, RecordError, RestartPoint};
use crate::security::auth::{self, Challenge};
use crate::stb::{self, StbDecoder};
use crate::value::{
    EndFileRefusal, EndSessionReason, FileCompression, FileEnvelope, ProtocolLevel, SecurityLevel,
    SendReceive, StartFileRefusal,
};

pub use app::{
    Accepted, Authenticator, EndSession, FileData, FileOffer, Handlers, Inbox, IncomingFile,
    Outbox, OutgoingFile, Receipt, Refusal,
};
pub use config::{Config, ConfigError, Negotiated, Role};
pub use event::{
    DeviationReport, Direction, Event, Origin, SessionEnd, TimerId, TimerRequest, VirtualFileId,
};

/// How many octets one [`Session::poll_transmit`] call produces at most
/// (plus one buffer). Large enough to amortise per-call work, small enough
/// that a slow connection never makes the session read far ahead.
const TRANSMIT_CHUNK: usize = 256 * 1024;

/// The longest reason text ESID, SFNA and EFNA can carry.
const MAX_REASON_TEXT: usize = 999;

/// Protocol states, named as in RFC 5024 section 9.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator waiting for the Ready Message (SSRM).
    IWfRm,
    /// Initiator has sent SSID, waits for the responder's SSID.
    IWfSsid,
    /// Responder has sent SSRM, waits for SSID.
    ANcOnly,
    /// Secure authentication: waits for the partner's SECD (its turn to
    /// be challenged by us).
    WfSecd,
    /// Secure authentication: sent SECD, waits for the partner's AUCH.
    WfAuch,
    /// Secure authentication: sent AUCH, waits for the AURP.
    WfAurp,
    /// Idle Speaker.
    IdleSp,
    /// Idle Speaker just after an unsolicited CD: may release (ESID 00).
    IdleSpCd,
    /// Speaker sent EERP/NERP, waits for RTR.
    WfRtr,
    /// Speaker sent SFID, waits for SFPA/SFNA.
    Opop,
    /// Speaker sends DATA.
    Opo,
    /// Speaker's credit is exhausted, waits for CDT.
    OpoWfc,
    /// Speaker sent EFID, waits for EFPA/EFNA.
    Clop,
    /// Idle Listener.
    IdleLi,
    /// Idle Listener after sending CD: ESID 00 is a normal release here.
    IdleLiCd,
    /// Listener receives DATA.
    Opi,
    /// Listener answered EFPA with CD request, waits for CD.
    WfCd,
    /// ESID sent; waits for the partner to disconnect.
    WfNdisc,
    /// Session over.
    Idle,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::IWfRm => "I_WF_RM",
            State::IWfSsid => "I_WF_SSID",
            State::ANcOnly => "A_NC_ONLY",
            State::WfSecd => "WF_SECD",
            State::WfAuch => "WF_AUCH",
            State::WfAurp => "WF_AURP",
            State::IdleSp => "IDLESP",
            State::IdleSpCd => "IDLESPCD",
            State::WfRtr => "WF_RTR",
            State::Opop => "OPOP",
            State::Opo => "OPO",
            State::OpoWfc => "OPOWFC",
            State::Clop => "CLOP",
            State::IdleLi => "IDLELI",
            State::IdleLiCd => "IDLELICD",
            State::Opi => "OPI",
            State::WfCd => "WF_CD",
            State::WfNdisc => "WF_NDISC",
            State::Idle => "IDLE",
        }
    }

    /// Whether the partner owes us something, i.e. the response timer runs.
    fn is_active(self) -> bool {
        !matches!(self, State::WfNdisc | State::Idle)
    }
}

/// The file being sent.
struct Sending {
    file: VirtualFileId,
    sfid: Sfid,
    layout: Layout,
    /// Until SFPA: the local file.
    data: Option<Box<dyn FileData>>,
    /// After SFPA: the payload producer.
    source: Option<FileSource<Box<dyn FileData>>>,
    next_progress: u64,
}

/// The file being received.
struct Receiving {
    file: VirtualFileId,
    writer: Box<dyn IncomingFile>,
    decoder: RecordDecoder,
    /// Local-representation octets of one payload, reused.
    staging: Vec<u8>,
    /// A local failure during the transfer: answered with EFNA at EFID.
    failed: Option<Refusal<EndFileRefusal>>,
    next_progress: u64,
}

/// Secure authentication in progress (section 4.2.4).
struct Authenticating {
    negotiated: Negotiated,
    /// The challenge we sent, until the AURP arrives.
    challenge: Option<Challenge>,
}

/// One ODETTE-FTP session, either role. See the [module docs](self).
pub struct Session {
    role: Role,
    config: Config,
    handlers: Handlers,
    state: State,
    /// Level used to encode and decode commands: ours until the SSIDs are
    /// exchanged, the negotiated one afterwards.
    level: ProtocolLevel,
    negotiated: Option<Negotiated>,
    stb: StbDecoder,
    /// Encoded commands waiting for [`Session::poll_transmit`].
    pending: BytesMut,
    events: VecDeque<Event>,
    timer: Option<TimerRequest>,
    timer_seq: u64,
    /// V.Window as usize, cached for the hot path.
    window: u32,
    buffer_size: usize,
    credit_s: u32,
    credit_l: u32,
    sending: Option<Sending>,
    receiving: Option<Receiving>,
    receipt_in_flight: Option<Receipt>,
    /// During secure authentication: the agreed parameters (reported as
    /// `Connected` once both sides are authenticated) and our challenge.
    authenticating: Option<Authenticating>,
    end: Option<SessionEnd>,
    /// Carries role and partner into every log line of this session.
    span: tracing::Span,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state.name())
            .field("level", &self.level)
            .field("negotiated", &self.negotiated)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for a freshly opened connection.
    ///
    /// The responder queues its SSRM at once; the initiator waits for it.
    /// Both arm the response timer.
    pub fn new(role: Role, config: Config, handlers: Handlers) -> Result<Session, ConfigError> {
        config.validate()?;
        let mut session = Session {
            role,
            level: config.level,
            window: u32::from(config.credit),
            buffer_size: config.buffer_size as usize,
            config,
            handlers,
            state: State::Idle,
            negotiated: None,
            stb: StbDecoder::new(),
            pending: BytesMut::with_capacity(256),
            events: VecDeque::new(),
            timer: None,
            timer_seq: 0,
            credit_s: 0,
            credit_l: 0,
            sending: None,
            receiving: None,
            receipt_in_flight: None,
            authenticating: None,
            end: None,
            span: tracing::info_span!(
                "oftp_session",
                role = ?role,
                partner = tracing::field::Empty
            ),
        };
        let span = session.span.clone();
        let _entered = span.enter();
        match role {
            Role::Initiator => session.enter(State::IWfRm),
            Role::Responder => {
                // Transition B of 9.8: N_CON_IND -> SSRM, A_NC_ONLY.
                if session.send(&Command::Ssrm(Ssrm)).is_ok() {
                    session.enter(State::ANcOnly);
                }
            }
        }
        Ok(session)
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The RFC 5024 name of the current state (section 9.3).
    pub fn state_name(&self) -> &'static str {
        self.state.name()
    }

    /// The negotiated parameters, once the SSIDs are exchanged.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// How the session ended, once it has.
    pub fn end(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }

    /// Whether nothing more will happen: the session ended and (if we sent
    /// ESID) the partner disconnected or the disconnect timer expired.
    /// Flush [`poll_transmit`](Self::poll_transmit) output, then close.
    pub fn is_closed(&self) -> bool {
        self.state == State::Idle
    }

    /// Whether the session has ended (ESID sent or received, or the
    /// connection was lost). After ESID was sent it may still wait for the
    /// partner to disconnect; see [`is_closed`](Self::is_closed).
    pub fn is_ended(&self) -> bool {
        self.end.is_some()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The latest change to the timer since the last call, if any.
    pub fn poll_timer(&mut self) -> Option<TimerRequest> {
        self.timer.take()
    }

    // ------------------------------------------------------------------
    // Input

    /// Process received bytes. Complete Stream Transmission Buffers are
    /// removed from the front of `buf` (zero-copy); an incomplete one stays
    /// for the next call. After the session has ended, input is discarded.
    pub fn handle_input(&mut self, buf: &mut BytesMut) {
        let span = self.span.clone();
        let _entered = span.enter();
        loop {
            if !self.state.is_active() {
                buf.clear();
                return;
            }
            match self.stb.decode(buf) {
                Ok(Some(frame)) => self.handle_frame(frame),
                Ok(None) => return,
                Err(err) => {
                    let reason = err.esid_reason();
                    self.abort_local(reason, format!("stream framing error: {err}"));
                    buf.clear();
                    return;
                }
            }
        }
    }

    /// The connection was closed by the partner or failed (N_DISC_IND).
    pub fn handle_eof(&mut self) {
        let span = self.span.clone();
        let _entered = span.enter();
        match self.state {
            State::Idle => {}
            State::WfNdisc => self.enter(State::Idle),
            state => {
                let text = format!(
                    "connection closed without End Session in state {}",
                    state.name()
                );
                if state == State::ANcOnly {
                    // Nobody logged in: a port scan, a health check or a
                    // flood. The daemon counts those; one line each would
                    // let a client fill the log.
                    tracing::debug!(state = state.name(), "{text}");
                } else {
                    tracing::warn!(state = state.name(), "{text}");
                }
                self.interrupt_transfers();
                self.finish(SessionEnd {
                    origin: Origin::Network,
                    reason: EndSessionReason::Unspecified,
                    text,
                });
                self.enter(State::Idle);
            }
        }
    }

    /// The timer armed with `id` expired.
    pub fn handle_timeout(&mut self, id: TimerId) {
        let span = self.span.clone();
        let _entered = span.enter();
        if id.0 != self.timer_seq {
            return;
        }
        match self.state {
            State::Idle => {}
            // 9.9 transition A: give up waiting for the disconnect.
            State::WfNdisc => self.enter(State::Idle),
            state => {
                // 9.9 transition B aborts without ESID; sending ESID 09
                // first costs nothing and tells the partner's admin why.
                let text = format!(
                    "no response from the partner within {}s in state {}",
                    self.config.response_timeout.as_secs(),
                    state.name()
                );
                self.abort_local(EndSessionReason::TimeOut, text);
            }
        }
    }

    /// End the session with ESID `reason` (F_RELEASE_RQ / F_ABORT_RQ).
    ///
    /// `Normal` is a normal release only in `IDLESPCD` (the partner just
    /// handed over the turn with nothing left to send); the session does
    /// that by itself. Use e.g. [`EndSessionReason::LocalSiteEmergencyCloseDown`]
    /// for a shutdown.
    pub fn close(&mut self, reason: EndSessionReason, text: impl Into<String>) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.abort_local(reason, text.into());
    }

    fn handle_frame(&mut self, frame: Bytes) {
        // Hot path: DATA in OPI is handled without building a Command.
        if self.state == State::Opi && frame.first() == Some(&b'D') {
            self.receive_data(frame);
            self.touch();
            return;
        }
        let cmd = match Command::decode_lenient(frame, self.level) {
            Ok((cmd, deviations)) => {
                for d in deviations {
                    tracing::info!(deviation = %d, "partner deviates from RFC 5024 (accepted)");
                    self.events
                        .push_back(Event::Deviation(DeviationReport::Format(d)));
                }
                cmd
            }
            Err(err) => {
                let reason = err.end_session_reason();
                self.abort_local(reason, format!("invalid command: {err}"));
                return;
            }
        };
        tracing::trace!(state = self.state.name(), command = cmd.name(), "received");
        self.handle_command(cmd);
        self.touch();
    }

    fn handle_command(&mut self, cmd: Command) {
        if let Command::Esid(esid) = cmd {
            return self.remote_end(esid);
        }
        match (self.state, cmd) {
            // --- Session connection (9.8)
            (State::IWfRm, Command::Ssrm(_)) => self.initiator_send_ssid(),
            (State::IWfSsid, Command::Ssid(ssid)) => self.initiator_got_ssid(ssid),
            (State::ANcOnly, Command::Ssid(ssid)) => self.responder_got_ssid(ssid),

            // --- Secure authentication (9.8 I, J, K)
            (State::WfSecd, Command::Secd(_)) => self.send_challenge(),
            (State::WfAuch, Command::Auch(auch)) => self.answer_challenge(auch),
            (State::WfAurp, Command::Aurp(aurp)) => self.check_response(aurp),

            // --- Speaker (9.10, 9.11)
            (State::WfRtr, Command::Rtr(_)) => {
                if let Some(receipt) = self.receipt_in_flight.take() {
                    self.events.push_back(Event::ReceiptSent(receipt));
                }
                self.enter(State::IdleSp);
                self.speak();
            }
            (State::Opop, Command::Sfpa(sfpa)) => self.got_sfpa(sfpa),
            (State::Opop, Command::Sfna(sfna)) => self.got_sfna(sfna),
            (State::OpoWfc, Command::Cdt(_)) => {
                self.credit_s = self.window;
                self.enter(State::Opo);
            }
            (State::Opo, Command::Cdt(_)) => {
                // Table 9.10 makes this a protocol error, but the meaning is
                // unambiguous: both sides reset to the full window.
                self.deviation("CDT received while the speaker still had credit".into());
                self.credit_s = self.window;
            }
            (State::Clop, Command::Efpa(efpa)) => self.got_efpa(efpa),
            (State::Clop, Command::Efna(efna)) => self.got_efna(efna),

            // --- Listener (9.12)
            (State::IdleLi | State::IdleLiCd, Command::Sfid(sfid)) => self.got_sfid(sfid),
            (State::Opi, Command::Efid(efid)) => self.got_efid(efid),
            (State::IdleLi, Command::Cd(_)) => {
                // Transition C: F_CD_IND, unsolicited.
                self.enter(State::IdleSpCd);
                self.speak();
            }
            (State::WfCd, Command::Cd(_)) => {
                // Speaker table transition H: the CD we asked for in EFPA.
                self.enter(State::IdleSp);
                self.speak();
            }
            (State::IdleLi | State::IdleLiCd, Command::Eerp(eerp)) => {
                self.got_receipt(Receipt::Eerp(eerp))
            }
            (State::IdleLi | State::IdleLiCd, Command::Nerp(nerp)) => {
                self.got_receipt(Receipt::Nerp(nerp))
            }

            (state, cmd) => {
                let text = format!("{} is not valid in state {}", cmd.name(), state.name());
                self.abort_local(EndSessionReason::ProtocolViolation, text);
            }
        }
    }

    // ------------------------------------------------------------------
    // Start session

    fn own_ssid(&self, level: ProtocolLevel) -> Ssid {
        Ssid {
            level,
            id: self.config.id,
            password: self.config.password,
            buffer_size: self.config.buffer_size,
            capabilities: self.config.mode,
            compression: self.config.compression,
            restart: self.config.restart,
            // Special logic is for asynchronous X.25 access only and "not
            // supported for TCP/IP connections" (5.3.2 SSIDSPEC).
            special_logic: false,
            credit: self.config.credit,
            secure_authentication: self.config.secure_authentication && level.is_v2(),
            user_data: self.config.user_data,
        }
    }

    /// 9.8 transition H.
    fn initiator_send_ssid(&mut self) {
        let ssid = self.own_ssid(self.config.level);
        if self.send(&Command::Ssid(ssid)).is_ok() {
            self.enter(State::IWfSsid);
        }
    }

    /// 9.8 transition D.
    fn initiator_got_ssid(&mut self, ssid: Ssid) {
        if ssid.level > self.config.level {
            self.deviation(format!(
                "responder answered protocol level {} above our {}",
                ssid.level, self.config.level
            ));
        }
        self.level = self.config.level.negotiate(ssid.level);
        if let Err(reason) = self.handlers.authenticator.authenticate(&ssid) {
            let text = format!("responder {} refused by local authorisation", ssid.id);
            return self.abort_local(reason, text);
        }
        match self.negotiate(&ssid) {
            Ok(negotiated) if negotiated.secure_authentication => {
                // Transition D with P11: we are challenged first.
                self.authenticating = Some(Authenticating {
                    negotiated,
                    challenge: None,
                });
                if self.send(&Command::Secd(Secd)).is_ok() {
                    self.enter(State::WfAuch);
                }
            }
            Ok(negotiated) => {
                self.connected(negotiated);
                self.enter(State::IdleSp);
                self.speak();
            }
            Err((reason, text)) => self.abort_local(reason, text),
        }
    }

    /// 9.8 transitions E and G.
    fn responder_got_ssid(&mut self, ssid: Ssid) {
        // Answer (or refuse) in the layout the initiator understands.
        self.level = self.config.level.negotiate(ssid.level);
        if let Err(reason) = self.handlers.authenticator.authenticate(&ssid) {
            let text = format!("initiator {} refused by local authorisation", ssid.id);
            return self.abort_local(reason, text);
        }
        if let Some(required) = self.handlers.authenticator.secure_authentication(&ssid) {
            if required && self.config.authentication_keys.is_none() {
                let text = format!(
                    "secure authentication is required with {} but no key pair is configured",
                    ssid.id
                );
                return self.abort_local(
                    EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                    text,
                );
            }
            self.config.secure_authentication = required;
        }
        let negotiated = match self.negotiate(&ssid) {
            Ok(n) => n,
            Err((reason, text)) => return self.abort_local(reason, text),
        };
        let answer = Ssid {
            buffer_size: negotiated.buffer_size,
            capabilities: negotiated.mode,
            compression: negotiated.compression,
            restart: negotiated.restart,
            credit: negotiated.credit,
            ..self.own_ssid(self.level)
        };
        let answer = match self.handlers.authenticator.answer_password(&ssid) {
            Some(password) => Ssid { password, ..answer },
            None => answer,
        };
        if self.send(&Command::Ssid(answer)).is_ok() {
            if negotiated.secure_authentication {
                // Transition G with P9: the initiator starts with SECD.
                self.authenticating = Some(Authenticating {
                    negotiated,
                    challenge: None,
                });
                self.enter(State::WfSecd);
            } else {
                self.connected(negotiated);
                self.enter(State::IdleLi);
            }
        }
    }

    /// Predicate P2 of 9.8: compare the partner's SSID with our constants.
    fn negotiate(&mut self, partner: &Ssid) -> Result<Negotiated, (EndSessionReason, String)> {
        let ours = &self.config;
        let answering = self.role == Role::Responder;
        if !ours.mode.compatible_with(partner.capabilities) {
            return Err((
                EndSessionReason::ModeOrCapabilitiesIncompatible,
                format!(
                    "send/receive capabilities incompatible: ours {}, partner's {}",
                    ours.mode.as_byte() as char,
                    partner.capabilities.as_byte() as char
                ),
            ));
        }
        let mode = match (ours.mode, partner.capabilities) {
            (SendReceive::Both, SendReceive::Send) => SendReceive::Receive,
            (SendReceive::Both, SendReceive::Receive) => SendReceive::Send,
            (mode, _) => mode,
        };
        if partner.secure_authentication != ours.secure_authentication {
            // P8 / P10: no negotiation of authentication is allowed.
            return Err((
                EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                format!(
                    "partner {} secure authentication, this side {}",
                    if partner.secure_authentication {
                        "requires"
                    } else {
                        "does not offer"
                    },
                    if ours.secure_authentication {
                        "requires it"
                    } else {
                        "is not configured for it"
                    }
                ),
            ));
        }
        if partner.credit == 0 {
            return Err((
                EndSessionReason::ModeOrCapabilitiesIncompatible,
                "partner offers credit 0: no data could ever be sent".into(),
            ));
        }
        if !answering && partner.credit > ours.credit {
            // 5.3.2 SSIDCRED: "otherwise a protocol error will abort the
            // session" — and the partner would wait for DATA we never send.
            return Err((
                EndSessionReason::ProtocolViolation,
                format!(
                    "responder answered credit {} above our offer of {}",
                    partner.credit, ours.credit
                ),
            ));
        }
        if partner.buffer_size < 128 {
            return Err((
                EndSessionReason::CommandContainedInvalidData,
                format!(
                    "SSIDSDEB {} is below the minimum of 128",
                    partner.buffer_size
                ),
            ));
        }
        let mut deviations = Vec::new();
        if !answering && partner.buffer_size > ours.buffer_size {
            deviations.push(format!(
                "responder answered buffer size {} above our offer of {}; using {}",
                partner.buffer_size, ours.buffer_size, ours.buffer_size
            ));
        }
        if !answering && partner.compression && !ours.compression {
            deviations.push("responder answered compression Y to our N; not compressing".into());
        }
        if !answering && partner.restart && !ours.restart {
            deviations.push("responder answered restart Y to our N; no restart".into());
        }
        let negotiated = Negotiated {
            partner: *partner,
            level: self.level,
            buffer_size: partner.buffer_size.min(ours.buffer_size),
            credit: partner.credit.min(ours.credit),
            compression: partner.compression && ours.compression,
            restart: partner.restart && ours.restart,
            mode,
            special_logic: false,
            secure_authentication: partner.secure_authentication && ours.secure_authentication,
        };
        for d in deviations {
            self.deviation(d);
        }
        Ok(negotiated)
    }

    /// Transition J: SECD received, challenge the partner with its
    /// certificate from the application.
    fn send_challenge(&mut self) {
        let (Some(keys), Some(auth)) = (
            self.config.authentication_keys.clone(),
            self.authenticating.as_mut(),
        ) else {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "SECD outside secure authentication".into(),
            );
        };
        let partner = auth.negotiated.partner.id;
        let cert = match keys.partner_certificate(&partner) {
            Ok(cert) => cert,
            Err(refusal) => {
                tracing::warn!(partner = %partner, reason = %refusal.reason, text = %refusal.text, "secure authentication: no usable partner certificate");
                return self.abort_local(refusal.reason, refusal.text);
            }
        };
        let challenge = match Challenge::new(&cert, keys.challenge_cipher()) {
            Ok(c) => c,
            Err(err) => {
                let text =
                    format!("cannot encrypt the challenge to {partner}'s certificate: {err}");
                return self.abort_local(
                    EndSessionReason::SecureAuthenticationRequirementsIncompatible,
                    text,
                );
            }
        };
        let auch = Auch {
            challenge: Bytes::copy_from_slice(challenge.envelope()),
        };
        auth.challenge = Some(challenge);
        if self.send(&Command::Auch(auch)).is_ok() {
            self.enter(State::WfAurp);
        }
    }

    /// Transition I: decrypt the partner's challenge with our key and
    /// answer it. A challenge we cannot decrypt (not for our certificate)
    /// means we cannot prove who we are: ESID 11.
    fn answer_challenge(&mut self, auch: Auch) {
        let Some(keys) = self.config.authentication_keys.clone() else {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "AUCH outside secure authentication".into(),
            );
        };
        let response = match auth::respond(&auch.challenge, keys.identity()) {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(error = %err, "secure authentication: cannot decrypt the partner's challenge");
                let text = format!(
                    "challenge cannot be decrypted with our private key ({err}); \
                     check that the partner has our current certificate"
                );
                return self.abort_local(EndSessionReason::InvalidChallengeResponse, text);
            }
        };
        if self.send(&Command::Aurp(Aurp { response })).is_err() {
            return;
        }
        match self.role {
            Role::Initiator => self.enter(State::WfSecd),
            Role::Responder => {
                // Both directions verified: F_CONNECT_RS done.
                if let Some(auth) = self.authenticating.take() {
                    self.connected(auth.negotiated);
                }
                self.enter(State::IdleLi);
            }
        }
    }

    /// Transition K: compare AURPRSP with our challenge (P6 / P7).
    fn check_response(&mut self, aurp: Aurp) {
        let verified = self
            .authenticating
            .as_mut()
            .and_then(|a| a.challenge.take())
            .is_some_and(|c| c.verify(&aurp.response));
        if !verified {
            let partner = self
                .authenticating
                .as_ref()
                .map(|a| a.negotiated.partner.id.to_string())
                .unwrap_or_default();
            tracing::warn!(partner = %partner, "secure authentication failed: AURP does not match our challenge");
            return self.abort_local(
                EndSessionReason::InvalidChallengeResponse,
                format!("partner {partner} failed secure authentication (AURP does not match)"),
            );
        }
        match self.role {
            Role::Initiator => {
                if let Some(auth) = self.authenticating.take() {
                    self.connected(auth.negotiated);
                }
                self.enter(State::IdleSp);
                self.speak();
            }
            Role::Responder => {
                if self.send(&Command::Secd(Secd)).is_ok() {
                    self.enter(State::WfAuch);
                }
            }
        }
    }

    fn connected(&mut self, negotiated: Negotiated) {
        self.span
            .record("partner", tracing::field::display(&negotiated.partner.id));
        self.window = u32::from(negotiated.credit);
        self.buffer_size = negotiated.buffer_size as usize;
        tracing::info!(
            partner = %negotiated.partner.id,
            level = %negotiated.level,
            buffer_size = negotiated.buffer_size,
            credit = negotiated.credit,
            compression = negotiated.compression,
            restart = negotiated.restart,
            secure_authentication = negotiated.secure_authentication,
            "ODETTE-FTP session established"
        );
        self.events
            .push_back(Event::Connected(Box::new(negotiated.clone())));
        self.negotiated = Some(negotiated);
    }

    // ------------------------------------------------------------------
    // Speaker

    /// Decide what to do with the turn (the User Monitor's "decision" in
    /// the speaker diagram of 3.5.2): receipts first, then files, then
    /// hand over the turn (IDLESP) or release the session (IDLESPCD).
    fn speak(&mut self) {
        while matches!(self.state, State::IdleSp | State::IdleSpCd) {
            if let Some(receipt) = self.handlers.outbox.next_receipt() {
                self.send_receipt(receipt);
                continue;
            }
            let may_send = self.negotiated.as_ref().is_some_and(|n| n.mode.can_send());
            if may_send {
                if let Some(file) = self.handlers.outbox.next_file() {
                    self.start_file(file);
                    continue;
                }
            }
            if self.state == State::IdleSp {
                // Transition D: F_CD_RQ.
                if self.send(&Command::Cd(Cd)).is_ok() {
                    self.enter(State::IdleLiCd);
                }
            } else {
                // Transition E: F_RELEASE_RQ(Ok) after an unsolicited CD.
                let esid = Esid {
                    reason: EndSessionReason::Normal,
                    text: String::new(),
                };
                let _ = self.send(&Command::Esid(esid));
                self.finish(SessionEnd {
                    origin: Origin::Local,
                    reason: EndSessionReason::Normal,
                    text: String::new(),
                });
                self.enter(State::WfNdisc);
            }
        }
    }

    /// Transitions A and Y (F_EERP_RQ, F_NERP_RQ).
    fn send_receipt(&mut self, receipt: Receipt) {
        let cmd = match &receipt {
            Receipt::Eerp(eerp) => {
                let mut eerp = eerp.clone();
                if !self.level.is_v2() {
                    eerp.hash = Bytes::new();
                    eerp.signature = Bytes::new();
                }
                Command::Eerp(eerp)
            }
            Receipt::Nerp(nerp) => {
                let mut nerp = nerp.clone();
                if !self.level.is_v2() {
                    nerp.hash = Bytes::new();
                    nerp.signature = Bytes::new();
                }
                Command::Nerp(nerp)
            }
        };
        if !cmd.id().exists_at(self.level) {
            tracing::warn!(level = %self.level, "partner's protocol level has no NERP; receipt not sent");
            self.events.push_back(Event::ReceiptSkipped(receipt));
            return;
        }
        match self.encode_checked(&cmd) {
            Ok(()) => {
                self.receipt_in_flight = Some(receipt);
                self.enter(State::WfRtr);
            }
            Err(err) => {
                tracing::warn!(error = %err, "receipt cannot be encoded; not sent");
                self.events.push_back(Event::ReceiptSkipped(receipt));
            }
        }
    }

    /// Transition B (F_START_FILE_RQ): send SFID, enter OPOP. A file that
    /// cannot be offered is reported and skipped.
    fn start_file(&mut self, file: OutgoingFile) {
        let OutgoingFile { mut sfid, mut data } = file;
        let id = VirtualFileId::of(&sfid);
        let layout = match transfer_layout(&sfid) {
            Ok(layout) => layout,
            Err(err) => return self.skip_file(id, err.to_string()),
        };
        let restart = self.negotiated.as_ref().is_some_and(|n| n.restart);
        if sfid.restart_position > 0 {
            // P1 of 9.10: restart only if negotiated; and never offer a
            // position the local file does not have.
            if !restart {
                sfid.restart_position = 0;
            } else if let Err(err) = record::locate(layout, &mut data, sfid.restart_position) {
                tracing::info!(file = %id, error = %err, "offering a restart from the beginning instead");
                sfid.restart_position = 0;
            }
        }
        if let Err(err) = self.encode_checked(&Command::Sfid(sfid.clone())) {
            return self.skip_file(id, err);
        }
        tracing::debug!(file = %id, restart = sfid.restart_position, "SFID sent");
        self.sending = Some(Sending {
            file: id,
            sfid,
            layout,
            data: Some(data),
            source: None,
            next_progress: 0,
        });
        self.enter(State::Opop);
    }

    fn skip_file(&mut self, file: VirtualFileId, error: String) {
        tracing::warn!(file = %file, error = %error, "file skipped");
        self.events.push_back(Event::FileSkipped { file, error });
    }

    /// Transition K.
    fn got_sfpa(&mut self, sfpa: Sfpa) {
        let Some(tx) = self.sending.as_mut() else {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "SFPA without SFID".into(),
            );
        };
        if sfpa.answer_count > tx.sfid.restart_position {
            // P2: the answer may not exceed what we offered.
            let text = format!(
                "SFPA answer count {} exceeds the offered restart position {}",
                sfpa.answer_count, tx.sfid.restart_position
            );
            return self.abort_local(EndSessionReason::ProtocolViolation, text);
        }
        let Some(data) = tx.data.take() else {
            return self.abort_local(EndSessionReason::ProtocolViolation, "duplicate SFPA".into());
        };
        let compression = self.negotiated.as_ref().is_some_and(|n| n.compression);
        match FileSource::resume(
            data,
            tx.layout,
            self.buffer_size,
            compression,
            sfpa.answer_count,
        ) {
            Ok((source, at)) => {
                tx.source = Some(source);
                tx.next_progress = at.counts.units + self.config.progress_interval;
                let event = Event::FileStarted {
                    direction: Direction::Send,
                    file: tx.file.clone(),
                    restart_position: at.position,
                    restart_offset: at.local_offset,
                };
                self.events.push_back(event);
                // Action 12: V.Credit_S = V.Window.
                self.credit_s = self.window;
                self.enter(State::Opo);
            }
            Err(err) => self.local_send_failure(err),
        }
    }

    /// Transition L.
    fn got_sfna(&mut self, sfna: Sfna) {
        if let Some(tx) = self.sending.take() {
            tracing::info!(file = %tx.file, reason = %sfna.reason, retry = sfna.retry, "file refused by partner");
            self.events.push_back(Event::FileRefused {
                direction: Direction::Send,
                file: tx.file,
                reason: sfna.reason,
                retry_later: sfna.retry,
                text: sfna.text,
            });
        }
        self.enter(State::IdleSp);
        self.speak();
    }

    /// Table 9.11 transition C.
    fn got_efpa(&mut self, efpa: Efpa) {
        if let Some(tx) = self.sending.take() {
            let counts = tx.source.as_ref().map(|s| s.counts()).unwrap_or_default();
            tracing::info!(file = %tx.file, units = counts.units, "file sent");
            self.events.push_back(Event::FileDone {
                direction: Direction::Send,
                file: tx.file,
                counts,
            });
        }
        if efpa.change_direction {
            // P1: the listener wants the turn.
            if self.send(&Command::Cd(Cd)).is_ok() {
                self.enter(State::IdleLi);
            }
        } else {
            self.enter(State::IdleSp);
            self.speak();
        }
    }

    /// Table 9.11 transition D.
    fn got_efna(&mut self, efna: Efna) {
        if let Some(tx) = self.sending.take() {
            tracing::warn!(file = %tx.file, reason = %efna.reason, "partner rejected the file at its end");
            self.events.push_back(Event::FileFailed {
                direction: Direction::Send,
                file: tx.file,
                reason: efna.reason,
                text: efna.text,
            });
        }
        self.enter(State::IdleSp);
        self.speak();
    }

    /// The local file failed after SFPA: there is no way to cancel a file
    /// in ODETTE-FTP other than ending the session.
    fn local_send_failure(&mut self, err: RecordError) {
        if let Some(tx) = self.sending.take() {
            self.events.push_back(Event::FileFailed {
                direction: Direction::Send,
                file: tx.file,
                reason: err.efna_reason(),
                text: err.to_string(),
            });
        }
        self.abort_local(
            EndSessionReason::Unspecified,
            format!("local file error while sending: {err}"),
        );
    }

    // ------------------------------------------------------------------
    // Output

    /// Append bytes to send to `out`: queued commands and, in OPO, DATA
    /// buffers up to the credit window (transition M of 9.10). Returns the
    /// number of octets appended; 0 means nothing to send until more input
    /// (or a timeout) arrives.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> usize {
        let span = self.span.clone();
        let _entered = span.enter();
        let start = out.len();
        if !self.pending.is_empty() {
            out.extend_from_slice(&self.pending);
            self.pending.clear();
        }
        if self.state == State::Opo {
            self.pump_data(out, start);
        }
        out.len() - start
    }

    /// The DATA hot path: payloads go straight from the record encoder into
    /// `out` behind their STH and `'D'`.
    fn pump_data(&mut self, out: &mut BytesMut, start: usize) {
        enum Next {
            Continue,
            Eof(Counts),
            Failed(RecordError),
        }
        let Some(tx) = self.sending.as_mut() else {
            return;
        };
        let Some(source) = tx.source.as_mut() else {
            return;
        };
        let mut sent_any = false;
        let mut next = Next::Continue;
        while self.credit_s > 0 && out.len() - start < TRANSMIT_CHUNK {
            match source.next_payload() {
                Ok(Some(payload)) => {
                    let len = payload.len() + 1;
                    // The encoder never exceeds the negotiated buffer size,
                    // which is at most 99999, so the header always exists.
                    let Ok(header) = stb::header(len) else {
                        next = Next::Failed(RecordError::Io(std::io::Error::other(
                            "encoder produced an oversized DATA buffer",
                        )));
                        break;
                    };
                    out.reserve(stb::HEADER_LEN + len);
                    out.put_slice(&header);
                    out.put_u8(b'D');
                    out.put_slice(&payload);
                    // Action 13: V.Credit_S = V.Credit_S - 1.
                    self.credit_s -= 1;
                    sent_any = true;
                }
                Ok(None) => {
                    next = Next::Eof(source.counts());
                    break;
                }
                Err(err) => {
                    next = Next::Failed(err);
                    break;
                }
            }
        }
        let units = source.counts().units;
        if sent_any && units >= tx.next_progress {
            tx.next_progress = units + self.config.progress_interval;
            self.events.push_back(Event::Progress {
                direction: Direction::Send,
                units,
            });
        }
        match next {
            Next::Continue => {
                if self.credit_s == 0 {
                    // P3: credit exhausted -> OPOWFC. EFID may only follow
                    // in OPO (9.11 note 1), so even a finished file waits.
                    self.enter(State::OpoWfc);
                } else if sent_any {
                    self.touch();
                }
            }
            Next::Eof(counts) => {
                // Table 9.11 transition A: EFID, V.Credit_S = 0, CLOP.
                let efid = Efid {
                    record_count: counts.records,
                    unit_count: counts.units,
                };
                self.credit_s = 0;
                if self.send(&Command::Efid(efid)).is_ok() {
                    out.extend_from_slice(&self.pending);
                    self.pending.clear();
                    self.enter(State::Clop);
                }
            }
            Next::Failed(err) => self.local_send_failure(err),
        }
    }

    // ------------------------------------------------------------------
    // Listener

    /// Table 9.12 transitions A and H.
    fn got_sfid(&mut self, sfid: Sfid) {
        let Some(negotiated) = self.negotiated.as_ref() else {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "SFID before SSID".into(),
            );
        };
        let restart_allowed = negotiated.restart;
        if sfid.restart_position > 0 && !restart_allowed {
            let text = format!(
                "SFID asks for restart at {} but restart was not negotiated",
                sfid.restart_position
            );
            return self.abort_local(EndSessionReason::ProtocolViolation, text);
        }
        if !negotiated.mode.can_receive() {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "SFID received, but this side only sends in this session".into(),
            );
        }
        let file = VirtualFileId::of(&sfid);
        let layout = match transfer_layout(&sfid) {
            Ok(layout) => layout,
            Err(err) => {
                let refusal = Refusal::new(err.sfna_reason()).with_text(err.to_string());
                return self.refuse_file(file, refusal);
            }
        };
        let offer = FileOffer {
            partner: &negotiated.partner.id,
            sfid: &sfid,
            restart_allowed,
        };
        match self.handlers.inbox.accept(&offer) {
            Ok(Accepted {
                mut writer,
                restart,
            }) => {
                if restart.position > sfid.restart_position {
                    tracing::error!(
                        file = %file,
                        answer = restart.position,
                        offered = sfid.restart_position,
                        "inbox answered a restart position beyond the offer; refusing the file"
                    );
                    writer.abort();
                    let refusal = Refusal::new(StartFileRefusal::AccessMethodFailure)
                        .retry_later(true)
                        .with_text("local restart bookkeeping error");
                    return self.refuse_file(file, refusal);
                }
                let sfpa = Sfpa {
                    answer_count: restart.position,
                };
                if self.send(&Command::Sfpa(sfpa)).is_err() {
                    writer.abort();
                    return;
                }
                self.start_receiving(file, writer, layout, restart);
            }
            Err(refusal) => self.refuse_file(file, refusal),
        }
    }

    fn start_receiving(
        &mut self,
        file: VirtualFileId,
        writer: Box<dyn IncomingFile>,
        layout: Layout,
        restart: RestartPoint,
    ) {
        tracing::debug!(file = %file, restart = restart.position, "receiving");
        self.events.push_back(Event::FileStarted {
            direction: Direction::Receive,
            file: file.clone(),
            restart_position: restart.position,
            restart_offset: restart.local_offset,
        });
        self.receiving = Some(Receiving {
            file,
            writer,
            decoder: RecordDecoder::resume(layout, restart),
            staging: Vec::new(),
            failed: None,
            next_progress: restart.counts.units + self.config.progress_interval,
        });
        // Action 8: V.Credit_L = V.Window.
        self.credit_l = self.window;
        self.enter(State::Opi);
    }

    fn refuse_file(&mut self, file: VirtualFileId, refusal: Refusal<StartFileRefusal>) {
        let mut text = refusal.text;
        truncate_text(&mut text);
        let sfna = Sfna {
            reason: refusal.reason,
            // SFNARRTR exists from 1.4 on.
            retry: refusal.retry_later && self.level >= ProtocolLevel::V1_4,
            text: text.clone(),
        };
        tracing::info!(file = %file, reason = %sfna.reason, retry = sfna.retry, "refusing file");
        if self.send(&Command::Sfna(sfna)).is_ok() {
            self.events.push_back(Event::FileRefused {
                direction: Direction::Receive,
                file,
                reason: refusal.reason,
                retry_later: refusal.retry_later,
                text,
            });
            self.enter(State::IdleLi);
        }
    }

    /// Table 9.12 transition I.
    fn receive_data(&mut self, frame: Bytes) {
        if self.credit_l == 0 {
            // P6: the speaker exceeded its credit.
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                format!("DATA beyond the credit window of {}", self.window),
            );
        }
        if frame.len() > self.buffer_size {
            let text = format!(
                "DATA buffer of {} octets exceeds the negotiated {}",
                frame.len(),
                self.buffer_size
            );
            return self.abort_local(EndSessionReason::ExchangeBufferSizeError, text);
        }
        // Action 7.
        self.credit_l -= 1;
        let Some(rx) = self.receiving.as_mut() else {
            return;
        };
        if rx.failed.is_none() {
            let payload = frame.get(1..).unwrap_or_default();
            rx.staging.clear();
            let decoded = rx.decoder.decode(payload, &mut rx.staging);
            // What decoded before an error is still good file content.
            let written = rx.writer.write_all(&rx.staging);
            match (decoded, written) {
                (Err(err), _) => {
                    if let Some(reason) = err.esid_reason() {
                        return self.abort_local(reason, format!("malformed DATA buffer: {err}"));
                    }
                    tracing::warn!(file = %rx.file, error = %err, "receive failed; EFNA follows at EFID");
                    rx.failed = Some(Refusal::new(err.efna_reason()).with_text(err.to_string()));
                }
                (Ok(()), Err(err)) if EndSession::from_io(&err).is_some() => {
                    let end = EndSession::from_io(&err).cloned();
                    if let Some(end) = end {
                        return self.abort_local(end.reason, end.text);
                    }
                }
                (Ok(()), Err(err)) => {
                    tracing::warn!(file = %rx.file, error = %err, "writing failed; EFNA follows at EFID");
                    rx.failed = Some(
                        Refusal::new(EndFileRefusal::AccessMethodFailure)
                            .with_text(format!("local write failed: {err}")),
                    );
                }
                (Ok(()), Ok(())) => {}
            }
            let units = rx.decoder.counts().units;
            if units >= rx.next_progress {
                rx.next_progress = units + self.config.progress_interval;
                self.events.push_back(Event::Progress {
                    direction: Direction::Receive,
                    units,
                });
            }
        }
        if self.credit_l == 0 {
            // P7: the speaker's credit is used up; everything is consumed
            // (written synchronously), so grant the next window at once.
            if self.send(&Command::Cdt(Cdt)).is_ok() {
                self.credit_l = self.window;
            }
        }
    }

    /// Table 9.12 transitions J and K.
    fn got_efid(&mut self, efid: Efid) {
        let Some(mut rx) = self.receiving.take() else {
            return self.abort_local(
                EndSessionReason::ProtocolViolation,
                "EFID without SFID".into(),
            );
        };
        let result = match rx.failed.take() {
            Some(refusal) => Err(refusal),
            None => finish_receiving(&mut rx, &efid),
        };
        match result {
            Ok(counts) => {
                let change_direction = self.handlers.outbox.wants_turn();
                if self
                    .send(&Command::Efpa(Efpa { change_direction }))
                    .is_err()
                {
                    return;
                }
                tracing::info!(file = %rx.file, units = counts.units, "file received");
                self.events.push_back(Event::FileDone {
                    direction: Direction::Receive,
                    file: rx.file,
                    counts,
                });
                self.enter(if change_direction {
                    State::WfCd
                } else {
                    State::IdleLi
                });
            }
            Err(refusal) => {
                rx.writer.abort();
                let mut text = refusal.text;
                truncate_text(&mut text);
                tracing::warn!(file = %rx.file, reason = %refusal.reason, text = %text, "answering EFNA");
                let efna = Efna {
                    reason: refusal.reason,
                    text: text.clone(),
                };
                if self.send(&Command::Efna(efna)).is_err() {
                    return;
                }
                self.events.push_back(Event::FileFailed {
                    direction: Direction::Receive,
                    file: rx.file,
                    reason: refusal.reason,
                    text,
                });
                self.enter(State::IdleLi);
            }
        }
    }

    /// Transitions E and L (RTRP passed through: F_RTR_RS at once).
    fn got_receipt(&mut self, receipt: Receipt) {
        let checked = self.config.receipt_security.as_ref().map(|security| {
            let creator = match &receipt {
                Receipt::Eerp(e) => e.originator,
                Receipt::Nerp(n) => n.creator,
            };
            let signers = security.receipt_signers(&creator);
            let verification = crate::security::receipt::verify_receipt(&receipt, &signers, None);
            if let crate::security::receipt::ReceiptVerification::Invalid(err) = &verification {
                tracing::warn!(creator = %creator, error = %err, "signed receipt does not verify");
            }
            Event::ReceiptChecked {
                receipt: receipt.clone(),
                verification,
            }
        });
        self.events.push_back(Event::ReceiptReceived(receipt));
        if let Some(checked) = checked {
            self.events.push_back(checked);
        }
        if self.send(&Command::Rtr(Rtr)).is_ok() {
            self.enter(State::IdleLi);
        }
    }

    // ------------------------------------------------------------------
    // End session

    /// ESID received: table 9.12 transitions D and F, 9.8 transition F.
    fn remote_end(&mut self, esid: Esid) {
        if esid.reason == EndSessionReason::Normal && self.state != State::IdleLiCd {
            // Only valid right after we handed over the turn; anywhere else
            // the RFC makes it an abort indication with reason 00.
            self.deviation(format!(
                "ESID 00 (normal) received in state {}, not after our CD",
                self.state.name()
            ));
        }
        tracing::info!(reason = %esid.reason, text = %esid.text, state = self.state.name(), "partner ended the session");
        self.interrupt_transfers();
        self.finish(SessionEnd {
            origin: Origin::Remote,
            reason: esid.reason,
            text: esid.text,
        });
        self.enter(State::Idle);
    }

    /// Send ESID and wait for the disconnect (transitions C/P/Q of 9.10,
    /// L of 9.8, I of 9.9).
    fn abort_local(&mut self, reason: EndSessionReason, mut text: String) {
        if !self.state.is_active() {
            return;
        }
        tracing::warn!(reason = %reason, text = %text, state = self.state.name(), "ending the session");
        truncate_text(&mut text);
        self.interrupt_transfers();
        let esid = Esid {
            reason,
            text: text.clone(),
        };
        let _ = self.send(&Command::Esid(esid));
        self.finish(SessionEnd {
            origin: Origin::Local,
            reason,
            text,
        });
        self.enter(State::WfNdisc);
    }

    /// Report transfers cut short by the end of the session.
    fn interrupt_transfers(&mut self) {
        if let Some(mut rx) = self.receiving.take() {
            rx.writer.abort();
            let units = rx.decoder.counts().units;
            tracing::info!(file = %rx.file, units, "incoming transfer interrupted");
            self.events.push_back(Event::FileInterrupted {
                direction: Direction::Receive,
                file: rx.file,
                units,
            });
        }
        if let Some(tx) = self.sending.take() {
            let units = tx.source.as_ref().map_or(0, |s| s.counts().units);
            tracing::info!(file = %tx.file, units, "outgoing transfer interrupted");
            self.events.push_back(Event::FileInterrupted {
                direction: Direction::Send,
                file: tx.file,
                units,
            });
        }
    }

    fn finish(&mut self, end: SessionEnd) {
        if self.end.is_none() {
            self.events.push_back(Event::Ended(end.clone()));
            self.end = Some(end);
        }
    }

    // ------------------------------------------------------------------
    // Plumbing

    fn enter(&mut self, state: State) {
        if state != self.state {
            tracing::trace!(from = self.state.name(), to = state.name(), "state");
        }
        self.state = state;
        match state {
            State::Idle => {
                self.timer_seq += 1;
                self.timer = Some(TimerRequest::Disarm);
            }
            State::WfNdisc => self.arm(self.config.disconnect_timeout),
            _ => self.arm(self.config.response_timeout),
        }
    }

    /// Restart the response timer (Actions 1 and 2 of the state tables).
    fn touch(&mut self) {
        if self.state.is_active() {
            self.arm(self.config.response_timeout);
        }
    }

    fn arm(&mut self, after: Duration) {
        self.timer_seq += 1;
        self.timer = Some(TimerRequest::Arm {
            id: TimerId(self.timer_seq),
            after,
        });
    }

    fn deviation(&mut self, text: String) {
        tracing::info!(deviation = %text, "partner deviates from RFC 5024 (accepted)");
        self.events
            .push_back(Event::Deviation(DeviationReport::Behaviour(text)));
    }

    /// Queue a command; an encoding failure of a command the session must
    /// send ends the session.
    fn send(&mut self, cmd: &Command) -> Result<(), ()> {
        match self.encode_checked(cmd) {
            Ok(()) => Ok(()),
            Err(err) => {
                tracing::error!(command = cmd.name(), error = %err, "cannot encode command");
                if !matches!(cmd, Command::Esid(_)) {
                    self.abort_local(EndSessionReason::Unspecified, err);
                } else {
                    self.finish(SessionEnd {
                        origin: Origin::Local,
                        reason: EndSessionReason::Unspecified,
                        text: err,
                    });
                    self.enter(State::Idle);
                }
                Err(())
            }
        }
    }

    /// Encode `cmd` behind its STH into the pending output, or explain why
    /// it cannot be (nothing is queued then).
    fn encode_checked(&mut self, cmd: &Command) -> Result<(), String> {
        let start = self.pending.len();
        self.pending.put_slice(&[0; stb::HEADER_LEN]);
        if let Err(err) = cmd.encode(self.level, &mut self.pending) {
            self.pending.truncate(start);
            return Err(format!("{} at level {}: {err}", cmd.name(), self.level));
        }
        let len = self.pending.len() - start - stb::HEADER_LEN;
        match stb::header(len) {
            Ok(header) => {
                self.pending[start..start + stb::HEADER_LEN].copy_from_slice(&header);
                tracing::trace!(command = cmd.name(), len, "queued");
                Ok(())
            }
            Err(err) => {
                self.pending.truncate(start);
                Err(format!("{}: {err}", cmd.name()))
            }
        }
    }
}

/// Verify EFID against what arrived and commit the file.
fn finish_receiving(rx: &mut Receiving, efid: &Efid) -> Result<Counts, Refusal<EndFileRefusal>> {
    rx.staging.clear();
    let counts = rx
        .decoder
        .finish(&mut rx.staging)
        .map_err(|err| Refusal::new(err.efna_reason()).with_text(err.to_string()))?;
    rx.writer.write_all(&rx.staging).map_err(|err| {
        Refusal::new(EndFileRefusal::AccessMethodFailure)
            .with_text(format!("local write failed: {err}"))
    })?;
    if counts.records != efid.record_count {
        return Err(
            Refusal::new(EndFileRefusal::InvalidRecordCount).with_text(format!(
                "EFID announces {} records, {} were received",
                efid.record_count, counts.records
            )),
        );
    }
    if counts.units != efid.unit_count {
        return Err(
            Refusal::new(EndFileRefusal::InvalidByteCount).with_text(format!(
                "EFID announces {} octets, {} were received",
                efid.unit_count, counts.units
            )),
        );
    }
    rx.writer.flush().map_err(|err| {
        Refusal::new(EndFileRefusal::AccessMethodFailure)
            .with_text(format!("local write failed: {err}"))
    })?;
    rx.writer.commit(counts)?;
    Ok(counts)
}

/// The layout of the Virtual File as transmitted: a signed, encrypted,
/// compressed or enveloped file has lost its record structure and travels
/// as U (5.3.3 SFIDFMT), whatever its original format.
fn transfer_layout(sfid: &Sfid) -> Result<Layout, RecordError> {
    let enveloped = sfid.security != SecurityLevel::None
        || sfid.compression != FileCompression::None
        || sfid.envelope != FileEnvelope::None;
    if enveloped {
        Ok(Layout::unstructured())
    } else {
        Layout::new(sfid.format, sfid.max_record_size)
    }
}

/// Cut a reason text to the 999 octets the RFC allows, on a character
/// boundary.
fn truncate_text(text: &mut String) {
    if text.len() > MAX_REASON_TEXT {
        let mut cut = MAX_REASON_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}
