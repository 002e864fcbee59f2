//! A cluster survives the loss of its nodes, on redis-server and on the
//! built-in nodes alike, with the proxy in front: a killed master is
//! replaced by its replica and keeps every write its replica confirmed
//! (WAIT); it comes back as a replica of its replacement and catches up; a
//! manual CLUSTER FAILOVER swaps roles without losing a write; and a restart
//! of every node brings back the same ids, slots, roles and data.

// The scenarios are plain functions run once per backend, outside #[test].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

const NODE_TIMEOUT_MS: u64 = 1000;

fn start(backend: Backend, appendonly: bool) -> Option<RedisCluster> {
    require_redis()?;
    Some(RedisCluster::start_with(ClusterOptions {
        backend,
        node_timeout_ms: NODE_TIMEOUT_MS,
        appendonly,
        ..ClusterOptions::default()
    }))
}

/// The union of every master's keyspace.
fn cluster_digest(cluster: &RedisCluster) -> BTreeMap<Vec<u8>, String> {
    let mut all = BTreeMap::new();
    for port in cluster.masters() {
        all.extend(keyspace_digest(&mut cluster.client(port)));
    }
    all
}

/// SIGKILL a master: its replica takes over within node-timeout + 2 s and
/// holds every key the replica had confirmed; the proxy keeps serving. The
/// old master, restarted from its directory, becomes a replica of its
/// replacement and ends up with the same keys.
fn a_killed_master_is_replaced_and_comes_back_as_a_replica(backend: Backend) {
    let Some(mut cluster) = start(backend, false) else {
        return;
    };
    let proxy = Proxy::start(&cluster.seeds_arg());
    let tag = "{kill}";
    let victim = cluster.master_for_slot(key_slot(tag.as_bytes())).unwrap();
    let replica = cluster.replicas_of(victim)[0];

    // Writes the replica confirmed (WAIT) before the kill.
    let mut direct = cluster.client(victim);
    for i in 0..500 {
        direct
            .cmd(&["SET", &format!("{tag}:{i}"), &i.to_string()])
            .expect_ok();
    }
    direct.cmd(&["RPUSH", &format!("{tag}:list"), "a", "b", "c"]);
    direct.cmd(&["HSET", &format!("{tag}:hash"), "f", "v"]);
    assert_eq!(direct.cmd(&["WAIT", "1", "2000"]).expect_int(), 1, "WAIT");
    let confirmed = keyspace_digest(&mut cluster.client(victim));
    assert!(confirmed.len() >= 502, "{}", confirmed.len());

    let load = LoadLoop::start(proxy.addr(), |i| format!("kill:{i}"), 2000);
    std::thread::sleep(Duration::from_millis(1000));
    cluster.kill(victim);
    let killed = Instant::now();
    let mut promoted = None;
    eventually(Duration::from_secs(20), Duration::from_millis(20), || {
        let role = cluster.client(replica).cmd(&["ROLE"]);
        let master = role.expect_array()[0].expect_str() == "master";
        if master && promoted.is_none() {
            promoted = Some(killed.elapsed());
        }
        master && cluster.master_for_slot(key_slot(tag.as_bytes())) == Some(replica)
    });
    let promoted = promoted.unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let report = load.finish();
    eprintln!(
        "{}: replica promoted {promoted:?} after the kill; {} writes, {} reads through the proxy, write errors {:?}, longest wait {:?}",
        backend.name(),
        report.writes,
        report.reads,
        report.write_errors,
        report.longest
    );
    if backend == Backend::Builtin {
        let bound = Duration::from_millis(NODE_TIMEOUT_MS + 2000);
        assert!(promoted <= bound, "promoted after {promoted:?} > {bound:?}");
    }
    report.assert_nothing_lost(&proxy);
    let now = keyspace_digest(&mut cluster.client(replica));
    let lost: Vec<String> = digest_diff(&confirmed, &now)
        .into_iter()
        .filter(|d| !d.ends_with(": new"))
        .collect();
    assert!(lost.is_empty(), "confirmed keys lost or changed: {lost:?}");

    cluster.restart(victim);
    let replica_id = cluster.node_id(replica);
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster
            .node_for_port(victim)
            .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(replica_id.as_str()))
    });
    cluster.wait_converged(Duration::from_secs(20));
    let mut last = String::new();
    let caught_up = try_eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        let theirs = keyspace_digest(&mut cluster.client(replica));
        let mine = keyspace_digest(&mut cluster.client(victim));
        last = format!(
            "{:?}",
            digest_diff(&theirs, &mine)
                .iter()
                .take(5)
                .collect::<Vec<_>>()
        );
        theirs == mine
    });
    assert!(caught_up.is_ok(), "the old master did not catch up: {last}");
}

/// CLUSTER FAILOVER on a replica while a client writes through the proxy:
/// the roles swap and no write is lost.
fn a_manual_failover_loses_no_write(backend: Backend) {
    let Some(cluster) = start(backend, false) else {
        return;
    };
    let proxy = Proxy::start(&cluster.seeds_arg());
    let tag = "{manual}";
    let master = cluster.master_for_slot(key_slot(tag.as_bytes())).unwrap();
    let replica = cluster.replicas_of(master)[0];
    let load = LoadLoop::start(proxy.addr(), |i| format!("mf:{i}"), 2000);
    std::thread::sleep(Duration::from_millis(1000));
    cluster
        .client(replica)
        .cmd(&["CLUSTER", "FAILOVER"])
        .expect_ok();
    let asked = Instant::now();
    eventually(Duration::from_secs(15), Duration::from_millis(20), || {
        cluster.master_for_slot(key_slot(tag.as_bytes())) == Some(replica)
            && cluster.node_for_port(master).is_some_and(|n| !n.master)
    });
    let swapped = asked.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    let report = load.finish();
    eprintln!(
        "{}: roles swapped {swapped:?} after CLUSTER FAILOVER; {} writes, write errors {:?}, longest wait {:?}",
        backend.name(),
        report.writes,
        report.write_errors,
        report.longest
    );
    report.assert_nothing_lost(&proxy);
    assert!(report.write_errors.is_empty(), "{:?}", report.write_errors);
}

/// Every node stopped (SIGKILL, after the once-a-second fsync) and started
/// again from its directory: the same ids, slots, roles and data.
fn a_full_restart_brings_back_the_same_cluster(backend: Backend) {
    let Some(mut cluster) = start(backend, true) else {
        return;
    };
    let proxy = Proxy::start(&cluster.seeds_arg());
    let mut c = proxy.client();
    for i in 0..300 {
        c.cmd(&["SET", &format!("s:{i}"), &format!("v{i}")])
            .expect_ok();
    }
    for i in 0..30 {
        c.cmd(&["RPUSH", &format!("l:{i}"), "a", "b", &i.to_string()]);
        c.cmd(&["HSET", &format!("h:{i}"), "f", "1", "g", &i.to_string()]);
        c.cmd(&["SADD", &format!("set:{i}"), "x", "y", &i.to_string()]);
        c.cmd(&["ZADD", &format!("z:{i}"), "1.5", "m", &i.to_string(), "n"]);
        c.cmd(&["SET", &format!("ttl:{i}"), "t", "EX", "3600"]);
        c.cmd(&["INCRBY", &format!("n:{i}"), &i.to_string()]);
    }
    // Replicas and the once-a-second fsync catch up.
    std::thread::sleep(Duration::from_millis(2500));
    let layout = |cluster: &RedisCluster| -> Vec<String> {
        let mut lines: Vec<String> = cluster
            .ports()
            .iter()
            .map(|&p| {
                let n = cluster.node_for_port(p).unwrap();
                format!(
                    "{p} {} master={} of={:?} slots={:?}",
                    n.id, n.master, n.master_id, n.slots
                )
            })
            .collect();
        lines.sort();
        lines
    };
    let before_layout = layout(&cluster);
    let before = cluster_digest(&cluster);
    assert_eq!(before.len(), 300 + 6 * 30);
    drop(c);
    drop(proxy);

    let ports = cluster.ports();
    for &port in &ports {
        cluster.kill(port);
    }
    for &port in &ports {
        cluster.restart(port);
    }
    cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(
        layout(&cluster),
        before_layout,
        "ids, roles or slots changed"
    );
    let after = cluster_digest(&cluster);
    assert_same_keyspace(&before, &after);
    // The replicas hold the same data as their masters.
    for master in cluster.masters() {
        let mine = keyspace_digest(&mut cluster.client(master));
        for replica in cluster.replicas_of(master) {
            let ok = try_eventually(Duration::from_secs(10), Duration::from_millis(100), || {
                keyspace_digest(&mut cluster.client(replica)) == mine
            });
            assert!(ok.is_ok(), "replica {replica} differs from master {master}");
        }
    }
}

on_both_backends!(
    a_killed_master_is_replaced_and_comes_back_as_a_replica,
    a_manual_failover_loses_no_write,
    a_full_restart_brings_back_the_same_cluster,
);
