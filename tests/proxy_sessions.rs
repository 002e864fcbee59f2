//! Session state through the proxy: transactions and blocking commands, on
//! dedicated backend connections, compared with what a node says directly
//! and kept correct across failover and resharding.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

/// A cluster of 3 masters (with `replicas` each) and a proxy in front.
fn setup(backend: Backend, replicas: usize) -> Option<(RedisCluster, Proxy)> {
    cluster_with_proxy(backend, replicas, ProxyOptions::default())
}

/// Keys `{tag}:name` for each placeholder word in upper case.
fn tagged(args: &[&str], tag: &str) -> Vec<String> {
    args.iter()
        .map(|a| match *a {
            "K" | "K2" | "L" => format!("{{{tag}}}:{a}"),
            other => other.to_string(),
        })
        .collect()
}

/// Transaction scripts run on one connection; each reply through the proxy
/// must equal the node's own, byte for byte.
const TX_SCRIPT: &[&[&str]] = &[
    &["EXEC"],
    &["DISCARD"],
    &["MULTI"],
    &["SET", "K", "1"],
    &["INCR", "K"],
    &["GET", "K"],
    &["PING"],
    &["ECHO", "hi"],
    &["EXEC"],
    // A runtime error inside EXEC is one reply among the others.
    &["MULTI"],
    &["SET", "K2", "x"],
    &["INCR", "K2"],
    &["LPUSH", "L", "a"],
    &["EXEC"],
    // Nested MULTI is refused without aborting; DISCARD drops the queue.
    &["MULTI"],
    &["MULTI"],
    &["SET", "K", "dropped"],
    &["WATCH", "K"],
    &["DISCARD"],
    &["GET", "K"],
    // An unknown command or a wrong arity aborts the transaction.
    &["MULTI"],
    &["SET", "K", "never"],
    &["NOSUCHCOMMAND", "x"],
    &["EXEC"],
    &["MULTI"],
    &["SET", "K"],
    &["EXEC"],
    &["GET", "K"],
    // WATCH without interference, then UNWATCH.
    &["WATCH", "K", "K2"],
    &["MULTI"],
    &["SET", "K", "watched"],
    &["EXEC"],
    &["WATCH", "K"],
    &["UNWATCH"],
    &["MULTI"],
    &["UNWATCH"],
    &["GET", "K"],
    &["EXEC"],
    // RESET leaves MULTI and forgets the watch and the name.
    &["CLIENT", "SETNAME", "tx"],
    &["WATCH", "K"],
    &["MULTI"],
    &["SET", "K", "reset"],
    &["RESET"],
    &["EXEC"],
    &["CLIENT", "GETNAME"],
    &["GET", "K"],
    &["DEL", "K", "K2", "L"],
];

fn transactions_answer_like_the_node(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut through_proxy = proxy.client();
    let direct_tag = "directT";
    let owner = cluster
        .master_for_slot(key_slot(direct_tag.as_bytes()))
        .unwrap();
    let mut direct = cluster.client(owner);
    let proxy_tag = "proxyTT";
    assert_eq!(proxy_tag.len(), direct_tag.len());
    for args in TX_SCRIPT {
        let via_proxy = through_proxy.cmd_bytes(&tagged(args, proxy_tag));
        let via_node = direct.cmd_bytes(&tagged(args, direct_tag));
        let proxied = String::from_utf8_lossy(&via_proxy.encode()).replace(proxy_tag, direct_tag);
        assert_eq!(
            proxied,
            String::from_utf8_lossy(&via_node.encode()),
            "{args:?}: proxy {via_proxy:?} vs node {via_node:?}"
        );
    }
}

fn a_transaction_across_two_slots_aborts_with_execabort(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    assert_ne!(key_slot(b"a"), key_slot(b"b"));
    c.cmd(&["MULTI"]).expect_ok();
    assert_eq!(c.cmd(&["SET", "a", "1"]), Reply::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["SET", "b", "1"]),
        Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        Reply::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert!(c.cmd(&["GET", "a"]).is_nil(), "nothing ran");
    // Keys of one command in two slots, and WATCH then a key elsewhere.
    c.cmd(&["MULTI"]).expect_ok();
    assert!(
        c.cmd(&["MGET", "a", "b"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    assert!(c.cmd(&["EXEC"]).expect_error().starts_with("EXECABORT"));
    c.cmd(&["WATCH", "a"]).expect_ok();
    assert!(
        c.cmd(&["WATCH", "b"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    c.cmd(&["MULTI"]).expect_ok();
    assert!(
        c.cmd(&["SET", "b", "1"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    assert!(c.cmd(&["EXEC"]).expect_error().starts_with("EXECABORT"));
    // Commands the proxy cannot queue are refused clearly, and the
    // connection stays usable.
    c.cmd(&["MULTI"]).expect_ok();
    let refused = c.cmd(&["DBSIZE"]);
    assert!(refused.expect_error().contains("'DBSIZE'"), "{refused:?}");
    assert!(c.cmd(&["EXEC"]).expect_error().starts_with("EXECABORT"));
    assert!(c.cmd(&["SET", "a", "2"]).is_ok());
    assert_eq!(c.cmd(&["GET", "a"]), Reply::bulk("2"));
    // WAIT is served (tests/proxy_clients.rs); without replicas, none count.
    assert_eq!(c.cmd(&["WAIT", "0", "0"]), Reply::Int(0));
    assert_eq!(c.cmd(&["WAIT", "1", "50"]), Reply::Int(0));
    assert_eq!(c.cmd(&["GET", "a"]), Reply::bulk("2"));
}

fn watch_sees_another_clients_write(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    let mut other = proxy.client();
    c.cmd(&["SET", "{w}k", "0"]).expect_ok();
    c.cmd(&["WATCH", "{w}k"]).expect_ok();
    assert_eq!(c.cmd(&["GET", "{w}k"]), Reply::bulk("0"));
    other.cmd(&["SET", "{w}k", "changed"]).expect_ok();
    c.cmd(&["MULTI"]).expect_ok();
    assert_eq!(
        c.cmd(&["SET", "{w}k", "mine"]),
        Reply::Simple("QUEUED".into())
    );
    assert!(c.cmd(&["EXEC"]).is_nil(), "a watched key changed");
    assert_eq!(c.cmd(&["GET", "{w}k"]), Reply::bulk("changed"));
    // A pipelined check-and-set, the way client libraries send it.
    let replies = c.pipeline(&[
        vec!["WATCH", "{w}k"],
        vec!["GET", "{w}k"],
        vec!["MULTI"],
        vec!["SET", "{w}k", "mine"],
        vec!["INCR", "{w}n"],
        vec!["EXEC"],
    ]);
    assert_eq!(
        replies[5],
        Reply::Array(Some(vec![Reply::Simple("OK".into()), Reply::Int(1)])),
        "{replies:?}"
    );
    assert_eq!(c.cmd(&["GET", "{w}k"]), Reply::bulk("mine"));
    // A client's own write to a watched key counts too, as on Redis.
    let replies = c.pipeline(&[
        vec!["WATCH", "{w}k"],
        vec!["SET", "{w}k", "self"],
        vec!["MULTI"],
        vec!["SET", "{w}k", "never"],
        vec!["EXEC"],
    ]);
    assert!(replies[4].is_nil(), "{replies:?}");
    assert_eq!(c.cmd(&["GET", "{w}k"]), Reply::bulk("self"));
}

/// A master dies with a transaction queued: EXEC runs it on the promoted
/// replica (nothing had reached the old master). With a WATCH, the watch
/// died with the master: EXEC answers nil and nothing is applied.
fn a_failover_during_a_transaction_fails_exec_cleanly(backend: Backend) {
    let Some((mut cluster, proxy)) = setup(backend, 1) else {
        return;
    };
    let mut c = proxy.client();
    let mut w = proxy.client();
    c.cmd(&["SET", "{f}k", "0"]).expect_ok();
    w.cmd(&["WATCH", "{f}w"]).expect_ok();
    w.cmd(&["MULTI"]).expect_ok();
    w.cmd(&["SET", "{f}w", "watched"]);
    c.cmd(&["MULTI"]).expect_ok();
    assert_eq!(c.cmd(&["INCR", "{f}k"]), Reply::Simple("QUEUED".into()));
    assert_eq!(c.cmd(&["SET", "{f}x", "1"]), Reply::Simple("QUEUED".into()));
    let victim = cluster.master_for_slot(key_slot(b"f")).unwrap();
    let replica = cluster.replicas_of(victim)[0];
    cluster.kill(victim);
    let exec = c.cmd(&["EXEC"]);
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster.master_for_slot(key_slot(b"f")) == Some(replica)
    });
    let (k, x) = (c.cmd(&["GET", "{f}k"]), c.cmd(&["GET", "{f}x"]));
    match &exec {
        Reply::Array(Some(items)) => {
            assert_eq!(items, &[Reply::Int(1), Reply::Simple("OK".into())]);
            assert_eq!((k, x), (Reply::bulk("1"), Reply::bulk("1")));
        }
        // Never a success that did not happen, never half of one.
        Reply::Error(e) => assert!(
            (k == Reply::bulk("0") || k.is_nil()) && x.is_nil(),
            "{e}: k={k:?} x={x:?}"
        ),
        other => panic!("EXEC answered {other:?}"),
    }
    assert!(w.cmd(&["EXEC"]).is_nil(), "the watch died with its master");
    assert!(w.cmd(&["GET", "{f}w"]).is_nil());
    eprintln!(
        "{}: EXEC across the failover answered {exec:?}",
        backend.name()
    );
}

/// The slot moves between MULTI and EXEC: EXEC runs on the new owner. A
/// watched slot that moves voids the watch.
fn a_transaction_follows_its_slot_when_it_moves(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    let mut w = proxy.client();
    let slot = key_slot(b"m");
    c.cmd(&["SET", "{m}k", "0"]).expect_ok();
    w.cmd(&["WATCH", "{m}k"]).expect_ok();
    w.cmd(&["MULTI"]).expect_ok();
    w.cmd(&["SET", "{m}k", "watched"]);
    c.cmd(&["MULTI"]).expect_ok();
    c.cmd(&["INCR", "{m}k"]);
    let from = cluster.master_for_slot(slot).unwrap();
    let to = *cluster.masters().iter().find(|p| **p != from).unwrap();
    let migration = cluster.begin_migration(slot, to);
    cluster.finish_migration(migration);
    assert_eq!(c.cmd(&["EXEC"]), Reply::Array(Some(vec![Reply::Int(1)])));
    assert!(w.cmd(&["EXEC"]).is_nil(), "the watched slot moved");
    assert_eq!(c.cmd(&["GET", "{m}k"]), Reply::bulk("1"));
}

fn blpop_is_fed_by_another_client(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let addr = proxy.addr().to_string();
    let waiter = std::thread::spawn(move || {
        let mut c = TestClient::connect(&addr);
        let started = Instant::now();
        let reply = c.cmd(&["BLPOP", "{b}other", "{b}l", "5"]);
        (reply, started.elapsed(), c)
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut feeder = proxy.client();
    assert_eq!(feeder.cmd(&["RPUSH", "{b}l", "v"]), Reply::Int(1));
    let (reply, waited, mut c) = waiter.join().unwrap();
    assert_eq!(
        reply,
        Reply::Array(Some(vec![Reply::bulk("{b}l"), Reply::bulk("v")]))
    );
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    // The same connection carries on, and a timeout is honoured.
    let started = Instant::now();
    assert!(c.cmd(&["BLPOP", "{b}l", "0.3"]).is_nil());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // Keys in two slots, and a command pipelined behind the push it needs.
    assert!(
        c.cmd(&["BLPOP", "a", "b", "1"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    let replies = c.pipeline(&[
        vec!["RPUSH", "{b}p", "x"],
        vec!["BRPOP", "{b}p", "0"],
        vec!["ZADD", "{b}z", "1", "m"],
        vec!["BZPOPMIN", "{b}z", "0"],
        vec!["RPUSH", "{b}p", "y"],
        vec!["BLMOVE", "{b}p", "{b}q", "LEFT", "RIGHT", "0"],
        vec!["GET", "{b}none"],
    ]);
    assert_eq!(
        replies[1],
        Reply::Array(Some(vec![Reply::bulk("{b}p"), Reply::bulk("x")]))
    );
    assert_eq!(
        replies[3],
        Reply::Array(Some(vec![
            Reply::bulk("{b}z"),
            Reply::bulk("m"),
            Reply::bulk("1")
        ]))
    );
    assert_eq!(replies[5], Reply::bulk("y"));
    assert!(replies[6].is_nil());
}

fn a_client_that_leaves_while_blocked_releases_its_connection(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    c.send_raw(&encode_command(&["BLPOP", "{g}gone", "0"]));
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    // Had the blocked BLPOP stayed on the node, it would take this value.
    let mut feeder = proxy.client();
    assert_eq!(feeder.cmd(&["RPUSH", "{g}gone", "kept"]), Reply::Int(1));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(feeder.cmd(&["LLEN", "{g}gone"]), Reply::Int(1));
}

fn stream_reads_block_on_a_dedicated_connection(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    c.cmd(&["XADD", "{s}x", "1-1", "f", "v"]);
    c.cmd(&["XGROUP", "CREATE", "{s}x", "g", "$"]).expect_ok();
    let addr = proxy.addr().to_string();
    let waiter = std::thread::spawn(move || {
        let mut c = TestClient::connect(&addr);
        let plain = c.cmd(&["XREAD", "BLOCK", "5000", "STREAMS", "{s}x", "$"]);
        let group = c.cmd(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "5000",
            "STREAMS",
            "{s}x",
            ">",
        ]);
        (plain, group)
    });
    std::thread::sleep(Duration::from_millis(300));
    c.cmd(&["XADD", "{s}x", "2-1", "f", "w"]);
    let (plain, group) = waiter.join().unwrap();
    let entry = Reply::Array(Some(vec![Reply::Array(Some(vec![
        Reply::bulk("{s}x"),
        Reply::Array(Some(vec![Reply::Array(Some(vec![
            Reply::bulk("2-1"),
            Reply::Array(Some(vec![Reply::bulk("f"), Reply::bulk("w")])),
        ]))])),
    ]))]));
    assert_eq!(plain, entry);
    assert_eq!(group, entry);
    let started = Instant::now();
    assert!(
        c.cmd(&["XREAD", "BLOCK", "200", "STREAMS", "{s}x", "$"])
            .is_nil()
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// 100 clients blocked in BLPOP hold 100 dedicated connections; pipelined
/// GETs on other connections go as fast as before.
fn blocked_clients_do_not_slow_the_shared_pipeline(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    const BLOCKED: usize = 100;
    let mut c = proxy.client();
    for i in 0..100 {
        c.cmd(&["SET", &format!("get:{i}"), "v"]).expect_ok();
    }
    let gets: Vec<Vec<String>> = (0..100)
        .map(|i| vec!["GET".to_string(), format!("get:{i}")])
        .collect();
    let measure = |c: &mut TestClient| {
        let started = Instant::now();
        for _ in 0..30 {
            let replies = c.pipeline(&gets);
            assert!(replies.iter().all(|r| *r == Reply::bulk("v")));
        }
        started.elapsed() / 30
    };
    measure(&mut c);
    let before = measure(&mut c);
    let addr = proxy.addr().to_string();
    let waiters: Vec<_> = (0..BLOCKED)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut b = TestClient::connect(&addr);
                b.cmd(&["BLPOP", &format!("blocked:{i}"), "20"])
            })
        })
        .collect();
    let blocked = || -> i64 {
        cluster
            .masters()
            .into_iter()
            .map(|p| {
                let info = cluster.client(p).cmd(&["INFO", "clients"]);
                info_field(info.expect_str(), "blocked_clients")
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    };
    eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        blocked() == BLOCKED as i64
    });
    let during = measure(&mut c);
    let mut feeder = proxy.client();
    for i in 0..BLOCKED {
        feeder.cmd(&["RPUSH", &format!("blocked:{i}"), "x"]);
    }
    for (i, waiter) in waiters.into_iter().enumerate() {
        assert_eq!(
            waiter.join().unwrap(),
            Reply::Array(Some(vec![
                Reply::bulk(format!("blocked:{i}")),
                Reply::bulk("x")
            ]))
        );
    }
    eprintln!(
        "{}: 100 pipelined GETs took {before:?} alone, {during:?} with {BLOCKED} clients blocked",
        backend.name()
    );
    assert!(
        during < before * 3 + Duration::from_millis(5),
        "pipelined GETs slowed from {before:?} to {during:?}"
    );
}

fn an_exhausted_pool_answers_a_clear_error(backend: Backend) {
    let opts = ProxyOptions {
        env: vec![(
            "SLOTWAY_BACKEND__MAX_DEDICATED_CONNECTIONS_PER_NODE".into(),
            "1".into(),
        )],
        ..ProxyOptions::default()
    };
    let Some((_cluster, proxy)) = cluster_with_proxy(backend, 0, opts) else {
        return;
    };
    let mut first = proxy.client();
    first.send_raw(&encode_command(&["BLPOP", "{e}l", "5"]));
    std::thread::sleep(Duration::from_millis(300));
    let mut second = proxy.client();
    let refused = second.cmd(&["BLPOP", "{e}l", "5"]);
    assert!(
        refused
            .expect_error()
            .contains("too many dedicated connections"),
        "{refused:?}"
    );
    assert_eq!(second.cmd(&["RPUSH", "{e}l", "v"]), Reply::Int(1));
    assert_eq!(
        first.read_reply(),
        Reply::Array(Some(vec![Reply::bulk("{e}l"), Reply::bulk("v")]))
    );
    // The connection went back to the pool: the next one may block.
    assert!(second.cmd(&["BLPOP", "{e}l", "0.1"]).is_nil());
}

on_both_backends!(
    transactions_answer_like_the_node,
    a_transaction_across_two_slots_aborts_with_execabort,
    watch_sees_another_clients_write,
    a_transaction_follows_its_slot_when_it_moves,
    blpop_is_fed_by_another_client,
    a_client_that_leaves_while_blocked_releases_its_connection,
    blocked_clients_do_not_slow_the_shared_pipeline,
    an_exhausted_pool_answers_a_clear_error,
);

/// Killing a master needs failover; streams exist on redis-server only.
mod redis_only {
    use super::*;

    #[test]
    fn a_failover_during_a_transaction_fails_exec_cleanly() {
        super::a_failover_during_a_transaction_fails_exec_cleanly(Backend::Redis);
    }

    #[test]
    fn stream_reads_block_on_a_dedicated_connection() {
        super::stream_reads_block_on_a_dedicated_connection(Backend::Redis);
    }
}
