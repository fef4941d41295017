//! `<tmp_dir>/<program>.pid`: the PID as decimal digits, no newline, written
//! atomically (temporary file in the same directory, then `rename`), mode
//! 0644 whatever the umask, so that no other user can plant a PID in it.

use std::fs::{self, DirBuilder, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the PID file: readable by monitoring, writable by the daemon only.
pub const MODE: u32 = 0o644;

/// Path of the PID file of `program` in `dir`.
pub fn path(dir: &Path, program: &str) -> PathBuf {
    dir.join(format!("{program}.pid"))
}

/// Writes `pid` to `<dir>/<program>.pid`, creating `dir` if missing.
pub fn write(dir: &Path, program: &str, pid: i32) -> io::Result<PathBuf> {
    if !dir.is_dir() {
        DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
        // Monitoring must be able to reach the file whatever our umask is.
        // (Under systemd, RuntimeDirectory= usually creates it instead.)
        fs::set_permissions(dir, Permissions::from_mode(0o755))?;
    }
    let target = path(dir, program);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{program}.pid."))
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(MODE))?;
    tmp.write_all(pid.to_string().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(target)
}

/// What a PID file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Missing,
    Pid(i32),
    /// Not a decimal PID (truncated, edited by hand, ...).
    Garbage,
}

/// Reads a PID file. Surrounding whitespace is tolerated, since hand-written
/// or legacy files often end in a newline.
pub fn read(path: &Path) -> io::Result<Content> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s
            .trim()
            .parse()
            .ok()
            .filter(|&p: &i32| p > 0)
            .map_or(Content::Garbage, Content::Pid)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Content::Missing),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Content::Garbage),
        Err(e) => Err(e),
    }
}

/// Removes the file; a missing file is fine. Returns whether one was removed.
pub fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the file only if it still names `pid`: after a forced takeover
/// the file belongs to the new daemon and must stay.
pub fn remove_if_pid(path: &Path, pid: i32) -> io::Result<bool> {
    match read(path)? {
        Content::Pid(p) if p == pid => remove(path),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn write_read_remove() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run/os4x");
        let p = write(&dir, "os4xsqd", 4711).unwrap();
        assert_eq!(p, dir.join("os4xsqd.pid"));
        assert_eq!(fs::read(&p).unwrap(), b"4711", "no newline");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, MODE);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
        // Overwritten on the next start, no temporary files left behind.
        write(&dir, "os4xsqd", 4712).unwrap();
        assert_eq!(read(&p).unwrap(), Content::Pid(4712));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(!remove_if_pid(&p, 4711).unwrap(), "not ours: kept");
        assert!(remove_if_pid(&p, 4712).unwrap());
        assert_eq!(read(&p).unwrap(), Content::Missing);
        assert!(!remove(&p).unwrap());
    }

    #[test]
    fn tolerant_reading() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("x.pid");
        fs::write(&p, "123\n").unwrap();
        assert_eq!(read(&p).unwrap(), Content::Pid(123));
        fs::write(&p, "12a").unwrap();
        assert_eq!(read(&p).unwrap(), Content::Garbage);
        fs::write(&p, "-1").unwrap();
        assert_eq!(read(&p).unwrap(), Content::Garbage);
        fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(read(&p).unwrap(), Content::Garbage);
    }
}
