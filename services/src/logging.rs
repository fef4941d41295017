//! Logging setup shared by all binaries: structured journald fields when
//! systemd connected stderr to the journal, plain text on stderr otherwise.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Environment variable with a `tracing` filter (e.g. `os4x=debug`);
/// `RUST_LOG` is honoured when it is unset.
pub const FILTER_ENV: &str = "OS4X_LOG";

/// Where log events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Journald,
    Stderr,
}

/// True when stderr is the journal stream systemd set up for us.
///
/// systemd exports `JOURNAL_STREAM=<dev>:<inode>` of the stream it gave the
/// service; the variable is inherited by children whose stderr may have been
/// redirected, so it only counts if it still matches fd 2.
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Installs the global subscriber; later calls are no-ops. `program`
/// becomes the journal's `SYSLOG_IDENTIFIER`.
pub fn init(program: &str) -> LogTarget {
    init_with_debug(program, None)
}

/// Like [`init`], and when `forward` is given also installs the layer that
/// forwards debug records to `os4xdebugd` (see [`crate::debug::forward`]);
/// it stays idle until debugging is switched on for the program. The
/// `OS4X_LOG` filter applies to the journal/stderr output only, so
/// forwarded debug records do not depend on it.
pub fn init_with_debug(
    program: &str,
    forward: Option<crate::debug::forward::ForwardSettings>,
) -> LogTarget {
    use tracing_subscriber::Layer as _;
    let filter = EnvFilter::try_from_env(FILTER_ENV)
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let make_forward = || {
        forward.clone().and_then(|settings| {
            match crate::debug::forward::start::<tracing_subscriber::Registry>(settings) {
                Ok((layer, _handle)) => Some(layer),
                Err(e) => {
                    eprintln!("{program}: debug forwarding disabled: cannot start its thread: {e}");
                    None
                }
            }
        })
    };
    if stderr_is_journal() {
        if let Ok(layer) = tracing_journald::layer() {
            // No `F_` prefix: fields arrive as PARTNER=, SESSION=, FILE=,
            // BYTES=, so `journalctl -u os4xrd-tcpip PARTNER=O0013...` works.
            let layer = layer
                .with_syslog_identifier(program.to_owned())
                .with_field_prefix(None);
            if tracing_subscriber::registry()
                .with(make_forward())
                .with(layer.with_filter(filter))
                .try_init()
                .is_ok()
            {
                return LogTarget::Journald;
            }
            return LogTarget::Stderr;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(make_forward())
        .with(fmt.with_filter(filter))
        .try_init();
    LogTarget::Stderr
}
