//! List and hash commands of the built-in node against redis-server 7.0:
//! every command and error path gives the same reply, byte for byte (hash
//! listings compared as sets, since the field order differs), and the
//! blocking pops wake, time out and share data as Redis's do.
//!
//! Whether an emptied key was deleted is asked with a command of another
//! type (HLEN of a list key, LLEN of a hash key): 0 when it is gone,
//! WRONGTYPE if an empty collection had been kept.

mod common;
use common::*;

use std::thread::sleep;
use std::time::{Duration, Instant};

#[test]
fn list_commands_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same_all(&[
        // Pushes and their X forms.
        &["LPUSH", "l", "a", "b", "c"],
        &["RPUSH", "l", "d", "e"],
        &["LPUSHX", "l", "z"],
        &["RPUSHX", "l", "y"],
        &["LPUSHX", "nol", "z"],
        &["RPUSHX", "nol", "z"],
        &["HLEN", "nol"],
        &["LRANGE", "l", "0", "-1"],
        &["LLEN", "l"],
        &["LLEN", "nol"],
        &["RPUSH", "empty", ""],
        &["LRANGE", "empty", "0", "-1"],
        // LRANGE with every kind of index.
        &["LRANGE", "l", "1", "3"],
        &["LRANGE", "l", "-3", "-1"],
        &["LRANGE", "l", "-100", "100"],
        &["LRANGE", "l", "5", "2"],
        &["LRANGE", "l", "100", "200"],
        &["LRANGE", "l", "0", "-100"],
        &["LRANGE", "l", "-9223372036854775808", "9223372036854775807"],
        &["LRANGE", "l", "x", "1"],
        &["LRANGE", "nol", "x", "1"],
        &["LRANGE", "nol", "0", "-1"],
        // LINDEX.
        &["LINDEX", "l", "0"],
        &["LINDEX", "l", "-1"],
        &["LINDEX", "l", "-100"],
        &["LINDEX", "l", "100"],
        &["LINDEX", "l", "x"],
        &["LINDEX", "nol", "x"],
        &["LINDEX", "nol", "0"],
        // LSET.
        &["LSET", "l", "0", "first"],
        &["LSET", "l", "-1", "last"],
        &["LSET", "l", "100", "v"],
        &["LSET", "l", "-100", "v"],
        &["LSET", "l", "x", "v"],
        &["LSET", "nol", "0", "v"],
        &["LSET", "nol", "x", "v"],
        &["LRANGE", "l", "0", "-1"],
        // LINSERT.
        &["LINSERT", "l", "BEFORE", "c", "before-c"],
        &["LINSERT", "l", "after", "c", "after-c"],
        &["LINSERT", "l", "AFTER", "missing", "x"],
        &["LINSERT", "l", "MIDDLE", "c", "x"],
        &["LINSERT", "nol", "BEFORE", "c", "x"],
        &["LINSERT", "nol", "MIDDLE", "c", "x"],
        &["LRANGE", "l", "0", "-1"],
        // LREM from the head, the tail, everywhere.
        &["RPUSH", "r", "x", "a", "x", "b", "x", "c", "x"],
        &["LREM", "r", "2", "x"],
        &["LRANGE", "r", "0", "-1"],
        &["LREM", "r", "-1", "x"],
        &["LRANGE", "r", "0", "-1"],
        &["LREM", "r", "0", "x"],
        &["LRANGE", "r", "0", "-1"],
        &["LREM", "r", "0", "nothing"],
        &["LREM", "r", "x", "a"],
        &["LREM", "nol", "x", "a"],
        &["LREM", "nol", "1", "a"],
        &["LREM", "r", "0", "a"],
        &["LREM", "r", "0", "b"],
        &["LREM", "r", "0", "c"],
        &["HLEN", "r"],
        // LTRIM.
        &["RPUSH", "t", "0", "1", "2", "3", "4", "5"],
        &["LTRIM", "t", "1", "-2"],
        &["LRANGE", "t", "0", "-1"],
        &["LTRIM", "t", "-2", "100"],
        &["LRANGE", "t", "0", "-1"],
        &["LTRIM", "t", "x", "1"],
        &["LTRIM", "nol", "0", "1"],
        &["LTRIM", "nol", "x", "1"],
        &["LTRIM", "t", "5", "1"],
        &["HLEN", "t"],
        // LPOS with RANK, COUNT, MAXLEN.
        &["RPUSH", "p", "a", "b", "c", "a", "b", "a"],
        &["LPOS", "p", "a"],
        &["LPOS", "p", "b"],
        &["LPOS", "p", "zz"],
        &["LPOS", "p", "a", "RANK", "2"],
        &["LPOS", "p", "a", "RANK", "-1"],
        &["LPOS", "p", "a", "RANK", "-2"],
        &["LPOS", "p", "a", "RANK", "10"],
        &["LPOS", "p", "a", "COUNT", "0"],
        &["LPOS", "p", "a", "COUNT", "2"],
        &["LPOS", "p", "a", "COUNT", "0", "RANK", "-1"],
        &["LPOS", "p", "a", "COUNT", "0", "RANK", "2"],
        &["LPOS", "p", "a", "COUNT", "0", "MAXLEN", "4"],
        &["LPOS", "p", "a", "RANK", "-1", "MAXLEN", "2"],
        &["LPOS", "p", "a", "RANK", "-1", "MAXLEN", "1", "COUNT", "0"],
        &["LPOS", "p", "zz", "COUNT", "0"],
        &["LPOS", "p", "a", "RANK", "0"],
        &["LPOS", "p", "a", "RANK", "x"],
        &["LPOS", "p", "a", "RANK", "-9223372036854775808"],
        &[
            "LPOS",
            "p",
            "a",
            "RANK",
            "-9223372036854775808",
            "COUNT",
            "1",
        ],
        &["LPOS", "p", "a", "RANK", "9223372036854775807"],
        &[
            "LPOS",
            "p",
            "a",
            "RANK",
            "-9223372036854775807",
            "COUNT",
            "0",
        ],
        &["LPOS", "p", "a", "COUNT", "-1"],
        &["LPOS", "p", "a", "COUNT", "x"],
        &["LPOS", "p", "a", "MAXLEN", "-1"],
        &["LPOS", "p", "a", "MAXLEN", "x"],
        &["LPOS", "p", "a", "RANK"],
        &["LPOS", "p", "a", "BOGUS", "1"],
        &["LPOS", "nol", "a"],
        &["LPOS", "nol", "a", "COUNT", "1"],
        &["LPOS", "nol", "a", "RANK", "0"],
        // Pops, with and without a count.
        &["RPUSH", "q", "1", "2", "3", "4", "5"],
        &["LPOP", "q"],
        &["RPOP", "q"],
        &["LPOP", "q", "0"],
        &["LPOP", "q", "2"],
        &["RPOP", "q", "5"],
        &["HLEN", "q"],
        &["LPOP", "q"],
        &["LPOP", "q", "0"],
        &["LPOP", "q", "1"],
        &["RPOP", "q", "1"],
        &["LPOP", "q", "-1"],
        &["LPOP", "q", "x"],
        &["LPOP", "q", "1", "2"],
        &["RPOP", "q", "1", "2"],
        &["RPUSH", "q", "only"],
        &["RPOP", "q", "-1"],
        &["RPOP", "q", "1"],
        &["HLEN", "q"],
        // LMOVE and RPOPLPUSH, also onto the same list.
        &["RPUSH", "{m}src", "a", "b", "c"],
        &["LMOVE", "{m}src", "{m}dst", "LEFT", "RIGHT"],
        &["LMOVE", "{m}src", "{m}dst", "right", "left"],
        &["LMOVE", "{m}src", "{m}src", "LEFT", "RIGHT"],
        &["LRANGE", "{m}src", "0", "-1"],
        &["LRANGE", "{m}dst", "0", "-1"],
        &["RPOPLPUSH", "{m}src", "{m}dst"],
        &["HLEN", "{m}src"],
        &["RPOPLPUSH", "{m}src", "{m}dst"],
        &["LMOVE", "{m}src", "{m}dst", "LEFT", "RIGHT"],
        &["LMOVE", "{m}src", "{m}dst", "UP", "RIGHT"],
        &["LMOVE", "{m}dst", "{m}dst", "LEFT", "DOWN"],
        &["LRANGE", "{m}dst", "0", "-1"],
        &["RPUSH", "{m}one", "x"],
        &["LMOVE", "{m}one", "{m}one", "LEFT", "LEFT"],
        &["LRANGE", "{m}one", "0", "-1"],
        // LMPOP.
        &["RPUSH", "{mp}b", "1", "2", "3"],
        &["LMPOP", "2", "{mp}a", "{mp}b", "LEFT"],
        &["LMPOP", "2", "{mp}a", "{mp}b", "RIGHT", "COUNT", "10"],
        &["LMPOP", "2", "{mp}a", "{mp}b", "RIGHT"],
        &["HLEN", "{mp}b"],
        &["LMPOP", "1", "{mp}a", "left", "count", "1"],
        &["LMPOP", "0", "{mp}a", "LEFT"],
        &["LMPOP", "-1", "{mp}a", "LEFT"],
        &["LMPOP", "x", "{mp}a", "LEFT"],
        // (numkeys 2 here would take LEFT for a key: CROSSSLOT in a cluster.)
        &["LMPOP", "3", "{mp}a", "LEFT"],
        &["LMPOP", "1", "{mp}a", "MIDDLE"],
        &["LMPOP", "1", "{mp}a", "LEFT", "COUNT", "0"],
        &["LMPOP", "1", "{mp}a", "LEFT", "COUNT", "-1"],
        &["LMPOP", "1", "{mp}a", "LEFT", "COUNT", "x"],
        &["LMPOP", "1", "{mp}a", "LEFT", "COUNT", "1", "COUNT", "1"],
        &["LMPOP", "1", "{mp}a", "LEFT", "COUNT"],
        &["LMPOP", "1", "{mp}a", "LEFT", "EXTRA"],
        // Types: a string where a list is expected.
        &["SET", "s", "v"],
        &["LPUSH", "s", "a"],
        &["RPUSH", "s", "a"],
        &["LPUSHX", "s", "a"],
        &["LPOP", "s"],
        &["LPOP", "s", "1"],
        &["LLEN", "s"],
        &["LRANGE", "s", "0", "-1"],
        &["LINDEX", "s", "0"],
        &["LSET", "s", "0", "v"],
        &["LREM", "s", "0", "v"],
        &["LTRIM", "s", "0", "1"],
        &["LINSERT", "s", "BEFORE", "a", "b"],
        &["LPOS", "s", "a"],
        &["SET", "{m}str", "v"],
        &["LMOVE", "{m}str", "{m}dst", "LEFT", "LEFT"],
        &["LMOVE", "{m}dst", "{m}str", "LEFT", "LEFT"],
        &["LMOVE", "{m}nothing", "{m}str", "LEFT", "LEFT"],
        &["LRANGE", "{m}dst", "0", "-1"],
        &["RPUSH", "{mp}c", "1"],
        &["SET", "{mp}s", "v"],
        &["LMPOP", "3", "{mp}a", "{mp}s", "{mp}c", "LEFT"],
        &["LMPOP", "3", "{mp}a", "{mp}c", "{mp}s", "LEFT"],
        // Arity, from the command table.
        &["LPUSH", "l"],
        &["LRANGE", "l", "0"],
        &["LMOVE", "a", "b", "LEFT"],
        &["LMPOP", "1"],
    ]);
}

#[test]
fn blocking_commands_serve_at_once_like_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same_all(&[
        // Data present: served at once, first non-empty key in order.
        &["RPUSH", "{b}two", "x", "y"],
        &["BLPOP", "{b}one", "{b}two", "0"],
        &["BRPOP", "{b}one", "{b}two", "0"],
        &["HLEN", "{b}two"],
        &["RPUSH", "{b}two", "1", "2", "3"],
        &["BLMPOP", "0", "2", "{b}one", "{b}two", "LEFT", "COUNT", "2"],
        &["BLMPOP", "0", "2", "{b}one", "{b}two", "RIGHT"],
        &["RPUSH", "{b}two", "m", "n"],
        &["BLMOVE", "{b}two", "{b}one", "LEFT", "RIGHT", "0"],
        &["BRPOPLPUSH", "{b}two", "{b}one", "0"],
        &["LRANGE", "{b}one", "0", "-1"],
        // A wrong type before any data answers WRONGTYPE; after, data.
        &["SET", "{b}s", "v"],
        &["BLPOP", "{b}s", "0.01"],
        &["BLPOP", "{b}none", "{b}s", "{b}one", "0.01"],
        &["BLPOP", "{b}one", "{b}s", "0.01"],
        &["RPUSH", "{b}one", "a"],
        &["BLMOVE", "{b}one", "{b}s", "LEFT", "LEFT", "0.01"],
        &["BLMOVE", "{b}s", "{b}one", "LEFT", "LEFT", "0.01"],
        &["BLMPOP", "0.01", "2", "{b}s", "{b}one", "LEFT"],
        // Short timeouts on empty keys: a null array.
        &["BLPOP", "{b}none", "0.01"],
        &["BRPOP", "{b}none", "{b}none2", "0.01"],
        &["BLMOVE", "{b}none", "{b}one", "LEFT", "LEFT", "0.01"],
        &["BRPOPLPUSH", "{b}none", "{b}one", "0.01"],
        &["BLMPOP", "0.01", "1", "{b}none", "LEFT"],
        // Timeout errors, and option errors checked before them.
        &["BLPOP", "{b}none", "-1"],
        &["BLPOP", "{b}none", "x"],
        &["BLPOP", "{b}none", ""],
        &["BLPOP", "{b}none", " 1"],
        &["BLPOP", "{b}none", "nan"],
        &["BLPOP", "{b}none", "inf"],
        &["BLPOP", "{b}none", "1e16"],
        &["BLPOP", "{b}none", "1e5000"],
        &["BLPOP", "{b}none", "0x7FFFFFFFFFFFFF"],
        &["BLPOP", "{b}none", "0x10p-10"],
        &["BLPOP", "{b}none", "1e-400"],
        &["BLPOP", "{b}none", "9223372036854775.808"],
        &["BLPOP", "{b}none", "1e4932"],
        &["BLPOP", "{b}none", "0x1p-11"],
        &["BLPOP", "{b}s", "x"],
        &["BRPOP", "{b}none", "-0.5"],
        &["BLMOVE", "{b}none", "{b}one", "LEFT", "UP", "-1"],
        &["BLMOVE", "{b}none", "{b}one", "LEFT", "RIGHT", "-1"],
        &["BRPOPLPUSH", "{b}none", "{b}one", "x"],
        &["BLMPOP", "-1", "1", "{b}none", "LEFT"],
        &["BLMPOP", "x", "1", "{b}none", "LEFT"],
        &["BLMPOP", "x", "0", "{b}none", "LEFT"],
        &["BLMPOP", "x", "1", "{b}none", "UP"],
        &["BLMPOP", "x", "1", "{b}none", "LEFT", "COUNT", "0"],
        &["BLMPOP", "0.01", "1", "{b}none", "LEFT", "COUNT", "0"],
        &["BLPOP", "{b}none"],
    ]);
}

#[test]
fn hash_commands_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same_all(&[
        &["HSET", "h", "f1", "v1"],
        &["HSET", "h", "f1", "v1b", "f2", "v2", "f3", ""],
        &["HSET", "h", "f1", "v1", "f2"],
        &["HMSET", "h", "f4", "v4", "f5", "v5"],
        &["HMSET", "h", "f4", "v4", "f5"],
        &["HSETNX", "h", "f1", "x"],
        &["HSETNX", "h", "f6", "v6"],
        &["HGET", "h", "f1"],
        &["HGET", "h", "f3"],
        &["HGET", "h", "nofield"],
        &["HGET", "noh", "f1"],
        &["HMGET", "h", "f1", "nofield", "f2"],
        &["HMGET", "noh", "a", "b"],
        &["HLEN", "h"],
        &["HLEN", "noh"],
        &["HEXISTS", "h", "f1"],
        &["HEXISTS", "h", "nofield"],
        &["HEXISTS", "noh", "f1"],
        &["HSTRLEN", "h", "f1"],
        &["HSTRLEN", "h", "f3"],
        &["HSTRLEN", "h", "nofield"],
        &["HSTRLEN", "noh", "f"],
        &["HDEL", "h", "f1", "f1", "nofield"],
        &["HDEL", "noh", "f1"],
        &["HGETALL", "noh"],
        &["HKEYS", "noh"],
        &["HVALS", "noh"],
        // HINCRBY.
        &["HINCRBY", "n", "i", "5"],
        &["HINCRBY", "n", "i", "-7"],
        &["HINCRBY", "n", "i", "x"],
        &[
            "HSET",
            "n",
            "s",
            "abc",
            "big",
            "9223372036854775807",
            "sp",
            " 1",
        ],
        &["HINCRBY", "n", "s", "1"],
        &["HINCRBY", "n", "sp", "1"],
        &["HINCRBY", "n", "big", "1"],
        &["HINCRBY", "n", "big", "0"],
        &["HINCRBY", "n", "i", "9223372036854775808"],
        &["HINCRBY", "newh", "f", "x"],
        &["LLEN", "newh"],
        // HINCRBYFLOAT, printed as Redis prints a long double.
        &["HINCRBYFLOAT", "n", "fl", "10.5"],
        &["HINCRBYFLOAT", "n", "fl", "0.1"],
        &["HINCRBYFLOAT", "n", "fl", "-10.6"],
        &["HINCRBYFLOAT", "n", "a", "0.1"],
        &["HINCRBYFLOAT", "n", "a", "0.2"],
        &["HINCRBYFLOAT", "n", "b", "100000.1"],
        &["HINCRBYFLOAT", "n", "b", "0.2"],
        &["HINCRBYFLOAT", "n", "c", "3.0e3"],
        &["HINCRBYFLOAT", "n", "c", "1e20"],
        &["HINCRBYFLOAT", "n", "d", "1.23456789012345678901"],
        &["HINCRBYFLOAT", "n", "e", "5e-20"],
        &["HINCRBYFLOAT", "n", "e", "-0.0"],
        &["HINCRBYFLOAT", "n", "g", "1e308"],
        &["HINCRBYFLOAT", "n", "g", "1e308"],
        &["HINCRBYFLOAT", "n", "i", "1.5"],
        &["HINCRBYFLOAT", "n", "big", "1"],
        &["HINCRBYFLOAT", "n", "x", "0x10"],
        &["HINCRBYFLOAT", "n", "x", "inf"],
        &["HINCRBYFLOAT", "n", "x", "-inf"],
        &["HINCRBYFLOAT", "n", "x", "nan"],
        &["HINCRBYFLOAT", "n", "x", "abc"],
        &["HINCRBYFLOAT", "n", "x", " 1"],
        &["HINCRBYFLOAT", "n", "x", "1e5000"],
        &["HINCRBYFLOAT", "n", "s", "1"],
        &["HINCRBYFLOAT", "n", "sp", "1"],
        &["HINCRBYFLOAT", "n", "m", "1000"],
        &["HINCRBYFLOAT", "n", "m", "0.1"],
        &["HINCRBYFLOAT", "n", "m", "0x1p-18"],
        &["HINCRBYFLOAT", "n", "k", "1e30"],
        &["HINCRBYFLOAT", "n", "k", "-1e-30"],
        &["HINCRBYFLOAT", "n", "t", "1e-4950"],
        &["HINCRBYFLOAT", "n", "t", "1e-5000"],
        &["HINCRBYFLOAT", "n", "u", "1e4932"],
        &["HINCRBYFLOAT", "n", "u", "1e4932"],
        &["HSET", "n", "inf", "inf"],
        &["HINCRBYFLOAT", "n", "inf", "1"],
        &["HGET", "n", "fl"],
        &["HGET", "n", "i"],
        // HRANDFIELD: the deterministic answers.
        &["HRANDFIELD", "noh"],
        &["HRANDFIELD", "noh", "5"],
        &["HRANDFIELD", "noh", "-5", "WITHVALUES"],
        &["HRANDFIELD", "h", "0"],
        &["HRANDFIELD", "h", "0", "WITHVALUES"],
        &["HRANDFIELD", "h", "x"],
        &["HRANDFIELD", "noh", "x"],
        &["HRANDFIELD", "h", "1", "BOGUS"],
        &["HRANDFIELD", "h", "1", "WITHVALUES", "x"],
        &["HRANDFIELD", "h", "-9223372036854775808"],
        &["HRANDFIELD", "h", "-9223372036854775807", "WITHVALUES"],
        &["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"],
        // HSCAN: argument errors (a missing key answers before the
        // options are read).
        &["HSCAN", "h", "x"],
        &["HSCAN", "h", " 0"],
        &["HSCAN", "h", "18446744073709551616"],
        &["HSCAN", "noh", "0"],
        &["HSCAN", "noh", "0", "BOGUS"],
        &["HSCAN", "h", "0", "COUNT", "0"],
        &["HSCAN", "h", "0", "COUNT", "x"],
        &["HSCAN", "h", "0", "MATCH"],
        &["HSCAN", "h", "0", "TYPE", "string"],
        // Wrong types.
        &["SET", "s", "v"],
        &["HSET", "s", "f", "v"],
        &["HMSET", "s", "f", "v"],
        &["HSETNX", "s", "f", "v"],
        &["HGET", "s", "f"],
        &["HMGET", "s", "f"],
        &["HGETALL", "s"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HDEL", "s", "f"],
        &["HLEN", "s"],
        &["HEXISTS", "s", "f"],
        &["HSTRLEN", "s", "f"],
        &["HINCRBY", "s", "f", "1"],
        &["HINCRBY", "s", "f", "x"],
        &["HINCRBYFLOAT", "s", "f", "1"],
        &["HRANDFIELD", "s"],
        &["HRANDFIELD", "s", "1"],
        &["HSCAN", "s", "0"],
        &["HSCAN", "s", "x"],
        // Deleting the last field deletes the key.
        &["HSET", "d", "a", "1", "b", "2"],
        &["HDEL", "d", "a", "b"],
        &["LLEN", "d"],
        &["HSET", "h"],
        &["HGET", "h"],
    ]);
}

/// The elements of an array reply, sorted, so orders can differ.
fn sorted(reply: &Reply) -> Vec<Reply> {
    let mut items = reply.expect_array().to_vec();
    items.sort_by_key(|r| format!("{r:?}"));
    items
}

/// A flat field/value array as sorted pairs.
fn sorted_pairs(items: &[Reply]) -> Vec<(Reply, Reply)> {
    let mut pairs: Vec<_> = items
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    pairs.sort_by_key(|p| format!("{p:?}"));
    pairs
}

#[test]
fn hash_listings_match_redis_server_as_sets() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let mut fields = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..50 {
        fields.push(format!("field:{i}"));
        fields.push(format!("value-{i}"));
    }
    fields.extend(["other".into(), "x".into(), "f[1]".into(), "y".into()]);
    // An empty field: only a lone `*` (no filter at all) lists it.
    fields.extend([String::new(), "empty".into()]);
    let args: Vec<&str> = fields.iter().map(String::as_str).collect();
    pair.same(&args);

    let (ours, theirs) = pair.both(&["HGETALL", "h"]);
    assert_eq!(
        sorted_pairs(ours.expect_array()),
        sorted_pairs(theirs.expect_array())
    );
    for cmd in ["HKEYS", "HVALS"] {
        let (ours, theirs) = pair.both(&[cmd, "h"]);
        assert_eq!(sorted(&ours), sorted(&theirs), "{cmd}");
    }
    // HSCAN: walk every step; the union (and MATCH's filter) must agree.
    for extra in [
        &[][..],
        &["MATCH", "field:1*"][..],
        &["MATCH", "*"][..],
        &["MATCH", "**"][..],
        &["MATCH", "[fo"][..],
        &["MATCH", "f\\[1]"][..],
        &["MATCH", "[fo]*[0-2]", "COUNT", "1000"][..],
        &["COUNT", "3"][..],
    ] {
        let mut seen = Vec::new();
        for client in [&mut pair.ours, &mut pair.theirs] {
            let mut all = Vec::new();
            let mut cursor = "0".to_string();
            for _ in 0..1000 {
                let mut cmd = vec!["HSCAN", "h", cursor.as_str()];
                cmd.extend_from_slice(extra);
                let reply = client.cmd(&cmd);
                let parts = reply.expect_array();
                all.extend_from_slice(parts[1].expect_array());
                cursor = parts[0].expect_str().to_string();
                if cursor == "0" {
                    break;
                }
            }
            let mut pairs = sorted_pairs(&all);
            pairs.dedup();
            seen.push(pairs);
        }
        assert_eq!(seen[0], seen[1], "HSCAN {extra:?}");
    }
}

#[test]
fn hrandfield_picks_like_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    let all = sorted(&pair.ours.cmd(&["HKEYS", "h"]));
    for client in [&mut pair.ours, &mut pair.theirs] {
        let one = client.cmd(&["HRANDFIELD", "h"]);
        assert!(all.contains(&one), "{one:?}");
        // A count at least the size: every field once.
        assert_eq!(sorted(&client.cmd(&["HRANDFIELD", "h", "10"])), all);
        // A smaller positive count: distinct fields.
        let two = sorted(&client.cmd(&["HRANDFIELD", "h", "2"]));
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1]);
        assert!(two.iter().all(|f| all.contains(f)));
        // A negative count: that many, repeats allowed.
        let many = client.cmd(&["HRANDFIELD", "h", "-20"]);
        assert_eq!(many.expect_array().len(), 20);
        assert!(many.expect_array().iter().all(|f| all.contains(f)));
        // WITHVALUES: field/value pairs that belong to the hash.
        let with = client.cmd(&["HRANDFIELD", "h", "-6", "WITHVALUES"]);
        let items = with.expect_array();
        assert_eq!(items.len(), 12);
        for pair in items.chunks(2) {
            let value = client.cmd_bytes(&[
                b"HGET".as_slice(),
                b"h",
                pair[0].as_bulk().expect("a field"),
            ]);
            assert_eq!(value, pair[1]);
        }
        let with = client.cmd(&["HRANDFIELD", "h", "2", "WITHVALUES"]);
        assert_eq!(with.expect_array().len(), 4);
    }
}

// ---- blocking behaviour ----------------------------------------------------

/// A bound on every wait for a reply that must come.
const REPLY_WAIT: Duration = Duration::from_secs(5);
/// How long a client is given to reach the server and block.
const SETTLE: Duration = Duration::from_millis(150);

fn array(items: &[&str]) -> Reply {
    Reply::Array(Some(items.iter().map(Reply::bulk).collect()))
}

/// The servers the blocking scenarios run against: the built-in node and,
/// to check the scenario itself, redis-server.
fn servers(bins: &RedisBins) -> (StandaloneNode, PlainRedis) {
    (StandaloneNode::start(&[]), PlainRedis::start(bins))
}

fn each_server(bins: &RedisBins, scenario: impl Fn(&str, &dyn Fn() -> TestClient)) {
    let (node, redis) = servers(bins);
    let node_addr = node.server.addr();
    let redis_addr = redis.server.addr();
    for (name, addr) in [("built-in node", node_addr), ("redis-server", redis_addr)] {
        let connect = || {
            let mut c = TestClient::connect(&addr);
            c.set_timeout(REPLY_WAIT);
            c
        };
        scenario(name, &connect);
    }
}

fn send(client: &mut TestClient, args: &[&str]) {
    client.send_raw(&encode_command(args));
}

#[test]
fn a_push_wakes_a_blocked_pop() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut waiter = connect();
        let mut pusher = connect();
        send(&mut waiter, &["BLPOP", "{k}1", "{k}2", "0"]);
        sleep(SETTLE);
        assert_eq!(pusher.cmd(&["RPUSH", "{k}2", "v", "w"]), Reply::Int(2));
        assert_eq!(waiter.read_reply(), array(&["{k}2", "v"]), "{name}");
        assert_eq!(
            pusher.cmd(&["LRANGE", "{k}2", "0", "-1"]),
            array(&["w"]),
            "{name}"
        );
        // The connection goes on normally afterwards.
        assert_eq!(waiter.cmd(&["PING"]), Reply::Simple("PONG".into()));
    });
}

#[test]
fn a_blocked_pop_times_out_with_a_null_array() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut waiter = connect();
        let started = Instant::now();
        assert_eq!(
            waiter.cmd(&["BLPOP", "nothing", "0.2"]),
            Reply::Array(None),
            "{name}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{name}: {waited:?}"
        );
        let started = Instant::now();
        assert_eq!(
            waiter.cmd(&["BLMOVE", "{n}a", "{n}b", "LEFT", "LEFT", "0.2"]),
            Reply::Array(None),
            "{name}"
        );
        assert!(started.elapsed() >= Duration::from_millis(190), "{name}");
        assert_eq!(
            waiter.cmd(&["BLMPOP", "0.1", "1", "nothing", "LEFT"]),
            Reply::Array(None),
            "{name}"
        );
    });
}

#[test]
fn writes_that_bring_no_data_do_not_extend_the_timeout() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut waiter = connect();
        let mut writer = connect();
        let started = Instant::now();
        send(&mut waiter, &["BLPOP", "k", "0.6"]);
        // LPUSHX on a missing key is a write of that key that adds nothing:
        // the waiter may wake and look, but its deadline stays.
        while started.elapsed() < Duration::from_millis(1200) {
            assert_eq!(writer.cmd(&["LPUSHX", "k", "v"]), Reply::Int(0));
            sleep(Duration::from_millis(50));
        }
        let reply = waiter.read_reply();
        assert_eq!(reply, Reply::Array(None), "{name}");
        // The reply was there long before the writes stopped.
        let early = waiter.read_raw_for(Duration::from_millis(10));
        assert!(early.is_empty(), "{name}");
    });
    // The timing itself, without a second client in the way.
    let node = StandaloneNode::start(&[]);
    let mut waiter = node.client();
    let mut writer = node.client();
    let started = Instant::now();
    send(&mut waiter, &["BLPOP", "k", "0.6"]);
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(3) {
        writer.cmd(&["LPUSHX", "k", "v"]);
        let got = waiter.read_raw_for(Duration::from_millis(50));
        if !got.is_empty() {
            answered = Some((started.elapsed(), got));
            break;
        }
    }
    let (when, got) = answered.expect("BLPOP timed out");
    assert_eq!(got, b"*-1\r\n");
    assert!(
        when >= Duration::from_millis(590) && when < Duration::from_millis(1100),
        "answered after {when:?}"
    );
}

#[test]
fn one_push_serves_exactly_one_of_two_blocked_clients() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut first = connect();
        let mut second = connect();
        let mut pusher = connect();
        send(&mut first, &["BLPOP", "shared", "0"]);
        send(&mut second, &["BLPOP", "shared", "0"]);
        sleep(SETTLE);
        pusher.cmd(&["RPUSH", "shared", "one"]);
        sleep(SETTLE);
        let a = first.read_raw_for(Duration::from_millis(300));
        let b = second.read_raw_for(Duration::from_millis(300));
        let served = b"*2\r\n$6\r\nshared\r\n$3\r\none\r\n".to_vec();
        let (winner, loser) = match (a.is_empty(), b.is_empty()) {
            (false, true) => (a, &mut second),
            (true, false) => (b, &mut first),
            _ => panic!("{name}: exactly one must be served: {a:?} {b:?}"),
        };
        assert_eq!(winner, served, "{name}");
        // The other one is still waiting, and takes the next push.
        pusher.cmd(&["RPUSH", "shared", "two"]);
        assert_eq!(loser.read_reply(), array(&["shared", "two"]), "{name}");
        assert_eq!(pusher.cmd(&["LLEN", "shared"]), Reply::Int(0));
    });
}

#[test]
fn a_blocked_client_that_leaves_takes_nothing() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut gone = connect();
        send(&mut gone, &["BLPOP", "left", "0"]);
        sleep(SETTLE);
        drop(gone);
        sleep(SETTLE);
        let mut pusher = connect();
        pusher.cmd(&["RPUSH", "left", "kept"]);
        sleep(SETTLE);
        assert_eq!(
            pusher.cmd(&["LRANGE", "left", "0", "-1"]),
            array(&["kept"]),
            "{name}"
        );
    });
}

#[test]
fn moves_and_multi_pops_wake_blocked_clients() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut pusher = connect();
        // BLMOVE is woken by a push to its source.
        let mut mover = connect();
        send(
            &mut mover,
            &["BLMOVE", "{t}src", "{t}dst", "LEFT", "RIGHT", "0"],
        );
        sleep(SETTLE);
        pusher.cmd(&["RPUSH", "{t}src", "a", "b"]);
        assert_eq!(mover.read_reply(), Reply::bulk("a"), "{name}");
        assert_eq!(
            pusher.cmd(&["LRANGE", "{t}dst", "0", "-1"]),
            array(&["a"]),
            "{name}"
        );
        // BRPOPLPUSH likewise.
        let mut mover = connect();
        send(&mut mover, &["BRPOPLPUSH", "{t}src2", "{t}dst", "0"]);
        sleep(SETTLE);
        pusher.cmd(&["RPUSH", "{t}src2", "c"]);
        assert_eq!(mover.read_reply(), Reply::bulk("c"), "{name}");
        // BLMPOP takes up to COUNT from the list that got data.
        let mut popper = connect();
        send(
            &mut popper,
            &["BLMPOP", "0", "2", "{t}x", "{t}y", "LEFT", "COUNT", "2"],
        );
        sleep(SETTLE);
        pusher.cmd(&["RPUSH", "{t}y", "1", "2", "3"]);
        assert_eq!(
            popper.read_reply(),
            Reply::Array(Some(vec![Reply::bulk("{t}y"), array(&["1", "2"])])),
            "{name}"
        );
        // An LMOVE into a list a client waits on wakes it.
        let mut waiter = connect();
        send(&mut waiter, &["BRPOP", "{t}target", "0"]);
        sleep(SETTLE);
        pusher.cmd(&["LMOVE", "{t}y", "{t}target", "LEFT", "LEFT"]);
        assert_eq!(waiter.read_reply(), array(&["{t}target", "3"]), "{name}");
    });
}

#[test]
fn commands_sent_while_blocked_run_after_the_blocked_one() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut waiter = connect();
        let mut pusher = connect();
        // One write: the blocking pop and a PING behind it.
        let mut bytes = encode_command(&["BLPOP", "queue", "0"]);
        bytes.extend_from_slice(&encode_command(&["PING"]));
        waiter.send_raw(&bytes);
        sleep(SETTLE);
        // And more commands while it waits.
        send(&mut waiter, &["ECHO", "later"]);
        sleep(SETTLE);
        assert!(
            waiter.read_raw_for(Duration::from_millis(50)).is_empty(),
            "{name}: nothing may be answered before the pop"
        );
        pusher.cmd(&["RPUSH", "queue", "job"]);
        assert_eq!(waiter.read_reply(), array(&["queue", "job"]), "{name}");
        assert_eq!(waiter.read_reply(), Reply::Simple("PONG".into()), "{name}");
        assert_eq!(waiter.read_reply(), Reply::bulk("later"), "{name}");
    });
}

#[test]
fn a_key_that_turns_into_another_type_leaves_the_client_waiting() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut waiter = connect();
        let mut writer = connect();
        let started = Instant::now();
        send(&mut waiter, &["BLPOP", "{w}k", "0.5"]);
        sleep(SETTLE);
        writer.cmd(&["SET", "{w}k", "string"]).expect_ok();
        assert_eq!(waiter.read_reply(), Reply::Array(None), "{name}");
        assert!(started.elapsed() >= Duration::from_millis(490), "{name}");
        // A blocked BLMOVE whose destination turned into a string answers
        // WRONGTYPE once its source gets data, and moves nothing.
        writer.cmd(&["SET", "{w}dst", "string"]).expect_ok();
        send(
            &mut waiter,
            &["BLMOVE", "{w}src", "{w}dst", "LEFT", "LEFT", "0"],
        );
        sleep(SETTLE);
        writer.cmd(&["RPUSH", "{w}src", "v"]);
        assert_eq!(
            waiter.read_reply().expect_error(),
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "{name}"
        );
        assert_eq!(
            writer.cmd(&["LRANGE", "{w}src", "0", "-1"]),
            array(&["v"]),
            "{name}"
        );
    });
}

#[test]
fn timeouts_rounding_to_zero_or_beyond_any_clock_wait_for_data() {
    let Some(bins) = require_redis() else { return };
    each_server(&bins, |name, connect| {
        let mut pusher = connect();
        // Milliseconds round up: a tiny negative timeout becomes 0, which
        // means for ever, and the largest one that fits never ends.
        for timeout in ["-0.0001", "-1e-400", "-0x1p-11", "9223372036854775.807"] {
            let mut waiter = connect();
            send(&mut waiter, &["BLPOP", "{t}k", timeout]);
            sleep(SETTLE);
            assert_eq!(pusher.cmd(&["RPUSH", "{t}k", "v"]), Reply::Int(1));
            assert_eq!(
                waiter.read_reply(),
                array(&["{t}k", "v"]),
                "{name}: {timeout}"
            );
        }
    });
}
