//! `os4x`: the administration tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use os4x::config::{Config, ENV_VAR};
use os4x::exit;
use os4x::partner_cli::{self, Failure, PartnerCommand};

/// os4x administration
#[derive(Debug, Parser)]
#[command(
    name = "os4x",
    version,
    after_help = "EXIT STATUS:\n  0   success\n  1   the partner does not exist / already exists\n  2   usage error\n  74  database error\n  78  configuration invalid"
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("os4x: {msg}");
            ExitCode::from(code)
        }
    }
}
