//! The soak test (not in the default suite; `bash benches/soak.sh` runs
//! it): a writer through the proxy for `SOAK_SECS` seconds (600 by
//! default) while a master is killed and restarted every
//! `SOAK_PERIOD_SECS` (30). Backend: `SOAK_BACKEND` =
//! `builtin` (default) or `redis`. It prints the acknowledged writes, the
//! errors by kind, the keys lost and the longest stall. Replication is
//! asynchronous, in Redis as here: a write acknowledged in the instant before
//! its master is SIGKILLed may not have reached the replica yet. With one
//! sequential writer that is at most a write or two per kill, so the test
//! fails if more keys are lost than masters were killed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the writer saw.
#[derive(Default, Debug)]
struct Tally {
    acked: Vec<(String, String)>,
    errors: BTreeMap<String, usize>,
    longest: Duration,
    writes: usize,
}

/// SETs fresh keys through the proxy until `stop`; reconnects when the
/// connection drops (counted as an error of kind "io").
fn writer(addr: String, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut client: Option<TestClient> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match &mut client {
            Some(c) => c,
            None => match TestClient::try_connect(&addr) {
                Ok(mut c) => {
                    c.set_timeout(Duration::from_secs(30));
                    client.insert(c)
                }
                Err(_) => {
                    *tally.errors.entry("connect".into()).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let key = format!("soak:{i}");
        let value = format!("v{i}");
        let started = Instant::now();
        let reply = c.try_cmd(&["SET", &key, &value]);
        tally.longest = tally.longest.max(started.elapsed());
        tally.writes += 1;
        match reply {
            Ok(Reply::Simple(ok)) if ok == "OK" => tally.acked.push((key, value)),
            Ok(Reply::Error(e)) => {
                let kind: String = e.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                *tally.errors.entry(kind).or_default() += 1;
            }
            Ok(other) => *tally.errors.entry(format!("{other:?}")).or_default() += 1,
            Err(_) => {
                *tally.errors.entry("io".into()).or_default() += 1;
                client = None;
            }
        }
        i += 1;
    }
    tally
}

#[test]
#[ignore = "soak: minutes long; run with `bash benches/soak.sh`"]
fn soak_writes_through_repeated_master_kills() {
    let Some(_) = require_redis() else { return };
    let secs = env_u64("SOAK_SECS", 600);
    let period = Duration::from_secs(env_u64("SOAK_PERIOD_SECS", 30));
    let backend = match std::env::var("SOAK_BACKEND").as_deref() {
        Ok("redis") => Backend::Redis,
        _ => Backend::Builtin,
    };
    let mut cluster = RedisCluster::start_with(ClusterOptions {
        backend,
        node_timeout_ms: 2000,
        appendonly: true,
        ..ClusterOptions::default()
    });
    let proxy = Proxy::start(&cluster.seeds_arg());
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (addr, stop) = (proxy.addr().to_string(), Arc::clone(&stop));
        std::thread::spawn(move || writer(addr, stop))
    };
    let started = Instant::now();
    let mut kills = 0;
    let mut promotions = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(period.min(Duration::from_secs(secs).saturating_sub(started.elapsed())));
        if started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let masters = cluster.masters();
        let victim = masters[kills % masters.len()];
        let Some(&replica) = cluster.replicas_of(victim).first() else {
            eprintln!("soak: {victim} has no replica yet; skipping this round");
            continue;
        };
        let replica_id = cluster.node_id(replica);
        cluster.kill(victim);
        kills += 1;
        let killed = Instant::now();
        let promoted = try_eventually(Duration::from_secs(30), Duration::from_millis(50), || {
            cluster
                .node_for_port(replica)
                .is_some_and(|n| n.master && !n.slots.is_empty())
        });
        promotions.push(promoted.is_ok().then(|| killed.elapsed()));
        cluster.restart(victim);
        let rejoined = try_eventually(Duration::from_secs(30), Duration::from_millis(100), || {
            cluster
                .node_for_port(victim)
                .is_some_and(|n| n.master_id.as_deref() == Some(replica_id.as_str()))
        });
        eprintln!(
            "soak {:>4}s: killed {victim}; {replica} promoted after {:?}; {victim} back as its replica: {}",
            started.elapsed().as_secs(),
            promotions.last().copied().flatten(),
            rejoined.is_ok()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let tally = handle.join().unwrap();
    cluster.wait_converged(Duration::from_secs(60));
    let mut c = proxy.client();
    let lost: Vec<&String> = tally
        .acked
        .iter()
        .filter(|(k, v)| c.cmd(&["GET", k]) != Reply::bulk(v))
        .map(|(k, _)| k)
        .collect();
    eprintln!(
        "soak result ({}, {secs} s, {kills} kills): {} writes, {} acknowledged, errors by kind {:?}, \
         acknowledged keys lost {}, longest stall {:?}, promotion times {:?}",
        backend.name(),
        tally.writes,
        tally.acked.len(),
        tally.errors,
        lost.len(),
        tally.longest,
        promotions
    );
    assert!(
        lost.is_empty(),
        "lost: {:?}",
        lost.iter().take(20).collect::<Vec<_>>()
    );
}
