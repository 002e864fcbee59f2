//! Cluster-aware clients pointed at the proxy: it answers as a cluster of
//! two masters that share every slot, both at its advertised address, so
//! `redis-cli -c` and `redis-benchmark --cluster` send everything to it.
//! redis-py's `RedisCluster` is in tests/client_libraries.rs.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use slotway::cluster::{key_slot, nodes};

fn setup(backend: Backend) -> Option<(RedisCluster, Proxy)> {
    require_redis()?;
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let proxy = Proxy::start(&cluster.seeds_arg());
    Some((cluster, proxy))
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The emulated cluster as the CLUSTER subcommands describe it.
fn cluster_commands_describe_masters_at_the_proxy_owning_every_slot(backend: Backend) {
    let Some((_cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut c = proxy.client();
    let port = i64::from(proxy.port());
    let id = c.cmd(&["CLUSTER", "MYID"]).expect_str().to_string();
    assert_eq!(id.len(), 40, "{id}");

    // Every slot is covered, every range at the proxy.
    let slots = c.cmd(&["CLUSTER", "SLOTS"]);
    let mut covered = 0;
    let mut ids = Vec::new();
    for range in slots.expect_array() {
        let range = range.expect_array();
        assert_eq!(range[0], Reply::Int(covered), "{slots:?}");
        covered = range[1].expect_int() + 1;
        let node = range[2].expect_array();
        assert_eq!(node[0], Reply::bulk("127.0.0.1"));
        assert_eq!(node[1], Reply::Int(port));
        ids.push(node[2].expect_str().to_string());
    }
    assert_eq!(covered, 16384);
    assert_eq!(ids[0], id);

    let text = c.cmd(&["CLUSTER", "NODES"]).expect_str().to_string();
    let lines = nodes::parse(&text);
    assert_eq!(lines.len(), ids.len(), "{text}");
    assert!(lines[0].myself, "{text}");
    for (line, id) in lines.iter().zip(&ids) {
        assert!(line.master, "{text}");
        assert_eq!(&line.id, id);
        assert_eq!(line.addr, proxy.addr());
    }
    let owned: usize = lines
        .iter()
        .flat_map(|l| l.slots.iter())
        .map(|r| r.clone().count())
        .sum();
    assert_eq!(owned, 16384);

    let shards = c.cmd(&["CLUSTER", "SHARDS"]);
    let shards = shards.expect_array();
    assert_eq!(shards.len(), ids.len());
    for (shard, id) in shards.iter().zip(&ids) {
        let shard = shard.expect_array();
        assert_eq!(shard[0], Reply::bulk("slots"));
        let node = shard[3].expect_array()[0].expect_array();
        assert_eq!(node[1], Reply::bulk(id));
        assert_eq!(node[3], Reply::Int(port));
    }

    let info = c.cmd(&["CLUSTER", "INFO"]);
    let info = info.expect_str();
    assert_eq!(info_field(info, "cluster_state"), Some("ok"));
    assert_eq!(
        info_field(info, "cluster_known_nodes"),
        Some(ids.len().to_string().as_str())
    );
    assert_eq!(
        c.cmd(&["CLUSTER", "REPLICAS", &id]),
        Reply::Array(Some(vec![]))
    );
    assert!(c.cmd(&["CLUSTER", "REPLICAS", "nope"]).is_error());
    assert!(c.cmd(&["READONLY"]).is_ok());
    assert!(c.cmd(&["READWRITE"]).is_ok());
    // Plain clients still see a plain server: a master without replicas.
    assert_eq!(
        c.cmd(&["ROLE"]),
        Reply::Array(Some(vec![
            Reply::bulk("master"),
            Reply::Int(0),
            Reply::Array(Some(vec![])),
        ]))
    );
    let info = c.cmd(&["INFO", "cluster"]);
    assert!(info.expect_str().contains("cluster_enabled:0"), "{info:?}");
    // What the emulation does not cover is refused, and the connection
    // stays usable.
    let refused = c.cmd(&["CLUSTER", "SETSLOT", "1", "STABLE"]);
    assert!(refused.expect_error().starts_with("ERR 'CLUSTER SETSLOT'"));
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

/// CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT name a slot, not a key: the
/// proxy asks the master owning it, and refuses a bad slot as Redis does.
fn slot_key_counts_come_from_the_slots_master(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let mut c = proxy.client();
    // One tag per master's range, so every master answers for one slot.
    for tag in ["a", "b", "c"] {
        let slot = key_slot(tag.as_bytes());
        let keys: Vec<String> = (0..3).map(|i| format!("{{{tag}}}:{i}")).collect();
        for k in &keys {
            c.cmd(&["SET", k, "v"]).expect_ok();
        }
        let slot_text = slot.to_string();
        assert_eq!(
            c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot_text]),
            Reply::Int(3),
            "slot {slot}"
        );
        let got = c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "10"]);
        let mut got: Vec<String> = got
            .expect_array()
            .iter()
            .map(|k| k.expect_str().to_string())
            .collect();
        got.sort();
        assert_eq!(got, keys);
        let two = c.cmd(&["CLUSTER", "GETKEYSINSLOT", &slot_text, "2"]);
        assert_eq!(two.expect_array().len(), 2);
    }
    let owners: std::collections::HashSet<_> = ["a", "b", "c"]
        .iter()
        .map(|t| cluster.master_for_slot(key_slot(t.as_bytes())))
        .collect();
    assert_eq!(owners.len(), 3, "the tags should span the masters");
    // An empty slot counts 0.
    let empty = key_slot(b"nothing-here").to_string();
    assert_eq!(
        c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &empty]),
        Reply::Int(0)
    );

    // Bad slots and counts: the errors a Redis node gives.
    let master = cluster.master_for_slot(0).unwrap();
    let mut direct = cluster.client(master);
    for args in [
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"][..],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "-1", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "x", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT"],
    ] {
        let expected = direct.cmd(args);
        assert!(expected.is_error(), "{args:?}: {expected:?}");
        assert_eq!(c.cmd(args), expected, "{args:?}");
    }
    assert_eq!(
        c.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
        Reply::Error("ERR Invalid slot".into())
    );
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

/// `redis-cli -c` and `redis-benchmark --cluster` work through the proxy,
/// and find every key whichever master holds it.
fn cluster_clients_work_through_the_proxy(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend) else {
        return;
    };
    let bins = require_redis().unwrap();
    let port = proxy.port().to_string();
    // Keys on every master.
    let keys: Vec<String> = (0..30).map(|i| format!("cli:{i}")).collect();
    let owners: std::collections::BTreeSet<u16> = keys
        .iter()
        .map(|k| {
            cluster
                .master_for_slot(slotway::cluster::key_slot(k.as_bytes()))
                .unwrap()
        })
        .collect();
    assert_eq!(owners.len(), 3);
    for key in &keys {
        let set = run(Command::new(&bins.cli).args(["-c", "-p", &port, "SET", key, key]));
        assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
        let get = run(Command::new(&bins.cli).args(["-c", "-p", &port, "GET", key]));
        assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), key);
    }

    let benchmark = bins.cli.with_file_name("redis-benchmark");
    let output = run(Command::new(&benchmark).args([
        "--cluster",
        "-p",
        &port,
        "-t",
        "set,get",
        "-n",
        "2000",
        "-c",
        "10",
        "-q",
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout).replace('\r', "\n");
    assert!(
        stdout.contains("Cluster has 2 master nodes"),
        "redis-benchmark saw another cluster: {stdout}"
    );
    assert_eq!(
        stdout.matches(&format!("127.0.0.1:{port}")).count(),
        2,
        "both masters at the proxy: {stdout}"
    );
    let done: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("requests per second"))
        .collect();
    assert_eq!(done.len(), 2, "{stdout}");
    // The benchmark's writes (keys with a hash tag per emulated master)
    // reached the real masters.
    let mut c = proxy.client();
    let written = c.cmd(&["KEYS", "key:*"]);
    let written = written.expect_array();
    assert!(!written.is_empty(), "{stdout}");
    for key in written {
        // The default payload: 3 bytes.
        let value = c.cmd(&["GET", key.expect_str()]);
        assert_eq!(value.as_bulk().map(<[u8]>::len), Some(3), "{value:?}");
    }
}

/// Behind NAT or a port mapping the proxy gives clients the address they
/// can reach, not the one it listens on.
fn the_advertised_address_is_what_cluster_clients_are_told(backend: Backend) {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let proxy = Proxy::start_with(
        &cluster.seeds_arg(),
        ProxyOptions {
            args: vec!["--advertise".into(), "10.1.2.3:6000".into()],
            ..ProxyOptions::default()
        },
    );
    let mut c = proxy.client();
    let slots = c.cmd(&["CLUSTER", "SLOTS"]);
    let node = slots.expect_array()[0].expect_array()[2].expect_array();
    assert_eq!(node[0], Reply::bulk("10.1.2.3"));
    assert_eq!(node[1], Reply::Int(6000));
    let text = c.cmd(&["CLUSTER", "NODES"]).expect_str().to_string();
    assert!(
        nodes::parse(&text)
            .iter()
            .all(|n| n.addr == "10.1.2.3:6000"),
        "{text}"
    );
    // Every proxy advertising one address is the same node to clients.
    assert_eq!(node[2], c.cmd(&["CLUSTER", "MYID"]));
}

on_both_backends!(
    cluster_commands_describe_masters_at_the_proxy_owning_every_slot,
    cluster_clients_work_through_the_proxy,
    slot_key_counts_come_from_the_slots_master,
    the_advertised_address_is_what_cluster_clients_are_told,
);
