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
