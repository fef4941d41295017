//! `os4xrd_capi_<n>`: drives ISDN controller `n`, answers calls from
//! partners' numbers and serves their OFTP sessions exactly as
//! `os4xrd_tcpip` does ([`crate::serve::Responder::serve_stream`]: partner
//! checks, inbox, EERPs).
//!
//! Call acceptance, in order:
//! 1. the called number (MSN/DDI) must be one of the controller's `msn`
//!    (when any are configured); other calls are *ignored* (CAPI reject 1)
//!    so another device on the same bus may take them;
//! 2. the caller must present its number (no CLIR) and it must be an
//!    enabled partner's ISDN number (`os4x route set --isdn-number`),
//!    else the call is rejected with Q.850 cause 21 "call rejected";
//! 3. a free B channel (`b_channels`), else cause 17 "user busy".
//!
//! The controller connection is re-established with backoff when it is
//! lost; the state is published for `os4x-pidctl status` ([`crate::isdn::state`])
//! and systemd's STATUS= line.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use capi::message::{cip, reject};
use capi::stream::{Application, IncomingCall};

use crate::config::Config;
use crate::daemon::{Daemon, Shutdown};
use crate::db::{unix_now, Db};
use crate::isdn::settings::{number_matches, ControllerConfig, IsdnConfig};
use crate::isdn::state::{self, ControllerState};
use crate::isdn_routes::IsdnRoutes;
use crate::partner::PartnerStore;
use crate::serve::Responder;

/// `CONNECT_RESP` reject value for Q.850 cause 21, call rejected.
pub const REJECT_CALL_REJECTED: u16 = 0x3495;

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long running sessions may take after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What to do with an offered call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept: the enabled partners the calling number belongs to (one,
    /// or several sharing a line); the SSID must name one of them.
    Accept { partners: Vec<String> },
    /// Reject with this `CONNECT_RESP` reject value, and why (for the log).
    Reject { value: u16, why: String },
}

/// The acceptance policy (see the module docs), without I/O except the
/// partner and route tables.
pub fn decide(
    ctl: &ControllerConfig,
    isdn: &IsdnConfig,
    routes: &IsdnRoutes,
    partners: &PartnerStore,
    calling: Option<&str>,
    called: Option<&str>,
    active: u32,
) -> Decision {
    let reject = |value, why: String| Decision::Reject { value, why };
    if !ctl.msn.is_empty() {
        let ours = called.is_some_and(|c| {
            ctl.msn
                .iter()
                .any(|m| number_matches(c, m, isdn.match_digits))
        });
        if !ours {
            return reject(
                reject::IGNORE,
                format!(
                    "called number {} is not one of this controller's MSNs {:?}",
                    called.unwrap_or("(none)"),
                    ctl.msn
                ),
            );
        }
    }
    let Some(calling) = calling.filter(|c| !c.is_empty()) else {
        return reject(
            REJECT_CALL_REJECTED,
            "the caller presents no number (CLIR); partners are recognised by their number".into(),
        );
    };
    let candidates = match routes.partners_calling_from(calling, isdn.match_digits) {
        Ok(c) => c,
        Err(e) => {
            return reject(
                reject::OUT_OF_ORDER,
                format!("cannot read the partners' ISDN numbers: {e}"),
            )
        }
    };
    let mut disabled = None;
    let mut accepted = Vec::new();
    for r in candidates {
        match partners.get(&r.partner) {
            Ok(Some(p)) if p.enabled => accepted.push(p.id.to_string()),
            Ok(Some(p)) => disabled = Some(p.id.to_string()),
            Ok(None) => {}
            Err(e) => {
                return reject(
                    reject::OUT_OF_ORDER,
                    format!("cannot read partner {}: {e}", r.partner),
                )
            }
        }
    }
    if !accepted.is_empty() {
        if active >= u32::from(ctl.b_channels) {
            return reject(
                reject::USER_BUSY,
                format!("all {} B channels busy", ctl.b_channels),
            );
        }
        return Decision::Accept { partners: accepted };
    }
    let why = match disabled {
        Some(p) => format!("calling number {calling} belongs to partner {p}, which is disabled"),
        None => format!(
            "calling number {calling} is no partner's ISDN number; set it with `os4x route set PARTNER --isdn-number {calling}`"
        ),
    };
    reject(REJECT_CALL_REJECTED, why)
}

/// The published controller state, with the file it goes to.
struct Published {
    file: PathBuf,
    state: Mutex<ControllerState>,
}

impl Published {
    fn update(&self, f: impl FnOnce(&mut ControllerState)) {
        let snapshot = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s);
            s.updated_at = unix_now();
            s.clone()
        };
        if let Err(e) = state::write(&self.file, &snapshot) {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot write the controller state for os4x-pidctl");
        }
        let line = format!(
            "{}; {} calls accepted, {} rejected",
            snapshot.summary(),
            snapshot.calls_accepted,
            snapshot.calls_rejected
        );
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
    }
}

/// Checks before start-up: the controller is configured. `Err` is the
/// message for the admin (exit 78).
pub fn precheck(config: &Config, n: u32) -> Result<(), String> {
    config.local.require_id().map_err(|e| e.to_string())?;
    if config.isdn.controller(n).is_none() {
        let known: Vec<String> = config
            .isdn
            .controllers
            .iter()
            .map(|c| c.number.to_string())
            .collect();
        return Err(format!(
            "ISDN controller {n} is not configured: add [[isdn.controller]] with number = {n} to {} (configured: {})",
            config
                .source
                .as_deref()
                .map_or_else(|| crate::config::DEFAULT_PATH.into(), |p| p.display().to_string()),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ));
    }
    Ok(())
}

/// The body of `os4xrd_capi_<n>`.
pub async fn run(d: Daemon, n: u32) -> anyhow::Result<()> {
    let config = d.config().clone();
    let ctl =
        config.isdn.controller(n).cloned().with_context(|| {
            format!("ISDN controller {n} is not configured ([[isdn.controller]])")
        })?;
    // ISDN is not TLS: the server's plain configuration applies (a
    // partner that requires TLS is refused at SSID, as over TCP).
    let server = Responder::new(config.clone())?;
    let db = Db::open(&config.database)?;
    let routes = IsdnRoutes::open(db.clone())?;
    let partners = PartnerStore::new(db);
    let published = Arc::new(Published {
        file: state::path(&config.tmp_dir, d.program().as_str()),
        state: Mutex::new(ControllerState {
            controller: ctl.number,
            capi_controller: ctl.capi_controller,
            transport: ctl.transport.to_string(),
            state: "connecting".into(),
            msn: ctl.msn.clone(),
            ..ControllerState::default()
        }),
    });
    published.update(|_| {});
    d.ready();
    let active = Arc::new(AtomicU32::new(0));
    let mut shutdown = d.shutdown();
    let mut backoff = MIN_BACKOFF;
    loop {
        // It watches for shutdown itself, so running sessions can finish.
        let outcome = serve_controller(
            &ctl,
            &config,
            &server,
            &routes,
            &partners,
            &published,
            &active,
            shutdown.clone(),
        )
        .await;
        let (error, was_up) = match outcome {
            Ok(()) => break,
            Err((e, up)) => (e, up),
        };
        if was_up {
            backoff = MIN_BACKOFF;
        }
        tracing::error!(controller = n, transport = %ctl.transport, error = %error, retry_in = ?backoff, "ISDN controller not available");
        published.update(|s| {
            s.state = "down".into();
            s.error = Some(error.clone());
        });
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let _ = std::fs::remove_file(&published.file);
    Ok(())
}

/// Registers on the controller, listens and answers calls until the
/// controller connection is lost (`Err((why, was listening))`) or shutdown.
#[allow(clippy::too_many_arguments)]
async fn serve_controller(
    ctl: &ControllerConfig,
    config: &Config,
    server: &Arc<Responder>,
    routes: &IsdnRoutes,
    partners: &PartnerStore,
    published: &Arc<Published>,
    active: &Arc<AtomicU32>,
    mut shutdown: Shutdown,
) -> Result<(), (String, bool)> {
    let link = tokio::select! {
        () = shutdown.wait() => return Ok(()),
        l = crate::isdn::link::open(ctl) => l.map_err(|e| (e.to_string(), false))?,
    };
    let mut app = Application::start(link);
    tokio::select! {
        () = shutdown.wait() => return Ok(()),
        r = app.listen(ctl.capi_controller, cip::mask(cip::UNRESTRICTED_DIGITAL)) => {
            r.map_err(|e| (format!("LISTEN_REQ on CAPI controller {} refused: {e}", ctl.capi_controller), false))?
        }
    }
    tracing::info!(controller = ctl.number, capi_controller = ctl.capi_controller, transport = %ctl.transport, b3 = %ctl.b3, msn = ?ctl.msn, "listening for ISDN calls");
    published.update(|s| {
        s.state = "listening".into();
        s.error = None;
    });
    loop {
        let call = tokio::select! {
            () = shutdown.wait() => {
                // Running sessions get a moment; their calls are cleared
                // when the application is released.
                let deadline = tokio::time::Instant::now() + STOP_GRACE;
                while active.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(());
            }
            c = app.next_call() => c,
        };
        let Some(call) = call else {
            return Err((
                "the controller connection was lost; reconnecting".into(),
                true,
            ));
        };
        answer(
            call, ctl, config, server, routes, partners, published, active,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn answer(
    call: IncomingCall,
    ctl: &ControllerConfig,
    config: &Config,
    server: &Arc<Responder>,
    routes: &IsdnRoutes,
    partners: &PartnerStore,
    published: &Arc<Published>,
    active: &Arc<AtomicU32>,
) {
    let calling = call.calling.clone();
    let called = call.called.clone();
    let shown = |n: &Option<String>| n.clone().unwrap_or_else(|| "(none)".into());
    let decision = decide(
        ctl,
        &config.isdn,
        routes,
        partners,
        calling.as_deref(),
        called.as_deref(),
        active.load(Ordering::Relaxed),
    );
    let last = |outcome: &str| {
        format!(
            "{} {} -> {}: {outcome}",
            unix_now(),
            shown(&calling),
            shown(&called)
        )
    };
    match decision {
        Decision::Reject { value, why } => {
            if value == reject::IGNORE {
                tracing::info!(controller = ctl.number, calling = %shown(&calling), called = %shown(&called), "call ignored: {why}");
            } else {
                tracing::warn!(controller = ctl.number, calling = %shown(&calling), called = %shown(&called), cause = format_args!("0x{value:04X}"), "call rejected: {why}");
                published.update(|s| {
                    s.calls_rejected += 1;
                    s.last_call = Some(last(&format!("rejected 0x{value:04X}")));
                });
            }
            if let Err(e) = call.reject(value) {
                tracing::warn!(error = %e, "cannot answer the call");
            }
        }
        Decision::Accept { partners } => {
            let partner = partners.join(",");
            tracing::info!(controller = ctl.number, partner = %partner, calling = %shown(&calling), called = %shown(&called), "call accepted");
            active.fetch_add(1, Ordering::Relaxed);
            published.update(|s| {
                s.calls_accepted += 1;
                s.calls_active = active.load(Ordering::Relaxed);
                s.last_call = Some(last(&format!("accepted ({partner})")));
            });
            let (server, published, active) = (server.clone(), published.clone(), active.clone());
            let peer = format!("isdn:{}", shown(&calling));
            let (controller, b3) = (ctl.number, ctl.b3);
            tokio::spawn(async move {
                match call.accept(b3.b_protocol()).await {
                    Ok(stream) => {
                        server
                            .serve_stream(crate::isdn::call::CallStream(stream), peer, partners)
                            .await
                    }
                    Err(e) => {
                        tracing::warn!(controller, partner = %partner, error = %e, "call lost while connecting")
                    }
                }
                active.fetch_sub(1, Ordering::Relaxed);
                published.update(|s| s.calls_active = active.load(Ordering::Relaxed));
            });
        }
    }
}

/// `os4xrd_capi --test-call NUMBER`: dials `number` through controller
/// `n` as `os4xsqd` would, waits for the OFTP responder's first command
/// (SSRM, "ODETTE FTP READY"), hangs up. `Ok`: what was seen; `Err`: why
/// the call did not get through, with the CAPI/Q.850 reason.
pub async fn test_call(config: &Config, n: u32, number: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ctl = config
        .isdn
        .controller(n)
        .ok_or_else(|| format!("ISDN controller {n} is not configured"))?;
    let link = crate::isdn::link::open(ctl)
        .await
        .map_err(|e| format!("controller {n} ({}): {e}", ctl.transport))?;
    let app = Application::start(link);
    let started = tokio::time::Instant::now();
    let dial = app.dial(capi::stream::Dial {
        controller: ctl.capi_controller,
        called: crate::isdn::settings::digits(number),
        calling: ctl.msn.first().cloned(),
        b_protocol: ctl.b3.b_protocol(),
    });
    let timeout = config.sq.connect_timeout;
    let mut stream = match tokio::time::timeout(timeout, dial).await {
        Ok(Ok(s)) => s,
        Ok(Err(capi::stream::CallError::Cleared { reason })) => {
            return Err(format!(
                "call to {number} not accepted: reason 0x{reason:04X} ({})",
                capi::stream::describe_reason(reason)
            ))
        }
        Ok(Err(e)) => return Err(format!("call to {number} failed: {e}")),
        Err(_) => {
            return Err(format!(
                "call to {number}: no connection within {timeout:?}"
            ))
        }
    };
    let connected = started.elapsed();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let ssrm = tokio::time::timeout(Duration::from_secs(10), async {
        while buf.len() < 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            if buf.windows(16).any(|w| w == b"ODETTE FTP READY") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = stream.shutdown().await;
    drop(stream);
    // Let the application clear the call before it is released.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b3 = ctl.b3;
    if ssrm {
        Ok(format!(
            "call to {number} accepted after {connected:?} ({b3} B3); the partner's OFTP server answered SSRM \"ODETTE FTP READY\""
        ))
    } else {
        Err(format!(
            "call to {number} accepted after {connected:?} ({b3} B3), but no OFTP SSRM followed within 10 s: check that both sides use the same b3 mode"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isdn::settings::{B3Mode, TransportKind};
    use crate::partner::Partner;
    use oftp2::value::{OdetteId, Password};

    fn setup() -> (tempfile::TempDir, IsdnRoutes, PartnerStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(os4x_store::testing::database_for(dir.path())).unwrap();
        let routes = IsdnRoutes::open(db.clone()).unwrap();
        let partners = PartnerStore::new(db);
        for (id, number, enabled) in [
            ("O0013000000AAAA", "4930100", true),
            ("O0013000000OFF", "4930777", false),
        ] {
            let mut p = Partner::new(
                OdetteId::new(id).unwrap(),
                Password::new("IN").unwrap(),
                Password::new("OUT").unwrap(),
            );
            p.enabled = enabled;
            partners.add(&p).unwrap();
            routes.set(id, Some((number, 0))).unwrap();
        }
        (dir, routes, partners)
    }

    fn ctl(msn: &[&str]) -> ControllerConfig {
        ControllerConfig {
            number: 0,
            transport: TransportKind::Device("/dev/capi20".into()),
            capi_controller: 1,
            msn: msn.iter().map(|s| s.to_string()).collect(),
            b3: B3Mode::Transparent,
            b_channels: 2,
        }
    }

    #[test]
    fn acceptance_policy() {
        let (_dir, routes, partners) = setup();
        let isdn = IsdnConfig::default();
        let c = ctl(&["4930200"]);
        let decide = |c: &ControllerConfig, isdn: &IsdnConfig, calling, called, active| {
            decide(c, isdn, &routes, &partners, calling, called, active)
        };
        assert_eq!(
            decide(&c, &isdn, Some("4930100"), Some("4930200"), 0),
            Decision::Accept {
                partners: vec!["O0013000000AAAA".into()]
            }
        );
        // Another MSN on the bus: ignored, so another device may answer.
        let Decision::Reject { value, .. } = decide(&c, &isdn, Some("4930100"), Some("4930201"), 0)
        else {
            panic!("accepted a call for another MSN")
        };
        assert_eq!(value, reject::IGNORE);
        // Without MSNs every called number is ours.
        assert!(matches!(
            decide(&ctl(&[]), &isdn, Some("4930100"), None, 0),
            Decision::Accept { .. }
        ));
        for (calling, why) in [
            (None, "CLIR"),
            (Some(""), "CLIR"),
            (Some("4930999"), "no partner's ISDN number"),
            (Some("4930777"), "disabled"),
        ] {
            match decide(&c, &isdn, calling, Some("4930200"), 0) {
                Decision::Reject { value, why: text } => {
                    assert_eq!(value, REJECT_CALL_REJECTED, "{calling:?}");
                    assert!(text.contains(why), "{text}");
                }
                other => panic!("{calling:?}: {other:?}"),
            }
        }
        // All B channels busy.
        let Decision::Reject { value, .. } = decide(&c, &isdn, Some("4930100"), Some("4930200"), 2)
        else {
            panic!("accepted beyond b_channels")
        };
        assert_eq!(value, reject::USER_BUSY);
        // Prefixes: only with match_digits.
        assert!(matches!(
            decide(&c, &isdn, Some("0049 30 100"), Some("4930200"), 0),
            Decision::Accept { .. }
        ));
        assert!(matches!(
            decide(&c, &isdn, Some("030100"), Some("4930200"), 0),
            Decision::Reject { .. }
        ));
        let loose = IsdnConfig {
            match_digits: 5,
            ..IsdnConfig::default()
        };
        assert!(matches!(
            decide(&c, &loose, Some("030100"), Some("030200"), 0),
            Decision::Accept { .. }
        ));
    }
}
