//! A slot moves between masters while a client keeps reading and writing
//! through the proxy: the client sees no ASK, no MOVED, no error.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use slotway::cluster::key_slot;

fn a_slot_migrates_under_load_without_errors(backend: Backend) {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let proxy = Proxy::start(&cluster.seeds_arg());
    let tag = "migrating";
    let slot = key_slot(tag.as_bytes());
    let key = move |i: usize| format!("{{{tag}}}:{i}");

    // Keys in the migrating slot, and keys all over the cluster.
    let mut c = proxy.client();
    for i in 0..300 {
        assert!(c.cmd(&["SET", &key(i), "seed"]).is_ok());
    }
    let in_slot = LoadLoop::start(proxy.addr(), key, 300);
    let elsewhere = LoadLoop::start(proxy.addr(), |i| format!("other:{i}"), 500);

    let from = cluster.master_for_slot(slot).unwrap();
    let to = cluster.masters().into_iter().find(|&p| p != from).unwrap();
    let migration = cluster.begin_migration(slot, to);
    // Half the keys move: the source answers ASK for those.
    let moved = cluster.migrate_keys(&migration, 150);
    assert_eq!(moved, 150);
    std::thread::sleep(Duration::from_millis(700));
    // A multi-key read across moved and unmoved keys of the slot gets
    // TRYAGAIN from Redis while the slot is split; the proxy retries it
    // until the migration ends, within its retry deadline.
    let addr = proxy.addr().to_string();
    let mget =
        std::thread::spawn(move || TestClient::connect(&addr).cmd(&["MGET", &key(0), &key(299)]));
    std::thread::sleep(Duration::from_millis(300));
    cluster.finish_migration(migration);
    let mget = mget.join().unwrap();
    assert_eq!(mget.expect_array().len(), 2, "{mget:?}");
    // Now the old owner answers MOVED.
    std::thread::sleep(Duration::from_millis(700));

    let reports = [in_slot.finish(), elsewhere.finish()];
    for report in &reports {
        assert!(report.writes > 100, "{report:?}");
        assert!(report.write_errors.is_empty(), "{:?}", report.write_errors);
        assert!(report.read_errors.is_empty(), "{:?}", report.read_errors);
    }
    assert_eq!(cluster.master_for_slot(slot), Some(to));
    // Every key is readable, with the value last acknowledged.
    for report in &reports {
        for (k, v) in &report.acked {
            assert_eq!(c.cmd(&["GET", k]), Reply::bulk(v), "{k}");
        }
    }
    let metrics = proxy.metrics_text();
    let counter = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert!(
        counter("slotway_redirects_total{kind=\"ask\"}") > 0.0,
        "{metrics}"
    );
    let moved = counter("slotway_redirects_total{kind=\"moved\"}");
    assert!(moved > 0.0, "{metrics}");
    // A storm of MOVED replies is coalesced: far fewer refreshes than
    // redirects, and never more than the rate limit allows.
    let refreshes = counter("slotway_topology_refreshes_total{reason=\"moved\"");
    assert!(
        refreshes <= 30.0,
        "{refreshes} refreshes for {moved} MOVED replies"
    );
}

on_both_backends!(a_slot_migrates_under_load_without_errors,);
