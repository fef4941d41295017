//! One outgoing session to one partner: connect (TCP or TLS), run the
//! oftp2 session as initiator, send the partner's due files one after the
//! other (each claimed from the queue only when the session is ready for
//! it, so files queued meanwhile go out in the same session), hand over
//! the turn so the partner can send its files and EERPs, deliver EERPs due
//! from us, and record every outcome in the queue.

use std::sync::Arc;

use oftp2::codec::Ssid;
use oftp2::session::{Authenticator, Handlers, Role, Session};
use oftp2::value::{EndSessionReason, StartFileRefusal};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Shared;
use crate::exchange::{Claimed, Exchange, Outcome};
use crate::inbox::{SessionContext, SessionInbox};
use crate::partner::Partner;
use crate::queue::Route;

/// Runs one session with `partner` over `route`.
pub async fn run(
    shared: Arc<Shared>,
    route: Route,
    partner: Partner,
    session_no: u64,
    claimed: Claimed,
) -> Outcome {
    // A revoked, expired or untrusted partner certificate stops every
    // exchange with the partner until it is replaced.
    if let Some(security) = &shared.security {
        if let Err(e) = security.check_partner_for_session(&partner) {
            tracing::error!(partner = %partner.id, session = session_no, error = %e, "session refused: partner certificate unusable");
            return unreachable(format!("session refused: {e}"));
        }
    }
    // A partner that must use TLS gets nothing in clear: not over a plain
    // TCP route, not over ISDN.
    if partner.tls_required && !route.tls {
        tracing::error!(partner = %partner.id, session = session_no, "partner requires TLS but its route has none; nothing sent. Fix it with `os4x route set {} --tls true` (or `os4x partner set {} --tls-required false`)", partner.id, partner.id);
        return unreachable(format!(
            "partner {} requires TLS but its route is plain; run `os4x route set {} --tls true`",
            partner.id, partner.id
        ));
    }
    // A partner with an ISDN number is dialled instead (sq/isdn.rs).
    let db = shared.queue.db();
    match super::isdn::dial_if_isdn(&shared.config, db, &partner.id.to_string(), session_no).await {
        Some(Ok((io, peer))) => {
            return drive(shared, route, partner, session_no, claimed, io, peer).await
        }
        Some(Err(e)) => return unreachable(e),
        None => {}
    }
    let addr = format!("{}:{}", route.host, route.port);
    let connect_timeout = shared.config.sq.connect_timeout;
    tracing::info!(partner = %partner.id, session = session_no, address = %addr, tls = route.tls, "connecting");
    let tcp =
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return unreachable(format!("cannot connect to {addr}: {e}")),
            Err(_) => {
                return unreachable(format!(
                    "cannot connect to {addr}: no answer within {connect_timeout:?}"
                ))
            }
        };
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.clone());
    if route.tls {
        let (connector, name) = match crate::tls::client::connector(&route, &shared.config.rd.tls) {
            Ok(c) => c,
            Err(e) => return unreachable(e.to_string()),
        };
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => drive(shared, route, partner, session_no, claimed, tls, peer).await,
            Ok(Err(e)) => unreachable(format!("TLS handshake with {addr} failed: {e}")),
            Err(_) => unreachable(format!("TLS handshake with {addr} timed out")),
        }
    } else {
        drive(shared, route, partner, session_no, claimed, tcp, peer).await
    }
}

fn unreachable(error: String) -> Outcome {
    Outcome {
        error: Some(error),
        ..Outcome::default()
    }
}

async fn drive<S>(
    shared: Arc<Shared>,
    route: Route,
    partner: Partner,
    session_no: u64,
    claimed: Claimed,
    io: S,
    peer: String,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ctx = Arc::new(SessionContext {
        peer: peer.clone(),
        session: session_no,
        ..SessionContext::default()
    });
    let _ = ctx.partner.set(partner.clone());
    if let Ok(mut q) = ctx.receipts.lock() {
        shared.inbox.load_due(&partner.id, &mut q);
    }
    let mut exchange = Exchange::new(
        shared.queue.clone(),
        shared.inbox.clone(),
        ctx.clone(),
        claimed,
        Arc::new(crate::exchange::jitter),
    )
    .with_route(route)
    .with_stats(shared.clone());
    if let Some(security) = &shared.security {
        exchange = exchange.with_security(security.clone());
    }
    let handlers = Handlers {
        authenticator: Box::new(ResponderCheck {
            partner: partner.clone(),
        }),
        inbox: Box::new(PolledInbox(shared.inbox.session(ctx.clone()))),
        outbox: exchange.outbox(),
    };
    let mut cfg = oftp2::session::Config::new(shared.local_id, partner.password_out);
    cfg.user_data = shared.config.local.user_data;
    cfg.response_timeout = shared.config.sq.response_timeout;
    if partner.security.secure_auth {
        let keys = shared
            .security
            .clone()
            .and_then(crate::security::AuthKeys::new);
        match keys {
            Some(keys) => cfg = cfg.with_secure_authentication(Arc::new(keys)),
            None => {
                return unreachable(format!(
                    "secure authentication is set for {} but [security] has no key pair \
                     (certificate, private_key)",
                    partner.id
                ))
            }
        }
    }
    let mut session = match Session::new(Role::Initiator, cfg, handlers) {
        Ok(s) => s,
        Err(e) => return unreachable(format!("session parameters: {e}")),
    };
    let result = oftp2::driver::run(&mut session, io, |event| exchange.on_event(event)).await;
    let outcome = exchange.finish(result.map_err(|e| e.to_string()));
    tracing::info!(
        partner = %partner.id,
        session = session_no,
        peer = %peer,
        sent = outcome.files_sent,
        received = outcome.files_received,
        end = outcome.error.as_deref().unwrap_or("normal"),
        "session finished"
    );
    outcome
}
/// Checks the responder's SSID: it must be the partner we called, with
/// the password agreed for it.
struct ResponderCheck {
    partner: Partner,
}

impl Authenticator for ResponderCheck {
    fn authenticate(&mut self, ssid: &Ssid) -> Result<(), EndSessionReason> {
        if !ssid.id.eq_ignore_case(&self.partner.id) {
            tracing::warn!(expected = %self.partner.id, answered = %ssid.id, "the called station is not the partner; ending the session");
            return Err(EndSessionReason::UserCodeNotKnown);
        }
        if !self.partner.password_matches(&ssid.password) {
            tracing::warn!(partner = %self.partner.id, "the partner answered with a wrong password (check password_in); ending the session");
            return Err(EndSessionReason::InvalidPassword);
        }
        Ok(())
    }
}

/// Files the partner sends us in this session go to the same inbox as
/// `os4xrd`'s.
struct PolledInbox(SessionInbox);

impl oftp2::session::Inbox for PolledInbox {
    fn accept(
        &mut self,
        offer: &oftp2::session::FileOffer<'_>,
    ) -> Result<oftp2::session::Accepted, oftp2::session::Refusal<StartFileRefusal>> {
        self.0.accept(offer)
    }
}
