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

/// The proxy's request timeout in the frozen-master tests.
const REQUEST_TIMEOUT_MS: u64 = 500;

/// Three masters, no replicas (a frozen master stays the owner), and a
/// proxy with a short request timeout.
fn frozen_master_setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    let opts = ProxyOptions {
        env: vec![(
            "SLOTWAY_BACKEND__REQUEST_TIMEOUT_MS".into(),
            REQUEST_TIMEOUT_MS.to_string(),
        )],
        ..ProxyOptions::default()
    };
    cluster_with_proxy(backend, 0, opts)
}

/// A master frozen (SIGSTOP) under transactions and a blocking command on
/// dedicated connections: an EXEC already written fails after the request
/// timeout with the error the shared path gives a write whose outcome is
/// unknown, both on a pooled connection and on the one a WATCH pinned; a
/// blocking command fails after its own timeout plus the request timeout.
/// None waits forever. On a healthy master, a blocking command may wait its
/// own timeout past the request timeout without being cut short.
fn a_frozen_master_fails_dedicated_connections_after_their_deadline(backend: Backend) {
    let Some((mut cluster, proxy)) = frozen_master_setup(backend) else {
        return;
    };
    let (key, list) = ("{frozen}k", "{frozen}list");
    let request_timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let mut plain = proxy.client();
    let mut watcher = proxy.client();
    let mut blocker = proxy.client();
    // Three blocked at once: three dedicated connections to the master,
    // idle in the pool afterwards.
    let started = Instant::now();
    for c in [&mut plain, &mut watcher, &mut blocker] {
        c.send_raw(&encode_command(&["BLPOP", list, "1"]));
    }
    for c in [&mut plain, &mut watcher, &mut blocker] {
        assert!(c.read_reply().is_nil());
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "BLPOP 1 answered after {waited:?}"
    );
    // The watch pins one; the other two stay idle, open to the master.
    watcher.cmd(&["WATCH", key]).expect_ok();
    watcher.cmd(&["MULTI"]).expect_ok();
    assert_eq!(watcher.cmd(&["SET", key, "w"]).expect_str(), "QUEUED");
    plain.cmd(&["MULTI"]).expect_ok();
    plain.cmd(&["INCR", key]);

    let victim = cluster.master_for_slot(key_slot(key.as_bytes())).unwrap();
    cluster.stop(victim);
    let (unwatched, unwatched_took) = timed(&mut plain, &["EXEC"]);
    let (watched, watched_took) = timed(&mut watcher, &["EXEC"]);
    let (blocked, blocked_took) = timed(&mut blocker, &["BLPOP", list, "1"]);
    cluster.cont(victim);

    eprintln!(
        "{}: on a frozen master EXEC answered after {unwatched_took:?} (pooled) and \
         {watched_took:?} (watched), BLPOP 1 after {blocked_took:?}",
        backend.name()
    );
    for (what, reply, took, deadline) in [
        ("pooled EXEC", &unwatched, unwatched_took, request_timeout),
        ("watched EXEC", &watched, watched_took, request_timeout),
        (
            "BLPOP 1",
            &blocked,
            blocked_took,
            Duration::from_secs(1) + request_timeout,
        ),
    ] {
        let error = reply
            .as_error()
            .unwrap_or_else(|| panic!("{what}: {reply:?}"));
        assert!(
            error.starts_with("ERR outcome unknown: the connection to master"),
            "{what}: {error}"
        );
        assert!(
            took >= deadline * 4 / 5 && took < deadline + Duration::from_millis(1500),
            "{what}: answered after {took:?}, deadline {deadline:?}"
        );
    }
    // Every client carries on.
    for c in [&mut plain, &mut watcher, &mut blocker] {
        assert_eq!(c.cmd(&["PING"]).expect_str(), "PONG");
    }
}

/// `c`'s reply to `args`, and how long it took.
/// A subscriber whose pub/sub master froze after it subscribed gets the
/// confirmation of its next SUBSCRIBE once the proxy gives up on that
/// master (`backend.request_timeout_ms`), keeps every subscription, and
/// receives messages once the master wakes.
fn a_frozen_master_does_not_hold_a_subscriber(backend: Backend) {
    let Some((mut cluster, proxy)) = frozen_master_setup(backend) else {
        return;
    };
    // Channels and patterns live on the master of slot 0 (the pub/sub home).
    let home = cluster.master_for_slot(0).unwrap();
    let mut subscriber = proxy.client();
    assert_eq!(
        subscriber.cmd(&["SUBSCRIBE", "before"]).expect_array()[2],
        Reply::Int(1)
    );
    cluster.stop(home);
    let (confirmation, took) = timed(&mut subscriber, &["SUBSCRIBE", "frozen-ch"]);
    cluster.cont(home);
    eprintln!(
        "{}: SUBSCRIBE on a frozen master confirmed after {took:?}",
        backend.name()
    );
    assert_eq!(
        confirmation,
        Reply::Array(Some(vec![
            Reply::bulk("subscribe"),
            Reply::bulk("frozen-ch"),
            Reply::Int(2)
        ]))
    );
    let request_timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    assert!(
        took >= request_timeout * 4 / 5 && took < request_timeout + Duration::from_millis(700),
        "confirmed after {took:?}"
    );
    // Awake again: the proxy subscribes anew, and messages arrive.
    let mut publisher = proxy.client();
    subscriber.set_timeout(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(10);
    let message = loop {
        assert!(
            Instant::now() < deadline,
            "no message within 10 s of the master waking"
        );
        publisher.cmd(&["PUBLISH", "frozen-ch", "hi"]);
        if let Ok(reply) = subscriber.try_read_reply() {
            break reply;
        }
    };
    assert_eq!(
        message,
        Reply::Array(Some(vec![
            Reply::bulk("message"),
            Reply::bulk("frozen-ch"),
            Reply::bulk("hi")
        ]))
    );
}

fn timed(c: &mut TestClient, args: &[&str]) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = c.cmd(args);
    (reply, started.elapsed())
}

on_both_backends!(
    a_killed_master_is_replaced_without_failed_reads_or_lost_writes,
    a_frozen_master_is_replaced_and_demoted_when_it_wakes,
    a_frozen_master_fails_dedicated_connections_after_their_deadline,
    a_frozen_master_does_not_hold_a_subscriber,
);
