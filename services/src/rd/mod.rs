//! The receive daemons `os4xrd_tcpip` (OFTP over TCP, port 3305) and
//! `os4xrd_tcpip_tls` (OFTP over TLS, port 6619), and the master
//! `os4xrd` that runs them as child processes.
//!
//! This module is the TCP/TLS transport: listening sockets (inherited
//! from systemd or bound), pre-login admission per source address, the
//! TLS handshake with client certificates (see [`tls`]), and the daemon's
//! lifecycle (STATUS=, watchdog, SIGHUP reloads the TLS certificate).
//! Each accepted connection becomes one tokio task whose session the
//! shared [`crate::serve::Responder`] runs, exactly as for an ISDN call.

pub mod capi;
pub mod master;
/// `[rd]` settings (they live in the configuration crate).
pub use os4x_config::rd as settings;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::daemon::Daemon;
use crate::inbox::{DiskStorage, Storage};
use crate::partner::PartnerStore;
use crate::serve::{admission, ClientCertificate, Responder, Stats, TransportInfo};
use crate::tls::server as tls;

/// Which daemon this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
}

/// A receive daemon: its listeners' transport around the shared
/// responder.
pub struct Server {
    responder: Arc<Responder>,
    transport: Transport,
    tls: Option<tls::Reloadable>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `transport` with the configuration's database and
    /// inbox on the real file system.
    pub fn new(config: Arc<Config>, transport: Transport) -> anyhow::Result<Arc<Server>> {
        Server::with_storage(config, transport, Arc::new(DiskStorage))
    }

    /// Like [`Server::new`], with the inbox's file system operations
    /// supplied (tests inject faults this way). Call inside a tokio
    /// runtime (post-receive commands run on it).
    pub fn with_storage(
        config: Arc<Config>,
        transport: Transport,
        storage: Arc<dyn Storage>,
    ) -> anyhow::Result<Arc<Server>> {
        let responder = Responder::with_storage(config.clone(), storage)?;
        let tls = match transport {
            Transport::Tcp => None,
            Transport::Tls => Some(tls::Reloadable::new(tls::load_with_partner_cas(
                &config.rd.tls,
                &partner_cas(responder.partners()),
            )?)),
        };
        Ok(Arc::new(Server {
            responder,
            transport,
            tls,
        }))
    }

    /// The responder that runs this daemon's sessions.
    pub fn responder(&self) -> &Arc<Responder> {
        &self.responder
    }

    pub fn stats(&self) -> &Stats {
        self.responder.stats()
    }

    /// Sessions past their SSID now.
    pub fn sessions_active(&self) -> usize {
        self.responder.sessions_active()
    }

    /// The STATUS= line for systemd.
    pub fn status_line(&self) -> String {
        self.responder.status_line()
    }

    /// Re-reads the TLS certificate, key and client CAs, and the list of
    /// partner CAs announced to clients (SIGHUP). Running sessions keep
    /// the configuration they started with.
    pub fn reload_tls(&self) {
        if let Some(t) = &self.tls {
            match t.reload(
                &self.responder.config().rd.tls,
                &partner_cas(self.responder.partners()),
            ) {
                Ok(()) => tracing::info!("TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the previous certificate")
                }
            }
        }
    }

    /// Accepts connections on `listeners` until `stop` resolves, then
    /// waits up to `grace` for running sessions.
    pub async fn serve(
        self: Arc<Self>,
        listeners: Vec<TcpListener>,
        stop: impl std::future::Future<Output = ()>,
        grace: Duration,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut accepts = tokio::task::JoinSet::new();
        // Refused connections: one summary line per interval.
        let summary = {
            let server = self.clone();
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(server.responder.config().rd.refusal_log_interval);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Some(line) = server.responder.take_refusal_summary() {
                        tracing::warn!(
                            interval = ?server.responder.config().rd.refusal_log_interval,
                            "{line}"
                        );
                    }
                }
            })
        };
        for listener in listeners {
            let server = self.clone();
            let mut stop = stop_rx.clone();
            accepts.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, peer)) => server.clone().connection(stream, peer),
                            Err(e) => {
                                // EMFILE and friends must not end the daemon.
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                    }
                }
            });
        }
        stop.await;
        let _ = stop_tx.send(true);
        while accepts.join_next().await.is_some() {}
        summary.abort();
        if let Some(line) = self.responder.take_refusal_summary() {
            tracing::warn!("{line}");
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.stats().active.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the task of one accepted connection, if it gets a
    /// pre-login slot; otherwise it is closed at once (counted for the
    /// refusal summary).
    fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let slot = match self.responder.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(peer = %peer, ?why, "connection refused before login");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let session = self.responder.next_session();
        tokio::spawn(async move {
            self.stats().session_started();
            self.clone().run_session(stream, peer, session, slot).await;
            self.stats().session_ended();
        });
    }

    async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, TransportInfo)> {
        let snapshot = self.tls.as_ref()?.get();
        let acceptor = tokio_rustls::TlsAcceptor::from(snapshot.server.clone());
        match tokio::time::timeout(
            self.responder.config().rd.idle_timeout,
            acceptor.accept(stream),
        )
        .await
        {
            Ok(Ok(tls)) => {
                let (_, conn) = tls.get_ref();
                let client_cert = conn
                    .peer_certificates()
                    .and_then(|chain| ClientCertificate::new(chain.to_vec(), snapshot.client_ca));
                let info = TransportInfo {
                    tls: true,
                    client_cert,
                    tls_version: conn.protocol_version().and_then(|v| v.as_str()),
                    peer: peer.to_string(),
                    line_partners: None,
                };
                Some((tls, info))
            }
            Ok(Err(e)) => {
                tracing::warn!(peer = %peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::warn!(peer = %peer, "TLS handshake timed out");
                None
            }
        }
    }

    async fn run_session(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        session: u64,
        slot: admission::PendingSlot,
    ) {
        match self.transport {
            Transport::Tcp => {
                let info = TransportInfo {
                    tls: false,
                    client_cert: None,
                    tls_version: None,
                    peer: peer.to_string(),
                    line_partners: None,
                };
                self.responder
                    .serve_connection(stream, info, session, Some(slot))
                    .await;
            }
            Transport::Tls => {
                if let Some((tls, info)) = self.handshake(stream, peer).await {
                    self.responder
                        .serve_connection(tls, info, session, Some(slot))
                        .await;
                }
            }
        }
    }
}

/// The partners' own client CAs, announced in TLS handshakes.
fn partner_cas(partners: &PartnerStore) -> Vec<(String, std::path::PathBuf)> {
    match partners.list() {
        Ok(all) => all
            .into_iter()
            .filter_map(|p| Some((p.id.to_string(), p.client_ca?)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list partner client CAs; announcing only [tls] client_ca");
            Vec::new()
        }
    }
}

/// The listening sockets: inherited from systemd (`LISTEN_FDS`, all of
/// them: each daemon has its own socket unit) or bound to `addrs`.
pub fn listeners(addrs: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    let mut out = Vec::new();
    if fds.len() > 0 {
        for i in 0..fds.len() {
            let listener = fds
                .take_tcp_listener(i)
                .with_context(|| format!("inherited socket {i} is not a listening TCP socket; check the .socket unit (ListenStream=)"))?;
            if let Some(l) = listener {
                l.set_nonblocking(true)?;
                let l = TcpListener::from_std(l)?;
                tracing::info!(address = %l.local_addr()?, name = names.split(':').nth(i).unwrap_or(""), "listening (socket activation)");
                out.push(l);
            }
        }
        return Ok(out);
    }
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(*addr).with_context(|| {
            format!("cannot listen on {addr}; is another OFTP server running there?")
        })?;
        let l = socket.listen(1024)?;
        tracing::info!(address = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
}

/// The body of `os4xrd_tcpip` / `os4xrd_tcpip_tls`.
pub async fn run(d: Daemon, transport: Transport) -> anyhow::Result<()> {
    let config = d.config().clone();
    // A descriptor per session and pre-login connection, plus files,
    // database and listeners.
    crate::daemon::raise_nofile(
        u64::from(config.rd.max_sessions)
            .saturating_mul(2)
            .saturating_add(u64::from(config.rd.max_pending))
            .saturating_add(256),
    );
    let server = Server::new(config.clone(), transport)?;
    let addrs = match transport {
        Transport::Tcp => &config.rd.tcp_listen,
        Transport::Tls => &config.rd.tls.listen,
    };
    let listeners = listeners(addrs)?;
    d.ready();

    // Partial files the partners never restarted: at start, then hourly.
    let expiry = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let inbox = server.responder.inbox().clone();
                let _ = tokio::task::spawn_blocking(move || {
                    inbox.expire_partials(std::time::SystemTime::now())
                })
                .await;
            }
        })
    };

    // STATUS= on change (coalesced), WATCHDOG=1 if systemd asks for it.
    let status = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut usec = 0;
            let watchdog = sd_notify::watchdog_enabled(false, &mut usec)
                .then(|| Duration::from_micros(usec / 2));
            let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(60)));
            loop {
                let line = server.status_line();
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
                tokio::select! {
                    () = server.stats().changed() => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    _ = tick.tick() => {
                        if watchdog.is_some() {
                            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                        }
                    }
                }
            }
        })
    };
    let hup = {
        let server = server.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                server.reload_tls();
            }
        })
    };
    let mut shutdown = d.shutdown();
    server
        .clone()
        .serve(
            listeners,
            async move { shutdown.wait().await },
            Duration::from_secs(3),
        )
        .await;
    status.abort();
    hup.abort();
    expiry.abort();
    Ok(())
}

/// Configuration problems found before the daemon starts: printed, and
/// the process exits with [`crate::exit::CONFIG`] (78). `None`: start.
pub fn precheck(
    args: &crate::daemon::DaemonArgs,
    transport: Transport,
) -> Option<std::process::ExitCode> {
    // Errors of the file itself are reported by `daemon::run`.
    let config = Config::load(args.config.as_deref()).ok()?;
    let program = match transport {
        Transport::Tcp => crate::programs::OS4XRD_TCPIP,
        Transport::Tls => crate::programs::OS4XRD_TCPIP_TLS,
    };
    let mut problem = config.local.require_id().err();
    if problem.is_none() && transport == Transport::Tls {
        problem = tls::load(&config.rd.tls).err().map(|e| e.to_string());
    }
    let problem = problem?;
    eprintln!("{program}: {problem}");
    Some(std::process::ExitCode::from(crate::exit::CONFIG))
}
