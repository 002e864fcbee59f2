//! String and generic key commands of the built-in node, compared byte for
//! byte with redis-server (replies and error texts), plus what cannot be
//! compared: SCAN's cursor walk, DUMP/RESTORE and MIGRATE between two
//! built-in nodes (their payload format is not Redis's).

// Helpers (not `#[test]` functions) panic on purpose when a step fails.
#![allow(clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use slotway::node::db::Value;

const WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// Makes `key` a list `[a, b]` on both servers. The built-in node gets it
/// through RESTORE, so these tests need no list commands.
fn make_list(pair: &mut NodePair, key: &str) {
    let payload = slotway::node::dump::dump(&Value::List(VecDeque::from(vec![
        Bytes::from_static(b"a"),
        Bytes::from_static(b"b"),
    ])));
    pair.ours
        .cmd_bytes(&[&b"RESTORE"[..], key.as_bytes(), b"0", &payload])
        .expect_ok();
    assert_eq!(pair.theirs.cmd(&["RPUSH", key, "a", "b"]).expect_int(), 2);
}

#[test]
fn set_and_get_with_options_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "list");
    pair.same_all(&[
        &["SET", "k", "v"],
        &["GET", "k"],
        &["GET", "list"],
        &["SET", "k", "v2", "NX"],
        &["SET", "k", "v2", "XX"],
        &["SET", "nokey", "v", "XX"],
        &["GET", "nokey"],
        &["SET", "k", "v3", "GET"],
        &["SET", "fresh", "v", "GET"],
        &["SET", "k", "v4", "NX", "GET"],
        &["SET", "k", "v4", "XX", "GET"],
        &["SET", "list", "v", "GET"],
        &["SET", "k", "v", "nx", "xx"],
        &["SET", "k", "v", "xx", "nx"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k", "v", "EX", "-5"],
        &["SET", "k", "v", "EX", "abc"],
        &["SET", "k", "v", "PX", "0"],
        &["SET", "k", "v", "PX", "9223372036854775807"],
        &["SET", "k", "v", "EX", "9223372036854775"],
        &["SET", "k", "v", "EX", "9223372036854776"],
        &["SET", "k", "v", "EXAT", "0"],
        &["SET", "k", "v", "EX", "10", "PX", "100"],
        &["SET", "k", "v", "EX", "10", "EX", "20"],
        &["TTL", "k"],
        &["SET", "k", "v", "KEEPTTL", "EX", "5"],
        &["SET", "k", "v", "EX", "5", "KEEPTTL"],
        &["SET", "k", "v", "KEEPTTL"],
        &["TTL", "k"],
        &["SET", "k", "v", "PERSIST"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "foo"],
        &["SET", "k", "v"],
        &["TTL", "k"],
        &["SET", "k", "v", "EXAT", "1"],
        &["GET", "k"],
        &["SET", "k", "v", "PXAT", "1"],
        &["EXISTS", "k"],
        &["SET", "k", "v", "EXAT", "32503680000"],
        &["EXPIRETIME", "k"],
        &["SET", "k", "v", "PXAT", "32503680000123"],
        &["PEXPIRETIME", "k"],
        &["SET", "empty", ""],
        &["GET", "empty"],
        &["STRLEN", "empty"],
        &["SETNX", "nx", "1"],
        &["SETNX", "nx", "2"],
        &["GET", "nx"],
        &["SETEX", "se", "0", "v"],
        &["SETEX", "se", "abc", "v"],
        &["SETEX", "se", "100", "v"],
        &["TTL", "se"],
        &["PSETEX", "pse", "-1", "v"],
        &["PSETEX", "pse", "100000", "v"],
        &["TTL", "pse"],
        &["GETSET", "gs", "1"],
        &["GETSET", "gs", "2"],
        &["GETSET", "list", "2"],
        &["GETDEL", "gs"],
        &["GETDEL", "gs"],
        &["GETDEL", "list"],
    ]);
}

#[test]
fn getex_append_ranges_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "list");
    pair.same_all(&[
        &["SET", "k", "hello world"],
        &["GETEX", "k"],
        &["GETEX", "k", "EX", "100"],
        &["TTL", "k"],
        &["GETEX", "k", "PERSIST"],
        &["TTL", "k"],
        &["GETEX", "k", "PX", "100000"],
        &["TTL", "k"],
        &["GETEX", "k", "EX", "0"],
        &["GETEX", "k", "PX", "100", "PERSIST"],
        &["GETEX", "k", "PERSIST", "EX", "1"],
        &["GETEX", "k", "NX"],
        &["GETEX", "k", "EX"],
        &["GETEX", "missing", "EX", "10"],
        &["GETEX", "list"],
        &["GETEX", "k", "EXAT", "1"],
        &["GET", "k"],
        &["APPEND", "a", "x"],
        &["APPEND", "a", "yz"],
        &["APPEND", "a", ""],
        &["GET", "a"],
        &["STRLEN", "a"],
        &["STRLEN", "missing"],
        &["STRLEN", "list"],
        &["APPEND", "list", "x"],
        &["SET", "s", "Hello World"],
        &["GETRANGE", "s", "0", "4"],
        &["GETRANGE", "s", "-5", "-1"],
        &["GETRANGE", "s", "0", "-1"],
        &["GETRANGE", "s", "-1", "-5"],
        &["GETRANGE", "s", "5", "2"],
        &["GETRANGE", "s", "0", "100"],
        &["GETRANGE", "s", "-100", "2"],
        &["GETRANGE", "s", "20", "30"],
        &["GETRANGE", "s", "a", "1"],
        &["GETRANGE", "missing", "0", "-1"],
        &["GETRANGE", "list", "0", "-1"],
        &["SUBSTR", "s", "1", "3"],
        &["SET", "n", "12345"],
        &["GETRANGE", "n", "1", "2"],
        &["SETRANGE", "sr", "5", "abc"],
        &["GET", "sr"],
        &["SETRANGE", "sr", "0", "XY"],
        &["GET", "sr"],
        &["SETRANGE", "sr", "7", "long tail"],
        &["GET", "sr"],
        &["SETRANGE", "sr", "-1", "x"],
        &["SETRANGE", "sr", "x", "x"],
        &["SETRANGE", "sr", "0", ""],
        &["SETRANGE", "sr", "536870911", ""],
        &["SETRANGE", "sr", "536870912", "x"],
        &["SETRANGE", "sr", "536870911", "xy"],
        &["SETRANGE", "nothing", "0", ""],
        &["EXISTS", "nothing"],
        &["SETRANGE", "nothing", "536870912", "x"],
        &["SETRANGE", "list", "0", "x"],
    ]);
}

#[test]
fn counters_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "list");
    pair.same_all(&[
        &["INCR", "c"],
        &["INCRBY", "c", "10"],
        &["DECR", "c"],
        &["DECRBY", "c", "5"],
        &["INCRBY", "c", "-100"],
        &["INCRBY", "c", "abc"],
        &["INCRBY", "c", "1.5"],
        &["DECRBY", "c", "-9223372036854775808"],
        &["DECRBY", "c", "9223372036854775808"],
        &["SET", "big", "9223372036854775807"],
        &["INCR", "big"],
        &["INCRBY", "big", "0"],
        &["SET", "small", "-9223372036854775808"],
        &["DECR", "small"],
        &["DECRBY", "small", "9223372036854775807"],
        &["SET", "t", "expires"],
        &["SET", "t", "5", "EX", "100"],
        &["INCR", "t"],
        &["TTL", "t"],
        &["INCR", "list"],
        &["INCRBYFLOAT", "list", "1"],
        &["SET", "bad", "abc"],
        &["INCR", "bad"],
        &["SET", "bad", " 1"],
        &["INCR", "bad"],
        &["SET", "bad", "01"],
        &["INCR", "bad"],
        &["SET", "bad", "-0"],
        &["INCR", "bad"],
        &["SET", "bad", "1.0"],
        &["INCR", "bad"],
        &["SET", "bad", ""],
        &["INCR", "bad"],
        &["SET", "f", "10.50"],
        &["INCRBYFLOAT", "f", "0.1"],
        &["INCRBYFLOAT", "f", "-5"],
        &["SET", "f", "5.0e3"],
        &["INCRBYFLOAT", "f", "2.0e2"],
        &["INCRBYFLOAT", "f2", "0.1"],
        &["INCRBYFLOAT", "f2", "0.2"],
        &["SET", "f3", "1000"],
        &["INCRBYFLOAT", "f3", "0.1"],
        &["INCRBYFLOAT", "f4", "1e30"],
        &["INCRBYFLOAT", "f4", "-1e30"],
        &["INCRBYFLOAT", "f5", "3.0e3"],
        &["INCRBYFLOAT", "f5", "5.0e+3"],
        &["INCRBYFLOAT", "f5", "1.5"],
        &["INCRBYFLOAT", "f5", "-0.00000001"],
        &["INCRBYFLOAT", "f6", "123456789.123456789"],
        &["INCRBYFLOAT", "f6", "1e-20"],
        &["INCRBYFLOAT", "f7", "-1e-20"],
        &["INCRBYFLOAT", "f8", "0x10"],
        &["INCRBYFLOAT", "f8", "+.5"],
        &["INCRBYFLOAT", "f9", "1e300"],
        &["INCRBYFLOAT", "f9", "1e300"],
        &["INCRBYFLOAT", "f", "inf"],
        &["INCRBYFLOAT", "f", "-inf"],
        &["INCRBYFLOAT", "f", "nan"],
        &["INCRBYFLOAT", "f", "abc"],
        &["INCRBYFLOAT", "f", " 1"],
        &["INCRBYFLOAT", "f", "1e"],
        &["INCRBYFLOAT", "f", ""],
        &["INCRBYFLOAT", "bad", "1"],
        &["SET", "huge", "1e4932"],
        &["INCRBYFLOAT", "huge", "1e4932"],
        &["INCRBYFLOAT", "huge", "1e-4940"],
        &["INCRBYFLOAT", "tiny", "1e-4950"],
        &["INCRBYFLOAT", "tiny", "1e-5000"],
        // Cases where a 64-bit mantissa and `%.17Lf` show: digits f64
        // would lose, halfway rounding at the 17th decimal, the range
        // ends, and values around 2^63 and 2^64.
        &["INCRBYFLOAT", "g1", "100000.1"],
        &["INCRBYFLOAT", "g1", "0.2"],
        &["INCRBYFLOAT", "g2", "1000"],
        &["INCRBYFLOAT", "g2", "0.1"],
        &["INCRBYFLOAT", "g3", "0x1p-18"],
        &["INCRBYFLOAT", "g3", "0x2p-18"],
        &["INCRBYFLOAT", "g4", "1.18973149535723176502e4932"],
        &["INCRBYFLOAT", "g4", "1.18973149535723176508e4932"],
        &["INCRBYFLOAT", "g5", "-1e4932"],
        &["INCRBYFLOAT", "g5", "-1e4932"],
        &["INCRBYFLOAT", "g6", "3.6451995318824746025e-4951"],
        &["INCRBYFLOAT", "g6", "1.8225997659412373012e-4951"],
        &["INCRBYFLOAT", "g6", "1.822599765941237301e-4951"],
        &["INCRBYFLOAT", "g7", "18446744073709551615"],
        &["INCRBYFLOAT", "g7", "0.5"],
        &["INCRBYFLOAT", "g8", "9223372036854775807"],
        &["INCRBYFLOAT", "g8", "-0x1p-1"],
        &["INCRBYFLOAT", "g9", "0X1.FFFFFFFFFFFFFFFFP+63"],
        &["INCRBYFLOAT", "g9", "1e-300"],
        &["SET", "g10", "1e308"],
        &["INCRBYFLOAT", "g10", "1e308"],
    ]);
}

#[test]
fn multi_key_strings_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "{t}list");
    pair.same_all(&[
        &["MSET", "{t}a", "1", "{t}b", "2"],
        &["MGET", "{t}a", "{t}b", "{t}c", "{t}list", "{t}a"],
        &["MSET", "{t}a", "1", "{t}b"],
        &["MSET", "{t}a"],
        &["MSETNX", "{t}a", "x", "{t}c", "3"],
        &["MGET", "{t}a", "{t}c"],
        &["MSETNX", "{t}c", "3", "{t}d", "4"],
        &["MGET", "{t}c", "{t}d"],
        &["MSETNX", "{t}e", "1", "{t}e", "2"],
        &["GET", "{t}e"],
        &["MSETNX", "{t}e", "1", "{t}f"],
        &["SET", "{t}ttl", "v", "EX", "100"],
        &["MSET", "{t}ttl", "w"],
        &["TTL", "{t}ttl"],
    ]);
}

#[test]
fn generic_key_commands_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "{t}list");
    pair.same_all(&[
        &["MSET", "{t}a", "1", "{t}b", "2", "{t}c", "3"],
        &["EXISTS", "{t}a", "{t}a", "{t}b", "{t}x"],
        &["TOUCH", "{t}a", "{t}a", "{t}x"],
        &["DEL", "{t}a", "{t}a", "{t}x"],
        &["UNLINK", "{t}b", "{t}c"],
        &["EXISTS", "{t}a", "{t}b"],
        &["TYPE", "{t}list"],
        &["TYPE", "{t}x"],
        &["SET", "k", "v"],
        &["TYPE", "k"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["TTL", "missing"],
        &["PTTL", "missing"],
        &["EXPIRETIME", "k"],
        &["EXPIRETIME", "missing"],
        &["EXPIRE", "k", "100"],
        &["TTL", "k"],
        &["EXPIRE", "k", "200", "NX"],
        &["EXPIRE", "k", "200", "XX"],
        &["TTL", "k"],
        &["EXPIRE", "k", "100", "GT"],
        &["EXPIRE", "k", "300", "GT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "400", "LT"],
        &["EXPIRE", "k", "50", "LT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "50", "NX", "XX"],
        &["EXPIRE", "k", "50", "NX", "GT"],
        &["EXPIRE", "k", "50", "GT", "LT"],
        &["EXPIRE", "k", "40", "XX", "GT"],
        &["EXPIRE", "k", "50", "FOO"],
        &["EXPIRE", "k", "abc"],
        &["EXPIRE", "k", "9223372036854775807"],
        &["EXPIRE", "k", "-9223372036854775808"],
        &["PEXPIRE", "k", "9223372036854775807"],
        &["EXPIRE", "missing", "100"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["PERSIST", "missing"],
        &["TTL", "k"],
        &["EXPIRE", "k", "100", "XX"],
        &["EXPIRE", "k", "100", "LT"],
        &["TTL", "k"],
        &["PERSIST", "k"],
        &["EXPIRE", "k", "100", "GT"],
        &["EXPIREAT", "k", "4000000000"],
        &["EXPIRETIME", "k"],
        &["PEXPIRETIME", "k"],
        &["PEXPIREAT", "k", "4000000000123"],
        &["PEXPIRETIME", "k"],
        &["EXPIRETIME", "k"],
        &["EXPIRE", "k", "-1"],
        &["EXISTS", "k"],
        &["SET", "k", "v"],
        &["EXPIREAT", "k", "1"],
        &["EXISTS", "k"],
        &["SET", "k", "v"],
        &["PEXPIRE", "k", "0"],
        &["GET", "k"],
        &["RENAME", "{t}nokey", "{t}b"],
        &["RENAMENX", "{t}nokey", "{t}b"],
        &["SET", "{t}r", "v", "EXAT", "4000000000"],
        &["RENAME", "{t}r", "{t}r"],
        &["RENAMENX", "{t}r", "{t}r"],
        &["RENAME", "{t}r", "{t}r2"],
        &["EXISTS", "{t}r"],
        &["EXPIRETIME", "{t}r2"],
        &["SET", "{t}other", "x"],
        &["RENAMENX", "{t}r2", "{t}other"],
        &["RENAME", "{t}r2", "{t}other"],
        &["GET", "{t}other"],
        &["EXPIRETIME", "{t}other"],
        &["RENAMENX", "{t}other", "{t}fresh"],
        &["GET", "{t}fresh"],
        &["COPY", "{t}fresh", "{t}copy"],
        &["GET", "{t}copy"],
        &["EXPIRETIME", "{t}copy"],
        &["COPY", "{t}fresh", "{t}copy"],
        &["SET", "{t}fresh", "new"],
        &["COPY", "{t}fresh", "{t}copy", "REPLACE"],
        &["GET", "{t}copy"],
        &["COPY", "{t}nokey", "{t}copy"],
        &["COPY", "{t}fresh", "{t}fresh"],
        &["COPY", "{t}fresh", "{t}copy", "DB"],
        &["COPY", "{t}fresh", "{t}copy", "DB", "x"],
        &["COPY", "{t}fresh", "{t}copy", "DB", "99"],
        &["COPY", "{t}fresh", "{t}copy", "DB", "-1"],
        &["COPY", "{t}fresh", "{t}copy", "FOO"],
        &["COPY", "{t}list", "{t}list2"],
        &["TYPE", "{t}list2"],
        &["DBSIZE"],
        &["FLUSHALL", "foo"],
        &["FLUSHDB", "SYNC", "x"],
        &["FLUSHDB", "ASYNC"],
        &["DBSIZE"],
        &["RANDOMKEY"],
        &["SET", "only", "1"],
        &["RANDOMKEY"],
        &["FLUSHALL", "sync"],
        &["FLUSHALL"],
        &["DBSIZE"],
    ]);
    // A cluster node has one database.
    pair.ours.cmd(&["SET", "{t}s", "1"]).expect_ok();
    assert_eq!(
        pair.ours
            .cmd(&["COPY", "{t}s", "{t}d", "DB", "1"])
            .expect_error(),
        "ERR Copying to another database is not allowed in cluster mode"
    );
}

#[test]
fn object_subcommands_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    make_list(&mut pair, "list");
    let long = "x".repeat(45);
    let edge = "x".repeat(44);
    pair.same_all(&[
        &["SET", "int", "123"],
        &["SET", "neg", "-9223372036854775808"],
        &["SET", "bigint", "1234567"],
        &["SET", "str", "hello"],
        &["SET", "edge", &edge],
        &["SET", "long", &long],
        &["OBJECT", "ENCODING", "int"],
        &["OBJECT", "ENCODING", "neg"],
        &["OBJECT", "ENCODING", "str"],
        &["OBJECT", "ENCODING", "edge"],
        &["OBJECT", "ENCODING", "long"],
        &["OBJECT", "ENCODING", "list"],
        &["OBJECT", "ENCODING", "missing"],
        &["OBJECT", "REFCOUNT", "int"],
        &["OBJECT", "REFCOUNT", "bigint"],
        &["OBJECT", "REFCOUNT", "str"],
        &["OBJECT", "REFCOUNT", "missing"],
        &["OBJECT", "FREQ", "str"],
        &["OBJECT", "FREQ", "missing"],
        &["OBJECT", "IDLETIME", "missing"],
        &["OBJECT", "HELP"],
        &["OBJECT", "ENCODING"],
        &["OBJECT", "FOO", "str"],
    ]);
    assert_eq!(
        pair.ours.cmd(&["OBJECT", "IDLETIME", "str"]).expect_int(),
        0
    );
}

#[test]
fn keys_patterns_match_redis() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let names = [
        "hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h?llo", "]", "]x", "a-b", "x\\y",
        "user:1", "user:22", "USER:3", "", "[", "^",
    ];
    for name in names {
        pair.same(&["SET", name, "v"]);
    }
    let patterns = [
        "*",
        "h?llo",
        "h*llo",
        "h[ae]llo",
        "h[^e]llo",
        "h[a-b]llo",
        "h[b-a]llo",
        "h\\*llo",
        "h\\?llo",
        "*\\",
        "x\\\\y",
        "[a-]x",
        "[a-]",
        "user:*",
        "user:??",
        "[uU]ser:*",
        "[",
        "[^",
        "\\[",
        "[\\]]",
        "*[",
        "**",
        "",
        "?",
        "nomatch*",
    ];
    for pattern in patterns {
        let (ours, theirs) = pair.both(&["KEYS", pattern]);
        let sorted = |r: &Reply| -> BTreeSet<Vec<u8>> {
            r.expect_array()
                .iter()
                .map(|k| k.as_bulk().expect("a key").to_vec())
                .collect()
        };
        assert_eq!(sorted(&ours), sorted(&theirs), "KEYS {pattern:?}");
    }
}

/// Runs a whole SCAN with `extra` options; returns every key it gave, with
/// repeats, and the number of calls.
fn full_scan(client: &mut TestClient, extra: &[&str]) -> (Vec<Vec<u8>>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(extra);
        let reply = client.cmd(&args);
        let parts = reply.expect_array();
        let next = parts[0].expect_str().to_string();
        keys.extend(
            parts[1]
                .expect_array()
                .iter()
                .map(|k| k.as_bulk().expect("a key").to_vec()),
        );
        calls += 1;
        assert!(calls < 20_000, "SCAN does not end");
        if next == "0" {
            return (keys, calls);
        }
        cursor = next;
    }
}

#[test]
fn scan_walks_every_key_exactly_once() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for i in 0..1000 {
        cmds.push(vec!["SET".into(), format!("key:{i}"), i.to_string()]);
    }
    make_list(&mut pair, "alist");
    pair.ours.pipeline(&cmds);
    pair.theirs.pipeline(&cmds);

    let (keys, calls) = full_scan(&mut pair.ours, &["COUNT", "10"]);
    assert_eq!(keys.len(), 1001, "each key once");
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(unique.len(), 1001);
    assert!(calls >= 50, "COUNT 10 takes many calls, got {calls}");

    // MATCH and TYPE filter the same keys as Redis's.
    for extra in [
        &["MATCH", "key:1*"][..],
        &["MATCH", "key:?"],
        &["TYPE", "list"],
        &["TYPE", "STRING", "COUNT", "100"],
        &["TYPE", "nosuchtype"],
        &["MATCH", "*", "COUNT", "1000"],
    ] {
        let ours: BTreeSet<_> = full_scan(&mut pair.ours, extra).0.into_iter().collect();
        let theirs: BTreeSet<_> = full_scan(&mut pair.theirs, extra).0.into_iter().collect();
        assert_eq!(ours, theirs, "SCAN {extra:?}");
    }
    pair.same_all(&[
        &["SCAN", "x"],
        &["SCAN", " 1"],
        &["SCAN", "18446744073709551616"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "COUNT", "-1"],
        &["SCAN", "0", "COUNT", "abc"],
        &["SCAN", "0", "MATCH"],
        &["SCAN", "0", "FOO", "bar"],
    ]);
    // A cursor past the last slot ends the scan.
    let reply = pair.ours.cmd(&["SCAN", "99999"]);
    assert_eq!(reply.expect_array()[0].expect_str(), "0");
}

#[test]
fn keys_expire_lazily_and_actively() {
    let node = StandaloneNode::start(&[]);
    let mut c = node.client();
    c.cmd(&["SET", "a", "1", "PX", "100"]).expect_ok();
    c.cmd(&["SET", "b", "1", "PX", "100"]).expect_ok();
    c.cmd(&["SET", "c", "1", "PX", "100000"]).expect_ok();
    let pttl = c.cmd(&["PTTL", "c"]).expect_int();
    assert!((90_000..=100_000).contains(&pttl), "PTTL {pttl}");
    c.cmd(&["PERSIST", "c"]).expect_int();
    // `a` is read (lazy expiry), `b` never is (active expiry).
    eventually(WAIT, POLL, || c.cmd(&["GET", "a"]).is_nil());
    eventually(WAIT, POLL, || c.cmd(&["DBSIZE"]).expect_int() == 1);
    assert_eq!(c.cmd(&["TTL", "b"]).expect_int(), -2);
    assert_eq!(c.cmd(&["KEYS", "*"]).expect_array().len(), 1);
}

#[test]
fn dump_and_restore_between_built_in_nodes() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let other = StandaloneNode::start(&[]);
    let mut b = other.client();
    let a = &mut pair.ours;
    a.cmd(&["SET", "s", "hello", "EX", "100"]).expect_ok();
    let payload = a.cmd(&["DUMP", "s"]).as_bulk().expect("a payload").to_vec();
    assert!(a.cmd(&["DUMP", "missing"]).is_nil());

    let restore = |c: &mut TestClient, extra: &[&[u8]]| {
        let mut args: Vec<&[u8]> = vec![b"RESTORE", b"s", b"5000", &payload];
        args.extend_from_slice(extra);
        c.cmd_bytes(&args)
    };
    restore(&mut b, &[]).expect_ok();
    assert_eq!(b.cmd(&["GET", "s"]).as_bulk(), Some(&b"hello"[..]));
    let pttl = b.cmd(&["PTTL", "s"]).expect_int();
    assert!((1..=5000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(
        restore(&mut b, &[]).expect_error(),
        "BUSYKEY Target key name already exists."
    );
    restore(&mut b, &[b"REPLACE", b"IDLETIME", b"10"]).expect_ok();
    restore(&mut b, &[b"REPLACE", b"FREQ", b"10"]).expect_ok();
    assert_eq!(
        restore(&mut b, &[b"REPLACE", b"FREQ", b"256"]).expect_error(),
        "ERR Invalid FREQ value, must be >= 0 and <= 255"
    );
    assert_eq!(
        restore(&mut b, &[b"REPLACE", b"IDLETIME", b"-1"]).expect_error(),
        "ERR Invalid IDLETIME value, must be >= 0"
    );
    assert_eq!(
        restore(&mut b, &[b"REPLACE", b"IDLETIME", b"1", b"FREQ", b"1"]).expect_error(),
        "ERR syntax error"
    );
    // ABSTTL: a time in the past creates nothing; the key is replaced
    // away, as in Redis.
    let mut args: Vec<&[u8]> = vec![b"RESTORE", b"s", b"1", &payload, b"ABSTTL", b"REPLACE"];
    b.cmd_bytes(&args).expect_ok();
    assert_eq!(b.cmd(&["EXISTS", "s"]).expect_int(), 0);
    args[2] = b"0";
    b.cmd_bytes(&args).expect_ok();
    assert_eq!(b.cmd(&["TTL", "s"]).expect_int(), -1);

    // A flipped byte is refused; so is Redis's own payload, and ours by
    // Redis, with the same words.
    let mut bad = payload.clone();
    bad[2] ^= 1;
    let err = b
        .cmd_bytes(&[&b"RESTORE"[..], b"t", b"0", &bad])
        .expect_error()
        .to_string();
    assert_eq!(err, "ERR DUMP payload version or checksum are wrong");
    pair.theirs.cmd(&["SET", "r", "10.6"]).expect_ok();
    let theirs = pair
        .theirs
        .cmd(&["DUMP", "r"])
        .as_bulk()
        .expect("a payload")
        .to_vec();
    let (ours_err, theirs_err) = {
        let o = b.cmd_bytes(&[&b"RESTORE"[..], b"t", b"0", &theirs]);
        let t = pair
            .theirs
            .cmd_bytes(&[&b"RESTORE"[..], b"t", b"0", &payload]);
        (o, t)
    };
    assert_eq!(ours_err, theirs_err);
    assert_eq!(
        ours_err.expect_error(),
        "ERR DUMP payload version or checksum are wrong"
    );
    // Error paths that do not depend on the payload format.
    pair.theirs.cmd(&["SET", "s", "x"]).expect_ok();
    pair.ours.cmd(&["SET", "s", "x"]).expect_ok();
    pair.same_all(&[
        &["RESTORE", "s", "0", "x"],
        &["RESTORE", "new", "-1", "x"],
        &["RESTORE", "new", "abc", "x"],
        &["RESTORE", "new", "0", "x"],
        &["RESTORE", "new", "0", "x", "FOO"],
        &["RESTORE", "new", "0", "x", "IDLETIME"],
        &["RESTORE", "new", "0", "x", "FREQ", "abc"],
        &["DUMP", "nothing"],
    ]);

    // Every type round-trips through DUMP and RESTORE.
    let mut zset = slotway::node::db::SortedSet::new();
    zset.insert(Bytes::from_static(b"m"), 2.5);
    let values = [
        Value::List(VecDeque::from(vec![Bytes::from_static(b"x")])),
        Value::ZSet(zset),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("typed{i}");
        let p = slotway::node::dump::dump(value);
        b.cmd_bytes(&[&b"RESTORE"[..], key.as_bytes(), b"0", &p])
            .expect_ok();
        let back = b.cmd(&["DUMP", &key]);
        assert_eq!(back.as_bulk(), Some(&p[..]));
        assert_eq!(
            b.cmd(&["TYPE", &key]).expect_str(),
            value.type_name(),
            "{key}"
        );
    }
}

fn migrate(c: &mut TestClient, port: u16, key: &str, extra: &[&str]) -> Reply {
    let port = port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", port.as_str(), key, "0", "5000"];
    args.extend_from_slice(extra);
    c.cmd(&args)
}

#[test]
fn migrate_moves_keys_between_built_in_nodes() {
    let source = StandaloneNode::start(&[]);
    let target = StandaloneNode::start(&[]);
    let mut a = source.client();
    let mut b = target.client();
    let to = target.server.port();

    a.cmd(&["SET", "k", "v", "EX", "100"]).expect_ok();
    migrate(&mut a, to, "k", &[]).expect_ok();
    assert!(a.cmd(&["GET", "k"]).is_nil());
    assert_eq!(b.cmd(&["GET", "k"]).as_bulk(), Some(&b"v"[..]));
    let ttl = b.cmd(&["TTL", "k"]).expect_int();
    assert!((95..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(migrate(&mut a, to, "k", &[]).expect_str(), "NOKEY");

    // The target has it: BUSYKEY, unless REPLACE.
    a.cmd(&["SET", "k", "v2"]).expect_ok();
    assert_eq!(
        migrate(&mut a, to, "k", &[]).expect_error(),
        "ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    assert_eq!(a.cmd(&["GET", "k"]).as_bulk(), Some(&b"v2"[..]));
    migrate(&mut a, to, "k", &["REPLACE"]).expect_ok();
    assert_eq!(b.cmd(&["GET", "k"]).as_bulk(), Some(&b"v2"[..]));
    assert_eq!(b.cmd(&["TTL", "k"]).expect_int(), -1);

    // COPY leaves the source as it is.
    a.cmd(&["SET", "c", "copied"]).expect_ok();
    migrate(&mut a, to, "c", &["COPY"]).expect_ok();
    assert_eq!(a.cmd(&["GET", "c"]).as_bulk(), Some(&b"copied"[..]));
    assert_eq!(b.cmd(&["GET", "c"]).as_bulk(), Some(&b"copied"[..]));
    migrate(&mut a, to, "c", &["COPY", "REPLACE"]).expect_ok();

    // KEYS form: the missing ones are skipped.
    a.cmd(&["MSET", "{x}1", "a", "{x}2", "b"]).expect_ok();
    migrate(
        &mut a,
        to,
        "",
        &["KEYS", "{x}1", "{x}missing", "{x}2", "{x}1"],
    )
    .expect_ok();
    assert_eq!(a.cmd(&["EXISTS", "{x}1", "{x}2"]).expect_int(), 0);
    let got = b.cmd(&["MGET", "{x}1", "{x}2"]);
    assert_eq!(
        got,
        Reply::Array(Some(vec![Reply::bulk("a"), Reply::bulk("b")]))
    );
    assert_eq!(
        migrate(&mut a, to, "", &["KEYS", "{x}1", "{x}2"]).expect_str(),
        "NOKEY"
    );
    assert_eq!(
        migrate(&mut a, to, "c", &["KEYS", "c"]).expect_error(),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    for bad in [&["FOO"][..], &["AUTH"], &["AUTH2", "user"]] {
        assert_eq!(
            migrate(&mut a, to, "c", bad).expect_error(),
            "ERR syntax error"
        );
    }
    let reply = a.cmd(&["MIGRATE", "127.0.0.1", &to.to_string(), "c", "0", "abc"]);
    assert_eq!(
        reply.expect_error(),
        "ERR value is not an integer or out of range"
    );
    // The target has only database 0.
    let reply = a.cmd(&["MIGRATE", "127.0.0.1", &to.to_string(), "c", "3", "1000"]);
    assert_eq!(
        reply.expect_error(),
        "ERR Target instance replied with error: ERR SELECT is not allowed in cluster mode"
    );
    assert_eq!(a.cmd(&["GET", "c"]).as_bulk(), Some(&b"copied"[..]));
    // Onto itself: refused, the key stays.
    let me = source.server.port();
    assert_eq!(
        migrate(&mut a, me, "c", &["REPLACE"]).expect_error(),
        "IOERR error or timeout reading to target instance"
    );
    assert_eq!(a.cmd(&["GET", "c"]).as_bulk(), Some(&b"copied"[..]));
}

#[test]
fn migrate_reports_io_errors_and_foreign_targets() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let redis_port = pair.redis.server.port();
    pair.ours.cmd(&["SET", "k", "v"]).expect_ok();

    // Nobody listens.
    let closed = free_port();
    assert_eq!(
        migrate(&mut pair.ours, closed, "k", &[]).expect_error(),
        "IOERR error or timeout connecting to the client"
    );
    // A target that accepts and never answers.
    let silent_port = free_port();
    let silent = TcpListener::bind(("127.0.0.1", silent_port)).expect("bind");
    let holder = thread::spawn(move || silent.accept().map(|(s, _)| s));
    let port = silent_port.to_string();
    let reply = pair
        .ours
        .cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "200"]);
    assert_eq!(
        reply.expect_error(),
        "IOERR error or timeout reading to target instance"
    );
    drop(holder.join());
    release_port(silent_port);
    release_port(closed);
    assert_eq!(pair.ours.cmd(&["GET", "k"]).as_bulk(), Some(&b"v"[..]));

    // A real Redis reads another payload format: its refusal comes back.
    assert_eq!(
        migrate(&mut pair.ours, redis_port, "k", &[]).expect_error(),
        "ERR Target instance replied with error: ERR DUMP payload version or checksum are wrong"
    );
    // The AUTH reply comes first.
    let reply = migrate(&mut pair.ours, redis_port, "k", &["AUTH", "secret"]);
    assert!(
        reply
            .expect_error()
            .starts_with("ERR Target instance replied with error: ERR AUTH <password> called without any password configured"),
        "{reply:?}"
    );
    assert_eq!(pair.ours.cmd(&["GET", "k"]).as_bulk(), Some(&b"v"[..]));
    assert!(pair.theirs.cmd(&["GET", "k"]).is_nil());
}

/// A fake target that holds its replies to the first round until told to
/// go, so the test can write the key in between.
struct FakeTarget {
    port: u16,
    rounds: mpsc::Receiver<Vec<Reply>>,
    go: mpsc::Sender<()>,
    handle: thread::JoinHandle<()>,
}

impl FakeTarget {
    /// Serves one connection: reads `first` commands and reports them, waits
    /// for `go`, answers them all `+OK`; then reads and answers `later`
    /// more commands, reported together.
    fn start(first: usize, later: usize) -> FakeTarget {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let (round_tx, rounds) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            conn.set_read_timeout(Some(WAIT)).expect("timeout");
            let mut buf = Vec::new();
            let cmds = read_commands(&mut conn, first, &mut buf);
            round_tx.send(cmds).expect("report");
            go_rx.recv_timeout(WAIT).expect("go");
            conn.write_all(&b"+OK\r\n".repeat(first)).expect("reply");
            if later > 0 {
                let cmds = read_commands(&mut conn, later, &mut buf);
                let answers: Vec<u8> = cmds
                    .iter()
                    .flat_map(|c| match c.expect_array()[0].as_bulk() {
                        Some(b"DEL") => b":1\r\n".to_vec(),
                        _ => b"+OK\r\n".to_vec(),
                    })
                    .collect();
                conn.write_all(&answers).expect("reply");
                round_tx.send(cmds).expect("report");
            }
            // Hold the connection until MIGRATE closes it.
            let _ = conn.read(&mut [0u8; 16]);
        });
        FakeTarget {
            port,
            rounds,
            go,
            handle,
        }
    }

    fn round(&self) -> Vec<Reply> {
        self.rounds.recv_timeout(WAIT).expect("a round of commands")
    }
}

/// Reads `n` commands (RESP arrays, parsed as replies) from `conn`.
fn read_commands(conn: &mut std::net::TcpStream, n: usize, buf: &mut Vec<u8>) -> Vec<Reply> {
    let mut cmds = Vec::new();
    while cmds.len() < n {
        if let Ok(Some((cmd, used))) = Reply::parse(buf) {
            buf.drain(..used);
            cmds.push(cmd);
            continue;
        }
        let mut chunk = [0u8; 4096];
        let got = conn.read(&mut chunk).expect("read a command");
        assert!(got > 0, "MIGRATE closed early");
        buf.extend_from_slice(&chunk[..got]);
    }
    cmds
}

fn args_of(cmd: &Reply) -> Vec<Vec<u8>> {
    cmd.expect_array()
        .iter()
        .map(|a| a.as_bulk().expect("a bulk").to_vec())
        .collect()
}

#[test]
fn migrate_resends_a_key_written_during_the_migration() {
    let source = StandaloneNode::start(&[]);
    let check = StandaloneNode::start(&[]);
    let mut writer = source.client();
    writer.cmd(&["SET", "{m}k", "old"]).expect_ok();
    writer.cmd(&["SET", "{m}gone", "soon"]).expect_ok();

    // Round 1: SELECT and two RESTORE-ASKING. Round 2: the changed key
    // again (REPLACE), and ASKING + DEL for the deleted one.
    let fake = FakeTarget::start(3, 3);
    let port = fake.port;
    let mut migrating = source.client();
    let call = thread::spawn(move || {
        let port = port.to_string();
        migrating.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "",
            "0",
            "5000",
            "KEYS",
            "{m}k",
            "{m}gone",
        ])
    });
    let first = fake.round();
    assert_eq!(args_of(&first[0]), vec![b"SELECT".to_vec(), b"0".to_vec()]);
    let restore = args_of(&first[1]);
    assert_eq!(restore[0], b"RESTORE-ASKING");
    assert_eq!(restore[1], b"{m}k");
    assert_eq!(restore.len(), 4, "no REPLACE asked");

    // Written while the target has not answered yet.
    writer.cmd(&["SET", "{m}k", "new"]).expect_ok();
    assert_eq!(writer.cmd(&["DEL", "{m}gone"]).expect_int(), 1);
    fake.go.send(()).expect("go");

    let second = fake.round();
    let again = args_of(&second[0]);
    assert_eq!(again[0], b"RESTORE-ASKING");
    assert_eq!(again[1], b"{m}k");
    assert_eq!(again.last().map(Vec::as_slice), Some(&b"REPLACE"[..]));
    assert_eq!(args_of(&second[1]), vec![b"ASKING".to_vec()]);
    assert_eq!(
        args_of(&second[2]),
        vec![b"DEL".to_vec(), b"{m}gone".to_vec()]
    );
    // What was sent the second time is the new value.
    check
        .client()
        .cmd_bytes(&[&b"RESTORE"[..], b"{m}k", b"0", &again[3]])
        .expect_ok();
    assert_eq!(
        check.client().cmd(&["GET", "{m}k"]).as_bulk(),
        Some(&b"new"[..])
    );

    call.join().expect("MIGRATE returns").expect_ok();
    fake.handle.join().expect("fake target");
    release_port(port);
    assert_eq!(writer.cmd(&["EXISTS", "{m}k", "{m}gone"]).expect_int(), 0);
}

#[test]
fn migrate_deletes_a_key_unchanged_during_the_migration() {
    let source = StandaloneNode::start(&[]);
    let mut writer = source.client();
    writer.cmd(&["SET", "k", "v"]).expect_ok();
    let fake = FakeTarget::start(2, 0);
    let port = fake.port;
    let mut migrating = source.client();
    let call = thread::spawn(move || {
        let port = port.to_string();
        migrating.cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "5000"])
    });
    fake.round();
    // Other clients are served while MIGRATE waits for its target.
    assert_eq!(writer.cmd(&["GET", "k"]).as_bulk(), Some(&b"v"[..]));
    fake.go.send(()).expect("go");
    call.join().expect("MIGRATE returns").expect_ok();
    fake.handle.join().expect("fake target");
    release_port(port);
    assert_eq!(writer.cmd(&["EXISTS", "k"]).expect_int(), 0);
}
