//! `os4x db copy`: an installation's database, every row of every table,
//! into another database (SQLite to PostgreSQL when a site outgrows one
//! machine), in one transaction on the target.
//!
//! Both sides are first brought to this build's schema, so the tables and
//! columns match. The target must hold no os4x rows (a copy never merges);
//! tables are filled parents first (foreign keys), identity sequences are
//! moved past the copied ids, and the row counts of both sides are
//! compared before the commit. On any error nothing is left in the target.

use std::collections::{BTreeMap, BTreeSet};

use crate::conn::{Backend, Connection};
use crate::sql::{Error as SqlError, Value};

/// Rows per INSERT (well below PostgreSQL's 65535 parameters).
const BATCH_ROWS: usize = 200;

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target already holds os4x data ({table}: {rows} rows); copy into an empty database (createdb os4x), or drop its tables first")]
    TargetNotEmpty { table: String, rows: i64 },
    #[error("table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: SqlError,
    },
    #[error("table {table}: {source_rows} rows read but {target_rows} in the target; nothing was copied")]
    Count {
        table: String,
        source_rows: i64,
        target_rows: i64,
    },
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// What was copied: rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: BTreeMap<String, i64>,
}

impl CopyReport {
    pub fn rows(&self) -> i64 {
        self.tables.values().sum()
    }
}

/// Copies every os4x table of `from` into `to`. Both must be migrated to
/// the same schema ([`crate::open`] does that).
pub fn copy_all(from: &Connection, to: &mut Connection) -> Result<CopyReport, CopyError> {
    // The schema bookkeeping is the target's own (same versions).
    let tables: Vec<String> = from
        .tables()?
        .into_iter()
        .filter(|t| t.starts_with("os4x_") && t != "os4x_schema")
        .collect();
    for t in &tables {
        let rows = count(to, t)?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty {
                table: t.clone(),
                rows,
            });
        }
    }
    let order = parents_first(from, &tables)?;
    let tx = to.transaction_immediate()?;
    let mut report = CopyReport::default();
    for table in &order {
        let n = copy_table(from, &tx, table).map_err(|source| CopyError::Table {
            table: table.clone(),
            source,
        })?;
        report.tables.insert(table.clone(), n);
    }
    crate::migrate::fix_sequences(&tx)?;
    for (table, &source_rows) in &report.tables {
        let target_rows = count(&tx, table)?;
        if target_rows != source_rows {
            return Err(CopyError::Count {
                table: table.clone(),
                source_rows,
                target_rows,
            });
        }
    }
    tx.commit()?;
    Ok(report)
}

fn count(conn: &Connection, table: &str) -> Result<i64, SqlError> {
    conn.query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
        r.get(0)
    })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables ordered so that every table comes after those it refers to.
fn parents_first(conn: &Connection, tables: &[String]) -> Result<Vec<String>, SqlError> {
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in tables {
        let refs: Vec<String> = match conn.backend() {
            Backend::Sqlite => conn.query_map(
                &format!("SELECT \"table\" FROM pragma_foreign_key_list('{t}')"),
                [],
                |r| r.get(0),
            )?,
            Backend::Postgres => conn.query_map(
                "SELECT ccu.table_name FROM information_schema.table_constraints tc \
                 JOIN information_schema.constraint_column_usage ccu \
                 ON tc.constraint_name = ccu.constraint_name \
                 WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = ?1",
                [t.as_str()],
                |r| r.get(0),
            )?,
        };
        parents.insert(
            t.clone(),
            refs.into_iter()
                .filter(|p| p != t && tables.contains(p))
                .collect(),
        );
    }
    let mut done: Vec<String> = Vec::new();
    while done.len() < tables.len() {
        let before = done.len();
        for t in tables {
            if !done.contains(t) && parents[t].iter().all(|p| done.contains(p)) {
                done.push(t.clone());
            }
        }
        if done.len() == before {
            // A cycle cannot come from our schema; copy the rest as listed.
            done.extend(
                tables
                    .iter()
                    .filter(|t| !done.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(done)
}

/// Copies one table; the number of rows.
fn copy_table(from: &Connection, to: &Connection, table: &str) -> Result<i64, SqlError> {
    let rows = from.rows(&format!("SELECT * FROM {}", quote(table)), [])?;
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let columns: Vec<String> = first.names().to_vec();
    let column_list = columns.join(", ");
    let width = columns.len();
    for chunk in rows.chunks(BATCH_ROWS) {
        let mut placeholders = Vec::with_capacity(chunk.len());
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * width);
        for (i, row) in chunk.iter().enumerate() {
            let slots: Vec<String> = (1..=width).map(|k| format!("?{}", i * width + k)).collect();
            placeholders.push(format!("({})", slots.join(", ")));
            values.extend(row.values().iter().cloned());
        }
        to.execute(
            &format!(
                "INSERT INTO {} ({column_list}) VALUES {}",
                quote(table),
                placeholders.join(", ")
            ),
            values,
        )?;
    }
    Ok(i64::try_from(rows.len()).unwrap_or(i64::MAX))
}
