//! `os4x`: the administration tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use os4x::cli::{queue, received, route, send};
use os4x::config::{Config, ENV_VAR};
use os4x::exit;
use os4x::partner_cli::{self, Failure, PartnerCommand};

/// os4x administration
#[derive(Debug, Parser)]
#[command(
    name = "os4x",
    version,
    after_help = "EXIT STATUS:\n  0   success\n  1   the partner, entry or file does not exist, or the action is not possible in the entry's state\n  2   usage error\n  74  database error\n  78  configuration invalid"
)]
struct Cli {
    /// Configuration file [default: /etc/os4x/os4x.toml]
    #[arg(long, global = true, value_name = "PATH", env = ENV_VAR)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage trading partners
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Queue a file for a partner (os4xsqd sends it)
    Send(send::SendArgs),
    /// Show the send queue; retry or cancel entries
    Queue(queue::QueueArgs),
    /// List received files with the state of their EERP
    Received(received::ReceivedArgs),
    /// How os4xsqd reaches partners: address, TLS, retries, polling
    #[command(subcommand)]
    Route(route::RouteCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("os4x: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let result = match cli.command {
        Command::Partner(cmd) => partner_cli::run(&config, cmd),
        Command::Send(args) => send::run(&config, args),
        Command::Queue(args) => queue::run(&config, args),
        Command::Received(args) => received::run(&config, args),
        Command::Route(cmd) => route::run(&config, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("os4x: {msg}");
            ExitCode::from(code)
        }
    }
}
