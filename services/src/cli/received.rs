//! `os4x received [--json]`: files received from partners (by
//! `os4xrd_tcpip`, `os4xrd_tcpip_tls` or a poll of `os4xsqd`), with the
//! state of the EERP we owe for each.

use clap::Args;

use crate::config::Config;
use crate::usecase::received::list;
use crate::usecase::Error as Failure;

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
