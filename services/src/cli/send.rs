//! `os4x send FILE --to PARTNER`: queue a file for `os4xsqd`.

use std::path::PathBuf;

use clap::Args;
use oftp2::value::RecordFormat;

use crate::config::Config;
use crate::usecase::send::{enqueue, parse_format, SendRequest};
use crate::usecase::Error as Failure;

/// Queue a file for a partner
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The file to send; it is copied into the outbox at once
    pub file: PathBuf,
    /// Odette ID of the partner
    #[arg(long, value_name = "PARTNER")]
    pub to: String,
    /// Virtual file dataset name (SFIDDSN) [default: the file name]
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Record format: F (fixed), V (variable), U (unstructured), T (text)
    #[arg(long, default_value = "U", value_parser = parse_format)]
    pub format: RecordFormat,
    /// Record length for F, maximum record length for V
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub record_size: u32,
    /// Higher is sent first
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub priority: i64,
    /// SFIDUSER (up to 8 characters)
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub user_data: String,
    /// SFIDDESC, a description for the partner
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub description: String,
    /// Final destination when it differs from the partner (routed via it)
    #[arg(long, value_name = "ODETTE_ID")]
    pub destination: Option<String>,
}

impl From<SendArgs> for SendRequest {
    fn from(a: SendArgs) -> SendRequest {
        SendRequest {
            file: a.file,
            to: a.to,
            dataset: a.dataset,
            format: a.format,
            record_size: a.record_size,
            priority: a.priority,
            user_data: a.user_data,
            description: a.description,
            destination: a.destination,
        }
    }
}

/// Queues the file; prints the entry id.
pub fn run(config: &Config, a: SendArgs) -> Result<(), Failure> {
    let q = enqueue(config, a.into())?;
    println!("{}", q.entry.id);
    if !q.has_route {
        eprintln!(
            "os4x: note: partner {p} has no route yet; os4xsqd sends once one is set with `os4x route set {p} --host HOST`",
            p = q.entry.partner
        );
    }
    Ok(())
}
