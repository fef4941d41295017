//! Process identity from `/proc`: who is behind a PID, and is it still the
//! process that was recorded?
//!
//! A PID alone does not identify a process: after a reboot or a PID wrap the
//! same number belongs to something else. A process is identified by
//! `(boot id, PID, start time)`; the start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot) never changes for a process and
//! differs for any later process that reuses the PID. The program name is
//! kept as well, both for messages and for rows that predate start times.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Where the kernel publishes the identity of the current boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// What `/proc/PID/stat` tells us, reduced to the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFields {
    /// `comm`, the kernel's name for the task (truncated to 15 bytes).
    pub comm: String,
    /// Single-letter state (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// Start time in clock ticks after boot (field 22).
    pub start_ticks: u64,
}

/// `/proc/PID/stat` did not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed /proc stat line: {0}")]
pub struct StatParseError(&'static str);

/// Parses one `/proc/PID/stat` line.
///
/// `comm` (field 2) is wrapped in parentheses and may itself contain spaces
/// and parentheses (`prctl(PR_SET_NAME)` allows anything), so the fields
/// after it are found from the *last* `)`, never by naive whitespace split.
pub fn parse_stat(line: &str) -> Result<StatFields, StatParseError> {
    let open = line.find('(').ok_or(StatParseError("no '(' before comm"))?;
    let close = line.rfind(')').ok_or(StatParseError("no ')' after comm"))?;
    if close < open {
        return Err(StatParseError("')' before '('"));
    }
    let comm = line[open + 1..close].to_owned();
    // Fields after comm start with field 3 (state); field 22 is the 20th.
    let mut rest = line[close + 1..].split_ascii_whitespace();
    let state = rest
        .next()
        .and_then(|s| s.chars().next())
        .ok_or(StatParseError("missing state field"))?;
    let start_ticks = rest
        .nth(22 - 4)
        .ok_or(StatParseError("missing starttime field (22)"))?
        .parse::<u64>()
        .map_err(|_| StatParseError("starttime field (22) is not a number"))?;
    Ok(StatFields {
        comm,
        state,
        start_ticks,
    })
}

/// The program name from `/proc/PID/cmdline`: the base name of `argv[0]`.
///
/// `comm` is truncated to 15 bytes (`os4xrd_tcpip_tls` has 16), so it cannot
/// tell our daemons apart; `argv[0]` is complete. Returns `None` for kernel
/// threads and zombies, whose cmdline is empty.
pub fn parse_cmdline(raw: &[u8]) -> Option<String> {
    let argv0 = raw.split(|&b| b == 0).next()?;
    let base = argv0.rsplit(|&b| b == b'/').next()?;
    if base.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(base).into_owned())
}

/// A live process as seen in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub start_ticks: u64,
    pub state: char,
    /// Base name of `argv[0]`, or `comm` when the command line is empty.
    pub name: String,
}

impl ProcessInfo {
    /// Zombies (`Z`) and dead tasks (`X`) have exited; they only wait to be
    /// reaped and must not block a restart.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// The calling process.
    pub fn current() -> io::Result<ProcessInfo> {
        let pid = i32::try_from(std::process::id())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "own pid out of range"))?;
        read_process(pid)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "/proc/self is missing; is /proc mounted?",
            )
        })
    }
}

/// Reads a process from `/proc`; `Ok(None)` when there is no such process.
pub fn read_process(pid: i32) -> io::Result<Option<ProcessInfo>> {
    read_process_in(Path::new("/proc"), pid)
}

fn read_process_in(proc_root: &Path, pid: i32) -> io::Result<Option<ProcessInfo>> {
    if pid <= 0 {
        return Ok(None);
    }
    let dir = proc_root.join(pid.to_string());
    let stat = match fs::read_to_string(dir.join("stat")) {
        Ok(s) => s,
        // ESRCH: the process exited between open and read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc_esrch()) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let fields = parse_stat(&stat).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    // cmdline may vanish or be unreadable (hidepid); comm is the fallback.
    let name = fs::read(dir.join("cmdline"))
        .ok()
        .and_then(|raw| parse_cmdline(&raw))
        .unwrap_or_else(|| fields.comm.clone());
    Ok(Some(ProcessInfo {
        pid,
        start_ticks: fields.start_ticks,
        state: fields.state,
        name,
    }))
}

const fn libc_esrch() -> i32 {
    nix::errno::Errno::ESRCH as i32
}

/// The current boot's id; it changes on every boot, so a recorded process
/// from an earlier boot is never mistaken for a live one.
pub fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string(BOOT_ID_PATH)?.trim().to_owned())
}

/// This machine's name as recorded in `os4x_pids.host` and
/// `os4x_nodes.host`: `OS4X_HOSTNAME` if set (containers that share a
/// host name), else the kernel's host name.
pub fn hostname() -> String {
    if let Some(h) = std::env::var_os("OS4X_HOSTNAME").filter(|h| !h.is_empty()) {
        return h.to_string_lossy().into_owned();
    }
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Wall-clock time of this boot (`btime` in `/proc/stat`), Unix seconds.
/// Unlike the boot id it is the same in every mount namespace.
pub fn boot_time() -> io::Result<i64> {
    let stat = fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/stat has no btime line"))
}

/// How long a process that started at `start_ticks` after boot has run.
pub fn uptime_of(start_ticks: u64) -> Option<Duration> {
    let since_boot = fs::read_to_string("/proc/uptime").ok()?;
    let since_boot: f64 = since_boot.split_ascii_whitespace().next()?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    if ticks <= 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // ticks since boot fit f64 exactly for ages
    let started = start_ticks as f64 / ticks as f64;
    Some(Duration::from_secs_f64((since_boot - started).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line from a 6.x kernel (52 fields).
    const SLEEP: &str = "4242 (sleep) S 4200 4242 4200 34816 4242 4194304 98 0 0 0 0 0 0 0 20 0 1 0 987654 5636096 216 18446744073709551615 94 95 96 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 97 98 99 100 101 102 103 0\n";

    #[test]
    fn stat_plain() {
        let f = parse_stat(SLEEP).unwrap();
        assert_eq!(f.comm, "sleep");
        assert_eq!(f.state, 'S');
        assert_eq!(f.start_ticks, 987_654);
    }

    #[test]
    fn stat_comm_with_spaces_and_parentheses() {
        let line = SLEEP.replace("(sleep)", "(a) b (c) S 1)");
        let f = parse_stat(&line).unwrap();
        assert_eq!(f.comm, "a) b (c) S 1");
        assert_eq!(f.state, 'S');
        assert_eq!(f.start_ticks, 987_654);
    }

    #[test]
    fn stat_malformed() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("12 sleep S 1 2 3").is_err());
        assert!(parse_stat("12 (sleep) S 1 2 3").is_err());
        assert!(parse_stat(") 12 (").is_err());
        let not_a_number = SLEEP.replace(" 987654 ", " 98x654 ");
        assert!(parse_stat(&not_a_number).is_err());
    }

    #[test]
    fn cmdline_argv0_basename() {
        assert_eq!(
            parse_cmdline(b"/usr/sbin/os4xrd_tcpip_tls\0-f\0").as_deref(),
            Some("os4xrd_tcpip_tls")
        );
        assert_eq!(parse_cmdline(b"sleep\x0030\0").as_deref(), Some("sleep"));
        assert_eq!(parse_cmdline(b""), None);
        assert_eq!(parse_cmdline(b"/usr/bin/\0"), None);
    }

    #[test]
    fn read_real_processes() {
        let me = ProcessInfo::current().unwrap();
        assert_eq!(me.pid as u32, std::process::id());
        assert!(!me.has_exited());
        // The same process read twice has the same identity.
        assert_eq!(
            read_process(me.pid).unwrap().unwrap().start_ticks,
            me.start_ticks
        );
        assert!(uptime_of(me.start_ticks).is_some());
        assert_eq!(read_process(-1).unwrap(), None);
        assert_eq!(read_process(0).unwrap(), None);
        assert!(!boot_id().unwrap().is_empty());
    }

    #[test]
    fn fake_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("77");
        fs::create_dir(&dir).unwrap();
        fs::write(
            dir.join("stat"),
            SLEEP.replace("4242 (sleep) S", "77 (os4xrd_tcpip_t) Z"),
        )
        .unwrap();
        fs::write(dir.join("cmdline"), b"").unwrap();
        let p = read_process_in(root.path(), 77).unwrap().unwrap();
        assert_eq!(p.name, "os4xrd_tcpip_t", "empty cmdline falls back to comm");
        assert!(p.has_exited());
        assert_eq!(read_process_in(root.path(), 78).unwrap(), None);
    }
}
