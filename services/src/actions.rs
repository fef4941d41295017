//! Post-receive commands (`os4x partner set --post-receive`): queued in
//! the database with the received file, run one after another, and run
//! again after a crash or restart.
//!
//! A received file's row carries `action_state`:
//!
//! * `pending` — set in the same transaction that makes the file
//!   `received`, so no stored file loses its command;
//! * `running` — claimed by one daemon (`action_owner` names it by boot
//!   id, PID and start time); any receive daemon or `os4xsqd` sharing the
//!   database may claim pending commands, but only one gets each;
//! * `done` — with `action_exit` (`-1`: could not start or timed out;
//!   `128+n`: killed by signal `n`).
//!
//! A `running` command whose daemon is gone (killed, crashed, host
//! rebooted) is pending again. Each command runs in its own process group,
//! and a timeout kills the whole group, so a command's background children
//! do not outlive it.

use std::path::PathBuf;
use std::time::Duration;

use os4x_store::sql::{params, OptionalExtension};

use crate::db::{unix_now, Db};
use crate::partner::PartnerStore;

/// How often queued commands are looked for without a wake-up (commands
/// queued by another daemon, or released by a dead one).
const POLL: Duration = Duration::from_secs(30);

/// One queued command, as claimed.
#[derive(Debug)]
struct Job {
    id: i64,
    partner: String,
    path: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// This process, as written to `action_owner`.
fn owner_tag() -> Option<String> {
    let me = pidstore::process::ProcessInfo::current().ok()?;
    let boot = pidstore::process::boot_id().ok()?;
    Some(format!("{}:{}:{}", boot.trim(), me.pid, me.start_ticks))
}

/// A node whose daemons have not beaten for this long counts as gone
/// (well above `[cluster] heartbeat`, whatever it is set to).
const NODE_SILENCE_SECS: i64 = 180;

/// Whether the daemon named by an `action_owner` tag still runs. A tag of
/// another boot is this machine before a reboot (gone) or another node
/// sharing the database: alive while that node beats (its own daemons
/// requeue the command if it died there).
fn owner_alive(conn: &os4x_store::Connection, tag: &str, boot: &str) -> bool {
    let mut parts = tag.split(':');
    let (Some(b), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if b != boot {
        return pidstore::nodes::boot_alive(conn, b, NODE_SILENCE_SECS).unwrap_or(true);
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
        return false;
    };
    matches!(
        pidstore::process::read_process(pid),
        Ok(Some(p)) if p.start_ticks == start && !p.has_exited()
    )
}

/// Puts commands whose daemon is gone back to `pending`. Returns how many.
pub fn release_orphans(db: &Db) -> usize {
    let Ok(boot) = pidstore::process::boot_id() else {
        return 0;
    };
    let boot = boot.trim().to_owned();
    let conn = db.lock();
    let rows: Vec<(i64, Option<String>)> = match conn
        .prepare("SELECT id, action_owner FROM os4x_received_files WHERE action_state = 'running'")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        }) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read running post-receive commands");
            return 0;
        }
    };
    let mut released = 0;
    for (id, owner) in rows {
        if owner
            .as_deref()
            .is_some_and(|o| owner_alive(&conn, o, &boot))
        {
            continue;
        }
        match conn.execute(
            "UPDATE os4x_received_files SET action_state = 'pending', action_owner = NULL \
             WHERE id = ?1 AND action_state = 'running' AND action_owner IS NOT DISTINCT FROM ?2",
            params![id, owner],
        ) {
            Ok(1) => {
                released += 1;
                tracing::warn!(
                    received = id,
                    owner = owner.as_deref().unwrap_or("-"),
                    "post-receive command was interrupted (its daemon is gone); running it again"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(received = id, error = %e, "cannot requeue an interrupted post-receive command")
            }
        }
    }
    released
}

/// Claims the oldest pending command for `owner`.
fn claim(db: &Db, owner: &str) -> os4x_store::sql::Result<Option<Job>> {
    let conn = db.lock();
    let row = conn
        .query_row(
            "UPDATE os4x_received_files SET action_state = 'running', action_owner = ?1 \
             WHERE id = (SELECT id FROM os4x_received_files WHERE action_state = 'pending' \
             ORDER BY id LIMIT 1) AND action_state = 'pending' \
             RETURNING id, partner, final_path, dataset_name, file_timestamp, originator, \
             destination, user_data, format, max_record_size, records, units, description",
            [owner],
            |r| {
                let text = |i: usize| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default);
                let num = |i: usize| {
                    r.get::<_, Option<i64>>(i)
                        .map(|n| n.unwrap_or(0).to_string())
                };
                let id: i64 = r.get(0)?;
                let partner = text(1)?;
                let path = text(2)?;
                Ok(Job {
                    id,
                    partner: partner.clone(),
                    path: PathBuf::from(&path),
                    env: vec![
                        ("OS4X_FILE", path),
                        ("OS4X_PARTNER", partner),
                        ("OS4X_DATASET", text(3)?),
                        ("OS4X_TIMESTAMP", text(4)?),
                        ("OS4X_ORIGINATOR", text(5)?),
                        ("OS4X_DESTINATION", text(6)?),
                        ("OS4X_USER_DATA", text(7)?),
                        ("OS4X_FORMAT", text(8)?),
                        ("OS4X_RECORD_LENGTH", num(9)?),
                        ("OS4X_RECORDS", num(10)?),
                        ("OS4X_BYTES", num(11)?),
                        ("OS4X_DESCRIPTION", text(12)?),
                        ("OS4X_RECEIVED_ID", id.to_string()),
                    ],
                })
            },
        )
        .optional()?;
    Ok(row)
}

fn finish(db: &Db, id: i64, code: Option<i64>) {
    let conn = db.lock();
    if let Err(e) = conn.execute(
        "UPDATE os4x_received_files SET action_state = 'done', action_owner = NULL, \
         action_exit = ?2, action_at = ?3 WHERE id = ?1",
        params![id, code, unix_now()],
    ) {
        tracing::error!(received = id, error = %e, "cannot record the post-receive exit status; it may run again");
    }
}

/// Kills a command's process group when dropped (timeout, or the daemon
/// stopping while it runs).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn run_one(job: &Job, command: &str, timeout: Duration) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .arg("os4x-post-receive")
        .arg(&job.path)
        .envs(job.env.iter().map(|(k, v)| (*k, v)))
        .stdin(std::process::Stdio::null())
        // Its own group: a timeout kills the command's children too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(received = job.id, command, error = %e, "cannot start post-receive command");
            return -1;
        }
    };
    let mut group = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // Background children it left behind are its business.
            group.0 = None;
            status
                .code()
                .map(i64::from)
                .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
                .unwrap_or(-1)
        }
        Ok(Err(e)) => {
            tracing::error!(received = job.id, error = %e, "post-receive command lost");
            -1
        }
        Err(_) => {
            drop(group);
            let _ = child.kill().await;
            tracing::error!(received = job.id, command, timeout = ?timeout, "post-receive command timed out; it and its process group were killed");
            -1
        }
    }
}

/// The runner: runs what is queued (first what a previous run left),
/// then waits for `wake` (a file was stored) or [`POLL`].
pub async fn run(
    db: Db,
    partners: PartnerStore,
    mut wake: tokio::sync::mpsc::UnboundedReceiver<()>,
    timeout: Duration,
) {
    let Some(owner) = owner_tag() else {
        tracing::error!("cannot identify this process in /proc; post-receive commands stay queued");
        return;
    };
    loop {
        release_orphans(&db);
        loop {
            let job = match claim(&db, &owner) {
                Ok(Some(j)) => j,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read queued post-receive commands");
                    break;
                }
            };
            let command = match partners.get(&job.partner) {
                Ok(Some(p)) => p.post_receive.filter(|c| !c.trim().is_empty()),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(received = job.id, error = %e, "cannot read the partner of a post-receive command");
                    None
                }
            };
            let Some(command) = command else {
                tracing::warn!(received = job.id, partner = %job.partner, "post-receive command removed since the file arrived; not run");
                finish(&db, job.id, None);
                continue;
            };
            let code = run_one(&job, &command, timeout).await;
            if code == 0 {
                tracing::info!(received = job.id, partner = %job.partner, file = %job.path.display(), "post-receive command succeeded");
            } else {
                tracing::warn!(received = job.id, partner = %job.partner, file = %job.path.display(), exit = code, "post-receive command failed; the file stays in the inbox");
            }
            finish(&db, job.id, Some(code));
        }
        tokio::select! {
            woken = wake.recv() => {
                if woken.is_none() {
                    return;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
