//! The `os4x_pids` table: who runs which program for which server id.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use os4x_store::sql::{params, Error as SqlError, OptionalExtension, Row};
use os4x_store::{Connection, Location};

use crate::pid_file::{self, Content};
use crate::process::{self, ProcessInfo};
use crate::ProgramName;
use os4x_store::migrate::MigrateError;

/// Component name of this crate's schema in `os4x_schema`.
pub const COMPONENT: &str = os4x_store::schema::PIDS.name;

/// How long a statement waits for another process's write lock before
/// giving up. Claims hold the lock for well under a millisecond, so this is
/// only reached when something is badly wrong (a hung process holding it).
pub const BUSY_TIMEOUT: Duration = os4x_store::BUSY_TIMEOUT;

/// Errors of the store itself (as opposed to a refused claim).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PID database {location}: {source}")]
    Sql {
        location: String,
        #[source]
        source: SqlError,
    },
    #[error("PID database {location} stayed locked by another process for {}s ({source}); retry, or find the holder (`fuser` on the file, `pg_stat_activity` on a server)", BUSY_TIMEOUT.as_secs())]
    Busy {
        location: String,
        #[source]
        source: SqlError,
    },
    #[error("PID database {location}: {source}")]
    Migrate {
        location: String,
        #[source]
        source: Box<MigrateError>,
    },
    #[error("cannot create directory {} for the PID database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read process information from /proc: {0}")]
    Proc(#[source] io::Error),
    #[error("PID file {}: {source}; check that the directory exists and is writable by the service user", path.display())]
    PidFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A claim that was refused because the program is genuinely running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub program: ProgramName,
    pub server_id: u32,
    pub pid: i32,
    /// Program name of the running process (argv\[0\] base name).
    pub executable: String,
    pub uptime: Option<Duration>,
    /// Where the PID table is (`sqlite:///...` or the server, without
    /// its password).
    pub database: String,
    /// systemd `INVOCATION_ID` the running process claimed with: `None`
    /// when it was started outside systemd (by hand, cron, …).
    pub invocation_id: Option<String>,
}

/// Why `claim` did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("another {} (serverID {}) is running with pid {}", .0.program, .0.server_id, .0.pid)]
    AlreadyRunning(Box<Refusal>),
    #[error(transparent)]
    Store(#[from] Error),
}

/// Why `reset` refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{program} (serverID {server_id}) is running with pid {pid} ({executable}); stop it first (e.g. `systemctl stop {program}`), or use --force to clear the entry anyway (the process is NOT stopped by that)")]
    Live {
        program: String,
        server_id: u32,
        pid: i32,
        executable: String,
    },
    #[error(transparent)]
    Store(#[from] Error),
}

/// One row of `os4x_pids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub program: String,
    pub server_id: u32,
    /// The host the program ran on ('' for rows written before hosts
    /// were recorded: this host's).
    pub host: String,
    /// `None` when the table says -1 (not running).
    pub pid: Option<i32>,
    pub start_ticks: Option<u64>,
    pub boot_id: Option<String>,
    pub executable: Option<String>,
    /// Unix time of the last write.
    pub written_at: Option<i64>,
    /// systemd's `INVOCATION_ID` of the run that wrote the row, if any.
    pub invocation_id: Option<String>,
}

/// Why a recorded PID does not count as running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// No such process (or only a zombie waiting to be reaped).
    NoProcess,
    /// The PID now belongs to another process, named `by`.
    PidReused { by: String },
}

/// What a row means right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// pid -1, or no row at all.
    Stopped,
    /// The recorded process is alive and is the one that claimed.
    Running(ProcessInfo),
    Stale(Staleness),
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::Stopped => f.write_str("stopped"),
            Liveness::Running(_) => f.write_str("running"),
            Liveness::Stale(Staleness::NoProcess) => f.write_str("stale: no process"),
            Liveness::Stale(Staleness::PidReused { by }) => write!(f, "stale: pid reused by {by}"),
        }
    }
}

/// Decides whether `record` describes a live, genuine process.
///
/// Rows written by os4x carry boot id and start time, which settle it.
/// Rows without them (written by hand or by an older product) fall back to
/// comparing the live process's name with the program name.
///
/// The boot id is compared as the writer saw it, and one boot can show
/// different boot ids: in a container `systemd-nspawn` mounts its own over
/// `/proc/sys/kernel/random/boot_id`, while a service with
/// `ProtectKernelTunables=` gets a fresh `/proc/sys` that shows the
/// kernel's. So a different boot id means another boot only if the row was
/// also written before this boot began (see [`same_boot`]).
pub fn assess(record: &Record, current_boot: &str) -> io::Result<Liveness> {
    let Some(pid) = record.pid else {
        return Ok(Liveness::Stopped);
    };
    let Some(proc) = process::read_process(pid)? else {
        return Ok(Liveness::Stale(Staleness::NoProcess));
    };
    if proc.has_exited() {
        return Ok(Liveness::Stale(Staleness::NoProcess));
    }
    let same_start = record.start_ticks.map_or(true, |t| t == proc.start_ticks);
    let expected_name = record.executable.as_deref().unwrap_or(&record.program);
    if same_start && proc.name == expected_name && same_boot(record, current_boot)? {
        Ok(Liveness::Running(proc))
    } else {
        Ok(Liveness::Stale(Staleness::PidReused { by: proc.name }))
    }
}

/// Whether `record` was written during the current boot.
///
/// Equal boot ids settle it. Different ones do only together with the
/// time: a row written at or after the boot time (`btime`, which every
/// mount namespace sees alike) cannot be from an earlier boot. Two seconds
/// of slack absorb `btime` rounding; a previous boot's last write is always
/// further back than that, since a reboot takes longer.
pub fn same_boot(record: &Record, current_boot: &str) -> io::Result<bool> {
    const SLACK_SECONDS: i64 = 2;
    match (record.boot_id.as_deref(), record.written_at) {
        (None, _) => Ok(true),
        (Some(b), _) if b == current_boot => Ok(true),
        (Some(_), Some(written)) => Ok(written >= process::boot_time()? - SLACK_SECONDS),
        (Some(_), None) => Ok(false),
    }
}

/// Whether the PID file agrees with the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidFileState {
    /// Holds the recorded PID.
    Present,
    Absent,
    /// Exists but holds another PID, garbage, or the table says not running.
    Mismatch,
}

impl fmt::Display for PidFileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PidFileState::Present => "present",
            PidFileState::Absent => "absent",
            PidFileState::Mismatch => "mismatch",
        })
    }
}

/// Listening sockets of a running program, if they could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listening {
    /// Not running: nothing to list.
    NotApplicable,
    Sockets(Vec<SocketAddr>),
    /// `/proc/PID/fd` unreadable, typically another user's process.
    Unknown(String),
}

/// Everything `os4x-pidctl status` shows for one program.
#[derive(Debug, Clone)]
pub struct ProgramStatus {
    pub program: String,
    pub server_id: u32,
    pub record: Option<Record>,
    pub liveness: Liveness,
    pub pid_file_path: Option<PathBuf>,
    pub pid_file: PidFileState,
    pub pid_file_content: Content,
    pub listening: Listening,
    pub uptime: Option<Duration>,
}

/// What a successful claim replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// No row, or pid -1.
    Free,
    /// A stale entry was taken over.
    Stale { pid: i32, staleness: Staleness },
    /// `force` overrode a live, genuine process.
    Forced { pid: i32, executable: String },
}

/// Parameters of [`PidStore::claim`].
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub program: &'a ProgramName,
    pub server_id: u32,
    /// Take over even from a live, genuine process.
    pub force: bool,
    /// Directory of the PID file (`tmp_dir`).
    pub pid_dir: &'a Path,
    /// systemd's `INVOCATION_ID`, recorded so a later reconciliation can
    /// tell which unit run wrote the row.
    pub invocation_id: Option<&'a str>,
}

/// What [`PidStore::reset`] did.
#[derive(Debug, Clone)]
pub struct ResetReport {
    pub program: String,
    pub server_id: u32,
    /// State before the reset.
    pub previous: Liveness,
    pub previous_pid: Option<i32>,
    /// The row was set to pid -1 (false: it already was, or did not exist).
    pub row_cleared: bool,
    /// The PID file that was removed, if one was.
    pub pid_file_removed: Option<PathBuf>,
}

/// An open PID database.
pub struct PidStore {
    conn: Connection,
    location: Location,
    /// This machine's host name: the rows it claims and reads.
    host: String,
}

impl fmt::Debug for PidStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PidStore")
            .field("location", &self.location)
            .finish()
    }
}

impl PidStore {
    /// Opens (creating file and parent directory if needed) and migrates.
    pub fn open(location: impl Into<Location>) -> Result<PidStore, Error> {
        let location = location.into();
        let conn = open_and_migrate(&location)?;
        Ok(PidStore {
            conn,
            location,
            host: process::hostname(),
        })
    }

    /// Opens an existing database; `Ok(None)` if the SQLite file does not
    /// exist or the server database has no os4x tables yet. For
    /// read-mostly tools that must not create a database as a side effect
    /// (it would belong to whoever ran the tool).
    pub fn open_existing(location: impl Into<Location>) -> Result<Option<PidStore>, Error> {
        let location = location.into();
        // No SQLite file, or a server database nobody set up for os4x.
        if !os4x_store::is_set_up(&location).map_err(open_error)? {
            return Ok(None);
        }
        PidStore::open(location).map(Some)
    }

    /// Where the database is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    fn sql(&self) -> impl Fn(SqlError) -> Error + '_ {
        move |e| sql_error(&self.location, e)
    }

    /// This host's name, as recorded in its rows.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The row of one program on this host, if any.
    pub fn record(&self, program: &str, server_id: u32) -> Result<Option<Record>, Error> {
        query_record(&self.conn, program, server_id, &self.host).map_err(self.sql())
    }

    /// All rows for one server id on this host, ordered by program.
    pub fn records(&self, server_id: u32) -> Result<Vec<Record>, Error> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{SELECT_RECORD} WHERE serverID = ?1 AND host IN (?2, '') \
                 ORDER BY program, host DESC"
            ))
            .map_err(self.sql())?;
        let mut rows: Vec<Record> = stmt
            .query_map(params![server_id, self.host], row_to_record)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        // A legacy row ('') beside this host's own for the same program.
        rows.dedup_by(|b, a| a.program == b.program);
        Ok(rows)
    }

    /// Every row of every node and host, by server id, host, program.
    pub fn all_records(&self) -> Result<Vec<Record>, Error> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_RECORD} ORDER BY serverID, host, program"))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], row_to_record)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// Every node sharing this database ([`crate::nodes`]).
    pub fn nodes(&self) -> Result<Vec<crate::nodes::Node>, Error> {
        crate::nodes::list(&self.conn).map_err(self.sql())
    }

    /// Claims `program` for the calling process; see the crate docs.
    ///
    /// Consumes the store: the returned guard keeps the connection for the
    /// release at shutdown.
    pub fn claim(mut self, req: &ClaimRequest<'_>) -> Result<ClaimGuard, ClaimError> {
        let me = ProcessInfo::current().map_err(Error::Proc)?;
        let boot = process::boot_id().map_err(Error::Proc)?;
        let program = req.program.as_str();
        let location = self.location.clone();
        let host = self.host.clone();
        let conn = &mut self.conn;
        let busy = |e: &Error| matches!(e, Error::Busy { .. });
        let takeover = os4x_store::retry_busy(&location.to_string(), busy, || {
            claim_row(conn, &location, req, &me, &boot, &host)
        })?
        .map_err(|refusal| ClaimError::AlreadyRunning(Box::new(refusal)))?;

        let mut guard = ClaimGuard {
            store: self,
            program: req.program.clone(),
            server_id: req.server_id,
            pid: me.pid,
            start_ticks: me.start_ticks,
            pid_file: pid_file::path(req.pid_dir, program),
            takeover,
            released: false,
        };
        if let Err(source) = pid_file::write(req.pid_dir, program, me.pid) {
            // Give the row back rather than run without a PID file that
            // monitoring relies on; the guard's release does exactly that.
            let path = guard.pid_file.clone();
            drop(guard.release_inner());
            return Err(Error::PidFile { path, source }.into());
        }
        tracing::info!(program, server_id = req.server_id, pid = me.pid, pid_file = %guard.pid_file.display(), "claimed");
        Ok(guard)
    }

    /// Clears the entry of `program`: pid -1 and PID file removed. Refuses
    /// for a live, genuine process unless `force` (which does not stop it).
    pub fn reset(
        &mut self,
        program: &str,
        server_id: u32,
        force: bool,
        pid_dir: &Path,
    ) -> Result<ResetReport, ResetError> {
        let boot = process::boot_id().map_err(Error::Proc)?;
        let location = self.location.clone();
        let sql = |e| sql_error(&location, e);
        let tx = self.conn.transaction_immediate().map_err(sql)?;
        let record = query_record(&tx, program, server_id, &self.host).map_err(sql)?;
        let previous = match &record {
            Some(r) => assess(r, &boot).map_err(Error::Proc)?,
            None => Liveness::Stopped,
        };
        if let (Liveness::Running(p), false) = (&previous, force) {
            return Err(ResetError::Live {
                program: program.to_owned(),
                server_id,
                pid: p.pid,
                executable: p.name.clone(),
            });
        }
        let previous_pid = record.as_ref().and_then(|r| r.pid);
        let row_cleared = previous_pid.is_some()
            && tx
                .execute(
                    "UPDATE os4x_pids SET pid = -1, written_at = unixepoch()
                     WHERE program = ?1 AND serverID = ?2 AND host IN (?3, '')",
                    params![program, server_id, self.host],
                )
                .map_err(sql)?
                > 0;
        tx.commit().map_err(sql)?;
        let pid_file_removed = match pid_file_path(pid_dir, program) {
            Some(file) => match pid_file::remove(&file) {
                Ok(true) => Some(file),
                Ok(false) => None,
                Err(source) => return Err(Error::PidFile { path: file, source }.into()),
            },
            None => None,
        };
        if row_cleared || pid_file_removed.is_some() {
            tracing::info!(program, server_id, pid = ?previous_pid, previous = %previous, "PID entry reset");
        }
        Ok(ResetReport {
            program: program.to_owned(),
            server_id,
            previous,
            previous_pid,
            row_cleared,
            pid_file_removed,
        })
    }

    /// Status of every program recorded for `server_id`, plus `expected`
    /// programs that have no row yet, ordered by program name.
    pub fn status(
        &self,
        server_id: u32,
        expected: &[ProgramName],
        pid_dir: &Path,
    ) -> Result<Vec<ProgramStatus>, Error> {
        let boot = process::boot_id().map_err(Error::Proc)?;
        let mut records: Vec<(String, Option<Record>)> = self
            .records(server_id)?
            .into_iter()
            .map(|r| (r.program.clone(), Some(r)))
            .collect();
        for name in expected {
            if !records.iter().any(|(p, _)| p == name.as_str()) {
                records.push((name.as_str().to_owned(), None));
            }
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records
            .into_iter()
            .map(|(program, record)| status_of(program, server_id, record, &boot, pid_dir))
            .collect()
    }
}

/// Status of one program; `record` is its row, if any.
pub fn status_of(
    program: String,
    server_id: u32,
    record: Option<Record>,
    boot: &str,
    pid_dir: &Path,
) -> Result<ProgramStatus, Error> {
    let liveness = match &record {
        Some(r) => assess(r, boot).map_err(Error::Proc)?,
        None => Liveness::Stopped,
    };
    let pid_file_path = pid_file_path(pid_dir, &program);
    let pid_file_content = match &pid_file_path {
        Some(p) => pid_file::read(p).map_err(|source| Error::PidFile {
            path: p.clone(),
            source,
        })?,
        None => Content::Missing,
    };
    let recorded = record.as_ref().and_then(|r| r.pid);
    let pid_file = match (&pid_file_content, recorded) {
        (Content::Missing, _) => PidFileState::Absent,
        (Content::Pid(p), Some(r)) if *p == r => PidFileState::Present,
        _ => PidFileState::Mismatch,
    };
    let (listening, uptime) = match &liveness {
        Liveness::Running(p) => (
            match crate::net::listening_sockets(p.pid) {
                Ok(s) => Listening::Sockets(s),
                Err(e) => Listening::Unknown(e.to_string()),
            },
            process::uptime_of(p.start_ticks),
        ),
        _ => (Listening::NotApplicable, None),
    };
    Ok(ProgramStatus {
        program,
        server_id,
        record,
        liveness,
        pid_file_path,
        pid_file,
        pid_file_content,
        listening,
        uptime,
    })
}

/// The transactional part of a claim: `Ok(Err(_))` is a refusal.
fn claim_row(
    conn: &mut Connection,
    location: &Location,
    req: &ClaimRequest<'_>,
    me: &ProcessInfo,
    boot: &str,
    host: &str,
) -> Result<Result<Takeover, Refusal>, Error> {
    let program = req.program.as_str();
    let sql = |e| sql_error(location, e);
    let tx = conn.transaction_immediate().map_err(sql)?;
    let previous = query_record(&tx, program, req.server_id, host).map_err(sql)?;
    let liveness = match &previous {
        Some(r) => assess(r, boot).map_err(Error::Proc)?,
        None => Liveness::Stopped,
    };
    let takeover = match liveness {
        // Claiming twice from one process is harmless.
        Liveness::Running(p) if p.pid == me.pid && p.start_ticks == me.start_ticks => {
            Takeover::Free
        }
        Liveness::Running(p) if !req.force => {
            return Ok(Err(Refusal {
                program: req.program.clone(),
                server_id: req.server_id,
                pid: p.pid,
                uptime: process::uptime_of(p.start_ticks),
                executable: p.name,
                database: location.describe(),
                invocation_id: previous.as_ref().and_then(|r| r.invocation_id.clone()),
            }));
        }
        Liveness::Running(p) => {
            tracing::warn!(program, server_id = req.server_id, pid = p.pid, executable = %p.name,
                "forced start: taking over from a running process, which keeps running");
            Takeover::Forced {
                pid: p.pid,
                executable: p.name,
            }
        }
        Liveness::Stale(staleness) => {
            let pid = previous.as_ref().and_then(|r| r.pid).unwrap_or(-1);
            tracing::warn!(program, server_id = req.server_id, pid, state = %Liveness::Stale(staleness.clone()),
                "taking over stale PID entry");
            Takeover::Stale { pid, staleness }
        }
        Liveness::Stopped => Takeover::Free,
    };
    // A row from before hosts were recorded is this host's: adopted.
    tx.execute(
        "DELETE FROM os4x_pids WHERE program = ?1 AND serverID = ?2 AND host = ''",
        params![program, req.server_id],
    )
    .map_err(sql)?;
    tx.execute(
        "INSERT INTO os4x_pids
             (program, serverID, pid, start_ticks, boot_id, executable, written_at, invocation_id,
              host)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch(), ?7, ?8)
         ON CONFLICT (program, serverID, host) DO UPDATE SET
             pid = excluded.pid, start_ticks = excluded.start_ticks,
             boot_id = excluded.boot_id, executable = excluded.executable,
             written_at = excluded.written_at, invocation_id = excluded.invocation_id",
        params![
            program,
            req.server_id,
            me.pid,
            ticks_to_sql(me.start_ticks),
            boot,
            me.name,
            req.invocation_id,
            host
        ],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok(Ok(takeover))
}

/// The store crate opens and migrates (every component, this one among
/// them); its errors keep their meaning here.
fn open_and_migrate(location: &Location) -> Result<Connection, Error> {
    os4x_store::open(location).map_err(open_error)
}

fn open_error(e: os4x_store::OpenError) -> Error {
    use os4x_store::OpenError;
    match e {
        OpenError::CreateDir { path, source } => Error::CreateDir { path, source },
        OpenError::Sql { location, source } => Error::Sql { location, source },
        OpenError::Busy { location, source } => Error::Busy { location, source },
        OpenError::Migrate { location, source } => Error::Migrate { location, source },
    }
}

/// PID file path for a program name from the table; names that are not
/// valid program names (hand-made rows) have no file we would touch.
fn pid_file_path(dir: &Path, program: &str) -> Option<PathBuf> {
    ProgramName::new(program)
        .ok()
        .map(|p| pid_file::path(dir, p.as_str()))
}

/// Holds a claim; releasing it (explicitly or on drop) sets the row to
/// pid -1 and removes the PID file — but only if they are still ours.
#[derive(Debug)]
pub struct ClaimGuard {
    store: PidStore,
    program: ProgramName,
    server_id: u32,
    pid: i32,
    start_ticks: u64,
    pid_file: PathBuf,
    takeover: Takeover,
    released: bool,
}

impl ClaimGuard {
    pub fn program(&self) -> &ProgramName {
        &self.program
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    pub fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    pub fn database(&self) -> &Location {
        self.store.location()
    }

    /// What the claim replaced.
    pub fn takeover(&self) -> &Takeover {
        &self.takeover
    }

    /// Releases now, reporting errors (drop only logs them). Returns false
    /// when another process had taken the entry over (`-f`), which is then
    /// left alone.
    pub fn release(mut self) -> Result<bool, Error> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<bool, Error> {
        self.released = true;
        let program = self.program.as_str();
        let updated = self
            .store
            .conn
            .execute(
                "UPDATE os4x_pids SET pid = -1, written_at = unixepoch()
                 WHERE program = ?1 AND serverID = ?2 AND pid = ?3 AND start_ticks = ?4
                 AND host = ?5",
                params![
                    program,
                    self.server_id,
                    self.pid,
                    ticks_to_sql(self.start_ticks),
                    self.store.host
                ],
            )
            .map_err(self.store.sql())?;
        pid_file::remove_if_pid(&self.pid_file, self.pid).map_err(|source| Error::PidFile {
            path: self.pid_file.clone(),
            source,
        })?;
        if updated == 0 {
            tracing::warn!(
                program,
                server_id = self.server_id,
                "PID entry was taken over by another process; leaving it"
            );
        } else {
            tracing::info!(
                program,
                server_id = self.server_id,
                pid = self.pid,
                "released"
            );
        }
        Ok(updated > 0)
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.release_inner() {
                tracing::error!(program = %self.program, error = %e, "could not release PID entry; the next start will treat it as stale");
            }
        }
    }
}

const SELECT_RECORD: &str = "SELECT program, serverID, pid, start_ticks, boot_id, executable,
        written_at, invocation_id, host FROM os4x_pids";

/// The row of `program` on `host` (or its legacy row without a host).
fn query_record(
    conn: &Connection,
    program: &str,
    server_id: u32,
    host: &str,
) -> Result<Option<Record>, SqlError> {
    conn.query_row(
        &format!(
            "{SELECT_RECORD} WHERE program = ?1 AND serverID = ?2 AND host IN (?3, '') \
             ORDER BY host DESC LIMIT 1"
        ),
        params![program, server_id, host],
        row_to_record,
    )
    .optional()
}

fn row_to_record(row: &Row) -> Result<Record, SqlError> {
    let pid: i64 = row.get(2)?;
    let ticks: Option<i64> = row.get(3)?;
    Ok(Record {
        program: row.get(0)?,
        server_id: row.get(1)?,
        // -1 means not running; anything else non-positive is junk.
        pid: i32::try_from(pid).ok().filter(|&p| p > 0),
        start_ticks: ticks.and_then(|t| u64::try_from(t).ok()),
        boot_id: row.get(4)?,
        executable: row.get(5)?,
        written_at: row.get(6)?,
        invocation_id: row.get(7)?,
        host: row.get(8)?,
    })
}

/// Start ticks fit an SQLite integer for 10^10 years of uptime.
fn ticks_to_sql(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn sql_error(location: &Location, source: SqlError) -> Error {
    if source.is_busy() {
        Error::Busy {
            location: location.to_string(),
            source,
        }
    } else {
        Error::Sql {
            location: location.to_string(),
            source,
        }
    }
}
