//! `os4xrd_tcpip`: receives OFTP sessions over TCP (port 3305).

use std::process::ExitCode;

use clap::Parser;
use os4x::daemon::{self, DaemonArgs};
use os4x::rd::{self, Transport};

/// os4x OFTP receive daemon over TCP
///
/// Accepts OFTP 2 sessions from trading partners (`os4x partner add`) on
/// `[tcp] listen` (default 0.0.0.0:3305), or on the sockets systemd passes
/// (socket activation), and stores incoming files in
/// `<state_dir>/inbox/<partner>/`.
///
/// Under systemd use Type=notify; STATUS= shows active sessions and files
/// received today; WatchdogSec= is supported.
#[derive(Debug, Parser)]
#[command(
    name = "os4xrd_tcpip",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (e.g. address in use; see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xrd_tcpip runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = rd::precheck(&cli.daemon, Transport::Tcp) {
        return code;
    }
    daemon::run(os4x::programs::OS4XRD_TCPIP, cli.daemon, |d| {
        rd::run(d, Transport::Tcp)
    })
}
