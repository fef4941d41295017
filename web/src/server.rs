//! The listening socket and, with `[web] tls_certificate`, HTTPS.
//!
//! Under systemd the socket comes from `os4x-web.socket` (socket
//! activation, `LISTEN_FDS`); otherwise os4x-web binds `[web] listen`.

use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use os4x::config::Config;
use os4x::daemon::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake must complete within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the backlog.
const MAX_HANDSHAKES: usize = 64;

/// The socket systemd passed, or `[web] listen` bound.
pub fn listen(cfg: &Config) -> anyhow::Result<TcpListener> {
    let l = os4x::debug::server::listener(cfg.web.listen, "[web] listen")?;
    // An inherited socket lacks close-on-exec: keep it out of the
    // daemons os4x-web starts.
    let fd = l.as_raw_fd();
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Ok(l)
}

/// The rustls configuration for `[web] tls_*`, speaking HTTP/1.1.
pub fn tls_config(cfg: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some((cert, key)) = &cfg.web.tls else {
        return Ok(None);
    };
    let base = os4x::tls::server_without_client_auth(cert, key)
        .with_context(|| "[web] tls_certificate / tls_private_key")?;
    let mut server = (*base).clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(server)))
}

/// Connections that completed their TLS handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and runs handshakes concurrently, so a slow
    /// or silent client does not hold up the others.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let done = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake failed (plain HTTP to the HTTPS port?)")
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                    drop(permit);
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended: nothing will come any more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `app` until shutdown; open requests may finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let stop = async move { shutdown.wait().await };
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("HTTP server"),
        Some(config) => axum::serve(TlsListener::new(listener, config)?, app)
            .with_graceful_shutdown(stop)
            .await
            .context("HTTPS server"),
    }
}
