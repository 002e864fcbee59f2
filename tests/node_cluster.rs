//! The built-in node as a Redis Cluster node: the CLUSTER commands against
//! a real cluster-enabled redis-server, clusters of built-in nodes joined
//! by hand and by `redis-cli --cluster create`, redirects followed by
//! `redis-cli -c`, slot migration (ASK, TRYAGAIN, SETSLOT NODE spreading
//! by gossip), a node restarted from its `nodes-<port>.conf`, and
//! `redis-benchmark --cluster`.

// The helpers below are not `#[test]` functions, so the test-only clippy
// relaxations do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slotway::cluster::key_slot;

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The types of a reply, nested: `*[:,:,*[$,:,$,*[]]]`.
fn shape(reply: &Reply) -> String {
    match reply {
        Reply::Simple(_) => "+".into(),
        Reply::Error(_) => "-".into(),
        Reply::Int(_) => ":".into(),
        Reply::Bulk(None) | Reply::Array(None) => "nil".into(),
        Reply::Bulk(Some(_)) => "$".into(),
        Reply::Array(Some(items)) => {
            let inner: Vec<String> = items.iter().map(shape).collect();
            format!("*[{}]", inner.join(","))
        }
    }
}

/// Runs a redis tool with a deadline; returns its exit success and output.
fn run_tool(program: &Path, args: &[String], stdin: Option<&[u8]>, dir: &Path) -> (bool, String) {
    let out_path = dir.join(format!(
        "tool-{}-{}.log",
        program
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("tool"),
        std::process::id() as u128 + Instant::now().elapsed().as_nanos()
    ));
    let out = File::create(&out_path).expect("create the tool log");
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out.try_clone().expect("clone the log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("write the tool's input");
    }
    let status = wait_exit(&mut child, TOOL_TIMEOUT);
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn assert_cluster_info(cluster: &BuiltinCluster, i: usize, known: usize, size: usize) {
    let info = cluster.query_text(i, &["CLUSTER", "INFO"]).unwrap();
    assert_eq!(info_field(&info, "cluster_state"), Some("ok"), "{info}");
    assert_eq!(
        info_field(&info, "cluster_known_nodes"),
        Some(known.to_string().as_str()),
        "{info}"
    );
    assert_eq!(
        info_field(&info, "cluster_size"),
        Some(size.to_string().as_str()),
        "{info}"
    );
    assert_eq!(info_field(&info, "cluster_slots_assigned"), Some("16384"));
    assert_eq!(info_field(&info, "cluster_slots_ok"), Some("16384"));
}

/// Our reply with this node's IP blanked out: a lone redis-server does not
/// know its own IP until a MEET tells it, while a built-in node bound to
/// an address announces that one from the start.
fn blank_ip(reply: Reply) -> Reply {
    match reply {
        Reply::Bulk(Some(b)) if b == b"127.0.0.1" => Reply::Bulk(Some(Vec::new())),
        Reply::Bulk(Some(b)) => Reply::Bulk(Some(
            String::from_utf8_lossy(&b)
                .replace(" 127.0.0.1:", " :")
                .into_bytes(),
        )),
        Reply::Array(Some(items)) => Reply::Array(Some(items.into_iter().map(blank_ip).collect())),
        other => other,
    }
}

/// [`LonePair::same`], except for our IP (see [`blank_ip`]).
#[track_caller]
fn same_but_ip(pair: &LonePair, args: &[&str]) {
    let (ours, theirs) = pair.both(args);
    assert_eq!(blank_ip(ours), theirs, "replies differ for {args:?}");
}

#[test]
fn cluster_commands_answer_as_redis_does() {
    let Some(bins) = require_redis() else { return };
    let pair = LonePair::start(&bins);
    for args in [
        &["CLUSTER", "MEET", "127.0.0.1"][..],
        &["CLUSTER", "MEET", "127.0.0.1", "abc"],
        &["CLUSTER", "MEET", "127.0.0.1", "99999"],
        &["CLUSTER", "MEET", "127.0.0.1", "0"],
        &["CLUSTER", "MEET", "nohost", "1234"],
        &["CLUSTER", "MEET", "127.0.0.1", "1234", "x"],
        &["CLUSTER", "MEET", "127.0.0.1", "1234", "5678", "9"],
        &["CLUSTER", "ADDSLOTS", "0", "0"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "-1"],
        &["CLUSTER", "ADDSLOTS", "a"],
        &["CLUSTER", "ADDSLOTS"],
        &["CLUSTER", "ADDSLOTSRANGE", "3", "2"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "2", "3"],
        &["CLUSTER", "DELSLOTS", "5"],
        &["CLUSTER", "DELSLOTSRANGE", "5", "4"],
        &["CLUSTER", "DELSLOTSRANGE", "5"],
        &["CLUSTER", "DELSLOTSRANGE", "5", "6"],
        &["CLUSTER", "REPLICATE", "abc"],
        &["CLUSTER", "REPLICATE", "$ME"],
        &["CLUSTER", "FORGET", "$ME"],
        &["CLUSTER", "FORGET", "abc"],
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT", "7"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "x", "1"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "0", "10"],
        &["CLUSTER", "SETSLOT", "0", "STABLE"],
        &["CLUSTER", "SETSLOT", "0", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "0", "IMPORTING", "abc"],
        &["CLUSTER", "SETSLOT", "0", "NODE", "abc"],
        &["CLUSTER", "SETSLOT", "0", "foo"],
        &["CLUSTER", "SETSLOT", "0", "STABLE", "x"],
        &["CLUSTER", "SETSLOT", "0"],
        &["CLUSTER", "SETSLOT", "x", "STABLE"],
        &["CLUSTER", "SETSLOT", "0", "IMPORTING", "$ME"],
        &["CLUSTER", "SETSLOT", "0", "STABLE"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "x"],
        &["CLUSTER", "RESET", "foo"],
        &["CLUSTER", "RESET", "hard", "x"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "abc"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "$ME"],
        &["CLUSTER", "REPLICAS", "abc"],
        &["CLUSTER", "REPLICAS", "$ME"],
        &["CLUSTER", "SLAVES", "abc"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "KEYSLOT"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["CLUSTER", "INFO", "x"],
        &["CLUSTER", "MYID", "x"],
        &["CLUSTER", "NODES", "x"],
        &["CLUSTER", "FOO"],
        &["CLUSTER", "HELP"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "6"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
        &["CLUSTER", "ADDSLOTS", "5"],
        &["CLUSTER", "SETSLOT", "5", "IMPORTING", "$ME"],
        &["CLUSTER", "SETSLOT", "5", "MIGRATING", "abc"],
        &["CLUSTER", "SETSLOT", "5", "MIGRATING", "$ME"],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "SETSLOT", "5", "STABLE"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SHARDS"],
        &["CLUSTER", "REPLICATE", "$ME"],
    ] {
        same_but_ip(&pair, args);
    }
    // redis-server turns ok only after its rejoin delay; then both serve.
    eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        let info = pair.theirs_client().cmd(&["CLUSTER", "INFO"]);
        info.as_str()
            .is_some_and(|t| t.contains("cluster_state:ok"))
    });
    for args in [
        &["CLUSTER", "INFO"][..],
        &["SET", "foo", "bar"],
        &["CLUSTER", "COUNTKEYSINSLOT", "12182"],
        &["CLUSTER", "GETKEYSINSLOT", "12182", "10"],
        &["CLUSTER", "GETKEYSINSLOT", "12182", "0"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["CLUSTER", "RESET"],
        &["CLUSTER", "SETSLOT", "12182", "NODE", "abc"],
        &["CLUSTER", "SETSLOT", "12182", "MIGRATING", "$ME"],
        &["GET", "nosuchkey"],
        &["CLUSTER", "SETSLOT", "12182", "STABLE"],
        &["CLUSTER", "SETSLOT", "12182", "NODE", "$ME"],
        &["CLUSTER", "DELSLOTS", "12182"],
        &["GET", "foo"],
        &["CLUSTER", "INFO"],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "ADDSLOTS", "12182"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "SAVECONFIG"],
        &["CLUSTER", "NODES"],
    ] {
        same_but_ip(&pair, args);
    }
}

#[test]
fn a_cluster_joined_by_hand_agrees_on_everything() {
    let cluster = BuiltinCluster::start(3, 1);
    let ids: Vec<String> = (0..6).map(|i| cluster.node_id(i)).collect();
    for i in 0..6 {
        assert_cluster_info(&cluster, i, 6, 3);
        let info = cluster.query_text(i, &["CLUSTER", "INFO"]).unwrap();
        assert_eq!(info_field(&info, "cluster_current_epoch"), Some("6"));
        // A replica reports its master's epoch as its own.
        let my_epoch = if i < 3 { i + 1 } else { i - 3 + 1 };
        assert_eq!(
            info_field(&info, "cluster_my_epoch"),
            Some(my_epoch.to_string().as_str())
        );
        let view = cluster.nodes_view(i);
        assert_eq!(view.len(), 6);
        for line in &view {
            let j = ids.iter().position(|id| *id == line.id).unwrap();
            assert_eq!(line.myself, i == j);
            assert_eq!(line.master, j < 3, "{line:?}");
            if j >= 3 {
                assert_eq!(line.master_id.as_deref(), Some(ids[j - 3].as_str()));
                assert!(line.slots.is_empty());
                assert_eq!(line.config_epoch, (j - 3 + 1) as u64);
            } else {
                let (start, end) = slot_ranges(3)[j];
                assert_eq!(line.slots, vec![start..=end]);
                assert_eq!(line.config_epoch, (j + 1) as u64);
            }
        }
        // CLUSTER REPLICAS lists the replica's own line.
        if i < 3 {
            let replicas = cluster.query(i, &["CLUSTER", "REPLICAS", &ids[i]]).unwrap();
            let lines = replicas.expect_array();
            assert_eq!(lines.len(), 1);
            assert!(lines[0].expect_str().starts_with(&ids[i + 3]));
        }
    }
    // Each node saved its view: nodes-<port>.conf with every node.
    cluster.wait_for(Duration::from_secs(5), "the config files are saved", |c| {
        for (i, id) in ids.iter().enumerate() {
            let path = c.dir().join(format!("nodes-{}.conf", c.port(i)));
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let lines: Vec<&str> = text.lines().collect();
            let mine = format!(
                "{} 127.0.0.1:{}@{} myself,",
                id,
                c.port(i),
                c.port(i) + 10000
            );
            if lines.len() != 7
                || !lines.iter().any(|l| l.starts_with(&mine))
                || lines.last() != Some(&"vars currentEpoch 6 lastVoteEpoch 0")
            {
                return Err(format!("{}:\n{text}", path.display()));
            }
        }
        Ok(())
    });
}

#[test]
fn cluster_slots_and_shards_have_the_shape_redis_gives() {
    let Some(_bins) = require_redis() else { return };
    let ours = BuiltinCluster::start(3, 1);
    let theirs = RedisCluster::start(3, 1);
    let their_slots = theirs.client(theirs.ports()[0]).cmd(&["CLUSTER", "SLOTS"]);
    // Redis lists a replica only once its replication offset is not 0:
    // once it has synced and the bus has told the other nodes.
    let listed = |r: &Reply| r.expect_array().iter().all(|e| e.expect_array().len() == 4);
    let our_slots = eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        let slots = ours.client(0).cmd(&["CLUSTER", "SLOTS"]);
        listed(&slots).then_some(slots)
    });
    // The same ranges, each [start, end, [ip, port, id, {}], ...].
    let ranges = |r: &Reply| -> Vec<(i64, i64)> {
        r.expect_array()
            .iter()
            .map(|e| {
                let f = e.expect_array();
                (f[0].expect_int(), f[1].expect_int())
            })
            .collect()
    };
    assert_eq!(ranges(&our_slots), ranges(&their_slots));
    let node_shape = "*[$,:,$,*[]]";
    for entry in their_slots.expect_array() {
        let with_replica = format!("*[:,:,{node_shape},{node_shape}]");
        assert_eq!(shape(entry), with_replica);
    }
    for entry in our_slots.expect_array() {
        assert_eq!(shape(entry), format!("*[:,:,{node_shape},{node_shape}]"));
        let master = &entry.expect_array()[2].expect_array();
        assert_eq!(master[0].expect_str(), "127.0.0.1");
        assert_eq!(master[2].expect_str().len(), 40);
    }

    // CLUSTER SHARDS: per master, {slots: [start, end], nodes: [{...}x2]}
    // with the same keys in the same order, and the same types.
    let keys_and_shape = |r: &Reply| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut shards: Vec<&Reply> = r.expect_array().iter().collect();
        shards.sort_by_key(|s| s.expect_array()[1].expect_array()[0].expect_int());
        for s in shards {
            let fields = s.expect_array();
            out.push((fields[0].expect_str().to_string(), shape(&fields[1])));
            out.push((fields[2].expect_str().to_string(), String::new()));
            for node in fields[3].expect_array() {
                let f = node.expect_array();
                for kv in f.chunks(2) {
                    let value = match kv[0].expect_str() {
                        "role" => kv[1].expect_str().to_string(),
                        _ => shape(&kv[1]),
                    };
                    out.push((kv[0].expect_str().to_string(), value));
                }
            }
        }
        out
    };
    let their_shards = theirs.client(theirs.ports()[0]).cmd(&["CLUSTER", "SHARDS"]);
    let our_shards = ours.client(0).cmd(&["CLUSTER", "SHARDS"]);
    assert_eq!(keys_and_shape(&our_shards), keys_and_shape(&their_shards));
}

#[test]
fn redis_cli_creates_and_checks_a_cluster_of_builtin_nodes() {
    let Some(bins) = require_redis() else { return };
    let cluster = BuiltinCluster::start_bare(6);
    // redis-cli asks INFO (cluster_enabled:1, no db0) before it touches a
    // node, and DBSIZE in --cluster check.
    let info = cluster.client(0).cmd(&["INFO"]);
    assert!(
        !info.is_error(),
        "redis-cli --cluster needs INFO and DBSIZE on the built-in node: {info:?}"
    );
    let started = Instant::now();
    let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
    args.extend(cluster.addrs());
    args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
    let (ok, out) = run_tool(&bins.cli, &args, None, cluster.dir());
    assert!(ok, "redis-cli --cluster create failed:\n{out}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "create took {:?}",
        started.elapsed()
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    cluster.wait_converged(Duration::from_secs(10));
    for i in 0..6 {
        assert_cluster_info(&cluster, i, 6, 3);
    }
    let check = vec!["--cluster".into(), "check".into(), cluster.addr(3)];
    let (ok, out) = run_tool(&bins.cli, &check, None, cluster.dir());
    assert!(ok, "redis-cli --cluster check failed:\n{out}");
    assert!(
        out.contains("[OK] All nodes agree about slots configuration."),
        "{out}"
    );
}

#[test]
fn redis_cli_c_follows_moved_to_every_master() {
    let Some(bins) = require_redis() else { return };
    let cluster = BuiltinCluster::start(3, 1);
    let keys: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    let mut input = String::new();
    for k in &keys {
        input.push_str(&format!("SET {k} value-of-{k}\n"));
    }
    // Through a replica: every write is redirected to its master.
    let args: Vec<String> = ["-c", "-p", &cluster.port(3).to_string()]
        .map(String::from)
        .to_vec();
    let (ok, out) = run_tool(&bins.cli, &args, Some(input.as_bytes()), cluster.dir());
    assert!(ok, "{out}");
    let replies: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("-> Redirected"))
        .collect();
    assert_eq!(replies, vec!["OK"; keys.len()], "{out}");
    let mut input = String::new();
    for k in &keys {
        input.push_str(&format!("GET {k}\n"));
    }
    let args: Vec<String> = ["-c", "-p", &cluster.port(1).to_string()]
        .map(String::from)
        .to_vec();
    let (ok, out) = run_tool(&bins.cli, &args, Some(input.as_bytes()), cluster.dir());
    assert!(ok, "{out}");
    let values: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with("-> Redirected"))
        .map(String::from)
        .collect();
    let want: Vec<String> = keys.iter().map(|k| format!("value-of-{k}")).collect();
    assert_eq!(values, want);
    // Each key lives on the master that owns its slot, and only there.
    let ranges = slot_ranges(3);
    let mut per_master = [0usize; 3];
    for k in &keys {
        let slot = key_slot(k.as_bytes());
        let owner = ranges
            .iter()
            .position(|&(a, b)| (a..=b).contains(&slot))
            .unwrap();
        per_master[owner] += 1;
        let mut c = cluster.client(owner);
        assert_eq!(c.cmd(&["GET", k]).expect_str(), format!("value-of-{k}"));
        let other = (owner + 1) % 3;
        let moved = cluster.client(other).cmd(&["GET", k]);
        assert_eq!(
            moved.expect_error(),
            format!("MOVED {slot} {}", cluster.addr(owner))
        );
    }
    assert!(per_master.iter().all(|&n| n > 50), "{per_master:?}");
}

#[test]
fn a_slot_in_migration_asks_then_moves_everywhere() {
    let cluster = BuiltinCluster::start(3, 1);
    let (a, b) = (0, 1);
    let (a_id, b_id) = (cluster.node_id(a), cluster.node_id(b));
    let mut ca = cluster.client(a);
    let mut cb = cluster.client(b);
    let mine = |i: usize| {
        cluster
            .query_text(i, &["CLUSTER", "NODES"])
            .unwrap()
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .to_string()
    };

    // A slot with a key on its owner: redirects while it migrates.
    let slot = 100u16;
    let s = slot.to_string();
    let tag = hash_tag_for_slot(slot);
    let (k1, k2, missing) = (
        format!("{{{tag}}}k1"),
        format!("{{{tag}}}k2"),
        format!("{{{tag}}}missing"),
    );
    ca.cmd(&["SET", &k1, "v1"]).expect_ok();
    cb.cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &a_id])
        .expect_ok();
    ca.cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id])
        .expect_ok();
    assert!(
        mine(a).ends_with(&format!(" [{slot}->-{b_id}]")),
        "{}",
        mine(a)
    );
    assert!(
        mine(b).ends_with(&format!(" [{slot}-<-{a_id}]")),
        "{}",
        mine(b)
    );
    // The migrating node serves the keys it still has, and sends the
    // others to the importing node.
    assert_eq!(ca.cmd(&["GET", &k1]).expect_str(), "v1");
    let ask = format!("ASK {slot} {}", cluster.addr(b));
    assert_eq!(ca.cmd(&["GET", &missing]).expect_error(), ask);
    assert_eq!(ca.cmd(&["MGET", &k1, &missing]).expect_error(), ask);
    // The importing node only serves clients that say ASKING.
    let moved_to_a = format!("MOVED {slot} {}", cluster.addr(a));
    assert_eq!(cb.cmd(&["GET", &k1]).expect_error(), moved_to_a);
    cb.cmd(&["ASKING"]).expect_ok();
    assert!(cb.cmd(&["GET", &missing]).is_nil());
    cb.cmd(&["ASKING"]).expect_ok();
    assert_eq!(
        cb.cmd(&["MGET", &k1, &k2]).expect_error(),
        "TRYAGAIN Multiple keys request during rehashing of slot"
    );
    cb.cmd(&["ASKING"]).expect_ok();
    cb.cmd(&["SET", &k2, "v2"]).expect_ok();
    assert_eq!(
        cb.cmd(&["GET", &k2]).expect_error(),
        moved_to_a,
        "ASKING lasts one command"
    );
    assert_eq!(cb.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &s]).expect_int(), 1);
    assert_eq!(
        cb.cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "10"]),
        Reply::Array(Some(vec![Reply::bulk(&k2)]))
    );
    // The old owner keeps the slot while it holds keys of it; the
    // migration is called off (as `redis-cli --cluster fix` would).
    assert_eq!(
        ca.cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &b_id])
            .expect_error(),
        format!(
            "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
        )
    );
    ca.cmd(&["CLUSTER", "SETSLOT", &s, "STABLE"]).expect_ok();
    cb.cmd(&["CLUSTER", "SETSLOT", &s, "STABLE"]).expect_ok();
    assert_eq!(ca.cmd(&["GET", &missing]), Reply::Bulk(None));
    assert_eq!(cb.cmd(&["GET", &k1]).expect_error(), moved_to_a);

    // A slot whose keys all moved: the move completes and spreads.
    let slot = 200u16;
    let s = slot.to_string();
    let key = format!("{{{}}}k", hash_tag_for_slot(slot));
    cb.cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &a_id])
        .expect_ok();
    ca.cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &b_id])
        .expect_ok();
    cb.cmd(&["ASKING"]).expect_ok();
    cb.cmd(&["SET", &key, "moved"]).expect_ok();
    // As redis-cli finishes a move: the new owner first, then the old one.
    cb.cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &b_id])
        .expect_ok();
    ca.cmd(&["CLUSTER", "SETSLOT", &s, "NODE", &b_id])
        .expect_ok();
    assert!(!mine(a).contains('['), "{}", mine(a));
    assert!(!mine(b).contains('['), "{}", mine(b));
    // The new owner took a new epoch without asking anyone: the greatest.
    let b_epoch = cluster
        .nodes_view(b)
        .into_iter()
        .find(|n| n.myself)
        .unwrap()
        .config_epoch;
    assert_eq!(b_epoch, 7);
    // Every other node learns the new owner by gossip alone.
    let moved_to_b = format!("MOVED {slot} {}", cluster.addr(b));
    cluster.wait_for(
        Duration::from_secs(10),
        "every node redirects to the new owner",
        |c| {
            for i in 0..6 {
                let reply = c.client(i).cmd(&["GET", &key]);
                let good = if i == b {
                    reply.as_str() == Some("moved")
                } else {
                    reply.as_error() == Some(moved_to_b.as_str())
                };
                if !good {
                    return Err(format!("{}: {reply:?}", c.addr(i)));
                }
            }
            Ok(())
        },
    );
    cluster.wait_converged(Duration::from_secs(10));
    for i in 0..6 {
        let line = cluster
            .nodes_view(i)
            .into_iter()
            .find(|n| n.id == b_id)
            .unwrap();
        assert_eq!(line.config_epoch, 7, "as seen by {}", cluster.addr(i));
        assert!(line.slots.iter().any(|r| r.contains(&slot)));
    }
}

#[test]
fn a_restarted_node_comes_back_with_its_identity() {
    let mut cluster = BuiltinCluster::start(3, 1);
    let id = cluster.node_id(1);
    let before = cluster
        .nodes_view(1)
        .into_iter()
        .find(|n| n.myself)
        .unwrap();
    cluster.kill(1);
    cluster.wait_for(Duration::from_secs(10), "the others see it gone", |c| {
        let line = c.nodes_view(0).into_iter().find(|n| n.id == id);
        match line {
            Some(l) if !l.connected => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    cluster.restart(1);
    assert_eq!(cluster.node_id(1), id);
    let after = cluster
        .nodes_view(1)
        .into_iter()
        .find(|n| n.myself)
        .unwrap();
    assert_eq!(after.slots, before.slots);
    assert_eq!(after.config_epoch, before.config_epoch);
    assert!(after.master);
    // Its replica and every other node take it back.
    cluster.wait_converged(Duration::from_secs(15));
    for i in 0..6 {
        assert!(
            cluster
                .nodes_view(i)
                .iter()
                .any(|n| n.id == id && n.connected)
        );
    }
    // A second node on the same config file is refused.
    let clash = Command::new(slotway_bin())
        .args([
            "node",
            "--bind",
            "127.0.0.1",
            "--port",
            &cluster.port(1).to_string(),
        ])
        .args(["--cluster-port", "1", "--dir"])
        .arg(cluster.dir())
        .stdin(Stdio::null())
        .output()
        .expect("run a second node");
    assert!(!clash.status.success());
    let stderr = String::from_utf8_lossy(&clash.stderr);
    assert!(
        stderr.contains("already used by a different node"),
        "{stderr}"
    );
}

#[test]
fn a_garbled_config_file_stops_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join(format!("nodes-{port}.conf")),
        "this is not a cluster config\n",
    )
    .unwrap();
    let out = Command::new(slotway_bin())
        .args([
            "node",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run the node");
    release_port(port);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupted cluster config file"), "{stderr}");
}

#[test]
fn redis_benchmark_runs_against_a_builtin_cluster() {
    let Some(bins) = require_redis() else { return };
    let cluster = BuiltinCluster::start(3, 0);
    let benchmark = bins.cli.with_file_name("redis-benchmark");
    let args: Vec<String> = [
        "--cluster",
        "-p",
        &cluster.port(0).to_string(),
        "-t",
        "set,get",
        "-n",
        "10000",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    let (ok, out) = run_tool(&benchmark, &args, None, cluster.dir());
    let out = out.replace('\r', "\n");
    assert!(ok, "{out}");
    assert!(out.contains("Cluster has 3 master nodes"), "{out}");
    for test in ["SET: ", "GET: "] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(test) && l.contains("requests per second")),
            "no {test} result:\n{out}"
        );
    }
    assert!(!out.contains("Error"), "{out}");
}

#[test]
fn garbage_on_the_bus_closes_only_that_link() {
    use std::io::Read as _;
    use std::net::TcpStream;
    let cluster = BuiltinCluster::start(3, 0);
    let bus = format!("127.0.0.1:{}", cluster.port(0) + 10000);
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        // A length prefix far past the largest frame.
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        // A well-sized frame that is not a message.
        &[0, 0, 0, 4, b'S', b'W', b'C', b'X'],
    ] {
        let mut conn = TcpStream::connect(&bus).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(junk).unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "the node closes a link that sends junk");
    }
    assert_eq!(cluster.client(0).cmd(&["PING"]).expect_str(), "PONG");
    cluster.wait_converged(Duration::from_secs(5));
}

/// Reads replies until `want` arrives or the deadline passes.
fn read_until(client: &mut TestClient, want: &Reply, deadline: Instant) -> Result<(), String> {
    client.set_timeout(Duration::from_millis(200));
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match client.try_read_reply() {
            Ok(reply) if &reply == want => return Ok(()),
            Ok(reply) => seen.push(reply),
            Err(_) => {}
        }
    }
    Err(format!("no {want:?}; saw {seen:?}"))
}

#[test]
fn publish_reaches_subscribers_on_every_node_and_spublish_its_shard() {
    let cluster = BuiltinCluster::start(3, 1);
    // A subscriber on every node, each to the channel and a pattern.
    let mut subscribers: Vec<TestClient> = (0..cluster.len())
        .map(|i| {
            let mut c = cluster.client(i);
            c.cmd(&["SUBSCRIBE", "news"]);
            c.cmd(&["PSUBSCRIBE", "ne*"]);
            c
        })
        .collect();
    // Published on one node: one local receiver counts, every node
    // delivers (cluster pub/sub is broadcast over the bus).
    let mut publisher = cluster.client(2);
    publisher.cmd(&["PUBLISH", "news", "hello"]).expect_int();
    let deadline = Instant::now() + Duration::from_secs(5);
    let message = Reply::Array(Some(vec![
        Reply::bulk("message"),
        Reply::bulk("news"),
        Reply::bulk("hello"),
    ]));
    let pmessage = Reply::Array(Some(vec![
        Reply::bulk("pmessage"),
        Reply::bulk("ne*"),
        Reply::bulk("news"),
        Reply::bulk("hello"),
    ]));
    for (i, s) in subscribers.iter_mut().enumerate() {
        read_until(s, &message, deadline).unwrap_or_else(|e| panic!("node {i}: {e}"));
        read_until(s, &pmessage, deadline).unwrap_or_else(|e| panic!("node {i}: {e}"));
    }

    // A shard channel: subscribed on the master serving its slot, published
    // on that master, delivered there.
    let channel = "orders";
    let slot = key_slot(channel.as_bytes());
    let owner = (0..cluster.len())
        .find(|&i| {
            let view = cluster.nodes_view(i);
            view.iter()
                .find(|n| n.myself)
                .is_some_and(|me| me.slots.iter().any(|r| r.contains(&slot)))
        })
        .expect("a master serves the slot");
    let mut shard_sub = cluster.client(owner);
    shard_sub.cmd(&["SSUBSCRIBE", channel]);
    assert_eq!(
        cluster
            .client(owner)
            .cmd(&["SPUBLISH", channel, "x"])
            .expect_int(),
        1
    );
    let smessage = Reply::Array(Some(vec![
        Reply::bulk("smessage"),
        Reply::bulk(channel),
        Reply::bulk("x"),
    ]));
    read_until(
        &mut shard_sub,
        &smessage,
        Instant::now() + Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("shard subscriber: {e}"));
    // Anywhere else, SPUBLISH is redirected to that master.
    let other = (0..3).find(|&i| i != owner).unwrap_or(0);
    let reply = cluster.client(other).cmd(&["SPUBLISH", channel, "y"]);
    assert!(reply.expect_error().starts_with("MOVED "), "{reply:?}");
}
