//! The logic behind `os4x-pidctl`: status rows (human table and the stable
//! JSON document) and the monitoring check's verdict. The binary only parses
//! arguments and prints.

use std::fmt::Write as _;
use std::time::Duration;

use pidstore::systemd::{self, Agreement, UnitState};
use pidstore::{Listening, Liveness, PidFileState, ProgramName, ProgramStatus, Refusal, Staleness};
use serde::Serialize;

/// Version of the `status --json` document. Bumped only for incompatible
/// changes; fields may be added within a version.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// `os4x-pidctl status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDocument {
    pub schema_version: u32,
    pub server_id: u32,
    /// Database file (SQLite).
    pub database: String,
    /// False when the database does not exist yet (nothing ever started).
    pub database_exists: bool,
    pub programs: Vec<ProgramJson>,
}

/// One program in [`StatusDocument`].
#[derive(Debug, Serialize)]
pub struct ProgramJson {
    pub program: String,
    pub server_id: u32,
    /// Recorded PID; `null` when the table says -1 or has no row.
    pub pid: Option<i32>,
    /// `running`, `stopped`, `stale_no_process` or `stale_pid_reused`.
    pub state: &'static str,
    /// The state as the human table shows it.
    pub state_text: String,
    /// For `stale_pid_reused`: the program now holding the PID.
    pub reused_by: Option<String>,
    /// Listed in `required_daemons`.
    pub required: bool,
    pub pid_file: PidFileJson,
    /// Listening TCP sockets (`"127.0.0.1:10001"`, `"[::]:3305"`) when
    /// running; `null` when not running or unreadable (see `listening_error`).
    pub listening: Option<Vec<String>>,
    pub listening_error: Option<String>,
    /// For a running `os4xrd_capi_<n>`: its ISDN controller's state
    /// (instead of listening sockets); `null` otherwise.
    pub isdn: Option<crate::isdn::state::ControllerState>,
    /// Seconds since the process started, when running.
    pub uptime_seconds: Option<u64>,
    /// Program name of the recorded process (argv\[0\] base name).
    pub executable: Option<String>,
    /// Unix time the row was last written.
    pub written_at: Option<i64>,
    /// systemd `INVOCATION_ID` of the run that wrote the row.
    pub invocation_id: Option<String>,
    /// systemd's view, when systemd is the service manager and the program
    /// has a unit; `null` otherwise.
    pub systemd: Option<SystemdJson>,
}

/// The systemd part of [`ProgramJson`].
#[derive(Debug, Serialize)]
pub struct SystemdJson {
    pub unit: String,
    /// `loaded`, `not-found`, …; `null` when systemd could not be asked
    /// (then `error` says why).
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub main_pid: Option<i32>,
    pub invocation_id: Option<String>,
    /// `agree`, `stale_entry` (harmless: the unit's next start takes it
    /// over) or `disagree` (see `disagreement`); `null` when unknown.
    pub agreement: Option<&'static str>,
    pub disagreement: Option<String>,
    pub error: Option<String>,
}

/// systemd's view of one program (see [`systemd_views`]).
#[derive(Debug, Clone)]
pub struct SystemdRow {
    pub unit: String,
    /// What `systemctl show` said, or why it could not be asked.
    pub state: Result<UnitState, String>,
    /// `None` when the state is unknown or the unit is not installed.
    pub agreement: Option<Agreement>,
}

/// systemd's view of each row (same order), or `None` when systemd is not
/// the service manager here. Programs without a unit get `None`.
pub fn systemd_views(rows: &[ProgramStatus]) -> Option<Vec<Option<SystemdRow>>> {
    if !systemd::booted() {
        return None;
    }
    Some(rows.iter().map(systemd_view).collect())
}

/// systemd's view of one program; `None` when it has no unit.
pub fn systemd_view(row: &ProgramStatus) -> Option<SystemdRow> {
    let unit = systemd::unit_for(&row.program)?;
    let state = match systemd::query(&unit) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err("systemd is not running".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let agreement = match &state {
        Ok(s) if s.is_installed() => Some(systemd::compare(&row.liveness, row.record.as_ref(), s)),
        _ => None,
    };
    Some(SystemdRow {
        unit,
        state,
        agreement,
    })
}

/// Adds systemd's view to a status document built by [`status_document`]
/// (`views` as returned by [`systemd_views`], same order as its rows).
pub fn attach_systemd(doc: &mut StatusDocument, views: &[Option<SystemdRow>]) {
    for (p, v) in doc.programs.iter_mut().zip(views) {
        p.systemd = v.as_ref().map(|v| {
            let ok = v.state.as_ref().ok();
            SystemdJson {
                unit: v.unit.clone(),
                load_state: ok.map(|s| s.load_state.clone()),
                active_state: ok.map(|s| s.active_state.clone()),
                sub_state: ok.map(|s| s.sub_state.clone()),
                main_pid: ok.and_then(|s| s.main_pid),
                invocation_id: ok.and_then(|s| s.invocation_id.clone()),
                agreement: v.agreement.as_ref().map(|a| match a {
                    Agreement::Agree => "agree",
                    Agreement::StaleEntry => "stale_entry",
                    Agreement::Disagree(_) => "disagree",
                }),
                disagreement: match &v.agreement {
                    Some(Agreement::Disagree(t)) => Some(t.clone()),
                    _ => None,
                },
                error: v.state.as_ref().err().cloned(),
            }
        });
    }
}

/// Lines under the status table for what systemd and the table disagree
/// on, and what to do about it.
pub fn systemd_notes(rows: &[ProgramStatus], views: &[Option<SystemdRow>]) -> String {
    let mut out = String::new();
    for (row, view) in rows.iter().zip(views) {
        let Some(v) = view else { continue };
        match (&v.agreement, &v.state) {
            (Some(Agreement::Disagree(t)), _) => {
                let _ = writeln!(out, "! {}: {t}", row.program);
            }
            (Some(Agreement::StaleEntry), _) => {
                let _ = writeln!(
                    out,
                    "  {}: stale entry; `systemctl start {}` takes it over (no reset needed)",
                    row.program, v.unit
                );
            }
            (_, Err(e)) => {
                let _ = writeln!(
                    out,
                    "? {}: cannot ask systemd about {}: {e}",
                    row.program, v.unit
                );
            }
            _ => {}
        }
    }
    out
}

/// What a refused start adds to the refusal message when systemd is
/// involved, on either side: `own_invocation` is this start's
/// `INVOCATION_ID` (set when systemd started it), the refusal carries the
/// running process's. `None` when neither was started by systemd.
pub fn refusal_systemd_hint(r: &Refusal, own_invocation: Option<&str>) -> Option<String> {
    let unit = systemd::unit_for(r.program.as_str())
        .unwrap_or_else(|| format!("the unit of {}", r.program));
    let pid = r.pid;
    match (own_invocation, r.invocation_id.as_deref()) {
        (Some(_), None) => Some(format!(
            "systemd: {unit} is refused because process {pid} ({exe}) was started by hand, \
             outside systemd, and os4x never runs two {program}.\n\
             Stop that process (`kill {pid}`), then `systemctl start {unit}`. \
             Do not use -f: that would run two daemons.\n",
            exe = r.executable,
            program = r.program,
        )),
        (Some(_), Some(other)) => Some(format!(
            "systemd: {unit} is refused because process {pid} ({exe}) runs under another \
             systemd invocation ({other}); see `systemctl status {pid}` and stop that unit first.\n",
            exe = r.executable,
        )),
        (None, Some(_)) => Some(format!(
            "Process {pid} is run by systemd ({unit}): use `systemctl restart {unit}` or \
             `systemctl stop {unit}` instead of starting {program} by hand.\n",
            program = r.program,
        )),
        (None, None) => None,
    }
}

/// The PID file part of [`ProgramJson`].
#[derive(Debug, Serialize)]
pub struct PidFileJson {
    pub path: Option<String>,
    /// `present` (holds the recorded PID), `absent`, or `mismatch`.
    pub state: String,
    /// PID found in the file, if it holds one.
    pub pid: Option<i32>,
}

fn state_key(l: &Liveness) -> &'static str {
    match l {
        Liveness::Running(_) => "running",
        Liveness::Stopped => "stopped",
        Liveness::Stale(Staleness::NoProcess) => "stale_no_process",
        Liveness::Stale(Staleness::PidReused { .. }) => "stale_pid_reused",
    }
}

/// Builds the JSON document.
pub fn status_document(
    server_id: u32,
    database: &os4x_store::Location,
    database_exists: bool,
    rows: &[ProgramStatus],
    required: &[ProgramName],
) -> StatusDocument {
    let programs = rows
        .iter()
        .map(|s| {
            let record = s.record.as_ref();
            let (listening, listening_error) = match &s.listening {
                Listening::NotApplicable => (None, None),
                Listening::Sockets(v) => (Some(v.iter().map(ToString::to_string).collect()), None),
                Listening::Unknown(e) => (None, Some(e.clone())),
            };
            ProgramJson {
                program: s.program.clone(),
                server_id: s.server_id,
                pid: record.and_then(|r| r.pid),
                state: state_key(&s.liveness),
                state_text: s.liveness.to_string(),
                reused_by: match &s.liveness {
                    Liveness::Stale(Staleness::PidReused { by }) => Some(by.clone()),
                    _ => None,
                },
                required: required.iter().any(|r| r.as_str() == s.program),
                pid_file: PidFileJson {
                    path: s.pid_file_path.as_ref().map(|p| p.display().to_string()),
                    state: s.pid_file.to_string(),
                    pid: match s.pid_file_content {
                        pidstore::pid_file::Content::Pid(p) => Some(p),
                        _ => None,
                    },
                },
                listening,
                listening_error,
                isdn: isdn_state(s),
                uptime_seconds: s.uptime.map(|u| u.as_secs()),
                executable: record.and_then(|r| r.executable.clone()),
                written_at: record.and_then(|r| r.written_at),
                invocation_id: record.and_then(|r| r.invocation_id.clone()),
                systemd: None,
            }
        })
        .collect();
    StatusDocument {
        schema_version: JSON_SCHEMA_VERSION,
        server_id,
        // The file path, as before servers were supported; a server's URL
        // without its password.
        database: database.describe(),
        database_exists,
        programs,
    }
}

/// `3d04h`, `2h03m`, `5m07s`, `42s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else if hours > 0 {
        format!("{hours}h{mins:02}m")
    } else if mins > 0 {
        format!("{mins}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// The controller state a running CAPI daemon published beside its PID file.
fn isdn_state(s: &ProgramStatus) -> Option<crate::isdn::state::ControllerState> {
    if !matches!(s.liveness, Liveness::Running(_)) {
        return None;
    }
    crate::isdn::state::read_beside(s.pid_file_path.as_deref()?, &s.program)
}

fn listening_text(l: &Listening) -> String {
    match l {
        Listening::NotApplicable => "-".into(),
        Listening::Sockets(v) if v.is_empty() => "none".into(),
        Listening::Sockets(v) => v
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        Listening::Unknown(_) => "? (needs root or the service user)".into(),
    }
}

/// The human table of `os4x-pidctl status`.
pub fn status_table(rows: &[ProgramStatus]) -> String {
    status_table_with_systemd(rows, None)
}

/// The human table with, when `views` is given (systemd is the service
/// manager), two more columns: UNIT and SYSTEMD (its ActiveState, SubState
/// and MainPID), followed by [`systemd_notes`].
pub fn status_table_with_systemd(
    rows: &[ProgramStatus],
    views: Option<&[Option<SystemdRow>]>,
) -> String {
    let mut header = vec![
        "PROGRAM",
        "SERVERID",
        "PID",
        "STATE",
        "PIDFILE",
        "UPTIME",
        "LISTENING",
    ];
    if views.is_some() {
        header.extend(["UNIT", "SYSTEMD"]);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = vec![
                s.program.clone(),
                s.server_id.to_string(),
                s.record
                    .as_ref()
                    .and_then(|r| r.pid)
                    .map_or_else(|| "-1".into(), |p| p.to_string()),
                s.liveness.to_string(),
                s.pid_file.to_string(),
                s.uptime.map_or_else(|| "-".into(), format_duration),
                isdn_state(s).map_or_else(|| listening_text(&s.listening), |i| i.summary()),
            ];
            if let Some(views) = views {
                match views.get(i).and_then(Option::as_ref) {
                    Some(v) => {
                        row.push(v.unit.clone());
                        let mut text = match &v.state {
                            Ok(st) => st.to_string(),
                            Err(_) => "?".to_owned(),
                        };
                        if let Some(Agreement::Disagree(_)) = v.agreement {
                            text.push_str(" !");
                        }
                        row.push(text);
                    }
                    None => row.extend(["-".to_owned(), "-".to_owned()]),
                }
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
            if i + 1 == cols.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if let Some(views) = views {
        out.push_str(&systemd_notes(rows, views));
    }
    out
}

/// Nagios/Icinga plugin states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckState {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl CheckState {
    pub fn label(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }

    /// The plugin's exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Verdict of `os4x-pidctl check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub state: CheckState,
    /// The whole plugin output: status line with perfdata, then details.
    pub output: String,
}

/// Evaluates the status rows: CRITICAL if a required daemon is not
/// running; WARNING if a running required daemon's PID file disagrees, or a
/// non-required program has a stale entry; OK otherwise.
pub fn check(rows: &[ProgramStatus], required: &[ProgramName]) -> CheckResult {
    check_with_systemd(rows, required, None)
}

/// [`check`], plus WARNING for every program on which systemd and the
/// table disagree (`views` from [`systemd_views`]).
pub fn check_with_systemd(
    rows: &[ProgramStatus],
    required: &[ProgramName],
    views: Option<&[Option<SystemdRow>]>,
) -> CheckResult {
    let is_required = |p: &str| required.iter().any(|r| r.as_str() == p);
    let mut critical = Vec::new();
    let mut warning = Vec::new();
    let mut running = 0;
    for s in rows {
        let pid = s.record.as_ref().and_then(|r| r.pid);
        let what = match (&s.liveness, pid) {
            (Liveness::Stale(_), Some(pid)) => format!("{}: {} (pid {pid})", s.program, s.liveness),
            _ => format!("{}: {}", s.program, s.liveness),
        };
        match (&s.liveness, is_required(&s.program)) {
            (Liveness::Running(_), true) => {
                running += 1;
                if s.pid_file != PidFileState::Present {
                    warning.push(format!("{}: PID file {}", s.program, s.pid_file));
                }
            }
            (_, true) => critical.push(what),
            (Liveness::Stale(_), false) => warning.push(what),
            _ => {}
        }
    }
    // A capi daemon can run while its controller is unreachable (router
    // off, device gone): no call can come in, which the PID alone hides.
    for s in rows {
        if !matches!(s.liveness, Liveness::Running(_)) {
            continue;
        }
        if let Some(i) = isdn_state(s).filter(|i| i.state == "down") {
            warning.push(format!(
                "{}: ISDN controller {} down{}",
                s.program,
                i.capi_controller,
                i.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
    }
    for (s, v) in rows.iter().zip(views.unwrap_or_default()) {
        if let Some(SystemdRow {
            agreement: Some(Agreement::Disagree(t)),
            ..
        }) = v
        {
            warning.push(format!("{}: {t}", s.program));
        }
    }
    let (state, summary) = if !critical.is_empty() {
        (CheckState::Critical, critical.join(", "))
    } else if !warning.is_empty() {
        (CheckState::Warning, warning.join(", "))
    } else {
        (
            CheckState::Ok,
            format!("{running} of {} required daemons running", required.len()),
        )
    };
    let mut output = format!(
        "OS4X {} - {summary} | running={running};;;0;{}\n",
        state.label(),
        required.len()
    );
    for s in rows {
        let pid = s
            .record
            .as_ref()
            .and_then(|r| r.pid)
            .map_or_else(|| "-1".into(), |p| p.to_string());
        let _ = write!(
            output,
            "{}{}: {}, pid {pid}, PID file {}",
            s.program,
            if is_required(&s.program) {
                " (required)"
            } else {
                ""
            },
            s.liveness,
            s.pid_file
        );
        if let Some(u) = s.uptime {
            let _ = write!(output, ", up {}", format_duration(u));
        }
        if let Some(i) = isdn_state(s) {
            let _ = write!(output, ", {}", i.summary());
        } else if let Listening::Sockets(_) = s.listening {
            let _ = write!(output, ", listening {}", listening_text(&s.listening));
        }
        output.push('\n');
    }
    CheckResult { state, output }
}

/// Adds certificate expiry to a check: CRITICAL for an expired
/// certificate, WARNING for one that expires within 30 days or cannot be
/// read, each named in the status line and the details.
pub fn with_certificates(
    result: CheckResult,
    expiring: &[crate::security::Expiry],
    problems: &[String],
) -> CheckResult {
    let mut critical = Vec::new();
    let mut warning = Vec::new();
    for e in expiring {
        match e.remaining {
            None => critical.push(format!("{} certificate {} has expired", e.owner, e.subject)),
            Some(left) => warning.push(format!(
                "{} certificate {} expires in {}",
                e.owner,
                e.subject,
                format_duration(left)
            )),
        }
    }
    warning.extend(
        problems
            .iter()
            .map(|p| format!("certificate unusable: {p}")),
    );
    let cert_state = if !critical.is_empty() {
        CheckState::Critical
    } else if !warning.is_empty() {
        CheckState::Warning
    } else {
        return result;
    };
    let texts: Vec<String> = critical.into_iter().chain(warning).collect();
    let (first, rest) = result
        .output
        .split_once('\n')
        .unwrap_or((result.output.as_str(), ""));
    let (status, perf) = first.split_once(" | ").unwrap_or((first, ""));
    let summary = status.split_once(" - ").map_or("", |(_, s)| s);
    let state = result.state.max(cert_state);
    let summary = if result.state == CheckState::Ok {
        texts.join(", ")
    } else {
        format!("{summary}, {}", texts.join(", "))
    };
    let mut output = format!("OS4X {} - {summary}", state.label());
    if !perf.is_empty() {
        let _ = write!(output, " | {perf}");
    }
    output.push('\n');
    output.push_str(rest);
    for t in &texts {
        let _ = writeln!(output, "{t}");
    }
    CheckResult { state, output }
}

// ----------------------------------------------------------------------
// `status --all`: every node sharing the database.

/// One program row of `status --all`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterProgram {
    pub server_id: u32,
    pub host: String,
    pub program: String,
    pub pid: Option<i32>,
    /// `running`, `stopped`, `stale_no_process`, `stale_pid_reused` for
    /// this host (checked against its processes); for other hosts
    /// `recorded` (node alive) or `node_silent`.
    pub state: &'static str,
    pub state_text: String,
    /// On this host (the state was checked here).
    pub local: bool,
}

/// One node row of `status --all`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterNode {
    pub server_id: u32,
    pub host: String,
    pub version: Option<String>,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub heartbeat_age_seconds: i64,
    /// Heartbeat younger than three heartbeat intervals (or a lease).
    pub alive: bool,
}

/// `os4x-pidctl status --all --json`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterDocument {
    pub schema_version: u32,
    pub database: String,
    pub this_host: String,
    pub nodes: Vec<ClusterNode>,
    pub programs: Vec<ClusterProgram>,
}

/// Every node and every recorded program. Rows of this host are checked
/// against its processes; others are judged by their node's heartbeat
/// (`stale_after` seconds).
pub fn cluster_view(
    database: &os4x_store::Location,
    this_host: &str,
    boot: &str,
    nodes: &[pidstore::nodes::Node],
    records: &[pidstore::Record],
    stale_after: i64,
) -> ClusterDocument {
    let nodes: Vec<ClusterNode> = nodes
        .iter()
        .map(|n| ClusterNode {
            server_id: n.server_id,
            host: n.host.clone(),
            version: n.version.clone(),
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
            heartbeat_age_seconds: n.age,
            alive: n.age < stale_after,
        })
        .collect();
    let programs = records
        .iter()
        .map(|r| {
            let local = r.host.is_empty() || r.host == this_host;
            let host = if r.host.is_empty() {
                this_host.to_owned()
            } else {
                r.host.clone()
            };
            let (state, state_text) = if local {
                match pidstore::assess(r, boot) {
                    Ok(l) => (state_key(&l), l.to_string()),
                    Err(e) => ("unknown", format!("cannot check: {e}")),
                }
            } else if r.pid.is_none() {
                ("stopped", "stopped".to_owned())
            } else {
                let node = nodes.iter().find(|n| n.server_id == r.server_id && n.host == r.host);
                match node {
                    Some(n) if n.alive => (
                        "recorded",
                        format!(
                            "recorded on {} (node heartbeat {} ago)",
                            r.host,
                            format_duration(Duration::from_secs(n.heartbeat_age_seconds.max(0) as u64))
                        ),
                    ),
                    Some(n) => (
                        "node_silent",
                        format!(
                            "node silent for {}: probably gone; its leases run out and other nodes take its work over",
                            format_duration(Duration::from_secs(n.heartbeat_age_seconds.max(0) as u64))
                        ),
                    ),
                    None => ("node_silent", "no heartbeat recorded for its node".to_owned()),
                }
            };
            ClusterProgram {
                server_id: r.server_id,
                host,
                program: r.program.clone(),
                pid: r.pid,
                state,
                state_text,
                local,
            }
        })
        .collect();
    ClusterDocument {
        schema_version: JSON_SCHEMA_VERSION,
        database: database.describe(),
        this_host: this_host.to_owned(),
        nodes,
        programs,
    }
}

/// The `status --all` table: nodes, then programs.
pub fn cluster_table(doc: &ClusterDocument) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<9} {:<20} {:<10} {:<10} {}\n",
        "SERVERID", "HOST", "HEARTBEAT", "VERSION", "STATE"
    ));
    for n in &doc.nodes {
        let age = format_duration(Duration::from_secs(n.heartbeat_age_seconds.max(0) as u64));
        out.push_str(&format!(
            "{:<9} {:<20} {:<10} {:<10} {}\n",
            n.server_id,
            n.host,
            format!("{age} ago"),
            n.version.as_deref().unwrap_or("-"),
            if n.alive { "alive" } else { "silent" }
        ));
    }
    if doc.nodes.is_empty() {
        out.push_str("(no node has registered yet)\n");
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<9} {:<20} {:<18} {:<8} {}\n",
        "SERVERID", "HOST", "PROGRAM", "PID", "STATE"
    ));
    for p in &doc.programs {
        out.push_str(&format!(
            "{:<9} {:<20} {:<18} {:<8} {}\n",
            p.server_id,
            p.host,
            p.program,
            p.pid.map_or("-1".to_owned(), |p| p.to_string()),
            p.state_text
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pidstore::process::ProcessInfo;
    use pidstore::{pid_file::Content, Record};

    fn row(program: &str, liveness: Liveness, pid_file: PidFileState) -> ProgramStatus {
        let pid = match &liveness {
            Liveness::Stopped => None,
            _ => Some(4711),
        };
        ProgramStatus {
            program: program.into(),
            server_id: 0,
            record: Some(Record {
                program: program.into(),
                server_id: 0,
                host: "node-a".into(),
                pid,
                start_ticks: Some(1),
                boot_id: None,
                executable: Some(program.into()),
                written_at: Some(0),
                invocation_id: None,
            }),
            liveness,
            pid_file_path: None,
            pid_file,
            pid_file_content: Content::Missing,
            listening: Listening::NotApplicable,
            uptime: Some(Duration::from_secs(3725)),
        }
    }

    fn running(program: &str) -> Liveness {
        Liveness::Running(ProcessInfo {
            pid: 4711,
            start_ticks: 1,
            state: 'S',
            name: program.into(),
        })
    }

    fn names(n: &[&str]) -> Vec<ProgramName> {
        n.iter().map(|s| ProgramName::new(*s).unwrap()).collect()
    }

    #[test]
    fn check_states() {
        let req = names(&["os4xsqd", "os4xrd_tcpip"]);
        let ok = [
            row(
                "os4xrd_tcpip",
                running("os4xrd_tcpip"),
                PidFileState::Present,
            ),
            row("os4xsqd", running("os4xsqd"), PidFileState::Present),
            row("os4xdebugd", Liveness::Stopped, PidFileState::Absent),
        ];
        let r = check(&ok, &req);
        assert_eq!(r.state, CheckState::Ok, "{}", r.output);
        assert!(r
            .output
            .starts_with("OS4X OK - 2 of 2 required daemons running | running=2;;;0;2\n"));

        let mut warn = ok.clone();
        warn[1].pid_file = PidFileState::Absent;
        warn[2].liveness = Liveness::Stale(Staleness::NoProcess);
        let r = check(&warn, &req);
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert!(r.output.contains("os4xsqd: PID file absent"));
        assert!(r.output.contains("os4xdebugd: stale: no process"));

        let mut crit = warn.clone();
        crit[0].liveness = Liveness::Stale(Staleness::PidReused { by: "sleep".into() });
        let r = check(&crit, &req);
        assert_eq!(r.state, CheckState::Critical);
        assert!(
            r.output
                .starts_with("OS4X CRITICAL - os4xrd_tcpip: stale: pid reused by sleep (pid 4711)"),
            "{}",
            r.output
        );
        assert_eq!(r.state.code(), 2);
    }

    #[test]
    fn systemd_columns_notes_and_warnings() {
        let rows = [
            row(
                "os4xrd_tcpip",
                running("os4xrd_tcpip"),
                PidFileState::Present,
            ),
            row(
                "os4xsqd",
                Liveness::Stale(Staleness::NoProcess),
                PidFileState::Present,
            ),
        ];
        let unit = |name: &str, show: &str| UnitState::parse(name, show);
        let up = unit(
            "os4xrd-tcpip.service",
            "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=99\n",
        );
        let down = unit(
            "os4xsqd.service",
            "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\n",
        );
        let views = [
            Some(SystemdRow {
                unit: up.unit.clone(),
                agreement: Some(systemd::compare(&rows[0].liveness, None, &up)),
                state: Ok(up),
            }),
            Some(SystemdRow {
                unit: down.unit.clone(),
                agreement: Some(systemd::compare(&rows[1].liveness, None, &down)),
                state: Ok(down),
            }),
        ];
        let t = status_table_with_systemd(&rows, Some(&views));
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].ends_with("UNIT                  SYSTEMD"), "{t}");
        assert!(
            lines[1].ends_with("os4xrd-tcpip.service  active (running) pid 99 !"),
            "{t}"
        );
        assert!(
            lines[2].ends_with("os4xsqd.service       failed (failed)"),
            "{t}"
        );
        assert!(t.contains("! os4xrd_tcpip: systemd's os4xrd-tcpip.service has MainPID 99, but the table records pid 4711"), "{t}");
        assert!(
            t.contains("  os4xsqd: stale entry; `systemctl start os4xsqd.service` takes it over"),
            "{t}"
        );

        let r = check_with_systemd(&rows, &names(&["os4xrd_tcpip"]), Some(&views));
        assert_eq!(r.state, CheckState::Warning, "{}", r.output);
        assert!(r
            .output
            .contains("os4xrd_tcpip: systemd's os4xrd-tcpip.service has MainPID 99"));

        let mut doc = status_document(
            0,
            &os4x_store::Location::Sqlite("/x.db".into()),
            true,
            &rows,
            &[],
        );
        attach_systemd(&mut doc, &views);
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["programs"][0]["systemd"]["main_pid"], 99);
        assert_eq!(v["programs"][0]["systemd"]["agreement"], "disagree");
        assert_eq!(v["programs"][1]["systemd"]["agreement"], "stale_entry");
        assert_eq!(v["programs"][1]["systemd"]["active_state"], "failed");
        // Without systemd: no columns, `systemd: null`.
        assert!(!status_table(&rows).contains("UNIT"));
        let plain = status_document(
            0,
            &os4x_store::Location::Sqlite("/x.db".into()),
            true,
            &rows,
            &[],
        );
        assert!(serde_json::to_value(&plain).unwrap()["programs"][0]["systemd"].is_null());
    }

    #[test]
    fn refusal_hints_name_the_unit_and_the_side_to_act_on() {
        let mut r = Refusal {
            program: ProgramName::new("os4xrd_tcpip").unwrap(),
            server_id: 0,
            pid: 4711,
            executable: "os4xrd_tcpip".into(),
            uptime: None,
            database: "/var/lib/os4x/os4x.db".into(),
            invocation_id: None,
        };
        assert_eq!(refusal_systemd_hint(&r, None), None);
        let by_hand = refusal_systemd_hint(&r, Some("abc")).unwrap();
        assert_eq!(
            by_hand,
            "systemd: os4xrd-tcpip.service is refused because process 4711 (os4xrd_tcpip) was \
             started by hand, outside systemd, and os4x never runs two os4xrd_tcpip.\n\
             Stop that process (`kill 4711`), then `systemctl start os4xrd-tcpip.service`. \
             Do not use -f: that would run two daemons.\n"
        );
        r.invocation_id = Some("def".into());
        let managed = refusal_systemd_hint(&r, None).unwrap();
        assert!(
            managed.contains("use `systemctl restart os4xrd-tcpip.service`"),
            "{managed}"
        );
        let other = refusal_systemd_hint(&r, Some("abc")).unwrap();
        assert!(
            other.contains("another systemd invocation (def)"),
            "{other}"
        );
    }

    #[test]
    fn certificates_raise_the_state_and_are_named() {
        use crate::security::Expiry;
        let ok = check(
            &[row("os4xsqd", running("os4xsqd"), PidFileState::Present)],
            &names(&["os4xsqd"]),
        );
        assert_eq!(ok.state, CheckState::Ok);
        let soon = Expiry {
            owner: "our".into(),
            subject: "CN=me".into(),
            remaining: Some(Duration::from_secs(3 * 86_400)),
        };
        let r = with_certificates(ok.clone(), std::slice::from_ref(&soon), &[]);
        assert_eq!(r.state, CheckState::Warning);
        assert!(
            r.output
                .starts_with("OS4X WARNING - our certificate CN=me expires in 3d00h | running=1"),
            "{}",
            r.output
        );
        let gone = Expiry {
            owner: "partner O0013000000P".into(),
            subject: "CN=p".into(),
            remaining: None,
        };
        let r = with_certificates(ok.clone(), &[soon, gone], &[]);
        assert_eq!(r.state, CheckState::Critical);
        assert!(r.output.starts_with(
            "OS4X CRITICAL - partner O0013000000P certificate CN=p has expired, our certificate"
        ));
        // Nothing to report: unchanged.
        assert_eq!(with_certificates(ok.clone(), &[], &[]), ok);
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(307)), "5m07s");
        assert_eq!(format_duration(Duration::from_secs(7380)), "2h03m");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d04h"
        );
    }

    #[test]
    fn table_and_json() {
        let rows = [
            row(
                "os4xrd_tcpip_tls",
                running("os4xrd_tcpip_tls"),
                PidFileState::Present,
            ),
            row(
                "os4xsqd",
                Liveness::Stale(Staleness::PidReused { by: "sleep".into() }),
                PidFileState::Mismatch,
            ),
        ];
        let t = status_table(&rows);
        let lines: Vec<_> = t.lines().collect();
        assert!(
            lines[0].starts_with("PROGRAM           SERVERID  PID   STATE"),
            "{t}"
        );
        assert!(lines[2].contains("stale: pid reused by sleep"), "{t}");
        let doc = status_document(
            0,
            &os4x_store::Location::Sqlite("/x.db".into()),
            true,
            &rows,
            &names(&["os4xsqd"]),
        );
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["programs"][1]["state"], "stale_pid_reused");
        assert_eq!(v["programs"][1]["reused_by"], "sleep");
        assert_eq!(v["programs"][1]["required"], true);
        assert_eq!(v["programs"][0]["required"], false);
        assert_eq!(v["programs"][0]["uptime_seconds"], 3725);
    }

    #[test]
    fn cluster_view_checks_local_rows_and_judges_others_by_heartbeat() {
        let node = |id: u32, host: &str, age: i64| pidstore::nodes::Node {
            server_id: id,
            host: host.into(),
            boot_id: None,
            version: Some("0.1.0".into()),
            started_at: 0,
            heartbeat_at: 100 - age,
            age,
        };
        let rec = |id: u32, host: &str, pid: Option<i32>| Record {
            program: "os4xsqd".into(),
            server_id: id,
            host: host.into(),
            pid,
            start_ticks: Some(1),
            boot_id: Some("boot".into()),
            executable: Some("os4xsqd".into()),
            written_at: Some(0),
            invocation_id: None,
        };
        let me = std::process::id() as i32;
        let mut local = rec(1, "alpha", Some(me));
        local.start_ticks = pidstore::process::ProcessInfo::current()
            .ok()
            .map(|p| p.start_ticks);
        local.executable = pidstore::process::ProcessInfo::current()
            .ok()
            .map(|p| p.name);
        let boot = pidstore::process::boot_id().unwrap();
        local.boot_id = Some(boot.clone());
        let doc = cluster_view(
            &os4x_store::Location::Sqlite("/x.db".into()),
            "alpha",
            &boot,
            &[
                node(1, "alpha", 2),
                node(2, "beta", 3),
                node(3, "gamma", 500),
            ],
            &[
                local,
                rec(2, "beta", Some(77)),
                rec(3, "gamma", Some(78)),
                rec(3, "gamma", None),
            ],
            30,
        );
        let states: Vec<_> = doc.programs.iter().map(|p| p.state).collect();
        assert_eq!(states, ["running", "recorded", "node_silent", "stopped"]);
        assert!(doc.programs[0].local && !doc.programs[1].local);
        assert_eq!(
            doc.nodes.iter().map(|n| n.alive).collect::<Vec<_>>(),
            [true, true, false]
        );
        let t = cluster_table(&doc);
        assert!(t.contains("beta"), "{t}");
        assert!(t.contains("silent"), "{t}");
        assert!(
            t.contains("recorded on beta (node heartbeat 3s ago)"),
            "{t}"
        );
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["nodes"][2]["alive"], false);
        assert_eq!(v["programs"][1]["host"], "beta");
    }
}
