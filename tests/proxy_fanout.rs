//! Keyless commands that need every master, through the proxy: SCAN (one
//! cursor over all masters, also across a slot migration), KEYS, DBSIZE,
//! RANDOMKEY, FLUSHALL/FLUSHDB, INFO keyspace, TIME, LASTSAVE, and CONFIG SET
//! on every node.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const KEYS: usize = 50_000;
/// More pages than any walk below can need: a bound, not a target.
const MAX_PAGES: usize = 10_000;

/// Loads `keys` as strings through `c`, pipelined.
fn load(c: &mut TestClient, keys: &[String]) {
    for chunk in keys.chunks(5000) {
        let cmds: Vec<[&str; 3]> = chunk.iter().map(|k| ["SET", k.as_str(), "v"]).collect();
        let replies = c.pipeline(&cmds);
        assert!(replies.iter().all(Reply::is_ok), "{:?}", replies.first());
    }
}

/// One SCAN call: the next cursor and the keys of the page.
fn scan_page(c: &mut TestClient, cursor: &str, opts: &[&str]) -> (String, Vec<String>) {
    let mut args = vec!["SCAN", cursor];
    args.extend_from_slice(opts);
    let reply = c.cmd(&args);
    let page = reply.expect_array();
    assert_eq!(page.len(), 2, "{reply:?}");
    let next = page[0].expect_str().to_string();
    let keys = page[1]
        .expect_array()
        .iter()
        .map(|k| k.expect_str().to_string())
        .collect();
    (next, keys)
}

/// A whole scan from cursor 0: every key returned, with how many times.
fn scan_all(c: &mut TestClient, opts: &[&str]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    let mut cursor = "0".to_string();
    for _ in 0..MAX_PAGES {
        let (next, keys) = scan_page(c, &cursor, opts);
        for k in keys {
            *seen.entry(k).or_insert(0) += 1;
        }
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
    panic!("SCAN did not finish in {MAX_PAGES} pages");
}

fn setup(backend: Backend, replicas: usize) -> Option<(RedisCluster, Proxy)> {
    require_redis()?;
    let cluster = RedisCluster::start_on(backend, 3, replicas);
    let proxy = Proxy::start(&cluster.seeds_arg());
    Some((cluster, proxy))
}

fn scan_keys_dbsize_randomkey_and_flush_cover_every_master(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key:{i}")).collect();
    load(&mut c, &keys);
    let hashes: BTreeSet<String> = (0..100).map(|i| format!("h:{i}")).collect();
    for h in &hashes {
        assert_eq!(c.cmd(&["HSET", h, "f", "v"]), Reply::Int(1));
    }
    // The keys really are spread over the three masters.
    for port in cluster.masters() {
        let n = cluster.client(port).cmd(&["DBSIZE"]).expect_int();
        assert!(n > 10_000, "master {port} holds only {n} keys");
    }

    // Every key exactly once: the masters hold disjoint slots.
    let seen = scan_all(&mut c, &["COUNT", "1000"]);
    assert_eq!(seen.len(), KEYS + hashes.len());
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(repeated.is_empty(), "returned more than once: {repeated:?}");
    assert!(keys.iter().all(|k| seen.contains_key(k)));

    // MATCH and TYPE reach every master.
    let found = scan_all(&mut c, &["MATCH", "h:*", "COUNT", "500", "TYPE", "hash"]);
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), hashes);
    assert!(scan_all(&mut c, &["MATCH", "h:*", "TYPE", "string", "COUNT", "500"]).is_empty());
    // A master's own error comes back, and the connection stays usable.
    let bad = c.cmd(&["SCAN", "0", "COUNT", "0"]);
    assert!(
        bad.expect_error().starts_with("ERR syntax error"),
        "{bad:?}"
    );
    assert_eq!(
        c.cmd(&["SCAN", "12abc"]),
        Reply::Error("ERR invalid cursor".into())
    );
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));

    // KEYS merged, DBSIZE summed, INFO keyspace summed.
    let listed: BTreeSet<String> = c
        .cmd(&["KEYS", "h:*"])
        .expect_array()
        .iter()
        .map(|k| k.expect_str().to_string())
        .collect();
    assert_eq!(listed, hashes);
    let total = (KEYS + hashes.len()) as i64;
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(total));
    let info = c.cmd(&["INFO", "keyspace"]);
    assert!(
        info.expect_str().contains(&format!("db0:keys={total},")),
        "{info:?}"
    );
    // TIME and LASTSAVE: one master's.
    assert_eq!(c.cmd(&["TIME"]).expect_array().len(), 2);
    assert!(c.cmd(&["LASTSAVE"]).expect_int() >= 0);
    // RANDOMKEY: an existing key, from any master.
    for _ in 0..20 {
        let key = c.cmd(&["RANDOMKEY"]);
        let key = key.expect_str();
        assert!(seen.contains_key(key), "{key}");
    }

    // FLUSHALL empties every master.
    assert!(c.cmd(&["FLUSHALL"]).is_ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    for port in cluster.masters() {
        assert_eq!(cluster.client(port).cmd(&["DBSIZE"]), Reply::Int(0));
    }
    assert!(c.cmd(&["RANDOMKEY"]).is_nil());
    assert!(scan_all(&mut c, &[]).is_empty());
    assert_eq!(c.cmd(&["KEYS", "*"]), Reply::Array(Some(vec![])));
    // FLUSHDB with its options, and a bad one refused by the masters.
    load(&mut c, &keys[..100]);
    assert!(c.cmd(&["FLUSHDB", "ASYNC"]).is_ok());
    assert!(c.cmd(&["FLUSHALL", "SYNC"]).is_ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    assert!(c.cmd(&["FLUSHALL", "NOW"]).is_error());
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

fn scan_finds_every_key_across_a_slot_migration(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 0) else {
        return;
    };
    let mut c = proxy.client();
    // The walk visits masters by their lowest slot: the owner of slot 0
    // first, the owner of slot 16383 last. Keys of a slot on the last
    // master move to the first one while the scan is between them, so a
    // walk that did not notice the move would miss them.
    let first = cluster.master_for_slot(0).unwrap();
    let last = cluster.master_for_slot(16383).unwrap();
    assert_ne!(first, last);
    let slot = 16000;
    assert_eq!(cluster.master_for_slot(slot), Some(last));
    let tag = hash_tag_for_slot(slot);
    let mut keys: Vec<String> = (0..KEYS).map(|i| format!("key:{i}")).collect();
    keys.extend((0..200).map(|i| format!("{{{tag}}}:{i}")));
    load(&mut c, &keys);

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut pages = 0;
    let mut page = |c: &mut TestClient, cursor: &mut String, seen: &mut BTreeSet<String>| {
        let (next, found) = scan_page(c, cursor, &["COUNT", "1000"]);
        seen.extend(found);
        *cursor = next;
        pages += 1;
        assert!(pages < MAX_PAGES, "SCAN did not finish");
    };
    // Past the first master (a third of the keys), before the last.
    while seen.len() < KEYS / 2 {
        page(&mut c, &mut cursor, &mut seen);
        assert_ne!(cursor, "0", "the walk ended early");
    }
    let migration = cluster.begin_migration(slot, first);
    assert_eq!(cluster.migrate_keys(&migration, 100), 100);
    for _ in 0..3 {
        page(&mut c, &mut cursor, &mut seen);
    }
    cluster.finish_migration(migration);
    while cursor != "0" {
        page(&mut c, &mut cursor, &mut seen);
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} keys never returned, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(seen.len(), keys.len(), "no key that does not exist");
    assert_eq!(cluster.master_for_slot(slot), Some(first));
}

fn config_set_reaches_every_node_and_config_get_one_master(backend: Backend) {
    let Some((cluster, proxy)) = setup(backend, 1) else {
        return;
    };
    let mut c = proxy.client();
    let get = |c: &mut TestClient| -> Reply {
        c.cmd(&["CONFIG", "GET", "cluster-require-full-coverage"])
    };
    assert_eq!(
        get(&mut c),
        Reply::Array(Some(vec![
            Reply::bulk("cluster-require-full-coverage"),
            Reply::bulk("yes")
        ]))
    );
    assert!(
        c.cmd(&["CONFIG", "SET", "cluster-require-full-coverage", "no"])
            .is_ok()
    );
    // Masters and replicas alike, so the setting survives a failover.
    assert_eq!(cluster.ports().len(), 6);
    for port in cluster.ports() {
        assert_eq!(
            get(&mut cluster.client(port)).expect_array()[1],
            Reply::bulk("no"),
            "node {port}"
        );
    }
    assert_eq!(get(&mut c).expect_array()[1], Reply::bulk("no"));
    // Every node refuses alike: Redis's own error, once.
    let refused = c.cmd(&["CONFIG", "SET", "no-such-setting", "1"]);
    assert!(
        refused.expect_error().starts_with("ERR Unknown option"),
        "{refused:?}"
    );
    assert!(c.cmd(&["CONFIG", "RESETSTAT"]).is_ok());
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

on_both_backends!(
    scan_keys_dbsize_randomkey_and_flush_cover_every_master,
    scan_finds_every_key_across_a_slot_migration,
    config_set_reaches_every_node_and_config_get_one_master,
);
