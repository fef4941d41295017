//! Debug records for problem reports.
//!
//! Every daemon can forward its tracing events to `os4xdebugd` when
//! debugging is enabled for it (`[debug] enable`, or at runtime with
//! `os4x debug on [PROGRAM]`):
//!
//! - [`proto`]: the framed wire protocol (sans-IO).
//! - [`forward`]: the non-blocking tracing layer in every daemon.
//! - [`switch`]: the runtime on/off switch in the database.
//! - [`server`]: `os4xdebugd`'s connection handling.
//! - [`ring`]: the size-bounded record store under `<state_dir>/debug/`.
//! - [`bundle`]: the problem-report archive of `os4x debug bundle`.
//! - [`settings`]: the `[debug]` configuration section.

pub mod bundle;
pub mod forward;
pub mod proto;
pub mod ring;
pub mod server;
/// `[debug]` settings (they live in the configuration crate).
pub use os4x_config::debug as settings;
pub mod switch;

use std::path::{Path, PathBuf};

/// `<state_dir>/debug/ring`: where `os4xdebugd` keeps records.
pub fn ring_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("debug").join("ring")
}
