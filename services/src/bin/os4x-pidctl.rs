//! `os4x-pidctl`: inspect and repair the os4x PID table.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use os4x::config::{Config, ENV_VAR};
use os4x::exit;
use os4x::pidctl::{self, CheckState};
use pidstore::{process, Liveness, PidStore, ProgramName, ResetError, Staleness};

const ABOUT: &str = "Inspect and repair the os4x daemon PID table";

const LONG_ABOUT: &str = "\
Inspect and repair the os4x daemon PID table.

Every os4x daemon records itself in the SQLite table os4x_pids (program,
serverID, pid, plus the process start time and boot id) and writes
<tmp_dir>/<program>.pid. A daemon refuses to start only while the recorded
process is alive AND provably the same process; entries whose process is gone,
or whose PID now belongs to another process, are stale and are taken over by
the next start automatically. os4x-pidctl shows these entries, checks them for
monitoring, and clears them by hand.

Database, PID directory and server id come from the configuration file
(/etc/os4x/os4x.toml, or --config / OS4X_CONFIG). Run it as root or as the
os4x service user: listing a daemon's sockets needs access to /proc/<pid>/fd.";

const AFTER_HELP: &str = "\
EXIT STATUS:
  status, reset, completions:
    0   success
    1   reset refused: the daemon is running (use --force to clear anyway)
    2   usage error
    74  database could not be opened or read
    78  configuration invalid
  check (Nagios/Icinga plugin convention):
    0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (includes configuration and
    database errors)

EXAMPLES:
  os4x-pidctl status
  os4x-pidctl status --json | jq '.programs[] | select(.state != \"running\")'
  os4x-pidctl check
  os4x-pidctl reset os4xrd_tcpip
  os4x-pidctl reset --all --server-id 2
  os4x-pidctl completions bash > /etc/bash_completion.d/os4x-pidctl";

#[derive(Debug, Parser)]
#[command(name = "os4x-pidctl", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = AFTER_HELP)]
struct Cli {
    /// Configuration file [default: /etc/os4x/os4x.toml; a missing default
    /// file means built-in defaults]
    #[arg(long, global = true, value_name = "PATH", env = ENV_VAR)]
    config: Option<PathBuf>,

    /// Server id to act on, instead of server_id from the configuration
    #[arg(long, global = true, value_name = "N")]
    server_id: Option<u32>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show every program's PID entry
    ///
    /// One row per program recorded for the server id, plus the required
    /// daemons (required_daemons) even if they never started: program,
    /// serverID, recorded PID (-1 = not running), state, PID file agreement,
    /// uptime, and the TCP sockets the process listens on.
    ///
    /// STATE is one of: running; stopped; stale: no process (the recorded
    /// process is gone, e.g. after kill -9 or a crash); stale: pid reused by
    /// <name> (the PID now belongs to another process, e.g. after a reboot).
    /// Stale entries are harmless: the next start takes them over.
    ///
    /// PIDFILE: present (holds the recorded PID), absent, or mismatch (holds
    /// another PID or garbage, or exists although the entry says -1).
    ///
    /// Under systemd two more columns show the program's unit and systemd's
    /// view of it (ActiveState, SubState, MainPID); lines starting with `!`
    /// below the table name every disagreement between the two views, e.g.
    /// a daemon started by hand beside its unit.
    Status {
        /// Print one JSON document instead of the table. Schema (version 1;
        /// fields may be added, never changed): {schema_version, server_id,
        /// database, database_exists, programs: [{program, server_id, pid,
        /// state (running|stopped|stale_no_process|stale_pid_reused),
        /// state_text, reused_by, required, pid_file: {path, state, pid},
        /// listening: ["127.0.0.1:10001", ...], listening_error,
        /// uptime_seconds, executable, written_at, invocation_id,
        /// systemd: null | {unit, load_state, active_state, sub_state,
        /// main_pid, invocation_id, agreement (agree|stale_entry|disagree),
        /// disagreement, error}}]}
        #[arg(long)]
        json: bool,

        /// Every node sharing the database: each node's host, heartbeat
        /// age and version, and every program recorded on any host. Rows
        /// of this host are checked against its processes; other hosts'
        /// are judged by their node's heartbeat. With --json: {schema_version,
        /// database, this_host, nodes: [{server_id, host, version,
        /// started_at, heartbeat_at, heartbeat_age_seconds, alive}],
        /// programs: [{server_id, host, program, pid, state (running|
        /// stopped|stale_no_process|stale_pid_reused|recorded|node_silent),
        /// state_text, local}]}
        #[arg(long)]
        all: bool,
    },

    /// Monitoring check (Nagios/Icinga plugin)
    ///
    /// Prints one status line with performance data, then one line per
    /// program. CRITICAL (2) when a required daemon (required_daemons in the
    /// configuration; default os4xrd_tcpip, os4xrd_tcpip_tls, os4xsqd) is
    /// not running or its entry is stale; WARNING (1) when a running required
    /// daemon's PID file is absent or wrong, or another program has a stale
    /// entry; UNKNOWN (3) when configuration or database cannot be read;
    /// OK (0) otherwise.
    Check,

    /// Clear stale PID entries
    ///
    /// Sets the entry to pid -1 and removes the PID file, and says what it
    /// did. An entry whose process is alive and genuine is NOT cleared
    /// unless --force is given; even then the process keeps running (stop it
    /// with systemctl first). Under systemd a reset is rarely needed: a unit's
    /// start takes stale entries over by itself, so `systemctl restart UNIT`
    /// is the right action, and reset says so.
    Reset {
        /// Program whose entry to clear, e.g. os4xrd_tcpip
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        program: Option<ProgramName>,

        /// Clear the entries of all programs of the server id
        #[arg(long)]
        all: bool,

        /// Clear even entries of running daemons (they keep running)
        #[arg(long)]
        force: bool,
    },

    /// Print a shell completion script
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "os4x-pidctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let is_check = matches!(cli.command, Command::Check);
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) if is_check => return unknown(&e.to_string()),
        Err(e) => {
            eprintln!("os4x-pidctl: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let server_id = cli.server_id.unwrap_or(config.server_id);
    let result = match cli.command {
        Command::Status { json, all: true } => status_all(&config, json),
        Command::Status { json, all: false } => status(&config, server_id, json),
        Command::Check => check(&config, server_id),
        Command::Reset {
            program,
            all,
            force,
        } => reset(&config, server_id, program, all, force),
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_check => unknown(&e.to_string()),
        Err(e) => {
            eprintln!("os4x-pidctl: {e}");
            ExitCode::from(exit::IOERR)
        }
    }
}

fn unknown(why: &str) -> ExitCode {
    println!("OS4X UNKNOWN - {}", why.replace('\n', " "));
    ExitCode::from(CheckState::Unknown.code())
}

/// Status rows; a database that does not exist yet is not created (it
/// would belong to whoever runs this) but reported as all stopped.
fn rows(
    config: &Config,
    server_id: u32,
) -> Result<(bool, Vec<pidstore::ProgramStatus>), pidstore::Error> {
    let db = &config.database;
    match PidStore::open_existing(db)? {
        Some(store) => Ok((
            true,
            store.status(server_id, &config.required_daemons, &config.tmp_dir)?,
        )),
        None => {
            let boot = process::boot_id().map_err(pidstore::Error::Proc)?;
            let rows = config
                .required_daemons
                .iter()
                .map(|p| {
                    pidstore::status_of(p.to_string(), server_id, None, &boot, &config.tmp_dir)
                })
                .collect::<Result<_, _>>()?;
            Ok((false, rows))
        }
    }
}

fn status(config: &Config, server_id: u32, json: bool) -> anyhow::Result<ExitCode> {
    let (exists, rows) = rows(config, server_id)?;
    let db = &config.database;
    // Under systemd, its view (unit, ActiveState, MainPID) beside the table's.
    let views = pidctl::systemd_views(&rows);
    let out = if json {
        let mut doc =
            pidctl::status_document(server_id, db, exists, &rows, &config.required_daemons);
        if let Some(v) = &views {
            pidctl::attach_systemd(&mut doc, v);
        }
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        let mut s = pidctl::status_table_with_systemd(&rows, views.as_deref());
        if !exists {
            s.push_str(&format!(
                "(database {} does not exist yet: no daemon has started)\n",
                db.describe()
            ));
        }
        s
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn status_all(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let Some(doc) = os4x::debug::bundle::cluster_document(config)? else {
        println!(
            "(database {} does not exist yet: no daemon has started)",
            config.database.describe()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let out = if json {
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        pidctl::cluster_table(&doc)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Config, server_id: u32) -> anyhow::Result<ExitCode> {
    let (_, rows) = rows(config, server_id)?;
    let views = pidctl::systemd_views(&rows);
    let result = pidctl::check_with_systemd(&rows, &config.required_daemons, views.as_deref());
    // Certificates: ours ([security]) and those of enabled partners.
    let partners = if os4x_store::is_set_up(&config.database)? {
        let db = os4x::db::Db::open(&config.database)?;
        os4x::partner::PartnerStore::new(db).list()?
    } else {
        Vec::new()
    };
    let (expiring, problems) = os4x::security::expiring_certificates(
        &config.security,
        &partners,
        std::time::SystemTime::now(),
    );
    let result = pidctl::with_certificates(result, &expiring, &problems);
    print!("{}", result.output);
    Ok(ExitCode::from(result.state.code()))
}

fn reset(
    config: &Config,
    server_id: u32,
    program: Option<ProgramName>,
    all: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let db = &config.database;
    let Some(mut store) = PidStore::open_existing(db)? else {
        println!(
            "Nothing to reset: database {} does not exist.",
            db.describe()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let programs: Vec<String> = if all {
        store
            .records(server_id)?
            .into_iter()
            .map(|r| r.program)
            .collect()
    } else {
        program.into_iter().map(|p| p.to_string()).collect()
    };
    let mut refused = false;
    for program in programs {
        let unit = systemd_unit(&program);
        match store.reset(&program, server_id, force, &config.tmp_dir) {
            Ok(r) => {
                let was = match (&r.previous, r.previous_pid) {
                    (Liveness::Stopped, _) => "not running".to_owned(),
                    (l, Some(pid)) => format!("{l}, pid {pid}"),
                    (l, None) => l.to_string(),
                };
                let mut done = Vec::new();
                if r.row_cleared {
                    done.push("set pid=-1".to_owned());
                }
                if let Some(f) = &r.pid_file_removed {
                    done.push(format!("removed {}", f.display()));
                }
                let done = if done.is_empty() {
                    "nothing to do".to_owned()
                } else {
                    done.join(", ")
                };
                println!("{program} (serverID {server_id}): was {was}; {done}");
                if let Liveness::Running(p) = &r.previous {
                    match &unit {
                        Some(u) if u.main_pid == Some(p.pid) => println!(
                            "  WARNING: process {} is still running as the main process of {}; it was not stopped. Use `systemctl restart {}` (or `systemctl stop {}`), not reset.",
                            p.pid, u.unit, u.unit, u.unit
                        ),
                        _ => println!(
                            "  WARNING: process {} is still running; it was not stopped. Stop it with `kill {}`.",
                            p.pid, p.pid
                        ),
                    }
                }
                if let (Liveness::Stale(_), Some(u)) = (&r.previous, &unit) {
                    if !u.is_up() {
                        println!(
                            "  note: {} is {}; under systemd the right action is `systemctl restart {}`: a start takes stale entries over by itself.",
                            u.unit, u.active_state, u.unit
                        );
                    }
                }
                if let Liveness::Stale(Staleness::PidReused { by }) = &r.previous {
                    println!(
                        "  (pid now belongs to an unrelated {by} process, which was left alone)"
                    );
                }
            }
            Err(ResetError::Live {
                pid, executable, ..
            }) if unit.as_ref().is_some_and(|u| u.main_pid == Some(pid)) => {
                let u = unit.as_ref().map_or("", |u| u.unit.as_str());
                eprintln!(
                    "os4x-pidctl: not reset: {program} (serverID {server_id}) is running with pid {pid} ({executable}) as the main process of {u}, and its entry is correct.\n  To restart it: systemctl restart {u}\n  To stop it:    systemctl stop {u}"
                );
                refused = true;
            }
            Err(e @ ResetError::Live { .. }) => {
                eprintln!("os4x-pidctl: not reset: {e}");
                refused = true;
            }
            Err(ResetError::Store(e)) => return Err(e.into()),
        }
    }
    Ok(if refused {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// systemd's state of the unit that runs `program`, when systemd is the
/// service manager and the unit is installed.
fn systemd_unit(program: &str) -> Option<pidstore::systemd::UnitState> {
    let unit = pidstore::systemd::unit_for(program)?;
    pidstore::systemd::query(&unit)
        .ok()
        .flatten()
        .filter(|u| u.is_installed())
}
