//! `[cluster]`: several nodes (each with its own `server_id`) sharing one
//! PostgreSQL database and one inbox/outbox directory.
//!
//! ```toml
//! [cluster]
//! lease = 60       # seconds a node holds a queue entry or inbound file
//!                  # without renewing it; another node takes it over after
//! heartbeat = 10   # seconds between a daemon's heartbeats in os4x_nodes
//! ```
//!
//! A single installation needs none of this; the defaults work there too.

use std::time::Duration;

use serde::Deserialize;

use crate::field::ConfigError;

/// `[cluster]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    lease: Option<u64>,
    heartbeat: Option<u64>,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How long a claim (queue entry being sent, file being received)
    /// stays valid without renewal. A node that cannot renew stops
    /// before it runs out; only then may another node take the work over.
    pub lease: Duration,
    /// How often each daemon records that it is alive.
    pub heartbeat: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
        }
    }
}

impl ClusterConfig {
    /// Seconds after its last heartbeat a node counts as gone: three
    /// heartbeats, or a lease if that is longer.
    pub fn silence_secs(&self) -> i64 {
        i64::try_from((self.heartbeat * 3).max(self.lease).as_secs()).unwrap_or(i64::MAX / 4)
    }
}

pub fn resolve(
    file: ClusterFile,
    bad: &dyn Fn(&str, String) -> ConfigError,
) -> Result<ClusterConfig, ConfigError> {
    let d = ClusterConfig::default();
    let lease = match file.lease {
        None => d.lease,
        // Renewal runs every third of the lease and a holder stops a
        // few seconds before it ends: below 6 s nothing would be left.
        Some(n) if !(6..=86_400).contains(&n) => {
            return Err(bad(
                "cluster.lease",
                format!("{n} is out of range; use 6 to 86400 seconds"),
            ))
        }
        Some(n) => Duration::from_secs(n),
    };
    let heartbeat = match file.heartbeat {
        None => d.heartbeat,
        Some(n) if !(1..=3_600).contains(&n) => {
            return Err(bad(
                "cluster.heartbeat",
                format!("{n} is out of range; use 1 to 3600 seconds"),
            ))
        }
        Some(n) => Duration::from_secs(n),
    };
    Ok(ClusterConfig { lease, heartbeat })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_gone_after_three_heartbeats_or_a_lease() {
        assert_eq!(ClusterConfig::default().silence_secs(), 60);
        let c = ClusterConfig {
            lease: Duration::from_secs(6),
            heartbeat: Duration::from_secs(30),
        };
        assert_eq!(c.silence_secs(), 90);
    }

    #[test]
    fn out_of_range_values_are_refused_naming_the_key() {
        let bad = |key: &str, message: String| ConfigError::Key {
            path: "os4x.toml".into(),
            key: key.to_owned(),
            message,
            line: None,
        };
        let file: ClusterFile = toml::from_str("lease = 5").unwrap();
        let e = resolve(file, &bad).unwrap_err().to_string();
        assert!(
            e.contains("cluster.lease") && e.contains("6 to 86400"),
            "{e}"
        );
        let file: ClusterFile = toml::from_str("heartbeat = 0").unwrap();
        assert!(resolve(file, &bad).is_err());
        let file: ClusterFile = toml::from_str("lease = 30\nheartbeat = 5").unwrap();
        let c = resolve(file, &bad).unwrap();
        assert_eq!((c.lease.as_secs(), c.heartbeat.as_secs()), (30, 5));
    }
}
