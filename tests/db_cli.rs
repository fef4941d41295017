//! `os4x db status|migrate|copy` as real processes: against a SQLite file
//! and a real PostgreSQL server (started by the harness), including the
//! move of an existing installation from SQLite to PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use os4x_store::testing::shared_server;
use os4x_store::Location;

const OS4X: &str = env!("CARGO_BIN_EXE_os4x");
const PARTNER: &str = "O0013000000PARTNER";

fn os4x(config: &Path, args: &[&str]) -> Output {
    Command::new(OS4X)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OS4X_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{:?}: {}", out.status, text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A configuration with `database`; its path.
fn config(dir: &Path, name: &str, database: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\ntmp_dir = \"{}\"\ndatabase = \"{database}\"\n\
             [local]\nodette_id = \"O0013000000OURS\"\npassword = \"OURPW\"\n",
            dir.join("state").display(),
            dir.join("run").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn status_reports_versions_and_migrate_brings_an_old_database_up_to_date() {
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            "sqlite" => format!("sqlite://{}", dir.path().join("state/os4x.db").display()),
            _ => shared_server().create_database(),
        };
        let cfg = config(dir.path(), "os4x.toml", &url);
        if backend == "sqlite" {
            let out = os4x(&cfg, &["db", "status"]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(text(&out).contains("does not exist yet"), "{}", text(&out));
            std::fs::create_dir_all(dir.path().join("state")).unwrap();
        }
        // A database an older build made: only the PID table.
        let location = Location::parse(&url).unwrap();
        {
            let mut conn = os4x_store::connect_unmigrated(&location).unwrap();
            let pids = os4x_store::schema::PIDS;
            os4x_store::migrate::apply(&mut conn, pids.name, pids.migrations).unwrap();
        }
        let out = os4x(&cfg, &["db", "status"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{backend}: {t}");
        assert!(
            t.contains("pidstore     version  3 of  3  up to date"),
            "{backend}: {t}"
        );
        assert!(t.contains("not created"), "{backend}: {t}");
        assert!(t.contains("os4x db migrate"), "{backend}: {t}");
        if backend == "postgres" {
            assert!(t.contains("(PostgreSQL)"), "{t}");
        }

        let out = ok(&os4x(&cfg, &["db", "migrate"]));
        assert!(
            out.contains("os4x         version 0 ->"),
            "{backend}: {out}"
        );
        assert!(
            out.contains("pidstore     version 3 (up to date)"),
            "{backend}: {out}"
        );
        let out = ok(&os4x(&cfg, &["db", "status"]));
        assert!(
            !out.contains("needs migration") && !out.contains("not created"),
            "{out}"
        );
        assert_eq!(
            out.matches("up to date").count(),
            os4x_store::schema::ALL.len(),
            "{out}"
        );
    }
}

fn queue_ids(cfg: &Path) -> Vec<i64> {
    let v: serde_json::Value = serde_json::from_str(&ok(&os4x(cfg, &["queue", "--json"]))).unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn an_installation_moves_from_sqlite_to_postgres_with_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("state/os4x.db").display());
    let lite = config(dir.path(), "lite.toml", &sqlite);
    ok(&os4x(
        &lite,
        &[
            "partner",
            "add",
            PARTNER,
            "--password-in",
            "IN",
            "--password-out",
            "OUT",
        ],
    ));
    ok(&os4x(
        &lite,
        &[
            "route",
            "set",
            PARTNER,
            "--host",
            "127.0.0.1",
            "--port",
            "3305",
        ],
    ));
    let file = dir.path().join("ORDERS.EDI");
    std::fs::write(&file, b"UNA:+.? 'UNB+UNOC:3'").unwrap();
    for _ in 0..3 {
        ok(&os4x(
            &lite,
            &["send", file.to_str().unwrap(), "--to", PARTNER],
        ));
    }
    let ids = queue_ids(&lite);
    assert_eq!(ids.len(), 3);

    let target = shared_server().create_database();
    // Daemons of the installation still running: refused.
    {
        let store = pidstore::PidStore::open(dir.path().join("state/os4x.db")).unwrap();
        let program = pidstore::ProgramName::new("os4xsqd").unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let guard = store
            .claim(&pidstore::ClaimRequest {
                program: &program,
                server_id: 0,
                force: false,
                pid_dir: &run,
                invocation_id: None,
            })
            .unwrap();
        let out = os4x(&lite, &["db", "copy", "--to", &target]);
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out).contains("os4xsqd"), "{}", text(&out));
        assert!(text(&out).contains("stop them first"), "{}", text(&out));
        guard.release().unwrap();
    }

    let out = ok(&os4x(&lite, &["db", "copy", "--to", &target]));
    assert!(out.contains("os4x_partners"), "{out}");
    assert!(
        out.contains("os4x_send_queue                      3 rows"),
        "{out}"
    );
    assert!(out.contains("now set database"), "{out}");

    // The installation on the server: same partner, route and queue.
    let pg = config(dir.path(), "pg.toml", &target);
    let partners: serde_json::Value =
        serde_json::from_str(&ok(&os4x(&pg, &["partner", "list", "--json"]))).unwrap();
    assert_eq!(partners[0]["id"], PARTNER);
    assert!(ok(&os4x(&pg, &["route", "list"])).contains("127.0.0.1"));
    assert_eq!(queue_ids(&pg), ids);
    // New rows continue after the copied ids.
    ok(&os4x(
        &pg,
        &["send", file.to_str().unwrap(), "--to", PARTNER],
    ));
    let after = queue_ids(&pg);
    assert_eq!(after.len(), 4);
    assert!(
        after.iter().max() > ids.iter().max(),
        "{after:?} after {ids:?}"
    );

    // A second copy into the same database is refused and changes nothing.
    let out = os4x(&lite, &["db", "copy", "--to", &target]);
    assert_eq!(out.status.code(), Some(74), "{}", text(&out));
    assert!(
        text(&out).contains("already holds os4x data"),
        "{}",
        text(&out)
    );
    assert_eq!(queue_ids(&pg).len(), 4);

    // Bad targets get a clear message.
    let out = os4x(&lite, &["db", "copy", "--to", "mysql://x/y"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("postgres://"), "{}", text(&out));
}
