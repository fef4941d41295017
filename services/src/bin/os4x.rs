//! `os4x`: the administration tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use os4x::cli::{client, db, debug, queue, received, route, send, user};
use os4x::config::{Config, ENV_VAR};
use os4x::exit;
use os4x::partner_cli::{self, PartnerCommand};
use os4x::usecase::Error as Failure;

/// os4x administration
#[derive(Debug, Parser)]
#[command(
    name = "os4x",
    version,
    after_help = "EXIT STATUS:\n  0   success\n  1   the partner, entry, user or file does not exist, the action is not possible in the entry's state, or os4xclientd refused or could not be reached\n  2   usage error\n  74  database error\n  78  configuration invalid"
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
    /// Users of os4xclientd: add, passwd, role, unlock, list, remove
    #[command(subcommand)]
    User(user::UserCommand),
    /// Debug forwarding to os4xdebugd (on/off/status) and problem-report
    /// bundles
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Talk to os4xclientd as a user (the reference client)
    Client(client::ClientArgs),
    /// The database: schema status, migration, copy to PostgreSQL
    #[command(subcommand)]
    Db(db::DbCommand),
}

/// Exit code for the commands that report errors through `anyhow`.
fn anyhow_code(e: &anyhow::Error) -> u8 {
    use os4x::client::remote::RemoteError;
    use os4x::users::UserError;
    for cause in e.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return match u {
                UserError::Db(_) | UserError::Open(_) => exit::IOERR,
                UserError::BadName(_)
                | UserError::PasswordTooShort
                | UserError::PasswordTooLong => exit::USAGE,
                _ => exit::FAILURE,
            };
        }
        if cause.downcast_ref::<RemoteError>().is_some() {
            return exit::FAILURE;
        }
        if cause.downcast_ref::<os4x::db::SqlError>().is_some()
            || cause.downcast_ref::<os4x_store::OpenError>().is_some()
            || cause
                .downcast_ref::<os4x_store::migrate::MigrateError>()
                .is_some()
            || cause
                .downcast_ref::<os4x_store::copy::CopyError>()
                .is_some()
        {
            return exit::IOERR;
        }
    }
    exit::FAILURE
}

fn from_anyhow(r: anyhow::Result<ExitCode>) -> Result<(), Failure> {
    r.map(drop).map_err(|e| {
        let m = format!("{e:#}");
        match anyhow_code(&e) {
            exit::IOERR => Failure::Store(m),
            exit::USAGE => Failure::Invalid(m),
            _ => Failure::Refused(m),
        }
    })
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
        Command::User(cmd) => from_anyhow(user::run(&config, cmd)),
        Command::Debug(cmd) => from_anyhow(debug::run(&config, cmd)),
        Command::Client(args) => from_anyhow(client::run(&config, args)),
        // `db status` reports "migration due" in its exit status.
        Command::Db(cmd) => {
            return match db::run(&config, cmd) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("os4x: {e:#}");
                    ExitCode::from(anyhow_code(&e))
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("os4x: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
