//! Real client libraries through the proxy, each with its plain (non-cluster)
//! client as an application would use it: the `redis` crate, redis-py and
//! ioredis, over strings, hashes, lists, sets, sorted sets, pipelines,
//! transactions, pub/sub, blocking pops, scripts and scan iteration; and
//! the cluster clients of redis-py and ioredis pointed at the proxy's cluster
//! emulation.
//!
//! The Python and Node.js scripts are in tests/clients/; `.ci/install-deps`
//! installs their libraries there. Scripts (EVAL) run on redis-server only:
//! Slotway's built-in node has none.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use redis::{Commands, RedisResult};

fn setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    cluster_with_proxy(backend, 0, ProxyOptions::default())
}

/// The arguments of a script in tests/clients/: the proxy's port, and
/// `--no-scripts` where the backend has no EVAL.
fn script_args(backend: Backend, script: &str, proxy: &Proxy) -> Vec<String> {
    let mut args = vec![script.to_string(), proxy.port().to_string()];
    if backend == Backend::Builtin {
        args.push("--no-scripts".into());
    }
    args
}

fn run_script(program: &std::path::Path, args: &[String], done: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = run_client_script(program, &args);
    assert!(stdout.contains(done), "no `{done}` in:\n{stdout}");
}

/// redis-py's `redis.Redis` through the proxy (tests/clients/python/plain.py).
fn redis_py_plain_client_works_through_the_proxy(backend: Backend) {
    let Some(python) = require_redis_py() else {
        return;
    };
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let args = script_args(backend, "python/plain.py", &proxy);
    run_script(&python, &args, "redis-py plain ok");
}

/// The same with redis-py speaking RESP3 (`protocol=3`): maps, sets,
/// doubles and pushes as redis-py's RESP3 parser expects them.
fn redis_py_resp3_client_works_through_the_proxy(backend: Backend) {
    let Some(python) = require_redis_py() else {
        return;
    };
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut args = script_args(backend, "python/plain.py", &proxy);
    args.push("--resp3".into());
    run_script(&python, &args, "redis-py plain ok");
}

/// ioredis's `Redis` through the proxy (tests/clients/node/plain.mjs).
fn ioredis_plain_client_works_through_the_proxy(backend: Backend) {
    let Some(node) = require_ioredis() else {
        return;
    };
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let args = script_args(backend, "node/plain.mjs", &proxy);
    run_script(&node, &args, "ioredis plain ok");
}

/// redis-py's `RedisCluster` pointed at the proxy finds one node, the
/// proxy, owning every slot (tests/clients/python/cluster.py).
fn redis_py_cluster_client_works_through_the_proxy(backend: Backend) {
    let Some(python) = require_redis_py() else {
        return;
    };
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let args = ["python/cluster.py".to_string(), proxy.port().to_string()];
    run_script(&python, &args, "redis-py cluster ok");
}

/// ioredis's `Cluster` pointed at the proxy finds one master, the proxy
/// (tests/clients/node/cluster.mjs).
fn ioredis_cluster_client_works_through_the_proxy(backend: Backend) {
    let Some(node) = require_ioredis() else {
        return;
    };
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let args = ["node/cluster.mjs".to_string(), proxy.port().to_string()];
    run_script(&node, &args, "ioredis cluster ok");
}

/// The `redis` crate's synchronous client through the proxy.
fn redis_rs_plain_client_works_through_the_proxy(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let client = redis::Client::open(format!("redis://{}/", proxy.addr())).unwrap();
    let connect = || {
        let con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        con
    };
    let mut con = connect();
    redis::cmd("FLUSHALL").exec(&mut con).unwrap();

    rs_strings(&mut con);
    rs_hashes_lists_sets(&mut con);
    rs_pipelines_and_transactions(&mut con, &connect);
    rs_pubsub(&mut con, &connect);
    rs_blocking_pops(&mut con, &connect);
    rs_scan(&mut con);
    if backend == Backend::Redis {
        rs_scripts(&mut con);
    }
}

fn rs_strings(con: &mut redis::Connection) {
    let () = con.set("s:a", 1).unwrap();
    assert_eq!(con.incr::<_, _, i64>("s:a", 41).unwrap(), 42);
    let keys: Vec<String> = (0..20).map(|i| format!("s:m{i}")).collect();
    let pairs: Vec<(&str, usize)> = keys.iter().map(String::as_str).zip(0..).collect();
    let () = con.mset(&pairs).unwrap();
    let mut wanted: Vec<Option<String>> = (0..20).map(|i| Some(i.to_string())).collect();
    wanted.push(None);
    let mut asked = keys.clone();
    asked.push("s:none".into());
    let got: Vec<Option<String>> = con.mget(&asked).unwrap();
    assert_eq!(got, wanted, "MGET across masters");
    let () = con.set_ex("s:ttl", "v", 100).unwrap();
    let ttl: i64 = con.ttl("s:ttl").unwrap();
    assert!((1..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(
        con.del::<_, usize>(&keys).unwrap(),
        20,
        "DEL across masters"
    );
    assert_eq!(con.get::<_, Option<String>>("s:m1").unwrap(), None);
}

fn rs_hashes_lists_sets(con: &mut redis::Connection) {
    let () = con.hset_multiple("h", &[("a", 1), ("b", 2)]).unwrap();
    assert_eq!(con.hincr::<_, _, _, i64>("h", "a", 9).unwrap(), 10);
    let all: BTreeMap<String, String> = con.hgetall("h").unwrap();
    assert_eq!(
        all,
        BTreeMap::from([("a".into(), "10".into()), ("b".into(), "2".into())])
    );

    assert_eq!(con.rpush::<_, _, usize>("l", &["a", "b", "c"]).unwrap(), 3);
    assert_eq!(con.lpop::<_, String>("l", None).unwrap(), "a");
    let rest: Vec<String> = con.lrange("l", 0, -1).unwrap();
    assert_eq!(rest, ["b", "c"]);

    let _: usize = con.sadd("set:{1}a", &["x", "y", "z"]).unwrap();
    let _: usize = con.sadd("set:{1}b", &["y", "z", "w"]).unwrap();
    let both: BTreeSet<String> = con.sinter(&["set:{1}a", "set:{1}b"]).unwrap();
    assert_eq!(both, BTreeSet::from(["y".into(), "z".into()]));

    let _: usize = con
        .zadd_multiple("z", &[(1, "a"), (2, "b"), (3, "c")])
        .unwrap();
    assert_eq!(con.zincr::<_, _, _, f64>("z", "a", 10).unwrap(), 11.0);
    let ranked: Vec<(String, f64)> = con.zrange_withscores("z", 0, -1).unwrap();
    assert_eq!(
        ranked,
        [("b".into(), 2.0), ("c".into(), 3.0), ("a".into(), 11.0)]
    );
    assert_eq!(con.zrank::<_, _, Option<usize>>("z", "a").unwrap(), Some(2));
}

fn rs_pipelines_and_transactions(
    con: &mut redis::Connection,
    connect: &dyn Fn() -> redis::Connection,
) {
    // A plain pipeline spans keys on every master.
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.set(format!("p:{i}"), i).ignore();
    }
    for i in 0..50 {
        pipe.incr(format!("p:{i}"), 1);
    }
    let got: Vec<i64> = pipe.query(con).unwrap();
    assert_eq!(got, (1..=50).collect::<Vec<_>>());

    // MULTI/EXEC.
    let (n, list): (i64, Vec<String>) = redis::pipe()
        .atomic()
        .set("{t}a", 1)
        .ignore()
        .incr("{t}a", 1)
        .rpush("{t}l", "x")
        .ignore()
        .lrange("{t}l", 0, -1)
        .query(con)
        .unwrap();
    assert_eq!((n, list), (2, vec!["x".to_string()]));

    // WATCH: a change by another client aborts EXEC (a nil reply), and
    // `redis::transaction` retries until it goes through.
    let mut other = connect();
    let mut tries = 0;
    let (value,): (i64,) = redis::transaction(con, &["{t}a"], |con, pipe| {
        tries += 1;
        let value: i64 = con.get("{t}a")?;
        if tries == 1 {
            let () = other.set("{t}a", 100)?;
        }
        pipe.set("{t}a", value + 1).ignore().get("{t}a").query(con)
    })
    .unwrap();
    assert_eq!((tries, value), (2, 101), "WATCH then a concurrent write");
}

fn rs_pubsub(con: &mut redis::Connection, connect: &dyn Fn() -> redis::Connection) {
    let mut sub_con = connect();
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("chan").unwrap();
    sub.psubscribe("pat.*").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // PUBLISH counts every subscriber of the proxy, as one server does.
    let n: i64 = con.publish("chan", "hello").unwrap();
    assert_eq!(n, 1, "PUBLISH chan");
    let n: i64 = con.publish("pat.x", "world").unwrap();
    assert_eq!(n, 1, "PUBLISH pat.x");
    let mut got = Vec::new();
    for _ in 0..2 {
        let msg = sub.get_message().unwrap();
        let payload: String = msg.get_payload().unwrap();
        got.push((
            msg.get_channel_name().to_string(),
            msg.get_pattern::<Option<String>>().unwrap(),
            payload,
        ));
    }
    assert_eq!(
        got,
        [
            ("chan".to_string(), None, "hello".to_string()),
            ("pat.x".into(), Some("pat.*".into()), "world".into())
        ]
    );
    sub.unsubscribe("chan").unwrap();
    sub.punsubscribe("pat.*").unwrap();
    drop(sub);
    // Out of subscribed mode, the same connection runs commands again.
    let pong: String = redis::cmd("PING").query(&mut sub_con).unwrap();
    assert_eq!(pong, "PONG");
}

fn rs_blocking_pops(con: &mut redis::Connection, connect: &dyn Fn() -> redis::Connection) {
    let none: Option<(String, String)> = con.blpop("b:empty", 0.2).unwrap();
    assert_eq!(none, None, "BLPOP on an empty list times out");
    let mut pusher = connect();
    let started = Instant::now();
    let push = thread::spawn(move || -> RedisResult<usize> {
        thread::sleep(Duration::from_millis(300));
        pusher.rpush("b:later", "late")
    });
    let got: Option<(String, String)> = con.brpop("b:later", 5.0).unwrap();
    assert_eq!(push.join().unwrap().unwrap(), 1);
    assert_eq!(got, Some(("b:later".into(), "late".into())));
    assert!(started.elapsed() >= Duration::from_millis(200));
}

fn rs_scan(con: &mut redis::Connection) {
    let keys: HashSet<String> = (0..300).map(|i| format!("scan:{i}")).collect();
    let pairs: Vec<(&str, i32)> = keys.iter().map(|k| (k.as_str(), 1)).collect();
    let () = con.mset(&pairs).unwrap();
    let seen: HashSet<String> = con
        .scan_match::<_, String>("scan:*")
        .unwrap()
        .collect::<RedisResult<_>>()
        .unwrap();
    assert_eq!(seen, keys, "SCAN walks every master");
    let fields: Vec<(String, i32)> = (0..200).map(|i| (format!("f{i}"), i)).collect();
    let () = con.hset_multiple("scan:h", &fields).unwrap();
    let got: Vec<(String, i32)> = con
        .hscan::<_, (String, i32)>("scan:h")
        .unwrap()
        .collect::<RedisResult<_>>()
        .unwrap();
    assert_eq!(got.len(), 200, "HSCAN");
}

fn rs_scripts(con: &mut redis::Connection) {
    let set: String = redis::cmd("EVAL")
        .arg("return redis.call('SET', KEYS[1], ARGV[1])")
        .arg(1)
        .arg("sc:a")
        .arg("v")
        .query(con)
        .unwrap();
    assert_eq!(set, "OK");
    // `Script` sends EVALSHA and falls back to EVAL (which loads it) on
    // NOSCRIPT; a fresh body proves the fallback.
    let body = format!(
        "return redis.call('INCRBY', KEYS[1], ARGV[1]) -- {:?}",
        Instant::now()
    );
    let script = redis::Script::new(&body);
    let first: i64 = script.key("sc:n").arg(5).invoke(con).unwrap();
    let second: i64 = script.key("sc:n").arg(5).invoke(con).unwrap();
    assert_eq!((first, second), (5, 10));
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(script.get_hash())
        .query(con)
        .unwrap();
    assert_eq!(exists, [true]);
}

on_both_backends!(
    redis_rs_plain_client_works_through_the_proxy,
    redis_py_plain_client_works_through_the_proxy,
    redis_py_resp3_client_works_through_the_proxy,
    ioredis_plain_client_works_through_the_proxy,
    redis_py_cluster_client_works_through_the_proxy,
    ioredis_cluster_client_works_through_the_proxy,
);
