//! `os4xdebugd`: collects debug records from the other os4x daemons.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use os4x::daemon::{self, Daemon, DaemonArgs};
use os4x::debug::{ring::Ring, server};

/// os4x debug daemon
///
/// Collects the debug records of the other os4x daemons (those with
/// debugging switched on: `[debug] enable`, or `os4x debug on PROGRAM`),
/// writes each to the journal and keeps them in a size-bounded ring under
/// <state_dir>/debug/ring ([debug] ring_max_mb) for `os4x debug bundle`.
///
/// Listens on `[debug] listen` (default 127.0.0.1:10001) or the socket
/// systemd passes (socket activation). Runs once per server id (PID table).
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

async fn serve(d: Daemon) -> anyhow::Result<()> {
    let cfg = d.config().clone();
    let ring_dir = os4x::debug::ring_dir(&cfg.state_dir);
    let ring = Ring::open(&ring_dir, cfg.debug.ring_max_bytes)
        .with_context(|| format!("cannot open the debug record store {}", ring_dir.display()))?;
    let sink = server::spawn_writer(ring).context("cannot start the writer thread")?;
    let listener = server::listener(cfg.debug.listen, "[debug] listen")?;
    let local = listener.local_addr().context("listening socket address")?;
    tracing::info!(address = %local, ring = %ring_dir.display(), max_bytes = cfg.debug.ring_max_bytes, "listening");
    d.ready();
    let stats = Arc::new(server::Stats::default());
    let limits = server::Limits {
        max_connections: cfg.debug.max_connections,
        frame_timeout: Duration::from_secs(cfg.debug.frame_timeout),
    };
    server::serve(listener, limits, sink, stats.clone(), d.shutdown()).await;
    tracing::info!(
        connections = stats.connections.load(Ordering::Relaxed),
        records = stats.records.load(Ordering::Relaxed),
        refused = stats.refused.load(Ordering::Relaxed),
        bad_connections = stats.bad_connections.load(Ordering::Relaxed),
        "stopping"
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::run(os4x::programs::OS4XDEBUGD, cli.daemon, serve)
}
