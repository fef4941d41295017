//! `os4x debug on|off|status|bundle`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::debug::{bundle, switch};

#[derive(Debug, clap::Subcommand)]
pub enum DebugCommand {
    /// Forward debug records of PROGRAM (default: all programs) to
    /// os4xdebugd; running daemons pick this up within 2 seconds
    On { program: Option<String> },
    /// Stop forwarding for PROGRAM (default: all programs, overriding
    /// `[debug] enable`)
    Off { program: Option<String> },
    /// Show the switch: configuration and overrides
    Status,
    /// Write a problem-report archive (tar.gz) without secrets
    Bundle {
        /// Records since: 30m, 2h, 7d, 2026-11-24T08:00 (UTC) or @UNIXSECONDS
        #[arg(long, default_value = "24h")]
        since: String,
        /// Output file
        #[arg(short, long, value_name = "FILE.tar.gz")]
        output: PathBuf,
    },
}

fn program_arg(p: Option<String>) -> anyhow::Result<String> {
    match p {
        None => Ok(switch::ALL.to_owned()),
        Some(p) if p == "all" || p == "*" => Ok(switch::ALL.to_owned()),
        Some(p) => Ok(pidstore::ProgramName::new(p)?.as_str().to_owned()),
    }
}

pub fn run(config: &Config, cmd: DebugCommand) -> anyhow::Result<ExitCode> {
    let open = || switch::open(&config.database);
    match cmd {
        DebugCommand::On { program } => {
            let p = program_arg(program)?;
            switch::set(&open()?, config.server_id, &p, true)?;
            println!(
                "debug forwarding on for {p} (serverID {}); os4xdebugd must run at {}",
                config.server_id, config.debug.listen
            );
        }
        DebugCommand::Off { program } => {
            let p = program_arg(program)?;
            switch::set(&open()?, config.server_id, &p, false)?;
            println!(
                "debug forwarding off for {p} (serverID {})",
                config.server_id
            );
        }
        DebugCommand::Status => {
            let enable = if config.debug.enable.is_empty() {
                "none".to_owned()
            } else {
                config.debug.enable.join(", ")
            };
            println!(
                "configuration [debug] enable: {enable}; level {}",
                config.debug.level
            );
            for row in switch::list(&open()?, config.server_id)? {
                println!(
                    "override {}: {}",
                    row.program,
                    if row.enabled { "on" } else { "off" }
                );
            }
        }
        DebugCommand::Bundle { since, output } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            let since = bundle::parse_since(&since, now).map_err(anyhow::Error::msg)?;
            let s = bundle::write_bundle(config, since, &output)?;
            println!(
                "wrote {}: {} debug records, tables: {}",
                output.display(),
                s.records,
                if s.tables.is_empty() {
                    "none".into()
                } else {
                    s.tables.join(", ")
                }
            );
            for n in s.notes {
                eprintln!("note: {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
