//! `os4x-isdn-sim`: an ISDN exchange simulator for tests and demos.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// os4x ISDN exchange simulator (no hardware needed)
///
/// Runs simulated ISDN controllers connected by a simulated exchange and
/// lets os4x daemons in other processes use them: configure
/// `[[isdn.controller]] transport = "sim:ADDR"` with `capi_controller` set
/// to the controller's number below. Calls are routed by the called
/// number; busy, unallocated number, reject and line failures behave as
/// on a real network.
///
/// Prints `listening ADDR` and `controller N: NUMBERS` lines, then reads
/// commands on stdin: `break N` breaks every call on controller N (layer 1
/// error), as a failing line would.
#[derive(Debug, Parser)]
#[command(name = "os4x-isdn-sim", version)]
struct Cli {
    /// Address to serve on (127.0.0.1 only makes sense)
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// One controller (line) per option: the numbers (MSNs) it answers,
    /// comma-separated; controllers are numbered 1, 2, ... in this order
    #[arg(long = "line", value_name = "NUMBERS", required = true)]
    lines: Vec<String>,
    /// B channels per controller
    #[arg(long, default_value_t = 2)]
    b_channels: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    os4x::logging::init("os4x-isdn-sim");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("os4x-isdn-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(os4x::isdn::simnet::run_exchange(
        cli.listen,
        &cli.lines,
        cli.b_channels,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("os4x-isdn-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
