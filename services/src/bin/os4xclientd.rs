//! `os4xclientd`: the authenticated client/job service.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use os4x::client::settings::ClientTls;
use os4x::client::{jobs::Jobs, server};
use os4x::config::Config;
use os4x::daemon::{self, Daemon, DaemonArgs};
use os4x::tls::TlsError;

/// os4x client/job service
///
/// Serves the os4x client protocol (JSON lines over TCP, see
/// docs/client-protocol.md) on `[client] listen` (default 127.0.0.1:60000)
/// or the socket systemd passes (socket activation). With
/// `[client] tls_certificate` and `tls_private_key` (PEM) every connection
/// is TLS 1.2/1.3. Users log in with the accounts managed by `os4x user`;
/// every job is authorized by role.
///
/// Under systemd use Type=notify: READY=1 is sent once the socket is bound.
#[derive(Debug, Parser)]
#[command(
    name = "os4xclientd",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xclientd runs (or the database stayed locked)\n  78  configuration invalid (also: TLS certificate or key unreadable)"
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
    let tls = cfg
        .client
        .tls
        .as_ref()
        .map(load_tls)
        .transpose()?
        .map(|c| Arc::new(server::TlsHolder::new(c)));
    // SIGHUP (systemctl reload os4xclientd) re-reads a renewed certificate
    // and key; a bad pair is logged and the old one stays in use.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let reloader = {
        let (tls, files) = (tls.clone(), cfg.client.tls.clone());
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match (&tls, &files) {
                    (Some(holder), Some(files)) => match load_tls(files) {
                        Ok(c) => {
                            holder.replace(c);
                            tracing::info!(certificate = %files.certificate.display(), "TLS certificate reloaded");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TLS certificate not reloaded, the previous one stays in use; fix the files and reload again")
                        }
                    },
                    _ => tracing::info!("SIGHUP: no [client] TLS configured, nothing to reload"),
                }
            }
        })
    };
    let listener = os4x::debug::server::listener(cfg.client.listen, "[client] listen")?;
    let local = listener.local_addr().context("listening socket address")?;
    tracing::info!(address = %local, tls = tls.is_some(), "listening");
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            address = %local,
            "client connections are not encrypted, passwords cross the network in clear; set [client] tls_certificate and tls_private_key"
        );
    }
    d.ready();
    server::serve(
        listener,
        tls,
        Arc::new(jobs),
        cfg.client.clone(),
        d.shutdown(),
    )
    .await;
    reloader.abort();
    tracing::info!("stopping");
    Ok(())
}

fn load_tls(tls: &ClientTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    os4x::tls::server_without_client_auth(&tls.certificate, &tls.private_key)
}

/// An unusable certificate or key is a configuration error (exit 78),
/// found before anything starts.
fn precheck(args: &DaemonArgs) -> Option<ExitCode> {
    // Errors of the file itself are reported by `daemon::run`.
    let config = Config::load(args.config.as_deref()).ok()?;
    let problem = load_tls(config.client.tls.as_ref()?).err()?;
    eprintln!("{}: [client] TLS: {problem}", os4x::programs::OS4XCLIENTD);
    Some(ExitCode::from(os4x::exit::CONFIG))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = precheck(&cli.daemon) {
        return code;
    }
    daemon::run(os4x::programs::OS4XCLIENTD, cli.daemon, serve)
}
