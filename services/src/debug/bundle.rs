//! The problem-report archive of `os4x debug bundle`: a tar.gz an admin
//! can attach to a support request without leaking secrets.
//!
//! Contents (under `os4x-bundle-<time>/`): `README.txt`, `debug-records.jsonl`
//! (the ring since `--since`), `pidctl-status.json` (`os4x-pidctl status
//! --json`), `config.toml` (passwords, keys, secrets and tokens replaced by
//! `<redacted>`), `versions.txt`, `debug-switch.json`, and `tables/<name>.json`
//! with the newest rows of the received-files and send-queue tables when
//! they exist (credential-like columns left out).

use std::io::{self, Write};
use std::path::Path;

use anyhow::Context as _;
use os4x_store::Connection;

use super::proto::format_timestamp;
use crate::config::Config;

/// Rows per table in the bundle.
const TABLE_ROWS: u32 = 200;
/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// What the bundle contains, for the CLI's summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub records: u64,
    pub tables: Vec<String>,
    pub notes: Vec<String>,
}

/// Writes the bundle for records newer than `since_us` to `out`.
pub fn write_bundle(config: &Config, since_us: i64, out: &Path) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // May hold partner data: not world-readable.
        let _ = std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600));
    }
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let now_us = now_us();
    let prefix = format!(
        "os4x-bundle-{}",
        format_timestamp(now_us)
            .get(..19)
            .unwrap_or("")
            .replace(':', "")
    );
    let mut summary = Summary::default();
    let add = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(u64::try_from(now_us / 1_000_000).unwrap_or(0));
        h.set_cksum();
        tar.append_data(&mut h, format!("{prefix}/{name}"), data)
    };

    // Debug records.
    let mut records = Vec::new();
    let ring = super::ring_dir(&config.state_dir);
    match super::ring::read_since(&ring, since_us, |line, _| {
        records.extend_from_slice(line.as_bytes());
        records.push(b'\n');
        Ok(())
    }) {
        Ok(n) => summary.records = n,
        Err(e) => summary.notes.push(format!(
            "debug records unreadable in {}: {e}",
            ring.display()
        )),
    }
    add(&mut tar, "debug-records.jsonl", &records)?;

    // PID table.
    match status_json(config) {
        Ok(doc) => add(&mut tar, "pidctl-status.json", doc.as_bytes())?,
        Err(e) => summary.notes.push(format!("pidctl status: {e:#}")),
    }

    // Configuration.
    match &config.source {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match redact_config(&text) {
                Some(red) => add(&mut tar, "config.toml", red.as_bytes())?,
                // A parse error message could quote a secret: leave it out.
                None => summary.notes.push(format!(
                    "configuration {} does not parse; not included",
                    path.display()
                )),
            },
            Err(e) => summary
                .notes
                .push(format!("configuration {}: {e}", path.display())),
        },
        None => summary
            .notes
            .push("no configuration file: built-in defaults".into()),
    }

    // Database: versions, switch, tables.
    let db = &config.database;
    let conn = os4x_store::open_read_only(db).ok();
    let mut versions = format!(
        "os4x {}\nsqlite {}\nkernel {}\nhost {}\nbundle created {}\nrecords since {}\nserver_id {}\ndatabase {}\n",
        env!("CARGO_PKG_VERSION"),
        os4x_store::sqlite_version(),
        read_trim("/proc/sys/kernel/osrelease"),
        read_trim("/proc/sys/kernel/hostname"),
        format_timestamp(now_us),
        format_timestamp(since_us),
        config.server_id,
        db.describe(),
    );
    if let Some(conn) = &conn {
        if let Ok(rows) = query_json(
            conn,
            "SELECT component, version, updated_at FROM os4x_schema",
        ) {
            versions.push_str("schema ");
            versions.push_str(&rows.to_string());
            versions.push('\n');
        }
        if let Ok(rows) = query_json(
            conn,
            "SELECT * FROM os4x_debug_switch ORDER BY server_id, program",
        ) {
            add(&mut tar, "debug-switch.json", rows.to_string().as_bytes())?;
        }
        for table in recent_tables(conn) {
            match recent_rows(conn, &table) {
                Ok(rows) => {
                    add(
                        &mut tar,
                        &format!("tables/{table}.json"),
                        serde_json::to_string_pretty(&rows)
                            .unwrap_or_default()
                            .as_bytes(),
                    )?;
                    summary.tables.push(table);
                }
                Err(e) => summary.notes.push(format!("table {table}: {e}")),
            }
        }
    } else {
        summary
            .notes
            .push(format!("database {} not readable", db.describe()));
    }
    add(&mut tar, "versions.txt", versions.as_bytes())?;

    let mut readme = String::from(
        "os4x problem-report bundle. Secrets in the configuration are replaced by <redacted>.\n\
         debug-records.jsonl  debug records forwarded to os4xdebugd (JSON lines)\n\
         pidctl-status.json   os4x-pidctl status --json\n\
         config.toml          the configuration, redacted\n\
         versions.txt         program, SQLite, kernel and schema versions\n\
         tables/*.json        newest rows of the received-files and send-queue tables\n",
    );
    for n in &summary.notes {
        readme.push_str("note: ");
        readme.push_str(n);
        readme.push('\n');
    }
    add(&mut tar, "README.txt", readme.as_bytes())?;
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    file.sync_all()?;
    Ok(summary)
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The `os4x-pidctl status --json` document for `config`.
pub fn status_json(config: &Config) -> anyhow::Result<String> {
    let doc = status_document(config)?;
    Ok(serde_json::to_string_pretty(&doc)?)
}

/// What `os4x-pidctl status --json` prints, computed in-process (without
/// systemd's view; see [`status_document_with_systemd`]).
pub fn status_document(config: &Config) -> anyhow::Result<crate::pidctl::StatusDocument> {
    let (exists, rows) = status_rows(config)?;
    Ok(crate::pidctl::status_document(
        config.server_id,
        &config.database,
        exists,
        &rows,
        &config.required_daemons,
    ))
}

/// Every node sharing `config`'s database and every program recorded on
/// any host: `os4x-pidctl status --all --json`. `None` when the database
/// does not exist yet (it is not created).
pub fn cluster_document(config: &Config) -> anyhow::Result<Option<crate::pidctl::ClusterDocument>> {
    let db = &config.database;
    let Some(store) = pidstore::PidStore::open_existing(db)? else {
        return Ok(None);
    };
    let boot = pidstore::process::boot_id()?;
    let stale_after = config.cluster.silence_secs();
    Ok(Some(crate::pidctl::cluster_view(
        db,
        store.host(),
        &boot,
        &store.nodes()?,
        &store.all_records()?,
        stale_after,
    )))
}

/// [`status_document`] plus, when systemd is the service manager, each
/// program's unit and its state: exactly `os4x-pidctl status --json`.
pub fn status_document_with_systemd(
    config: &Config,
) -> anyhow::Result<crate::pidctl::StatusDocument> {
    let (exists, rows) = status_rows(config)?;
    let mut doc = crate::pidctl::status_document(
        config.server_id,
        &config.database,
        exists,
        &rows,
        &config.required_daemons,
    );
    if let Some(views) = crate::pidctl::systemd_views(&rows) {
        crate::pidctl::attach_systemd(&mut doc, &views);
    }
    Ok(doc)
}

/// The status rows of `config`'s server id, and whether the database
/// exists (a missing one is not created: every program is stopped).
pub fn status_rows(config: &Config) -> anyhow::Result<(bool, Vec<pidstore::ProgramStatus>)> {
    let db = &config.database;
    Ok(match pidstore::PidStore::open_existing(db)? {
        Some(store) => (
            true,
            store.status(config.server_id, &config.required_daemons, &config.tmp_dir)?,
        ),
        None => {
            let boot = pidstore::process::boot_id().map_err(pidstore::Error::Proc)?;
            let rows = config
                .required_daemons
                .iter()
                .map(|p| {
                    pidstore::status_of(
                        p.to_string(),
                        config.server_id,
                        None,
                        &boot,
                        &config.tmp_dir,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            (false, rows)
        }
    })
}

/// Whether a key or column name suggests a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "key",
        "token",
        "credential",
        "hash",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// The configuration with secret values replaced; `None` if it is not
/// valid TOML.
pub fn redact_config(text: &str) -> Option<String> {
    let mut value: toml::Table = text.parse().ok()?;
    redact_table(&mut value);
    toml::to_string_pretty(&value).ok()
}

fn redact_table(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        if is_secret_name(k) {
            *v = toml::Value::String(REDACTED.into());
        } else {
            redact_value(v);
        }
    }
}

fn redact_value(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => redact_table(t),
        toml::Value::Array(a) => a.iter_mut().for_each(redact_value),
        // URLs with credentials: scheme://user:pass@host
        toml::Value::String(s) => {
            if let Some((scheme, rest)) = s.split_once("://") {
                if let Some((_, host)) = rest.rsplit_once('@') {
                    *s = format!("{scheme}://{REDACTED}@{host}");
                }
            }
        }
        _ => {}
    }
}

/// Tables worth including: received files, and anything that looks like
/// the send queue (issue 5; its name is not fixed here, so match it).
fn recent_tables(conn: &Connection) -> Vec<String> {
    conn.tables()
        .unwrap_or_default()
        .into_iter()
        .filter(|name| {
            name == "os4x_received_files"
                || (name.starts_with("os4x") && name.contains("queue"))
                || name.starts_with("os4x_send")
        })
        .collect()
}

/// Newest rows of `table` (by its first column, the id where it has
/// one), without credential-like columns.
fn recent_rows(conn: &Connection, table: &str) -> os4x_store::sql::Result<serde_json::Value> {
    // `table` comes from the catalogue, quoted anyway.
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    query_json(
        conn,
        &format!("SELECT * FROM {quoted} ORDER BY 1 DESC LIMIT {TABLE_ROWS}"),
    )
}

/// Runs `sql` and returns the rows as JSON objects, leaving out columns
/// whose names suggest secrets.
fn query_json(conn: &Connection, sql: &str) -> os4x_store::sql::Result<serde_json::Value> {
    use os4x_store::Value;
    let rows = conn.rows(sql, [])?;
    let out = rows
        .iter()
        .map(|r| {
            let mut obj = serde_json::Map::new();
            for (name, v) in r.names().iter().zip(r.values()) {
                if is_secret_name(name) {
                    continue;
                }
                let v = match v {
                    Value::Null => serde_json::Value::Null,
                    Value::Integer(n) => (*n).into(),
                    Value::Real(f) => (*f).into(),
                    Value::Text(t) => t.clone().into(),
                    Value::Blob(b) => format!("<{} bytes>", b.len()).into(),
                };
                obj.insert(name.clone(), v);
            }
            serde_json::Value::Object(obj)
        })
        .collect();
    Ok(serde_json::Value::Array(out))
}

/// Parses `--since`: a duration back from now (`90s`, `30m`, `2h`, `7d`),
/// a UTC time `YYYY-MM-DD[THH:MM[:SS]][Z]`, or `@<unix seconds>`.
/// Returns microseconds since the epoch.
pub fn parse_since(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!("{text:?}: use a duration like 30m, 2h, 7d, a UTC time like 2026-11-24T08:00, or @UNIXSECONDS")
    };
    if let Some(secs) = t.strip_prefix('@') {
        return secs
            .parse::<i64>()
            .map(|s| s.saturating_mul(1_000_000))
            .map_err(|_| bad());
    }
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<i64>() {
            let secs = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            return Ok(now_us.saturating_sub(secs.saturating_mul(1_000_000)));
        }
    }
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, time) = t.split_once(['T', ' ']).unwrap_or((t, "00:00:00"));
    let mut d = date.split('-').map(str::parse::<i64>);
    let (Some(Ok(y)), Some(Ok(mo)), Some(Ok(da)), None) = (d.next(), d.next(), d.next(), d.next())
    else {
        return Err(bad());
    };
    let mut tm = time.split(':').map(str::parse::<i64>);
    let (Some(Ok(h)), Some(Ok(mi))) = (tm.next(), tm.next()) else {
        return Err(bad());
    };
    let s = match tm.next() {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = super::proto::days_from_civil(y, mo as u32, da as u32);
    Ok((days * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let text = "server_id = 1\ndatabase = \"postgres://os4x:hunter2@db/os4x\"\n[local]\nodette_id = \"O0013ME\"\npassword = \"hunter2\"\n[tls]\nprivate_key = \"/etc/os4x/key.pem\"\n[partners.x]\nsecret_in = \"hunter2\"\n";
        let red = redact_config(text).unwrap();
        assert!(!red.contains("hunter2"), "{red}");
        assert!(!red.contains("key.pem"), "{red}");
        assert!(red.contains("O0013ME"), "{red}");
        assert!(redact_config("password = = \"x\"").is_none());
    }

    #[test]
    fn since_forms() {
        let now = 1_000_000 * 1_000_000;
        assert_eq!(parse_since("30m", now), Ok(now - 1800 * 1_000_000));
        assert_eq!(parse_since("2d", now), Ok(now - 2 * 86_400 * 1_000_000));
        assert_eq!(parse_since("@5", now), Ok(5_000_000));
        assert_eq!(
            parse_since("2026-11-24T19:11:04Z", now),
            Ok(1_795_547_464 * 1_000_000)
        );
        assert_eq!(parse_since("1970-01-02", now), Ok(86_400 * 1_000_000));
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("2026-13-01", now).is_err());
    }
}
