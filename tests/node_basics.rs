//! The built-in node as a server: PING, pipelines, protocol errors, and
//! replies equal to redis-server's for the basics.

mod common;
use common::*;

#[test]
fn basics_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same(&["PING"]);
    pair.same(&["PING", "hello"]);
    pair.same(&["ECHO", "x"]);
    pair.same(&["SET", "foo", "bar"]);
    pair.same(&["GET", "foo"]);
    pair.same(&["GET", "missing"]);
    pair.same(&["INCR", "n"]);
    pair.same(&["INCR", "foo"]);
    pair.same(&["NOSUCHCOMMAND", "a"]);
    pair.same(&["GET"]);
}

#[test]
fn a_protocol_error_closes_only_that_client() {
    let node = StandaloneNode::start(&[]);
    let mut bad = node.client();
    bad.send_raw(b"*1\r\n$x\r\n");
    let rest = String::from_utf8_lossy(&bad.read_raw_until_close()).into_owned();
    assert_eq!(rest, "-ERR Protocol error: invalid bulk length\r\n");
    let mut good = node.client();
    assert_eq!(good.cmd(&["PING"]).expect_str(), "PONG");
}

#[test]
fn keys_outside_the_nodes_slots_are_redirected() {
    let node = StandaloneNode::start(&[]);
    let mut c = node.client();
    c.cmd(&["CLUSTER", "ADDSLOTS", "0"]).expect_error();
    assert_eq!(c.cmd(&["CLUSTER", "KEYSLOT", "foo"]).expect_int(), 12182);
    let reply = c.cmd(&["MGET", "foo", "bar"]);
    assert_eq!(
        reply.expect_error(),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
}

#[test]
fn every_default_redis_benchmark_test_runs_against_a_node() {
    let Some(bins) = require_redis() else { return };
    let benchmark = bins.cli.with_file_name("redis-benchmark");
    assert!(
        benchmark.is_file(),
        "redis-benchmark next to {}",
        bins.cli.display()
    );
    let node = StandaloneNode::start(&[]);
    let output = std::process::Command::new(&benchmark)
        .args([
            "-p",
            &node.server.port().to_string(),
            "-n",
            "2000",
            "-c",
            "10",
            "-q",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.trim().is_empty(), "warnings or errors: {stderr}");
    // The default suite: PING_INLINE, PING_MBULK, SET, GET, INCR, LPUSH,
    // RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN, LPUSH (for
    // LRANGE), LRANGE_100/300/500/600, MSET.
    let done = stdout
        .lines()
        .filter(|l| l.contains("requests per second"))
        .count();
    assert_eq!(done, 20, "{stdout}");
    assert!(!stdout.to_ascii_lowercase().contains("error"), "{stdout}");
}
