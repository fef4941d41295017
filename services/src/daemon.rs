//! What every os4x daemon does around its real work: read the
//! configuration, set up logging, claim its program name in the PID store
//! (refusing to run twice), install SIGTERM/SIGINT handling, tell systemd
//! when it is ready and when it stops, and release the claim on the way out.
//!
//! A daemon's `main` is one call:
//!
//! ```no_run
//! use clap::Parser;
//! use os4x::daemon::{self, Daemon, DaemonArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     daemon: DaemonArgs,
//! }
//!
//! async fn serve(d: Daemon) -> anyhow::Result<()> {
//!     // bind sockets here, then:
//!     d.ready();
//!     d.shutdown().wait().await;
//!     Ok(())
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     daemon::run("os4xsqd", Cli::parse().daemon, serve)
//! }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pidstore::{ClaimError, ClaimGuard, ClaimRequest, PidStore, ProgramName, Refusal};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::{Config, ENV_VAR};
use crate::exit;

/// How long tasks still running after the daemon's body returned may take
/// before they are abandoned and the claim released.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Options every daemon accepts; `#[command(flatten)]` into its CLI.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonArgs {
    /// Configuration file [default: /etc/os4x/os4x.toml; a missing default
    /// file means built-in defaults]
    #[arg(long, value_name = "PATH", env = ENV_VAR)]
    pub config: Option<PathBuf>,

    /// Start even if the PID table says another instance runs, taking over
    /// its entry. The other process is NOT stopped; use this only when you
    /// know the entry is wrong.
    #[arg(short, long)]
    pub force: bool,
}

/// Resolves when SIGTERM or SIGINT arrived. Cheap to clone; hand one to
/// every task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Waits for the signal (returns at once if it already came).
    pub async fn wait(&mut self) {
        // An error means the sender is gone, i.e. the daemon is ending.
        let _ = self.0.wait_for(|&stop| stop).await;
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

/// The running daemon as its body sees it.
#[derive(Debug)]
pub struct Daemon {
    program: ProgramName,
    config: Arc<Config>,
    shutdown: Shutdown,
}

impl Daemon {
    pub fn program(&self) -> &ProgramName {
        &self.program
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// A handle that resolves on SIGTERM/SIGINT.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Tells systemd (`Type=notify`) that start-up is complete: call after
    /// the listening sockets are bound.
    pub fn ready(&self) {
        notify(sd_notify::NotifyState::Ready);
        tracing::info!(program = %self.program, "ready");
    }
}

fn notify(state: sd_notify::NotifyState<'_>) {
    // Without NOTIFY_SOCKET (not under systemd) this is a no-op.
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs a daemon: configuration, logging, claim, signals, `body`, release.
/// Returns the process exit code (see [`crate::exit`]).
pub fn run<F, Fut>(program: &str, args: DaemonArgs, body: F) -> ExitCode
where
    F: FnOnce(Daemon) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let program = match ProgramName::new(program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("{program}: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    crate::logging::init_with_debug(
        program.as_str(),
        crate::debug::forward::settings_for(program.as_str(), &config),
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(exit::OSERR);
        }
    };
    // Handlers go in before the claim, so a SIGTERM during start-up is not
    // fatal (which would skip the release) but a request to stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let _rt = runtime.enter();
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return ExitCode::from(exit::OSERR);
            }
        };
        runtime.spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            let _ = stop_tx.send(true);
        });
    }

    spawn_watchdog(&runtime);

    let guard = match claim(&program, &config, args.force) {
        Ok(g) => g,
        Err(code) => return ExitCode::from(code),
    };
    if let Err(code) = join_cluster(&program, &config, args.force) {
        return ExitCode::from(code);
    }

    let daemon = Daemon {
        program: program.clone(),
        config,
        shutdown: Shutdown(stop_rx),
    };
    let result = runtime.block_on(body(daemon));
    notify(sd_notify::NotifyState::Stopping);
    runtime.shutdown_timeout(SHUTDOWN_GRACE);

    let released = guard.release();
    let mut code = exit::OK;
    if let Err(e) = result {
        tracing::error!(program = %program, "{e:#}");
        code = exit::FAILURE;
    }
    if let Err(e) = released {
        tracing::error!(program = %program, error = %e, "could not release the PID entry; the next start will take it over as stale");
    }
    ExitCode::from(code)
}

/// Sends `WATCHDOG=1` at half the interval systemd asks for (`WatchdogSec=`
/// sets `WATCHDOG_USEC`), for every daemon alike. The pings come from the
/// async runtime, so a wedged runtime (all workers blocked) stops them and
/// systemd restarts the daemon. Without `WATCHDOG_USEC` nothing is spawned.
fn spawn_watchdog(runtime: &tokio::runtime::Runtime) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notify(sd_notify::NotifyState::Watchdog);
        }
    });
}

/// Registers this node in `os4x_nodes` (refused if another live host uses
/// our `server_id`) and starts its heartbeat, every `[cluster] heartbeat`,
/// on a thread of its own so a busy runtime does not make the node look
/// dead. `Err` is the exit code.
fn join_cluster(program: &ProgramName, config: &Config, force: bool) -> Result<(), u8> {
    let host = pidstore::process::hostname();
    let boot = pidstore::process::boot_id().ok();
    let beat_every = config.cluster.heartbeat;
    let stale_after = config.cluster.silence_secs();
    let mut conn = os4x_store::open(&config.database).map_err(|e| {
        eprintln!(
            "{program}: cannot open the database {}: {e}",
            config.database
        );
        exit::TEMPFAIL
    })?;
    match pidstore::nodes::register(
        &mut conn,
        config.server_id,
        &host,
        boot.as_deref(),
        env!("CARGO_PKG_VERSION"),
        stale_after,
        force,
    ) {
        Ok(()) => {}
        Err(e @ pidstore::nodes::NodeError::InUse { .. }) => {
            eprintln!("{program}: {e} (or start with --force if that node is gone for good)");
            return Err(exit::TEMPFAIL);
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            return Err(exit::TEMPFAIL);
        }
    }
    let server_id = config.server_id;
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(beat_every);
            match pidstore::nodes::beat(&conn, server_id, &host) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(server_id, host, "another host took over this node's server_id (started with --force); stop one of them")
                }
                Err(e) => {
                    tracing::warn!(server_id, error = %e, "cannot record the heartbeat; other nodes may think this one is gone")
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the heartbeat thread");
    }
    Ok(())
}

/// Claims `program`, printing the admin message on refusal. `Err` is the
/// exit code.
fn claim(program: &ProgramName, config: &Config, force: bool) -> Result<ClaimGuard, u8> {
    let db = &config.database;
    let store = PidStore::open(db).map_err(|e| store_error(program, &e))?;
    let invocation_id = std::env::var("INVOCATION_ID").ok();
    let request = ClaimRequest {
        program,
        server_id: config.server_id,
        force,
        pid_dir: &config.tmp_dir,
        invocation_id: invocation_id.as_deref(),
    };
    match store.claim(&request) {
        Ok(guard) => Ok(guard),
        Err(ClaimError::AlreadyRunning(refusal)) => {
            tracing::error!(program = %program, pid = refusal.pid, "refusing to start: already running");
            eprint!("{}", refusal_message(&refusal, config.source.as_deref()));
            // Under systemd (ours or the other's), say which side to act on.
            if let Some(hint) =
                crate::pidctl::refusal_systemd_hint(&refusal, invocation_id.as_deref())
            {
                eprint!("{hint}");
            }
            Err(exit::TEMPFAIL)
        }
        Err(ClaimError::Store(e)) => Err(store_error(program, &e)),
    }
}

fn store_error(program: &ProgramName, e: &pidstore::Error) -> u8 {
    tracing::error!(program = %program, "{e}");
    eprintln!("{program}: {e}");
    match e {
        pidstore::Error::Busy { .. } => exit::TEMPFAIL,
        pidstore::Error::PidFile { .. } => exit::CANTCREAT,
        _ => exit::IOERR,
    }
}

/// The message an admin sees when a start is refused: what runs, and the
/// three ways out (SQL, `os4x-pidctl reset`, `-f`). `config` is the file
/// in use, repeated in the pidctl command when it is not the default.
pub fn refusal_message(r: &Refusal, config: Option<&Path>) -> String {
    let uptime = r
        .uptime
        .map(|u| format!(", up {}", crate::pidctl::format_duration(u)))
        .unwrap_or_default();
    let config_arg = config
        .filter(|p| *p != Path::new(crate::config::DEFAULT_PATH))
        .map(|p| format!(" --config {}", p.display()))
        .unwrap_or_default();
    format!(
        "ERROR: There seems to run another {program} with pid {pid}!\n\
         Process {pid} is alive: it is the {exe} process registered for serverID {sid}{uptime}.\n\
         If it must not run, stop it. If the entry is wrong, clear it in database {db}:\n\
         \x20 UPDATE os4x_pids SET pid=-1 WHERE program='{program}' AND serverID={sid}\n\
         or run:\n\
         \x20 os4x-pidctl{config_arg} reset {program}\n\
         or start {program} with -f to take over regardless (the other process keeps running).\n",
        program = r.program,
        pid = r.pid,
        exe = r.executable,
        sid = r.server_id,
        db = r.database,
    )
}

/// Raises the soft limit of open files (`RLIMIT_NOFILE`) to at least
/// `needed` where the hard limit allows: a daemon that serves many
/// sessions needs a descriptor per connection plus its files, and the
/// usual soft default (1024) is below what `[rd] max_sessions` asks for.
/// Returns the soft limit now in force.
pub fn raise_nofile(needed: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= needed {
        return soft;
    }
    let target = needed.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            if target < needed {
                tracing::warn!(
                    needed,
                    hard,
                    "the open-file limit is below what the configured sessions need; \
                     raise LimitNOFILE= in the unit (or `ulimit -Hn`), or lower [rd] max_sessions"
                );
            } else {
                tracing::info!(
                    from = soft,
                    to = target,
                    "open-file limit raised for the configured sessions"
                );
            }
            target
        }
        Err(e) => {
            tracing::warn!(error = %e, needed, soft, "cannot raise the open-file limit");
            soft
        }
    }
}
