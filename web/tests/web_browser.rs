//! End to end in headless Chromium (WebDriver via chromedriver), against a
//! real os4x-web and a real os4xdebugd on 127.0.0.1: log in, see the
//! daemon with its real PID, kill -9 it and see it stale, press "Start
//! forced", accept the confirmation and see the new, really running PID; a
//! viewer has no such button and its POST is refused; a POST without the
//! CSRF token is refused. Takes screenshots of the main pages on the way
//! (into docs/screenshots/ with OS4X_WRITE_SCREENSHOTS=1).
//!
//! Needs the Debian packages `chromium` and `chromium-driver`. Without
//! them the test fails, unless OS4X_SKIP_BROWSER=1 says to skip it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{add_received_file, process_name, Client, Web};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a loopback port, stopped on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver(log: &Path) -> Driver {
    for _ in 0..3 {
        let port = support::free_port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Driver(child, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("chromedriver did not start; see {}", log.display());
}

/// Whether the browser test can run; panics with what to install unless
/// skipping was asked for.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("OS4X_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: browser test ({} missing; OS4X_SKIP_BROWSER=1)",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "the browser test needs {} : install the Debian packages `chromium` and \
         `chromium-driver` (apt-get install chromium chromium-driver), or set \
         OS4X_SKIP_BROWSER=1 to skip it",
        missing.join(" and ")
    );
}

fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var("OS4X_WRITE_SCREENSHOTS").as_deref() == Ok("1") {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&d).unwrap();
        (d, None)
    } else {
        let t = tempfile::tempdir().unwrap();
        (t.path().to_owned(), Some(t))
    }
}

async fn shot(b: &Browser, dir: &Path, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    assert_eq!(&png[1..4], b"PNG", "{name} is a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Polls `f` until it gives `Some`; panics with `what`.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(pid text, data-state)` of a program's row in the daemon table.
async fn row(b: &Browser, program: &str) -> Option<(String, String)> {
    let tr = b
        .find(Locator::Css(&format!(
            "#daemons tr[data-program=\"{program}\"]"
        )))
        .await
        .ok()?;
    let state = tr.attr("data-state").await.ok()??;
    let pid = tr
        .find(Locator::Css("td.pid"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some((pid, state))
}

async fn login(b: &Browser, web: &Web, user: &str) {
    b.goto(&web.url("/login")).await.unwrap();
    b.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(support::PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the daemons page after login", || async {
        b.current_url()
            .await
            .ok()
            .filter(|u| u.path() == "/daemons")
    })
    .await;
}

async fn logout(b: &Browser) {
    b.find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until("the login page after logout", || async {
        b.current_url().await.ok().filter(|u| u.path() == "/login")
    })
    .await;
}

/// A `fetch` POST from the page, as its own script would send it (with
/// or without the CSRF header); returns status and body.
async fn post_from_page(b: &Browser, url: &str, with_csrf: bool) -> (u64, Value) {
    let script = r#"
        const [url, withCsrf, done] = arguments;
        const headers = {};
        if (withCsrf) headers['X-CSRF-Token'] = document.querySelector('meta[name="csrf-token"]').content;
        fetch(url, { method: 'POST', headers, credentials: 'same-origin' })
          .then(async r => done([r.status, await r.json()]))
          .catch(e => done([0, String(e)]));
    "#;
    let v = b
        .execute_async(script, vec![json!(url), json!(with_csrf)])
        .await
        .expect("fetch from the page");
    (v[0].as_u64().unwrap_or(0), v[1].clone())
}

/// Data so the pages show something.
fn populate(web: &Web) {
    let admin = Client::login(web, "admin");
    for (id, name, dir) in [
        ("O0013000000PARTNER", "Partner GmbH", "both"),
        ("O0013000000SUPPLIER", "Supplier AG", "receive"),
        ("O0013000000CARRIER", "Carrier Logistics", "send"),
    ] {
        let a = admin.post_json(
            "/api/partners",
            &json!({ "id": id, "name": name, "password_in": "PWIN", "password_out": "PWOUT", "direction": dir }),
        );
        assert_eq!(a.status, 201, "{}", a.text());
    }
    admin.json(
        "PUT",
        "/api/partners/O0013000000CARRIER",
        &json!({ "enabled": false }),
    );
    let op = Client::login(web, "operator");
    let mut ids = Vec::new();
    for (ds, size) in [("ORDERS", 18_000), ("DESADV", 4_200), ("INVOIC", 96_000)] {
        let a = op.upload(
            "/api/queue",
            &[("partner", "O0013000000PARTNER"), ("dataset", ds)],
            "x.edi",
            &vec![b'E'; size],
        );
        assert_eq!(a.status, 201, "{}", a.text());
        ids.push(a.json()["entry"]["id"].as_i64().unwrap());
    }
    assert_eq!(
        op.send("POST", &format!("/api/queue/{}/cancel", ids[1]))
            .status,
        200
    );
    add_received_file(web, "O0013000000SUPPLIER", "DELFOR", &vec![b'D'; 52_000]);
    let f = add_received_file(web, "O0013000000PARTNER", "INVOIC", &vec![b'I'; 7_300]);
    let conn = os4x_store::open(web.db()).unwrap();
    conn.execute(
        "UPDATE os4x_receipts_due SET state = 'sent', sent_at = created_at WHERE received_id = ?1",
        [f],
    )
    .unwrap();
    op.json("PUT", "/api/debug/os4xsqd", &json!({ "enabled": true }));
}

#[test]
fn browser_forced_start_roles_csrf_and_screenshots() {
    if !browser_available() {
        return;
    }
    let web = Web::start("", "");
    let mut debugd = web.start_debugd();
    let first = debugd.id() as i32;
    populate(&web);
    let (shots, _keep) = screenshot_dir();
    let work = tempfile::tempdir().unwrap();
    let driver = start_driver(&work.path().join("chromedriver.log"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--window-size=1360,860", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", work.path().join("profile").display()),
                ],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await
            .expect("WebDriver session with chromium");

        // Login page, then the daemon table with the real PID.
        b.goto(&web.url("/login")).await.unwrap();
        shot(&b, &shots, "login").await;
        login(&b, &web, "operator").await;
        let (pid, state) = until("os4xdebugd running in the table", || async {
            row(&b, "os4xdebugd").await.filter(|(_, s)| s == "running")
        })
        .await;
        assert_eq!(pid, first.to_string());
        assert_eq!(state, "running");

        // CSRF token missing: refused, the daemon untouched.
        let (status, body) = post_from_page(&b, "/api/daemons/os4xdebugd/stop", false).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains("CSRF"),
            "{body}"
        );
        assert_eq!(process_name(first).as_deref(), Some("os4xdebugd"));

        // kill -9: marked stale at the next refresh.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), nix::sys::signal::SIGKILL)
            .unwrap();
        let _ = debugd.wait();
        until("os4xdebugd marked stale", || async {
            row(&b, "os4xdebugd")
                .await
                .filter(|(p, s)| s == "stale_no_process" && *p == first.to_string())
        })
        .await;
        let stale = b
            .find(Locator::Css(
                "#daemons tr[data-program=\"os4xdebugd\"] td.state",
            ))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            stale.contains("stale") && stale.contains("no process"),
            "{stale}"
        );
        shot(&b, &shots, "daemons-stale").await;

        // Start forced: the dialog explains the risk; accept it.
        b.find(Locator::Css(
            "#daemons tr[data-program=\"os4xdebugd\"] button[data-action=\"start-forced\"]",
        ))
        .await
        .expect("start forced button for an operator")
        .click()
        .await
        .unwrap();
        let dialog = b.find(Locator::Id("confirm-forced")).await.unwrap();
        until("the confirmation dialog", || async {
            dialog.attr("open").await.ok().flatten()
        })
        .await;
        let text = dialog.text().await.unwrap();
        assert!(text.contains("two daemons run at once"), "{text}");
        assert!(text.contains("really sure"), "{text}");
        shot(&b, &shots, "daemons-confirm-forced").await;
        b.find(Locator::Id("forced-yes"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let (pid, _) = until("the new PID in the table", || async {
            row(&b, "os4xdebugd")
                .await
                .filter(|(p, s)| s == "running" && *p != first.to_string())
        })
        .await;
        let second: i32 = pid.parse().expect("numeric PID");
        assert_eq!(
            process_name(second).as_deref(),
            Some("os4xdebugd"),
            "really running"
        );
        assert_eq!(web.recorded_pid("os4xdebugd"), Some(second));
        let flash = b
            .find(Locator::Id("flash"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            flash.contains(&format!("started (forced), pid {second}")),
            "{flash}"
        );
        shot(&b, &shots, "daemons").await;
        // The node table below: this machine as node 0, alive, with the
        // daemons recorded on it.
        let node = until("the node table", || async {
            let text = b
                .find(Locator::Css("#nodes tr[data-server-id=\"0\"]"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains("os4xdebugd").then_some(text)
        })
        .await;
        assert!(node.contains("alive"), "{node}");

        // The other pages, as an admin (who sees every form).
        logout(&b).await;
        login(&b, &web, "admin").await;
        for page in ["partners", "queue", "received", "debug", "users"] {
            b.goto(&web.url(&format!("/{page}"))).await.unwrap();
            b.find(Locator::Css("table.grid")).await.unwrap();
            shot(&b, &shots, page).await;
        }

        // A viewer: no action buttons, and the POST is refused.
        b.goto(&web.url("/daemons")).await.unwrap();
        logout(&b).await;
        login(&b, &web, "viewer").await;
        until("the table for the viewer", || async {
            row(&b, "os4xdebugd")
                .await
                .filter(|(p, _)| *p == second.to_string())
        })
        .await;
        let buttons = b.find_all(Locator::Css("#daemons button")).await.unwrap();
        assert!(buttons.is_empty(), "a viewer sees no action buttons");
        let (status, body) = post_from_page(&b, "/api/daemons/os4xdebugd/start-forced", true).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains("viewer"),
            "{body}"
        );
        assert_eq!(
            web.recorded_pid("os4xdebugd"),
            Some(second),
            "nothing started"
        );
        b.close().await.unwrap();
    });
    drop(driver);
}
