//! Issue 15, point 4: three nodes of one installation on this machine,
//! sharing a real PostgreSQL database (started by the harness on
//! 127.0.0.1) and one inbox/outbox directory, against a partner station.
//!
//! * 3,000 queued files go out from all three nodes' `os4xsqd`; one of
//!   them is killed with SIGKILL mid-run and the others finish its
//!   entries once its leases ran out. The partner stores every file
//!   exactly once.
//! * 1,000 files from the partner come in through a round-robin balancer
//!   in front of the three nodes' `os4xrd_tcpip`: every node receives
//!   some, each file is stored once.

mod cluster_support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cluster_support::*;
use os4x::db::Db;
use os4x::queue::EntryState;

const OUT: usize = 3_000;
const IN: usize = 1_000;
const LEN: usize = 1_024;

/// Checks that `dir` holds exactly the files `F0..F<n>` with their
/// content, each once.
fn assert_stored_once(dir: &std::path::Path, n: usize) {
    let files = stored_files(dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: HashSet<String> = (0..n).map(|i| format!("F{i}")).collect();
    let got: HashSet<String> = names.iter().cloned().collect();
    let extra: Vec<_> = got.difference(&expected).take(10).collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    assert!(
        extra.is_empty() && missing.is_empty() && names.len() == n,
        "{} files in {}; not expected (duplicates are stored under another name): {extra:?}; missing: {missing:?}",
        names.len(),
        dir.display()
    );
    for (name, path) in names.iter().zip(&files) {
        let i: u64 = name[1..].parse().unwrap();
        assert_eq!(
            std::fs::read(path).unwrap(),
            content(LEN, i),
            "content of {name}"
        );
    }
}

#[test]
fn three_nodes_deliver_each_file_exactly_once_even_when_one_is_killed() {
    let cluster = Cluster::new(3, 6);
    let partner = Station::new(B, "");
    // One partner table for the whole cluster (shared database).
    cluster.nodes[0].add_partner(B, |_| {});
    cluster.nodes[0].add_route(B, partner.tcp_port, |r| {
        r.max_sessions = 2;
        r.max_attempts = 1_000;
    });
    partner.add_partner(A, |_| {});
    let t = std::time::Instant::now();
    let ids = cluster.enqueue(B, OUT, LEN);
    eprintln!("queued {OUT} files in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    assert_eq!(cluster.count(EntryState::Queued), OUT as u64);

    let _partner_rd = partner.start_rd();
    let partner_db = Db::open(&partner.config.database).unwrap();
    let mut sqd: Vec<Daemon> = cluster.nodes.iter().map(|n| n.spawn(SQD)).collect();

    // Mid-run: node 2's os4xsqd dies without a word.
    wait_until(
        Duration::from_secs(300),
        || received_rows(&partner_db) >= (OUT / 4) as u64,
        || format!("partner received {}", received_rows(&partner_db)),
    );
    sqd[1].kill9();
    let orphaned: Vec<i64> = cluster
        .queue()
        .list(&[EntryState::Sending])
        .unwrap()
        .into_iter()
        .filter(|e| e.owner == Some(2))
        .map(|e| e.id)
        .collect();
    let remaining = OUT as u64 - received_rows(&partner_db);
    assert!(remaining > 100, "killed too late: {remaining} files left");

    // The other two finish, node 2's claims included, once their leases
    // ran out. Every entry is sent; most EERPs are back in the same
    // sessions, the rest (files of sessions that broke) come when the
    // partner calls in below.
    let sent =
        || cluster.count(EntryState::Delivered) + cluster.count(EntryState::SentAwaitingEerp);
    wait_until(
        Duration::from_secs(600),
        || sent() == OUT as u64,
        || {
            format!(
                "cluster queue {:?}, partner stored {}",
                cluster.queue().counts().unwrap(),
                received_rows(&partner_db)
            )
        },
    );
    eprintln!("{OUT} files sent by the cluster in {:?}", t.elapsed());
    assert_eq!(received_rows(&partner_db), OUT as u64);
    assert_stored_once(&partner.inbox_from(A), OUT);

    let mut by_owner: HashMap<u32, usize> = HashMap::new();
    for id in &ids {
        let e = cluster.queue().get(*id).unwrap().unwrap();
        *by_owner.entry(e.owner.unwrap()).or_default() += 1;
    }
    for node in 1..=3 {
        assert!(
            by_owner.get(&node).copied().unwrap_or(0) > 0,
            "node {node} sent nothing: {by_owner:?}"
        );
    }
    for id in &orphaned {
        let e = cluster.queue().get(*id).unwrap().unwrap();
        assert_ne!(e.owner, Some(2), "entry {id} of the killed node: {e:?}");
        assert!(
            matches!(
                e.state,
                EntryState::Delivered | EntryState::SentAwaitingEerp
            ),
            "{e:?}"
        );
    }
    eprintln!(
        "sent per node {by_owner:?}; {} entries of the killed node finished by others",
        orphaned.len()
    );

    // `os4x-pidctl status --all` shows the three nodes and node 2's dead
    // daemon as this host's stale entry.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_os4x-pidctl"))
        .arg("--config")
        .arg(&cluster.nodes[0].config_path)
        .args(["status", "--all", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes: Vec<u64> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["server_id"].as_u64().unwrap())
        .collect();
    assert_eq!(nodes, [1, 2, 3], "{doc}");
    let sq2 = doc["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "os4xsqd" && p["server_id"] == 2)
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(sq2["state"], "stale_no_process", "{doc}");

    for (i, d) in sqd.iter_mut().enumerate() {
        if i != 1 {
            d.stop();
        }
    }

    // Inbound: 1,000 files from the partner through the balancer.
    let rds: Vec<Daemon> = cluster.nodes.iter().map(|n| n.start_rd()).collect();
    let balancer = Balancer::start(cluster.nodes.iter().map(|n| n.tcp_port).collect());
    partner.add_route(A, balancer.port, |r| {
        r.max_sessions = 3;
        r.max_attempts = 1_000;
    });
    enqueue_files(&partner, A, IN, LEN);
    let _partner_sqd = partner.spawn(SQD);
    let cluster_db = cluster.queue().db().clone();
    wait_until(
        Duration::from_secs(600),
        || count_state(&partner.queue, EntryState::Delivered) == IN as u64,
        || {
            format!(
                "partner queue {:?}, cluster stored {}",
                partner.queue.counts().unwrap(),
                received_rows(&cluster_db)
            )
        },
    );
    assert_eq!(received_rows(&cluster_db), IN as u64);
    assert_stored_once(&cluster.shared.path().join("inbox").join(B), IN);
    let stored_per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| n.log("os4xrd_tcpip").matches("file stored").count())
        .collect();
    eprintln!(
        "connections per node {:?}, files stored per node {stored_per_node:?}",
        balancer.counts()
    );
    assert_eq!(
        stored_per_node.iter().sum::<usize>(),
        IN,
        "{stored_per_node:?}"
    );
    assert!(
        stored_per_node.iter().all(|&n| n > 0),
        "every node received some: {stored_per_node:?}"
    );
    // The partner's calls also brought the receipts still due from the
    // first part: every outbound entry is delivered now.
    wait_until(
        Duration::from_secs(120),
        || cluster.count(EntryState::Delivered) == OUT as u64,
        || format!("cluster queue {:?}", cluster.queue().counts().unwrap()),
    );
    drop(rds);
}
