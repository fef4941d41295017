//! The logic behind `os4x-pidctl`: status rows (human table and the stable
//! JSON document) and the monitoring check's verdict. The binary only parses
//! arguments and prints.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use pidstore::{Listening, Liveness, PidFileState, ProgramName, ProgramStatus, Staleness};
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
    /// Seconds since the process started, when running.
    pub uptime_seconds: Option<u64>,
    /// Program name of the recorded process (argv\[0\] base name).
    pub executable: Option<String>,
    /// Unix time the row was last written.
    pub written_at: Option<i64>,
    /// systemd `INVOCATION_ID` of the run that wrote the row.
    pub invocation_id: Option<String>,
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
    database: &Path,
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
                uptime_seconds: s.uptime.map(|u| u.as_secs()),
                executable: record.and_then(|r| r.executable.clone()),
                written_at: record.and_then(|r| r.written_at),
                invocation_id: record.and_then(|r| r.invocation_id.clone()),
            }
        })
        .collect();
    StatusDocument {
        schema_version: JSON_SCHEMA_VERSION,
        server_id,
        database: database.display().to_string(),
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
    let header = [
        "PROGRAM",
        "SERVERID",
        "PID",
        "STATE",
        "PIDFILE",
        "UPTIME",
        "LISTENING",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|s| {
            [
                s.program.clone(),
                s.server_id.to_string(),
                s.record
                    .as_ref()
                    .and_then(|r| r.pid)
                    .map_or_else(|| "-1".into(), |p| p.to_string()),
                s.liveness.to_string(),
                s.pid_file.to_string(),
                s.uptime.map_or_else(|| "-".into(), format_duration),
                listening_text(&s.listening),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
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
        line(&row.each_ref().map(String::as_str));
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
        if let Listening::Sockets(_) = s.listening {
            let _ = write!(output, ", listening {}", listening_text(&s.listening));
        }
        output.push('\n');
    }
    CheckResult { state, output }
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
        let doc = status_document(0, Path::new("/x.db"), true, &rows, &names(&["os4xsqd"]));
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["programs"][1]["state"], "stale_pid_reused");
        assert_eq!(v["programs"][1]["reused_by"], "sleep");
        assert_eq!(v["programs"][1]["required"], true);
        assert_eq!(v["programs"][0]["required"], false);
        assert_eq!(v["programs"][0]["uptime_seconds"], 3725);
    }
}
