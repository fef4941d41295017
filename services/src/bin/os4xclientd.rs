//! `os4xclientd`: the authenticated client/job service.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use os4x::client::{jobs::Jobs, server};
use os4x::daemon::{self, Daemon, DaemonArgs};

/// os4x client/job service
///
/// Serves the os4x client protocol (JSON lines over TCP, see
/// docs/client-protocol.md) on `[client] listen` (default 127.0.0.1:60000)
/// or the socket systemd passes (socket activation). Users log in with the
/// accounts managed by `os4x user`; every job is authorized by role.
///
/// Under systemd use Type=notify: READY=1 is sent once the socket is bound.
#[derive(Debug, Parser)]
#[command(
    name = "os4xclientd",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xclientd runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

async fn serve(d: Daemon) -> anyhow::Result<()> {
    let cfg = d.config().clone();
    let jobs = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || Jobs::open(cfg))
            .await
            .context("opening the database")??
    };
    let listener = os4x::debug::server::listener(cfg.client.listen, "[client] listen")?;
    let local = listener.local_addr().context("listening socket address")?;
    tracing::info!(address = %local, "listening");
    d.ready();
    server::serve(listener, Arc::new(jobs), cfg.client.clone(), d.shutdown()).await;
    tracing::info!("stopping");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::run(os4x::programs::OS4XCLIENTD, cli.daemon, serve)
}
