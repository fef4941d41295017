//! The receive daemons as real processes: socket activation and the
//! `os4xrd` master.

mod rd_support;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pidstore::PidStore;
use rd_support::*;

const TCPIP: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip");
const MASTER: &str = env!("CARGO_BIN_EXE_os4xrd");

/// Kills the process on drop so a failing test leaves nothing behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn running_pids(db: &Path) -> Vec<(String, i32)> {
    PidStore::open(db)
        .unwrap()
        .records(0)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.pid.map(|p| (r.program, p)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_an_inherited_socket() {
    // The configured address cannot be bound here (TEST-NET-1 is not
    // local), so serving proves the inherited socket is used.
    let station = Station::new("[tcp]\nlisten = [\"192.0.2.1:3305\"]\n");
    station.add_partner(|_| {});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    // `exec` keeps the shell's PID, so LISTEN_PID=$$ names the daemon.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(TCPIP)
        .arg("--config")
        .arg(&station.config_path)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "oftp")
        .stdin(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            // fd 3 = the listening socket, without close-on-exec.
            if fd == 3 {
                nix::fcntl::fcntl(
                    3,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            } else {
                nix::unistd::dup2(fd, 3)?;
            }
            Ok(())
        });
    }
    let mut daemon = Guard(cmd.spawn().unwrap());
    drop(listener); // the daemon holds its own copy now

    let data = content(1_234_567, 21);
    let sent = send_tcp(addr, "ACTIVATED", data.clone(), 0).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert!(std::fs::read(station.partner_inbox().join("ACTIVATED")).unwrap() == data);

    let db = station.config.database.sqlite_path().to_owned();
    let pid = daemon.0.id() as i32;
    assert_eq!(running_pids(&db), vec![("os4xrd_tcpip".to_owned(), pid)]);
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut daemon.0, Duration::from_secs(15)).expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(running_pids(&db).is_empty(), "PID entry released");
}

/// `(pid, args)` of the children of `parent`.
fn children(parent: u32) -> Vec<(i32, String)> {
    let out = Command::new("ps")
        .args(["-eo", "pid=,ppid=,args="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pid: i32 = it.next()?.parse().ok()?;
            let ppid: u32 = it.next()?.parse().ok()?;
            (ppid == parent).then(|| (pid, it.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

fn program_of(args: &str) -> String {
    let exe = args.split_whitespace().next().unwrap_or("");
    Path::new(exe)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn wait_children(parent: u32, want: &[&str], within: Duration) -> Vec<(i32, String)> {
    let deadline = Instant::now() + within;
    loop {
        let mut found: Vec<(i32, String)> = children(parent)
            .into_iter()
            .map(|(pid, args)| (pid, program_of(&args)))
            .collect();
        found.sort_by(|a, b| a.1.cmp(&b.1));
        let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
        if names == want || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn master_runs_restarts_and_stops_the_children() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let station = Station::new(&format!(
        "[tcp]\nlisten = [\"127.0.0.1:0\"]\n[tls]\nlisten = [\"127.0.0.1:0\"]\n\
         certificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert.cert_pem.display(),
        cert.key_pem.display()
    ));
    let db = station.config.database.sqlite_path().to_owned();
    let mut master = Guard(
        Command::new(MASTER)
            .arg("--config")
            .arg(&station.config_path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mpid = master.0.id();
    let want = ["os4xrd_tcpip", "os4xrd_tcpip_tls"];
    let first = wait_children(mpid, &want, Duration::from_secs(20));
    let names: Vec<&str> = first.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, want, "ps shows both children");

    // Every daemon holds its PID entry.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pids = running_pids(&db);
        pids.sort();
        let mut expect = vec![
            ("os4xrd".to_owned(), mpid as i32),
            ("os4xrd_tcpip".to_owned(), first[0].0),
            ("os4xrd_tcpip_tls".to_owned(), first[1].0),
        ];
        expect.sort();
        if pids == expect {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PID table {pids:?}, expected {expect:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A child that dies is restarted.
    let killed = first[0].0;
    kill(Pid::from_raw(killed), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let restarted = loop {
        let now = wait_children(mpid, &want, Duration::from_secs(1));
        if let Some((pid, _)) = now
            .iter()
            .find(|(p, n)| n == "os4xrd_tcpip" && *p != killed)
        {
            break *pid;
        }
        assert!(Instant::now() < deadline, "child not restarted: {now:?}");
    };
    assert_ne!(restarted, killed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !running_pids(&db).contains(&("os4xrd_tcpip".to_owned(), restarted)) {
        assert!(
            Instant::now() < deadline,
            "restarted child claimed its entry"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM stops everything and clears the PID table.
    kill(Pid::from_raw(mpid as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut master.0, Duration::from_secs(30)).expect("master stops");
    assert!(status.success(), "{status:?}");
    assert!(children(mpid).is_empty());
    for (pid, _) in wait_children(mpid, &[], Duration::from_secs(1)) {
        panic!("child {pid} still running");
    }
    let gone = |pid: i32| kill(Pid::from_raw(pid), None).is_err();
    assert!(gone(restarted) && gone(first[1].0), "children ended");
    assert!(running_pids(&db).is_empty(), "{:?}", running_pids(&db));
}
