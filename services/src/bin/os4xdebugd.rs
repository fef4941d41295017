//! `os4xdebugd`: placeholder debug daemon. It proves the daemon life cycle
//! (configuration, PID claim, readiness, SIGTERM, release) end to end; the
//! real debug interface comes later.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use os4x::daemon::{self, Daemon, DaemonArgs};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// os4x debug daemon (placeholder)
///
/// Claims the program name `os4xdebugd` in the os4x PID table, listens on
/// `[debug] listen` (default 127.0.0.1:10001) and runs until SIGTERM or
/// SIGINT, then releases its PID entry and removes its PID file.
///
/// The debug interface itself is NOT implemented yet: a client that connects
/// gets one line saying so and is disconnected. The daemon exists so that
/// the start/stop/PID bookkeeping shared by all os4x daemons can be run and
/// tested end to end.
///
/// Under systemd use Type=notify: READY=1 is sent once the socket is bound.
#[derive(Debug, Parser)]
#[command(
    name = "os4xdebugd",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xdebugd runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

const BANNER: &[u8] = b"os4xdebugd: the debug interface is not implemented yet\r\n";

async fn serve(d: Daemon) -> anyhow::Result<()> {
    let addr = d.config().debug.listen;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ([debug] listen)"))?;
    let local = listener.local_addr().context("listening socket address")?;
    tracing::info!(address = %local, "listening");
    d.ready();
    let mut shutdown = d.shutdown();
    loop {
        tokio::select! {
            () = shutdown.wait() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((mut stream, peer)) => {
                    tracing::debug!(%peer, "connection");
                    tokio::spawn(async move {
                        // Best effort: the peer may already be gone.
                        let _ = stream.write_all(BANNER).await;
                        let _ = stream.shutdown().await;
                    });
                }
                // Per-connection errors (e.g. EMFILE, aborted handshakes)
                // must not end the daemon.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::run(os4x::programs::OS4XDEBUGD, cli.daemon, serve)
}
