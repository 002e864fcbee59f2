//! The proxy in front of a real Redis Cluster (3 masters, 3 replicas): what a
//! plain client sees, compared byte for byte with what the owning master
//! says when asked directly.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

fn setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    require_redis()?;
    let cluster = RedisCluster::start_on(backend, 3, 1);
    let proxy = Proxy::start(&cluster.seeds_arg());
    Some((cluster, proxy))
}

/// Replaces the key placeholders (`K`, `K2`, `L`, ...) with keys under one
/// hash tag, so a whole script runs in one slot.
fn with_tag(args: &[&str], tag: &str) -> Vec<String> {
    args.iter()
        .map(|a| match *a {
            "K" | "K2" | "NK" | "L" | "L2" | "H" | "S" | "S2" | "Z" | "X" => {
                format!("{{{tag}}}:{a}")
            }
            other => other.to_string(),
        })
        .collect()
}

const SCRIPT: &[&[&str]] = &[
    // strings
    &["SET", "K", "v"],
    &["GET", "K"],
    &["SET", "K", ""],
    &["GET", "K"],
    &["STRLEN", "K"],
    &["APPEND", "K", "xyz"],
    &["GETRANGE", "K", "0", "1"],
    &["INCR", "K"],
    &["SET", "K", "10"],
    &["INCRBY", "K", "5"],
    &["INCRBYFLOAT", "K", "1.5"],
    &["SET", "K", "x", "NX"],
    &["SET", "K", "y", "XX", "GET"],
    &["SETEX", "K", "100", "x"],
    &["TTL", "K"],
    &["PERSIST", "K"],
    &["TTL", "K"],
    &["GETDEL", "K"],
    &["GET", "K"],
    &["MSETNX", "K", "1", "K2", "2"],
    &["MGET", "K", "K2", "NK"],
    &["RENAME", "K", "K2"],
    &["EXISTS", "K", "K2"],
    // lists
    &["RPUSH", "L", "a", "b", "c"],
    &["LPUSH", "L", "z"],
    &["LRANGE", "L", "0", "-1"],
    &["LPOP", "L"],
    &["RPOP", "L", "2"],
    &["LLEN", "L"],
    &["LINDEX", "L", "0"],
    &["LMOVE", "L", "L2", "LEFT", "RIGHT"],
    &["LRANGE", "L2", "0", "-1"],
    // hashes
    &["HSET", "H", "f1", "v1", "f2", "v2"],
    &["HGET", "H", "f1"],
    &["HMGET", "H", "f1", "nope"],
    &["HINCRBY", "H", "n", "5"],
    &["HDEL", "H", "f1"],
    &["HLEN", "H"],
    &["HEXISTS", "H", "f2"],
    // sets
    &["SADD", "S", "a", "b", "c"],
    &["SCARD", "S"],
    &["SISMEMBER", "S", "a"],
    &["SMISMEMBER", "S", "a", "q"],
    &["SREM", "S", "a"],
    &["SMOVE", "S", "S2", "b"],
    &["SMEMBERS", "S2"],
    // sorted sets
    &["ZADD", "Z", "1", "a", "2", "b", "3", "c"],
    &["ZRANGE", "Z", "0", "-1", "WITHSCORES"],
    &["ZSCORE", "Z", "a"],
    &["ZINCRBY", "Z", "2.5", "a"],
    &["ZRANK", "Z", "a"],
    &["ZRANGEBYSCORE", "Z", "(1", "+inf", "LIMIT", "0", "2"],
    &["ZPOPMIN", "Z"],
    &["ZCARD", "Z"],
    // streams
    &["XADD", "X", "1-1", "f", "v"],
    &["XADD", "X", "1-2", "f", "w"],
    &["XLEN", "X"],
    &["XRANGE", "X", "-", "+"],
    &["XREAD", "COUNT", "1", "STREAMS", "X", "0"],
    &["XGROUP", "CREATE", "X", "g", "0"],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "COUNT",
        "1",
        "STREAMS",
        "X",
        ">",
    ],
    // errors
    &["LPUSH", "K2", "x"],
    &["GET", "L2"],
    &["INCR", "H"],
    &["ZADD", "Z", "nan", "x"],
    &["GET"],
    &["SET", "K"],
    &["NOSUCHCOMMAND", "K", "x"],
    &["CONFIG", "NOSUCHSUB"],
    // introspection and expiry, routed by key like any other command
    &["TYPE", "H"],
    &["TYPE", "NK"],
    &["OBJECT", "ENCODING", "S2"],
    &["SET", "K", "hello"],
    &["OBJECT", "ENCODING", "K"],
    &["OBJECT", "REFCOUNT", "K"],
    &["OBJECT", "IDLETIME", "K"],
    &["OBJECT", "FREQ", "K"],
    &["OBJECT", "ENCODING", "NK"],
    &["MEMORY", "USAGE", "K"],
    &["MEMORY", "USAGE", "NK"],
    &["DUMP", "K"],
    &["DUMP", "NK"],
    &["EXPIREAT", "K", "4102444800"],
    &["EXPIRETIME", "K"],
    &["PEXPIRETIME", "K"],
    &["PEXPIREAT", "K", "4102444800123"],
    &["PEXPIRETIME", "K"],
    &["EXPIRE", "K", "100", "GT"],
    &["PERSIST", "K"],
    &["TTL", "K"],
    &["PTTL", "K"],
    &["TTL", "NK"],
    &["PTTL", "NK"],
    &["EXPIRETIME", "NK"],
    // answered by the proxy, as a server without a password would
    &["AUTH", "pw"],
    &["AUTH", "default", "pw"],
    &["SELECT", "0"],
    &["PING"],
    &["PING", "K"],
    &["ECHO", "K"],
    &["DEL", "K", "K2", "L", "L2", "H", "S", "S2", "Z", "X"],
];

fn replies_match_the_owning_master_byte_for_byte(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut through_proxy = proxy.client();
    // The same script straight at the master of another tag's slot.
    let direct_tag = "direct";
    let owner = cluster
        .master_for_slot(key_slot(direct_tag.as_bytes()))
        .unwrap();
    let mut direct = cluster.client(owner);
    // Tags of one length, so replies that echo a key differ only in the tag.
    let proxy_tag = "proxyA";
    assert_eq!(proxy_tag.len(), direct_tag.len());
    for args in SCRIPT {
        let via_proxy = through_proxy.cmd_bytes(&with_tag(args, proxy_tag));
        let via_master = direct.cmd_bytes(&with_tag(args, direct_tag));
        let proxied = String::from_utf8_lossy(&via_proxy.encode()).replace(proxy_tag, direct_tag);
        assert_eq!(
            proxied,
            String::from_utf8_lossy(&via_master.encode()),
            "{args:?}: proxy {via_proxy:?} vs master {via_master:?}"
        );
    }
}

/// DUMP and RESTORE through the proxy move a value between keys on
/// different masters, with Redis's own errors.
fn dump_and_restore_move_values_between_masters(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut c = proxy.client();
    let (from, to) = ("dump:a", "dump:b");
    assert_ne!(
        cluster.master_for_slot(key_slot(from.as_bytes())),
        cluster.master_for_slot(key_slot(to.as_bytes())),
        "the keys should live on different masters"
    );
    assert_eq!(c.cmd(&["RPUSH", from, "x", "y", ""]), Reply::Int(3));
    let payload = c.cmd(&["DUMP", from]);
    let payload = payload.as_bulk().expect("a DUMP payload").to_vec();
    let restore = |c: &mut TestClient, extra: &[&[u8]]| -> Reply {
        let mut args: Vec<&[u8]> = vec![b"RESTORE", to.as_bytes(), b"0", &payload];
        args.extend_from_slice(extra);
        c.cmd_bytes(&args)
    };
    assert!(restore(&mut c, &[]).is_ok());
    assert_eq!(
        c.cmd(&["LRANGE", to, "0", "-1"]),
        Reply::Array(Some(vec![
            Reply::bulk("x"),
            Reply::bulk("y"),
            Reply::bulk("")
        ]))
    );
    assert_eq!(
        restore(&mut c, &[]),
        Reply::Error("BUSYKEY Target key name already exists.".into())
    );
    assert!(restore(&mut c, &[b"REPLACE"]).is_ok());
    let bad = c.cmd(&["RESTORE", "dump:c", "0", "not a payload"]);
    assert_eq!(
        bad,
        Reply::Error("ERR DUMP payload version or checksum are wrong".into())
    );
    // The owning master holds the restored value.
    let owner = cluster.master_for_slot(key_slot(to.as_bytes())).unwrap();
    assert_eq!(cluster.client(owner).cmd(&["LLEN", to]), Reply::Int(3));
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

fn pipelines_multi_key_commands_and_local_commands(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut c = proxy.client();

    // 10,000 pipelined mixed commands come back in order.
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for i in 0..2500 {
        cmds.push(vec!["SET".into(), format!("pipe:{i}"), i.to_string()]);
        cmds.push(vec!["GET".into(), format!("pipe:{i}")]);
        cmds.push(vec!["INCR".into(), format!("counter:{}", i % 7)]);
        cmds.push(vec!["PING".into()]);
    }
    let replies = c.pipeline(&cmds);
    assert_eq!(replies.len(), 10_000);
    let mut counters = [0i64; 7];
    for (i, chunk) in replies.chunks(4).enumerate() {
        assert!(chunk[0].is_ok(), "{:?}", chunk[0]);
        assert_eq!(chunk[1], Reply::bulk(i.to_string()));
        counters[i % 7] += 1;
        assert_eq!(chunk[2], Reply::Int(counters[i % 7]));
        assert_eq!(chunk[3], Reply::Simple("PONG".into()));
    }

    // Hash tags keep keys together.
    assert_eq!(
        c.cmd(&[
            "MSETNX",
            "{user1000}.following",
            "a",
            "{user1000}.followers",
            "b"
        ]),
        Reply::Int(1)
    );
    assert_eq!(
        c.cmd(&["RENAME", "{user1000}.following", "{user1000}.x"]),
        Reply::Simple("OK".into())
    );

    // Split commands across slots, merged as one server answers.
    let keys: Vec<String> = (0..50).map(|i| format!("mk:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.push(k.clone());
        mset.push(format!("v-{k}"));
    }
    assert!(c.cmd_bytes(&mset).is_ok());
    let slots: std::collections::HashSet<u16> =
        keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    assert!(slots.len() > 10, "the keys should span many slots");
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    mget.push("mk:missing".into());
    let values = c.cmd_bytes(&mget);
    let values = values.expect_array();
    assert_eq!(values.len(), 51);
    for (k, v) in keys.iter().zip(values) {
        assert_eq!(v, &Reply::bulk(format!("v-{k}")));
    }
    assert!(values[50].is_nil());
    let mut exists = vec!["EXISTS".to_string()];
    exists.extend(keys.iter().cloned());
    exists.push(keys[0].clone());
    assert_eq!(c.cmd_bytes(&exists), Reply::Int(51));
    assert_eq!(
        c.cmd_bytes(&[&["TOUCH", "mk:1", "mk:2", "nope"][..]].concat()),
        Reply::Int(2)
    );
    assert_eq!(c.cmd(&["UNLINK", "mk:1", "mk:2", "nope"]), Reply::Int(2));
    let mut del = vec!["DEL".to_string()];
    del.extend(keys.iter().cloned());
    assert_eq!(c.cmd_bytes(&del), Reply::Int(48));

    // Everything else that spans slots gets Redis's own CROSSSLOT.
    for args in [
        &["MSETNX", "a", "1", "b", "2"][..],
        &["RENAME", "a", "b"],
        &["SMOVE", "a", "b", "m"],
        &["SUNIONSTORE", "d", "a", "b"],
        &["LMOVE", "a", "b", "LEFT", "LEFT"],
    ] {
        assert_eq!(
            c.cmd(args),
            Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into()),
            "{args:?}"
        );
    }

    // Commands the proxy answers itself.
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(c.cmd(&["PING", "hi"]), Reply::bulk("hi"));
    assert_eq!(c.cmd(&["ECHO", ""]), Reply::bulk(""));
    assert!(c.cmd(&["SELECT", "0"]).is_ok());
    assert_eq!(
        c.cmd(&["SELECT", "1"]),
        Reply::Error("ERR DB index is out of range".into())
    );
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "foo"]), Reply::Int(12182));
    assert_eq!(
        c.cmd(&["CLUSTER", "KEYSLOT", "{user1000}.following"]),
        Reply::Int(i64::from(key_slot(b"user1000")))
    );
    let dbsize = c.cmd(&["DBSIZE"]).expect_int();
    // 2500 pipe keys + 7 counters + 2 user1000 keys.
    assert_eq!(dbsize, 2509);
    let info = c.cmd(&["INFO"]);
    let info = info.expect_str();
    assert!(info.contains("redis_version:"), "{info}");
    assert!(info.contains("cluster_enabled:0"), "{info}");
    assert!(info.contains(&format!("db0:keys={dbsize},")), "{info}");
    assert_eq!(
        c.cmd(&["HELLO", "4"]),
        Reply::Error("NOPROTO unsupported protocol version".into())
    );
    let hello = c.cmd(&["HELLO", "2"]);
    assert_eq!(hello.expect_array()[5], Reply::Int(2), "{hello:?}");
    assert!(c.cmd(&["COMMAND", "COUNT"]).expect_int() > 200);

    // Not supported yet: a clear error, and the connection stays usable.
    let monitor = c.cmd(&["MONITOR"]);
    assert!(
        monitor.expect_error().starts_with("ERR 'MONITOR'"),
        "{monitor:?}"
    );
    assert_eq!(c.cmd(&["GET", "pipe:7"]), Reply::bulk("7"));

    // Inline commands, then QUIT: +OK and the connection closes.
    c.send_raw(b"PING\r\nSET inline:k \"a b\"\r\nGET inline:k\r\nQUIT\r\n");
    assert_eq!(c.read_reply(), Reply::Simple("PONG".into()));
    assert!(c.read_reply().is_ok());
    assert_eq!(c.read_reply(), Reply::bulk("a b"));
    assert!(c.read_reply().is_ok());
    assert!(c.read_raw_until_close().is_empty());

    // The admin endpoint: ready, and the commands counted by name.
    assert_eq!(proxy.admin_get("/readyz").unwrap().0, 200);
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains("slotway_commands_total{command=\"get\",outcome=\"ok\"}"),
        "{metrics}"
    );
}

fn bad_input_closes_only_that_client(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut bystander = proxy.client();
    assert!(bystander.cmd(&["SET", "bystander", "1"]).is_ok());
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nx\r\n",
            "-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        // A huge announced length fails at once; nothing waits for 600 MB.
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET k \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, reply) in cases {
        let mut bad = proxy.client();
        bad.set_timeout(Duration::from_secs(5));
        // A good request first: its reply still arrives, in order.
        bad.send_raw(b"*1\r\n$4\r\nPING\r\n");
        bad.send_raw(input);
        let started = Instant::now();
        let got = bad.read_raw_until_close();
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("+PONG\r\n{reply}"),
            "{input:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{input:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(
            bystander.cmd(&["INCR", "bystander"]),
            Reply::Int(2 + cases.iter().position(|c| c.0 == *input).unwrap() as i64)
        );
    }
    // An inline request over 64 KB without a newline.
    let mut bad = proxy.client();
    bad.send_raw(&vec![b'a'; 70 * 1024]);
    assert_eq!(
        bad.read_raw_until_close(),
        b"-ERR Protocol error: too big inline request\r\n"
    );
    assert!(bystander.cmd(&["PING"]) == Reply::Simple("PONG".into()));
}

fn a_long_pipeline_written_before_any_read_does_not_deadlock(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    const N: usize = 200_000;
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    // The client writes everything before it reads a single reply.
    let write_all = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..N {
            batch.extend_from_slice(&encode_command(&[
                "SET",
                &format!("long:{}", i % 1000),
                "x",
            ]));
            if batch.len() > 64 * 1024 {
                writer.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        writer.write_all(&batch).unwrap();
    });
    write_all
        .join()
        .expect("the writer finished without the proxy deadlocking");
    let expected = b"+OK\r\n".len() * N;
    let mut got = vec![0u8; expected];
    stream.read_exact(&mut got).unwrap();
    assert!(got.chunks(5).all(|r| r == b"+OK\r\n"));
}

on_both_backends!(
    replies_match_the_owning_master_byte_for_byte,
    dump_and_restore_move_values_between_masters,
    pipelines_multi_key_commands_and_local_commands,
    bad_input_closes_only_that_client,
    a_long_pipeline_written_before_any_read_does_not_deadlock,
);
