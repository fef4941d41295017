//! The receive daemons as real processes: socket activation and the
//! `os4xrd` master.

#[path = "notify_support/mod.rs"]
mod notify;
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
const TLS: &str = env!("CARGO_BIN_EXE_os4xrd_tcpip_tls");

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

fn running_pids(db: &os4x::db::Location) -> Vec<(String, i32)> {
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
    let mut daemon = activated(TCPIP, &station.config_path, listener, &[]);

    let data = content(1_234_567, 21);
    let sent = send_tcp(addr, "ACTIVATED", data.clone(), 0).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert!(std::fs::read(station.partner_inbox().join("ACTIVATED")).unwrap() == data);

    let db = station.config.database.clone();
    let pid = daemon.0.id() as i32;
    assert_eq!(running_pids(&db), vec![("os4xrd_tcpip".to_owned(), pid)]);
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut daemon.0, Duration::from_secs(15)).expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(running_pids(&db).is_empty(), "PID entry released");
}

/// Starts `program` as systemd would with socket activation: `listener`
/// as fd 3, `LISTEN_FDS=1`, `LISTEN_PID` and `WATCHDOG_PID` set to the
/// daemon's own PID.
fn activated(
    program: &str,
    config: &Path,
    listener: std::net::TcpListener,
    env: &[(&str, &str)],
) -> Guard {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    // `exec` keeps the shell's PID, so $$ names the daemon.
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .arg("--config")
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "oftp")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
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
    let child = Guard(cmd.spawn().unwrap());
    drop(listener); // the daemon holds its own copy now
    child
}

/// Collects sd_notify messages sent to a socket in `dir`.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = notify::recv(&sock, &mut buf) {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    m.lock().unwrap().push(line.to_owned());
                }
            }
        });
        NotifySocket { path, messages }
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| pred(m))
            .count()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count(&pred) == 0 {
            assert!(
                Instant::now() < deadline,
                "no {what} in {:?}",
                self.messages.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_daemon_under_systemd_notify_watchdog_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cert = server_cert(dir.path(), "server");
    let station = Station::new(&format!(
        "[tls]\nlisten = [\"192.0.2.1:6619\"]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert.cert_pem.display(),
        cert.key_pem.display()
    ));
    station.add_partner(|_| {});
    let notify = NotifySocket::new(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let socket = notify.path.display().to_string();
    let mut daemon = activated(
        TLS,
        &station.config_path,
        listener,
        &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "200000")],
    );
    notify.wait_for("READY=1", |m| m == "READY=1");
    notify.wait_for("STATUS", |m| {
        m == "STATUS=0 sessions active, 0 connecting, 0 files received today"
    });

    let data = content(300_000, 5);
    let tls = tls_connect(addr, &tls_connector(&cert.cert_der, None))
        .await
        .unwrap();
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("TLS.ACTIVATED", data.clone(), 0)),
    )
    .await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    assert!(std::fs::read(station.partner_inbox().join("TLS.ACTIVATED")).unwrap() == data);
    notify.wait_for("STATUS after a file", |m| {
        m == "STATUS=0 sessions active, 0 connecting, 1 files received today"
    });
    // WatchdogSec=0.2s: pings at half the interval.
    let pings = notify.count(|m| m == "WATCHDOG=1");
    notify.wait_for("more watchdog pings", |m| m == "WATCHDOG=1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(notify.count(|m| m == "WATCHDOG=1") >= pings + 3);

    // SIGHUP: the renewed certificate is served, without a restart.
    let renewed = server_cert(dir.path(), "server");
    let pid = daemon.0.id() as i32;
    kill(Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let tls = loop {
        match tls_connect(addr, &tls_connector(&renewed.cert_der, None)).await {
            Ok(t) => break t,
            Err(e) => assert!(
                Instant::now() < deadline,
                "renewed certificate not served: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sent = send(
        tls,
        PARTNER,
        PARTNER_PW,
        Some(bytes_file("AFTER.HUP", content(10, 1), 0)),
    )
    .await;
    assert!(sent.end.unwrap().is_normal());
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "still the same process"
    );

    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut daemon.0, Duration::from_secs(15)).expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    notify.wait_for("STOPPING=1", |m| m == "STOPPING=1");
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
    let db = station.config.database.clone();
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
    let gone = |pid: i32| kill(Pid::from_raw(pid), None).is_err();
    assert!(gone(restarted) && gone(first[1].0), "children ended");
    assert!(running_pids(&db).is_empty(), "{:?}", running_pids(&db));
}

/// Forwards connections to `target`, client to server at about 1.3 MB/s.
async fn slow_proxy(target: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_stopped_mid_file_resumes_after_restart() {
    let station = Station::new("[tcp]\nlisten = [\"192.0.2.1:3305\"]\n");
    station.add_partner(|_| {});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let keep = listener.try_clone().unwrap(); // for the second daemon
    let mut daemon = activated(TCPIP, &station.config_path, listener, &[]);
    let proxy = slow_proxy(addr).await;
    let data = content(12_000_000, 41);

    let sending = tokio::spawn({
        let data = data.clone();
        async move { send_tcp(proxy, "STOPPED.MID", data, 0).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = daemon.0.id() as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut daemon.0, Duration::from_secs(30)).expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let cut = sending.await.unwrap();
    assert!(!cut.file_done(), "file cannot have completed");
    assert!(station.received_files().is_empty());
    assert_eq!(station.rows()[0].0, "partial");

    // A new daemon on the same socket; the partner restarts the file.
    let _daemon = activated(TCPIP, &station.config_path, keep, &[]);
    let sent = send_tcp(addr, "STOPPED.MID", data.clone(), data.len() as u64 / 1024).await;
    assert!(sent.end.as_ref().unwrap().is_normal(), "{:?}", sent.end);
    let at = sent.restart_position().unwrap();
    assert!(at > 1000, "resumed at {at} 1K blocks, not from the start");
    assert!(std::fs::read(station.partner_inbox().join("STOPPED.MID")).unwrap() == data);
}
