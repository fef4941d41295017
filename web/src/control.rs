//! Starting and stopping daemons: through systemd where it runs the
//! program's unit (`systemctl start|stop|restart UNIT`), otherwise
//! directly (the daemon binary, detached in its own session; SIGTERM to
//! the recorded PID).
//!
//! "Start forced" takes the program's PID entry over although it says the
//! program runs: directly with `-f`, under systemd by clearing the entry
//! (`os4x-pidctl reset --force`) before `systemctl start`. Neither stops
//! the process the entry names: if it is really alive, two daemons run and
//! race each other for files and receipts. The page asks before doing it.
//!
//! Every action is logged (target `os4x_web::audit`) with the user.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use pidstore::{Liveness, PidStore};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a started daemon may take to record itself in the PID table.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long it must then stay up to count as started (binding its
/// sockets comes after the claim and may fail).
const SETTLE: Duration = Duration::from_millis(400);
/// How long a stopped daemon may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// What an operator can do with a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Start,
    Stop,
    Restart,
    /// Start although the PID entry says it runs (see the module docs).
    StartForced,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Start,
        Action::Stop,
        Action::Restart,
        Action::StartForced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::StartForced => "start-forced",
        }
    }
}

impl FromStr for Action {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Action, ApiError> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "unknown action {s:?}; use start, stop, restart or start-forced"
                ))
            })
    }
}

/// How a program is controlled here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// systemd runs its unit.
    Systemd(String),
    /// The binary, started by os4x-web.
    Direct,
}

impl Mode {
    pub fn label(&self) -> &'static str {
        match self {
            Mode::Systemd(_) => "systemd",
            Mode::Direct => "direct",
        }
    }
}

/// The result of an action, as the API answers it.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub program: String,
    pub action: Action,
    /// `systemd` or `direct`.
    pub mode: &'static str,
    pub unit: Option<String>,
    /// The PID the table records afterwards (`null`: not running).
    pub pid: Option<i32>,
    pub message: String,
}

/// Whether `program` is an os4x daemon os4x-web may start or stop. Other
/// names (tools, arbitrary files in the daemon directory) are refused.
pub fn is_daemon(program: &str) -> bool {
    use os4x::programs::*;
    [
        OS4XRD,
        OS4XRD_TCPIP,
        OS4XRD_TCPIP_TLS,
        OS4XSQD,
        OS4XCLIENTD,
        OS4XDEBUGD,
    ]
    .contains(&program)
        || program
            .strip_prefix("os4xrd_capi_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How `program` is controlled, per `[web] control`: with `auto`, through
/// systemd when it is the service manager and the unit is installed.
pub fn mode_for(state: &AppState, program: &str) -> Mode {
    mode_with(state, program, |unit| {
        pidstore::systemd::booted()
            && matches!(pidstore::systemd::query(unit), Ok(Some(s)) if s.is_installed())
    })
}

/// [`mode_for`] with the question "is this unit installed under a running
/// systemd?" answered by `installed` (the daemon table has asked already).
pub fn mode_with(state: &AppState, program: &str, installed: impl FnOnce(&str) -> bool) -> Mode {
    use os4x::web_settings::Control;
    let unit = pidstore::systemd::unit_for(program);
    match (state.config.web.control, unit) {
        (Control::Direct, _) | (_, None) => Mode::Direct,
        (Control::Systemd, Some(u)) => Mode::Systemd(u),
        (Control::Auto, Some(u)) if installed(&u) => Mode::Systemd(u),
        (Control::Auto, Some(_)) => Mode::Direct,
    }
}

/// Performs `action` on `program` for `user`. Blocking: child processes,
/// polling the PID table.
pub fn perform(
    state: &AppState,
    program: &str,
    action: Action,
    user: &str,
) -> Result<Outcome, ApiError> {
    if program == state.own_program {
        return Err(ApiError::conflict(
            "os4x-web does not start or stop itself; use systemctl or the shell",
        ));
    }
    if !is_daemon(program) {
        return Err(ApiError::not_found(format!(
            "{program:?} is not an os4x daemon os4x-web can control"
        )));
    }
    let mode = mode_for(state, program);
    tracing::info!(target: "os4x_web::audit", user, program, action = action.as_str(), mode = mode.label(), "daemon action requested");
    let result = match &mode {
        Mode::Systemd(unit) => systemd_action(state, program, unit, action),
        Mode::Direct => direct_action(state, program, action),
    };
    match &result {
        Ok(message) => {
            tracing::info!(target: "os4x_web::audit", user, program, action = action.as_str(), mode = mode.label(), result = %message, "daemon action done")
        }
        Err(e) => {
            tracing::warn!(target: "os4x_web::audit", user, program, action = action.as_str(), mode = mode.label(), error = %e.message, "daemon action failed")
        }
    }
    let message = result?;
    let pid = running_pid(state, program).ok().flatten();
    Ok(Outcome {
        program: program.to_owned(),
        action,
        mode: mode.label(),
        unit: match mode {
            Mode::Systemd(u) => Some(u),
            Mode::Direct => None,
        },
        pid,
        message,
    })
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("PID table: {e}"))
}

/// The program's PID entry and what it means now.
fn liveness(state: &AppState, program: &str) -> Result<(Option<i32>, Liveness), ApiError> {
    let cfg = &state.config;
    let Some(store) = PidStore::open_existing(&cfg.database).map_err(store_error)? else {
        return Ok((None, Liveness::Stopped));
    };
    let Some(record) = store.record(program, cfg.server_id).map_err(store_error)? else {
        return Ok((None, Liveness::Stopped));
    };
    let boot = pidstore::process::boot_id().map_err(store_error)?;
    let l = pidstore::assess(&record, &boot).map_err(store_error)?;
    Ok((record.pid, l))
}

/// The PID of the running, genuine process of `program`, if any.
pub fn running_pid(state: &AppState, program: &str) -> Result<Option<i32>, ApiError> {
    Ok(match liveness(state, program)? {
        (_, Liveness::Running(p)) => Some(p.pid),
        _ => None,
    })
}

// ----------------------------------------------------------------------
// systemd

fn systemd_action(
    state: &AppState,
    program: &str,
    unit: &str,
    action: Action,
) -> Result<String, ApiError> {
    let verb = match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
        Action::StartForced => {
            // The unit's start takes a stale entry over by itself; a
            // forced start also clears a live one (the process stays).
            let cfg = &state.config;
            let mut store = PidStore::open(&cfg.database).map_err(store_error)?;
            let r = store
                .reset(program, cfg.server_id, true, &cfg.tmp_dir)
                .map_err(store_error)?;
            tracing::warn!(program, previous = %r.previous, pid = ?r.previous_pid, "PID entry cleared for a forced start");
            "start"
        }
    };
    systemctl(&state.config.web.systemctl, verb, unit)?;
    Ok(format!("systemctl {verb} {unit}: done"))
}

fn systemctl(command: &[String], verb: &str, unit: &str) -> Result<(), ApiError> {
    let (exe, prefix) = command
        .split_first()
        .ok_or_else(|| ApiError::internal("[web] systemctl is empty"))?;
    let out = Command::new(exe)
        .args(prefix)
        .arg(verb)
        .arg(unit)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ApiError::internal(format!("cannot run {exe}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(ApiError::conflict(format!(
        "systemctl {verb} {unit} failed ({}): {err}{}",
        out.status,
        if err.contains("Access denied") || err.contains("authentication") {
            "; install packaging/polkit/49-os4x-web.rules (or the sudoers drop-in) so the os4x user may manage os4x units"
        } else {
            ""
        }
    )))
}

// ----------------------------------------------------------------------
// Direct control

fn direct_action(state: &AppState, program: &str, action: Action) -> Result<String, ApiError> {
    match action {
        Action::Start => direct_start(state, program, false),
        Action::StartForced => direct_start(state, program, true),
        Action::Stop => direct_stop(state, program),
        Action::Restart => {
            let stopped = direct_stop(state, program)?;
            let started = direct_start(state, program, false)?;
            Ok(format!("{stopped}; {started}"))
        }
    }
}

/// The daemon's binary in the daemon directory.
fn binary(state: &AppState, program: &str) -> Result<PathBuf, ApiError> {
    if program.starts_with("os4xrd_capi_") {
        return Err(ApiError::conflict(format!(
            "{program} is started through its systemd unit (os4xrd-capi@N.service) only"
        )));
    }
    let exe = state.daemon_dir.join(program);
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(ApiError::conflict(format!(
            "no daemon binary {}; install it there or set [web] daemon_dir",
            exe.display()
        )))
    }
}

/// The log file a directly started daemon writes its stderr to.
pub fn log_path(state: &AppState, program: &str) -> PathBuf {
    state
        .config
        .state_dir
        .join("log")
        .join(format!("{program}.log"))
}

/// The end of `path` from `offset` on, at most 2 KiB, for messages.
fn tail(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let from = offset.max(len.saturating_sub(2048));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut buf = Vec::new();
            let _ = f.take(2048).read_to_end(&mut buf);
            text = String::from_utf8_lossy(&buf).trim().to_owned();
        }
    }
    text
}

fn direct_start(state: &AppState, program: &str, force: bool) -> Result<String, ApiError> {
    let exe = binary(state, program)?;
    let log_file = log_path(state, program);
    if let Some(dir) = log_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .map_err(|e| ApiError::internal(format!("cannot open {}: {e}", log_file.display())))?;
    let offset = log.metadata().map_or(0, |m| m.len());
    let log2 = log
        .try_clone()
        .map_err(|e| ApiError::internal(format!("log file: {e}")))?;
    let mut cmd = Command::new(&exe);
    if let Some(src) = &state.config.source {
        cmd.arg("--config").arg(src);
    }
    if force {
        cmd.arg("-f");
    }
    // What systemd gave os4x-web is not the daemon's: with INVOCATION_ID
    // it would believe systemd started it, with NOTIFY_SOCKET it would
    // report to our unit.
    for var in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the
    // parent; it detaches the daemon from os4x-web's session, so it
    // outlives os4x-web and gets no signals meant for it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot run {}: {e}", exe.display())))?;
    let pid = i32::try_from(child.id()).unwrap_or(-1);
    tracing::info!(program, pid, force, exe = %exe.display(), log = %log_file.display(), "daemon started");
    let deadline = Instant::now() + START_TIMEOUT;
    let mut up_since: Option<Instant> = None;
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(ApiError::conflict(format!(
                "{program} exited at once ({status}); its log {} says:\n{}",
                log_file.display(),
                tail(&log_file, offset)
            )));
        }
        let registered =
            matches!(liveness(state, program)?, (_, Liveness::Running(p)) if p.pid == pid);
        match (registered, up_since) {
            (true, None) => up_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= SETTLE => {
                break Ok(format!(
                    "{program} started{}, pid {pid}",
                    if force { " (forced)" } else { "" }
                ))
            }
            (false, _) => up_since = None,
            _ => {}
        }
        if Instant::now() >= deadline {
            break Err(ApiError::conflict(format!(
                "{program} (pid {pid}) did not register in the PID table within {} s; see {}",
                START_TIMEOUT.as_secs(),
                log_file.display()
            )));
        }
        std::thread::sleep(POLL);
    };
    // The daemon is our child: reap it when it ends, and say how it did.
    let name = program.to_owned();
    let _ = std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || match child.wait() {
            Ok(status) => tracing::info!(program = name, pid, %status, "daemon exited"),
            Err(e) => tracing::warn!(program = name, pid, error = %e, "cannot wait for daemon"),
        });
    result
}

fn direct_stop(state: &AppState, program: &str) -> Result<String, ApiError> {
    let (recorded, l) = liveness(state, program)?;
    let pid = match l {
        Liveness::Running(p) => p.pid,
        // A stale entry names no process of ours: never signal it (the
        // PID may belong to something else now).
        other => {
            return Ok(format!(
                "{program} was not running ({other}{})",
                recorded.map(|p| format!(", pid {p}")).unwrap_or_default()
            ))
        }
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM).map_err(
        |e| ApiError::conflict(format!("cannot send SIGTERM to {program} (pid {pid}): {e}")),
    )?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match liveness(state, program)? {
            (_, Liveness::Running(p)) if p.pid == pid => {}
            _ => return Ok(format!("{program} (pid {pid}) stopped")),
        }
        if Instant::now() >= deadline {
            return Err(ApiError::conflict(format!(
                "{program} (pid {pid}) got SIGTERM but still runs after {} s",
                STOP_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_daemon_names() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert!("kill".parse::<Action>().is_err());
        assert!(is_daemon("os4xdebugd"));
        assert!(is_daemon("os4xrd_capi_2"));
        assert!(!is_daemon("os4xrd_capi_"));
        assert!(!is_daemon("os4x-pidctl"));
        assert!(!is_daemon("../bin/sh"));
    }
}
