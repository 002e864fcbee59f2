//! Set and sorted-set commands of the built-in node, against redis-server:
//! every command and error path sent to both, replies compared byte for
//! byte (or as sets where Redis leaves the order open), and blocking pops
//! woken by another client or timing out.

mod common;
use std::time::{Duration, Instant};

use common::*;

/// `reply` with every array sorted, for replies in no defined order.
fn unordered(reply: Reply) -> Reply {
    match reply {
        Reply::Array(Some(items)) => {
            let mut items: Vec<Reply> = items.into_iter().map(unordered).collect();
            items.sort_by_key(Reply::encode);
            Reply::Array(Some(items))
        }
        other => other,
    }
}

/// Sends `args` to both servers; asserts the replies hold the same
/// elements in any order.
fn same_unordered(pair: &mut NodePair, args: &[&str]) -> Reply {
    let (ours, theirs) = pair.both(args);
    assert_eq!(
        unordered(ours.clone()),
        unordered(theirs),
        "replies differ for {args:?}"
    );
    ours
}

/// Sends each command to both and compares the replies exactly.
fn all_same(pair: &mut NodePair, cmds: &[&[&str]]) {
    for args in cmds {
        pair.same(args);
    }
}

/// The members of a reply array, as strings.
fn strings(reply: &Reply) -> Vec<String> {
    reply
        .expect_array()
        .iter()
        .map(|r| r.expect_str().to_string())
        .collect()
}

/// Every element a SCAN-style command returns for `key`, deduplicated and
/// sorted.
fn scan_all(client: &mut TestClient, cmd: &str, key: &str, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    for _ in 0..100_000 {
        let mut args = vec![cmd, key, cursor.as_str()];
        args.extend_from_slice(extra);
        let reply = client.cmd(&args);
        let parts = reply.expect_array();
        let next = parts[0].expect_str().to_string();
        seen.extend(strings(&parts[1]));
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "{cmd} {key} never finished");
    seen.sort();
    seen.dedup();
    seen
}

#[test]
fn set_commands_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    all_same(
        &mut pair,
        &[
            &["SADD", "s", "a", "b", "c"],
            &["SADD", "s", "a", "d"],
            &["SET", "str", "x"],
            &["SADD", "str", "a"],
            &["SREM", "s", "a", "zz"],
            &["SREM", "nokey", "a"],
            &["SREM", "str", "a"],
            &["SISMEMBER", "s", "b"],
            &["SISMEMBER", "s", "a"],
            &["SISMEMBER", "nokey", "a"],
            &["SISMEMBER", "str", "a"],
            &["SMISMEMBER", "s", "b", "zz", "c"],
            &["SMISMEMBER", "nokey", "a", "b"],
            &["SMISMEMBER", "str", "a"],
            &["SCARD", "s"],
            &["SCARD", "nokey"],
            &["SCARD", "str"],
            &["SMEMBERS", "nokey"],
            &["SMEMBERS", "str"],
            &["SADD", "s"],
        ],
    );
    same_unordered(&mut pair, &["SMEMBERS", "s"]);
    // Integers and binary-looking members are plain members.
    same_unordered(&mut pair, &["SADD", "n", "3", "1", "2", "-5", "007"]);
    same_unordered(&mut pair, &["SMEMBERS", "n"]);
    // The last member removed deletes the key (GET answers nil, not
    // WRONGTYPE).
    all_same(
        &mut pair,
        &[
            &["SADD", "one", "x"],
            &["SREM", "one", "x"],
            &["GET", "one"],
            &["SCARD", "one"],
        ],
    );
}

#[test]
fn set_algebra_and_moves_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    all_same(
        &mut pair,
        &[
            &["SADD", "{t}a", "1", "2", "3", "4"],
            &["SADD", "{t}b", "3", "4", "5"],
            &["SADD", "{t}c", "4", "6"],
            &["SET", "{t}str", "x"],
        ],
    );
    for cmd in ["SINTER", "SUNION", "SDIFF"] {
        same_unordered(&mut pair, &[cmd, "{t}a", "{t}b"]);
        same_unordered(&mut pair, &[cmd, "{t}a", "{t}b", "{t}c"]);
        same_unordered(&mut pair, &[cmd, "{t}a", "{t}none"]);
        same_unordered(&mut pair, &[cmd, "{t}none", "{t}a"]);
        same_unordered(&mut pair, &[cmd, "{t}a"]);
        pair.same(&[cmd, "{t}a", "{t}str"]);
        pair.same(&[cmd, "{t}none", "{t}str"]);
    }
    for cmd in ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"] {
        pair.same(&[cmd, "{t}dst", "{t}a", "{t}b"]);
        same_unordered(&mut pair, &["SMEMBERS", "{t}dst"]);
        pair.same(&[cmd, "{t}dst", "{t}a", "{t}str"]);
        // An empty result deletes the destination, whatever it held.
        pair.same(&["SET", "{t}dst", "v"]);
        pair.same(&[cmd, "{t}dst", "{t}none", "{t}none2"]);
        pair.same(&["GET", "{t}dst"]);
        // A string destination is overwritten.
        pair.same(&["SET", "{t}dst", "v"]);
        pair.same(&[cmd, "{t}dst", "{t}a", "{t}c"]);
        same_unordered(&mut pair, &["SMEMBERS", "{t}dst"]);
    }
    all_same(
        &mut pair,
        &[
            &["SINTERCARD", "2", "{t}a", "{t}b"],
            &["SINTERCARD", "3", "{t}a", "{t}b", "{t}c"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "1"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "0"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "-1"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT", "x"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "LIMIT"],
            &["SINTERCARD", "2", "{t}a", "{t}b", "FOO", "1"],
            &["SINTERCARD", "0", "{t}a"],
            &["SINTERCARD", "-1", "{t}a"],
            &["SINTERCARD", "x", "{t}a"],
            &["SINTERCARD", "3", "{t}a", "{t}b"],
            &["SINTERCARD", "2", "{t}a", "{t}none"],
            &["SINTERCARD", "2", "{t}a", "{t}str"],
            // SMOVE
            &["SMOVE", "{t}a", "{t}b", "1"],
            &["SMOVE", "{t}a", "{t}b", "1"],
            &["SMOVE", "{t}a", "{t}b", "3"],
            &["SMOVE", "{t}a", "{t}a", "2"],
            &["SMOVE", "{t}a", "{t}a", "zz"],
            &["SMOVE", "{t}none", "{t}b", "1"],
            &["SMOVE", "{t}none", "{t}str", "1"],
            &["SMOVE", "{t}str", "{t}b", "1"],
            &["SMOVE", "{t}a", "{t}str", "2"],
            &["SMOVE", "{t}a", "{t}new", "2"],
            &["SMOVE", "{t}a", "{t}new", "4"],
            &["GET", "{t}a"],
            &["SCARD", "{t}new"],
            &["SISMEMBER", "{t}new", "4"],
        ],
    );
    same_unordered(&mut pair, &["SMEMBERS", "{t}b"]);
}

#[test]
fn spop_srandmember_and_sscan_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let members: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let mut sadd = vec!["SADD", "s"];
    sadd.extend(members.iter().map(String::as_str));
    pair.same(&sadd);
    pair.same(&["SET", "str", "x"]);
    all_same(
        &mut pair,
        &[
            &["SPOP", "nokey"],
            &["SPOP", "nokey", "3"],
            &["SPOP", "s", "-1"],
            &["SPOP", "s", "abc"],
            &["SPOP", "s", "1", "2"],
            &["SPOP", "s", "0"],
            &["SPOP", "str"],
            &["SPOP", "str", "1"],
            &["SRANDMEMBER", "nokey"],
            &["SRANDMEMBER", "nokey", "5"],
            &["SRANDMEMBER", "nokey", "-5"],
            &["SRANDMEMBER", "s", "0"],
            &["SRANDMEMBER", "s", "abc"],
            &["SRANDMEMBER", "s", "1", "2"],
            &["SRANDMEMBER", "s", "-9223372036854775808"],
            &["SRANDMEMBER", "str"],
            &["SRANDMEMBER", "str", "2"],
        ],
    );
    // Random picks: same shapes, members from the set.
    let is_member = |m: &String| members.contains(m);
    let (ours, theirs) = pair.both(&["SRANDMEMBER", "s"]);
    assert!(is_member(&ours.expect_str().to_string()) && !theirs.is_nil());
    for count in ["5", "39", "40", "100", "-5", "-100"] {
        let (ours, theirs) = pair.both(&["SRANDMEMBER", "s", count]);
        let (ours, theirs) = (strings(&ours), strings(&theirs));
        assert_eq!(ours.len(), theirs.len(), "SRANDMEMBER s {count}");
        assert!(ours.iter().all(is_member));
        if !count.starts_with('-') {
            let mut unique = ours.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), ours.len(), "SRANDMEMBER s {count} repeats");
        }
    }
    // SSCAN walks everything, with MATCH and COUNT, on both.
    for extra in [
        &[][..],
        &["COUNT", "3"],
        &["MATCH", "m1*"],
        &["MATCH", "*", "COUNT", "1000"],
    ] {
        let ours = scan_all(&mut pair.ours, "SSCAN", "s", extra);
        let theirs = scan_all(&mut pair.theirs, "SSCAN", "s", extra);
        assert_eq!(ours, theirs, "SSCAN s {extra:?}");
    }
    all_same(
        &mut pair,
        &[
            &["SSCAN", "nokey", "0"],
            &["SSCAN", "nokey", "0", "COUNT", "0"],
            &["SSCAN", "s", "0", "COUNT", "0"],
            &["SSCAN", "s", "0", "COUNT", "x"],
            &["SSCAN", "s", "0", "MATCH"],
            &["SSCAN", "s", "0", "TYPE", "set"],
            &["SSCAN", "s", "x"],
            &["SSCAN", "s", " 1"],
            &["SSCAN", "s", "18446744073709551616"],
            &["SSCAN", "str", "0"],
        ],
    );
    // SPOP takes members out, one or many, and deletes the emptied key.
    let popped = pair.ours.cmd(&["SPOP", "s"]);
    assert!(is_member(&popped.expect_str().to_string()));
    pair.theirs.cmd(&["SREM", "s", popped.expect_str()]);
    let ours = strings(&pair.ours.cmd(&["SPOP", "s", "10"]));
    assert_eq!(ours.len(), 10);
    assert!(ours.iter().all(is_member));
    let mut srem = vec!["SREM", "s"];
    srem.extend(ours.iter().map(String::as_str));
    pair.theirs.cmd(&srem);
    same_unordered(&mut pair, &["SMEMBERS", "s"]);
    same_unordered(&mut pair, &["SPOP", "s", "1000"]);
    all_same(
        &mut pair,
        &[
            &["GET", "s"],
            &["SADD", "one", "x"],
            &["SPOP", "one"],
            &["GET", "one"],
        ],
    );
}

#[test]
fn zadd_and_member_commands_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    all_same(
        &mut pair,
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
            &["ZADD", "z", "1", "a"],
            &["ZADD", "z", "CH", "5", "a", "6", "d"],
            &["ZADD", "z", "NX", "10", "a", "7", "e"],
            &["ZADD", "z", "XX", "11", "a", "8", "f"],
            &["ZADD", "z", "XX", "CH", "12", "a", "8", "f"],
            &["ZADD", "z", "GT", "CH", "1", "a", "20", "b"],
            &["ZADD", "z", "LT", "CH", "1", "a", "30", "c"],
            &["ZADD", "z", "GT", "XX", "CH", "100", "c", "9", "g"],
            &["ZADD", "z", "INCR", "2", "a"],
            &["ZADD", "z", "INCR", "NX", "2", "a"],
            &["ZADD", "z", "INCR", "XX", "2", "nosuch"],
            &["ZADD", "z", "INCR", "GT", "-1", "a"],
            &["ZADD", "z", "INCR", "LT", "-1", "a"],
            &["ZADD", "z", "NX", "XX", "1", "a"],
            &["ZADD", "z", "GT", "LT", "1", "a"],
            &["ZADD", "z", "GT", "NX", "1", "a"],
            &["ZADD", "z", "LT", "NX", "1", "a"],
            &["ZADD", "z", "INCR", "1", "a", "2", "b"],
            &["ZADD", "z", "1"],
            &["ZADD", "z", "1", "a", "2"],
            &["ZADD", "z", "NX"],
            &["ZADD", "z", "abc", "a"],
            &["ZADD", "z", "1", "a", "nan", "b"],
            &["ZADD", "z", " 1", "a"],
            &["ZADD", "z", "1 ", "a"],
            &["ZADD", "z", "1e400", "a"],
            &["ZADD", "z", "1e-400", "a"],
            &["ZADD", "z", "0x10", "hex"],
            &["ZADD", "z", "+inf", "top", "-inf", "bottom"],
            &["ZADD", "z", "INCR", "-inf", "top"],
            &["ZADD", "nokey", "XX", "1", "a"],
            &["ZADD", "nokey", "XX", "INCR", "1", "a"],
            &["SET", "str", "x"],
            &["ZADD", "str", "1", "a"],
            &["ZADD", "str", "x", "a"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            // ZINCRBY
            &["ZINCRBY", "z", "1.5", "a"],
            &["ZINCRBY", "z", "1", "new"],
            &["ZINCRBY", "z", "abc", "a"],
            &["ZINCRBY", "z", "-inf", "top"],
            &["ZINCRBY", "str", "1", "a"],
            &["ZINCRBY", "fresh", "-0.0", "m"],
            &["ZSCORE", "fresh", "m"],
            // ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK
            &["ZREM", "z", "a", "nosuch", "b"],
            &["ZREM", "nokey", "a"],
            &["ZREM", "str", "a"],
            &["ZCARD", "z"],
            &["ZCARD", "nokey"],
            &["ZCARD", "str"],
            &["ZSCORE", "z", "c"],
            &["ZSCORE", "z", "nosuch"],
            &["ZSCORE", "nokey", "a"],
            &["ZSCORE", "str", "a"],
            &["ZMSCORE", "z", "c", "nosuch", "top", "bottom"],
            &["ZMSCORE", "nokey", "a", "b"],
            &["ZMSCORE", "str", "a"],
            &["ZRANK", "z", "c"],
            &["ZRANK", "z", "bottom"],
            &["ZRANK", "z", "nosuch"],
            &["ZRANK", "nokey", "a"],
            &["ZRANK", "str", "a"],
            &["ZREVRANK", "z", "c"],
            &["ZREVRANK", "z", "top"],
            &["ZREVRANK", "z", "nosuch"],
            // The last member removed deletes the key.
            &["ZADD", "one", "1", "x"],
            &["ZREM", "one", "x"],
            &["GET", "one"],
        ],
    );
}

#[test]
fn scores_are_printed_like_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let scores = [
        "1.1",
        "0.1",
        "0.3",
        "3",
        "-2.5",
        "1e20",
        "1.5e-7",
        "1e15",
        "1e16",
        "1e17",
        "123456789012345678",
        "2.5e-300",
        "1.7976931348623157e308",
        "4.9e-324",
        "inf",
        "-inf",
        "100",
        "12345.678",
        "0.0001",
        "1e-5",
        "-0",
        "9007199254740993",
        "0x1p-3",
    ];
    for (i, score) in scores.iter().enumerate() {
        let member = format!("m{i}");
        pair.same(&["ZADD", "small", score, &member]);
        pair.same(&["ZSCORE", "small", &member]);
        pair.same(&["ZINCRBY", "incr", score, &member]);
    }
    pair.same(&["ZRANGE", "small", "0", "-1", "WITHSCORES"]);
    pair.same(&["ZSCAN", "small", "0"]);
    // Past 128 members Redis leaves its compact encoding, and -0 stays -0.
    for i in 0..130 {
        pair.same(&["ZADD", "big", &i.to_string(), &format!("member{i}")]);
    }
    pair.same(&["ZADD", "big", "-0", "negzero"]);
    pair.same(&["ZSCORE", "big", "negzero"]);
    // The encoding is sticky: a big set shrunk stays a skiplist.
    pair.same(&["OBJECT", "ENCODING", "small"]);
    pair.same(&["OBJECT", "ENCODING", "big"]);
    pair.same(&["ZREMRANGEBYRANK", "big", "0", "-3"]);
    pair.same(&["OBJECT", "ENCODING", "big"]);
    pair.same(&["ZRANGE", "big", "0", "-1", "WITHSCORES"]);
    // A skiplist scans in hash order.
    same_unordered(&mut pair, &["ZSCAN", "big", "0"]);
    pair.same(&["ZADD", "long", "-0", &"x".repeat(65)]);
    pair.same(&["ZRANGE", "long", "0", "-1", "WITHSCORES"]);
    // A weight of -1 turns 0 into -0; a small stored result turns it back.
    pair.same(&["ZADD", "{w}zero", "0", "a", "1", "b"]);
    pair.same(&["ZUNION", "1", "{w}zero", "WEIGHTS", "-1", "WITHSCORES"]);
    pair.same(&["ZUNIONSTORE", "{w}dst", "1", "{w}zero", "WEIGHTS", "-1"]);
    pair.same(&["ZRANGE", "{w}dst", "0", "-1", "WITHSCORES"]);
}

#[test]
fn zrange_family_matches_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same(&[
        "ZADD", "{z}z", "1", "a", "2", "b", "2", "bb", "3", "c", "4", "d", "5", "e", "-inf", "lo",
        "+inf", "hi",
    ]);
    pair.same(&[
        "ZADD", "{z}lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e", "0", "f", "0", "",
    ]);
    pair.same(&["SET", "{z}str", "x"]);
    let cmds: &[&[&str]] = &[
        &["ZRANGE", "{z}z", "0", "-1"],
        &["ZRANGE", "{z}z", "0", "-1", "WITHSCORES"],
        &["ZRANGE", "{z}z", "2", "4", "withscores"],
        &["ZRANGE", "{z}z", "-3", "-1"],
        &["ZRANGE", "{z}z", "5", "2"],
        &["ZRANGE", "{z}z", "100", "200"],
        &["ZRANGE", "{z}z", "-100", "1"],
        &["ZRANGE", "{z}z", "0", "-1", "REV"],
        &["ZRANGE", "{z}z", "1", "2", "REV", "WITHSCORES"],
        &["ZRANGE", "{z}z", "a", "1"],
        &["ZRANGE", "{z}z", "0", "1", "LIMIT", "0", "1"],
        &["ZRANGE", "{z}z", "0", "1", "LIMIT", "0", "-1"],
        &["ZRANGE", "{z}z", "0", "1", "FOO"],
        &["ZRANGE", "{z}z", "0", "1", "BYSCORE", "BYLEX"],
        &["ZRANGE", "{z}z", "0", "1", "REV", "REV"],
        &["ZRANGE", "{z}nokey", "0", "-1"],
        &["ZRANGE", "{z}str", "0", "-1"],
        &["ZRANGE", "{z}z", "2", "4", "BYSCORE"],
        &["ZRANGE", "{z}z", "(2", "4", "BYSCORE", "WITHSCORES"],
        &["ZRANGE", "{z}z", "2", "(4", "BYSCORE"],
        &["ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE"],
        &["ZRANGE", "{z}z", "(-inf", "(+inf", "BYSCORE"],
        &["ZRANGE", "{z}z", "4", "2", "BYSCORE"],
        &["ZRANGE", "{z}z", "4", "2", "BYSCORE", "REV"],
        &[
            "ZRANGE",
            "{z}z",
            "+inf",
            "-inf",
            "BYSCORE",
            "REV",
            "WITHSCORES",
        ],
        &[
            "ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "3",
        ],
        &[
            "ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "-1",
        ],
        &[
            "ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "3",
        ],
        &[
            "ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE", "LIMIT", "100", "3",
        ],
        &[
            "ZRANGE", "{z}z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "0",
        ],
        &[
            "ZRANGE", "{z}z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2",
        ],
        &["ZRANGE", "{z}z", "(", "3", "BYSCORE"],
        &["ZRANGE", "{z}z", "", "3", "BYSCORE"],
        &["ZRANGE", "{z}z", " 1", "3", "BYSCORE"],
        &["ZRANGE", "{z}z", "1 ", "3", "BYSCORE"],
        &["ZRANGE", "{z}z", "x", "3", "BYSCORE"],
        &["ZRANGE", "{z}z", "1", "nan", "BYSCORE"],
        &["ZRANGE", "{z}z", "0", "1", "BYSCORE", "LIMIT", "x", "1"],
        &["ZRANGE", "{z}lex", "-", "+", "BYLEX"],
        &["ZRANGE", "{z}lex", "[b", "(e", "BYLEX"],
        &["ZRANGE", "{z}lex", "(b", "[e", "BYLEX", "LIMIT", "1", "2"],
        &["ZRANGE", "{z}lex", "+", "-", "BYLEX", "REV"],
        &[
            "ZRANGE", "{z}lex", "[e", "[b", "BYLEX", "REV", "LIMIT", "1", "10",
        ],
        &["ZRANGE", "{z}lex", "[", "[b", "BYLEX"],
        &["ZRANGE", "{z}lex", "(a", "(a", "BYLEX"],
        &["ZRANGE", "{z}lex", "+", "+", "BYLEX"],
        &["ZRANGE", "{z}lex", "-", "-", "BYLEX"],
        &["ZRANGE", "{z}lex", "a", "+", "BYLEX"],
        &["ZRANGE", "{z}lex", "", "+", "BYLEX"],
        &["ZRANGE", "{z}lex", "-x", "+", "BYLEX"],
        &["ZRANGE", "{z}lex", "-", "+", "BYLEX", "WITHSCORES"],
        // The older commands.
        &["ZREVRANGE", "{z}z", "0", "2"],
        &["ZREVRANGE", "{z}z", "0", "2", "WITHSCORES"],
        &["ZREVRANGE", "{z}z", "0", "2", "REV"],
        &["ZREVRANGE", "{z}z", "0", "2", "BYSCORE"],
        &["ZREVRANGE", "{z}z", "0", "2", "LIMIT", "0", "1"],
        &["ZRANGEBYSCORE", "{z}z", "2", "4"],
        &[
            "ZRANGEBYSCORE",
            "{z}z",
            "(1",
            "4",
            "WITHSCORES",
            "LIMIT",
            "1",
            "2",
        ],
        &["ZRANGEBYSCORE", "{z}z", "2", "4", "BYSCORE"],
        &["ZRANGEBYSCORE", "{z}z", "2", "4", "REV"],
        &["ZRANGEBYSCORE", "{z}z", "x", "4"],
        &["ZREVRANGEBYSCORE", "{z}z", "4", "2"],
        &[
            "ZREVRANGEBYSCORE",
            "{z}z",
            "+inf",
            "(2",
            "WITHSCORES",
            "LIMIT",
            "0",
            "2",
        ],
        &["ZREVRANGEBYSCORE", "{z}z", "2", "4"],
        &["ZRANGEBYLEX", "{z}lex", "[b", "[d"],
        &["ZRANGEBYLEX", "{z}lex", "-", "+", "LIMIT", "2", "2"],
        &["ZRANGEBYLEX", "{z}lex", "-", "+", "WITHSCORES"],
        &["ZRANGEBYLEX", "{z}lex", "b", "d"],
        &["ZREVRANGEBYLEX", "{z}lex", "[d", "[b"],
        &["ZREVRANGEBYLEX", "{z}lex", "+", "-", "LIMIT", "1", "1"],
        &["ZRANGEBYLEX", "{z}nokey", "-", "+"],
        &["ZRANGEBYLEX", "{z}str", "-", "+"],
        // Counts.
        &["ZCOUNT", "{z}z", "2", "4"],
        &["ZCOUNT", "{z}z", "(2", "(4"],
        &["ZCOUNT", "{z}z", "-inf", "+inf"],
        &["ZCOUNT", "{z}z", "4", "2"],
        &["ZCOUNT", "{z}z", "x", "2"],
        &["ZCOUNT", "{z}nokey", "0", "1"],
        &["ZCOUNT", "{z}str", "0", "1"],
        &["ZLEXCOUNT", "{z}lex", "-", "+"],
        &["ZLEXCOUNT", "{z}lex", "[b", "(d"],
        &["ZLEXCOUNT", "{z}lex", "(d", "[b"],
        &["ZLEXCOUNT", "{z}lex", "b", "d"],
        &["ZLEXCOUNT", "{z}nokey", "-", "+"],
        &["ZLEXCOUNT", "{z}str", "-", "+"],
        // ZRANGESTORE
        &["ZRANGESTORE", "{z}dst", "{z}z", "0", "2"],
        &["ZRANGE", "{z}dst", "0", "-1", "WITHSCORES"],
        &[
            "ZRANGESTORE",
            "{z}dst",
            "{z}z",
            "(2",
            "+inf",
            "BYSCORE",
            "LIMIT",
            "1",
            "2",
        ],
        &["ZRANGE", "{z}dst", "0", "-1", "WITHSCORES"],
        &[
            "ZRANGESTORE",
            "{z}dst",
            "{z}lex",
            "[b",
            "[d",
            "BYLEX",
            "REV",
        ],
        &["ZRANGE", "{z}dst", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "{z}dst", "{z}z", "0", "1", "WITHSCORES"],
        &["ZRANGESTORE", "{z}dst", "{z}z", "10", "20"],
        &["GET", "{z}dst"],
        &["SET", "{z}dst", "v"],
        &["ZRANGESTORE", "{z}dst", "{z}nokey", "0", "-1"],
        &["GET", "{z}dst"],
        &["ZRANGESTORE", "{z}dst", "{z}str", "0", "-1"],
    ];
    all_same(&mut pair, cmds);
}

#[test]
fn pops_removals_and_random_members_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let init: &[&str] = &[
        "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e", "6", "f", "7", "g",
    ];
    pair.same(init);
    pair.same(&["SET", "str", "x"]);
    all_same(
        &mut pair,
        &[
            &["ZPOPMIN", "z"],
            &["ZPOPMAX", "z"],
            &["ZPOPMIN", "z", "2"],
            &["ZPOPMAX", "z", "0"],
            &["ZPOPMIN", "z", "-1"],
            &["ZPOPMIN", "z", "x"],
            &["ZPOPMIN", "z", "1", "2"],
            &["ZPOPMIN", "nokey"],
            &["ZPOPMIN", "nokey", "0"],
            &["ZPOPMIN", "str"],
            &["ZPOPMAX", "z", "100"],
            &["GET", "z"],
            // ZMPOP
            &["ZADD", "{m}a", "1", "x", "2", "y", "3", "z"],
            &["ZMPOP", "2", "{m}none", "{m}a", "MIN"],
            &["ZMPOP", "2", "{m}none", "{m}a", "MAX", "COUNT", "5"],
            &["ZMPOP", "1", "{m}a", "MIN"],
            &["ZMPOP", "0", "{m}a", "MIN"],
            &["ZMPOP", "x", "{m}a", "MIN"],
            &["ZMPOP", "2", "{m}a", "{m}b"],
            &["ZMPOP", "1", "{m}a", "BOTH"],
            &["ZMPOP", "1", "{m}a", "MIN", "COUNT", "0"],
            &["ZMPOP", "1", "{m}a", "MIN", "COUNT", "-1"],
            &["ZMPOP", "1", "{m}a", "MIN", "COUNT", "1", "COUNT", "1"],
            &["ZMPOP", "1", "{m}a", "MIN", "COUNT"],
            &["SET", "{m}str", "x"],
            &["ZMPOP", "2", "{m}str", "{m}a", "MIN"],
            &["ZADD", "{m}b", "1", "x"],
            &["ZMPOP", "2", "{m}b", "{m}str", "MIN"],
        ],
    );
    pair.same(init);
    all_same(
        &mut pair,
        &[
            &["ZREMRANGEBYRANK", "z", "0", "1"],
            &["ZREMRANGEBYRANK", "z", "-2", "-1"],
            &["ZREMRANGEBYRANK", "z", "5", "1"],
            &["ZREMRANGEBYRANK", "z", "x", "1"],
            &["ZREMRANGEBYRANK", "nokey", "0", "1"],
            &["ZREMRANGEBYRANK", "str", "0", "1"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["ZREMRANGEBYSCORE", "z", "(3", "4"],
            &["ZREMRANGEBYSCORE", "z", "x", "4"],
            &["ZREMRANGEBYSCORE", "nokey", "0", "4"],
            &["ZREMRANGEBYSCORE", "str", "0", "4"],
            &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            &["ZREMRANGEBYSCORE", "z", "-inf", "+inf"],
            &["GET", "z"],
            &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
            &["ZREMRANGEBYLEX", "lex", "(a", "[c"],
            &["ZREMRANGEBYLEX", "lex", "a", "[c"],
            &["ZREMRANGEBYLEX", "str", "-", "+"],
            &["ZRANGE", "lex", "0", "-1"],
            &["ZREMRANGEBYLEX", "lex", "-", "+"],
            &["GET", "lex"],
        ],
    );
    pair.same(init);
    all_same(
        &mut pair,
        &[
            &["ZRANDMEMBER", "nokey"],
            &["ZRANDMEMBER", "nokey", "3"],
            &["ZRANDMEMBER", "nokey", "3", "WITHSCORES"],
            &["ZRANDMEMBER", "z", "0"],
            &["ZRANDMEMBER", "z", "7"],
            &["ZRANDMEMBER", "z", "100", "WITHSCORES"],
            &["ZRANDMEMBER", "z", "x"],
            &["ZRANDMEMBER", "z", "1", "FOO"],
            &["ZRANDMEMBER", "z", "1", "WITHSCORES", "x"],
            &["ZRANDMEMBER", "z", "-9223372036854775808"],
            &["ZRANDMEMBER", "z", "4611686018427387904", "WITHSCORES"],
            &["ZRANDMEMBER", "z", "-4611686018427387904", "WITHSCORES"],
            &["ZRANDMEMBER", "str"],
            &["ZRANDMEMBER", "str", "1"],
        ],
    );
    let members = ["a", "b", "c", "d", "e", "f", "g"];
    for count in ["1", "3", "6", "-3", "-20"] {
        for withscores in [false, true] {
            let mut args = vec!["ZRANDMEMBER", "z", count];
            if withscores {
                args.push("WITHSCORES");
            }
            let (ours, theirs) = pair.both(&args);
            let (ours, theirs) = (strings(&ours), strings(&theirs));
            assert_eq!(ours.len(), theirs.len(), "{args:?}");
            let step = if withscores { 2 } else { 1 };
            for pick in ours.chunks(step) {
                assert!(members.contains(&pick[0].as_str()), "{args:?}: {pick:?}");
                if withscores {
                    let rank = members.iter().position(|m| *m == pick[0]).unwrap_or(99);
                    assert_eq!(pick[1], (rank + 1).to_string());
                }
            }
        }
    }
}

#[test]
fn union_inter_diff_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    all_same(
        &mut pair,
        &[
            &["ZADD", "{u}a", "1", "x", "2", "y", "3", "z"],
            &["ZADD", "{u}b", "10", "y", "20", "z", "30", "w"],
            &["ZADD", "{u}inf", "inf", "x", "-inf", "y"],
            &["SADD", "{u}set", "x", "w", "v"],
            &["SET", "{u}str", "x"],
        ],
    );
    let mut cmds: Vec<Vec<&str>> = Vec::new();
    for cmd in ["ZUNION", "ZINTER"] {
        for tail in [
            &[][..],
            &["WITHSCORES"],
            &["WEIGHTS", "2", "0.5", "WITHSCORES"],
            &["AGGREGATE", "MIN", "WITHSCORES"],
            &["AGGREGATE", "max", "WITHSCORES"],
            &["WEIGHTS", "1", "-1", "AGGREGATE", "SUM", "WITHSCORES"],
            &["WEIGHTS", "1"],
            &["WEIGHTS", "1", "x"],
            &["AGGREGATE", "avg"],
            &["AGGREGATE"],
            &["WITHSCORES", "FOO"],
        ] {
            let mut args = vec![cmd, "2", "{u}a", "{u}b"];
            args.extend_from_slice(tail);
            cmds.push(args);
        }
        cmds.push(vec![cmd, "2", "{u}a", "{u}set", "WITHSCORES"]);
        cmds.push(vec![
            cmd,
            "3",
            "{u}a",
            "{u}b",
            "{u}set",
            "WEIGHTS",
            "1",
            "2",
            "3",
            "WITHSCORES",
        ]);
        cmds.push(vec![cmd, "2", "{u}a", "{u}inf", "WITHSCORES"]);
        cmds.push(vec![
            cmd,
            "2",
            "{u}inf",
            "{u}inf",
            "WEIGHTS",
            "1",
            "-1",
            "WITHSCORES",
        ]);
        cmds.push(vec![
            cmd,
            "2",
            "{u}inf",
            "{u}a",
            "WEIGHTS",
            "0",
            "1",
            "WITHSCORES",
        ]);
        cmds.push(vec![cmd, "2", "{u}a", "{u}a", "WITHSCORES"]);
        cmds.push(vec![cmd, "2", "{u}a", "{u}none", "WITHSCORES"]);
        cmds.push(vec![cmd, "1", "{u}none"]);
        cmds.push(vec![cmd, "2", "{u}a", "{u}str"]);
        cmds.push(vec![cmd, "2", "{u}str", "{u}a", "WEIGHTS", "x"]);
        cmds.push(vec![cmd, "0", "{u}a"]);
        cmds.push(vec![cmd, "-1", "{u}a"]);
        cmds.push(vec![cmd, "x", "{u}a"]);
        cmds.push(vec![cmd, "3", "{u}a", "{u}b"]);
    }
    for args in [
        &["ZDIFF", "2", "{u}a", "{u}b"][..],
        &["ZDIFF", "2", "{u}a", "{u}b", "WITHSCORES"],
        &["ZDIFF", "2", "{u}a", "{u}set", "WITHSCORES"],
        &["ZDIFF", "2", "{u}set", "{u}a", "WITHSCORES"],
        &["ZDIFF", "2", "{u}a", "{u}a"],
        &["ZDIFF", "2", "{u}none", "{u}a"],
        &["ZDIFF", "1", "{u}a", "WITHSCORES"],
        &["ZDIFF", "2", "{u}a", "{u}b", "WEIGHTS", "1", "2"],
        &["ZDIFF", "2", "{u}a", "{u}b", "AGGREGATE", "MIN"],
        &["ZDIFF", "2", "{u}a", "{u}str"],
        &["ZDIFF", "0", "{u}a"],
        // STORE forms.
        &[
            "ZUNIONSTORE",
            "{u}dst",
            "2",
            "{u}a",
            "{u}b",
            "WEIGHTS",
            "1",
            "2",
        ],
        &["ZRANGE", "{u}dst", "0", "-1", "WITHSCORES"],
        &[
            "ZINTERSTORE",
            "{u}dst",
            "2",
            "{u}a",
            "{u}b",
            "AGGREGATE",
            "MAX",
        ],
        &["ZRANGE", "{u}dst", "0", "-1", "WITHSCORES"],
        &["ZDIFFSTORE", "{u}dst", "2", "{u}a", "{u}b"],
        &["ZRANGE", "{u}dst", "0", "-1", "WITHSCORES"],
        &["ZUNIONSTORE", "{u}dst", "2", "{u}a", "{u}b", "WITHSCORES"],
        &["ZINTERSTORE", "{u}dst", "2", "{u}a", "{u}none"],
        &["GET", "{u}dst"],
        &["SET", "{u}dst", "v"],
        &["ZUNIONSTORE", "{u}dst", "1", "{u}set"],
        &["ZRANGE", "{u}dst", "0", "-1", "WITHSCORES"],
        &["ZDIFFSTORE", "{u}dst", "1", "{u}str"],
        &["ZUNIONSTORE", "{u}dst", "0", "{u}a"],
        // ZINTERCARD
        &["ZINTERCARD", "2", "{u}a", "{u}b"],
        &["ZINTERCARD", "2", "{u}a", "{u}b", "LIMIT", "1"],
        &["ZINTERCARD", "2", "{u}a", "{u}b", "LIMIT", "0"],
        &["ZINTERCARD", "2", "{u}a", "{u}b", "LIMIT", "-1"],
        &["ZINTERCARD", "2", "{u}a", "{u}b", "WITHSCORES"],
        &["ZINTERCARD", "2", "{u}a", "{u}b", "WEIGHTS", "1", "2"],
        &["ZINTERCARD", "2", "{u}a", "{u}set"],
        &["ZINTERCARD", "0", "{u}a"],
        &["ZINTERCARD", "3", "{u}a", "{u}b"],
        &["ZINTERCARD", "2", "{u}a", "{u}str"],
    ] {
        cmds.push(args.to_vec());
    }
    for args in &cmds {
        pair.same(args);
    }
}

#[test]
fn big_sorted_sets_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    // Enough members for many chunks, in a scrambled order, with ties.
    let mut batch = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..3000u32 {
        let n = (i * 7919) % 3000;
        batch.push((n / 3).to_string());
        batch.push(format!("m{n:05}"));
    }
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    pair.same(&batch);
    let cmds: &[&[&str]] = &[
        &["ZCARD", "big"],
        &["ZRANGE", "big", "1500", "1530", "WITHSCORES"],
        &["ZRANGE", "big", "-40", "-1"],
        &["ZRANGE", "big", "700", "720", "REV", "WITHSCORES"],
        &["ZRANGE", "big", "(100", "110", "BYSCORE", "WITHSCORES"],
        &[
            "ZRANGE", "big", "900", "(880", "BYSCORE", "REV", "LIMIT", "3", "10",
        ],
        &["ZCOUNT", "big", "250", "750"],
        &["ZRANK", "big", "m01234"],
        &["ZREVRANK", "big", "m01234"],
        &["ZREMRANGEBYRANK", "big", "1000", "1999"],
        &["ZREMRANGEBYSCORE", "big", "(100", "200"],
        &["ZRANGE", "big", "280", "320", "WITHSCORES"],
        &["ZPOPMIN", "big", "50"],
        &["ZPOPMAX", "big", "50"],
        &["ZRANK", "big", "m02999"],
        &["ZCARD", "big"],
    ];
    all_same(&mut pair, cmds);
    let ours = scan_all(&mut pair.ours, "ZSCAN", "big", &["MATCH", "m01*"]);
    let theirs = scan_all(&mut pair.theirs, "ZSCAN", "big", &["MATCH", "m01*"]);
    assert_eq!(ours, theirs);
}

#[test]
fn blocking_pops_wake_on_writes_and_time_out() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    // With data there, they answer at once, like ZPOP.
    all_same(
        &mut pair,
        &[
            &["ZADD", "{b}z", "1", "a", "2", "b", "3", "c"],
            &["BZPOPMIN", "{b}none", "{b}z", "0"],
            &["BZPOPMAX", "{b}z", "0"],
            &["BZMPOP", "0", "2", "{b}none", "{b}z", "MAX", "COUNT", "5"],
            &["BZPOPMIN", "{b}z", "-1"],
            &["BZPOPMIN", "{b}z", "abc"],
            &["BZPOPMIN", "{b}z", "inf"],
            &["BZPOPMIN", "{b}z", " 1"],
            &["BZMPOP", "x", "1", "{b}z", "MIN"],
            &["BZMPOP", "-1", "1", "{b}z", "MIN"],
            &["BZMPOP", "0", "0", "{b}z", "MIN"],
            &["BZMPOP", "0", "1", "{b}z", "UP"],
            &["SET", "{b}str", "x"],
            &["BZPOPMIN", "{b}str", "0"],
            &["BZMPOP", "0", "1", "{b}str", "MIN"],
        ],
    );
    // Timeouts: a null array after about the time asked.
    for cmd in [
        &["BZPOPMIN", "{b}none", "0.2"][..],
        &["BZPOPMAX", "{b}none", "{b}none2", "0.2"],
        &["BZMPOP", "0.2", "1", "{b}none", "MIN"],
    ] {
        let started = Instant::now();
        let (ours, theirs) = pair.both(cmd);
        assert_eq!(ours, theirs, "{cmd:?}");
        assert!(ours.is_nil(), "{cmd:?}: {ours:?}");
        assert!(started.elapsed() >= Duration::from_millis(300), "{cmd:?}");
    }
    // A ZADD from another client wakes the blocked one.
    for server in [&pair.builtin.server, &pair.redis.server] {
        let mut blocked = server.client();
        let mut writer = server.client();
        blocked.send_raw(&encode_command(&["BZPOPMIN", "{b}q1", "{b}q2", "5"]));
        blocked.send_raw(&encode_command(&["PING"]));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(writer.cmd(&["ZADD", "{b}q2", "7", "m"]).expect_int(), 1);
        let reply = blocked.read_reply();
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::bulk("{b}q2"),
                Reply::bulk("m"),
                Reply::bulk("7")
            ])),
            "{}",
            server.addr()
        );
        // The pipelined PING waited behind it.
        assert_eq!(blocked.read_reply().expect_str(), "PONG");
        assert!(writer.cmd(&["ZCARD", "{b}q2"]).expect_int() == 0);
        // BZMPOP too, with its nested reply.
        blocked.send_raw(&encode_command(&[
            "BZMPOP", "5", "1", "{b}q3", "MAX", "COUNT", "2",
        ]));
        std::thread::sleep(Duration::from_millis(100));
        writer.cmd(&["ZADD", "{b}q3", "1", "x", "2", "y", "3", "z"]);
        let reply = blocked.read_reply();
        let parts = reply.expect_array();
        assert_eq!(parts[0].expect_str(), "{b}q3");
        let pairs: Vec<Vec<String>> = parts[1].expect_array().iter().map(strings).collect();
        assert_eq!(pairs, [["z", "3"], ["y", "2"]], "{}", server.addr());
    }
}

#[test]
fn one_member_serves_one_of_two_blocked_clients() {
    let Some(bins) = require_redis() else { return };
    let pair = NodePair::start(&bins);
    for server in [&pair.builtin.server, &pair.redis.server] {
        let mut first = server.client();
        let mut second = server.client();
        let mut writer = server.client();
        first.send_raw(&encode_command(&["BZPOPMAX", "{c}k", "1"]));
        std::thread::sleep(Duration::from_millis(50));
        second.send_raw(&encode_command(&["BZPOPMAX", "{c}k", "1"]));
        std::thread::sleep(Duration::from_millis(100));
        writer.cmd(&["ZADD", "{c}k", "1", "only"]);
        // One is served; the other blocks again and times out. (Redis
        // serves the first to block; the node wakes both and the first to
        // run wins.)
        let started = Instant::now();
        let mut replies = [first.read_reply(), second.read_reply()];
        assert!(started.elapsed() < Duration::from_secs(3));
        replies.sort_by_key(Reply::is_nil);
        assert_eq!(
            strings(&replies[0]),
            ["{c}k", "only", "1"],
            "{}",
            server.addr()
        );
        assert!(replies[1].is_nil(), "{}", server.addr());
        assert!(writer.cmd(&["ZCARD", "{c}k"]).expect_int() == 0);
    }
}

#[test]
fn blocking_pops_inside_multi_and_on_retyped_keys_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    // Inside a transaction nothing blocks: a null array at once.
    all_same(
        &mut pair,
        &[
            &["MULTI"],
            &["BZPOPMIN", "{r}none", "0"],
            &["BZMPOP", "0", "1", "{r}none", "MIN"],
            &["ZADD", "{r}z", "1", "a"],
            &["BZPOPMAX", "{r}z", "0"],
            &["EXEC"],
        ],
    );
    // A key that becomes a string leaves the blocked client waiting (a
    // first run answers WRONGTYPE); it then times out.
    for server in [&pair.builtin.server, &pair.redis.server] {
        let mut blocked = server.client();
        let mut writer = server.client();
        blocked.send_raw(&encode_command(&["BZPOPMIN", "{r}k", "0.5"]));
        std::thread::sleep(Duration::from_millis(100));
        writer.cmd(&["SET", "{r}k", "x"]).expect_ok();
        assert!(blocked.read_reply().is_nil(), "{}", server.addr());
        assert!(blocked.cmd(&["BZPOPMIN", "{r}k", "0.5"]).is_error());
    }
}
