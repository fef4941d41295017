//! 1 node against 3 nodes (issue 15): the same installation on one
//! PostgreSQL database (a server started for the run on 127.0.0.1 with
//! `fsync=on`) with a shared inbox/outbox, against one partner station
//! (SQLite), all on this machine.
//!
//! 1. Outbound: files of 1 KiB queued for the partner, sent by every
//!    node's `os4xsqd` (two sessions each) until every entry is
//!    `delivered` (EERP back).
//! 2. Inbound: the partner sends files of 1 KiB through a round-robin
//!    balancer to the nodes' `os4xrd_tcpip` (three sessions) until every
//!    one of its entries is `delivered`.
//!
//! Run: `cargo bench -p os4x-services --bench cluster_bench`
//! (`CLUSTER_BENCH_FILES` changes the number of files per direction).

#[path = "../../tests/cluster_support/mod.rs"]
mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use os4x::queue::EntryState;

fn files() -> usize {
    std::env::var("CLUSTER_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn run(server: &os4x_store::testing::PgServer, nodes: u32, n: usize) -> (Duration, Duration) {
    let cluster = Cluster::on(server, nodes, 60);
    let partner = Station::new(B, "");
    cluster.nodes[0].add_partner(B, |_| {});
    cluster.nodes[0].add_route(B, partner.tcp_port, |r| r.max_sessions = 2);
    partner.add_partner(A, |_| {});
    cluster.enqueue(B, n, 1024);
    let _partner_rd = partner.start_rd();
    let started = Instant::now();
    let sqd: Vec<Daemon> = cluster.nodes.iter().map(|s| s.spawn(SQD)).collect();
    wait_until(
        Duration::from_secs(3600),
        || cluster.count(EntryState::Delivered) == n as u64,
        || format!("{:?}", cluster.queue().counts().unwrap()),
    );
    let outbound = started.elapsed();
    drop(sqd);

    let _rds: Vec<Daemon> = cluster.nodes.iter().map(|s| s.start_rd()).collect();
    let balancer = Balancer::start(cluster.nodes.iter().map(|s| s.tcp_port).collect());
    partner.add_route(A, balancer.port, |r| r.max_sessions = 3);
    enqueue_files(&partner, A, n, 1024);
    let started = Instant::now();
    let _partner_sqd = partner.spawn(SQD);
    wait_until(
        Duration::from_secs(3600),
        || count_state(&partner.queue, EntryState::Delivered) == n as u64,
        || format!("{:?}", partner.queue.counts().unwrap()),
    );
    (outbound, started.elapsed())
}

fn main() {
    let n = files();
    // Durable, unlike the test server: every commit reaches the disk.
    let server = os4x_store::testing::PgServer::start(&[
        "fsync=on",
        "full_page_writes=on",
        "synchronous_commit=on",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "| Nodes | {n} x 1 KiB out (queued → delivered) | {n} x 1 KiB in (through the balancer) |"
    );
    println!("| --- | --- | --- |");
    for nodes in [1, 3] {
        let (out, inb) = run(&server, nodes, n);
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "| {nodes} | {:.1} s, {:.0} files/s | {:.1} s, {:.0} files/s |",
            out.as_secs_f64(),
            rate(out),
            inb.as_secs_f64(),
            rate(inb)
        );
    }
}
