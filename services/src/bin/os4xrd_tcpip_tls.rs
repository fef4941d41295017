//! `os4xrd_tcpip_tls`: receives OFTP sessions over TLS (port 6619).

use std::process::ExitCode;

use clap::Parser;
use os4x::daemon::{self, DaemonArgs};
use os4x::rd::{self, Transport};

/// os4x OFTP receive daemon over TLS
///
/// Accepts OFTP 2 sessions over TLS 1.2/1.3 on `[tls] listen` (default
/// 0.0.0.0:6619), or on the sockets systemd passes (socket activation).
/// The server certificate and key come from `[tls] certificate` and
/// `[tls] private_key` (PEM); SIGHUP re-reads them without dropping
/// sessions. Client certificates are checked per partner
/// (`os4x partner set ID --client-cert-required --client-cert-sha256 ...`).
#[derive(Debug, Parser)]
#[command(
    name = "os4xrd_tcpip_tls",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use, unreadable certificate; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xrd_tcpip_tls runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = rd::precheck(&cli.daemon, Transport::Tls) {
        return code;
    }
    daemon::run(os4x::programs::OS4XRD_TCPIP_TLS, cli.daemon, |d| {
        rd::run(d, Transport::Tls)
    })
}
