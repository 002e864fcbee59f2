//! Pub/Sub through the proxy: confirmations and messages as Redis sends
//! them, subscriptions that survive a dead master and a moved slot, and a
//! subscriber that does not read being cut off.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

fn bulk(s: &str) -> Reply {
    Reply::bulk(s)
}

fn push(items: &[Reply]) -> Reply {
    Reply::Array(Some(items.to_vec()))
}

/// `[kind, channel, count]`.
fn confirm(kind: &str, channel: Option<&str>, count: i64) -> Reply {
    push(&[
        bulk(kind),
        channel.map_or(Reply::Bulk(None), bulk),
        Reply::Int(count),
    ])
}

fn subscribers_see_what_redis_sends(backend: Backend) {
    let Some((_cluster, proxy)) = cluster_with_proxy(backend, 0, ProxyOptions::default()) else {
        return;
    };
    let mut sub = proxy.client();
    let mut publisher = proxy.client();
    // Not subscribed: UNSUBSCRIBE answers and the connection stays normal.
    assert_eq!(sub.cmd(&["UNSUBSCRIBE"]), confirm("unsubscribe", None, 0));
    assert!(sub.cmd(&["GET", "k"]).is_nil());

    sub.send_raw(&encode_command(&["SUBSCRIBE", "a", "b", "a"]));
    assert_eq!(sub.read_reply(), confirm("subscribe", Some("a"), 1));
    assert_eq!(sub.read_reply(), confirm("subscribe", Some("b"), 2));
    assert_eq!(sub.read_reply(), confirm("subscribe", Some("a"), 2));
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "p*"]),
        confirm("psubscribe", Some("p*"), 3)
    );
    publisher.cmd(&["PUBLISH", "a", "hello"]).expect_int();
    assert_eq!(
        sub.read_reply(),
        push(&[bulk("message"), bulk("a"), bulk("hello")])
    );
    publisher.cmd(&["PUBLISH", "pq", "x"]).expect_int();
    assert_eq!(
        sub.read_reply(),
        push(&[bulk("pmessage"), bulk("p*"), bulk("pq"), bulk("x")])
    );
    // Shard channels go to their slot's master.
    sub.send_raw(&encode_command(&["SSUBSCRIBE", "{s}1", "{s}2"]));
    assert_eq!(sub.read_reply(), confirm("ssubscribe", Some("{s}1"), 1));
    assert_eq!(sub.read_reply(), confirm("ssubscribe", Some("{s}2"), 2));
    assert_eq!(publisher.cmd(&["SPUBLISH", "{s}1", "m"]), Reply::Int(1));
    assert_eq!(
        sub.read_reply(),
        push(&[bulk("smessage"), bulk("{s}1"), bulk("m")])
    );
    assert!(
        sub.cmd(&["SSUBSCRIBE", "a", "b"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );

    // What everyone sees about it.
    let channels = publisher.cmd(&["PUBSUB", "CHANNELS"]);
    let mut names: Vec<_> = channels
        .expect_array()
        .iter()
        .map(|c| c.expect_str().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "a", "nope"]),
        push(&[bulk("a"), Reply::Int(1), bulk("nope"), Reply::Int(0)])
    );
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]), Reply::Int(1));
    let shard = publisher.cmd(&["PUBSUB", "SHARDCHANNELS"]);
    assert_eq!(shard.expect_array().len(), 2, "{shard:?}");
    assert_eq!(
        publisher.cmd(&["PUBSUB", "SHARDNUMSUB", "{s}1"]),
        push(&[bulk("{s}1"), Reply::Int(1)])
    );

    // Subscribed: only the subscription commands, PING, QUIT and RESET.
    assert_eq!(
        sub.cmd(&["GET", "k"]),
        Reply::Error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into()
        )
    );
    assert_eq!(sub.cmd(&["PING"]), push(&[bulk("pong"), bulk("")]));
    assert_eq!(sub.cmd(&["PING", "hi"]), push(&[bulk("pong"), bulk("hi")]));

    sub.send_raw(&encode_command(&["UNSUBSCRIBE"]));
    assert_eq!(sub.read_reply(), confirm("unsubscribe", Some("a"), 2));
    assert_eq!(sub.read_reply(), confirm("unsubscribe", Some("b"), 1));
    assert_eq!(
        sub.cmd(&["PUNSUBSCRIBE", "p*"]),
        confirm("punsubscribe", Some("p*"), 0)
    );
    // Still subscribed to shard channels.
    assert!(sub.cmd(&["GET", "k"]).is_error());
    sub.send_raw(&encode_command(&["SUNSUBSCRIBE"]));
    assert_eq!(sub.read_reply(), confirm("sunsubscribe", Some("{s}1"), 1));
    assert_eq!(sub.read_reply(), confirm("sunsubscribe", Some("{s}2"), 0));
    // Back to normal.
    assert!(sub.cmd(&["GET", "k"]).is_nil());
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "a"]),
        push(&[bulk("a"), Reply::Int(0)])
    );

    // RESET and QUIT leave subscribed mode.
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "r"]),
        confirm("subscribe", Some("r"), 1)
    );
    assert_eq!(sub.cmd(&["RESET"]), Reply::Simple("RESET".into()));
    assert!(sub.cmd(&["GET", "k"]).is_nil());
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "q"]),
        confirm("subscribe", Some("q"), 1)
    );
    assert!(sub.cmd(&["QUIT"]).is_ok());
    assert!(sub.read_raw_until_close().is_empty());
    // A subscriber that leaves takes its subscriptions with it.
    let mut gone = proxy.client();
    assert_eq!(
        gone.cmd(&["SUBSCRIBE", "z"]),
        confirm("subscribe", Some("z"), 1)
    );
    assert_eq!(
        gone.cmd(&["SSUBSCRIBE", "{s}z"]),
        confirm("ssubscribe", Some("{s}z"), 1)
    );
    drop(gone);
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        publisher.cmd(&["PUBSUB", "NUMSUB", "q", "z"])
            == push(&[bulk("q"), Reply::Int(0), bulk("z"), Reply::Int(0)])
            && publisher.cmd(&["PUBSUB", "SHARDNUMSUB", "{s}z"])
                == push(&[bulk("{s}z"), Reply::Int(0)])
    });
}

/// PUBLISH counts the proxy's subscribers as one server counts its own:
/// every subscriber's channels and patterns are on the pub/sub home (the
/// owner of slot 0), where PUBLISH goes too.
fn publish_counts_every_subscriber_of_the_proxy(backend: Backend) {
    let Some((cluster, proxy)) = cluster_with_proxy(backend, 0, ProxyOptions::default()) else {
        return;
    };
    let mut publisher = proxy.client();
    let mut subs: Vec<TestClient> = (0..3).map(|_| proxy.client()).collect();
    for sub in &mut subs[..2] {
        assert_eq!(
            sub.cmd(&["SUBSCRIBE", "room"]),
            confirm("subscribe", Some("room"), 1)
        );
    }
    assert_eq!(
        subs[2].cmd(&["PSUBSCRIBE", "r*"]),
        confirm("psubscribe", Some("r*"), 1)
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "room", "hi"]), Reply::Int(3));
    assert_eq!(
        subs[0].read_reply(),
        push(&[bulk("message"), bulk("room"), bulk("hi")])
    );
    assert_eq!(
        subs[1].read_reply(),
        push(&[bulk("message"), bulk("room"), bulk("hi")])
    );
    assert_eq!(
        subs[2].read_reply(),
        push(&[bulk("pmessage"), bulk("r*"), bulk("room"), bulk("hi")])
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "rest", "x"]), Reply::Int(1));
    assert_eq!(
        subs[2].read_reply(),
        push(&[bulk("pmessage"), bulk("r*"), bulk("rest"), bulk("x")])
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "nobody", "x"]), Reply::Int(0));

    // They are all on the owner of slot 0.
    let home = cluster.master_for_slot(0).unwrap();
    let mut direct = cluster.client(home);
    assert_eq!(
        direct.cmd(&["PUBSUB", "NUMSUB", "room"]),
        push(&[bulk("room"), Reply::Int(2)])
    );
    assert_eq!(direct.cmd(&["PUBSUB", "NUMPAT"]), Reply::Int(1));

    // One leaves: one fewer counted.
    assert_eq!(
        subs[0].cmd(&["UNSUBSCRIBE", "room"]),
        confirm("unsubscribe", Some("room"), 0)
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "room", "bye"]), Reply::Int(2));
    assert_eq!(
        subs[1].read_reply(),
        push(&[bulk("message"), bulk("room"), bulk("bye")])
    );
}

/// Publishes `channel` through `publisher` until `sub` receives one of the
/// messages; returns the first message seen and how long it took.
fn publish_until_received(
    publisher: &mut TestClient,
    sub: &mut TestClient,
    command: &str,
    channel: &str,
    timeout: Duration,
) -> (Reply, Duration) {
    let started = Instant::now();
    sub.set_timeout(Duration::from_millis(100));
    let mut n = 0;
    loop {
        assert!(
            started.elapsed() < timeout,
            "no message on {channel} within {timeout:?}"
        );
        n += 1;
        let reply = publisher.cmd(&[command, channel, &format!("m{n}")]);
        assert!(reply.as_int().is_some(), "{command}: {reply:?}");
        if let Ok(reply) = sub.try_read_reply() {
            sub.set_timeout(DEFAULT_TIMEOUT);
            return (reply, started.elapsed());
        }
    }
}

/// The master holding a subscriber's channels is killed: the proxy
/// subscribes again elsewhere, and messages flow once more.
fn a_subscriber_keeps_receiving_after_its_master_is_killed(backend: Backend) {
    let Some((mut cluster, proxy)) = cluster_with_proxy(backend, 1, ProxyOptions::default()) else {
        return;
    };
    let mut sub = proxy.client();
    let mut publisher = proxy.client();
    assert_eq!(
        sub.cmd(&["SUBSCRIBE", "news"]),
        confirm("subscribe", Some("news"), 1)
    );
    assert_eq!(
        sub.cmd(&["PSUBSCRIBE", "n*"]),
        confirm("psubscribe", Some("n*"), 2)
    );
    let serving = cluster
        .masters()
        .into_iter()
        .find(|p| {
            cluster.client(*p).cmd(&["PUBSUB", "NUMSUB", "news"])
                == push(&[bulk("news"), Reply::Int(1)])
        })
        .expect("a master holds the subscription");
    assert_eq!(
        cluster.master_for_slot(0),
        Some(serving),
        "the pub/sub home is slot 0's master"
    );
    // A shard channel on the same master: it comes back on the replica
    // promoted in its place.
    let shard = (0..10_000)
        .map(|i| format!("{{sh{i}}}ch"))
        .find(|c| cluster.master_for_slot(key_slot(c.as_bytes())) == Some(serving))
        .unwrap();
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", &shard]),
        confirm("ssubscribe", Some(&shard), 1)
    );
    cluster.kill(serving);
    let killed = Instant::now();
    let (first, after) = publish_until_received(
        &mut publisher,
        &mut sub,
        "PUBLISH",
        "news",
        Duration::from_secs(20),
    );
    let first = first.expect_array();
    assert!(
        first[0] == bulk("message") || first[0] == bulk("pmessage"),
        "{first:?}"
    );
    let (shard_first, _) = publish_until_received(
        &mut publisher,
        &mut sub,
        "SPUBLISH",
        &shard,
        Duration::from_secs(20),
    );
    eprintln!(
        "{}: after the subscriber's master was killed, messages flowed again in {after:?}, \
         shard messages (after the promotion) {:?} after the kill",
        backend.name(),
        killed.elapsed()
    );
    // Drain what is left of the loops, then check each subscription once.
    sub.set_timeout(Duration::from_millis(300));
    let mut seen = vec![shard_first];
    while let Ok(reply) = sub.try_read_reply() {
        seen.push(reply);
    }
    sub.set_timeout(DEFAULT_TIMEOUT);
    assert!(
        seen.iter().all(|r| {
            let kind = &r.expect_array()[0];
            *kind == bulk("message") || *kind == bulk("pmessage") || *kind == bulk("smessage")
        }),
        "{seen:?}"
    );
    // The subscriptions end up on the new pub/sub home (the replica
    // promoted in slot 0's master's place), where PUBLISH counts them.
    let rehomed = Instant::now();
    eventually(Duration::from_secs(20), Duration::from_millis(50), || {
        let home = cluster.master_for_slot(0).filter(|&p| p != serving);
        home.is_some_and(|home| {
            cluster.client(home).cmd(&["PUBSUB", "NUMSUB", "news"])
                == push(&[bulk("news"), Reply::Int(1)])
        }) && publisher.cmd(&["PUBLISH", "news", "count"]) == Reply::Int(2)
    });
    eprintln!(
        "{}: the subscriber was at the new pub/sub home {:?} after the shard messages flowed again",
        backend.name(),
        rehomed.elapsed()
    );
    publisher.cmd(&["PUBLISH", "news", "last"]);
    publisher.cmd(&["SPUBLISH", &shard, "last"]);
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let reply = sub.read_reply();
        let items = reply.expect_array();
        if items.last() == Some(&bulk("last")) {
            kinds.push(items[0].clone());
        }
    }
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, [bulk("message"), bulk("pmessage"), bulk("smessage")]);
    assert_eq!(sub.cmd(&["PING"]), push(&[bulk("pong"), bulk("")]));
}

/// A shard channel's slot moves to another master: the proxy follows it.
fn a_shard_subscriber_keeps_receiving_after_its_slot_moves(backend: Backend) {
    let Some((cluster, proxy)) = cluster_with_proxy(backend, 0, ProxyOptions::default()) else {
        return;
    };
    let mut sub = proxy.client();
    let mut publisher = proxy.client();
    let channel = "{moving}ch";
    let slot = key_slot(channel.as_bytes());
    assert_eq!(
        sub.cmd(&["SSUBSCRIBE", channel]),
        confirm("ssubscribe", Some(channel), 1)
    );
    assert_eq!(
        publisher.cmd(&["SPUBLISH", channel, "before"]),
        Reply::Int(1)
    );
    assert_eq!(
        sub.read_reply(),
        push(&[bulk("smessage"), bulk(channel), bulk("before")])
    );
    let from = cluster.master_for_slot(slot).unwrap();
    let to = *cluster.masters().iter().find(|p| **p != from).unwrap();
    let migration = cluster.begin_migration(slot, to);
    cluster.finish_migration(migration);
    let (first, after) = publish_until_received(
        &mut publisher,
        &mut sub,
        "SPUBLISH",
        channel,
        Duration::from_secs(15),
    );
    // Only messages reach the client: no confirmation of the proxy's own
    // resubscription, no unasked sunsubscribe.
    assert_eq!(first.expect_array()[0], bulk("smessage"), "{first:?}");
    eprintln!(
        "{}: shard messages flowed again {after:?} after the slot moved",
        backend.name()
    );
    assert_eq!(
        publisher.cmd(&["SPUBLISH", channel, "after"]),
        Reply::Int(1)
    );
    loop {
        let reply = sub.read_reply();
        assert_eq!(reply.expect_array()[0], bulk("smessage"), "{reply:?}");
        if reply.expect_array()[2] == bulk("after") {
            break;
        }
    }
    let owner = cluster.client(to).cmd(&["PUBSUB", "SHARDNUMSUB", channel]);
    assert_eq!(owner, push(&[bulk(channel), Reply::Int(1)]));
}

/// A subscriber that never reads is cut off once its messages pass the
/// limit; publishers and other clients carry on.
fn a_subscriber_that_does_not_read_is_disconnected(backend: Backend) {
    let opts = ProxyOptions {
        env: vec![(
            "SLOTWAY_LIMITS__PUBSUB_OUTPUT_LIMIT_BYTES".into(),
            (256 * 1024).to_string(),
        )],
        ..ProxyOptions::default()
    };
    let Some((_cluster, proxy)) = cluster_with_proxy(backend, 0, opts) else {
        return;
    };
    // A raw socket: the test controls exactly when it reads.
    let mut sub = TcpStream::connect(proxy.addr()).unwrap();
    sub.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    sub.write_all(&encode_command(&["SUBSCRIBE", "flood"]))
        .unwrap();
    let confirmed = confirm("subscribe", Some("flood"), 1).encode();
    let mut got = vec![0u8; confirmed.len()];
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sub.read_exact(&mut got).unwrap();
    assert_eq!(got, confirmed);
    let mut publisher = proxy.client();
    let payload = "x".repeat(10 * 1024);
    const MESSAGES: usize = 4000;
    let published = MESSAGES * payload.len();
    for _ in 0..(MESSAGES / 500) {
        let batch: Vec<Vec<&str>> = (0..500)
            .map(|_| vec!["PUBLISH", "flood", &payload])
            .collect();
        publisher.pipeline(&batch);
    }
    // Now read: the proxy closed the connection after some of it.
    let started = Instant::now();
    let received = read_until_eof(&mut sub, Duration::from_secs(10));
    assert!(
        received < published,
        "received {received} of {published} bytes: not cut off"
    );
    eprintln!(
        "{}: a subscriber that did not read got {received} of {published} bytes, then was \
         disconnected ({:?} to drain)",
        backend.name(),
        started.elapsed()
    );
    assert!(publisher.cmd(&["PING"]) == Reply::Simple("PONG".into()));
    assert_eq!(
        publisher.cmd(&["PUBSUB", "NUMSUB", "flood"]),
        push(&[bulk("flood"), Reply::Int(0)])
    );
}

/// Reads a connection until the peer closes it; panics if it stays open
/// past `timeout`. Returns the bytes read.
fn read_until_eof(stream: &mut TcpStream, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut total = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "still open after {timeout:?} ({total} bytes read)"
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

on_both_backends!(
    subscribers_see_what_redis_sends,
    publish_counts_every_subscriber_of_the_proxy,
    a_shard_subscriber_keeps_receiving_after_its_slot_moves,
    a_subscriber_that_does_not_read_is_disconnected,
);

/// Killing a master needs failover.
mod redis_only {
    #[test]
    fn a_subscriber_keeps_receiving_after_its_master_is_killed() {
        super::a_subscriber_keeps_receiving_after_its_master_is_killed(super::Backend::Redis);
    }
}
