//! `os4x client ...`: the reference client of `os4xclientd`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::client::remote::{Remote, Tls};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// os4xclientd address [default: `[client] listen`]
    #[arg(long)]
    pub address: Option<SocketAddr>,
    /// Connect over TLS (os4xclientd with `[client] tls_certificate`)
    #[arg(long, requires = "tls_ca")]
    pub tls: bool,
    /// PEM file with the CA certificate(s) that issued os4xclientd's
    /// certificate, or that self-signed certificate itself
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// Name the server certificate must be valid for [default: the IP
    /// address of --address]
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
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
    /// Queue a file for a partner (as `os4x send`): uploads the local
    /// FILE, or with --server-path names a file on the server inside
    /// `[client] allowed_paths`
    Send {
        /// Local file to upload (with --server-path: a path on the server)
        file: PathBuf,
        /// Odette ID of the partner
        #[arg(long, value_name = "PARTNER")]
        to: String,
        /// FILE is a path on the server, not uploaded
        #[arg(long)]
        server_path: bool,
        /// Virtual file dataset name [default: the file name]
        #[arg(long, value_name = "NAME")]
        dataset: Option<String>,
        /// Record format: F, V, U or T
        #[arg(long, default_value = "U")]
        format: String,
        /// Record length for F, maximum record length for V
        #[arg(long, value_name = "N", default_value_t = 0)]
        record_size: u32,
        /// Higher is sent first
        #[arg(
            long,
            value_name = "N",
            default_value_t = 0,
            allow_negative_numbers = true
        )]
        priority: i64,
        /// SFIDUSER (up to 8 characters)
        #[arg(long, value_name = "TEXT", default_value = "")]
        user_data: String,
        /// SFIDDESC
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Final destination when it differs from the partner
        #[arg(long, value_name = "ODETTE_ID")]
        destination: Option<String>,
    },
}

/// Raw bytes per `upload.chunk` at most (about 256 KiB as base64); less if
/// the server's request limit (`chunk_bytes` of `upload.start`) says so.
const UPLOAD_CHUNK: usize = 192 << 10;

/// Uploads `path` on the connection for a following `send`.
fn upload(remote: &mut Remote, path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let size = f.metadata()?.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let started = remote.call("upload.start", json!({"name": name, "size": size}))?;
    let chunk = started["chunk_bytes"]
        .as_u64()
        .and_then(|c| usize::try_from(c).ok())
        .filter(|c| *c > 0)
        .map_or(UPLOAD_CHUNK, |c| c.min(UPLOAD_CHUNK));
    let mut buf = vec![0; chunk];
    let mut offset = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
        remote.call("upload.chunk", json!({"offset": offset, "data": data}))?;
        offset += n as u64;
    }
    Ok(())
}

pub fn run(config: &Config, args: ClientArgs) -> anyhow::Result<ExitCode> {
    let addr = args.address.unwrap_or(config.client.listen);
    let tls = match &args.tls_ca {
        Some(ca) if args.tls => {
            let name = args
                .tls_server_name
                .clone()
                .unwrap_or_else(|| addr.ip().to_string());
            Some(Tls::with_ca_file(ca, &name)?)
        }
        _ => None,
    };
    let password = match std::env::var("OS4X_CLIENT_PASSWORD") {
        Ok(p) if !args.password_stdin => p,
        _ => super::read_password(
            args.password_stdin,
            &format!("Password for {}: ", args.user),
            false,
        )?,
    };
    let mut remote = Remote::connect(addr, tls.as_ref(), Duration::from_secs(30))?;
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
        ClientCommand::Send {
            file,
            to,
            server_path,
            dataset,
            format,
            record_size,
            priority,
            user_data,
            description,
            destination,
        } => {
            let mut req = json!({
                "partner": to, "dataset": dataset, "format": format,
                "record_size": record_size, "priority": priority, "user_data": user_data,
                "description": description, "destination": destination,
            });
            if server_path {
                req["path"] = json!(file);
            } else {
                upload(&mut remote, &file)?;
                req["upload"] = json!(true);
            }
            let r = remote.call("send", req)?;
            println!("{}", r["entry"]["id"]);
            if r["has_route"] == json!(false) {
                eprintln!(
                    "os4x: note: partner {} has no route yet; os4xsqd sends once the admin sets one",
                    r["entry"]["partner"].as_str().unwrap_or_default()
                );
            }
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
