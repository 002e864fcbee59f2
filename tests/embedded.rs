//! The embedded default: `slotway proxy` with no seeds starts six built-in
//! nodes as its children, creates the cluster and serves it; stopping the
//! proxy (cleanly or by SIGKILL) stops every node; a second start finds the
//! cluster in its directory and starts it again as it was. Nothing here
//! needs Redis installed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const NODES: u16 = 6;

fn start(dir: &Path, base: u16) -> Proxy {
    Proxy::start_with(
        "",
        ProxyOptions {
            env: vec![
                ("SLOTWAY_EMBEDDED__DIR".into(), dir.display().to_string()),
                ("SLOTWAY_EMBEDDED__BASE_PORT".into(), base.to_string()),
                ("SLOTWAY_EMBEDDED__NODE_TIMEOUT_MS".into(), "2000".into()),
            ],
            ready_timeout: Duration::from_secs(60),
            ..ProxyOptions::default()
        },
    )
}

fn node_id(port: u16) -> String {
    TestClient::connect(&format!("127.0.0.1:{port}"))
        .cmd(&["CLUSTER", "MYID"])
        .as_bulk()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .expect("CLUSTER MYID")
}

/// Waits until nothing listens on any node port.
fn assert_nodes_gone(base: u16) {
    let gone = try_eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match (base..base + NODES)
            .find(|p| TestClient::try_connect(&format!("127.0.0.1:{p}")).is_ok())
        {
            Some(port) => Err(format!("a node still listens on {port}")),
            None => Ok(()),
        },
    );
    assert!(gone.is_ok(), "{gone:?}");
}

#[test]
fn embedded_cluster_serves_stops_with_the_proxy_and_comes_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_port_block(NODES);

    let mut proxy = start(dir.path(), base);
    let mut c = proxy.client();
    for i in 0..300 {
        c.cmd(&["SET", &format!("embedded:{i}"), &i.to_string()])
            .expect_ok();
    }
    let values = c.cmd(&["MGET", "embedded:0", "embedded:150", "embedded:299"]);
    assert_eq!(
        values
            .expect_array()
            .iter()
            .map(|r| r.as_str().map(String::from))
            .collect::<Vec<_>>(),
        vec![Some("0".into()), Some("150".into()), Some("299".into())]
    );
    let info = TestClient::connect(&format!("127.0.0.1:{base}")).cmd(&["CLUSTER", "INFO"]);
    let info = info.as_str().expect("CLUSTER INFO text").to_string();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:6"), "{info}");
    assert!(info.contains("cluster_size:3"), "{info}");
    let ids: Vec<String> = (base..base + NODES).map(node_id).collect();

    // SIGTERM: a clean exit, and every node goes with the proxy.
    let status = proxy.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "proxy exit: {status:?}"
    );
    assert_nodes_gone(base);

    // The same directory: the same cluster (ids) and data come back.
    let mut proxy = start(dir.path(), base);
    let again: Vec<String> = (base..base + NODES).map(node_id).collect();
    assert_eq!(again, ids, "node ids after the restart");
    let mut c = proxy.client();
    for i in [0, 150, 299] {
        let value = c.cmd(&["GET", &format!("embedded:{i}")]);
        assert_eq!(
            value,
            Reply::bulk(i.to_string()),
            "embedded:{i} after the restart"
        );
    }
    c.cmd(&["SET", "after-restart", "1"]).expect_ok();
    assert_eq!(c.cmd(&["GET", "after-restart"]).as_bulk(), Some(&b"1"[..]));

    // SIGKILL: the proxy cannot clean up, yet its nodes still stop.
    proxy.kill();
    assert_nodes_gone(base);
}
