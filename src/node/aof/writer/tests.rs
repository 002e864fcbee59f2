use std::fs;
use std::path::Path;

use super::*;
use crate::node::aof::tests::{node_in, run_all};
use crate::node::aof::{AofConfig, bgrewriteaof, set_enabled};
use crate::node::propagate::tests::content;

fn on() -> AofConfig {
    AofConfig {
        enabled: true,
        ..AofConfig::default()
    }
}

fn aof_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".aof"))
        .collect();
    names.sort();
    names
}

fn manifest(root: &Path) -> String {
    fs::read_to_string(root.join("appendonlydir/appendonly.aof.manifest")).unwrap()
}

fn rewrites(shared: &Arc<Shared>) -> u64 {
    shared.lock().aof.status.rewrites
}

fn current_size(shared: &Arc<Shared>) -> u64 {
    shared.lock().aof.current_size()
}

/// Turns the writer until `done` holds (a rewrite runs on another thread).
fn turn_until(writer: &mut Writer, what: &str, done: impl Fn(&Arc<Shared>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let shared = Arc::clone(&writer.shared);
    while !done(&shared) {
        assert!(Instant::now() < deadline, "not done in time: {what}");
        writer.turn(false);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A node started again on `root`: the keyspace its AOF loads.
fn reloaded(root: &Path) -> Arc<Shared> {
    let shared = node_in(root, on());
    let writer = Writer::open(Arc::clone(&shared)).unwrap();
    drop(writer);
    shared
}

const KEYS: [&str; 4] = ["s", "l", "h", "t"];

fn write_mix(shared: &Arc<Shared>) {
    run_all(
        shared,
        &[
            &["SET", "s", "v"],
            &["RPUSH", "l", "a", "b"],
            &["HSET", "h", "f", "1"],
            &["SET", "t", "x", "PX", "100000"],
            &["INCR", "n"],
            &["INCR", "n"],
        ],
    );
}

fn same_data(a: &Arc<Shared>, b: &Arc<Shared>) {
    for key in KEYS.iter().chain(&["n"]) {
        assert_eq!(content(a, key), content(b, key), "{key}");
    }
    assert_eq!(a.lock().db.len(), b.lock().db.len());
}

#[test]
fn fsync_policy_selection() {
    let second = Duration::from_secs(1);
    assert!(fsync_due(FsyncPolicy::Always, Duration::ZERO));
    assert!(!fsync_due(
        FsyncPolicy::EverySec,
        Duration::from_millis(999)
    ));
    assert!(fsync_due(FsyncPolicy::EverySec, second));
    assert!(!fsync_due(FsyncPolicy::No, second * 3600));
}

#[test]
fn a_first_start_creates_the_files_and_writes_reload() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), on());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    assert_eq!(
        manifest(root.path()),
        "file appendonly.aof.1.base.aof seq 1 type b\n\
         file appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(shared.lock().feed.aof_enabled());
    write_mix(&shared);
    writer.turn(false);
    let size = current_size(&shared);
    assert!(size > 0);
    assert_eq!(
        fs::metadata(root.path().join("appendonlydir/appendonly.aof.1.incr.aof"))
            .unwrap()
            .len(),
        size
    );
    drop(writer);
    same_data(&shared, &reloaded(root.path()));
}

#[test]
fn always_publishes_a_batch_only_once_it_is_fsynced() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), on());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    let synced = shared.lock().aof.synced.clone();
    shared.lock().aof.fsync = FsyncPolicy::Always;
    run_all(&shared, &[&["SET", "k", "v"]]);
    let need = {
        let mut node = shared.lock();
        crate::node::aof::flush(&mut node);
        crate::node::aof::sync_wait(&node, 0).unwrap().need
    };
    assert!(need > 0);
    assert_eq!(*synced.borrow(), 0, "written, not fsynced yet");
    writer.turn(false);
    assert_eq!(*synced.borrow(), need, "fsynced in the next turn");
}

#[test]
fn a_rewrite_switches_files_and_keeps_writes_made_meanwhile() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), on());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    for i in 0..200 {
        run_all(&shared, &[&["SET", "s", &i.to_string()]]);
    }
    write_mix(&shared);
    writer.turn(false);
    let before = current_size(&shared);
    bgrewriteaof(&mut shared.lock()).unwrap();
    // The rewrite starts: the manifest names the new incremental file at
    // once, after the old ones.
    writer.turn(false);
    assert!(shared.lock().aof.rewriting());
    assert!(
        manifest(root.path()).contains("appendonly.aof.2.incr.aof seq 2 type i"),
        "{}",
        manifest(root.path())
    );
    // Writes while the base is written go to the new file.
    run_all(&shared, &[&["SET", "during", "1"], &["INCR", "n"]]);
    turn_until(&mut writer, "rewrite", |s| rewrites(s) == 1);
    writer.turn(false);
    assert_eq!(
        manifest(root.path()),
        "file appendonly.aof.2.base.aof seq 2 type b\n\
         file appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert_eq!(
        aof_files(root.path()),
        ["appendonly.aof.2.base.aof", "appendonly.aof.2.incr.aof"]
    );
    let after = current_size(&shared);
    assert!(after < before / 4, "{before} -> {after}");
    let status = shared.lock().aof.status.clone();
    assert!(!status.rewrite_in_progress && status.last_rewrite_ok);
    assert!(status.base_size > 0 && status.base_size <= after);
    drop(writer);
    let copy = reloaded(root.path());
    same_data(&shared, &copy);
    assert_eq!(content(&copy, "during"), content(&shared, "during"));
}

#[test]
fn turning_the_aof_on_at_run_time_starts_from_the_keyspace() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), AofConfig::default());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    write_mix(&shared);
    writer.turn(false);
    assert!(
        !root.path().join("appendonlydir").exists(),
        "nothing while off"
    );
    set_enabled(&mut shared.lock(), true);
    writer.turn(false);
    // Until the base is written the manifest does not name the new file.
    run_all(&shared, &[&["INCR", "n"]]);
    turn_until(&mut writer, "restart", |s| rewrites(s) == 1);
    assert_eq!(
        manifest(root.path()),
        "file appendonly.aof.1.base.aof seq 1 type b\n\
         file appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    writer.turn(false);
    drop(writer);
    same_data(&shared, &reloaded(root.path()));
}

#[test]
fn turning_it_off_writes_what_is_buffered_and_closes() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), on());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    write_mix(&shared);
    set_enabled(&mut shared.lock(), false);
    assert!(shared.lock().aof.incr.is_none());
    let closed_at = shared.lock().aof.written;
    assert!(closed_at > 0, "what was buffered is written at once");
    writer.turn(false);
    assert_eq!(writer.synced, closed_at, "and fsynced by the writer");
    assert!(writer.current.is_none());
    // Later writes are not in the file.
    run_all(&shared, &[&["SET", "later", "1"]]);
    writer.turn(false);
    drop(writer);
    let copy = reloaded(root.path());
    assert_eq!(run_all(&copy, &[&["EXISTS", "later"]]), ":0\r\n");
    run_all(&shared, &[&["DEL", "later"]]);
    same_data(&shared, &copy);
}

#[test]
fn bgrewriteaof_with_the_aof_off_writes_a_base_alone() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(root.path(), AofConfig::default());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    write_mix(&shared);
    bgrewriteaof(&mut shared.lock()).unwrap();
    turn_until(&mut writer, "rewrite", |s| rewrites(s) == 1);
    assert_eq!(
        manifest(root.path()),
        "file appendonly.aof.1.base.aof seq 1 type b\n"
    );
    drop(writer);
    same_data(&shared, &reloaded(root.path()));
}

#[test]
fn the_files_are_rewritten_when_they_grow() {
    let root = tempfile::tempdir().unwrap();
    let shared = node_in(
        root.path(),
        AofConfig {
            rewrite_min_size: 1000,
            rewrite_percentage: 100,
            ..on()
        },
    );
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    for i in 0..20 {
        run_all(&shared, &[&["SET", "k", &i.to_string()]]);
        writer.turn(false);
    }
    assert_eq!(rewrites(&shared), 0, "below auto-aof-rewrite-min-size");
    for i in 0..100 {
        run_all(&shared, &[&["SET", "k", &i.to_string()]]);
    }
    turn_until(&mut writer, "automatic rewrite", |s| rewrites(s) == 1);
    assert!(current_size(&shared) < 100, "{}", current_size(&shared));
}

#[test]
fn a_base_written_with_the_aof_off_follows_the_files_already_there() {
    let root = tempfile::tempdir().unwrap();
    let earlier = node_in(root.path(), on());
    let mut writer = Writer::open(Arc::clone(&earlier)).unwrap();
    run_all(&earlier, &[&["SET", "old", "1"]]);
    writer.turn(false);
    drop(writer);
    let shared = node_in(root.path(), AofConfig::default());
    let mut writer = Writer::open(Arc::clone(&shared)).unwrap();
    write_mix(&shared);
    bgrewriteaof(&mut shared.lock()).unwrap();
    turn_until(&mut writer, "rewrite", |s| rewrites(s) == 1);
    assert_eq!(
        manifest(root.path()),
        "file appendonly.aof.2.base.aof seq 2 type b\n"
    );
    assert_eq!(aof_files(root.path()), ["appendonly.aof.2.base.aof"]);
    drop(writer);
    same_data(&shared, &reloaded(root.path()));
}
