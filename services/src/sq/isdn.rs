//! Dialling partners reached over ISDN (their numbers are in
//! [`crate::isdn_routes`]) through a configured controller
//! (`[[isdn.controller]]`) instead of TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use capi::stream::{describe_reason, Application, CallError, Dial};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::config::Config;
use crate::db::Db;
use crate::isdn::call::CallStream;
use crate::isdn_routes::{IsdnRoute, IsdnRoutes};

/// A dialled call as the session's byte stream. The CAPI application
/// that placed it lives as long as the call: dropping the stream clears
/// the call (waiting briefly for the network to confirm), then releases
/// the application.
#[derive(Debug)]
pub struct Dialled {
    stream: Option<CallStream>,
    app: Option<Application>,
}

/// How long clearing a call may take after the session ended.
const CLEAR_TIMEOUT: Duration = Duration::from_secs(5);

impl Dialled {
    fn stream(&mut self) -> io::Result<&mut CallStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for Dialled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Dialled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Dialled {
    fn drop(&mut self) {
        let (Some(mut stream), Some(app)) = (self.stream.take(), self.app.take()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // End of our side → the application task sends
            // DISCONNECT_B3_REQ / DISCONNECT_REQ once all data is
            // confirmed; the reader sees end of stream when the call is down.
            let _ = tokio::time::timeout(CLEAR_TIMEOUT, async {
                let _ = stream.shutdown().await;
                let mut sink = [0u8; 4096];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            let reason = stream.0.disconnect_reason();
            tracing::debug!(reason = ?reason, "ISDN call cleared");
            drop(stream);
            drop(app);
        });
    }
}

/// If `partner` has an ISDN route, dials it: `Some(Ok((stream, peer)))`,
/// or `Some(Err(why))` when the call did not get through; `None`: the
/// partner is reached over TCP.
pub async fn dial_if_isdn(
    config: &Config,
    db: &Db,
    partner: &str,
    session: u64,
) -> Option<Result<(Dialled, String), String>> {
    let route = match IsdnRoutes::open(db.clone()).and_then(|r| r.get(partner)) {
        Ok(r) => r?,
        Err(e) => return Some(Err(format!("cannot read the partner's ISDN route: {e}"))),
    };
    Some(dial(config, &route, session).await)
}

async fn dial(
    config: &Config,
    route: &IsdnRoute,
    session: u64,
) -> Result<(Dialled, String), String> {
    let ctl = config.isdn.controller(route.controller).ok_or_else(|| {
        format!(
            "ISDN controller {} (route of {}) is not configured; add [[isdn.controller]] number = {} or change the route with `os4x route set {} --isdn-controller N`",
            route.controller, route.partner, route.controller, route.partner
        )
    })?;
    let timeout = config.sq.connect_timeout;
    tracing::info!(
        partner = %route.partner,
        session,
        number = %route.number,
        controller = ctl.number,
        transport = %ctl.transport,
        b3 = %ctl.b3,
        "dialling"
    );
    let link = crate::isdn::link::open(ctl)
        .await
        .map_err(|e| format!("ISDN controller {}: {e}", ctl.number))?;
    let app = Application::start(link);
    let call = app.dial(Dial {
        controller: ctl.capi_controller,
        called: route.number.clone(),
        calling: ctl.msn.first().cloned(),
        b_protocol: ctl.b3.b_protocol(),
    });
    let stream = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(s)) => s,
        Ok(Err(CallError::Cleared { reason })) => {
            return Err(format!(
                "ISDN call to {} failed: reason 0x{reason:04X} ({})",
                route.number,
                describe_reason(reason)
            ))
        }
        Ok(Err(e)) => return Err(format!("ISDN call to {} failed: {e}", route.number)),
        Err(_) => {
            return Err(format!(
                "ISDN call to {}: not connected within {timeout:?}",
                route.number
            ))
        }
    };
    tracing::info!(partner = %route.partner, session, number = %route.number, plci = stream.info().plci, "ISDN call connected");
    Ok((
        Dialled {
            stream: Some(CallStream(stream)),
            app: Some(app),
        },
        format!("isdn:{}", route.number),
    ))
}
