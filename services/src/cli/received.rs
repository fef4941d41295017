//! `os4x received [--json]`: files received from partners (by
//! `os4xrd_tcpip`, `os4xrd_tcpip_tls` or a poll of `os4xsqd`), with the
//! state of the EERP we owe for each.

use clap::Args;
use rusqlite::params;
use serde::Serialize;

use crate::config::Config;
use crate::exit;
use crate::partner_cli::Failure;

/// List received files
#[derive(Debug, Args)]
pub struct ReceivedArgs {
    /// Only files from this partner
    #[arg(long, value_name = "ODETTE_ID")]
    pub partner: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Received {
    pub id: i64,
    pub partner: String,
    pub dataset_name: String,
    pub file_timestamp: String,
    pub originator: String,
    pub destination: String,
    /// `partial` or `received`.
    pub state: String,
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub received_at: Option<i64>,
    /// `none`, `due` or `sent`.
    pub eerp: String,
}

pub fn list(config: &Config, partner: Option<&str>) -> Result<Vec<Received>, Failure> {
    let queue = super::send::open_queue(config)?;
    let db = queue.db();
    let conn = db.lock();
    let io = |e: rusqlite::Error| Failure(exit::IOERR, db.error(e).to_string());
    let mut stmt = conn
        .prepare(
            "SELECT f.id, f.partner, f.dataset_name, f.file_timestamp, f.originator, \
             f.destination, f.state, f.final_path, f.units, f.received_at, \
             (SELECT CASE WHEN count(*) = 0 THEN 'none' \
               WHEN SUM(d.state = 'due') > 0 THEN 'due' ELSE 'sent' END \
               FROM os4x_receipts_due d WHERE d.received_id = f.id) \
             FROM os4x_received_files f WHERE ?1 IS NULL OR f.partner = ?1 COLLATE NOCASE \
             ORDER BY f.id DESC",
        )
        .map_err(io)?;
    let rows = stmt
        .query_map(params![partner], |r| {
            Ok(Received {
                id: r.get(0)?,
                partner: r.get(1)?,
                dataset_name: r.get(2)?,
                file_timestamp: r.get(3)?,
                originator: r.get(4)?,
                destination: r.get(5)?,
                state: r.get(6)?,
                path: r.get(7)?,
                bytes: r.get(8)?,
                received_at: r.get(9)?,
                eerp: r.get(10)?,
            })
        })
        .map_err(io)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(io)
}

pub fn run(config: &Config, a: ReceivedArgs) -> Result<(), Failure> {
    let files = list(config, a.partner.as_deref())?;
    if a.json {
        let v = serde_json::json!({ "version": 1, "files": files });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<7} {:<20} {:<26} {:<18} {:<9} {:>12} {:<5} PATH",
        "ID", "PARTNER", "DATASET", "STAMP", "STATE", "BYTES", "EERP"
    );
    for f in files {
        println!(
            "{:<7} {:<20} {:<26} {:<18} {:<9} {:>12} {:<5} {}",
            f.id,
            f.partner,
            f.dataset_name,
            f.file_timestamp,
            f.state,
            f.bytes.map(|b| b.to_string()).unwrap_or_default(),
            f.eerp,
            f.path.unwrap_or_default()
        );
    }
    Ok(())
}
