//! `os4xrd`: the master of the receive daemons on hosts without systemd.

use std::process::ExitCode;

use clap::Parser;
use os4x::daemon::{self, DaemonArgs};

/// os4x receive master
///
/// Starts `os4xrd_tcpip`, (when `[tls] certificate` is set)
/// `os4xrd_tcpip_tls` and one `os4xrd_capi_<n>` per `[[isdn.controller]]`
/// as child processes from the directory of this program, restarts a child that dies (1 s delay, doubling up to 60 s),
/// and on SIGTERM/SIGINT stops them all and releases its PID entry.
///
/// On systemd hosts enable the socket units of the daemons instead.
#[derive(Debug, Parser)]
#[command(name = "os4xrd", version)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::run(os4x::programs::OS4XRD, cli.daemon, os4x::rd::master::run)
}
