//! Replication between built-in nodes: replicas get their master's writes
//! (every kind, expiry, SPOP, transactions), WAIT counts them, a cut link
//! resyncs partially, a replica that joins late or falls too far behind
//! takes a full sync, a full sync under writes loses nothing, and INFO
//! replication names its fields as redis-server does.

// Helpers outside `#[test]` functions fail a test by panicking too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A hash tag whose keys live on master `master` of a cluster of `masters`.
fn tag_of(master: usize, masters: usize) -> String {
    hash_tag_for_slot(slot_ranges(masters)[master].0)
}

fn info(client: &mut TestClient, section: &str) -> String {
    client
        .cmd(&["INFO", section])
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn field(text: &str, name: &str) -> String {
    info_field(text, name)
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .to_string()
}

fn stat(client: &mut TestClient, name: &str) -> i64 {
    field(&info(client, "stats"), name).parse().unwrap()
}

/// A client on a replica that may read its master's slots.
fn reader(cluster: &BuiltinCluster, i: usize) -> TestClient {
    let mut c = cluster.client(i);
    c.cmd(&["READONLY"]).expect_ok();
    c
}

/// Waits until the replica's link is up.
fn wait_link_up(cluster: &BuiltinCluster, replica: usize) {
    cluster.wait_for(SYNC_TIMEOUT, "the replica's link is up", |c| {
        let text = c.query_text(replica, &["INFO", "replication"])?;
        match info_field(&text, "master_link_status") {
            Some("up") => Ok(()),
            other => Err(format!("master_link_status: {other:?}")),
        }
    });
}

/// `WAIT 1 <timeout>` on the connection that wrote: its writes reached
/// the replica.
fn wait_replicated(writer: &mut TestClient) {
    let acked = writer.cmd(&["WAIT", "1", "10000"]).expect_int();
    assert_eq!(acked, 1, "the replica acknowledged the writes");
}

/// Two bare nodes joined in one cluster: node 0 serves every slot, node 1
/// knows it but replicates nothing yet.
fn master_and_spare() -> BuiltinCluster {
    let cluster = BuiltinCluster::start_bare(2);
    cluster
        .client(0)
        .cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
        .expect_ok();
    let port = cluster.port(0).to_string();
    cluster
        .client(1)
        .cmd(&["CLUSTER", "MEET", "127.0.0.1", &port])
        .expect_ok();
    cluster.wait_for(SYNC_TIMEOUT, "both nodes know each other", |c| {
        for i in 0..2 {
            let text = c.query_text(i, &["CLUSTER", "INFO"])?;
            if info_field(&text, "cluster_known_nodes") != Some("2") {
                return Err(format!("{}: {text}", c.addr(i)));
            }
        }
        Ok(())
    });
    cluster
}

/// Writes `n` keys of every type under `prefix`, pipelined.
fn fill(client: &mut TestClient, prefix: &str, n: usize) {
    let mut cmds: Vec<Vec<String>> = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}:{i}");
        let cmd: Vec<String> = match i % 6 {
            0 => vec!["SET".into(), key, format!("value-{i}")],
            1 => vec!["SET".into(), key, i.to_string(), "EX".into(), "3600".into()],
            2 => vec!["RPUSH".into(), key, "a".into(), i.to_string(), "c".into()],
            3 => vec![
                "HSET".into(),
                key,
                "f".into(),
                i.to_string(),
                "g".into(),
                "x".into(),
            ],
            4 => vec!["SADD".into(), key, "m1".into(), i.to_string()],
            _ => vec![
                "ZADD".into(),
                key,
                "1.5".into(),
                "a".into(),
                i.to_string(),
                "b".into(),
            ],
        };
        cmds.push(cmd);
    }
    for batch in cmds.chunks(2000) {
        for reply in client.pipeline(batch) {
            assert!(!reply.is_error(), "{reply:?}");
        }
    }
}

fn assert_same_keyspace(master: &mut TestClient, replica: &mut TestClient) -> usize {
    let ours = keyspace_digest(master);
    let theirs = keyspace_digest(replica);
    let missing = ours.keys().filter(|k| !theirs.contains_key(*k)).count();
    let differ = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k).is_some_and(|t| t != *v))
        .take(3)
        .map(|(k, v)| format!("{}: {v} vs {:?}", String::from_utf8_lossy(k), theirs.get(k)))
        .collect::<Vec<_>>();
    assert!(
        missing == 0 && differ.is_empty() && ours.len() == theirs.len(),
        "master {} keys, replica {}; {missing} missing; differ: {differ:?}",
        ours.len(),
        theirs.len()
    );
    ours.len()
}

#[test]
fn writes_on_the_masters_reach_their_replicas() {
    let cluster = BuiltinCluster::start(3, 1);
    for master in 0..3 {
        let replica = master + 3;
        let t = tag_of(master, 3);
        let mut w = cluster.client(master);
        let script: &[&[&str]] = &[
            &["SET", "{T}s", "v"],
            &["INCR", "{T}n"],
            &["INCRBYFLOAT", "{T}n", "1.5"],
            &["RPUSH", "{T}l", "a", "b", "c"],
            &["LPOP", "{T}l"],
            &["HSET", "{T}h", "f1", "1", "f2", "2"],
            &["HINCRBY", "{T}h", "f1", "10"],
            &["SADD", "{T}set", "a", "b", "c", "d", "e", "f"],
            &["SPOP", "{T}set", "2"],
            &["SPOP", "{T}set"],
            &["ZADD", "{T}z", "1", "a", "2", "b"],
            &["ZINCRBY", "{T}z", "5", "a"],
            &["EXPIRE", "{T}l", "1000"],
            &["SET", "{T}ttl", "v", "EX", "1000"],
            &["MULTI"],
            &["INCR", "{T}tx"],
            &["SET", "{T}tx2", "y"],
            &["SPOP", "{T}set"],
            &["EXEC"],
        ];
        for cmd in script {
            let args: Vec<String> = cmd
                .iter()
                .map(|a| a.replace("{T}", &format!("{{{t}}}")))
                .collect();
            let reply = w.cmd_bytes(&args);
            assert!(!reply.is_error(), "{args:?}: {reply:?}");
        }
        wait_replicated(&mut w);
        let mut r = reader(&cluster, replica);
        let keys = assert_same_keyspace(&mut w, &mut r);
        assert_eq!(keys, 9, "every key of shard {master}");

        // A replica redirects writes, and reads without READONLY.
        let key = format!("{{{t}}}s");
        let moved = format!(
            "MOVED {} {}",
            slot_ranges(3)[master].0,
            cluster.addr(master)
        );
        assert_eq!(r.cmd(&["SET", &key, "x"]).expect_error(), moved);
        assert_eq!(
            cluster.client(replica).cmd(&["GET", &key]).expect_error(),
            moved
        );

        // The master's DEL expires a key on the replica.
        let volatile = format!("{{{t}}}px");
        w.cmd(&["SET", &volatile, "soon", "PX", "1000"]).expect_ok();
        wait_replicated(&mut w);
        assert_eq!(r.cmd(&["GET", &volatile]), Reply::bulk("soon"));
        eventually(Duration::from_secs(5), POLL, || {
            r.cmd(&["EXISTS", &volatile]).expect_int() == 0
        });
    }

    // INFO replication and ROLE on both sides.
    let mut m = cluster.client(0);
    let mut r = cluster.client(3);
    eventually(SYNC_TIMEOUT, POLL, || {
        let mi = info(&mut m, "replication");
        let ri = info(&mut r, "replication");
        field(&mi, "master_repl_offset") == field(&ri, "slave_repl_offset")
            && field(&mi, "slave0").ends_with(&format!(
                "offset={},lag=0",
                field(&mi, "master_repl_offset")
            ))
    });
    let mi = info(&mut m, "replication");
    assert_eq!(field(&mi, "role"), "master");
    assert_eq!(field(&mi, "connected_slaves"), "1");
    assert!(
        field(&mi, "slave0").starts_with(&format!(
            "ip=127.0.0.1,port={},state=online,",
            cluster.port(3)
        )),
        "{mi}"
    );
    assert_eq!(field(&mi, "repl_backlog_active"), "1");
    let ri = info(&mut r, "replication");
    assert_eq!(field(&ri, "role"), "slave");
    assert_eq!(field(&ri, "master_host"), "127.0.0.1");
    assert_eq!(field(&ri, "master_port"), cluster.port(0).to_string());
    assert_eq!(field(&ri, "master_link_status"), "up");
    assert_eq!(field(&ri, "master_replid"), field(&mi, "master_replid"));
    let offset = field(&mi, "master_repl_offset");
    let role = m.cmd(&["ROLE"]);
    assert_eq!(
        role,
        Reply::Array(Some(vec![
            Reply::bulk("master"),
            Reply::Int(offset.parse().unwrap()),
            Reply::Array(Some(vec![Reply::Array(Some(vec![
                Reply::bulk("127.0.0.1"),
                Reply::bulk(cluster.port(3).to_string()),
                Reply::bulk(&offset),
            ]))])),
        ]))
    );
    let role = r.cmd(&["ROLE"]);
    assert_eq!(
        role,
        Reply::Array(Some(vec![
            Reply::bulk("slave"),
            Reply::bulk("127.0.0.1"),
            Reply::Int(i64::from(cluster.port(0))),
            Reply::bulk("connected"),
            Reply::Int(offset.parse().unwrap()),
        ]))
    );
    assert_eq!(stat(&mut m, "sync_full"), 1);
}

#[test]
fn wait_counts_the_replicas_that_acknowledged() {
    let cluster = BuiltinCluster::start(1, 1);
    let mut w = cluster.client(0);
    wait_link_up(&cluster, 1);
    // WAIT asks the replica for its ACK at once (REPLCONF GETACK) rather
    // than waiting for its ACK of every second.
    for i in 0..5 {
        w.cmd(&["SET", "k", &i.to_string()]).expect_ok();
        let asked = Instant::now();
        assert_eq!(w.cmd(&["WAIT", "1", "5000"]).expect_int(), 1);
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(500), "WAIT took {took:?}");
    }
    assert_eq!(w.cmd(&["WAIT", "0", "0"]).expect_int(), 1);
    // More replicas than there are: the timeout, then the count.
    let started = Instant::now();
    assert_eq!(w.cmd(&["WAIT", "2", "300"]).expect_int(), 1);
    assert!(started.elapsed() >= Duration::from_millis(290));
    // Inside a transaction WAIT answers at once.
    w.cmd(&["MULTI"]).expect_ok();
    w.cmd(&["WAIT", "2", "0"]);
    let exec = w.cmd(&["EXEC"]);
    assert_eq!(exec.expect_array(), &[Reply::Int(1)]);
    // A replica refuses WAIT with Redis's text.
    let refused = cluster.client(1).cmd(&["WAIT", "1", "0"]);
    assert!(
        refused
            .expect_error()
            .starts_with("ERR WAIT cannot be used with replica")
    );
}

#[test]
fn a_cut_link_resyncs_partially() {
    let cluster = BuiltinCluster::start(1, 1);
    let mut w = cluster.client(0);
    wait_link_up(&cluster, 1);
    fill(&mut w, "before", 300);
    wait_replicated(&mut w);
    assert_eq!(stat(&mut w, "sync_full"), 1);
    assert_eq!(stat(&mut w, "sync_partial_ok"), 0);

    // The master drops the link; writes go on meanwhile.
    assert_eq!(
        w.cmd(&["CLIENT", "KILL", "TYPE", "replica"]).expect_int(),
        1
    );
    fill(&mut w, "while-cut", 300);
    wait_replicated(&mut w);
    assert_eq!(stat(&mut w, "sync_partial_ok"), 1);

    // The replica drops it.
    let mut r = cluster.client(1);
    assert_eq!(r.cmd(&["CLIENT", "KILL", "TYPE", "master"]).expect_int(), 1);
    fill(&mut w, "after", 300);
    wait_replicated(&mut w);
    assert_eq!(stat(&mut w, "sync_partial_ok"), 2);
    assert_eq!(stat(&mut w, "sync_full"), 1, "no full sync after a cut");
    assert_eq!(stat(&mut w, "sync_partial_err"), 0);
    let mut r = reader(&cluster, 1);
    assert_eq!(assert_same_keyspace(&mut w, &mut r), 900);
}

#[test]
fn a_replica_that_joins_late_gets_every_key_by_full_sync() {
    const KEYS: usize = 10_000;
    let cluster = master_and_spare();
    let mut w = cluster.client(0);
    fill(&mut w, "k", KEYS);
    let id = cluster.node_id(0);
    let started = Instant::now();
    cluster
        .client(1)
        .cmd(&["CLUSTER", "REPLICATE", &id])
        .expect_ok();
    wait_link_up(&cluster, 1);
    let synced = started.elapsed();
    wait_replicated(&mut w);
    let mut r = reader(&cluster, 1);
    assert_eq!(assert_same_keyspace(&mut w, &mut r), KEYS);
    assert_eq!(stat(&mut w, "sync_full"), 1);
    println!("full sync of {KEYS} keys: {} ms", synced.as_millis());
}

#[test]
fn a_full_sync_under_writes_loses_nothing() {
    let cluster = master_and_spare();
    let mut w = cluster.client(0);
    fill(&mut w, "base", 20_000);
    let stop = Arc::new(AtomicBool::new(false));
    let addr = cluster.addr(0);
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut c = TestClient::connect(&addr);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w:{n}");
                let batch: Vec<Vec<String>> = vec![
                    vec!["SET".into(), key, n.to_string()],
                    vec!["INCR".into(), "counter".into()],
                    vec!["RPUSH".into(), "log".into(), n.to_string()],
                ];
                for reply in c.pipeline(&batch) {
                    assert!(!reply.is_error(), "{reply:?}");
                }
                n += 1;
            }
            assert_eq!(c.cmd(&["WAIT", "1", "10000"]).expect_int(), 1);
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let id = cluster.node_id(0);
    cluster
        .client(1)
        .cmd(&["CLUSTER", "REPLICATE", &id])
        .expect_ok();
    wait_link_up(&cluster, 1);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("the writer");
    assert!(written > 0);
    let mut r = reader(&cluster, 1);
    let keys = assert_same_keyspace(&mut w, &mut r);
    assert_eq!(keys as u64, 20_000 + written + 2);
    assert_eq!(r.cmd(&["GET", "counter"]), Reply::bulk(written.to_string()));
    println!("{written} write batches during the full sync");
}

#[test]
fn a_replica_too_far_behind_is_dropped_and_takes_a_full_sync() {
    let cluster = BuiltinCluster::start(1, 1);
    let mut w = cluster.client(0);
    wait_link_up(&cluster, 1);
    w.cmd(&[
        "CONFIG",
        "SET",
        "repl-backlog-size",
        "16kb",
        "client-output-buffer-limit",
        "replica 256kb 128kb 60",
    ])
    .expect_ok();
    assert_eq!(
        w.cmd(&["CONFIG", "GET", "repl-backlog-size"]),
        Reply::Array(Some(vec![
            Reply::bulk("repl-backlog-size"),
            Reply::bulk("16384")
        ]))
    );
    w.cmd(&["SET", "first", "1"]).expect_ok();
    wait_replicated(&mut w);
    // The replica stops reading (its node is busy for a second) while the
    // master writes far more than the socket buffers and the limit hold.
    let mut r = cluster.client(1);
    r.send_raw(&encode_command(&["DEBUG", "SLEEP", "1.5"]));
    std::thread::sleep(Duration::from_millis(50));
    let value = "x".repeat(64 * 1024);
    let big: Vec<Vec<String>> = (0..400)
        .map(|i| vec!["SET".into(), format!("big:{i}"), value.clone()])
        .collect();
    for reply in w.pipeline(&big) {
        reply.expect_ok();
    }
    assert!(r.read_reply().is_ok());
    wait_replicated(&mut w);
    assert_eq!(stat(&mut w, "sync_full"), 2, "dropped, then a full sync");
    let mut r = reader(&cluster, 1);
    assert_eq!(assert_same_keyspace(&mut w, &mut r), 401);
}

/// INFO replication of a built-in master and replica has the fields of
/// redis-server's, in the same order.
#[test]
fn info_replication_has_the_fields_of_redis_server() {
    let Some(bins) = require_redis() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let args = |port: u16, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--bind", "127.0.0.1", "--port", &port.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(
            [
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let master_port = free_port();
    let master = ServerProcess::spawn_args(&bins.server, &args(master_port, &[]), dir.path(), "m");
    let replica_port = free_port();
    let replica = ServerProcess::spawn_args(
        &bins.server,
        &args(
            replica_port,
            &["--replicaof", "127.0.0.1", &master_port.to_string()],
        ),
        dir.path(),
        "r",
    );
    let mut rm = master.client();
    let mut rr = replica.client();
    eventually(SYNC_TIMEOUT, POLL, || {
        info_field(&info(&mut rr, "replication"), "master_link_status") == Some("up")
            && info_field(&info(&mut rm, "replication"), "slave0")
                .is_some_and(|s| s.contains("state=online"))
    });

    let cluster = BuiltinCluster::start(1, 1);
    wait_link_up(&cluster, 1);
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    };
    let mut om = cluster.client(0);
    let mut or = cluster.client(1);
    assert_eq!(
        names(&info(&mut om, "replication")),
        names(&info(&mut rm, "replication"))
    );
    assert_eq!(
        names(&info(&mut or, "replication")),
        names(&info(&mut rr, "replication"))
    );
    let stats = |text: &str| -> Vec<String> {
        names(text)
            .into_iter()
            .filter(|n| n.starts_with("sync_"))
            .collect()
    };
    assert_eq!(
        stats(&info(&mut om, "stats")),
        stats(&info(&mut rm, "stats"))
    );
    drop(replica);
    drop(master);
}

/// A replica that stops replicating (CLUSTER RESET makes it a master)
/// starts a history of its own, keeping its master's as `replid2` up to
/// its offset, and its master forgets the link; replicating again, it
/// takes a full sync (its data was dropped).
#[test]
fn a_replica_turned_master_starts_a_new_history() {
    let cluster = BuiltinCluster::start(1, 1);
    let mut w = cluster.client(0);
    wait_link_up(&cluster, 1);
    fill(&mut w, "k", 100);
    wait_replicated(&mut w);
    let mut r = cluster.client(1);
    let before = info(&mut r, "replication");
    let replid = field(&before, "master_replid");
    let offset: i64 = field(&before, "slave_repl_offset").parse().unwrap();
    r.cmd(&["CLUSTER", "RESET", "SOFT"]).expect_ok();
    let after = info(&mut r, "replication");
    assert_eq!(field(&after, "role"), "master");
    eventually(SYNC_TIMEOUT, POLL, || {
        let after = info(&mut r, "replication");
        field(&after, "master_replid2") == replid
    });
    let after = info(&mut r, "replication");
    assert_ne!(field(&after, "master_replid"), replid);
    assert_eq!(
        field(&after, "second_repl_offset"),
        (offset + 1).to_string()
    );
    eventually(SYNC_TIMEOUT, POLL, || {
        field(&info(&mut w, "replication"), "connected_slaves") == "0"
    });
    // Back as a replica: a full sync brings the data back.
    let port = cluster.port(0).to_string();
    r.cmd(&["CLUSTER", "MEET", "127.0.0.1", &port]).expect_ok();
    let id = cluster.node_id(0);
    eventually(SYNC_TIMEOUT, POLL, || {
        cluster
            .client(1)
            .cmd(&["CLUSTER", "REPLICATE", &id])
            .is_ok()
    });
    wait_link_up(&cluster, 1);
    wait_replicated(&mut w);
    assert_eq!(stat(&mut w, "sync_full"), 2);
    let mut r = reader(&cluster, 1);
    assert_eq!(assert_same_keyspace(&mut w, &mut r), 100);
}
