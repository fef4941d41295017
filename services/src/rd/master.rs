//! `os4xrd` master mode: run the receive daemons as child processes (with
//! their own program names, so `ps -ef` shows `os4xrd_tcpip`,
//! `os4xrd_tcpip_tls` and one `os4xrd_capi_<n>` per configured ISDN
//! controller), restart one that dies with a growing delay, and stop them
//! all on SIGTERM.
//!
//! On systemd hosts the socket units start the daemons directly and the
//! master is not needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::daemon::{Daemon, Shutdown};
use crate::exit;
use crate::programs;

/// First restart delay; doubles per quick death up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A child that ran this long is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long children get to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One child process the master keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// Its program name: argv\[0\] (what `ps` shows) and its os4x_pids row.
    pub name: String,
    /// The binary next to the master's own executable.
    pub binary: &'static str,
    pub args: Vec<String>,
}

impl ChildSpec {
    fn plain(name: &'static str) -> ChildSpec {
        ChildSpec {
            name: name.to_owned(),
            binary: name,
            args: Vec::new(),
        }
    }
}

/// The programs the master runs for this configuration.
pub fn children(config: &crate::config::Config) -> Vec<ChildSpec> {
    let mut out = vec![ChildSpec::plain(programs::OS4XRD_TCPIP)];
    if config.rd.tls.certificate.is_some() {
        out.push(ChildSpec::plain(programs::OS4XRD_TCPIP_TLS));
    } else {
        tracing::info!("[tls] certificate not set: not starting os4xrd_tcpip_tls");
    }
    // One os4xrd_capi_<n> per [[isdn.controller]]: the binary os4xrd_capi
    // started under that name.
    for c in &config.isdn.controllers {
        out.push(ChildSpec {
            name: programs::os4xrd_capi(c.number),
            binary: "os4xrd_capi",
            args: vec!["--controller".into(), c.number.to_string()],
        });
    }
    out
}

/// Where the child binaries are: next to our own executable.
fn program_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("cannot tell the directory of {}", exe.display()))?;
    Ok(dir.join(name))
}

/// The master's body.
pub async fn run(d: Daemon) -> anyhow::Result<()> {
    let config = d.config().clone();
    let mut tasks = tokio::task::JoinSet::new();
    for child in children(&config) {
        let path = program_path(child.binary)?;
        let source = config.source.clone();
        let shutdown = d.shutdown();
        tasks.spawn(supervise(child, path, source, shutdown));
    }
    d.ready();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn spawn(child: &ChildSpec, path: &Path, config: Option<&Path>) -> std::io::Result<Child> {
    let mut cmd = Command::new(path);
    cmd.arg0(&child.name).args(&child.args);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    // The children are not systemd services of their own: they must not
    // talk to the master's notify socket or take its sockets.
    for var in [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd.spawn()
}

/// Keeps one child running until shutdown.
async fn supervise(
    spec: ChildSpec,
    path: PathBuf,
    config: Option<PathBuf>,
    mut shutdown: Shutdown,
) {
    let name = spec.name.as_str();
    let mut backoff = MIN_BACKOFF;
    loop {
        if shutdown.is_requested() {
            return;
        }
        let started = tokio::time::Instant::now();
        let mut child = match spawn(&spec, &path, config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(program = name, path = %path.display(), error = %e, "cannot start child; retrying in {backoff:?}");
                if wait_or_stop(&mut shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let pid = child.id();
        tracing::info!(program = name, pid, "child started");
        tokio::select! {
            status = child.wait() => {
                let ran = started.elapsed();
                if ran >= HEALTHY_AFTER {
                    backoff = MIN_BACKOFF;
                }
                let delay = match status.as_ref().ok().and_then(|s| s.code()) {
                    // A configuration error does not go away by retrying
                    // quickly.
                    Some(code) if code == i32::from(exit::CONFIG) => MAX_BACKOFF,
                    _ => backoff,
                };
                tracing::error!(program = name, pid, status = ?status, ran = ?ran, "child ended; restarting in {delay:?}");
                if wait_or_stop(&mut shutdown, delay).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            () = shutdown.wait() => {
                stop(name, &mut child).await;
                return;
            }
        }
    }
}

/// Sleeps `delay`; `true` if shutdown came first.
async fn wait_or_stop(shutdown: &mut Shutdown, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = shutdown.wait() => true,
    }
}

async fn stop(name: &str, child: &mut Child) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => tracing::info!(program = name, pid, status = ?status, "child stopped"),
        Err(_) => {
            tracing::warn!(
                program = name,
                pid,
                "child did not stop within {STOP_GRACE:?}; killing it"
            );
            let _ = child.kill().await;
        }
    }
}
