//! Partners reached over ISDN: their numbers (table `os4x_isdn_routes`,
//! set with `os4x route set --isdn-number`) and dialling them through a
//! configured controller (`[[isdn.controller]]`) instead of TCP.
//!
//! The same numbers decide which calls `os4xrd_capi_<n>` accepts: a call
//! whose calling number is no partner's ISDN number is rejected.
//!
//! The table is its own schema component ([`COMPONENT`]) so it migrates
//! independently of the queue tables; it is kept beside
//! `os4x_send_routes` rather than in it because `set_route` replaces whole
//! rows.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use capi::stream::{describe_reason, Application, CallError, Dial};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::config::Config;
use crate::db::{unix_now, Db, DbError};
use crate::isdn::call::CallStream;
use crate::isdn::settings::{digits, number_matches};

/// Component name in `os4x_schema`.
pub const COMPONENT: &str = os4x_store::schema::ISDN_ROUTES.name;

/// A partner's ISDN number and the controller to dial it through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsdnRoute {
    pub partner: String,
    pub number: String,
    pub controller: u32,
}

/// The ISDN routes in the os4x database.
#[derive(Debug, Clone)]
pub struct IsdnRoutes {
    db: Db,
}

impl IsdnRoutes {
    /// The routes table of `db` (the store migrated it on open).
    pub fn open(db: Db) -> Result<IsdnRoutes, DbError> {
        Ok(IsdnRoutes { db })
    }

    pub fn get(&self, partner: &str) -> Result<Option<IsdnRoute>, DbError> {
        self.db
            .lock()
            .query_row(
                "SELECT partner, number, controller FROM os4x_isdn_routes WHERE partner = ?1",
                [partner],
                |r| {
                    Ok(IsdnRoute {
                        partner: r.get(0)?,
                        number: r.get(1)?,
                        controller: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db.error(e))
    }

    pub fn list(&self) -> Result<Vec<IsdnRoute>, DbError> {
        let conn = self.db.lock();
        let mut stmt = conn
            .prepare("SELECT partner, number, controller FROM os4x_isdn_routes ORDER BY partner")
            .map_err(|e| self.db.error(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(IsdnRoute {
                    partner: r.get(0)?,
                    number: r.get(1)?,
                    controller: r.get(2)?,
                })
            })
            .map_err(|e| self.db.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db.error(e))
    }

    /// Sets (or with `None` removes) `partner`'s ISDN route.
    pub fn set(&self, partner: &str, route: Option<(&str, u32)>) -> Result<(), DbError> {
        let conn = self.db.lock();
        match route {
            Some((number, controller)) => conn.execute(
                "INSERT INTO os4x_isdn_routes (partner, number, controller, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (partner) DO UPDATE SET \
                 number = excluded.number, controller = excluded.controller, \
                 updated_at = excluded.updated_at",
                params![partner, digits(number), controller, unix_now()],
            ),
            None => conn.execute("DELETE FROM os4x_isdn_routes WHERE partner = ?1", [partner]),
        }
        .map(drop)
        .map_err(|e| self.db.error(e))
    }

    /// The partners whose ISDN number is `calling` (see
    /// [`number_matches`]).
    pub fn partners_calling_from(
        &self,
        calling: &str,
        match_digits: u32,
    ) -> Result<Vec<IsdnRoute>, DbError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| number_matches(calling, &r.number, match_digits))
            .collect())
    }
}

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
