//! Files received from partners, with the state of the EERP we owe for
//! each: `os4x received`, the web UI's received page and API.

use os4x_store::sql::params;
use serde::Serialize;

use super::Error as Failure;
use crate::config::Config;

#[derive(Debug, Serialize)]
pub struct Received {
    pub id: i64,
    pub partner: String,
    pub dataset_name: String,
    pub file_timestamp: String,
    pub originator: String,
    pub destination: String,
    /// `partial` or `received`.
    pub state: String,
    pub path: Option<String>,
    pub bytes: Option<i64>,
    pub received_at: Option<i64>,
    /// `none`, `due` or `sent`.
    pub eerp: String,
}

pub fn list(config: &Config, partner: Option<&str>) -> Result<Vec<Received>, Failure> {
    let queue = super::send::open_queue(config)?;
    let db = queue.db();
    let conn = db.lock();
    let io = |e: os4x_store::SqlError| Failure::Store(db.error(e).to_string());
    let mut stmt = conn
        .prepare(
            "SELECT f.id, f.partner, f.dataset_name, f.file_timestamp, f.originator, \
             f.destination, f.state, f.final_path, f.units, f.received_at, \
             (SELECT CASE WHEN count(*) = 0 THEN 'none' \
               WHEN SUM(CASE WHEN d.state = 'due' THEN 1 ELSE 0 END) > 0 THEN 'due' ELSE 'sent' END \
               FROM os4x_receipts_due d WHERE d.received_id = f.id) \
             FROM os4x_received_files f WHERE CAST(?1 AS TEXT) IS NULL OR f.partner = ?1 COLLATE NOCASE \
             ORDER BY f.id DESC",
        )
        .map_err(io)?;
    let rows = stmt
        .query_map(params![partner], |r| {
            Ok(Received {
                id: r.get(0)?,
                partner: r.get(1)?,
                dataset_name: r.get(2)?,
                file_timestamp: r.get(3)?,
                originator: r.get(4)?,
                destination: r.get(5)?,
                state: r.get(6)?,
                path: r.get(7)?,
                bytes: r.get(8)?,
                received_at: r.get(9)?,
                eerp: r.get(10)?,
            })
        })
        .map_err(io)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(io)
}
