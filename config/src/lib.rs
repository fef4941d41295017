//! The os4x configuration file, shared by every daemon and tool.
//!
//! One TOML file, `/etc/os4x/os4x.toml` unless `--config PATH` or
//! `OS4X_CONFIG` names another. Top-level keys hold what every program
//! needs; each subsystem gets its own `[section]`. Every section rejects
//! unknown keys, so a typo is an error that names key and file instead of a
//! silently ignored setting. A missing *default* file means all defaults; a
//! file named explicitly must exist.

use std::io;
use std::path::{Path, PathBuf};

use pidstore::ProgramName;
use serde::Deserialize;

pub mod client;
pub mod cluster;
pub mod debug;
pub mod field;
pub mod isdn;
pub mod rd;
pub mod security;
pub mod sq;
pub mod station;
pub mod web;

/// Where the configuration is read from when nothing else is said.
pub const DEFAULT_PATH: &str = "/etc/os4x/os4x.toml";
/// Default `state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/os4x";
/// Default `tmp_dir`.
pub const DEFAULT_TMP_DIR: &str = "/run/os4x";
/// Daemons `os4x-pidctl check` requires unless `required_daemons` says otherwise.
pub const DEFAULT_REQUIRED_DAEMONS: [&str; 3] = ["os4xrd_tcpip", "os4xrd_tcpip_tls", "os4xsqd"];

/// The effective configuration: file values over defaults, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file that was read; `None` when the default file is absent.
    pub source: Option<PathBuf>,
    /// Distinguishes several os4x instances sharing one database.
    pub server_id: u32,
    /// Persistent state (database, queues).
    pub state_dir: PathBuf,
    /// Volatile runtime files: PID files.
    pub tmp_dir: PathBuf,
    pub database: Database,
    /// Programs `os4x-pidctl check` reports CRITICAL when not running.
    pub required_daemons: Vec<ProgramName>,
    pub debug: DebugConfig,
    pub client: ClientConfig,
    /// `[local]`: our Odette ID, password, user data.
    pub local: crate::station::LocalStation,
    /// `[rd]`, `[tcp]`, `[tls]`: the receive daemons.
    pub rd: crate::rd::RdConfig,
    /// `[sq]`: the send-queue daemon and `os4x send`.
    pub sq: crate::sq::SqConfig,
    /// `[security]`: our key pairs, partner CAs, CRL cache.
    pub security: crate::security::SecurityConfig,
    /// `[web]`: the web administration service `os4x-web`.
    pub web: crate::web::WebConfig,
    /// `[isdn]`: ISDN controllers (`os4xrd_capi_<n>`, dialling by `os4xsqd`).
    pub isdn: crate::isdn::IsdnConfig,
    /// `[cluster]`: leases and heartbeats of nodes sharing one database.
    pub cluster: crate::cluster::ClusterConfig,
}

/// Where the os4x database lives: `sqlite:///path` or `postgres://...`.
pub use os4x_store::Location as Database;

/// `[client]`: the client/job service `os4xclientd`.
pub use crate::client::ClientConfig;
/// `[debug]`: the debug daemon `os4xdebugd` and debug forwarding.
pub use crate::debug::DebugConfig;
pub use crate::field::{ConfigError, DEFAULT_DEBUG_LISTEN, ENV_VAR};

/// The file as written; every field optional so absence means default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server_id: Option<u32>,
    state_dir: Option<PathBuf>,
    tmp_dir: Option<PathBuf>,
    database: Option<String>,
    required_daemons: Option<Vec<String>>,
    #[serde(default)]
    debug: crate::debug::DebugFile,
    #[serde(default)]
    client: crate::client::ClientFile,
    #[serde(default)]
    local: crate::station::LocalFile,
    #[serde(default)]
    rd: crate::rd::RdFile,
    #[serde(default)]
    tcp: crate::rd::TcpFile,
    #[serde(default)]
    tls: crate::rd::TlsFile,
    #[serde(default)]
    sq: crate::sq::SqFile,
    #[serde(default)]
    security: crate::security::SecurityFile,
    #[serde(default)]
    web: crate::web::WebFile,
    #[serde(default)]
    isdn: crate::isdn::IsdnFile,
    #[serde(default)]
    cluster: crate::cluster::ClusterFile,
}

impl Config {
    /// Loads `explicit` (from `--config`/`OS4X_CONFIG`), or the default
    /// file if it exists, or pure defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        // Absolute, so messages that repeat it work from any directory.
        let path = &match explicit {
            Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_owned()),
            None => PathBuf::from(DEFAULT_PATH),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound && explicit.is_none() => {
                Config::parse("", path).map(|c| Config { source: None, ..c })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ConfigError::NotFound {
                path: path.to_owned(),
            }),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses and validates `text`, read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let line = inner.span().map(|s| line_of(text, s.start));
                if key.is_empty() || key == "." {
                    // Syntax error or an unknown top-level key: the TOML
                    // error shows line and snippet.
                    match unknown_key(inner.message()) {
                        Some(k) => ConfigError::Key {
                            path: path.to_owned(),
                            key: k,
                            message: inner.message().to_owned(),
                            line,
                        },
                        None => ConfigError::Syntax {
                            path: path.to_owned(),
                            detail: inner.to_string().trim_end().to_owned(),
                        },
                    }
                } else {
                    ConfigError::Key {
                        path: path.to_owned(),
                        key,
                        message: inner.message().to_owned(),
                        line,
                    }
                }
            })?;
        let bad = |key: &str, message: String| ConfigError::Key {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
            line: find_key_line(text, key),
        };
        let absolute = |key: &str, value: Option<PathBuf>, default: &str| match value {
            None => Ok(PathBuf::from(default)),
            Some(p) if p.is_absolute() => Ok(p),
            Some(p) => Err(bad(
                key,
                format!("{:?} is not an absolute path", p.display().to_string()),
            )),
        };
        let state_dir = absolute("state_dir", file.state_dir, DEFAULT_STATE_DIR)?;
        let tmp_dir = absolute("tmp_dir", file.tmp_dir, DEFAULT_TMP_DIR)?;
        let database = match file.database {
            None => Database::Sqlite(state_dir.join("os4x.db")),
            Some(url) => parse_database(&url).map_err(|m| bad("database", m))?,
        };
        let required_daemons = match file.required_daemons {
            None => DEFAULT_REQUIRED_DAEMONS
                .iter()
                .filter_map(|n| ProgramName::new(*n).ok())
                .collect(),
            Some(names) => names
                .into_iter()
                .map(ProgramName::new)
                .collect::<Result<_, _>>()
                .map_err(|e| bad("required_daemons", e.to_string()))?,
        };
        let debug = crate::debug::resolve(file.debug, &bad)?;
        let client = crate::client::resolve(file.client, &bad)?;
        let local = crate::station::resolve(file.local, &bad)?;
        let rd = crate::rd::resolve(file.rd, file.tcp, file.tls, &state_dir, &bad)?;
        let sq = crate::sq::resolve(file.sq, &state_dir, &bad)?;
        let security = crate::security::resolve(file.security, &state_dir, &bad)?;
        let web = crate::web::resolve(file.web, &bad)?;
        let isdn = crate::isdn::resolve(file.isdn, &bad)?;
        let cluster = crate::cluster::resolve(file.cluster, &bad)?;
        Ok(Config {
            source: Some(path.to_owned()),
            server_id: file.server_id.unwrap_or(0),
            state_dir,
            tmp_dir,
            database,
            required_daemons,
            debug,
            client,
            local,
            rd,
            sq,
            security,
            web,
            isdn,
            cluster,
        })
    }
}

fn parse_database(url: &str) -> Result<Database, String> {
    let db = Database::parse(url)?;
    if db.sqlite_path().is_some_and(|p| p.file_name().is_none()) {
        return Err(format!(
            "{url:?} must name a file, e.g. sqlite:///var/lib/os4x/os4x.db"
        ));
    }
    Ok(db)
}

/// `unknown field `x`, expected ...` → `x`
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// Line of `key` (dotted for sections) for errors found after parsing.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim().to_owned();
        } else if current == section && l.split('=').next().map(str::trim) == Some(leaf) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/os4x/os4x.toml"))
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server_id, 0);
        assert_eq!(c.state_dir, Path::new("/var/lib/os4x"));
        assert_eq!(c.tmp_dir, Path::new("/run/os4x"));
        assert_eq!(c.database.to_string(), "sqlite:///var/lib/os4x/os4x.db");
        let req: Vec<_> = c.required_daemons.iter().map(|p| p.as_str()).collect();
        assert_eq!(req, DEFAULT_REQUIRED_DAEMONS);
        assert_eq!(c.debug.listen, "127.0.0.1:10001".parse().unwrap());
    }

    #[test]
    fn database_follows_state_dir() {
        let c = parse("state_dir = \"/srv/os4x\"\nserver_id = 3\n").unwrap();
        assert_eq!(
            c.database.sqlite_path(),
            Some(Path::new("/srv/os4x/os4x.db"))
        );
        assert_eq!(c.server_id, 3);
        let c = parse("database = \"sqlite:///x/y.db\"\n[debug]\nlisten = \"[::1]:9\"\n").unwrap();
        assert_eq!(c.database.sqlite_path(), Some(Path::new("/x/y.db")));
        assert_eq!(c.debug.listen, "[::1]:9".parse().unwrap());
        let c = parse("database = \"postgres://os4x:pw@db1:5432/os4x?sslmode=require\"\n").unwrap();
        assert!(c.database.is_postgres());
        assert_eq!(c.database.to_string(), "postgres://os4x:***@db1:5432/os4x");
    }

    fn key_error(text: &str) -> (String, Option<usize>, String) {
        let e = parse(text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/etc/os4x/os4x.toml"), "{msg}");
        match e {
            ConfigError::Key { key, line, .. } => (key, line, msg),
            other => panic!("expected key error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        let (k, line, msg) = key_error("server_id = 1\nsrever_id = 2\n");
        assert_eq!((k.as_str(), line), ("srever_id", Some(2)), "{msg}");
        let (k, line, _) = key_error("server_id = \"one\"\n");
        assert_eq!((k.as_str(), line), ("server_id", Some(1)));
        let (k, _, _) = key_error("server_id = -1\n");
        assert_eq!(k, "server_id");
        let (k, line, _) = key_error("\n[debug]\nlisten = \"localhost\"\n");
        assert_eq!((k.as_str(), line), ("debug.listen", Some(3)));
        let (k, _, msg) = key_error("[debug]\nlisen = \"x\"\n");
        assert!(k.contains("lisen"), "{k} / {msg}");
        let (k, _, _) = key_error("state_dir = \"relative\"\n");
        assert_eq!(k, "state_dir");
        let (k, _, _) = key_error("database = \"postgres://x\"\n");
        assert_eq!(k, "database");
        let (k, _, _) = key_error("required_daemons = [\"os4xsqd\", \"bad name\"]\n");
        assert_eq!(k, "required_daemons");
        let (k, _, _) = key_error("[bogus]\n");
        assert_eq!(k, "bogus");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = parse("server_id = = 1\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            Config::load(Some(&missing)),
            Err(ConfigError::NotFound { .. })
        ));
    }
}
