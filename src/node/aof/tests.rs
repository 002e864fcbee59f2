use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::node::bus::BusHandle;
use crate::node::client::ClientState;
use crate::node::cluster::{ClusterNode, ClusterState, random_node_id};
use crate::node::cmd::tx::harness::run;
use crate::node::config::NodeConfig;
use crate::node::state::NodeState;

pub(crate) const NOW: i64 = 1_700_000_000_000;

/// A node serving every slot, working in `dir`, with `aof` settings.
pub(crate) fn node_in(dir: &Path, aof: AofConfig) -> Arc<Shared> {
    let me = ClusterNode::new(random_node_id(), "127.0.0.1", 7000, 17000);
    let id = me.id.clone();
    let mut cluster = ClusterState::new(me, true);
    cluster.set_owners(0..16384, Some(&id));
    let mut config = NodeConfig::for_port(7000);
    config.dir = dir.to_path_buf();
    config.aof = aof;
    let (bus, _) = BusHandle::new();
    let node = NodeState::new(cluster);
    Arc::new(Shared::new(config, node, bus, CancellationToken::new()))
}

/// Runs each command as one client; returns the last reply.
pub(crate) fn run_all(shared: &Arc<Shared>, cmds: &[&[&str]]) -> String {
    let mut c = ClientState::new(1, None);
    let mut last = String::new();
    for cmd in cmds {
        last = run(shared, &mut c, NOW, cmd);
    }
    last
}

fn field<'a>(fields: &'a [(&'static str, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| *k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[test]
fn turning_the_aof_on_buffers_the_stream_and_asks_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    let mut node = shared.lock();
    assert!(!node.feed.aof_enabled());
    set_enabled(&mut node, true);
    assert!(node.aof.enabled && node.feed.aof_enabled());
    assert_eq!(node.aof.request, Some(RewriteKind::Restart));
    assert!(node.aof.rewriting());
    assert_eq!(
        bgrewriteaof(&mut node),
        Err("ERR Background append only file rewriting already in progress")
    );
    node.aof.request = None;
    node.feed.push(&[b"SET", b"k", b"v"]);
    set_enabled(&mut node, false);
    assert!(!node.feed.aof_enabled());
    let leftover = node.aof.leftover.take().unwrap();
    assert!(leftover.starts_with(b"*3\r\n$3\r\nSET"), "{leftover:?}");
}

#[test]
fn bgrewriteaof_compacts_when_on_and_writes_a_base_when_off() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    let mut node = shared.lock();
    bgrewriteaof(&mut node).unwrap();
    assert_eq!(node.aof.request, Some(RewriteKind::Restart));
    node.aof.request = None;
    node.aof.enabled = true;
    bgrewriteaof(&mut node).unwrap();
    assert_eq!(node.aof.request, Some(RewriteKind::Compact));
}

#[test]
fn a_full_sync_restarts_the_aof_only_when_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    let mut node = shared.lock();
    rewrite_after_sync(&mut node);
    assert_eq!(node.aof.request, None);
    node.aof.enabled = true;
    rewrite_after_sync(&mut node);
    assert_eq!(node.aof.request, Some(RewriteKind::Restart));
}

#[test]
fn writes_are_refused_with_misconf_while_the_file_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    {
        let mut node = shared.lock();
        node.aof.enabled = true;
        node.aof.status.write_error = Some("No space left on device (os error 28)".into());
    }
    assert_eq!(
        run_all(&shared, &[&["SET", "k", "v"]]),
        "-MISCONF Errors writing to the AOF file: No space left on device (os error 28)\r\n"
    );
    // Reads still work, and a transaction with a refused write fails.
    assert_eq!(run_all(&shared, &[&["GET", "k"]]), "$-1\r\n");
    assert!(
        run_all(&shared, &[&["MULTI"], &["SET", "k", "v"], &["EXEC"]]).starts_with("-EXECABORT"),
    );
    shared.lock().aof.status.write_error = None;
    assert_eq!(run_all(&shared, &[&["SET", "k", "v"]]), "+OK\r\n");
}

#[test]
fn only_always_makes_a_batch_that_wrote_wait() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    let mut node = shared.lock();
    node.aof.enabled = true;
    node.feed.enable_aof();
    // No writer yet: nobody could release a waiter.
    let before = node.feed.offset();
    node.feed.push(&[b"SET", b"k", b"v"]);
    node.aof.fsync = FsyncPolicy::Always;
    assert!(sync_wait(&node, before).is_none());
    let _writer_side = node.aof.synced_tx.take();
    let wait = sync_wait(&node, before).unwrap();
    assert_eq!(wait.need, node.aof.taken + 1);
    assert!(
        sync_wait(&node, node.feed.offset()).is_none(),
        "nothing written"
    );
    node.aof.fsync = FsyncPolicy::EverySec;
    assert!(sync_wait(&node, before).is_none());
}

#[tokio::test]
async fn a_waiting_batch_is_released_once_its_number_is_published() {
    let (tx, rx) = watch::channel(0);
    let wait = SyncWait {
        synced: rx,
        need: 2,
    };
    let waiting = tokio::spawn(wait.wait());
    tx.send_replace(1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!waiting.is_finished());
    tx.send_replace(2);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn info_names_the_fields_as_redis() {
    let dir = tempfile::tempdir().unwrap();
    let shared = node_in(dir.path(), AofConfig::default());
    let mut node = shared.lock();
    let off = info_fields(&node);
    assert_eq!(field(&off, "aof_enabled"), "0");
    assert_eq!(field(&off, "aof_last_write_status"), "ok");
    assert!(!off.iter().any(|(k, _)| *k == "aof_current_size"));
    node.aof.enabled = true;
    node.aof.status.current_size = 10;
    node.aof.status.base_size = 4;
    node.aof.status.write_error = Some("x".into());
    node.aof.status.last_rewrite_ok = false;
    node.aof.request = Some(RewriteKind::Compact);
    let on = info_fields(&node);
    for (name, value) in [
        ("aof_enabled", "1"),
        ("aof_rewrite_in_progress", "1"),
        ("aof_last_bgrewrite_status", "err"),
        ("aof_last_write_status", "err"),
        ("aof_current_size", "10"),
        ("aof_base_size", "4"),
    ] {
        assert_eq!(field(&on, name), value, "{name}");
    }
}
