//! Resharding with the standard tool (`redis-cli --cluster reshard`) and
//! with Slotway's (`slotway cluster reshard`), while clients write through
//! the proxy: zero errors, every acknowledged write readable, on real
//! redis-server nodes and on built-in nodes alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// How long one reshard run may take.
const RESHARD_TIMEOUT: Duration = Duration::from_secs(120);

fn run_tool(mut command: Command, what: &str) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let status = process::wait_exit(&mut child, RESHARD_TIMEOUT);
    if status.is_none() {
        process::kill_and_reap(&mut child);
    }
    let output = child.wait_with_output().expect("collect output");
    assert!(
        status.is_some_and(|s| s.success()),
        "{what} failed ({status:?}):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn slots_moved_under_load(backend: Backend) {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_on(backend, 3, 0);
    let proxy = Proxy::start(&cluster.seeds_arg());
    let mut c = proxy.client();
    for i in 0..2000 {
        c.cmd(&["SET", &format!("seed:{i}"), "v"]).expect_ok();
    }
    let writers = [
        LoadLoop::start(proxy.addr(), |i| format!("load-a:{i}"), 500),
        LoadLoop::start(proxy.addr(), |i| format!("load-b:{i}"), 500),
    ];
    let masters = cluster.masters();
    let (a, b) = (masters[0], masters[1]);
    let (id_a, id_b) = (cluster.node_id(a), cluster.node_id(b));

    // The standard tool: 300 slots (with their keys) from A to B.
    let mut cli = Command::new(cluster.cli_bin());
    cli.args(["--cluster", "reshard", &format!("127.0.0.1:{a}")])
        .args(["--cluster-from", &id_a, "--cluster-to", &id_b])
        .args(["--cluster-slots", "300", "--cluster-yes"]);
    run_tool(cli, "redis-cli --cluster reshard");
    // Slotway's tool: 200 slots back from B to A.
    let mut ours = Command::new(slotway_bin());
    ours.args(["cluster", "reshard", &format!("127.0.0.1:{b}")])
        .args(["--from", &id_b, "--to", &id_a, "--slots", "200", "--yes"]);
    run_tool(ours, "slotway cluster reshard");

    let reports = writers.map(LoadLoop::finish);
    for report in &reports {
        assert!(report.writes > 50, "{report:?}");
        assert!(report.write_errors.is_empty(), "{:?}", report.write_errors);
        assert!(report.read_errors.is_empty(), "{:?}", report.read_errors);
    }
    for report in &reports {
        for (k, v) in &report.acked {
            assert_eq!(c.cmd(&["GET", k]), Reply::bulk(v), "{k}");
        }
    }
    for i in 0..2000 {
        assert_eq!(c.cmd(&["GET", &format!("seed:{i}")]), Reply::bulk("v"));
    }
    // Both tools agree the cluster is consistent afterwards.
    let mut check = Command::new(cluster.cli_bin());
    check.args(["--cluster", "check", &format!("127.0.0.1:{a}")]);
    run_tool(check, "redis-cli --cluster check");
    let mut check = Command::new(slotway_bin());
    check.args(["cluster", "check", &format!("127.0.0.1:{b}")]);
    run_tool(check, "slotway cluster check");
}

on_both_backends!(slots_moved_under_load);
