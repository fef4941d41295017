//! `os4x client ...`: the reference client of `os4xclientd`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::client::remote::Remote;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// os4xclientd address [default: `[client] listen`]
    #[arg(long)]
    pub address: Option<SocketAddr>,
    /// User name
    #[arg(long, short, env = "OS4X_CLIENT_USER")]
    pub user: String,
    /// Read the password from the first line of stdin (else
    /// OS4X_CLIENT_PASSWORD, else a prompt)
    #[arg(long)]
    pub password_stdin: bool,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Daemon status (os4x-pidctl status data)
    Status,
    /// Trading partners
    Partners,
    /// Received files
    Received {
        /// Only files nobody acknowledged yet
        #[arg(long)]
        unacked: bool,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Download a received file
    Get {
        file_id: i64,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Acknowledge a received file
    Ack { file_id: i64 },
    /// The send queue
    Queue,
    /// Enqueue a file that exists on the server
    Send {
        partner: String,
        /// Path on the server (must be allowed by the configuration)
        path: PathBuf,
    },
}

pub fn run(config: &Config, args: ClientArgs) -> anyhow::Result<ExitCode> {
    let addr = args.address.unwrap_or(config.client.listen);
    let password = match std::env::var("OS4X_CLIENT_PASSWORD") {
        Ok(p) if !args.password_stdin => p,
        _ => super::read_password(
            args.password_stdin,
            &format!("Password for {}: ", args.user),
            false,
        )?,
    };
    let mut remote = Remote::connect(addr, Duration::from_secs(30))?;
    remote.call("login", json!({"user": args.user, "password": password}))?;
    let print = |v: &Value| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    };
    match args.command {
        ClientCommand::Status => print(&remote.call("status", json!({}))?)?,
        ClientCommand::Partners => print(&remote.call("partners", json!({}))?)?,
        ClientCommand::Received { unacked, limit } => {
            print(&remote.call("received.list", json!({"unacked": unacked, "limit": limit}))?)?
        }
        ClientCommand::Ack { file_id } => {
            print(&remote.call("received.ack", json!({"file_id": file_id}))?)?
        }
        ClientCommand::Queue => print(&remote.call("queue.list", json!({}))?)?,
        ClientCommand::Send { partner, path } => {
            print(&remote.call("send", json!({"partner": partner, "path": path}))?)?
        }
        ClientCommand::Get { file_id, output } => {
            let tmp = output.with_extension("part");
            let mut f = std::fs::File::create(&tmp)?;
            let mut offset = 0u64;
            loop {
                let chunk = remote.call(
                    "received.download",
                    json!({"file_id": file_id, "offset": offset}),
                )?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(chunk["data"].as_str().unwrap_or(""))?;
                f.write_all(&data)?;
                offset += data.len() as u64;
                if chunk["eof"] == json!(true) || data.is_empty() {
                    break;
                }
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &output)?;
            println!("{} bytes written to {}", offset, output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
