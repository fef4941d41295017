//! Where the os4x database lives: `database = "..."` in os4x.toml.
//!
//! - `sqlite:///absolute/path.db`: the embedded default, one file.
//! - `postgres://user:password@host:port/dbname?sslmode=...`: a
//!   PostgreSQL server, for installations with several nodes. `sslmode`
//!   is `disable`, `prefer` (default, as libpq), `require` (encrypted, the
//!   server not verified), `verify-ca` or `verify-full` (verified against
//!   `sslrootcert=/path/ca.pem`; `verify-full` also checks the host name).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::sql::Error;

/// A database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PgLocation),
}

/// A PostgreSQL server and database, with how to secure the connection.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    /// The URL as rust-postgres reads it (our TLS options removed).
    url: String,
    tls: PgTls,
    /// For messages: the URL without its password.
    shown: String,
    /// As written in the configuration (with the password).
    original: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PgTls {
    Disable,
    /// `prefer` / `require`: encrypted if (or because) the server offers
    /// it, without verifying it (libpq's meaning of these modes).
    Unverified {
        required: bool,
    },
    /// `verify-ca` / `verify-full`.
    Verified {
        root: PathBuf,
        host_name: bool,
    },
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLocation")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Location {
    /// Parses a `database` value.
    pub fn parse(url: &str) -> Result<Location, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(format!(
                    "`{url}`: the SQLite path must be absolute (sqlite:///var/lib/os4x/os4x.db)"
                ));
            }
            return Ok(Location::Sqlite(path.to_path_buf()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PgLocation::parse(url).map(Location::Postgres);
        }
        Err(format!(
            "`{url}`: use sqlite:///absolute/path.db or postgres://user:password@host/dbname"
        ))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// For messages to admins: the file path of a SQLite database (as
    /// they know it from the predecessor product), a server's URL without
    /// its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(pg) => pg.shown.clone(),
        }
    }

    /// The value for `database = "..."`, with the password: for writing
    /// configuration files, never for logs.
    pub fn url(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("sqlite://{}", p.display()),
            Location::Postgres(pg) => pg.original.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

/// The URL, without a PostgreSQL password: safe for logs and messages.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Location::Postgres(pg) => f.write_str(&pg.shown),
        }
    }
}

impl PgLocation {
    fn parse(url: &str) -> Result<PgLocation, String> {
        let url_in = url;
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut mode = "prefer".to_owned();
        let mut root = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = v.to_owned(),
                "sslrootcert" => root = Some(PathBuf::from(v)),
                _ => kept.push(pair),
            }
        }
        let tls = match (mode.as_str(), root) {
            ("disable", _) => PgTls::Disable,
            ("prefer", _) => PgTls::Unverified { required: false },
            ("require", _) => PgTls::Unverified { required: true },
            ("verify-ca" | "verify-full", Some(root)) => PgTls::Verified {
                root,
                host_name: mode == "verify-full",
            },
            ("verify-ca" | "verify-full", None) => {
                return Err(format!(
                    "sslmode={mode} needs sslrootcert=/path/to/ca.pem (the CA that signed the server's certificate)"
                ))
            }
            (other, _) => {
                return Err(format!(
                    "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        };
        // rust-postgres knows only these three; verification is ours.
        kept.push(match &tls {
            PgTls::Disable => "sslmode=disable",
            PgTls::Unverified { required: false } => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let url = format!("{base}?{}", kept.join("&"));
        let config: postgres::Config = url
            .parse()
            .map_err(|e| format!("`{}`: {e}", redact(base)))?;
        if config.get_dbname().is_none() {
            return Err(format!(
                "`{}`: name the database (postgres://user@host/os4x)",
                redact(base)
            ));
        }
        Ok(PgLocation {
            url,
            tls,
            shown: redact(base),
            original: url_in.to_owned(),
        })
    }

    /// A new connection to the server.
    pub(crate) fn connect(&self) -> Result<postgres::Client, Error> {
        let config: postgres::Config = self
            .url
            .parse()
            .map_err(|e: postgres::Error| Error::Postgres(e.to_string()))?;
        let result = match &self.tls {
            PgTls::Disable => config.connect(postgres::NoTls),
            PgTls::Unverified { .. } => {
                config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                    crate::pg_tls::unverified().map_err(Error::Postgres)?,
                ))
            }
            PgTls::Verified { root, host_name } => {
                let tls = crate::pg_tls::verified(root, *host_name).map_err(Error::Postgres)?;
                config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        };
        result.map_err(|e| {
            let detail = crate::pg::classify(&e);
            Error::Disconnected(format!("{}: {detail}", self.shown))
        })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth {
        Some(a) => match a.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{a}@{host}"),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_urls_parse_and_bad_ones_say_what_to_write() {
        assert_eq!(
            Location::parse("sqlite:///var/lib/os4x/os4x.db").unwrap(),
            Location::Sqlite("/var/lib/os4x/os4x.db".into())
        );
        assert!(Location::parse("sqlite://rel.db")
            .unwrap_err()
            .contains("absolute"));
        assert!(Location::parse("mysql://x")
            .unwrap_err()
            .contains("postgres://"));
        let pg =
            Location::parse("postgres://os4x:s3cret@db.example:5433/os4x?sslmode=require").unwrap();
        assert!(pg.is_postgres());
        let shown = pg.to_string();
        assert_eq!(shown, "postgres://os4x:***@db.example:5433/os4x");
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert!(Location::parse("postgres://u@h/db?sslmode=verify-full")
            .unwrap_err()
            .contains("sslrootcert"));
        assert!(Location::parse("postgres://u@h/db?sslmode=sometimes")
            .unwrap_err()
            .contains("verify-full"));
        assert!(Location::parse("postgres://u@h:notaport/db").is_err());
        let Location::Postgres(p) =
            Location::parse("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/ca.pem").unwrap()
        else {
            unreachable!()
        };
        // The configuration value round-trips, TLS options included.
        assert_eq!(
            Location::Postgres(p.clone()).url(),
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/ca.pem"
        );
        assert_eq!(
            Location::parse(&Location::Postgres(p.clone()).url()).unwrap(),
            Location::Postgres(p.clone())
        );
        assert_eq!(
            p.tls,
            PgTls::Verified {
                root: "/ca.pem".into(),
                host_name: false
            }
        );
    }
}
