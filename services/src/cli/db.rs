//! `os4x db status|migrate|copy`: the database's schema, and moving an
//! installation from SQLite to PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;
use os4x_store::migrate::{self, ComponentStatus};
use os4x_store::Location;

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Show where the database is and each component's schema version
    /// (exit 1 if a migration is due; nothing is changed)
    Status,
    /// Bring every component to this build's schema (daemons do this at
    /// start; run it ahead of a rolling upgrade)
    Migrate,
    /// Copy every row into another, empty database, e.g. from the SQLite
    /// file to PostgreSQL; then set `database` in os4x.toml to the target
    Copy {
        /// The target: postgres://user:password@host/dbname[?sslmode=...]
        #[arg(long, value_name = "URL")]
        to: String,
        /// The source [default: `database` of the configuration]
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Copy even though daemons of this installation are running
        /// (rows they write during the copy are lost)
        #[arg(long)]
        force: bool,
    },
}

pub fn run(config: &Config, cmd: DbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Status => status(&config.database),
        DbCommand::Migrate => {
            let before = read_status(&config.database)?;
            os4x_store::open(&config.database)?;
            let after = read_status(&config.database)?;
            for (b, a) in before.iter().zip(&after) {
                if b.found == a.found {
                    println!("{:<12} version {} (up to date)", a.name, a.found);
                } else {
                    println!("{:<12} version {} -> {}", a.name, b.found, a.found);
                }
            }
            println!(
                "database {} is at this build's schema",
                config.database.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Copy { to, from, force } => {
            let from = match from {
                Some(url) => Location::parse(&url).map_err(anyhow::Error::msg)?,
                None => config.database.clone(),
            };
            let to = Location::parse(&to).map_err(anyhow::Error::msg)?;
            copy(config, &from, &to, force)
        }
    }
}

fn read_status(location: &Location) -> anyhow::Result<Vec<ComponentStatus>> {
    let conn = os4x_store::connect_unmigrated(location)?;
    Ok(migrate::status(&conn)?)
}

fn status(location: &Location) -> anyhow::Result<ExitCode> {
    if let Some(p) = location.sqlite_path() {
        if !p.exists() {
            println!(
                "database {} does not exist yet: no os4x program has opened it",
                p.display()
            );
            return Ok(ExitCode::from(1));
        }
    }
    let kind = if location.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("database {} ({kind})", location.describe());
    let rows = read_status(location)?;
    let mut due = false;
    for s in &rows {
        due |= s.found < s.known;
        println!(
            "{:<12} version {:>2} of {:>2}  {}",
            s.name,
            s.found,
            s.known,
            s.state()
        );
    }
    if due {
        println!("run `os4x db migrate` (or start any os4x daemon) to bring it up to date");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn copy(config: &Config, from: &Location, to: &Location, force: bool) -> anyhow::Result<ExitCode> {
    if from == to {
        anyhow::bail!("source and target are the same database");
    }
    if let Some(p) = from.sqlite_path() {
        if !p.exists() {
            anyhow::bail!("the source {} does not exist", p.display());
        }
    }
    // Rows written by running daemons during the copy would be missed.
    if !force {
        let running = running_daemons(from, config)?;
        if !running.is_empty() {
            anyhow::bail!(
                "daemons still use {}: {}; stop them first (systemctl stop 'os4x*' or \
                 os4x-pidctl status), or pass --force",
                from.describe(),
                running.join(", ")
            );
        }
    }
    let source = os4x_store::open(from).with_context(|| format!("source {}", from.describe()))?;
    let mut target = os4x_store::open(to).with_context(|| format!("target {}", to.describe()))?;
    let report = os4x_store::copy::copy_all(&source, &mut target)?;
    for (table, rows) in &report.tables {
        println!("{table:<28} {rows:>9} rows");
    }
    println!(
        "copied {} rows from {} to {}; now set database in os4x.toml to the URL given with --to \
         and start the daemons",
        report.rows(),
        from.describe(),
        to.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// Programs recorded as running in the source's PID table.
fn running_daemons(from: &Location, config: &Config) -> anyhow::Result<Vec<String>> {
    let Some(store) = pidstore::PidStore::open_existing(from)? else {
        return Ok(Vec::new());
    };
    let boot = pidstore::process::boot_id()?;
    let mut out = Vec::new();
    for r in store.records(config.server_id)? {
        if let pidstore::Liveness::Running(p) = pidstore::assess(&r, &boot)? {
            out.push(format!("{} (pid {})", r.program, p.pid));
        }
    }
    Ok(out)
}
