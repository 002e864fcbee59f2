//! RESP3 through the proxy: a client that says `HELLO 3` gets the same
//! bytes a redis-server 7 sends its own RESP3 clients (maps, sets, doubles,
//! nulls, verbatim strings, pushes), although the proxy speaks RESP2 to the
//! cluster. Each reply is compared byte for byte with a plain redis-server
//! given the same commands.

mod common;

use std::time::Duration;

use common::*;

/// A plain redis-server and the proxy, both on RESP3, given the same
/// commands.
struct SideBySide {
    reference: TestClient,
    proxied: TestClient,
}

impl SideBySide {
    /// Sends `args` to both and asserts the raw replies are equal; returns
    /// the proxy's.
    #[track_caller]
    fn same(&mut self, args: &[&str]) -> Vec<u8> {
        let want = self.reference.cmd_raw(args);
        let got = self.proxied.cmd_raw(args);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{args:?}: proxy (left) and redis-server (right) differ"
        );
        got
    }

    fn both(&mut self, args: &[&str]) {
        self.reference.cmd_raw(args);
        self.proxied.cmd_raw(args);
    }
}

fn start(backend: Backend) -> Option<(RedisCluster, Proxy, PlainRedis, SideBySide)> {
    let bins = require_redis()?;
    let (cluster, proxy) = cluster_with_proxy(backend, 0, ProxyOptions::default())?;
    let plain = PlainRedis::start(&bins);
    let mut pair = SideBySide {
        reference: plain.server.client(),
        proxied: proxy.client(),
    };
    for client in [&mut pair.reference, &mut pair.proxied] {
        let hello = client.cmd_raw(&["HELLO", "3"]);
        assert!(
            hello.starts_with(b"%7\r\n"),
            "{:?}",
            String::from_utf8_lossy(&hello)
        );
        let text = String::from_utf8_lossy(&hello).into_owned();
        assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    }
    Some((cluster, proxy, plain, pair))
}

/// The families every backend serves.
fn typed_replies_match_redis_server(backend: Backend) {
    let Some((_cluster, _proxy, _plain, mut p)) = start(backend) else {
        return;
    };
    for setup in [
        &["SET", "{t}s", "hello"][..],
        &["HSET", "{t}h", "f", "v"],
        &["SADD", "{t}set", "a"],
        &["SADD", "{t}set2", "a"],
        &["ZADD", "{t}z", "1.5", "a", "2", "b"],
        &["ZADD", "{t}z2", "3", "a"],
        &["ZADD", "{t}z3", "1", "a", "2", "b"],
        &["RPUSH", "{t}l", "x", "y"],
    ] {
        p.same(setup);
    }
    for cmd in [
        &["PING"][..],
        &["GET", "{t}s"],
        &["GET", "{t}missing"],
        &["HGETALL", "{t}h"],
        &["HGETALL", "{t}missing"],
        &["SMEMBERS", "{t}set"],
        &["SINTER", "{t}set", "{t}set2"],
        &["SUNION", "{t}set", "{t}set2"],
        &["SDIFF", "{t}set", "{t}set2"],
        &["ZSCORE", "{t}z", "a"],
        &["ZSCORE", "{t}z", "nope"],
        &["ZMSCORE", "{t}z", "a", "nope"],
        &["ZRANGE", "{t}z", "0", "-1", "WITHSCORES"],
        &["ZRANGE", "{t}z", "0", "-1"],
        &["ZREVRANGE", "{t}z", "0", "-1", "WITHSCORES"],
        &["ZRANGEBYSCORE", "{t}z", "-inf", "+inf", "WITHSCORES"],
        &["ZUNION", "2", "{t}z", "{t}z2", "WITHSCORES"],
        &["ZINCRBY", "{t}z", "1", "b"],
        &["ZADD", "{t}z", "INCR", "1", "a"],
        &["ZADD", "{t}z", "XX", "INCR", "1", "nope"],
        &["ZRANDMEMBER", "{t}z2", "1", "WITHSCORES"],
        &["HRANDFIELD", "{t}h", "1", "WITHVALUES"],
        &["ZPOPMIN", "{t}z"],
        &["ZPOPMAX", "{t}z", "5"],
        &["ZMPOP", "1", "{t}z3", "MIN", "COUNT", "2"],
        &["BZPOPMIN", "{t}z2", "1"],
        &["BZPOPMIN", "{t}empty", "0.01"],
        &["SPOP", "{t}set", "5"],
        &["LRANGE", "{t}l", "0", "-1"],
        &["LPOS", "{t}l", "nope"],
        &["BLPOP", "{t}empty", "0.01"],
        &["MGET", "{t}s", "{t}missing"],
        // Split over slots and merged by the proxy.
        &["MGET", "a", "b", "{t}s"],
        &["CONFIG", "GET", "maxmemory-policy"],
        &["MULTI"],
        &["HGETALL", "{t}h"],
        &["ZSCORE", "{t}z2", "nope"],
        &["GET", "{t}missing"],
        &["SMEMBERS", "{t}set2"],
        &["EXEC"],
    ] {
        p.same(cmd);
    }

    // Text reports are verbatim strings.
    for cmd in [
        &["INFO", "server"][..],
        &["CLIENT", "INFO"],
        &["CLIENT", "LIST"],
    ] {
        let reply = p.proxied.cmd_raw(cmd);
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with('=') && text.contains("\r\ntxt:"),
            "{cmd:?}: {text}"
        );
    }
    let info = p.proxied.cmd_raw(&["CLIENT", "INFO"]);
    assert!(String::from_utf8_lossy(&info).contains(" resp=3 "));
    // The emulated CLUSTER SHARDS (no plain server to compare with): each
    // shard a map, its nodes maps, as a cluster node writes it.
    let shards = String::from_utf8_lossy(&p.proxied.cmd_raw(&["CLUSTER", "SHARDS"])).into_owned();
    assert!(
        shards.starts_with("*2\r\n%2\r\n$5\r\nslots\r\n*"),
        "{shards}"
    );
    assert!(shards.contains("$5\r\nnodes\r\n*1\r\n%"), "{shards}");

    // HELLO 2 goes back to RESP2, RESET too.
    p.both(&["HELLO", "2"]);
    p.same(&["GET", "{t}missing"]);
    p.same(&["HGETALL", "{t}h"]);
    p.both(&["HELLO", "3"]);
    p.same(&["GET", "{t}missing"]);
    p.same(&["RESET"]);
    p.same(&["HGETALL", "{t}h"]);
    p.same(&["HELLO", "4"]);

    // HELLO 3 with AUTH and SETNAME in one go, and their errors (which
    // leave the protocol as it was).
    p.same(&["HELLO", "3", "AUTH", "nobody", "pass"]);
    p.same(&["GET", "{t}missing"]);
    p.same(&["HELLO", "3", "SETNAME", "bad name"]);
    let hello = p
        .proxied
        .cmd_raw(&["HELLO", "3", "AUTH", "default", "any", "SETNAME", "app"]);
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    p.reference
        .cmd_raw(&["HELLO", "3", "AUTH", "default", "any", "SETNAME", "app"]);
    p.same(&["CLIENT", "GETNAME"]);
    p.same(&["GET", "{t}missing"]);
}

/// Geo, streams, LCS, functions and COMMAND: served by redis-server only.
fn more_families_match(backend: Backend) {
    let Some((_cluster, _proxy, _plain, mut p)) = start(backend) else {
        return;
    };
    for setup in [
        &["GEOADD", "{t}g", "13.361389", "38.115556", "Palermo"][..],
        &["XADD", "{t}x", "1-1", "f", "v"],
        &["XGROUP", "CREATE", "{t}x", "grp", "0"],
        &["SET", "{t}a", "ohmytext"],
        &["SET", "{t}b", "mynewtext"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function{function_name='f', callback=function() return 1 end, flags={'no-writes'}}",
        ],
    ] {
        p.same(setup);
    }
    for cmd in [
        &["GEOPOS", "{t}g", "Palermo", "nope"][..],
        &[
            "GEOSEARCH",
            "{t}g",
            "FROMLONLAT",
            "15",
            "37",
            "BYRADIUS",
            "200",
            "km",
            "WITHCOORD",
            "WITHDIST",
            "ASC",
        ],
        &["GEODIST", "{t}g", "Palermo", "Palermo"],
        &["XREAD", "STREAMS", "{t}x", "0"],
        &["XREAD", "STREAMS", "{t}x", "{t}nox", "0", "0"],
        &["XRANGE", "{t}x", "-", "+"],
        &["XINFO", "STREAM", "{t}x"],
        &["XINFO", "STREAM", "{t}x", "FULL"],
        &["XINFO", "GROUPS", "{t}x"],
        &["XINFO", "CONSUMERS", "{t}x", "grp"],
        &[
            "LCS",
            "{t}a",
            "{t}b",
            "IDX",
            "MINMATCHLEN",
            "2",
            "WITHMATCHLEN",
        ],
        &["FUNCTION", "LIST"],
        &["FCALL_RO", "f", "0"],
        &["COMMAND", "INFO", "get", "zadd", "xread", "nosuchcommand"],
        &["COMMAND", "DOCS", "get", "zadd"],
        &["PUBSUB", "NUMSUB", "ch"],
    ] {
        p.same(cmd);
    }
}

/// Subscribed, a RESP3 client gets pushes and may run any other command.
fn subscribers_get_pushes(backend: Backend) {
    let Some((_cluster, proxy, plain, mut p)) = start(backend) else {
        return;
    };
    p.same(&["SET", "{t}s", "hello"]);
    p.same(&["SUBSCRIBE", "ch", "other"]);
    // The second confirmation of SUBSCRIBE.
    let (want, got) = (p.reference.read_raw_reply(), p.proxied.read_raw_reply());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    p.same(&["GET", "{t}s"]);
    p.same(&["PING"]);
    p.same(&["HGETALL", "{t}missing"]);
    for refused in [&["BLPOP", "{t}l", "0"][..], &["MULTI"], &["HELLO", "2"]] {
        let reply = p.proxied.cmd_raw(refused);
        assert!(
            String::from_utf8_lossy(&reply).contains("while the connection is subscribed"),
            "{refused:?}: {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    for (publisher, subscriber) in [
        (plain.server.client(), &mut p.reference),
        (proxy.client(), &mut p.proxied),
    ] {
        let mut publisher = publisher;
        publisher.set_timeout(Duration::from_secs(5));
        // (The receiver count is proven in proxy_pubsub.rs.)
        publisher.cmd(&["PUBLISH", "ch", "msg"]).expect_int();
        let message = subscriber.read_raw_reply();
        assert_eq!(
            String::from_utf8_lossy(&message),
            ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nmsg\r\n"
        );
    }
    p.same(&["UNSUBSCRIBE", "ch"]);
    p.same(&["UNSUBSCRIBE", "other"]);
    p.same(&["GET", "{t}missing"]);
}

on_both_backends!(typed_replies_match_redis_server, subscribers_get_pushes);

#[test]
fn more_families_match_redis_server() {
    more_families_match(Backend::Redis);
}
