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

/// A node with the AOF on, appending to a file in `dir` (no writer).
fn appending(dir: &Path) -> Arc<Shared> {
    let shared = node_in(dir, AofConfig::default());
    let files = files::AofDir::open(dir, "appendonly.aof").unwrap();
    let incr = manifest::Manifest::default().next_incr("appendonly.aof");
    let mut node = shared.lock();
    node.aof.incr = Some(files.create_incr(&incr).unwrap());
    node.aof.enabled = true;
    node.feed.enable_aof();
    drop(node);
    shared
}

fn incr_file(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("appendonly.aof.1.incr.aof")).unwrap()
}

const SET_K: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";

#[test]
fn flush_writes_the_buffered_stream_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let shared = appending(dir.path());
    run_all(&shared, &[&["SET", "k", "v"]]);
    assert_eq!(incr_file(dir.path()), b"", "buffered until the flush");
    let mut node = shared.lock();
    flush(&mut node);
    assert_eq!(incr_file(dir.path()), SET_K);
    assert_eq!(node.aof.written, SET_K.len() as u64);
    assert_eq!(node.aof.current_size(), SET_K.len() as u64);
    flush(&mut node);
    assert_eq!(node.aof.written, SET_K.len() as u64, "nothing new");
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_is_kept_retried_and_refuses_writes_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let shared = appending(dir.path());
    // Every write to /dev/full fails with ENOSPC.
    let full = dir.path().join("full.aof");
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    let broken = files::AofDir::open(&dir.path().join("sub"), "x").unwrap();
    std::fs::rename(&full, broken.file_path("x.1.incr.aof")).unwrap();
    let working = {
        let mut node = shared.lock();
        let file = manifest::Manifest::default().next_incr("x");
        node.aof.incr.replace(broken.open_incr(&file).unwrap())
    };
    run_all(&shared, &[&["SET", "k", "v"]]);
    flush(&mut shared.lock());
    let refusal = run_all(&shared, &[&["SET", "k2", "v"]]);
    assert!(
        refusal.starts_with("-MISCONF Errors writing to the AOF file: No space left on device"),
        "{refusal}"
    );
    assert_eq!(run_all(&shared, &[&["GET", "k"]]), "$1\r\nv\r\n");
    {
        let mut node = shared.lock();
        assert_eq!(node.aof.written, 0);
        assert_eq!(node.aof.end_position(), SET_K.len() as u64);
        node.aof.incr = working;
        flush(&mut node);
        assert!(node.aof.status.write_error.is_none());
    }
    assert_eq!(incr_file(dir.path()), SET_K, "the kept bytes, once");
    assert_eq!(run_all(&shared, &[&["SET", "k2", "v"]]), "+OK\r\n");
}

#[test]
fn turning_the_aof_off_writes_what_is_buffered_and_hands_the_file_over() {
    let dir = tempfile::tempdir().unwrap();
    let shared = appending(dir.path());
    run_all(&shared, &[&["SET", "k", "v"]]);
    let mut node = shared.lock();
    set_enabled(&mut node, false);
    assert!(!node.feed.aof_enabled());
    assert_eq!(incr_file(dir.path()), SET_K);
    let (closing, upto) = node.aof.closing.take().unwrap();
    assert_eq!(
        (closing.size, upto),
        (SET_K.len() as u64, SET_K.len() as u64)
    );
    assert!(node.aof.incr.is_none());
    set_enabled(&mut node, true);
    assert!(node.feed.aof_enabled());
    assert_eq!(node.aof.request, Some(RewriteKind::Restart));
    assert!(node.aof.rewriting());
    assert_eq!(
        bgrewriteaof(&mut node),
        Err("ERR Background append only file rewriting already in progress")
    );
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
fn only_always_makes_a_batch_that_wrote_wait() {
    let dir = tempfile::tempdir().unwrap();
    let shared = appending(dir.path());
    let mut node = shared.lock();
    let before = node.feed.offset();
    node.feed.push(&[b"SET", b"k", b"v"]);
    flush(&mut node);
    node.aof.fsync = FsyncPolicy::Always;
    // No writer yet: nobody could release a waiter.
    assert!(sync_wait(&node, before).is_none());
    let _writer_side = node.aof.synced_tx.take();
    let wait = sync_wait(&node, before).unwrap();
    assert_eq!(wait.need, SET_K.len() as u64);
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
    node.aof.other_files = 10;
    node.aof.status.base_size = 4;
    node.aof.status.fsync_error = Some("x".into());
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
