//! systemd's view of a program, beside the table's.
//!
//! Under systemd the unit is the authority over which process runs a
//! program: its `MainPID` is the daemon, and a start takes over whatever
//! stale row a crash left. This module names the unit of each program,
//! asks systemd about it (`systemctl show`, which works wherever `systemctl`
//! does, without a D-Bus client library), and compares the two views so
//! `os4x-pidctl` can flag a disagreement such as a daemon started by hand
//! beside its unit.

use std::fmt;
use std::path::Path;
use std::process::Command;

use crate::{Liveness, Record};

/// The unit that runs `program` in the shipped unit files, if any.
///
/// `os4xrd` (the receive master for hosts without systemd) has none: under
/// systemd the socket units start the receive daemons themselves.
pub fn unit_for(program: &str) -> Option<String> {
    let unit = match program {
        "os4xrd_tcpip" => "os4xrd-tcpip.service".to_owned(),
        "os4xrd_tcpip_tls" => "os4xrd-tls.service".to_owned(),
        "os4xsqd" | "os4xclientd" | "os4xdebugd" | "os4x-web" => format!("{program}.service"),
        _ => {
            let n = program.strip_prefix("os4xrd_capi_")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            format!("os4xrd-capi@{n}.service")
        }
    };
    Some(unit)
}

/// True when systemd is the service manager of this system (PID 1), the
/// test `sd_booted(3)` makes.
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// What systemd says about one unit (`systemctl show`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub unit: String,
    /// `loaded`, `not-found`, `masked`, …
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, …
    pub active_state: String,
    /// `running`, `dead`, `auto-restart`, …
    pub sub_state: String,
    /// The main process; `None` when systemd reports 0.
    pub main_pid: Option<i32>,
    /// `InvocationID` of the current (or last) run; `None` when empty.
    pub invocation_id: Option<String>,
    /// Exit status of the main process's last run (`ExecMainStatus`).
    pub exec_main_status: Option<i32>,
}

/// The properties [`query`] asks for, in `systemctl show -p` syntax.
pub const PROPERTIES: &str =
    "Id,LoadState,ActiveState,SubState,MainPID,InvocationID,ExecMainStatus";

impl UnitState {
    /// Parses `systemctl show` output (`Key=value` lines). Unknown keys are
    /// ignored; missing ones stay empty.
    pub fn parse(unit: &str, text: &str) -> UnitState {
        let mut s = UnitState {
            unit: unit.to_owned(),
            ..UnitState::default()
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Id" if !value.is_empty() => s.unit = value.to_owned(),
                "LoadState" => s.load_state = value.to_owned(),
                "ActiveState" => s.active_state = value.to_owned(),
                "SubState" => s.sub_state = value.to_owned(),
                "MainPID" => s.main_pid = value.parse().ok().filter(|&p: &i32| p > 0),
                "InvocationID" => {
                    s.invocation_id = Some(value.to_owned()).filter(|v| !v.is_empty())
                }
                "ExecMainStatus" => s.exec_main_status = value.parse().ok(),
                _ => {}
            }
        }
        s
    }

    /// The unit file exists (is loaded, not `not-found`).
    pub fn is_installed(&self) -> bool {
        self.load_state == "loaded"
    }

    /// systemd runs (or is starting/stopping) a process for the unit.
    pub fn is_up(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "deactivating" | "reloading"
        )
    }
}

impl fmt::Display for UnitState {
    /// `active (running) pid 4711`, `failed (failed)`, `not installed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_installed() {
            return f.write_str(if self.load_state.is_empty() {
                "unknown"
            } else if self.load_state == "not-found" {
                "not installed"
            } else {
                &self.load_state
            });
        }
        write!(f, "{} ({})", self.active_state, self.sub_state)?;
        if let Some(pid) = self.main_pid {
            write!(f, " pid {pid}")?;
        }
        Ok(())
    }
}

/// Why systemd could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot run systemctl: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("systemctl show {unit} failed: {stderr}")]
    Failed { unit: String, stderr: String },
}

/// Asks systemd about `unit`. `Ok(None)` when systemd is not the service
/// manager here (nothing to compare with).
pub fn query(unit: &str) -> Result<Option<UnitState>, QueryError> {
    if !booted() {
        return Ok(None);
    }
    let out = Command::new("systemctl")
        .args(["show", "--no-pager", "-p", PROPERTIES, "--", unit])
        .env("SYSTEMD_COLORS", "0")
        .output()
        .map_err(QueryError::Spawn)?;
    if !out.status.success() {
        return Err(QueryError::Failed {
            unit: unit.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(Some(UnitState::parse(
        unit,
        &String::from_utf8_lossy(&out.stdout),
    )))
}

/// How the table's view and systemd's view of one program relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// Both say the same (running with the same PID, or both stopped).
    Agree,
    /// The table has a stale entry while the unit is down: harmless, the
    /// unit's next start takes it over.
    StaleEntry,
    /// The views contradict each other; the text says how.
    Disagree(String),
}

/// Compares the table (`liveness` of `record`) with systemd (`unit`).
pub fn compare(liveness: &Liveness, record: Option<&Record>, unit: &UnitState) -> Agreement {
    let recorded = record.and_then(|r| r.pid);
    match (liveness, unit.is_up(), unit.main_pid) {
        (Liveness::Running(p), true, Some(main)) if p.pid == main => Agreement::Agree,
        (Liveness::Running(p), true, Some(main)) => Agreement::Disagree(format!(
            "systemd's {} has MainPID {main}, but the table records pid {} (a second daemon started by hand?)",
            unit.unit, p.pid
        )),
        (Liveness::Running(p), _, _) => Agreement::Disagree(format!(
            "pid {} runs but {} is {}: it was started outside systemd",
            p.pid, unit.unit, unit.active_state
        )),
        (_, true, Some(main)) => Agreement::Disagree(format!(
            "{} runs with MainPID {main}, but the table has no live entry{}",
            unit.unit,
            recorded.map(|p| format!(" (records pid {p})")).unwrap_or_default()
        )),
        (Liveness::Stale(_), _, _) => Agreement::StaleEntry,
        _ => Agreement::Agree,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessInfo;
    use crate::Staleness;

    const SHOW: &str = "Id=os4xrd-tcpip.service\nLoadState=loaded\nActiveState=active\n\
                        SubState=running\nMainPID=4711\n\
                        InvocationID=0f1e2d3c4b5a69788796a5b4c3d2e1f0\nExecMainStatus=0\n";

    fn running(pid: i32) -> Liveness {
        Liveness::Running(ProcessInfo {
            pid,
            start_ticks: 1,
            state: 'S',
            name: "os4xrd_tcpip".into(),
        })
    }

    #[test]
    fn units_of_programs() {
        assert_eq!(
            unit_for("os4xrd_tcpip").as_deref(),
            Some("os4xrd-tcpip.service")
        );
        assert_eq!(
            unit_for("os4xrd_tcpip_tls").as_deref(),
            Some("os4xrd-tls.service")
        );
        assert_eq!(unit_for("os4xsqd").as_deref(), Some("os4xsqd.service"));
        assert_eq!(unit_for("os4x-web").as_deref(), Some("os4x-web.service"));
        assert_eq!(
            unit_for("os4xrd_capi_2").as_deref(),
            Some("os4xrd-capi@2.service")
        );
        assert_eq!(unit_for("os4xrd_capi_"), None);
        assert_eq!(unit_for("os4xrd_capi_x"), None);
        assert_eq!(unit_for("os4xrd"), None);
        assert_eq!(unit_for("something"), None);
    }

    #[test]
    fn parses_systemctl_show() {
        let s = UnitState::parse("x", SHOW);
        assert_eq!(s.unit, "os4xrd-tcpip.service");
        assert!(s.is_installed() && s.is_up());
        assert_eq!(s.main_pid, Some(4711));
        assert_eq!(
            s.invocation_id.as_deref(),
            Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
        );
        assert_eq!(s.to_string(), "active (running) pid 4711");

        let down = UnitState::parse(
            "os4xsqd.service",
            "LoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nInvocationID=\nExecMainStatus=75\n",
        );
        assert_eq!(down.main_pid, None);
        assert_eq!(down.invocation_id, None);
        assert_eq!(down.exec_main_status, Some(75));
        assert_eq!(down.to_string(), "failed (failed)");

        let missing = UnitState::parse("a.service", "LoadState=not-found\nActiveState=inactive\n");
        assert!(!missing.is_installed());
        assert_eq!(missing.to_string(), "not installed");
    }

    #[test]
    fn compares_views() {
        let up = UnitState::parse("x", SHOW);
        let down = UnitState::parse(
            "os4xrd-tcpip.service",
            "LoadState=loaded\nActiveState=inactive\nSubState=dead\nMainPID=0\n",
        );
        assert_eq!(compare(&running(4711), None, &up), Agreement::Agree);
        assert!(
            matches!(compare(&running(99), None, &up), Agreement::Disagree(t) if t.contains("MainPID 4711") && t.contains("pid 99"))
        );
        assert!(
            matches!(compare(&running(99), None, &down), Agreement::Disagree(t) if t.contains("outside systemd"))
        );
        assert!(
            matches!(compare(&Liveness::Stopped, None, &up), Agreement::Disagree(t) if t.contains("no live entry"))
        );
        assert_eq!(compare(&Liveness::Stopped, None, &down), Agreement::Agree);
        assert_eq!(
            compare(&Liveness::Stale(Staleness::NoProcess), None, &down),
            Agreement::StaleEntry
        );
    }
}
