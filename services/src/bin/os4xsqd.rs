//! `os4xsqd`: the send-queue daemon.

use std::process::ExitCode;

use clap::Parser;
use os4x::daemon::{self, DaemonArgs};

/// os4x send-queue daemon
///
/// Delivers files queued with `os4x send` to trading partners over OFTP 2
/// (TCP or TLS, as `os4x route` sets per partner): one session per partner
/// carries all its due files, then hands over the turn so the partner can
/// send its files and receipts. Failed attempts are retried with
/// exponential backoff and jitter; partners with a poll interval are
/// called even with nothing to send. Received files go to the same inbox
/// as `os4xrd_tcpip`'s.
///
/// Under systemd use Type=notify; STATUS= shows sessions and queue
/// counts; WatchdogSec= is supported.
#[derive(Debug, Parser)]
#[command(
    name = "os4xsqd",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (see log)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xsqd runs (or the database stayed locked)\n  78  configuration invalid"
)]
struct Cli {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = os4x::sq::precheck(&cli.daemon) {
        return code;
    }
    daemon::run(os4x::programs::OS4XSQD, cli.daemon, os4x::sq::run)
}
