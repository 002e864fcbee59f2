//! A link against scripted fake nodes: what a request learns when the node
//! answers, is down, drops the connection, or freezes.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::metrics::Metrics;

/// How the fake node treats requests after answering the link's PING.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `+OK` to everything.
    Answer,
    /// Reads the first request, then closes the connection.
    CloseAfterRequest,
    /// Reads everything, answers nothing (a frozen process).
    Freeze,
}

/// Binds a loopback port below the kernel's outgoing range. Ports are not
/// reused within the process (a test relies on one staying closed).
async fn listen() -> TcpListener {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..200u32 {
        let attempt = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (seed.wrapping_add(attempt.wrapping_mul(104_729)) % 10000) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
    }
    panic!("no free port in 20000..30000");
}

/// A node that answers the link's PING, then behaves as told.
async fn fake_node(behaviour: Behaviour) -> String {
    let listener = listen().await;
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut pinged = false;
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let data = &buf[..n];
                    if !pinged && data.starts_with(PING) {
                        pinged = true;
                        socket.write_all(b"+PONG\r\n").await.unwrap();
                        if data.len() == PING.len() {
                            continue;
                        }
                    }
                    match behaviour {
                        // One +OK per request in this read (each is one
                        // short multibulk).
                        Behaviour::Answer => {
                            let requests = data.iter().filter(|&&b| b == b'*').count()
                                - usize::from(data.starts_with(PING));
                            socket
                                .write_all(&b"+OK\r\n".repeat(requests))
                                .await
                                .unwrap();
                        }
                        Behaviour::CloseAfterRequest => return,
                        Behaviour::Freeze => {}
                    }
                }
            });
        }
    });
    addr
}

fn settings() -> LinkSettings {
    LinkSettings {
        connect_timeout: Duration::from_millis(500),
        backoff_max: Duration::from_millis(100),
        request_timeout: Duration::from_millis(300),
        max_dedicated: 4,
    }
}

fn node(addr: &str, workers: &Workers) -> Arc<Node> {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    Node::new(addr, 1, &settings(), &metrics.node(addr), workers)
}

async fn until_ready(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.is_ready() {
        assert!(
            Instant::now() < deadline,
            "link to {} never became ready",
            node.addr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";

#[tokio::test]
async fn replies_come_back_in_order() {
    let workers = Workers::start(1).unwrap();
    let node = node(&fake_node(Behaviour::Answer).await, &workers);
    until_ready(&node).await;
    let pending: Vec<_> = (0..100)
        .map(|_| node.send(Bytes::from_static(SET), false))
        .collect();
    for rx in pending {
        assert_eq!(rx.await.unwrap().unwrap(), Bytes::from_static(b"+OK\r\n"));
    }
    workers.stop();
}

#[tokio::test]
async fn a_node_that_is_down_refuses_at_once_and_nothing_was_sent() {
    let workers = Workers::start(1).unwrap();
    // Bound, then closed: nothing listens there.
    let addr = listen().await.local_addr().unwrap().to_string();
    let node = node(&addr, &workers);
    let started = Instant::now();
    let err = node
        .send(Bytes::from_static(SET), false)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((err.kind, err.sent), (FailureKind::Down, Sent::No));
    assert!(started.elapsed() < Duration::from_millis(100));
    workers.stop();
}

#[tokio::test]
async fn a_lost_connection_means_the_request_may_have_run() {
    let workers = Workers::start(1).unwrap();
    let node = node(&fake_node(Behaviour::CloseAfterRequest).await, &workers);
    until_ready(&node).await;
    // The reply channel is dropped with the connection: the dispatcher
    // reads that as "sent, outcome unknown" and never resends a write.
    assert!(node.send(Bytes::from_static(SET), false).await.is_err());
    workers.stop();
}

#[tokio::test]
async fn a_frozen_node_is_given_up_after_the_request_timeout() {
    let workers = Workers::start(1).unwrap();
    let node = node(&fake_node(Behaviour::Freeze).await, &workers);
    until_ready(&node).await;
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        node.send(Bytes::from_static(SET), false),
    )
    .await
    .expect("the link gives up on a frozen node by itself");
    assert!(outcome.is_err(), "{outcome:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    workers.stop();
}
