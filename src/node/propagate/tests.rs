use std::sync::Arc;

use bytes::BytesMut;

use crate::node::client::ClientState;
use crate::node::cmd::tx::harness::{node, run};
use crate::node::replay::Replayer;
use crate::node::state::Shared;
use crate::resp::{Request, RequestDecoder};

const NOW: i64 = 1_700_000_000_000;

/// A master whose stream is kept (as when a replica is attached).
fn master() -> Arc<Shared> {
    let (shared, _) = node();
    shared.lock().feed.enable_backlog(1 << 20);
    shared
}

/// The commands in the stream, as text.
fn stream(shared: &Arc<Shared>) -> Vec<String> {
    let node = shared.lock();
    let mut buf = BytesMut::from(&node.feed.backlog().unwrap().read_from(0).unwrap()[..]);
    let mut decoder = RequestDecoder::default();
    let mut out = Vec::new();
    while let Some(req) = decoder.decode(&mut buf).unwrap() {
        out.push(words(&req));
    }
    out
}

/// A key's type, value (in an order that does not depend on the hash
/// maps) and absolute TTL.
pub(crate) fn content(shared: &Arc<Shared>, key: &str) -> String {
    let mut c = ClientState::new(100, None);
    let kind = run(shared, &mut c, NOW + 10, &["TYPE", key]);
    let read: &[&str] = match kind.trim() {
        "+string" => &["GET", key],
        "+list" => &["LRANGE", key, "0", "-1"],
        "+hash" => &["HGETALL", key],
        "+set" => &["SMEMBERS", key],
        "+zset" => &["ZRANGE", key, "0", "-1", "WITHSCORES"],
        _ => &["EXISTS", key],
    };
    let mut value: Vec<String> = run(shared, &mut c, NOW + 10, read)
        .lines()
        .map(str::to_string)
        .collect();
    if matches!(kind.trim(), "+hash" | "+set") {
        value.sort();
    }
    let ttl = run(shared, &mut c, NOW + 10, &["PEXPIRETIME", key]);
    format!("{kind} {value:?} {ttl}")
}

fn words(req: &Request) -> String {
    req.args()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn nothing_is_encoded_without_a_consumer() {
    let (shared, _) = node();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["SET", "k", "v"]);
    assert_eq!(shared.lock().feed.offset(), 0);
}

#[test]
fn plain_writes_go_out_as_sent_and_reads_not_at_all() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["SET", "k", "v"]);
    run(&shared, &mut c, NOW, &["GET", "k"]);
    run(&shared, &mut c, NOW, &["LPUSH", "l", "a", "b"]);
    run(&shared, &mut c, NOW, &["INCR", "l"]); // WRONGTYPE: not a write
    assert_eq!(stream(&shared), ["SET k v", "LPUSH l a b"]);
    let offset = shared.lock().feed.offset();
    assert_eq!(
        offset,
        (27 + 36) as u64,
        "offset counts the bytes of the stream"
    );
}

#[test]
fn relative_ttls_become_absolute() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["SET", "a", "1", "EX", "10"]);
    run(&shared, &mut c, NOW, &["SETEX", "b", "5", "2"]);
    run(&shared, &mut c, NOW, &["RPUSH", "l", "x"]);
    run(&shared, &mut c, NOW, &["EXPIRE", "l", "100"]);
    run(&shared, &mut c, NOW, &["PERSIST", "l"]);
    run(&shared, &mut c, NOW, &["EXPIRE", "b", "-1"]);
    run(&shared, &mut c, NOW, &["GETEX", "a", "PX", "50"]);
    assert_eq!(
        stream(&shared),
        [
            format!("SET a 1 PXAT {}", NOW + 10_000),
            format!("SET b 2 PXAT {}", NOW + 5_000),
            "RPUSH l x".to_string(),
            format!("PEXPIREAT l {}", NOW + 100_000),
            "PERSIST l".to_string(),
            "DEL b".to_string(),
            format!("SET a 1 PXAT {}", NOW + 50),
        ]
    );
}

#[test]
fn spop_goes_out_as_the_srem_of_what_it_popped() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["SADD", "s", "a", "b", "c", "d"]);
    let popped = run(&shared, &mut c, NOW, &["SPOP", "s"]);
    let member = popped.lines().nth(1).unwrap().to_string();
    run(&shared, &mut c, NOW, &["SPOP", "s", "2"]);
    let lines = stream(&shared);
    assert_eq!(lines[1], format!("SREM s {member}"));
    assert!(lines[2].starts_with("SREM s "), "{lines:?}");
    assert_eq!(lines[2].split(' ').count(), 4);
}

#[test]
fn an_expired_key_goes_out_as_a_del_before_the_command_that_found_it() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["SET", "k", "1", "PX", "10"]);
    run(&shared, &mut c, NOW + 20, &["INCR", "k"]);
    assert_eq!(
        stream(&shared)[1..],
        ["DEL k".to_string(), "INCR k".to_string()]
    );
}

#[test]
fn a_transaction_goes_out_wrapped_in_multi_exec() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, NOW, &["MULTI"]);
    run(&shared, &mut c, NOW, &["SET", "k", "1"]);
    run(&shared, &mut c, NOW, &["GET", "k"]);
    run(&shared, &mut c, NOW, &["INCR", "k"]);
    run(&shared, &mut c, NOW, &["EXEC"]);
    // A transaction of reads only leaves nothing.
    run(&shared, &mut c, NOW, &["MULTI"]);
    run(&shared, &mut c, NOW, &["GET", "k"]);
    run(&shared, &mut c, NOW, &["EXEC"]);
    assert_eq!(stream(&shared), ["MULTI", "SET k 1", "INCR k", "EXEC"]);
}

/// The stream replayed on an empty node rebuilds the master's keyspace,
/// whatever the command: the property replication and the AOF rely on.
#[test]
fn the_stream_replays_to_the_same_keyspace() {
    let shared = master();
    let mut c = ClientState::new(1, None);
    let script: &[&[&str]] = &[
        &["SET", "s", "v", "EX", "100"],
        &["SET", "n", "1"],
        &["INCRBYFLOAT", "n", "0.1"],
        &["APPEND", "s", "w"],
        &["RPUSH", "l", "a", "b", "c", "d"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["SADD", "set", "1", "2", "3", "4", "5"],
        &["SPOP", "set", "2"],
        &["SPOP", "set"],
        &["ZADD", "z", "INCR", "2.5", "m"],
        &["ZADD", "z", "1", "a", "3", "b"],
        &["ZPOPMIN", "z"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["HINCRBYFLOAT", "h", "a", "1.5"],
        &["EXPIRE", "h", "1000"],
        &["PEXPIRE", "l2", "1"],
        &["MULTI"],
        &["INCR", "cnt"],
        &["INCR", "cnt"],
        &["EXEC"],
        &["RENAME", "n", "n2"],
        &["SET", "gone", "x", "PX", "5"],
    ];
    for cmd in script {
        run(&shared, &mut c, NOW, cmd);
    }
    // Later: `gone` and `l2` expired; a read finds one, active expiry the other.
    run(&shared, &mut c, NOW + 10, &["GET", "gone"]);
    {
        let mut node = shared.lock();
        node.db.set_clock(NOW + 10);
        node.db.expire_cycle(1000);
        node.propagate_expired();
    }
    let mut bytes =
        BytesMut::from(&shared.lock().feed.backlog().unwrap().read_from(0).unwrap()[..]);
    let (copy, _) = node();
    Replayer::new(9)
        .apply(&mut copy.lock(), &copy, &mut bytes)
        .unwrap();
    for key in ["s", "n", "n2", "l", "l2", "set", "z", "h", "cnt", "gone"] {
        assert_eq!(content(&copy, key), content(&shared, key), "{key}");
    }
    assert_eq!(
        run(&copy, &mut ClientState::new(2, None), NOW + 10, &["DBSIZE"]),
        run(&shared, &mut c, NOW + 10, &["DBSIZE"])
    );
}
