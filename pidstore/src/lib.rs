//! One daemon per program, never a stale lock.
//!
//! Every os4x daemon claims its program name (`os4xrd_tcpip`, `os4xsqd`, …)
//! for its server id in the SQLite table `os4x_pids` before doing any work,
//! and releases it on a normal stop. A claim is refused only while the
//! recorded process is alive *and* provably the same process that claimed:
//! same boot ([`process::boot_id`]), same start time (field 22 of
//! `/proc/PID/stat`), same program name. A recorded PID with no process
//! behind it, or with a different process behind it (PID reused after a
//! reboot or a wrap), is stale and taken over with a warning, so a crash or
//! a power cut never needs an admin to clean up before the next start.
//!
//! The check and the takeover run in one `BEGIN IMMEDIATE` transaction, so
//! of many processes starting at once exactly one wins. Besides the table,
//! the claim writes `<tmp_dir>/<program>.pid` for tools that expect one.
//!
//! ```no_run
//! # use pidstore::{PidStore, ClaimRequest, ProgramName};
//! # use std::path::Path;
//! let program = ProgramName::new("os4xsqd")?;
//! let store = PidStore::open(Path::new("/var/lib/os4x/os4x.db"))?;
//! let guard = store.claim(&ClaimRequest {
//!     program: &program,
//!     server_id: 0,
//!     force: false,
//!     pid_dir: Path::new("/run/os4x"),
//!     invocation_id: None,
//! })?;
//! // ... run ...
//! guard.release()?; // or just drop it
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Schema migrations (they live in the store crate with every table).
pub use os4x_store::migrate;
pub mod net;
pub mod nodes;
pub mod pid_file;
pub mod process;
mod store;
pub mod systemd;

use std::fmt;
use std::str::FromStr;

pub use store::{
    assess, same_boot, status_of, ClaimError, ClaimGuard, ClaimRequest, Error, Listening, Liveness,
    PidFileState, PidStore, ProgramStatus, Record, Refusal, ResetError, ResetReport, Staleness,
    Takeover, BUSY_TIMEOUT, COMPONENT,
};

/// A program name as used in `os4x_pids.program` and in the PID file name:
/// 1–64 ASCII letters, digits, `_` or `-` (so it is always a safe file name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramName(String);

/// A string that cannot be a program name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid program name {0:?}: use 1-64 ASCII letters, digits, '_' or '-'")]
pub struct InvalidProgramName(pub String);

impl ProgramName {
    pub fn new(name: impl Into<String>) -> Result<ProgramName, InvalidProgramName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(ProgramName(name))
        } else {
            Err(InvalidProgramName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProgramName {
    type Err = InvalidProgramName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProgramName::new(s)
    }
}

impl fmt::Display for ProgramName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProgramName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests;
