//! Masters die or freeze while a client reads and writes through the
//! proxy: reads never fail, a write fails only when its outcome is truly
//! unknown, and every acknowledged write survives.

// The scenarios are plain functions run once per backend, outside #[test].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

const NODE_TIMEOUT_MS: u64 = 1000;

fn setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    require_redis()?;
    let cluster = RedisCluster::start_with(ClusterOptions {
        backend,
        node_timeout_ms: NODE_TIMEOUT_MS,
        ..ClusterOptions::default()
    });
    let proxy = Proxy::start(&cluster.seeds_arg());
    Some((cluster, proxy))
}

fn a_killed_master_is_replaced_without_failed_reads_or_lost_writes(backend: Backend) {
    let Some((mut cluster, proxy)) = setup(backend) else {
        return;
    };
    let load = LoadLoop::start(proxy.addr(), |i| format!("fo:{i}"), 2000);
    std::thread::sleep(Duration::from_millis(1500));
    let victim = cluster.master_for_slot(key_slot(b"fo:0")).unwrap();
    let replica = cluster.replicas_of(victim)[0];
    cluster.kill(victim);
    let killed_at = Instant::now();
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster.master_for_slot(key_slot(b"fo:0")) == Some(replica)
    });
    let promoted_after = killed_at.elapsed();
    // Keep the load going a little on the new master.
    std::thread::sleep(Duration::from_millis(1500));
    let report = load.finish();
    eprintln!(
        "{}: promoted after {promoted_after:?}; {} writes, {} reads, write errors {:?}, longest wait {:?}",
        backend.name(),
        report.writes,
        report.reads,
        report.write_errors,
        report.longest
    );
    report.assert_nothing_lost(&proxy);
}

fn a_frozen_master_is_replaced_and_demoted_when_it_wakes(backend: Backend) {
    let Some((mut cluster, proxy)) = setup(backend) else {
        return;
    };
    let load = LoadLoop::start(proxy.addr(), |i| format!("fz:{i}"), 2000);
    std::thread::sleep(Duration::from_millis(1500));
    let victim = cluster.master_for_slot(key_slot(b"fz:0")).unwrap();
    let replica = cluster.replicas_of(victim)[0];
    cluster.stop(victim);
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster.master_for_slot(key_slot(b"fz:0")) == Some(replica)
    });
    std::thread::sleep(Duration::from_millis(500));
    // It wakes up still claiming its slots at its old epoch; the proxy must
    // not go back to it.
    cluster.cont(victim);
    std::thread::sleep(Duration::from_millis(2000));
    let report = load.finish();
    eprintln!(
        "{} freeze: {} writes, {} reads, write errors {:?}, longest wait {:?}",
        backend.name(),
        report.writes,
        report.reads,
        report.write_errors,
        report.longest
    );
    report.assert_nothing_lost(&proxy);
    cluster.wait_converged(Duration::from_secs(20));
    assert_eq!(cluster.master_for_slot(key_slot(b"fz:0")), Some(replica));
}

on_both_backends!(
    a_killed_master_is_replaced_without_failed_reads_or_lost_writes,
    a_frozen_master_is_replaced_and_demoted_when_it_wakes,
);
