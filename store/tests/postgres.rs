//! The PostgreSQL backend against a real server (Debian's `postgresql`,
//! started by the harness in a temporary directory on 127.0.0.1): the
//! migrations give the same tables and versions as on SQLite, the shared
//! dialect behaves the same on both, and TLS to the server is verified.

use os4x_store::migrate;
use os4x_store::schema;
use os4x_store::sql::{params, OptionalExtension};
use os4x_store::testing::{shared_server, PgServer};
use os4x_store::{Backend, Connection, Location};

fn fresh_pg() -> Location {
    Location::parse(&shared_server().create_database()).unwrap()
}

fn fresh_sqlite(dir: &tempfile::TempDir) -> Location {
    Location::Sqlite(dir.path().join("os4x.db"))
}

/// Both backends, freshly migrated.
fn both(dir: &tempfile::TempDir) -> Vec<Connection> {
    vec![
        os4x_store::open(fresh_sqlite(dir)).unwrap(),
        os4x_store::open(fresh_pg()).unwrap(),
    ]
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let sql = match conn.backend() {
        Backend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name"),
        Backend::Postgres => format!(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY column_name"
        ),
    };
    // PostgreSQL folds unquoted names to lower case (`serverID`).
    conn.query_map(&sql, [], |r| {
        r.get::<_, String>(0).map(|n| n.to_lowercase())
    })
    .unwrap()
}

#[test]
fn the_same_migrations_give_the_same_tables_columns_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let [lite, pg]: [Connection; 2] = both(&dir).try_into().unwrap();
    assert_eq!(pg.backend(), Backend::Postgres);
    let tables = lite.tables().unwrap();
    assert!(tables.contains(&"os4x_send_queue".to_owned()), "{tables:?}");
    assert_eq!(pg.tables().unwrap(), tables);
    for t in &tables {
        assert_eq!(columns(&pg, t), columns(&lite, t), "columns of {t}");
    }
    for c in schema::ALL {
        assert_eq!(
            migrate::version(&pg, c.name).unwrap(),
            c.version(),
            "{}",
            c.name
        );
    }
}

#[test]
fn reopening_a_migrated_server_database_keeps_its_rows() {
    let loc = fresh_pg();
    let pg = os4x_store::open(&loc).unwrap();
    pg.execute(
        "INSERT INTO os4x_pids (program, serverID, pid) VALUES ('os4xsqd', 0, 42)",
        [],
    )
    .unwrap();
    drop(pg);
    let pg = os4x_store::open(&loc).unwrap();
    let pid: i64 = pg
        .query_row(
            "SELECT pid FROM os4x_pids WHERE program = ?1",
            ["os4xsqd"],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pid, 42);
}

#[test]
fn the_shared_dialect_means_the_same_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    for mut conn in both(&dir) {
        let b = conn.backend();
        // Partner IDs compare without case (COLLATE NOCASE), and a
        // second row for the same partner is a constraint violation.
        conn.execute(
            "INSERT INTO os4x_partners (odette_id, password_in, password_out, created_at, updated_at) \
             VALUES (?1, 'A', 'B', unixepoch(), unixepoch())",
            ["O0013000000ABC"],
        )
        .unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM os4x_partners WHERE odette_id = ?1",
                ["o0013000000abc"],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{b:?}: case-insensitive partner id");
        let e = conn
            .execute(
                "INSERT INTO os4x_partners (odette_id, password_in, password_out, created_at, updated_at) \
                 VALUES ('o0013000000abc', 'A', 'B', 0, 0)",
                [],
            )
            .unwrap_err();
        assert!(e.is_constraint(), "{b:?}: {e}");
        // RETURNING ids that follow each other; SUM reads as an integer.
        let a = conn
            .insert_returning_id(
                "INSERT INTO os4x_send_queue (partner, dataset_name, file_timestamp, user_data, \
                 originator, destination, format, max_record_size, description, priority, \
                 source_path, outbox_path, size, state, next_attempt_at, created_at, updated_at) \
                 VALUES (?1, 'DSN', '', '', 'ME', ?1, 'U', 0, '', 0, '/s', '', ?2, 'queued', 0, 0, 0) \
                 RETURNING id",
                params!["O0013000000ABC", 5_000_000_000_i64],
            )
            .unwrap();
        let c = conn
            .insert_returning_id(
                "INSERT INTO os4x_send_queue (partner, dataset_name, file_timestamp, user_data, \
                 originator, destination, format, max_record_size, description, priority, \
                 source_path, outbox_path, size, state, next_attempt_at, created_at, updated_at) \
                 VALUES (?1, 'DSN', '', '', 'ME', ?1, 'U', 0, '', 0, '/s', '', ?2, 'queued', 0, 0, 0) \
                 RETURNING id",
                params!["O0013000000ABC", 7_i64],
            )
            .unwrap();
        assert_eq!(c, a + 1, "{b:?}");
        let total: i64 = conn
            .query_row("SELECT sum(size) FROM os4x_send_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, 5_000_000_007, "{b:?}");
        // An integer parameter where the server infers INT4 (`?1 + 1`).
        let v: i64 = conn
            .query_row("SELECT ?1 + 1", [41_i64], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 42, "{b:?}");
        // Blobs and NULLs round-trip; missing rows are None.
        conn.execute(
            "UPDATE os4x_send_queue SET file_hash = ?2 WHERE id = ?1",
            params![a, vec![0_u8, 255, 7]],
        )
        .unwrap();
        let (hash, none): (Vec<u8>, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT a.file_hash, b.file_hash FROM os4x_send_queue a, os4x_send_queue b \
                 WHERE a.id = ?1 AND b.id = ?2",
                [a, c],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((hash, none), (vec![0, 255, 7], None), "{b:?}");
        let missing: Option<i64> = conn
            .query_row("SELECT id FROM os4x_send_queue WHERE id = -1", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        assert_eq!(missing, None);
        // A dropped transaction rolls back; a committed one stays.
        {
            let tx = conn.transaction_immediate().unwrap();
            tx.execute("DELETE FROM os4x_send_queue", []).unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM os4x_send_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "{b:?}: rolled back");
        let tx = conn.transaction().unwrap();
        tx.execute("DELETE FROM os4x_send_queue WHERE id = ?1", [a])
            .unwrap();
        tx.commit().unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM os4x_send_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{b:?}: committed");
    }
}

#[test]
fn immediate_transactions_exclude_each_other_across_connections() {
    let loc = fresh_pg();
    let mut a = os4x_store::open(&loc).unwrap();
    let b = os4x_store::open(&loc).unwrap();
    let tx = a.transaction_immediate().unwrap();
    let started = std::time::Instant::now();
    let waiter = std::thread::spawn(move || {
        let mut b = b;
        let t = b.transaction_immediate().unwrap();
        t.commit().unwrap();
        started.elapsed()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    tx.commit().unwrap();
    let waited = waiter.join().unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(250),
        "the second writer went ahead after {waited:?}"
    );
}

#[test]
fn a_server_that_is_not_there_is_reported_with_its_address() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let loc = Location::parse(&format!(
        "postgres://os4x:secret@127.0.0.1:{port}/os4x?sslmode=disable"
    ))
    .unwrap();
    let e = os4x_store::open(&loc).unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(!e.contains("secret"), "password shown: {e}");
}

/// A CA and a server certificate for 127.0.0.1, PEM.
fn pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "os4x test DB CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_to_the_server_is_verified_against_sslrootcert() {
    let (ca, cert, key) = pki();
    let server = PgServer::start_with(
        &[
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ],
        |data| {
            std::fs::write(data.join("server.crt"), &cert).map_err(|e| e.to_string())?;
            std::fs::write(data.join("server.key"), &key).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .map_err(|e| e.to_string())?;
            // Only TLS connections over TCP are let in.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .map_err(|e| e.to_string())
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let base = server.url("postgres");
    let open = |query: &str| os4x_store::open(Location::parse(&format!("{base}?{query}")).unwrap());

    let conn = open(&format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_file.display()
    ))
    .unwrap();
    let ssl: bool = conn
        .query_row(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(ssl, "the session is encrypted");
    open(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        ca_file.display()
    ))
    .unwrap();
    open("sslmode=require").unwrap();

    // Another CA: refused. No TLS: the server refuses.
    let (other_ca, _, _) = pki();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, other_ca).unwrap();
    let e = open(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let e = open("sslmode=disable").unwrap_err().to_string();
    assert!(e.contains("pg_hba") || e.contains("no encryption"), "{e}");
}
