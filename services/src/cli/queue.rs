//! `os4x queue [--state S] [--json]`, `os4x queue retry ID`,
//! `os4x queue cancel ID`.

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::queue::{Entry, EntryState};
use crate::usecase::Error as Failure;

/// Show the send queue; `retry` or `cancel` an entry
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: Option<QueueAction>,
    /// Only entries in this state (repeatable): queued, sending,
    /// sent-awaiting-eerp, delivered, failed, retry, cancelled
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub state: Vec<EntryState>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Send a failed, waiting or cancelled entry again, now, with a fresh
    /// attempt budget
    Retry { id: i64 },
    /// Cancel an entry that has not gone out (not while it is being sent)
    Cancel { id: i64 },
}

fn parse_state(s: &str) -> Result<EntryState, String> {
    s.parse()
}

fn time(t: i64) -> String {
    match oftp2::value::Timestamp::from_unix_seconds(t, 0) {
        Ok(ts) => {
            let s = ts.to_string();
            format!(
                "{}-{}-{} {}:{}:{}",
                &s[0..4],
                &s[4..6],
                &s[6..8],
                &s[8..10],
                &s[10..12],
                &s[12..14]
            )
        }
        Err(_) => t.to_string(),
    }
}

fn state_text(e: &Entry) -> String {
    match e.state {
        EntryState::Retry => format!("retry-at {}", time(e.next_attempt_at)),
        s => s.to_string(),
    }
}

pub fn run(config: &Config, a: QueueArgs) -> Result<(), Failure> {
    let queue = crate::usecase::send::open_queue(config)?;
    match a.action {
        Some(QueueAction::Retry { id }) => {
            queue.retry(id)?;
            println!("entry {id} queued for sending now");
        }
        Some(QueueAction::Cancel { id }) => {
            queue.cancel(id)?;
            println!("entry {id} cancelled");
        }
        None => {
            let entries = queue.list(&a.state)?;
            if a.json {
                let v = serde_json::json!({ "version": 1, "entries": entries });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            println!(
                "{:<7} {:<20} {:<26} {:<18} {:<30} {:>3} {:<17} ERROR",
                "ID", "PARTNER", "DATASET", "STAMP", "STATE", "TRY", "EERP"
            );
            for e in entries {
                println!(
                    "{:<7} {:<20} {:<26} {:<18} {:<30} {:>3} {:<17} {}",
                    e.id,
                    e.partner,
                    e.dataset_name,
                    e.file_timestamp,
                    state_text(&e),
                    e.attempts,
                    // The receipt and, when checked, its signature:
                    // `eerp(valid)`, `eerp(unsigned)`, `awaiting(invalid)`.
                    match &e.receipt_verification {
                        Some(v) => format!("{}({v})", e.eerp),
                        None => e.eerp.clone(),
                    },
                    e.last_error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
