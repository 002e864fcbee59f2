//! Learning the slot map: seeds that are down, readiness.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

fn not_ready_until_a_seed_answers_then_serves(backend: Backend) {
    let Some(_) = require_redis() else { return };
    // Nothing listens on these: the proxy starts anyway and keeps trying.
    let dead = [free_port(), free_port()];
    let proxy = Proxy::start_with(
        &format!("127.0.0.1:{},127.0.0.1:{}", dead[0], dead[1]),
        ProxyOptions {
            wait_ready: false,
            env: vec![("SLOTWAY_RETRY__FAILOVER_DEADLINE_MS".into(), "500".into())],
            ..ProxyOptions::default()
        },
    );
    eventually(Duration::from_secs(10), Duration::from_millis(20), || {
        proxy.admin_get("/healthz").is_ok()
    });
    for _ in 0..5 {
        assert_eq!(proxy.admin_get("/readyz").unwrap().0, 503);
        assert_eq!(proxy.admin_get("/healthz").unwrap().0, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Without a slot map a keyed request waits for one, up to the failover
    // deadline, then fails clearly; local commands answer at once.
    let mut c = proxy.client();
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    let started = std::time::Instant::now();
    assert_eq!(
        c.cmd(&["GET", "k"]),
        Reply::Error("CLUSTERDOWN Hash slot not served".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(500));

    // A proxy whose first seed is dead and second alive becomes ready.
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let mut proxy = Proxy::start_with(
        &format!("127.0.0.1:{},{}", dead[0], cluster.seeds_arg()),
        ProxyOptions {
            wait_ready: false,
            ..ProxyOptions::default()
        },
    );
    proxy.wait_ready(Duration::from_secs(10));
    let mut c = proxy.client();
    assert!(c.cmd(&["SET", "k", "v"]).is_ok());
    assert_eq!(c.cmd(&["GET", "k"]), Reply::bulk("v"));
}

on_both_backends!(not_ready_until_a_seed_answers_then_serves,);
