//! The PostgreSQL backend: one server connection owned by a worker thread.
//!
//! The synchronous `postgres` client runs its own small runtime and must
//! not block inside a tokio runtime, which is where the daemons call the
//! store from. So each [`Client`] owns a thread that holds the connection
//! and runs one statement at a time for its callers; a caller blocks
//! exactly as it would on SQLite's file lock. A lost connection is
//! re-established at the next statement (a transaction in flight fails).
//!
//! Queries are written once, in the SQL both backends accept; [`translate`]
//! turns SQLite's `?N` parameters into `$N` and `unixepoch()` into its
//! PostgreSQL spelling, and [`translate_ddl`] maps the migrations' column
//! types (`INTEGER` → `BIGINT`, `BLOB` → `BYTEA`, `COLLATE NOCASE` → a
//! case-insensitive ICU collation).

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::mpsc;
use std::sync::Arc;

use postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::location::PgLocation;
use crate::sql::{Error, Result, Row, Value};

/// The case-insensitive collation `COLLATE NOCASE` becomes.
pub const NOCASE: &str = "os4x_nocase";

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A connection to the server, usable from any thread.
pub struct Client {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pg::Client").finish_non_exhaustive()
    }
}

struct Worker {
    location: PgLocation,
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

impl Client {
    /// Connects (the first connection is made here, so a wrong URL or a
    /// server that is down is reported at open).
    pub fn connect(location: &PgLocation) -> Result<Client> {
        let (tx, rx) = mpsc::channel::<Job>();
        let location = location.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("os4x-postgres".into())
            .spawn(move || {
                let mut w = Worker {
                    location,
                    client: None,
                    statements: HashMap::new(),
                };
                let _ = ready_tx.send(w.client().map(|_| ()));
                while let Ok(job) = rx.recv() {
                    job(&mut w);
                }
            })
            .map_err(|e| Error::Postgres(format!("cannot start the connection thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| Error::Disconnected("connection thread ended".into()))??;
        Ok(Client { jobs: tx })
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |w| {
                let _ = tx.send(f(w));
            }))
            .map_err(|_| Error::Disconnected("connection thread ended".into()))?;
        rx.recv()
            .map_err(|_| Error::Disconnected("connection thread ended".into()))?
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<usize> {
        let sql = sql.to_owned();
        self.call(move |w| {
            let stmt = w.prepare(&sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let n = w.client()?.execute(&stmt, &refs).map_err(|e| w.error(e))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// Runs one query; all its rows.
    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        let sql = sql.to_owned();
        self.call(move |w| {
            let stmt = w.prepare(&sql)?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let rows = w.client()?.query(&stmt, &refs).map_err(|e| w.error(e))?;
            let names: Arc<[String]> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
            rows.iter()
                .map(|r| {
                    let values = (0..r.len())
                        .map(|i| {
                            r.try_get::<_, Value>(i).map_err(|e| Error::Conversion {
                                column: names[i].clone(),
                                message: e.to_string(),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Row::new(names.clone(), values))
                })
                .collect()
        })
    }

    /// Runs statements separated by `;` without parameters.
    pub fn batch(&self, sql: &str) -> Result<()> {
        let sql = translate(sql);
        self.call(move |w| {
            let r = w.client()?.batch_execute(&sql);
            r.map_err(|e| w.error(e))
        })
    }
}

impl Worker {
    fn client(&mut self) -> Result<&mut postgres::Client> {
        if self
            .client
            .as_ref()
            .is_some_and(postgres::Client::is_closed)
        {
            tracing::warn!("PostgreSQL connection lost; reconnecting");
            self.client = None;
            self.statements.clear();
        }
        if self.client.is_none() {
            self.client = Some(self.location.connect()?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Error::Disconnected("no connection".into()))
    }

    /// The prepared statement for `sql` (shared dialect), cached by that
    /// text so a statement is translated once per connection, not per call.
    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
                return Ok(s.clone());
            }
        }
        let stmt = self.client()?.prepare(&translate(sql));
        let stmt = stmt.map_err(|e| self.error(e))?;
        // Bounded: the set of statements is the set in the source code,
        // plus a few built per call (IN lists); those are not worth keeping.
        if self.statements.len() < 512 {
            self.statements.insert(sql.to_owned(), stmt.clone());
        }
        Ok(stmt)
    }

    fn error(&mut self, e: postgres::Error) -> Error {
        if e.is_closed() {
            self.client = None;
            self.statements.clear();
            return Error::Disconnected(e.to_string());
        }
        classify(&e)
    }
}

/// Our error kinds for a server error.
pub(crate) fn classify(e: &postgres::Error) -> Error {
    use postgres::error::SqlState;
    let text = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {d}", db.message()),
            None => db.message().to_owned(),
        },
        None => match e.source() {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    };
    match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::CHECK_VIOLATION
                || *c == SqlState::NOT_NULL_VIOLATION
                || *c == SqlState::FOREIGN_KEY_VIOLATION =>
        {
            Error::Constraint(text)
        }
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            Error::Busy(text)
        }
        _ => Error::Postgres(text),
    }
}

/// A query in the shared dialect, as PostgreSQL reads it: `?N` → `$N`,
/// bare `?` → the next number, `unixepoch()` → epoch seconds. Text in
/// quotes is left alone.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    let mut next = 1;
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            // A comment runs to the end of the line (and may hold a `'`).
            '-' if sql[i + 1..].starts_with('-') => {
                out.push(c);
                for (_, d) in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            'u' | 'U'
                if sql[i..].len() >= 11 && sql[i..i + 11].eq_ignore_ascii_case("unixepoch()") =>
            {
                let boundary = sql[..i]
                    .chars()
                    .last()
                    .map_or(true, |p| !(p.is_alphanumeric() || p == '_'));
                if boundary {
                    out.push_str("CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)");
                    for _ in 0..10 {
                        chars.next();
                    }
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    scalar_min_max(&replace_words(
        &out,
        "COLLATE NOCASE",
        &format!("COLLATE {NOCASE}"),
    ))
}

/// SQLite's two-argument `max(a, b)` / `min(a, b)` are PostgreSQL's
/// `GREATEST` / `LEAST` (one argument stays the aggregate).
fn scalar_min_max(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut quote: Option<u8> = None;
    for i in 0..b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = Some(c);
            continue;
        }
        let word_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !word_start || i + 4 > b.len() || b[i + 3] != b'(' {
            continue;
        }
        let name = &sql[i..i + 3];
        let replacement = if name.eq_ignore_ascii_case("max") {
            "GREATEST"
        } else if name.eq_ignore_ascii_case("min") {
            "LEAST"
        } else {
            continue;
        };
        // A comma at depth 1 before the closing parenthesis.
        let mut depth = 0;
        let mut comma = false;
        for &d in &b[i + 3..] {
            match d {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => comma = true,
                _ => {}
            }
        }
        if comma {
            out.push_str(&sql[copied..i]);
            out.push_str(replacement);
            copied = i + 3;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// A migration step as PostgreSQL reads it: SQLite's column types
/// mapped, then [`translate`] (which also maps `COLLATE NOCASE`).
pub fn translate_ddl(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let mapped = match word.to_ascii_uppercase().as_str() {
            "INTEGER" => "BIGINT".to_owned(),
            "BLOB" => "BYTEA".to_owned(),
            "REAL" => "DOUBLE PRECISION".to_owned(),
            _ => word.clone(),
        };
        out.push_str(&mapped);
        word.clear();
    };
    let mut comment = false;
    let mut prev = ' ';
    for c in sql.chars() {
        if comment {
            out.push(c);
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '-' && prev == '-' {
            comment = true;
            out.push(c);
            continue;
        }
        prev = c;
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    // A rowid alias in SQLite; an identity column here.
    let out = replace_words(
        &out,
        "BIGINT PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    );
    translate(&out)
}

/// `from` (words separated by single spaces, matched case-insensitively
/// with any run of whitespace between them) replaced by `to`.
fn replace_words(s: &str, from: &str, to: &str) -> String {
    let words: Vec<&str> = from.split(' ').collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let bytes = s.as_bytes();
    'outer: while i < s.len() {
        let mut j = i;
        for (k, w) in words.iter().enumerate() {
            if k > 0 {
                let start = j;
                while j < s.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j == start {
                    break;
                }
            }
            if s.len() - j >= w.len() && s[j..j + w.len()].eq_ignore_ascii_case(w) {
                j += w.len();
            } else {
                break;
            }
            if k == words.len() - 1 {
                let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
                let after_ok = j == s.len() || !bytes[j].is_ascii_alphanumeric();
                if before_ok && after_ok {
                    out.push_str(to);
                    i = j;
                    continue 'outer;
                }
            }
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // The server inferred the parameter's type from the statement; an
        // integer bound where it expects INT4 (`?1 + 3600`) or a number
        // where it expects text is converted rather than refused.
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(i), t) if *t == Type::INT8 => i.to_sql(ty, out),
            (Value::Integer(i), t) if *t == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Integer(i), t) if *t == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Integer(i), t) if *t == Type::BOOL => (*i != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Value::Integer(i), t) if *t == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            (Value::Integer(i), _) => i.to_string().to_sql(&Type::TEXT, out),
            (Value::Real(r), t) if *t == Type::FLOAT4 => {
                #[allow(clippy::cast_possible_truncation)]
                let f = *r as f32;
                f.to_sql(ty, out)
            }
            (Value::Real(r), t) if *t == Type::FLOAT8 => r.to_sql(ty, out),
            (Value::Real(r), _) => r.to_string().to_sql(&Type::TEXT, out),
            (Value::Text(s), t) if *t == Type::BYTEA => s.as_bytes().to_sql(ty, out),
            (Value::Text(s), t) if *t == Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(&Type::TEXT, out),
            (Value::Blob(b), _) => b.as_slice().to_sql(&Type::BYTEA, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Integer(i64::from(u32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => Value::Text(String::from_sql(&Type::TEXT, raw)?),
        })
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC (what `SUM` of BIGINT returns) in PostgreSQL's binary form:
/// an integer if it has no fraction and fits, else a float.
fn numeric(raw: &[u8]) -> std::result::Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<u16, String> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "short NUMERIC".to_owned())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut int: i128 = 0;
    let mut float = 0.0_f64;
    let mut fraction = false;
    for k in 0..ndigits {
        let d = i128::from(word(8 + 2 * k)?);
        let exp = weight - i32::try_from(k).unwrap_or(i32::MAX);
        float += d as f64 * 10_000_f64.powi(exp);
        if exp >= 0 {
            int = int
                .saturating_add(d.saturating_mul(10_000_i128.saturating_pow(exp.unsigned_abs())));
        } else if d != 0 {
            fraction = true;
        }
    }
    let negative = sign == 0x4000;
    if !fraction {
        if let Ok(i) = i64::try_from(if negative { -int } else { int }) {
            return Ok(Value::Integer(i));
        }
    }
    Ok(Value::Real(if negative { -float } else { float }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_functions_translate_outside_quotes() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3' AND e = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3' AND e = $1"
        );
        assert_eq!(
            translate("UPDATE t SET at = unixepoch() WHERE x = ?1"),
            "UPDATE t SET at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) WHERE x = $1"
        );
        assert_eq!(translate("SELECT myunixepoch()"), "SELECT myunixepoch()");
        assert_eq!(
            translate("UPDATE q SET s = MAX(s, ?2), m = max(x), n = min(a, (b)) WHERE p = ?1 COLLATE NOCASE"),
            "UPDATE q SET s = GREATEST(s, $2), m = max(x), n = LEAST(a, (b)) WHERE p = $1 COLLATE os4x_nocase"
        );
        assert_eq!(
            translate("-- the partner's ?1\nSELECT ?1"),
            "-- the partner's ?1\nSELECT $1"
        );
    }

    #[test]
    fn migrations_get_postgres_types() {
        let ddl = "CREATE TABLE t (\n    id   INTEGER PRIMARY KEY,\n    partner TEXT NOT NULL COLLATE NOCASE,\n    hash BLOB, n integer NOT NULL DEFAULT 0, note TEXT DEFAULT 'INTEGER'\n);";
        assert_eq!(
            translate_ddl(ddl),
            "CREATE TABLE t (\n    id   BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    partner TEXT NOT NULL COLLATE os4x_nocase,\n    hash BYTEA, n BIGINT NOT NULL DEFAULT 0, note TEXT DEFAULT 'INTEGER'\n);"
        );
        // Comments may hold quotes; the types after them still map.
        assert_eq!(
            translate_ddl("-- SQLite's rule\nALTER TABLE t ADD COLUMN h BLOB;"),
            "-- SQLite's rule\nALTER TABLE t ADD COLUMN h BYTEA;"
        );
        // A composite key is no identity column.
        assert_eq!(
            translate_ddl("serverID INTEGER NOT NULL, PRIMARY KEY (program, serverID)"),
            "serverID BIGINT NOT NULL, PRIMARY KEY (program, serverID)"
        );
    }

    #[test]
    fn numeric_sums_read_as_integers() {
        // 123456789 = 1|2345|6789 base 10000, weight 2.
        let raw = [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1A, 0x85];
        assert_eq!(numeric(&raw).unwrap(), Value::Integer(123_456_789));
        // -0.5 = 5000 * 10000^-1.
        let raw = [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 1, 0x13, 0x88];
        assert_eq!(numeric(&raw).unwrap(), Value::Real(-0.5));
        assert!(numeric(&[0, 1]).is_err());
    }
}
