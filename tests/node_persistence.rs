//! A built-in node keeps its data in an append-only file: SIGKILLed and
//! started again from its directory, it comes back with every key and
//! TTL; BGREWRITEAOF compacts the files without losing anything; a file
//! cut in the middle of its last command loads without it, and a damaged
//! one stops the start with the file and offset named; CONFIG SET
//! appendonly yes on a running node starts the file from its keyspace; and
//! a whole cluster stopped and started again has the same ids, slots,
//! roles and data.

// Helpers outside #[test] functions unwrap as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use slotway::cluster::key_slot;

const WAIT: Duration = Duration::from_secs(10);
/// More than the once-a-second fsync of `appendfsync everysec`.
const EVERYSEC_MARGIN: Duration = Duration::from_millis(1500);

/// An append-only file in a directory of the node's own.
fn aof_args(port: u16) -> Vec<String> {
    vec![
        "--appendonly".into(),
        "yes".into(),
        "--appenddirname".into(),
        format!("appendonlydir-{port}"),
    ]
}

/// One node that serves every slot, keeping an append-only file.
fn lone_node(args: impl Fn(u16) -> Vec<String> + 'static) -> BuiltinCluster {
    let cluster = BuiltinCluster::start_bare_with(1, args);
    cluster
        .client(0)
        .cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
        .expect_ok();
    // nodes.conf is saved just after the reply: wait for it, so that a
    // SIGKILL cannot come first.
    let conf = cluster
        .dir()
        .join(format!("nodes-{}.conf", cluster.port(0)));
    cluster.wait_for(WAIT, "nodes.conf holds the slots", |_| {
        let text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.contains("0-16383").then_some(()).ok_or(text)
    });
    cluster
}

fn aof_dir(cluster: &BuiltinCluster, i: usize) -> PathBuf {
    cluster
        .dir()
        .join(format!("appendonlydir-{}", cluster.port(i)))
}

fn info(cluster: &BuiltinCluster, i: usize, field: &str) -> String {
    let text = cluster
        .query_text(i, &["INFO", "persistence"])
        .unwrap_or_default();
    info_field(&text, field).unwrap_or_default().to_string()
}

/// Waits until no rewrite runs and `aof_rewrites` reached `count`.
fn wait_rewrites(cluster: &BuiltinCluster, i: usize, count: u64) {
    cluster.wait_for(WAIT, "the rewrite finishes", |c| {
        let done = info(c, i, "aof_rewrites").parse::<u64>().unwrap_or(0);
        let running = info(c, i, "aof_rewrite_in_progress");
        if done >= count && running == "0" {
            Ok(())
        } else {
            Err(format!("aof_rewrites:{done} in_progress:{running}"))
        }
    });
}

/// Keys of every type, with and without TTLs, written the ways whose
/// stream form differs from the command (relative TTLs, INCR, SPOP,
/// EXPIRE, PERSIST, GETEX, a transaction, deletions).
fn write_mix(c: &mut TestClient, tag: &str) {
    for i in 0..50 {
        c.cmd(&["SET", &format!("{tag}s:{i}"), &format!("v{i}")])
            .expect_ok();
    }
    for i in 0..10 {
        let i = i.to_string();
        c.cmd(&["RPUSH", &format!("{tag}l:{i}"), "a", "b", &i]);
        c.cmd(&["HSET", &format!("{tag}h:{i}"), "f", "1", "g", &i]);
        c.cmd(&["SADD", &format!("{tag}set:{i}"), "x", "y", "z", &i]);
        c.cmd(&["ZADD", &format!("{tag}z:{i}"), "1.5", "m", &i, "n"]);
        c.cmd(&["SET", &format!("{tag}ex:{i}"), "t", "EX", "3600"]);
        c.cmd(&["SET", &format!("{tag}px:{i}"), "t", "PX", "7200000"]);
        c.cmd(&["INCRBY", &format!("{tag}n:{i}"), &i]);
        c.cmd(&["EXPIRE", &format!("{tag}l:{i}"), "5000"]);
        c.cmd(&["PEXPIRE", &format!("{tag}h:{i}"), "9000000"]);
    }
    c.cmd(&["SPOP", &format!("{tag}set:3")]);
    c.cmd(&["PERSIST", &format!("{tag}ex:4")]);
    c.cmd(&["GETEX", &format!("{tag}s:5"), "EX", "600"]);
    c.cmd(&["DEL", &format!("{tag}s:6")]);
    c.cmd(&["SET", &format!("{tag}gone"), "x", "PX", "1"]);
    c.cmd(&["MULTI"]).expect_ok();
    c.cmd(&["INCR", &format!("{{{tag}tx}}n")]);
    c.cmd(&["LPUSH", &format!("{{{tag}tx}}l"), "front"]);
    let exec = c.cmd(&["EXEC"]);
    assert_eq!(exec.expect_array().len(), 2, "{exec:?}");
}

/// The node's keyspace once it has started again.
fn digest_after_restart(cluster: &mut BuiltinCluster, i: usize) -> BTreeMap<Vec<u8>, String> {
    cluster.restart(i);
    keyspace_digest(&mut cluster.client(i))
}

#[test]
fn every_key_comes_back_with_its_ttl_after_sigkill() {
    let mut cluster = lone_node(aof_args);
    let id = cluster.node_id(0);
    let mut c = cluster.client(0);
    write_mix(&mut c, "");
    let before = keyspace_digest(&mut c);
    assert_eq!(before.len(), 50 - 1 + 7 * 10 + 2, "{:?}", before.keys());
    assert_eq!(info(&cluster, 0, "aof_enabled"), "1");
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    let after = digest_after_restart(&mut cluster, 0);
    assert_same_keyspace(&before, &after);
    assert_eq!(cluster.node_id(0), id, "nodes.conf brings the same id");
    // A key written after the restart survives the next one too.
    cluster.client(0).cmd(&["SET", "later", "1"]).expect_ok();
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    let again = digest_after_restart(&mut cluster, 0);
    assert_eq!(again.len(), before.len() + 1);
}

/// As in Redis, a write reaches the file (the operating system) before
/// its reply goes out, whatever the fsync policy: a SIGKILL right after the
/// reply loses nothing (the policy only matters if the machine goes down).
#[test]
fn a_write_acknowledged_just_before_sigkill_is_kept_with_every_fsync_policy() {
    for policy in ["always", "everysec", "no"] {
        let mut cluster = lone_node(move |port| {
            let mut args = aof_args(port);
            args.extend(["--appendfsync".into(), policy.into()]);
            args
        });
        let mut c = cluster.client(0);
        let sets: Vec<Vec<String>> = (0..200)
            .map(|i| vec!["SET".to_string(), format!("k{i}"), i.to_string()])
            .collect();
        assert!(c.pipeline(&sets).iter().all(Reply::is_ok));
        c.cmd(&["SET", "last", "1"]).expect_ok();
        let incr = aof_dir(&cluster, 0).join("appendonly.aof.1.incr.aof");
        let in_file = std::fs::read(incr).unwrap();
        assert!(
            in_file.ends_with(&encode_command(&["SET", "last", "1"])),
            "{policy}: the reply came before the write reached the file"
        );
        cluster.kill(0);
        cluster.restart(0);
        let mut c = cluster.client(0);
        assert_eq!(c.cmd(&["GET", "last"]), Reply::bulk("1"), "{policy}");
        assert_eq!(c.cmd(&["DBSIZE"]).expect_int(), 201, "{policy}");
    }
}

#[test]
fn bgrewriteaof_shrinks_the_files_and_the_data_survives() {
    let mut cluster = lone_node(aof_args);
    let mut c = cluster.client(0);
    write_mix(&mut c, "");
    // Many overwrites of a few keys.
    let overwrites: Vec<Vec<String>> = (0..20_000)
        .map(|i| vec!["SET".into(), format!("hot:{}", i % 5), format!("value-{i}")])
        .collect();
    for chunk in overwrites.chunks(2000) {
        assert!(c.pipeline(chunk).iter().all(Reply::is_ok));
    }
    cluster.wait_for(WAIT, "the writes reach the file", |c| {
        let size: u64 = info(c, 0, "aof_current_size").parse().unwrap_or(0);
        (size > 500_000)
            .then_some(())
            .ok_or(format!("aof_current_size:{size}"))
    });
    let grown: u64 = info(&cluster, 0, "aof_current_size").parse().unwrap();
    assert_eq!(
        c.cmd(&["BGREWRITEAOF"]).expect_str(),
        "Background append only file rewriting started"
    );
    wait_rewrites(&cluster, 0, 1);
    assert_eq!(info(&cluster, 0, "aof_last_bgrewrite_status"), "ok");
    let compact: u64 = info(&cluster, 0, "aof_current_size").parse().unwrap();
    assert!(compact < grown / 20, "{grown} -> {compact} bytes");
    let mut files: Vec<String> = std::fs::read_dir(aof_dir(&cluster, 0))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".aof"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["appendonly.aof.2.base.aof", "appendonly.aof.2.incr.aof"]
    );
    // Writes after the rewrite go on after it.
    c.cmd(&["SET", "hot:0", "final"]).expect_ok();
    let before = keyspace_digest(&mut c);
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    let after = digest_after_restart(&mut cluster, 0);
    assert_same_keyspace(&before, &after);
}

/// Starts node `i` with its usual command line and expects it to stop at
/// once; returns its output.
fn failed_start(cluster: &BuiltinCluster, i: usize) -> String {
    let out = cluster.dir().join("failed-start.log");
    let log = std::fs::File::create(&out).unwrap();
    let mut child = Command::new(slotway_bin())
        .args(cluster.command_line(i))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = process::wait_exit(&mut child, WAIT);
    if status.is_none() {
        process::kill_and_reap(&mut child);
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.is_some_and(|s| !s.success()),
        "the node started: {status:?}\n{text}"
    );
    text
}

#[test]
fn a_file_cut_short_loads_without_its_last_command_and_a_damaged_one_stops_the_start() {
    let mut cluster = lone_node(aof_args);
    let mut c = cluster.client(0);
    for i in 0..20 {
        c.cmd(&["SET", &format!("k{i}"), "v"]).expect_ok();
    }
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    let incr = aof_dir(&cluster, 0).join("appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).unwrap();
    // A crash in the middle of writing one more SET.
    let half = &encode_command(&["SET", "cut", "short"])[..15];
    std::fs::write(&incr, [&whole[..], half].concat()).unwrap();
    cluster.restart(0);
    let mut c = cluster.client(0);
    assert_eq!(c.cmd(&["DBSIZE"]).expect_int(), 20);
    assert_eq!(c.cmd(&["EXISTS", "cut"]).expect_int(), 0);
    assert_eq!(
        std::fs::read(&incr).unwrap(),
        whole,
        "the half command is cut off"
    );
    assert!(
        cluster.log_tail(0, 30).contains("short read while loading"),
        "{}",
        cluster.log_tail(0, 30)
    );
    // Writes after the cut follow whole commands.
    c.cmd(&["SET", "after", "1"]).expect_ok();
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    cluster.restart(0);
    assert_eq!(cluster.client(0).cmd(&["DBSIZE"]).expect_int(), 21);

    // Garbage in the middle: the node does not start, and says where.
    cluster.kill(0);
    let whole = std::fs::read(&incr).unwrap();
    let first = encode_command(&["SET", "k0", "v"]).len();
    let damaged = [&whole[..first], b"garbage\r\n", &whole[first..]].concat();
    std::fs::write(&incr, damaged).unwrap();
    let output = failed_start(&cluster, 0);
    assert!(
        output.contains("bad file format")
            && output.contains("appendonly.aof.1.incr.aof")
            && output.contains(&format!("at offset {first}")),
        "{output}"
    );
}

#[test]
fn config_set_appendonly_yes_keeps_the_data_across_a_restart() {
    let dirname = |port: u16| {
        vec![
            "--appenddirname".to_string(),
            format!("appendonlydir-{port}"),
        ]
    };
    let mut cluster = lone_node(dirname);
    let mut c = cluster.client(0);
    write_mix(&mut c, "");
    assert_eq!(info(&cluster, 0, "aof_enabled"), "0");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "appendonly"]),
        Reply::Array(Some(vec![Reply::bulk("appendonly"), Reply::bulk("no")]))
    );
    c.cmd(&["CONFIG", "SET", "appendonly", "yes"]).expect_ok();
    wait_rewrites(&cluster, 0, 1);
    assert_eq!(info(&cluster, 0, "aof_enabled"), "1");
    c.cmd(&["SET", "after", "1"]).expect_ok();
    c.cmd(&["INCR", "n:1"]);
    let before = keyspace_digest(&mut c);
    std::thread::sleep(EVERYSEC_MARGIN);
    cluster.kill(0);
    // As with redis-server, CONFIG SET is not written back: the restart
    // names appendonly yes itself.
    cluster.set_args(aof_args);
    let after = digest_after_restart(&mut cluster, 0);
    assert_same_keyspace(&before, &after);
    // And CONFIG SET appendonly no closes it: later writes are not kept.
    let mut c = cluster.client(0);
    c.cmd(&["CONFIG", "SET", "appendonly", "no"]).expect_ok();
    c.cmd(&["SET", "not-kept", "1"]).expect_ok();
    cluster.kill(0);
    cluster.restart(0);
    assert_eq!(
        cluster.client(0).cmd(&["EXISTS", "not-kept"]).expect_int(),
        0
    );
}

/// The index of the master serving `key` in a cluster started with
/// `BuiltinCluster::start_with(3, ..)` (masters first).
fn master_of(key: &str) -> usize {
    let slot = key_slot(key.as_bytes());
    slot_ranges(3)
        .iter()
        .position(|&(first, last)| (first..=last).contains(&slot))
        .unwrap()
}

/// Every node's id, role, master and slots as node `i` sees them, sorted.
fn layout(cluster: &BuiltinCluster, i: usize) -> Vec<String> {
    let mut lines: Vec<String> = cluster
        .nodes_view(i)
        .iter()
        .map(|n| {
            format!(
                "{} {} master={} of={:?} slots={:?}",
                n.id, n.addr, n.master, n.master_id, n.slots
            )
        })
        .collect();
    lines.sort();
    lines
}

/// Six nodes stopped (SIGKILL after the once-a-second fsync) and started
/// again. Data is compared on the masters; whether replicas hold it too
/// is replication's part (tests/cluster_survival.rs).
#[test]
fn a_whole_cluster_comes_back_with_its_ids_slots_roles_and_data() {
    let started = Instant::now();
    let mut cluster = BuiltinCluster::start_with(3, 1, aof_args);
    let mut clients: Vec<TestClient> = (0..3).map(|i| cluster.client(i)).collect();
    for i in 0..300 {
        let key = format!("key:{i}");
        let c = &mut clients[master_of(&key)];
        c.cmd(&["SET", &key, &i.to_string(), "EX", "3600"])
            .expect_ok();
        let list = format!("list:{i}");
        clients[master_of(&list)].cmd(&["RPUSH", &list, "a", &i.to_string()]);
    }
    let digests = |cluster: &BuiltinCluster| -> Vec<BTreeMap<Vec<u8>, String>> {
        (0..3)
            .map(|i| keyspace_digest(&mut cluster.client(i)))
            .collect()
    };
    let before = digests(&cluster);
    assert_eq!(before.iter().map(BTreeMap::len).sum::<usize>(), 600);
    let before_layout = layout(&cluster, 0);
    drop(clients);
    std::thread::sleep(EVERYSEC_MARGIN);
    for i in 0..cluster.len() {
        cluster.kill(i);
    }
    for i in 0..cluster.len() {
        cluster.restart(i);
    }
    cluster.wait_converged(Duration::from_secs(30));
    assert_eq!(
        layout(&cluster, 0),
        before_layout,
        "ids, roles or slots changed"
    );
    assert_eq!(digests(&cluster), before, "the masters' data changed");
    eprintln!("whole-cluster restart test took {:?}", started.elapsed());
}
