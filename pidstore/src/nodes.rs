//! `os4x_nodes`: the nodes (each with its own `server_id`) sharing one
//! database, where each runs and when one of its daemons last said it is
//! alive. Times are the database's clock, so nodes with differing clocks
//! still agree on ages.
//!
//! Every daemon registers its node at start and then beats every
//! `[cluster] heartbeat`. A second machine configured with a `server_id`
//! that a live node on another host already uses is refused: two nodes
//! with one id would take back each other's queue claims.

use os4x_store::sql::{params, OptionalExtension, Row};
use os4x_store::{Connection, SqlError};

/// One node as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub server_id: u32,
    pub host: String,
    pub boot_id: Option<String>,
    /// os4x version of the daemon that registered last.
    pub version: Option<String>,
    /// Unix seconds: the first daemon of this boot registered.
    pub started_at: i64,
    /// Unix seconds of the last heartbeat.
    pub heartbeat_at: i64,
    /// Seconds since the last heartbeat (database clock).
    pub age: i64,
}

/// Why a node could not register.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("server_id {server_id} is in use by the node on host {host} (last heartbeat {age} s ago); give this machine its own server_id in os4x.toml, or stop the other node first")]
    InUse {
        server_id: u32,
        host: String,
        age: i64,
    },
    #[error("cannot record the node in the database: {0}")]
    Sql(#[from] SqlError),
}

const SELECT: &str = "SELECT server_id, host, boot_id, version, started_at, heartbeat_at, \
    unixepoch() - heartbeat_at FROM os4x_nodes";

fn node_from_row(r: &Row) -> Result<Node, SqlError> {
    Ok(Node {
        server_id: r.get(0)?,
        host: r.get(1)?,
        boot_id: r.get(2)?,
        version: r.get(3)?,
        started_at: r.get(4)?,
        heartbeat_at: r.get(5)?,
        age: r.get(6)?,
    })
}

/// Records that node `server_id` runs on `host` (this boot, this
/// version). Refused while another host holds `server_id` with a
/// heartbeat younger than `stale_after` seconds, unless `force`.
pub fn register(
    conn: &mut Connection,
    server_id: u32,
    host: &str,
    boot_id: Option<&str>,
    version: &str,
    stale_after: i64,
    force: bool,
) -> Result<(), NodeError> {
    let tx = conn.transaction_immediate()?;
    let current = tx
        .query_row(
            &format!("{SELECT} WHERE server_id = ?1"),
            [server_id],
            node_from_row,
        )
        .optional()?;
    if let Some(n) = &current {
        if n.host != host && n.age < stale_after && !force {
            return Err(NodeError::InUse {
                server_id,
                host: n.host.clone(),
                age: n.age,
            });
        }
    }
    let same_boot = current
        .as_ref()
        .is_some_and(|n| n.host == host && n.boot_id.as_deref() == boot_id);
    tx.execute(
        "INSERT INTO os4x_nodes (server_id, host, boot_id, version, started_at, heartbeat_at) \
         VALUES (?1, ?2, ?3, ?4, unixepoch(), unixepoch()) \
         ON CONFLICT (server_id) DO UPDATE SET host = excluded.host, boot_id = excluded.boot_id, \
         version = excluded.version, heartbeat_at = excluded.heartbeat_at",
        params![server_id, host, boot_id, version],
    )?;
    if !same_boot {
        tx.execute(
            "UPDATE os4x_nodes SET started_at = unixepoch() WHERE server_id = ?1",
            [server_id],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A heartbeat of node `server_id` on `host`. `false`: the row names
/// another host now (a machine started with this id by force).
pub fn beat(conn: &Connection, server_id: u32, host: &str) -> Result<bool, SqlError> {
    conn.execute(
        "UPDATE os4x_nodes SET heartbeat_at = unixepoch() WHERE server_id = ?1 AND host = ?2",
        params![server_id, host],
    )
    .map(|n| n > 0)
}

/// Every node, by `server_id`.
pub fn list(conn: &Connection) -> Result<Vec<Node>, SqlError> {
    conn.query_map(&format!("{SELECT} ORDER BY server_id"), [], node_from_row)
}

/// Whether a live node (heartbeat younger than `stale_after` seconds)
/// runs the boot `boot_id`: work claimed by a process of another boot is
/// then someone else's, not a leftover of this machine before a reboot.
pub fn boot_alive(conn: &Connection, boot_id: &str, stale_after: i64) -> Result<bool, SqlError> {
    conn.query_row(
        "SELECT COUNT(*) FROM os4x_nodes WHERE boot_id = ?1 AND heartbeat_at >= unixepoch() - ?2",
        params![boot_id, stale_after],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = os4x_store::open(os4x_store::testing::database_for(dir.path())).unwrap();
        (dir, conn)
    }

    #[test]
    fn a_server_id_belongs_to_one_live_host() {
        let (_d, mut c) = db();
        register(&mut c, 1, "alpha", Some("b1"), "0.1", 30, false).unwrap();
        register(&mut c, 2, "beta", Some("b2"), "0.1", 30, false).unwrap();
        // Another daemon of the same node: fine.
        register(&mut c, 1, "alpha", Some("b1"), "0.1", 30, false).unwrap();
        let e = register(&mut c, 1, "gamma", Some("b3"), "0.1", 30, false).unwrap_err();
        assert!(
            matches!(&e, NodeError::InUse { server_id: 1, host, .. } if host == "alpha"),
            "{e}"
        );
        assert!(beat(&c, 1, "alpha").unwrap());
        assert!(!beat(&c, 1, "gamma").unwrap());
        // Silent for longer than allowed: the id may move.
        c.execute(
            "UPDATE os4x_nodes SET heartbeat_at = heartbeat_at - 100 WHERE server_id = 1",
            [],
        )
        .unwrap();
        register(&mut c, 1, "gamma", Some("b3"), "0.2", 30, false).unwrap();
        let nodes = list(&c).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (nodes[0].host.as_str(), nodes[0].version.as_deref()),
            ("gamma", Some("0.2"))
        );
        assert!(nodes[0].age <= 1);
        assert!(boot_alive(&c, "b3", 30).unwrap());
        assert!(!boot_alive(&c, "b1", 30).unwrap());
    }
}
