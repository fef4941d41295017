//! `os4x partner import --os4x DUMP`: partners from an OS4X installation.
//!
//! OS4X keeps its partners in one MySQL table whose rows hold both sides
//! of a relation (`his_ssid`, `his_password`, `my_ssid`, `my_password`,
//! `address`, `port`, `port_tls`, `addresstype`, security flags, ...). The
//! importer reads a `mysqldump` of that table (`CREATE TABLE` and
//! `INSERT INTO ... VALUES` statements; the table is the one with a
//! `his_ssid` column) or a CSV export with a header line, maps every row to
//! an os4x partner with its route, and reports what it could not map.
//!
//! A row is imported whole or not at all: every field is checked before
//! anything is written, and if a write fails what the row wrote so far is
//! removed again. Partners that exist already are left as they are.

use std::collections::BTreeSet;

use oftp2::value::{CipherSuite, OdetteId, Password};

use crate::db::Db;
use crate::isdn_routes::IsdnRoutes;
use crate::partner::{Directions, Partner, PartnerError, PartnerStore};
use crate::queue::{QueueStore, Route};

/// The partner table as read from the dump: lower-case column names and
/// rows of values (`None`: SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Why the dump could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{0}")]
    Syntax(String),
    #[error("no OS4X partner table in the dump: no table has a his_ssid column (give a mysqldump of the OS4X partner table, or a CSV export of it with a header line)")]
    NoPartnerTable,
}

/// Reads a mysqldump (recognised by SQL statements) or a CSV export.
pub fn read_dump(text: &str) -> Result<Table, DumpError> {
    let looks_sql = text.lines().any(|l| {
        let l = l.trim_start().to_ascii_uppercase();
        l.starts_with("INSERT ") || l.starts_with("CREATE TABLE") || l.starts_with("REPLACE ")
    });
    if looks_sql {
        read_mysqldump(text)
    } else {
        read_csv(text)
    }
}

// ----------------------------------------------------------------------
// mysqldump

/// SQL statements, split at `;` outside quotes and comments; comments
/// dropped (`-- `, `#`, `/* */`; `/*!...*/` version comments too).
fn statements(text: &str) -> Result<Vec<String>, DumpError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut line_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                let mut closed = false;
                while let Some(d) = chars.next() {
                    cur.push(d);
                    if d == '\\' && c != '`' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            // '' inside a string
                            cur.push(c);
                            chars.next();
                        } else {
                            closed = true;
                            break;
                        }
                    }
                }
                if !closed {
                    return Err(DumpError::Syntax(format!(
                        "unterminated {c}-quoted text near the end of the dump: is the file complete?"
                    )));
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                cur.push('\n');
                line_start = true;
                continue;
            }
            '#' if line_start => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                cur.push('\n');
                continue;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                cur.push(' ');
            }
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
        line_start = c == '\n';
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// A name as written (`` `name` `` or bare), lower case, and the rest.
fn identifier(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('`') {
        let end = rest.find('`')?;
        return Some((rest[..end].to_ascii_lowercase(), &rest[end + 1..]));
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    // `db.table`: the table.
    let name = s[..end].rsplit('.').next().unwrap_or(&s[..end]);
    Some((name.to_ascii_lowercase(), &s[end..]))
}

/// Strips `prefix` (keywords, case-insensitive, any whitespace between).
fn keywords<'a>(s: &'a str, words: &[&str]) -> Option<&'a str> {
    let mut rest = s.trim_start();
    for w in words {
        if rest.len() < w.len() || !rest[..w.len()].eq_ignore_ascii_case(w) {
            return None;
        }
        rest = rest[w.len()..].trim_start();
    }
    Some(rest)
}

/// Items of a parenthesised list at depth 1, split at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if let Some(q) = quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        items.push(cur);
    }
    items
}

/// The text between the first `(` and its matching `)`, and the rest.
fn parenthesised(s: &str) -> Option<(&str, &str)> {
    let start = s.find('(')?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s[start..].char_indices() {
        let at = start + i;
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[start + 1..at], &s[at + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// One SQL literal: quoted text (MySQL escapes), a number, NULL.
fn literal(s: &str) -> Result<Option<String>, DumpError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("NULL") {
        return Ok(None);
    }
    let Some(q) = s.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return Ok(Some(s.to_owned()));
    };
    if s.len() < 2 || !s.ends_with(q) {
        return Err(DumpError::Syntax(format!("bad value {s:?}")));
    }
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some('Z') => out.push('\x1a'),
                Some('b') => out.push('\x08'),
                Some(o) => out.push(o),
                None => {}
            }
        } else if c == q {
            // '' doubled: one quote (the splitter kept both).
            out.push(c);
            let _ = chars.next();
        } else {
            out.push(c);
        }
    }
    Ok(Some(out))
}

/// One INSERT: table, its column list if it has one, the rows.
type Insert = (String, Option<Vec<String>>, Vec<Vec<Option<String>>>);

fn read_mysqldump(text: &str) -> Result<Table, DumpError> {
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    let mut inserts: Vec<Insert> = Vec::new();
    for stmt in statements(text)? {
        let s = stmt.trim();
        if let Some(rest) = keywords(s, &["CREATE", "TABLE"]) {
            let rest = keywords(rest, &["IF", "NOT", "EXISTS"]).unwrap_or(rest);
            let Some((name, rest)) = identifier(rest) else {
                continue;
            };
            let Some((body, _)) = parenthesised(rest) else {
                continue;
            };
            let skip = [
                "primary",
                "key",
                "unique",
                "index",
                "constraint",
                "fulltext",
                "spatial",
                "foreign",
                "check",
            ];
            let cols = split_top(body)
                .iter()
                .filter(|item| {
                    let t = item.trim_start();
                    t.starts_with('`')
                        || !skip
                            .iter()
                            .any(|k| t.len() >= k.len() && t[..k.len()].eq_ignore_ascii_case(k))
                })
                .filter_map(|item| identifier(item).map(|(n, _)| n))
                .collect();
            tables.push((name, cols));
            continue;
        }
        let rest = keywords(s, &["INSERT", "IGNORE", "INTO"])
            .or_else(|| keywords(s, &["INSERT", "INTO"]))
            .or_else(|| keywords(s, &["REPLACE", "INTO"]));
        let Some(rest) = rest else { continue };
        let Some((name, rest)) = identifier(rest) else {
            continue;
        };
        let (columns, rest) = match keywords(rest, &["VALUES"]) {
            Some(r) => (None, r),
            None => {
                let Some((list, after)) = parenthesised(rest) else {
                    continue;
                };
                let cols = split_top(list)
                    .iter()
                    .filter_map(|c| identifier(c).map(|(n, _)| n))
                    .collect();
                let Some(r) = keywords(after, &["VALUES"]) else {
                    continue;
                };
                (Some(cols), r)
            }
        };
        let mut rows = Vec::new();
        let mut rest = rest;
        while let Some((tuple, after)) = parenthesised(rest) {
            rows.push(
                split_top(tuple)
                    .iter()
                    .map(|v| literal(v))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            rest = after.trim_start().strip_prefix(',').unwrap_or(after);
        }
        inserts.push((name, columns, rows));
    }
    let has_ssid = |cols: &[String]| cols.iter().any(|c| c == "his_ssid");
    let table = inserts
        .iter()
        .find_map(|(name, cols, _)| match cols {
            Some(c) if has_ssid(c) => Some(name.clone()),
            _ => None,
        })
        .or_else(|| {
            tables
                .iter()
                .find(|(_, c)| has_ssid(c))
                .map(|(n, _)| n.clone())
        })
        .ok_or(DumpError::NoPartnerTable)?;
    let declared = tables
        .iter()
        .find(|(n, _)| *n == table)
        .map(|(_, c)| c.clone());
    let mut out = Table {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for (name, cols, rows) in inserts.into_iter().filter(|(n, _, _)| *n == table) {
        let cols = cols.or_else(|| declared.clone()).ok_or_else(|| {
            DumpError::Syntax(format!(
                "INSERT INTO {name} without a column list and no CREATE TABLE {name} in the dump: dump with the table definition (mysqldump without --no-create-info) or --complete-insert"
            ))
        })?;
        if out.columns.is_empty() {
            out.columns = cols.clone();
        }
        for row in rows {
            if row.len() != cols.len() {
                return Err(DumpError::Syntax(format!(
                    "a row of {name} has {} values for {} columns",
                    row.len(),
                    cols.len()
                )));
            }
            // Into the first statement's column order.
            let mut v = vec![None; out.columns.len()];
            for (c, value) in cols.iter().zip(row) {
                if let Some(i) = out.columns.iter().position(|o| o == c) {
                    v[i] = value;
                }
            }
            out.rows.push(v);
        }
    }
    if out.columns.is_empty() {
        out.columns = declared.unwrap_or_default();
    }
    Ok(out)
}

// ----------------------------------------------------------------------
// CSV

fn read_csv(text: &str) -> Result<Table, DumpError> {
    let header = text.lines().next().unwrap_or_default();
    // Exports use `,`, `;` or tabs: the one the header line has most of.
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| header.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| DumpError::Syntax(format!("CSV header: {e}")))?
        .iter()
        .map(|c| c.trim().trim_matches('`').to_ascii_lowercase())
        .collect();
    if !columns.iter().any(|c| c == "his_ssid") {
        return Err(DumpError::NoPartnerTable);
    }
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| DumpError::Syntax(format!("CSV line {}: {e}", i + 2)))?;
        rows.push(
            rec.iter()
                // mysql's CSV exports write NULL as \N.
                .map(|v| (v != "\\N" && v != "NULL").then(|| v.to_owned()))
                .collect(),
        );
    }
    Ok(Table { columns, rows })
}

// ----------------------------------------------------------------------
// Mapping

/// The columns the importer reads; any other is reported as not imported.
const KNOWN: &[&str] = &[
    "idx",
    "shortname",
    "longname",
    "his_ssid",
    "his_sfid",
    "his_password",
    "my_ssid",
    "my_sfid",
    "my_password",
    "address",
    "port",
    "port_tls",
    "addresstype",
    "use_tls",
    "oftp_version",
    "version",
    "cipher_suite",
    "ciphersuite",
    "sign",
    "signing",
    "encrypt",
    "encryption",
    "compression",
    "compress",
    "secure_auth",
    "secure_authentication",
    "signed_eerp",
    "request_signed_eerp",
    "active",
];

/// One row mapped to os4x.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub partner: Partner,
    pub route: Option<Route>,
    /// ISDN number and controller.
    pub isdn: Option<(String, u32)>,
    /// What was mapped with a remark (not an error).
    pub notes: Vec<String>,
}

struct Row<'a> {
    table: &'a Table,
    values: &'a [Option<String>],
}

impl Row<'_> {
    /// The first of `names` that is a column with a non-empty value.
    fn get(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| {
            let i = self.table.columns.iter().position(|c| c == n)?;
            self.values
                .get(i)?
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        })
    }

    fn flag(&self, names: &[&str], problems: &mut Vec<String>) -> bool {
        match self.get(names) {
            None => false,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "y" | "yes" | "true" | "j" | "on" => true,
                "0" | "n" | "no" | "false" | "off" | "" => false,
                other => {
                    problems.push(format!("{}: {other:?} is not a yes/no value", names[0]));
                    false
                }
            },
        }
    }

    fn label(&self) -> String {
        match (self.get(&["idx"]), self.get(&["his_ssid"])) {
            (Some(i), Some(s)) => format!("row idx={i} ({s})"),
            (None, Some(s)) => s.to_owned(),
            (Some(i), None) => format!("row idx={i}"),
            (None, None) => "row without his_ssid".into(),
        }
    }
}

/// Maps one row; `Err` lists every reason it cannot be imported.
pub fn map_row(
    table: &Table,
    values: &[Option<String>],
    local: &OdetteId,
    isdn_controller: u32,
) -> Result<Mapped, Vec<String>> {
    let row = Row { table, values };
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let id = match row.get(&["his_ssid"]) {
        None => {
            problems.push("his_ssid is empty".into());
            None
        }
        Some(s) => OdetteId::new(s)
            .map_err(|e| problems.push(format!("his_ssid {s:?}: {e}")))
            .ok(),
    };
    for (col, what) in [("my_ssid", "SSID"), ("my_sfid", "SFID")] {
        if let Some(mine) = row.get(&[col]) {
            if !mine.eq_ignore_ascii_case(local.as_str()) {
                problems.push(format!(
                    "{col} {mine:?} is not this station's Odette ID {local} (os4x has one {what} per installation; import such partners into an installation configured as {mine})"
                ));
            }
        }
    }
    let password = |col: &str, problems: &mut Vec<String>| match row.get(&[col]) {
        None => {
            problems.push(format!("{col} is empty"));
            None
        }
        Some(p) => Password::new_relaxed(p)
            .map_err(|e| problems.push(format!("{col}: {e}")))
            .ok(),
    };
    let password_in = password("his_password", &mut problems);
    let password_out = password("my_password", &mut problems);

    let mut security = crate::partner::SecurityPolicy::default();
    if let Some(code) = row.get(&["cipher_suite", "ciphersuite"]) {
        match code.parse::<u8>() {
            Ok(0) => {}
            Ok(c) => {
                let suite = CipherSuite::from_code(c);
                match oftp2::security::suite_algorithms(suite) {
                    Ok(_) => security.cipher_suite = suite,
                    Err(e) => problems.push(format!("cipher_suite {code}: {e}")),
                }
            }
            Err(_) => problems.push(format!("cipher_suite {code:?} is not a suite number")),
        }
    }
    security.sign = row.flag(&["sign", "signing"], &mut problems);
    security.encrypt = row.flag(&["encrypt", "encryption"], &mut problems);
    security.compress = row.flag(&["compression", "compress"], &mut problems);
    security.secure_auth = row.flag(&["secure_auth", "secure_authentication"], &mut problems);
    security.signed_eerp = row.flag(&["signed_eerp", "request_signed_eerp"], &mut problems);
    if security.sign || security.encrypt || security.secure_auth || security.signed_eerp {
        notes.push(
            "file services or secure authentication are on: set the partner's certificate with `os4x partner set --certificate`".into(),
        );
    }
    if let Some(v) = row.get(&["oftp_version", "version"]) {
        if !v.starts_with('2') && !v.starts_with('5') {
            notes.push(format!(
                "OFTP version {v}: os4x offers 2.0 and uses what the partner answers"
            ));
        }
    }

    let port = |col: &str, default: u16, problems: &mut Vec<String>| match row.get(&[col]) {
        None => default,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(format!("{col} {p:?} is not a port number"));
                default
            }
        },
    };
    let address = row.get(&["address"]).map(str::to_owned);
    let kind = row.get(&["addresstype"]).unwrap_or("1");
    let mut route = None;
    let mut isdn = None;
    let mut tls_required = false;
    match (kind, &address, &id) {
        (_, None, _) => notes.push("no address: the partner calls us (no route)".into()),
        ("1", Some(a), Some(id)) => {
            route = Some(Route::new(id, a, port("port", 3305, &mut problems)));
        }
        ("3", Some(a), Some(id)) => {
            let mut r = Route::new(id, a, port("port_tls", 6619, &mut problems));
            r.tls = true;
            route = Some(r);
            tls_required = true;
        }
        ("2", Some(a), _) => {
            let digits: String = a.chars().filter(char::is_ascii_digit).collect();
            if digits.is_empty() {
                problems.push(format!("ISDN address {a:?} has no digits"));
            } else {
                isdn = Some((digits, isdn_controller));
                notes.push(format!(
                    "ISDN number {a} dialled through controller {isdn_controller}"
                ));
            }
        }
        (_, Some(_), None) => {}
        (other, Some(_), _) => problems.push(format!(
            "addresstype {other:?} is not 1 (TCP/IP), 2 (ISDN) or 3 (TCP/IP with TLS)"
        )),
    }
    if let Some(flag) = row.get(&["use_tls"]) {
        let on = matches!(flag, "1" | "y" | "Y" | "yes");
        if on != (kind == "3") {
            notes.push(format!(
                "use_tls={flag} disagrees with addresstype {kind}; the address type counts, as in OS4X"
            ));
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(id), Some(password_in), Some(password_out)) = (id, password_in, password_out) else {
        return Err(vec!["incomplete row".into()]);
    };
    let mut p = Partner::new(id, password_in, password_out);
    p.name = row
        .get(&["longname"])
        .or(row.get(&["shortname"]))
        .unwrap_or_default()
        .to_owned();
    p.directions = Directions::Both;
    p.tls_required = tls_required;
    p.enabled = match row.get(&["active"]) {
        None => true,
        Some(v) => matches!(v.to_ascii_lowercase().as_str(), "1" | "y" | "yes" | "true"),
    };
    p.security = security;
    if let Some(sfid) = row.get(&["his_sfid"]) {
        if !sfid.eq_ignore_ascii_case(id.as_str()) {
            match OdetteId::new(sfid) {
                Ok(o) => {
                    p.originators = vec![o];
                    notes.push(format!(
                        "his_sfid {sfid} differs from his_ssid: allowed as originator; send to it with `os4x send --destination {sfid}`"
                    ));
                }
                Err(e) => return Err(vec![format!("his_sfid {sfid:?}: {e}")]),
            }
        }
    }
    Ok(Mapped {
        partner: p,
        route,
        isdn,
        notes,
    })
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Imported partners and their remarks.
    pub imported: Vec<(String, Vec<String>)>,
    /// Rows left out and why.
    pub skipped: Vec<(String, Vec<String>)>,
    /// Columns of the dump that the importer does not read.
    pub ignored_columns: Vec<String>,
}

impl Report {
    pub fn render(&self, dry_run: bool) -> String {
        let mut s = String::new();
        let verb = if dry_run { "would import" } else { "imported" };
        for (id, notes) in &self.imported {
            s.push_str(&format!("{verb} {id}\n"));
            for n in notes {
                s.push_str(&format!("    note: {n}\n"));
            }
        }
        for (label, why) in &self.skipped {
            s.push_str(&format!("NOT imported {label}\n"));
            for w in why {
                s.push_str(&format!("    - {w}\n"));
            }
        }
        if !self.ignored_columns.is_empty() {
            s.push_str(&format!(
                "columns not imported (os4x has no equivalent or they are not needed): {}\n",
                self.ignored_columns.join(", ")
            ));
        }
        s.push_str(&format!(
            "{} partner(s) {verb}, {} row(s) not imported\n",
            self.imported.len(),
            self.skipped.len()
        ));
        s
    }
}

/// Imports every row of `table` that maps (see [`map_row`]) into `db`.
pub fn import(
    db: &Db,
    table: &Table,
    local: &OdetteId,
    isdn_controller: u32,
    dry_run: bool,
) -> Result<Report, crate::db::DbError> {
    let partners = PartnerStore::new(db.clone());
    let queue = QueueStore::open(db.clone())?;
    let isdn_routes = IsdnRoutes::open(db.clone())?;
    let mut report = Report {
        ignored_columns: table
            .columns
            .iter()
            .filter(|c| !KNOWN.contains(&c.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        ..Report::default()
    };
    for values in &table.rows {
        let label = Row { table, values }.label();
        let mapped = match map_row(table, values, local, isdn_controller) {
            Ok(m) => m,
            Err(why) => {
                report.skipped.push((label, why));
                continue;
            }
        };
        let id = mapped.partner.id.to_string();
        match partners.get(&id) {
            Ok(Some(_)) => {
                report.skipped.push((
                    label,
                    vec![format!(
                        "partner {id} exists already; left as it is (change it with `os4x partner set`)"
                    )],
                ));
                continue;
            }
            Ok(None) => {}
            Err(PartnerError::Db(e)) => return Err(e),
            Err(e) => {
                report.skipped.push((label, vec![e.to_string()]));
                continue;
            }
        }
        if report
            .imported
            .iter()
            .any(|(i, _)| i.eq_ignore_ascii_case(&id))
        {
            report.skipped.push((
                label,
                vec![format!("partner {id} appears twice in the dump")],
            ));
            continue;
        }
        if !dry_run {
            if let Err(why) = write_row(&partners, &queue, &isdn_routes, &mapped) {
                report.skipped.push((label, vec![why]));
                continue;
            }
        }
        report.imported.push((id, mapped.notes));
    }
    Ok(report)
}

/// Writes one mapped row; on failure removes what it wrote.
fn write_row(
    partners: &PartnerStore,
    queue: &QueueStore,
    isdn: &IsdnRoutes,
    m: &Mapped,
) -> Result<(), String> {
    let id = m.partner.id.to_string();
    partners.add(&m.partner).map_err(|e| e.to_string())?;
    let rest = (|| {
        if let Some(r) = &m.route {
            queue.set_route(r).map_err(|e| e.to_string())?;
        }
        if let Some((number, controller)) = &m.isdn {
            isdn.set(&id, Some((number, *controller)))
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })();
    if let Err(e) = rest {
        let _ = queue.remove_route(&id);
        let _ = isdn.set(&id, None);
        let _ = partners.remove(&id);
        return Err(format!("{e} (nothing of this row was kept)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "O0013000000OS4X";

    /// What `mysqldump os4x partner` writes (abridged header), with the
    /// cases the importer must handle: quotes and escapes, NULL, a
    /// multi-row INSERT, every address type, and rows that cannot map.
    const DUMP: &str = r#"-- MySQL dump 10.13  Distrib 5.7.42, for Linux (x86_64)
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
DROP TABLE IF EXISTS `partner`;
CREATE TABLE `partner` (
  `idx` int(11) NOT NULL AUTO_INCREMENT,
  `shortname` varchar(32) DEFAULT NULL,
  `longname` varchar(128) DEFAULT NULL,
  `his_ssid` varchar(25) NOT NULL,
  `his_sfid` varchar(25) DEFAULT NULL,
  `his_password` varchar(8) DEFAULT NULL,
  `my_ssid` varchar(25) DEFAULT NULL,
  `my_sfid` varchar(25) DEFAULT NULL,
  `my_password` varchar(8) DEFAULT NULL,
  `address` varchar(255) DEFAULT NULL,
  `port` int(11) DEFAULT '3305',
  `port_tls` int(11) DEFAULT '6619',
  `addresstype` tinyint(4) DEFAULT '1',
  `use_tls` tinyint(1) DEFAULT '0',
  `oftp_version` varchar(4) DEFAULT '2.0',
  `cipher_suite` tinyint(4) DEFAULT '0',
  `sign` tinyint(1) DEFAULT '0',
  `encrypt` tinyint(1) DEFAULT '0',
  `compression` tinyint(1) DEFAULT '0',
  `secure_auth` tinyint(1) DEFAULT '0',
  `signed_eerp` tinyint(1) DEFAULT '0',
  `active` tinyint(1) DEFAULT '1',
  `mailto` varchar(255) DEFAULT NULL,
  PRIMARY KEY (`idx`),
  UNIQUE KEY `his_ssid` (`his_ssid`)
) ENGINE=InnoDB AUTO_INCREMENT=9 DEFAULT CHARSET=latin1;
LOCK TABLES `partner` WRITE;
INSERT INTO `partner` VALUES (1,'ACME','ACME \'Werk\' 1; Halle','O0013000000ACME','O0013000000ACME','ACMEPW','O0013000000OS4X','O0013000000OS4X','OURPW','oftp.acme.example',3305,6619,1,0,'2.0',4,1,1,0,1,1,1,NULL),(2,'TLS','Tls GmbH','O0013000000TLS',NULL,'TLSPW','O0013000000OS4X',NULL,'OURPW2','tls.example',3305,16619,3,0,'2.0',0,0,0,0,0,0,0,'x@example'),(3,'ISDN','Old plant','O0013000000ISDN','O0013000000ISDN2','ISDNPW','O0013000000OS4X','O0013000000OS4X','OURPW3','+49 30 1234-5',0,0,2,0,'1.4',0,0,0,0,0,0,1,NULL);
INSERT INTO `partner` VALUES (4,'OTHER','Other local id','O0013000000OTHER',NULL,'OPW','O0013000000ELSE',NULL,'X','h',3305,6619,1,0,'2.0',0,0,0,0,0,0,1,NULL),(5,'BAD','Bad row','O0013000000BAD',NULL,'MUCHTOOLONGPW','O0013000000OS4X',NULL,'X','h',99999,6619,7,0,'2.0',9,2,0,0,0,0,1,NULL);
UNLOCK TABLES;
"#;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(os4x_store::testing::database_for(dir.path())).unwrap();
        (dir, db)
    }

    fn local() -> OdetteId {
        OdetteId::new(LOCAL).unwrap()
    }

    #[test]
    fn a_mysqldump_is_read_with_quotes_nulls_and_multi_row_inserts() {
        let t = read_dump(DUMP).unwrap();
        assert_eq!(t.columns.len(), 23);
        assert_eq!(t.columns[3], "his_ssid");
        assert_eq!(t.rows.len(), 5);
        assert_eq!(t.rows[0][2].as_deref(), Some("ACME 'Werk' 1; Halle"));
        assert_eq!(t.rows[0][22], None);
        assert_eq!(t.rows[1][4], None);
    }

    #[test]
    fn rows_map_to_partners_and_routes_and_the_rest_is_reported() {
        let (_d, db) = db();
        let t = read_dump(DUMP).unwrap();
        let report = import(&db, &t, &local(), 1, false).unwrap();
        let ids: Vec<&str> = report.imported.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(
            ids,
            ["O0013000000ACME", "O0013000000TLS", "O0013000000ISDN"]
        );
        assert_eq!(report.skipped.len(), 2, "{report:?}");
        let text = report.render(false);
        assert!(
            text.contains("my_ssid \"O0013000000ELSE\" is not this station"),
            "{text}"
        );
        assert!(text.contains("his_password: "), "{text}");
        assert!(text.contains("addresstype \"7\""), "{text}");
        assert!(text.contains("sign: \"2\""), "{text}");
        assert!(text.contains("columns not imported"), "{text}");
        assert!(text.contains("mailto"), "{text}");

        let partners = PartnerStore::new(db.clone());
        let acme = partners.get("O0013000000ACME").unwrap().unwrap();
        assert_eq!(acme.name, "ACME 'Werk' 1; Halle");
        assert_eq!(acme.password_in.as_str(), "ACMEPW");
        assert_eq!(acme.password_out.as_str(), "OURPW");
        assert!(acme.enabled && !acme.tls_required);
        assert_eq!(acme.security.cipher_suite.code(), 4);
        assert!(acme.security.sign && acme.security.encrypt && !acme.security.compress);
        assert!(acme.security.signed_eerp);
        let queue = QueueStore::open(db.clone()).unwrap();
        let r = queue.route("O0013000000ACME").unwrap().unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tls),
            ("oftp.acme.example", 3305, false)
        );

        let tls = partners.get("O0013000000TLS").unwrap().unwrap();
        assert!(tls.tls_required && !tls.enabled);
        let r = queue.route("O0013000000TLS").unwrap().unwrap();
        assert_eq!((r.port, r.tls), (16619, true));

        let isdn = partners.get("O0013000000ISDN").unwrap().unwrap();
        assert_eq!(isdn.originators[0].as_str(), "O0013000000ISDN2");
        assert!(queue.route("O0013000000ISDN").unwrap().is_none());
        let ir = IsdnRoutes::open(db.clone())
            .unwrap()
            .get("O0013000000ISDN")
            .unwrap()
            .unwrap();
        assert_eq!((ir.number.as_str(), ir.controller), ("493012345", 1));

        // Nothing of the refused rows was written.
        assert!(partners.get("O0013000000OTHER").unwrap().is_none());
        assert!(partners.get("O0013000000BAD").unwrap().is_none());
        assert!(queue.route("O0013000000BAD").unwrap().is_none());

        // Again: the partners exist, nothing changes.
        let again = import(&db, &t, &local(), 1, false).unwrap();
        assert!(again.imported.is_empty());
        assert!(again.render(false).contains("exists already"));
    }

    #[test]
    fn a_dry_run_writes_nothing() {
        let (_d, db) = db();
        let report = import(&db, &read_dump(DUMP).unwrap(), &local(), 1, true).unwrap();
        assert_eq!(report.imported.len(), 3);
        assert!(report.render(true).contains("would import O0013000000ACME"));
        assert!(PartnerStore::new(db).list().unwrap().is_empty());
    }

    #[test]
    fn a_csv_export_with_semicolons_and_mysql_nulls_is_read() {
        let csv = "idx;shortname;longname;his_ssid;his_sfid;his_password;my_ssid;my_password;address;port;addresstype;active\n\
                   1;A;\"Semi; colon\";O0013000000CSV;\\N;CSVPW;O0013000000OS4X;OURS;10.0.0.1;3305;1;1\n";
        let t = read_dump(csv).unwrap();
        assert_eq!(t.rows[0][2].as_deref(), Some("Semi; colon"));
        assert_eq!(t.rows[0][4], None);
        let (_d, db) = db();
        let report = import(&db, &t, &local(), 1, false).unwrap();
        assert_eq!(report.imported.len(), 1, "{report:?}");
        let r = QueueStore::open(db)
            .unwrap()
            .route("O0013000000CSV")
            .unwrap()
            .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("10.0.0.1", 3305));
    }

    #[test]
    fn a_dump_without_a_partner_table_or_broken_is_refused() {
        assert!(matches!(
            read_dump("CREATE TABLE `x` (`a` int);\nINSERT INTO `x` VALUES (1);"),
            Err(DumpError::NoPartnerTable)
        ));
        assert!(matches!(
            read_dump("a,b\n1,2\n"),
            Err(DumpError::NoPartnerTable)
        ));
        let cut = &DUMP[..DUMP.find("'OURPW2'").unwrap() + 3];
        assert!(
            matches!(read_dump(cut), Err(DumpError::Syntax(_))),
            "unterminated"
        );
        let wrong = "CREATE TABLE `partner` (`his_ssid` varchar(25), `x` int);\nINSERT INTO `partner` VALUES ('O1');";
        let e = read_dump(wrong).unwrap_err().to_string();
        assert!(e.contains("1 values for 2 columns"), "{e}");
    }

    #[test]
    fn a_row_whose_route_cannot_be_written_leaves_nothing_behind() {
        let (_d, db) = db();
        db.lock()
            .execute_batch("DROP TABLE os4x_send_routes")
            .unwrap();
        let report = import(&db, &read_dump(DUMP).unwrap(), &local(), 1, false).unwrap();
        let acme = report
            .skipped
            .iter()
            .find(|(l, _)| l.contains("O0013000000ACME"))
            .unwrap_or_else(|| panic!("{report:?}"));
        assert!(
            acme.1[0].contains("nothing of this row was kept"),
            "{acme:?}"
        );
        assert!(PartnerStore::new(db.clone())
            .get("O0013000000ACME")
            .unwrap()
            .is_none());
        // The ISDN partner needs no TCP route: imported.
        assert!(report.imported.iter().any(|(i, _)| i == "O0013000000ISDN"));
    }
}
