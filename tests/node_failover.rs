//! Failure detection and failover of cluster nodes, on built-in nodes and,
//! by the same bodies, on redis-server: a killed master is replaced by its
//! replica (measured), `cluster_state` goes fail and comes back, the old
//! master rejoins as a replica of its replacement; a frozen master is
//! demoted when it wakes, with one master per slot range; CLUSTER FAILOVER
//! in its three forms swaps roles; failure reports are counted.
//!
//! Data replication is not checked here (it has its own tests): only
//! roles, slots and cluster state.

// The helpers below are not `#[test]` functions, so the test-only clippy
// relaxations do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slotway::cluster::nodes::{self, NodeLine};

/// Short, so a failover takes seconds; the same as the proxy's failover
/// tests use against redis-server.
const NODE_TIMEOUT_MS: u64 = 1000;
/// What the issue promises: promoted within node-timeout + 2 s.
const PROMOTION_BOUND: Duration = Duration::from_millis(NODE_TIMEOUT_MS + 2000);
/// Generous bounds for what has no promise (starting, rejoining).
const SETTLE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

fn start(backend: Backend) -> Option<RedisCluster> {
    require_redis()?;
    Some(RedisCluster::start_with(ClusterOptions {
        backend,
        node_timeout_ms: NODE_TIMEOUT_MS,
        ..ClusterOptions::default()
    }))
}

fn query(port: u16, args: &[&str]) -> Result<Reply, String> {
    let mut c = TestClient::try_connect(&format!("127.0.0.1:{port}"))
        .map_err(|e| format!("{port}: {e}"))?;
    c.set_timeout(QUERY_TIMEOUT);
    c.try_cmd(args)
        .map_err(|e| format!("{port}: {args:?}: {e}"))
}

fn text(port: u16, args: &[&str]) -> Result<String, String> {
    match query(port, args)? {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => Err(format!("{port}: {args:?}: {other:?}")),
    }
}

fn view(port: u16) -> Result<Vec<NodeLine>, String> {
    text(port, &["CLUSTER", "NODES"]).map(|t| nodes::parse(&t))
}

fn live(cluster: &RedisCluster) -> Vec<u16> {
    cluster
        .nodes()
        .iter()
        .filter(|n| n.is_live())
        .map(RedisNode::port)
        .collect()
}

fn line(view: &[NodeLine], port: u16) -> Result<&NodeLine, String> {
    let addr = format!("127.0.0.1:{port}");
    view.iter()
        .find(|n| n.addr == addr)
        .ok_or(format!("no line for {addr}"))
}

/// Every live node sees `port` as a master serving exactly `slots`.
fn all_see_master(
    cluster: &RedisCluster,
    port: u16,
    slots: &[std::ops::RangeInclusive<u16>],
) -> Result<(), String> {
    for from in live(cluster) {
        let v = view(from)?;
        let n = line(&v, port)?;
        if !n.master || n.slots != slots {
            return Err(format!("{from} sees {port} as {n:?}"));
        }
    }
    Ok(())
}

/// Every live node sees `replica` as a replica of `master`.
fn all_see_replica(cluster: &RedisCluster, replica: u16, master: u16) -> Result<(), String> {
    for from in live(cluster) {
        let v = view(from)?;
        let master_id = line(&v, master)?.id.clone();
        let n = line(&v, replica)?;
        if n.master || n.master_id.as_deref() != Some(master_id.as_str()) || n.failed {
            return Err(format!("{from} sees {replica} as {n:?}"));
        }
    }
    Ok(())
}

fn cluster_state(port: u16) -> Option<String> {
    let info = text(port, &["CLUSTER", "INFO"]).ok()?;
    info_field(&info, "cluster_state").map(str::to_string)
}

/// The master serving slot 0 and its replica.
fn first_shard(cluster: &RedisCluster) -> (u16, u16, Vec<std::ops::RangeInclusive<u16>>) {
    let master = cluster.master_for_slot(0).expect("slot 0 is served");
    let replica = cluster.replicas_of(master)[0];
    let slots = line(&view(master).unwrap(), master).unwrap().slots.clone();
    (master, replica, slots)
}

/// `redis-cli --cluster check` through `port` succeeds.
fn redis_cli_check(cluster: &RedisCluster, port: u16) {
    let out = Command::new(cluster.cli_bin())
        .args(["--cluster", "check", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli --cluster check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("[OK] All 16384 slots covered."),
        "redis-cli --cluster check failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `check`, panicking with the nodes' logs.
#[track_caller]
fn settle(cluster: &RedisCluster, what: &str, check: impl FnMut() -> Result<(), String>) {
    if let Err(why) = try_eventually(SETTLE, POLL, check) {
        panic!(
            "{what}: not within {SETTLE:?}: {why}\n{}",
            cluster.logs_tail(25)
        );
    }
}

fn a_killed_master_is_replaced_and_rejoins_as_a_replica(backend: Backend) {
    let Some(mut cluster) = start(backend) else {
        return;
    };
    let (master, replica, slots) = first_shard(&cluster);
    let master_id = cluster.node_id(master);
    let watcher = cluster
        .masters()
        .into_iter()
        .find(|&p| p != master)
        .unwrap();
    cluster.kill(master);
    let killed = Instant::now();

    // Until every survivor sees the replica promoted: did the cluster
    // turn fail meanwhile, and were failure reports counted?
    let (mut saw_fail, mut reports) = (false, 0);
    let promoted = try_eventually(Duration::from_secs(15), POLL, || {
        saw_fail |= cluster_state(watcher).as_deref() == Some("fail");
        for port in live(&cluster) {
            let n = query(port, &["CLUSTER", "COUNT-FAILURE-REPORTS", &master_id])
                .ok()
                .and_then(|r| r.as_int())
                .unwrap_or(0);
            reports = reports.max(n);
        }
        all_see_master(&cluster, replica, &slots)
    });
    let elapsed = killed.elapsed();
    eprintln!(
        "{}: master killed, replica promoted on every node after {elapsed:?} \
         (node-timeout {NODE_TIMEOUT_MS} ms)",
        backend.name()
    );
    if let Err(why) = promoted {
        panic!("not promoted: {why}\n{}", cluster.logs_tail(30));
    }
    assert!(
        elapsed <= PROMOTION_BOUND,
        "{}: promotion took {elapsed:?}, more than {PROMOTION_BOUND:?}",
        backend.name()
    );
    assert!(reports > 0, "no failure report was counted");
    assert!(saw_fail, "cluster_state never turned fail on {watcher}");
    settle(&cluster, "cluster_state ok everywhere", || {
        for port in live(&cluster) {
            let state = cluster_state(port);
            if state.as_deref() != Some("ok") {
                return Err(format!("{port}: {state:?}"));
            }
        }
        Ok(())
    });

    // Back with its old identity: it follows its replacement.
    cluster.restart(master);
    let restarted = Instant::now();
    settle(&cluster, "the old master rejoins as a replica", || {
        all_see_replica(&cluster, master, replica)?;
        all_see_master(&cluster, replica, &slots)
    });
    eprintln!(
        "{}: restarted master is a replica of its replacement after {:?}",
        backend.name(),
        restarted.elapsed()
    );
    cluster.wait_converged(SETTLE);
    redis_cli_check(&cluster, master);
    // A replica serves reads of its shard after READONLY (no redirect).
    let mut c = cluster.client(master);
    c.cmd(&["READONLY"]).expect_ok();
    let key = format!("{{{}}}k", hash_tag_for_slot(0));
    let reply = c.cmd(&["GET", &key]);
    assert!(
        !reply.is_error(),
        "GET on the replica after READONLY: {reply:?}"
    );
    assert!(
        c.cmd(&["SET", &key, "v"])
            .expect_error()
            .starts_with("MOVED")
    );
}

/// A master's address and slot ranges.
type Owner = (String, Vec<(u16, u16)>);

fn a_frozen_master_is_demoted_when_it_wakes(backend: Backend) {
    let Some(mut cluster) = start(backend) else {
        return;
    };
    let (master, replica, slots) = first_shard(&cluster);
    cluster.stop(master);
    let stopped = Instant::now();
    settle(&cluster, "the replica is promoted", || {
        all_see_master(&cluster, replica, &slots)
    });
    eprintln!(
        "{}: master frozen, replica promoted on every node after {:?}",
        backend.name(),
        stopped.elapsed()
    );
    cluster.cont(master);
    let woke = Instant::now();
    settle(&cluster, "the old master is demoted", || {
        all_see_replica(&cluster, master, replica)
    });
    eprintln!(
        "{}: woken master demoted after {:?}",
        backend.name(),
        woke.elapsed()
    );
    cluster.wait_converged(SETTLE);
    // No split brain: every node, the woken one included, names exactly
    // one master per slot, and they all name the same ones.
    let mut reference: Option<Vec<Owner>> = None;
    for port in live(&cluster) {
        let v = view(port).unwrap();
        let mut owners: Vec<Owner> = v
            .iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .map(|n| {
                let ranges = n.slots.iter().map(|r| (*r.start(), *r.end())).collect();
                (n.addr.clone(), ranges)
            })
            .collect();
        owners.sort();
        let covered: usize = owners
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(a, b)| usize::from(b - a) + 1))
            .sum();
        assert_eq!(covered, 16384, "{port} sees {owners:?}");
        assert_eq!(owners.len(), 3, "{port} sees {owners:?}");
        match &reference {
            Some(r) => assert_eq!(*r, owners, "{port} disagrees"),
            None => reference = Some(owners),
        }
    }
    let me = view(master).unwrap();
    assert!(me.iter().any(|n| n.myself && !n.master));
}

/// Runs CLUSTER FAILOVER `form` on `replica` and waits until it and
/// `master` swapped roles everywhere.
fn swap(
    cluster: &RedisCluster,
    replica: u16,
    master: u16,
    slots: &[std::ops::RangeInclusive<u16>],
    form: &[&str],
) {
    let mut args = vec!["CLUSTER", "FAILOVER"];
    args.extend_from_slice(form);
    let started = Instant::now();
    cluster.client(replica).cmd(&args).expect_ok();
    settle(cluster, &format!("{args:?} swaps the roles"), || {
        all_see_master(cluster, replica, slots)?;
        all_see_replica(cluster, master, replica)
    });
    eprintln!(
        "{:?}: roles swapped everywhere after {:?}",
        args,
        started.elapsed()
    );
    cluster.wait_converged(SETTLE);
}

fn cluster_failover_swaps_roles_in_every_form(backend: Backend) {
    let Some(cluster) = start(backend) else {
        return;
    };
    let (master, replica, slots) = first_shard(&cluster);
    // On a master, with Redis's words.
    let err = cluster.client(master).cmd(&["CLUSTER", "FAILOVER"]);
    assert_eq!(
        err.expect_error(),
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    let err = cluster.client(replica).cmd(&["CLUSTER", "FAILOVER", "NOW"]);
    assert_eq!(err.expect_error(), "ERR syntax error");
    swap(&cluster, replica, master, &slots, &[]);
    swap(&cluster, master, replica, &slots, &["FORCE"]);
    swap(&cluster, replica, master, &slots, &["TAKEOVER"]);
    redis_cli_check(&cluster, master);
}

on_both_backends!(
    a_killed_master_is_replaced_and_rejoins_as_a_replica,
    a_frozen_master_is_demoted_when_it_wakes,
    cluster_failover_swaps_roles_in_every_form,
);
