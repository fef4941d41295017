//! Store tests against real SQLite files and real processes (`sleep`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use rusqlite::{params, Connection};

use crate::process::{self, ProcessInfo};
use crate::*;

struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    _dir: tempfile::TempDir,
    db: PathBuf,
    run: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    Env {
        db: dir.path().join("state/os4x.db"),
        run: dir.path().join("run"),
        _dir: dir,
    }
}

fn name(s: &str) -> ProgramName {
    ProgramName::new(s).unwrap()
}

fn req<'a>(program: &'a ProgramName, run: &'a Path, force: bool) -> ClaimRequest<'a> {
    ClaimRequest {
        program,
        server_id: 0,
        force,
        pid_dir: run,
        invocation_id: None,
    }
}

/// Writes a row the way a claim by `p` would have written it.
fn record_process(db: &Path, program: &str, p: &ProcessInfo) {
    let c = Connection::open(db).unwrap();
    c.execute(
        "INSERT OR REPLACE INTO os4x_pids (program, serverID, pid, start_ticks, boot_id, executable, written_at, host)
         VALUES (?1, 0, ?2, ?3, ?4, ?5, unixepoch(), ?6)",
        params![program, p.pid, p.start_ticks as i64, process::boot_id().unwrap(), p.name, process::hostname()],
    )
    .unwrap();
}

fn sleeper_info(s: &Sleeper) -> ProcessInfo {
    // `sleep` has exec'd once spawn() returns, but be robust about it.
    for _ in 0..100 {
        let p = process::read_process(s.pid()).unwrap().unwrap();
        if p.name == "sleep" {
            return p;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("sleep did not exec");
}

#[test]
fn fresh_database_is_migrated_and_in_wal_mode() {
    let e = env();
    let store = PidStore::open(&e.db).unwrap();
    drop(store);
    let c = Connection::open(&e.db).unwrap();
    let ours = os4x_store::open_existing(e.db.as_path()).unwrap().unwrap();
    assert_eq!(migrate::version(&ours, COMPONENT).unwrap(), 3);
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let cols: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('os4x_pids')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for col in [
        "program",
        "serverID",
        "pid",
        "start_ticks",
        "boot_id",
        "executable",
        "written_at",
        "host",
    ] {
        assert!(cols.iter().any(|c| c == col), "{col} missing in {cols:?}");
    }
}

#[test]
fn legacy_table_is_adopted_and_judged_by_name() {
    let e = env();
    let sleeper = Sleeper::start();
    sleeper_info(&sleeper);
    std::fs::create_dir_all(e.db.parent().unwrap()).unwrap();
    let c = Connection::open(&e.db).unwrap();
    c.execute_batch(
        "CREATE TABLE os4x_pids (program TEXT NOT NULL, serverID INTEGER NOT NULL,
             pid INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (program, serverID));",
    )
    .unwrap();
    c.execute(
        "INSERT INTO os4x_pids VALUES ('os4xsqd', 0, ?1), ('sleep', 0, ?1), ('os4xrd', 0, -1)",
        [sleeper.pid()],
    )
    .unwrap();
    drop(c);
    let store = PidStore::open(&e.db).unwrap();
    let boot = process::boot_id().unwrap();
    let sqd = store.record("os4xsqd", 0).unwrap().unwrap();
    assert_eq!(sqd.start_ticks, None, "legacy row keeps its data");
    assert_eq!(
        assess(&sqd, &boot).unwrap(),
        Liveness::Stale(Staleness::PidReused { by: "sleep".into() })
    );
    let same_name = store.record("sleep", 0).unwrap().unwrap();
    assert!(matches!(
        assess(&same_name, &boot).unwrap(),
        Liveness::Running(_)
    ));
    let rd = store.record("os4xrd", 0).unwrap().unwrap();
    assert_eq!(assess(&rd, &boot).unwrap(), Liveness::Stopped);
}

#[test]
fn newer_schema_is_refused_with_advice() {
    let e = env();
    drop(PidStore::open(&e.db).unwrap());
    let c = Connection::open(&e.db).unwrap();
    c.execute(
        "UPDATE os4x_schema SET version = 99 WHERE component = 'pidstore'",
        [],
    )
    .unwrap();
    let err = PidStore::open(&e.db).unwrap_err();
    assert!(
        err.to_string().contains("newer than this build knows"),
        "{err}"
    );
}

#[test]
fn claim_writes_row_and_pid_file_release_clears_both() {
    let e = env();
    let program = name("os4xdebugd");
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    assert_eq!(guard.takeover(), &Takeover::Free);
    let me = ProcessInfo::current().unwrap();
    let store = PidStore::open(&e.db).unwrap();
    let rec = store.record("os4xdebugd", 0).unwrap().unwrap();
    assert_eq!(rec.pid, Some(me.pid));
    assert_eq!(rec.start_ticks, Some(me.start_ticks));
    assert_eq!(
        rec.boot_id.as_deref(),
        Some(process::boot_id().unwrap().as_str())
    );
    assert!(rec.written_at.is_some());
    assert_eq!(
        std::fs::read_to_string(e.run.join("os4xdebugd.pid")).unwrap(),
        me.pid.to_string()
    );
    let status = store.status(0, &[name("os4xsqd")], &e.run).unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].program, "os4xdebugd");
    assert!(matches!(status[0].liveness, Liveness::Running(_)));
    assert_eq!(status[0].pid_file, PidFileState::Present);
    assert!(status[0].uptime.is_some());
    assert_eq!(status[1].program, "os4xsqd");
    assert_eq!(status[1].liveness, Liveness::Stopped);
    assert_eq!(status[1].pid_file, PidFileState::Absent);

    assert!(guard.release().unwrap());
    assert_eq!(store.record("os4xdebugd", 0).unwrap().unwrap().pid, None);
    assert!(!e.run.join("os4xdebugd.pid").exists());
}

#[test]
fn genuine_process_blocks_claim_unless_forced() {
    let e = env();
    let sleeper = Sleeper::start();
    let info = sleeper_info(&sleeper);
    drop(PidStore::open(&e.db).unwrap());
    let program = name("os4xsqd");
    // The sleeper "is" os4xsqd: its own identity is recorded.
    record_process(&e.db, "os4xsqd", &info);

    let err = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap_err();
    let ClaimError::AlreadyRunning(refusal) = err else {
        panic!("expected refusal, got {err}");
    };
    assert_eq!(refusal.pid, sleeper.pid());
    assert_eq!(refusal.executable, "sleep");
    assert_eq!(refusal.database, e.db.display().to_string());
    assert!(
        !e.run.join("os4xsqd.pid").exists(),
        "refused claim writes no PID file"
    );

    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, true))
        .unwrap();
    assert_eq!(
        guard.takeover(),
        &Takeover::Forced {
            pid: sleeper.pid(),
            executable: "sleep".into()
        }
    );
    drop(guard);
}

#[test]
fn stale_entries_are_taken_over() {
    let e = env();
    let sleeper = Sleeper::start();
    let mut info = sleeper_info(&sleeper);
    drop(PidStore::open(&e.db).unwrap());
    let program = name("os4xsqd");

    // Same PID, different start time: the PID was reused.
    info.start_ticks += 1;
    record_process(&e.db, "os4xsqd", &info);
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    assert_eq!(
        guard.takeover(),
        &Takeover::Stale {
            pid: sleeper.pid(),
            staleness: Staleness::PidReused { by: "sleep".into() }
        }
    );
    drop(guard);

    // A PID from an earlier boot: another boot id, written before this
    // boot began.
    info.start_ticks -= 1;
    record_process(&e.db, "os4xsqd", &info);
    Connection::open(&e.db)
        .unwrap()
        .execute(
            "UPDATE os4x_pids SET boot_id = 'another-boot', written_at = ?1",
            [process::boot_time().unwrap() - 3600],
        )
        .unwrap();
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    assert!(matches!(
        guard.takeover(),
        Takeover::Stale {
            staleness: Staleness::PidReused { .. },
            ..
        }
    ));
    drop(guard);

    // No such process any more (reaped).
    let mut sleeper = sleeper;
    let gone = sleeper.pid();
    sleeper.0.kill().unwrap();
    sleeper.0.wait().unwrap();
    record_process(&e.db, "os4xsqd", &ProcessInfo { pid: gone, ..info });
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    assert_eq!(
        guard.takeover(),
        &Takeover::Stale {
            pid: gone,
            staleness: Staleness::NoProcess
        }
    );
}

#[test]
fn zombie_is_not_running() {
    let e = env();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // Not reaped yet: a zombie once it has exited.
    let mut info = None;
    for _ in 0..200 {
        if let Some(p) = process::read_process(pid).unwrap() {
            if p.has_exited() {
                info = Some(p);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let info = info.expect("child became a zombie");
    drop(PidStore::open(&e.db).unwrap());
    record_process(&e.db, "os4xsqd", &info);
    let store = PidStore::open(&e.db).unwrap();
    let rec = store.record("os4xsqd", 0).unwrap().unwrap();
    assert_eq!(
        assess(&rec, &process::boot_id().unwrap()).unwrap(),
        Liveness::Stale(Staleness::NoProcess)
    );
    child.wait().unwrap();
}

#[test]
fn release_after_forced_takeover_leaves_new_owner_alone() {
    let e = env();
    let sleeper = Sleeper::start();
    let info = sleeper_info(&sleeper);
    let program = name("os4xsqd");
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    // Another instance forced its way in and rewrote row and PID file.
    record_process(&e.db, "os4xsqd", &info);
    pid_file::write(&e.run, "os4xsqd", info.pid).unwrap();
    assert!(!guard.release().unwrap());
    let rec = PidStore::open(&e.db)
        .unwrap()
        .record("os4xsqd", 0)
        .unwrap()
        .unwrap();
    assert_eq!(rec.pid, Some(info.pid));
    assert_eq!(
        pid_file::read(&e.run.join("os4xsqd.pid")).unwrap(),
        pid_file::Content::Pid(info.pid)
    );
}

#[test]
fn unwritable_pid_dir_gives_the_row_back() {
    let e = env();
    std::fs::create_dir_all(e.run.parent().unwrap()).unwrap();
    std::fs::write(&e.run, "a file, not a directory").unwrap();
    let program = name("os4xsqd");
    let err = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap_err();
    assert!(
        matches!(err, ClaimError::Store(Error::PidFile { .. })),
        "{err}"
    );
    let rec = PidStore::open(&e.db)
        .unwrap()
        .record("os4xsqd", 0)
        .unwrap()
        .unwrap();
    assert_eq!(rec.pid, None);
}

#[test]
fn reset_refuses_live_and_clears_stale() {
    let e = env();
    let sleeper = Sleeper::start();
    let info = sleeper_info(&sleeper);
    let mut store = PidStore::open(&e.db).unwrap();
    record_process(&e.db, "os4xsqd", &info);
    pid_file::write(&e.run, "os4xsqd", info.pid).unwrap();

    let err = store.reset("os4xsqd", 0, false, &e.run).unwrap_err();
    assert!(matches!(err, ResetError::Live { pid, .. } if pid == info.pid));
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        store.record("os4xsqd", 0).unwrap().unwrap().pid,
        Some(info.pid)
    );
    assert!(e.run.join("os4xsqd.pid").exists());

    let forced = store.reset("os4xsqd", 0, true, &e.run).unwrap();
    assert!(forced.row_cleared);
    assert!(matches!(forced.previous, Liveness::Running(_)));
    assert_eq!(forced.pid_file_removed, Some(e.run.join("os4xsqd.pid")));

    // Stale: PID of the sleeper under another start time.
    record_process(
        &e.db,
        "os4xsqd",
        &ProcessInfo {
            start_ticks: info.start_ticks + 7,
            ..info.clone()
        },
    );
    let report = store.reset("os4xsqd", 0, false, &e.run).unwrap();
    assert!(report.row_cleared);
    assert_eq!(report.previous_pid, Some(info.pid));
    assert_eq!(report.pid_file_removed, None);

    let again = store.reset("os4xsqd", 0, false, &e.run).unwrap();
    assert!(!again.row_cleared, "nothing left to do");
    assert_eq!(again.previous, Liveness::Stopped);
    assert!(sleeper.0.id() > 0, "reset never touches the process");
}

#[test]
fn program_names() {
    assert!(ProgramName::new("os4xrd_capi_2").is_ok());
    assert!(ProgramName::new("os4xrd_tcpip_tls").is_ok());
    for bad in ["", "../etc/passwd", "a b", "x/y", &"a".repeat(65)] {
        assert!(ProgramName::new(bad).is_err(), "{bad:?}");
    }
}

/// Many connections opening a database that does not exist yet: creation,
/// WAL switch and migration race; all must succeed.
#[test]
fn concurrent_first_open() {
    let e = env();
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    PidStore::open(&e.db).map(drop)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let ours = os4x_store::open_existing(e.db.as_path()).unwrap().unwrap();
    assert_eq!(migrate::version(&ours, COMPONENT).unwrap(), 3);
}

/// One boot can show two boot ids (nspawn's overmount vs. the kernel's in a
/// service with ProtectKernelTunables=): a row written in this boot under
/// another boot id is still the live process; one written before this boot
/// began is stale.
#[test]
fn other_boot_id_counts_only_for_rows_older_than_the_boot() {
    let e = env();
    let sleeper = Sleeper::start();
    let info = sleeper_info(&sleeper);
    drop(PidStore::open(&e.db).unwrap());
    record_process(&e.db, "sleep", &info);
    let c = Connection::open(&e.db).unwrap();
    c.execute(
        "UPDATE os4x_pids SET boot_id = 'another-view-of-this-boot' WHERE program = 'sleep'",
        [],
    )
    .unwrap();
    let store = PidStore::open(&e.db).unwrap();
    let boot = process::boot_id().unwrap();
    let rec = store.record("sleep", 0).unwrap().unwrap();
    assert!(matches!(assess(&rec, &boot).unwrap(), Liveness::Running(_)));

    let before_boot = process::boot_time().unwrap() - 60;
    c.execute(
        "UPDATE os4x_pids SET written_at = ?1 WHERE program = 'sleep'",
        [before_boot],
    )
    .unwrap();
    let rec = store.record("sleep", 0).unwrap().unwrap();
    assert_eq!(
        assess(&rec, &boot).unwrap(),
        Liveness::Stale(Staleness::PidReused { by: "sleep".into() })
    );
    // Same boot id: the write time does not matter.
    c.execute("UPDATE os4x_pids SET boot_id = ?1", [&boot])
        .unwrap();
    let rec = store.record("sleep", 0).unwrap().unwrap();
    assert!(matches!(assess(&rec, &boot).unwrap(), Liveness::Running(_)));
}

#[test]
fn rows_are_per_host_and_another_hosts_process_does_not_block_a_claim() {
    let e = env();
    let sleeper = Sleeper::start();
    let info = sleeper_info(&sleeper);
    drop(PidStore::open(&e.db).unwrap());
    // The same program and server id recorded on another machine (a live
    // PID there means nothing here).
    Connection::open(&e.db)
        .unwrap()
        .execute(
            "INSERT INTO os4x_pids (program, serverID, pid, start_ticks, boot_id, executable, written_at, host)
             VALUES ('os4xsqd', 0, ?1, ?2, 'their-boot', 'os4xsqd', unixepoch(), 'other-host')",
            params![info.pid, info.start_ticks as i64],
        )
        .unwrap();
    let program = name("os4xsqd");
    let guard = PidStore::open(&e.db)
        .unwrap()
        .claim(&req(&program, &e.run, false))
        .unwrap();
    assert_eq!(guard.takeover(), &Takeover::Free);
    let store = PidStore::open(&e.db).unwrap();
    let mine = store.record("os4xsqd", 0).unwrap().unwrap();
    assert_eq!(mine.host, process::hostname());
    assert_eq!(mine.pid, Some(std::process::id() as i32));
    let all = store.all_records().unwrap();
    let hosts: Vec<&str> = all.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(hosts.contains(&"other-host") && hosts.contains(&process::hostname().as_str()));
    assert_eq!(store.records(0).unwrap().len(), 1, "this host's rows only");
    drop(guard);
    let other = store
        .all_records()
        .unwrap()
        .into_iter()
        .find(|r| r.host == "other-host")
        .unwrap();
    assert_eq!(
        other.pid,
        Some(info.pid),
        "the release leaves the other host's row"
    );
}
