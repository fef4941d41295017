//! End-to-end PID bookkeeping with real daemon processes (`os4xdebugd`), a
//! real SQLite file and real signals.

#[path = "pid_support/mod.rs"]
mod support;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

#[test]
fn second_start_is_refused_while_the_daemon_runs() {
    let env = Env::new("");
    let mut first = env.start(&[]);
    let (status, log) = env.run_to_exit(&[]);
    assert_eq!(status.code(), Some(75), "log:\n{log}");
    let pid = first.pid();
    let db = env.db_shown();
    let config = env.config.display();
    for expected in [
        format!("ERROR: There seems to run another os4xdebugd with pid {pid}!\n"),
        format!("clear it in database {db}:\n"),
        "  UPDATE os4x_pids SET pid=-1 WHERE program='os4xdebugd' AND serverID=0\n".to_owned(),
        format!("  os4x-pidctl --config {config} reset os4xdebugd\n"),
        "or start os4xdebugd with -f to take over regardless".to_owned(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    // The refused start changed nothing.
    assert!(first.is_alive());
    assert_eq!(env.recorded_pid(), i64::from(pid));
    assert_eq!(
        std::fs::read_to_string(env.pid_file()).unwrap(),
        pid.to_string()
    );
    assert_eq!(first.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn pid_file_content_mode_and_removal() {
    let env = Env::new("");
    assert!(!env.run.exists(), "tmp_dir is created by the daemon");
    // A restrictive umask must not change the PID file's mode.
    let (cmd, log) = env.debugd(&[]);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 077; exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("OS4X_CONFIG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let daemon = Daemon {
        child: sh.spawn().unwrap(),
        log,
    };
    assert_eq!(env.next_notification(), "READY=1");
    let pid = daemon.pid();
    let file = env.pid_file();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        pid.to_string().as_bytes(),
        "PID without newline"
    );
    assert_eq!(mode_of(&file), 0o644);
    assert_eq!(mode_of(&env.run), 0o755);
    assert_eq!(env.recorded_pid(), i64::from(pid));

    let status = daemon.stop(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    assert_eq!(env.next_notification(), "STOPPING=1");
    assert!(!file.exists(), "PID file removed on SIGTERM");
    assert_eq!(env.recorded_pid(), -1);
    let leftovers: Vec<_> = std::fs::read_dir(&env.run).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigint_releases_too() {
    let env = Env::new("");
    let daemon = env.start(&[]);
    assert_eq!(daemon.stop(Signal::SIGINT).code(), Some(0));
    assert_eq!(env.recorded_pid(), -1);
    assert!(!env.pid_file().exists());
}

#[test]
fn kill_9_leaves_a_stale_entry_that_the_next_start_takes_over() {
    let env = Env::new("");
    let first = env.start(&[]);
    let old = first.pid();
    let status = first.stop(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(9));

    let s = env.debugd_status();
    assert_eq!(s["state"], "stale_no_process", "{s:#}");
    assert_eq!(s["pid"], old);
    assert_eq!(s["pid_file"]["state"], "present", "left behind by kill -9");
    let table = stdout(&env.pidctl(&["status"]));
    assert!(table.contains("stale: no process"), "{table}");

    let second = env.start(&[]);
    assert!(
        second.log().contains("taking over stale PID entry"),
        "{}",
        second.log()
    );
    let s = env.debugd_status();
    assert_eq!(s["state"], "running");
    assert_eq!(s["pid"], second.pid());
    assert_eq!(s["pid_file"]["state"], "present");
    assert_eq!(second.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn pid_reused_by_an_unrelated_process_is_stale_not_running() {
    let env = Env::new("");
    let first = env.start(&[]);
    assert_eq!(first.stop(Signal::SIGKILL).signal(), Some(9));
    // The row keeps the dead daemon's identity (start time, boot id,
    // executable); now its PID "wraps around" to a live `sleep`.
    let sleeper = Sleeper::start();
    env.sql()
        .execute(
            "UPDATE os4x_pids SET pid = ?1 WHERE program = 'os4xdebugd'",
            [sleeper.pid()],
        )
        .unwrap();
    let s = env.debugd_status();
    assert_eq!(s["state"], "stale_pid_reused", "{s:#}");
    assert_eq!(s["reused_by"], "sleep");
    assert_eq!(s["listening"], serde_json::Value::Null);
    let table = stdout(&env.pidctl(&["status"]));
    assert!(table.contains("stale: pid reused by sleep"), "{table}");

    // A row without identity (as hand-written or by the old product) is
    // judged by program name: `sleep` is not os4xdebugd either.
    env.sql()
        .execute(
            "UPDATE os4x_pids SET start_ticks = NULL, boot_id = NULL, executable = NULL",
            [],
        )
        .unwrap();
    assert_eq!(env.debugd_status()["state"], "stale_pid_reused");

    let second = env.start(&[]);
    assert_eq!(env.recorded_pid(), i64::from(second.pid()));
    let mut sleeper = sleeper;
    assert!(
        sleeper.0.try_wait().unwrap().is_none(),
        "the sleep process is left alone"
    );
    assert_eq!(second.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn force_takes_over_from_a_live_daemon() {
    let env = Env::new("");
    let mut first = env.start(&[]);
    let second = env.start(&["-f"]);
    assert!(
        second.log().contains("forced start"),
        "the override is logged:\n{}",
        second.log()
    );
    assert!(first.is_alive(), "-f does not stop the other process");
    assert_eq!(env.recorded_pid(), i64::from(second.pid()));
    let file = env.pid_file();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        second.pid().to_string()
    );

    // The displaced daemon stops without clobbering the new owner's entry.
    assert_eq!(first.stop(Signal::SIGTERM).code(), Some(0));
    assert_eq!(env.recorded_pid(), i64::from(second.pid()));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        second.pid().to_string()
    );

    assert_eq!(second.stop(Signal::SIGTERM).code(), Some(0));
    assert_eq!(env.recorded_pid(), -1);
    assert!(!file.exists());
}

/// Fifty daemons released at the same instant against a database that does
/// not exist yet: schema creation and claim both race. Exactly one may run.
#[test]
fn fifty_concurrent_starts_exactly_one_wins() {
    const N: usize = 50;
    let env = Env::new("");
    assert!(!env.db_exists());
    // Barrier: every shell blocks reading a FIFO until we write N lines.
    let fifo = env.dir.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // O_RDWR never blocks on a FIFO and keeps it open for late readers.
    let mut gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(0)
        .open(&fifo)
        .unwrap();
    let mut children = Vec::new();
    for _ in 0..N {
        let (cmd, log) = env.debugd(&[]);
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("read go < \"$0\"; exec \"$@\"")
            .arg(&fifo)
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env_remove("OS4X_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        children.push(Daemon {
            child: sh.spawn().unwrap(),
            log,
        });
    }
    // Wait until every shell sits in `read` on the FIFO.
    let deadline = Instant::now() + PATIENCE;
    for c in &children {
        let fd0 = format!("/proc/{}/fd/0", c.pid());
        while std::fs::read_link(&fd0).ok().as_deref() != Some(fifo.as_path()) {
            assert!(
                Instant::now() < deadline,
                "shell {} never reached the barrier",
                c.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    gate.write_all(&[b'\n'; N]).unwrap();

    let ready = env.next_notification();
    assert_eq!(ready, "READY=1");
    // All but the winner exit; the winner runs until told to stop.
    let mut exited = Vec::new();
    let mut running = Vec::new();
    for mut c in children {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = c.child.try_wait().unwrap() {
                exited.push((status, c.log()));
                break;
            }
            if env.recorded_pid() == i64::from(c.pid()) {
                running.push(c);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process {} neither exited nor won",
                c.pid()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(running.len(), 1, "exactly one winner");
    assert_eq!(exited.len(), N - 1);
    for (status, log) in &exited {
        assert_eq!(status.code(), Some(75), "log:\n{log}");
        assert!(
            log.contains("ERROR: There seems to run another os4xdebugd"),
            "{log}"
        );
        let lower = log.to_lowercase();
        assert!(
            !lower.contains("locked") && !lower.contains("busy") && !lower.contains("panic"),
            "{log}"
        );
    }
    let mut winner = running.pop().unwrap();
    assert!(winner.is_alive());
    let winner_pid = winner.pid();
    assert_eq!(
        std::fs::read_to_string(env.pid_file()).unwrap(),
        winner_pid.to_string()
    );
    assert_eq!(winner.stop(Signal::SIGTERM).code(), Some(0));
    assert_eq!(env.recorded_pid(), -1);
}

#[test]
fn bad_configuration_exits_78_naming_key_and_file() {
    let env = Env::new("srever_id = 1");
    let (status, log) = env.run_to_exit(&[]);
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(log.contains("srever_id"), "{log}");
    assert!(log.contains(&env.config.display().to_string()), "{log}");
    assert!(!env.db_exists(), "nothing touched");

    let env = Env::new("server_id = \"zero\"");
    let (status, log) = env.run_to_exit(&[]);
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(log.contains("key `server_id`"), "{log}");

    let out = env.pidctl(&["status"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("key `server_id`"), "{}", stderr(&out));

    let env = Env::new("");
    std::fs::remove_file(&env.config).unwrap();
    let (status, log) = env.run_to_exit(&[]);
    assert_eq!(
        status.code(),
        Some(78),
        "an explicitly named file must exist: {log}"
    );
    assert!(log.contains("does not exist"), "{log}");
}

#[test]
fn config_can_come_from_the_environment() {
    let env = Env::new("server_id = 7");
    let (cmd, log) = env.debugd(&[]);
    // The same command without --config, but OS4X_CONFIG instead.
    let mut plain = Command::new(cmd.get_program());
    plain
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("OS4X_CONFIG", &env.config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let daemon = Daemon {
        child: plain.spawn().unwrap(),
        log,
    };
    assert_eq!(env.next_notification(), "READY=1");
    let sid: i64 = env
        .sql()
        .query_row(
            "SELECT serverID FROM os4x_pids WHERE pid = ?1",
            [daemon.pid()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sid, 7);
    assert_eq!(daemon.stop(Signal::SIGTERM).code(), Some(0));
}
