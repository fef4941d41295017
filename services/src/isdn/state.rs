//! The controller state `os4xrd_capi_<n>` publishes for `os4x-pidctl
//! status`: a small JSON file `<tmp_dir>/os4xrd_capi_<n>.isdn.json`
//! beside its PID file, replaced atomically on every change and removed
//! when the daemon stops.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the daemon knows about its controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// `[[isdn.controller]] number`.
    pub controller: u32,
    /// CAPI controller number at the transport.
    pub capi_controller: u32,
    /// `capi20:/dev/capi20`, `sim:127.0.0.1:7000`, …
    pub transport: String,
    /// `connecting`, `listening` or `down`.
    pub state: String,
    /// Why it is down (and what to do), when it is.
    pub error: Option<String>,
    /// MSNs/DDIs accepted (empty: all).
    pub msn: Vec<String>,
    pub calls_active: u32,
    pub calls_accepted: u64,
    pub calls_rejected: u64,
    /// The last call: `<unix time> <calling> → <called>: <outcome>`.
    pub last_call: Option<String>,
    pub updated_at: i64,
}

impl ControllerState {
    /// One line for the status table's LISTENING column.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "ISDN ctrl {} {}",
            self.capi_controller,
            match self.state.as_str() {
                "listening" if self.msn.is_empty() => "listening (all numbers)".to_owned(),
                "listening" => format!("listening {}", self.msn.join(",")),
                other => other.to_owned(),
            }
        );
        if self.calls_active > 0 {
            s.push_str(&format!(", {} calls", self.calls_active));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(": {e}"));
        }
        s
    }
}

/// The state file of `program` in `tmp_dir`.
pub fn path(tmp_dir: &Path, program: &str) -> PathBuf {
    tmp_dir.join(format!("{program}.isdn.json"))
}

/// Writes `state` atomically (temporary file, rename).
pub fn write(file: &Path, state: &ControllerState) -> std::io::Result<()> {
    let tmp = file.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

/// Reads the state of `program` from the directory of its PID file.
/// `None` for programs that are not CAPI daemons or when nothing was
/// written (yet).
pub fn read_beside(pid_file: &Path, program: &str) -> Option<ControllerState> {
    if !program.starts_with("os4xrd_capi_") {
        return None;
    }
    let text = std::fs::read(path(pid_file.parent()?, program)).ok()?;
    serde_json::from_slice(&text).ok()
}
