//! `os4x route set|list|show|remove`: how `os4xsqd` reaches a partner
//! (host, port, TLS and whom to trust), how it retries and how often it
//! polls. Kept next to, not inside, the partner table: a partner that
//! only ever calls us needs no route.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use oftp2::value::OdetteId;

use crate::config::Config;
use crate::isdn_routes::IsdnRoutes;
use crate::partner::{normalize_sha256, PartnerStore};
use crate::queue::{QueueError, Route};
use crate::usecase::Error as Failure;

/// Manage partner routes (send side)
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Create or change a partner's route; options not given keep their
    /// value (or the default for a new route)
    Set(RouteArgs),
    /// List routes
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a route (queued files wait until a route exists again)
    Remove { partner: String },
}

/// Send-side settings of one partner.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// Odette ID of the partner
    pub partner: String,
    /// Host name or IP address of the partner's OFTP server
    #[arg(long)]
    pub host: Option<String>,
    /// Port [default: 3305, or 6619 with --tls true]
    #[arg(long)]
    pub port: Option<u16>,
    /// Use TLS
    #[arg(long, value_name = "BOOL")]
    pub tls: Option<bool>,
    /// PEM file with the CA certificates the partner's server certificate
    /// must chain to; "" removes it
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Pin the partner's server certificate: SHA-256 of its DER, hex
    /// (colons allowed); "" removes the pin
    #[arg(long, value_name = "HEX")]
    pub tls_pin: Option<String>,
    /// Concurrent sessions to this partner
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,
    /// Attempts per file before it is marked failed
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// First retry delay in seconds (doubles per attempt, with jitter)
    #[arg(long, value_name = "SECONDS")]
    pub retry_base: Option<u64>,
    /// Longest retry delay in seconds
    #[arg(long, value_name = "SECONDS")]
    pub retry_max: Option<u64>,
    /// Call the partner this often even with nothing to send, so it can
    /// send us its files; 0 turns polling off
    #[arg(long, value_name = "SECONDS")]
    pub poll_interval: Option<u64>,
    /// Flag sent files without EERP after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub eerp_timeout: Option<u64>,
    /// Reach the partner over ISDN: the number to dial (digits; calls
    /// from this number are accepted as the partner's); "" goes back to
    /// TCP
    #[arg(long, value_name = "NUMBER")]
    pub isdn_number: Option<String>,
    /// ISDN controller to dial through ([[isdn.controller]] number)
    /// [default: 0]
    #[arg(long, value_name = "N")]
    pub isdn_controller: Option<u32>,
}

fn usage(msg: String) -> Failure {
    Failure::Invalid(msg)
}

/// Applies `a` to the stored route (or a new one).
pub fn set(config: &Config, a: RouteArgs) -> Result<Route, Failure> {
    let queue = crate::usecase::send::open_queue(config)?;
    let partner = PartnerStore::new(queue.db().clone())
        .get(&a.partner)?
        .ok_or_else(|| {
            Failure::Refused(QueueError::UnknownPartner(a.partner.clone()).to_string())
        })?;
    let mut r = match queue.route(partner.id.as_str())? {
        Some(r) => r,
        None => {
            // An ISDN-only partner needs no host; "-" is never dialled.
            let isdn_only = a.isdn_number.as_deref().is_some_and(|n| !n.is_empty());
            let host = a
                .host
                .clone()
                .or_else(|| isdn_only.then(|| "-".to_owned()))
                .ok_or_else(|| {
                    usage(format!(
                        "partner {} has no route yet; give --host (or --isdn-number)",
                        partner.id
                    ))
                })?;
            let port = if a.tls == Some(true) { 6619 } else { 3305 };
            Route::new(&partner.id, &host, port)
        }
    };
    if let Some(v) = a.host {
        r.host = v;
    }
    if let Some(v) = a.tls {
        if v && !r.tls && a.port.is_none() && r.port == 3305 {
            r.port = 6619;
        }
        r.tls = v;
    }
    if let Some(v) = a.port {
        r.port = v;
    }
    if let Some(v) = a.tls_ca {
        r.tls_ca_file = if v.as_os_str().is_empty() {
            None
        } else {
            let abs = std::path::absolute(&v).unwrap_or(v);
            if !abs.is_file() {
                return Err(usage(format!("--tls-ca {}: no such file", abs.display())));
            }
            Some(abs)
        };
    }
    if let Some(v) = a.tls_pin {
        r.tls_pin_sha256 = if v.is_empty() {
            None
        } else {
            Some(normalize_sha256(&v).ok_or_else(|| {
                usage("--tls-pin: expected 64 hex digits (SHA-256), colons allowed".into())
            })?)
        };
    }
    if let Some(v) = a.max_sessions {
        r.max_sessions = v;
    }
    if let Some(v) = a.max_attempts {
        r.max_attempts = v;
    }
    if let Some(v) = a.retry_base {
        r.retry_base = v.max(1);
    }
    if let Some(v) = a.retry_max {
        r.retry_max = v.max(1);
    }
    if let Some(v) = a.poll_interval {
        r.poll_interval = (v > 0).then_some(v);
    }
    if let Some(v) = a.eerp_timeout {
        r.eerp_timeout = v.max(1);
    }
    if partner.tls_required && !r.tls {
        eprintln!(
            "warning: partner {} requires TLS (--tls-required) but this route is plain: \
             os4xsqd will not send to it until `os4x route set {} --tls true`",
            partner.id, partner.id
        );
    }
    if r.tls && r.tls_ca_file.is_none() && r.tls_pin_sha256.is_none() {
        return Err(usage(format!(
            "TLS to {} needs --tls-ca FILE or --tls-pin SHA256 to know whom to trust",
            partner.id
        )));
    }
    if let Some(n) = a.isdn_controller {
        if config.isdn.controller(n).is_none() {
            eprintln!(
                "warning: ISDN controller {n} is not configured ([[isdn.controller]] number = {n}); \
                 os4xsqd cannot dial until it is"
            );
        }
    }
    queue.set_route(&r)?;
    set_isdn(&queue, &r.partner, a.isdn_number, a.isdn_controller)?;
    Ok(r)
}

fn db_failure(e: crate::db::DbError) -> Failure {
    QueueError::Db(e).into()
}

/// Applies `--isdn-number` / `--isdn-controller` (sq/isdn.rs).
fn set_isdn(
    queue: &crate::queue::QueueStore,
    partner: &str,
    number: Option<String>,
    controller: Option<u32>,
) -> Result<(), Failure> {
    if number.is_none() && controller.is_none() {
        return Ok(());
    }
    let isdn = IsdnRoutes::open(queue.db().clone()).map_err(db_failure)?;
    let current = isdn.get(partner).map_err(db_failure)?;
    let number = match number {
        Some(n) if n.is_empty() => return isdn.set(partner, None).map_err(db_failure),
        Some(n) => {
            let d = crate::isdn::settings::digits(&n);
            if d.is_empty()
                || d.len()
                    != n.chars()
                        .filter(|c| !matches!(c, ' ' | '-' | '/' | '+' | '(' | ')'))
                        .count()
            {
                return Err(usage(format!(
                    "--isdn-number {n:?}: expected digits (spaces, -, /, +, parentheses allowed)"
                )));
            }
            d
        }
        None => match &current {
            Some(c) => c.number.clone(),
            None => {
                return Err(usage(format!(
                    "partner {partner} has no ISDN number; give --isdn-number"
                )))
            }
        },
    };
    let controller = controller.or(current.map(|c| c.controller)).unwrap_or(0);
    isdn.set(partner, Some((&number, controller)))
        .map_err(db_failure)
}

pub fn run(config: &Config, cmd: RouteCommand) -> Result<(), Failure> {
    match cmd {
        RouteCommand::Set(a) => {
            let r = set(config, a)?;
            let queue = crate::usecase::send::open_queue(config)?;
            match IsdnRoutes::open(queue.db().clone())
                .and_then(|i| i.get(&r.partner))
                .map_err(db_failure)?
            {
                Some(i) => println!(
                    "route to {} set: ISDN {} via controller {}",
                    r.partner, i.number, i.controller
                ),
                None => println!(
                    "route to {} set: {}:{}{}",
                    r.partner,
                    r.host,
                    r.port,
                    if r.tls { " (TLS)" } else { "" }
                ),
            }
        }
        RouteCommand::List { json } => {
            let queue = crate::usecase::send::open_queue(config)?;
            let routes = queue.routes()?;
            let isdn = IsdnRoutes::open(queue.db().clone())
                .and_then(|i| i.list())
                .map_err(db_failure)?;
            let isdn_of = |p: &str| isdn.iter().find(|i| i.partner.eq_ignore_ascii_case(p));
            if json {
                let v = serde_json::json!({ "version": 1, "routes": routes, "isdn": isdn });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "{:<20} {:<30} {:<5} {:>4} {:>5} {:>6} {:>6} {:>6}",
                    "PARTNER", "ADDRESS", "TLS", "SESS", "TRIES", "RETRY", "MAXRT", "POLL"
                );
                for r in routes {
                    println!(
                        "{:<20} {:<30} {:<5} {:>4} {:>5} {:>6} {:>6} {:>6}",
                        r.partner,
                        match isdn_of(&r.partner) {
                            Some(i) => format!("isdn:{} ctrl {}", i.number, i.controller),
                            None => format!("{}:{}", r.host, r.port),
                        },
                        if r.tls { "yes" } else { "no" },
                        r.max_sessions,
                        r.max_attempts,
                        r.retry_base,
                        r.retry_max,
                        r.poll_interval
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        RouteCommand::Remove { partner } => {
            let queue = crate::usecase::send::open_queue(config)?;
            let id = OdetteId::new(&partner).map_err(|e| usage(format!("{partner:?}: {e}")))?;
            if !queue.remove_route(id.as_str())? {
                return Err(Failure::Refused(format!("partner {id} has no route")));
            }
            IsdnRoutes::open(queue.db().clone())
                .and_then(|i| i.set(id.as_str(), None))
                .map_err(db_failure)?;
            println!("route to {id} removed");
        }
    }
    Ok(())
}
