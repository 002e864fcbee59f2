//! Per-client limits: a client that never reads its replies is cut off
//! once they pass the output limit, and connections past `max_clients` are
//! refused; everyone else carries on.

// Test bodies are plain functions run once per backend (see
// `on_both_backends!`), so the test-only clippy relaxations are spelled out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn a_client_that_never_reads_is_disconnected_at_its_output_limit(backend: Backend) {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let proxy = Proxy::start_with(
        &cluster.seeds_arg(),
        ProxyOptions {
            env: vec![
                (
                    "SLOTWAY_LIMITS__CLIENT_OUTPUT_LIMIT_BYTES".into(),
                    "4000000".into(),
                ),
                ("SLOTWAY_LIMITS__MAX_CLIENTS".into(), "3".into()),
            ],
            ..ProxyOptions::default()
        },
    );
    let mut bystander = proxy.client();
    let value = "x".repeat(100_000);
    assert!(bystander.cmd(&["SET", "big", &value]).is_ok());

    // 2,000 GETs of 100 KB (200 MB of replies), and no reads.
    let mut greedy = TcpStream::connect(proxy.addr()).unwrap();
    greedy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let get = encode_command(&["GET", "big"]);
    for _ in 0..2000 {
        if greedy.write_all(&get).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        bystander.cmd(&["GET", "big"]).as_bulk().map(<[u8]>::len),
        Some(100_000)
    );

    // What the greedy client can still read is what the kernel buffers held
    // when the proxy gave up: far less than the 200 MB it asked for.
    let started = Instant::now();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match greedy.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            // Closed with requests still unread: the kernel sends a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the proxy did not close the connection: {e} after {total} bytes"),
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    assert!(
        total < 50_000_000,
        "read {total} bytes: the output limit did not apply"
    );
    let log = proxy.log_tail(200);
    assert!(log.contains("client output limit reached"), "{log}");

    // Two clients are connected (the bystander and a new one); the limit
    // is three, so a third is served and a fourth refused.
    let _second = proxy.client();
    let mut third = proxy.client();
    assert_eq!(third.cmd(&["PING"]), Reply::Simple("PONG".into()));
    let mut fourth = TcpStream::connect(proxy.addr()).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut refused = Vec::new();
    fourth.read_to_end(&mut refused).unwrap();
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");
    assert_eq!(bystander.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

on_both_backends!(a_client_that_never_reads_is_disconnected_at_its_output_limit,);
