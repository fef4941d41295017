//! `os4x-web`: the web administration service.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use os4x::daemon::{self, Daemon, DaemonArgs};
use os4x_web::state::AppState;
use os4x_web::{app, server, PROGRAM};

/// os4x web administration
///
/// Serves the administration pages and the JSON API (/api/, documented at
/// /api/openapi.json): daemons with their PIDs (start, stop, restart,
/// start forced), partners, send queue, received files, debug switch and
/// problem-report bundles. Users and roles are those of os4xclientd
/// (`os4x user add NAME --role admin|operator|viewer`).
///
/// Listens on [web] listen (default 127.0.0.1:8404) or the socket systemd
/// passes (os4x-web.socket); HTTPS with [web] tls_certificate and
/// tls_private_key. Runs once per server id (PID table).
#[derive(Debug, Parser)]
#[command(
    name = "os4x-web",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4x-web runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

async fn serve(d: Daemon) -> anyhow::Result<()> {
    let cfg = d.config().clone();
    let c = cfg.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(c, PROGRAM))
        .await?
        .context("cannot open the os4x database")?;
    let tls = server::tls_config(&cfg)?;
    let listener = server::listen(&cfg)?;
    let local = listener.local_addr().context("listening socket address")?;
    tracing::info!(address = %local, tls = tls.is_some(), daemon_dir = %state.daemon_dir.display(), "listening");
    d.ready();
    server::serve(listener, tls, app(Arc::new(state)), d.shutdown()).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::run(PROGRAM, cli.daemon, serve)
}
