//! Proves the test harness itself against a real Redis Cluster: the helpers
//! every other integration test relies on must be right first.

mod common;

use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

#[test]
fn reply_parser_reads_resp2() {
    let cases: &[(&[u8], Reply)] = &[
        (b"+OK\r\n", Reply::Simple("OK".into())),
        (
            b"-MOVED 1 127.0.0.1:7000\r\n",
            Reply::Error("MOVED 1 127.0.0.1:7000".into()),
        ),
        (b":-42\r\n", Reply::Int(-42)),
        (b"$0\r\n\r\n", Reply::bulk("")),
        (b"$-1\r\n", Reply::Bulk(None)),
        (b"*-1\r\n", Reply::Array(None)),
        (
            b"*2\r\n$3\r\nfoo\r\n*1\r\n:1\r\n",
            Reply::Array(Some(vec![
                Reply::bulk("foo"),
                Reply::Array(Some(vec![Reply::Int(1)])),
            ])),
        ),
    ];
    for (bytes, want) in cases {
        let (got, used) = Reply::parse(bytes).unwrap().unwrap();
        assert_eq!(&got, want);
        assert_eq!(used, bytes.len());
        assert_eq!(got.encode(), *bytes);
        // Every strict prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(
                Reply::parse(&bytes[..cut]).unwrap(),
                None,
                "{cut} of {want:?}"
            );
        }
    }
    assert!(Reply::parse(b"?x\r\n").is_err());
    assert!(Reply::parse(b"$3\r\nfooXY").is_err());
    assert_eq!(
        encode_command(&["SET", "k", ""]),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
}

#[test]
fn free_ports_are_distinct_and_bindable_with_their_bus_port() {
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    for port in ports {
        assert!((20000..=29999).contains(&port));
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::net::TcpListener::bind(("127.0.0.1", port + 10000)).unwrap();
        release_port(port);
    }
}

#[test]
fn eventually_returns_the_value_or_fails_in_time() {
    let mut calls = 0;
    let value = eventually(Duration::from_secs(5), Duration::from_millis(1), || {
        calls += 1;
        (calls >= 3).then_some(calls)
    });
    assert_eq!(value, 3);
    let started = Instant::now();
    let err = try_eventually(
        Duration::from_millis(100),
        Duration::from_millis(10),
        || Err::<(), _>("nope"),
    )
    .unwrap_err();
    assert!(err.contains("nope"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Routing, MOVED, a slot migration (ASK while keys are half moved, MOVED
/// after), SIGSTOP/SIGCONT, a master SIGKILLed and replaced by its replica,
/// and the old master restarted as a replica.
#[test]
fn real_cluster_routes_migrates_and_fails_over() {
    let Some(_) = require_redis() else { return };
    let started = Instant::now();
    let mut cluster = RedisCluster::start(3, 1);
    let formed = started.elapsed();

    assert_eq!(cluster.nodes().len(), 6);
    for port in cluster.ports() {
        let info = cluster.client(port).cmd(&["CLUSTER", "INFO"]);
        assert!(
            info.expect_str().contains("cluster_state:ok"),
            "{port}: {info:?}"
        );
    }
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    for &m in &masters {
        assert_eq!(cluster.replicas_of(m).len(), 1, "replicas of {m}");
    }
    let seeds = cluster.seeds_arg();
    assert_eq!(seeds.split(',').count(), 6);
    assert!(seeds.split(',').all(|s| s.starts_with("127.0.0.1:")));

    // Every key is served by the master that owns its slot; the other
    // masters answer MOVED with that master's address.
    for i in 0..30 {
        let key = format!("key:{i}");
        let slot = key_slot(key.as_bytes());
        let owner = cluster.master_for_slot(slot).expect("an agreed owner");
        assert!(masters.contains(&owner));
        cluster
            .client(owner)
            .cmd(&["SET", &key, &format!("v{i}")])
            .expect_ok();
        assert_eq!(
            cluster.client(owner).cmd(&["GET", &key]),
            Reply::bulk(format!("v{i}"))
        );
        for &other in masters.iter().filter(|&&m| m != owner) {
            let moved = cluster.client(other).cmd(&["GET", &key]);
            assert_eq!(
                moved,
                Reply::Error(format!("MOVED {slot} 127.0.0.1:{owner}"))
            );
        }
    }

    // A slot migration in steps: half the keys moved (ASK for those, direct
    // answers for the rest), then SETSLOT NODE (MOVED from the old owner).
    let tag = hash_tag_for_slot(1234);
    let keys: Vec<String> = (0..20).map(|i| format!("{{{tag}}}:{i}")).collect();
    let from = cluster.master_for_slot(1234).unwrap();
    let to = *masters.iter().find(|&&m| m != from).unwrap();
    for key in &keys {
        cluster.client(from).cmd(&["SET", key, key]).expect_ok();
    }
    let migration = cluster.begin_migration(1234, to);
    assert_eq!((migration.from, migration.to), (from, to));
    assert_eq!(cluster.migrate_keys(&migration, 10), 10);
    let mut asked = 0;
    for key in &keys {
        let mut source = cluster.client(from);
        match source.cmd(&["GET", key]) {
            Reply::Error(e) => {
                assert_eq!(e, format!("ASK 1234 127.0.0.1:{to}"));
                asked += 1;
                let mut target = cluster.client(to);
                let moved = target.cmd(&["GET", key]);
                assert_eq!(moved, Reply::Error(format!("MOVED 1234 127.0.0.1:{from}")));
                target.cmd(&["ASKING"]).expect_ok();
                assert_eq!(target.cmd(&["GET", key]), Reply::bulk(key));
            }
            value => assert_eq!(value, Reply::bulk(key)),
        }
    }
    assert_eq!(asked, 10);
    cluster.finish_migration(migration);
    assert_eq!(cluster.master_for_slot(1234), Some(to));
    for key in &keys {
        let moved = cluster.client(from).cmd(&["GET", key]);
        assert_eq!(moved, Reply::Error(format!("MOVED 1234 127.0.0.1:{to}")));
        assert_eq!(cluster.client(to).cmd(&["GET", key]), Reply::bulk(key));
    }

    // SIGSTOP: the socket accepts, nothing answers; SIGCONT: back.
    let replica = cluster.replicas_of(masters[0])[0];
    cluster.stop(replica);
    let mut hung = cluster.client(replica);
    hung.set_timeout(Duration::from_millis(300));
    let err = hung.try_cmd(&["PING"]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    cluster.cont(replica);
    hung.set_timeout(Duration::from_secs(5));
    assert_eq!(hung.read_reply(), Reply::Simple("PONG".into()));

    // SIGKILL the owner of "foo": its replica takes the slot, with the data.
    let slot = key_slot(b"foo");
    let old = cluster.master_for_slot(slot).unwrap();
    let heir = cluster.replicas_of(old)[0];
    let mut c = cluster.client(old);
    c.cmd(&["SET", "foo", "bar"]).expect_ok();
    assert_eq!(c.cmd(&["WAIT", "1", "2000"]), Reply::Int(1));
    let old_id = cluster.node_id(old);
    let killed = Instant::now();
    cluster.kill(old);
    assert!(!cluster.node(old).is_running());
    let deadline =
        Duration::from_millis(cluster.options().node_timeout_ms) + Duration::from_secs(8);
    eventually(deadline, Duration::from_millis(50), || {
        cluster.master_for_slot(slot) == Some(heir)
    });
    let failover = killed.elapsed();
    assert_eq!(
        cluster.client(heir).cmd(&["GET", "foo"]),
        Reply::bulk("bar")
    );
    assert!(cluster.masters().contains(&heir));
    assert!(!cluster.masters().contains(&old));
    cluster.wait_converged(Duration::from_secs(10));

    // The old master comes back with its identity, as a replica of its heir.
    cluster.restart(old);
    eventually(Duration::from_secs(15), Duration::from_millis(100), || {
        cluster.replicas_of(heir) == vec![old]
    });
    cluster.wait_converged(Duration::from_secs(15));
    assert_eq!(cluster.node_id(old), old_id);
    assert_eq!(
        cluster.client(old).cmd(&["GET", "foo"]),
        Reply::Error(format!("MOVED {slot} 127.0.0.1:{heir}"))
    );

    println!(
        "cluster formed in {formed:?}, failover took {failover:?}, whole test {:?}",
        started.elapsed()
    );
}
