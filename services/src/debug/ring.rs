//! The size-bounded record store of `os4xdebugd` on disk.
//!
//! Records are JSON lines ([`StoredRecord`]) appended to segment files
//! `<dir>/seg-<16 digit number>.jsonl`. A segment is closed at
//! `max_bytes / SEGMENTS`; when the segments together exceed `max_bytes`
//! the oldest are deleted. Readers (the bundle) take the files as they are:
//! a torn last line is skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::proto::Record;

/// Segments the budget is split into: deleting one frees about 1/16.
const SEGMENTS: u64 = 16;
/// Smallest segment, so a tiny budget does not mean a file per record.
const MIN_SEGMENT: u64 = 16 * 1024;

/// A record as stored: who sent it, and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub program: String,
    pub pid: u32,
    pub server_id: u32,
    #[serde(flatten)]
    pub record: Record,
}

/// Append side of the ring.
#[derive(Debug)]
pub struct Ring {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// (number, size) of closed segments, oldest first.
    closed: Vec<(u64, u64)>,
    current: BufWriter<File>,
    current_no: u64,
    current_size: u64,
}

fn segment_path(dir: &Path, no: u64) -> PathBuf {
    dir.join(format!("seg-{no:016}.jsonl"))
}

/// Segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(no) = name
            .to_str()
            .and_then(|n| n.strip_prefix("seg-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((no, entry.path()));
    }
    out.sort_unstable_by_key(|(no, _)| *no);
    Ok(out)
}

impl Ring {
    /// Opens the ring in `dir` (created 0700: records may hold partner
    /// data), continuing after the newest existing segment.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Ring> {
        fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mut closed = Vec::new();
        for (no, path) in segments(dir)? {
            closed.push((no, fs::metadata(&path)?.len()));
        }
        let current_no = closed.last().map_or(1, |(no, _)| no + 1);
        let segment_bytes = (max_bytes / SEGMENTS).max(MIN_SEGMENT);
        let current = Self::create(dir, current_no)?;
        let mut ring = Ring {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            closed,
            current,
            current_no,
            current_size: 0,
        };
        ring.trim()?;
        Ok(ring)
    }

    fn create(dir: &Path, no: u64) -> io::Result<BufWriter<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, no))?;
        Ok(BufWriter::new(f))
    }

    /// Appends one record (buffered; see [`Ring::flush`]).
    pub fn append(&mut self, record: &StoredRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let len = line.len() as u64;
        if self.current_size > 0 && self.current_size + len > self.segment_bytes {
            self.rotate()?;
        }
        self.current.write_all(&line)?;
        self.current_size += len;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.current.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.current.flush()?;
        self.closed.push((self.current_no, self.current_size));
        self.current_no += 1;
        self.current = Self::create(&self.dir, self.current_no)?;
        self.current_size = 0;
        self.trim()
    }

    /// Deletes the oldest closed segments while they and a full current
    /// segment would exceed the budget: the files never exceed it.
    fn trim(&mut self) -> io::Result<()> {
        let mut total: u64 = self.closed.iter().map(|(_, s)| s).sum::<u64>()
            + self.current_size.max(self.segment_bytes);
        while total > self.max_bytes && !self.closed.is_empty() {
            let (no, size) = self.closed.remove(0);
            match fs::remove_file(segment_path(&self.dir, no)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            total -= size;
        }
        Ok(())
    }

    /// Bytes currently on disk (closed segments plus the open one).
    pub fn size(&self) -> u64 {
        self.closed.iter().map(|(_, s)| s).sum::<u64>() + self.current_size
    }
}

/// Records in `dir` with `ts_us >= since_us`, oldest first, calling `f`
/// with each raw line (as stored). Lines that do not parse are skipped.
pub fn read_since(
    dir: &Path,
    since_us: i64,
    mut f: impl FnMut(&str, &StoredRecord) -> io::Result<()>,
) -> io::Result<u64> {
    let mut n = 0;
    for (_, path) in segments(dir)? {
        let file = match File::open(&path) {
            Ok(f) => f,
            // Trimmed away since we listed it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in io::BufReader::new(file).split(b'\n') {
            let line = line?;
            let Ok(text) = std::str::from_utf8(&line) else {
                continue;
            };
            let Ok(rec) = serde_json::from_str::<StoredRecord>(text) else {
                continue;
            };
            if rec.record.ts_us >= since_us {
                f(text, &rec)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: i64) -> StoredRecord {
        StoredRecord {
            program: "os4xsqd".into(),
            pid: 1,
            server_id: 0,
            record: Record {
                ts_us: i,
                level: "DEBUG".into(),
                target: "t".into(),
                message: format!("record {i} {}", "x".repeat(200)),
                fields: Default::default(),
                spans: String::new(),
            },
        }
    }

    #[test]
    fn ring_stays_within_budget_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let ring_dir = dir.path().join("ring");
        let budget = 256 * 1024;
        let mut ring = Ring::open(&ring_dir, budget).unwrap();
        for i in 0..10_000 {
            ring.append(&rec(i)).unwrap();
        }
        ring.flush().unwrap();
        let on_disk: u64 = segments(&ring_dir)
            .unwrap()
            .iter()
            .map(|(_, p)| fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= budget, "{on_disk} > {budget}");
        assert!(on_disk > budget / 2, "{on_disk}");
        let mut seen = Vec::new();
        read_since(&ring_dir, 0, |_, r| {
            seen.push(r.record.ts_us);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.last(), Some(&9_999));
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
        let mut recent = 0;
        read_since(&ring_dir, 9_990, |_, _| {
            recent += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(recent, 10);

        // Reopening continues numbering and still respects the budget.
        drop(ring);
        let mut ring = Ring::open(&ring_dir, budget / 4).unwrap();
        ring.append(&rec(10_000)).unwrap();
        ring.flush().unwrap();
        assert!(ring.size() <= budget / 4);
        let mut last = 0;
        read_since(&ring_dir, 0, |_, r| {
            last = r.record.ts_us;
            Ok(())
        })
        .unwrap();
        assert_eq!(last, 10_000);
    }

    #[test]
    fn torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Ring::open(dir.path(), 1 << 20).unwrap();
        ring.append(&rec(1)).unwrap();
        ring.flush().unwrap();
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(b"{\"program\":\"os4x").unwrap();
        let n = read_since(dir.path(), 0, |_, _| Ok(())).unwrap();
        assert_eq!(n, 1);
    }
}
