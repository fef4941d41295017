//! `os4xrd_capi`: receives OFTP sessions over ISDN on one CAPI controller.

use std::process::ExitCode;

use clap::Parser;
use os4x::daemon::{self, DaemonArgs};

/// os4x OFTP receive daemon over ISDN (CAPI 2.0)
///
/// Drives ISDN controller N (`[[isdn.controller]] number = N`), listens
/// for calls to its MSNs/DDIs, accepts calls whose calling number is a
/// partner's ISDN number (`os4x route set PARTNER --isdn-number ...`),
/// rejects others (Q.850 cause 21, logged), and serves the OFTP session
/// with the same partner checks, inbox and EERP handling as os4xrd_tcpip.
///
/// Runs as `os4xrd_capi_N` in os4x_pids. The controller comes from
/// `--controller N` or, when started through a link named
/// `os4xrd_capi_N`, from that name. Under systemd: `os4xrd-capi@N.service`
/// (Type=notify; STATUS= shows the controller state).
#[derive(Debug, Parser)]
#[command(
    name = "os4xrd_capi",
    version,
    after_help = "EXIT STATUS:\n  0   stopped by SIGTERM/SIGINT\n  1   failed after start (see log)\n  2   no controller given (--controller N or the name os4xrd_capi_N)\n  73  PID file could not be written\n  74  database could not be opened\n  75  another os4xrd_capi_N for this controller runs\n  78  configuration invalid (e.g. controller N not configured)"
)]
struct Cli {
    /// ISDN controller number N ([[isdn.controller]] number); default:
    /// taken from the program name os4xrd_capi_N
    #[arg(long, value_name = "N")]
    controller: Option<u32>,
    /// Instead of running the daemon: dial NUMBER through the controller,
    /// report whether the call is accepted (or the reason it is not) and
    /// whether the partner's OFTP server answers, then hang up. Exit 0 when
    /// it answered.
    #[arg(long, value_name = "NUMBER")]
    test_call: Option<String>,
    #[command(flatten)]
    daemon: DaemonArgs,
}

/// `--test-call`: a one-off, without claiming the daemon's PID entry.
fn test_call(args: &DaemonArgs, n: u32, number: &str) -> ExitCode {
    let config = match os4x::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("os4xrd_capi: {e}");
            return ExitCode::from(os4x::exit::CONFIG);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(os4x::rd::capi::test_call(&config, n, number)));
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            println!("{text}");
            ExitCode::from(os4x::exit::FAILURE)
        }
    }
}

/// `os4xrd_capi_3` → 3.
fn controller_from_argv0() -> Option<u32> {
    let argv0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&argv0)
        .file_name()?
        .to_str()?
        .to_owned();
    name.strip_prefix("os4xrd_capi_")?.parse().ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(n) = cli.controller.or_else(controller_from_argv0) else {
        eprintln!(
            "os4xrd_capi: which controller? Give --controller N or start it as os4xrd_capi_N"
        );
        return ExitCode::from(os4x::exit::USAGE);
    };
    let program = os4x::programs::os4xrd_capi(n);
    if let Some(number) = cli.test_call {
        return test_call(&cli.daemon, n, &number);
    }
    if let Ok(config) = os4x::config::Config::load(cli.daemon.config.as_deref()) {
        if let Err(problem) = os4x::rd::capi::precheck(&config, n) {
            eprintln!("{program}: {problem}");
            return ExitCode::from(os4x::exit::CONFIG);
        }
    }
    daemon::run(&program, cli.daemon, move |d| os4x::rd::capi::run(d, n))
}
