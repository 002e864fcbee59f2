//! `slotway cluster create|check|reshard` against real redis-server nodes,
//! cross-checked with `redis-cli --cluster check`.

// Helpers outside #[test] functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Bound on one run of `slotway cluster ...` or `redis-cli --cluster`.
const RUN_TIMEOUT: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(50);

/// What a bounded run of a command left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with stdin closed; kills it and panics after `RUN_TIMEOUT`.
fn run_bounded(cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "{cmd:?} still running after {RUN_TIMEOUT:?}\n{run}"
    );
    run
}

/// `slotway cluster <args>` with an empty environment.
fn slotway_cluster(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slotway"));
    cmd.env_clear().arg("cluster").args(args);
    run_bounded(&mut cmd)
}

fn redis_cli_check(cluster: &RedisCluster, addr: &str) -> Run {
    run_bounded(
        Command::new(cluster.cli_bin())
            .args(["--cluster", "check", addr])
            .env_clear(),
    )
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

fn cluster_info(cluster: &RedisCluster, port: u16, name: &str) -> Option<String> {
    let info = cluster.client(port).cmd(&["CLUSTER", "INFO"]);
    info_field(info.expect_str(), name)
}

#[test]
fn create_with_replicas_passes_both_checks() {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_bare(6);
    let addrs = cluster.addrs();
    let mut args = vec!["create", "--replicas", "1", "--yes"];
    args.extend(addrs.iter().map(String::as_str));
    let run = slotway_cluster(&args);
    assert!(run.ok(), "create failed:\n{run}\n{}", cluster.logs_tail(10));
    assert!(run.stdout.contains("Master[0] -> Slots 0 - 5460"), "{run}");
    assert!(
        run.stdout.contains("[OK] All 16384 slots covered."),
        "{run}"
    );

    // Every node reports cluster_state:ok, knows all six, and every
    // replica's link is up.
    cluster.wait_converged(Duration::from_secs(20));
    for port in cluster.ports() {
        assert_eq!(
            cluster_info(&cluster, port, "cluster_state").as_deref(),
            Some("ok")
        );
        assert_eq!(
            cluster_info(&cluster, port, "cluster_known_nodes").as_deref(),
            Some("6")
        );
    }

    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let mut replicas = Vec::new();
    for &master in &masters {
        let of = cluster.replicas_of(master);
        assert_eq!(of.len(), 1, "replicas of {master}: {of:?}");
        assert_ne!(of[0], master);
        replicas.extend(of);
    }
    replicas.sort_unstable();
    replicas.dedup();
    assert_eq!(replicas.len(), 3, "each replica serves its own master");

    let cli = redis_cli_check(&cluster, &addrs[0]);
    assert!(cli.ok(), "redis-cli --cluster check failed:\n{cli}");
    assert!(
        cli.stdout
            .contains("[OK] All nodes agree about slots configuration."),
        "{cli}"
    );
    let own = slotway_cluster(&["check", &addrs[3]]);
    assert!(own.ok(), "slotway cluster check failed:\n{own}");
    assert!(own.stdout.contains("3 masters"), "{own}");
}

#[test]
fn create_refuses_unfit_nodes_and_unconfirmed_plans() {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start_bare(7);
    let addrs = cluster.addrs();
    let ports = cluster.ports();
    // Node 0 holds keys; nodes 1 and 2 have met each other.
    cluster
        .client(ports[0])
        .cmd(&["DEBUG", "POPULATE", "5"])
        .expect_ok();
    cluster
        .client(ports[1])
        .cmd(&["CLUSTER", "MEET", "127.0.0.1", &ports[2].to_string()])
        .expect_ok();
    eventually(Duration::from_secs(10), POLL, || {
        cluster_info(&cluster, ports[2], "cluster_known_nodes").as_deref() == Some("2")
    });

    let mut args = vec!["create", "--yes"];
    args.extend(addrs[..4].iter().map(String::as_str));
    let run = slotway_cluster(&args);
    assert_eq!(run.code, Some(1), "{run}");
    let why = &run.stderr;
    assert!(
        why.starts_with("slotway: cannot create the cluster"),
        "{run}"
    );
    assert!(
        why.contains(&format!("{} is not empty: it holds 5 key(s)", addrs[0])),
        "{run}"
    );
    for addr in &addrs[1..3] {
        assert!(
            why.contains(&format!("{addr} already knows other nodes")),
            "{run}"
        );
    }
    assert!(!why.contains(&addrs[3]), "node 3 is fine: {run}");

    // Four nodes with one replica each make two masters.
    let mut args = vec!["create", "--replicas", "1", "--yes"];
    args.extend(addrs[3..7].iter().map(String::as_str));
    let run = slotway_cluster(&args);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("at least 3 masters"), "{run}");

    // No --yes and no terminal: refused at the question, nothing changed.
    let mut args = vec!["create"];
    args.extend(addrs[4..7].iter().map(String::as_str));
    let run = slotway_cluster(&args);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("pass --yes"), "{run}");
    assert!(
        run.stdout.contains("Master[2] -> Slots 10923 - 16383"),
        "{run}"
    );
    for &port in &ports[4..7] {
        assert_eq!(
            cluster_info(&cluster, port, "cluster_slots_assigned").as_deref(),
            Some("0")
        );
        assert_eq!(
            cluster_info(&cluster, port, "cluster_known_nodes").as_deref(),
            Some("1")
        );
    }

    // A malformed address is a usage error.
    let run = slotway_cluster(&["create", "--yes", "nope", &addrs[4], &addrs[5]]);
    assert_eq!(run.code, Some(64), "{run}");
}

#[test]
fn reshard_moves_slots_with_their_keys() {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start(3, 1);
    let from = cluster.master_for_slot(0).expect("an owner of slot 0");
    let to = *cluster
        .masters()
        .iter()
        .find(|&&m| m != from)
        .expect("a second master");
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));

    // Three keys in each of the 100 slots that move (the source's lowest),
    // and a few in a slot that stays.
    let mut source = cluster.client(from);
    let mut keys = Vec::new();
    for slot in (0..100).chain([200]) {
        let tag = hash_tag_for_slot(slot);
        for i in 0..3 {
            let key = format!("{{{tag}}}:{i}");
            source
                .cmd(&["SET", &key, &format!("v{slot}-{i}")])
                .expect_ok();
            keys.push((slot, key));
        }
    }

    let entry = cluster.nodes()[0].addr();
    let run = slotway_cluster(&[
        "reshard", &entry, "--from", &from_id, "--to", &to_id, "--slots", "100", "--yes",
    ]);
    assert!(
        run.ok(),
        "reshard failed:\n{run}\n{}",
        cluster.logs_tail(10)
    );
    assert!(
        run.stdout.contains("Moved 100 slot(s) and 300 key(s)"),
        "{run}"
    );
    assert!(run.stderr.contains("Moved slot 99"), "progress: {run}");

    for slot in 0..100 {
        assert_eq!(cluster.master_for_slot(slot), Some(to), "slot {slot}");
    }
    assert_eq!(cluster.master_for_slot(100), Some(from));
    let mut target = cluster.client(to);
    for (slot, key) in &keys {
        let owner = if *slot < 100 {
            &mut target
        } else {
            &mut source
        };
        let value = owner.cmd(&["GET", key]);
        assert_eq!(
            value.as_str(),
            Some(format!("v{slot}-{}", &key[key.len() - 1..]).as_str()),
            "{key} (slot {slot})"
        );
    }
    assert_eq!(source.cmd(&["DBSIZE"]).expect_int(), 3);

    let own = slotway_cluster(&["check", &entry]);
    assert!(own.ok(), "{own}");
    assert!(!own.stdout.contains("slots are open"), "{own}");
    let cli = redis_cli_check(&cluster, &entry);
    assert!(cli.ok(), "{cli}");
}

#[test]
fn check_reports_an_open_slot() {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start(3, 0);
    let from = cluster
        .master_for_slot(7000)
        .expect("an owner of slot 7000");
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let entry = cluster.nodes()[0].addr();
    let clean = slotway_cluster(&["check", &entry]);
    assert!(clean.ok(), "{clean}");

    cluster
        .client(from)
        .cmd(&[
            "CLUSTER",
            "SETSLOT",
            "7000",
            "MIGRATING",
            &cluster.node_id(to),
        ])
        .expect_ok();
    let run = slotway_cluster(&["check", &entry]);
    assert_eq!(run.code, Some(1), "{run}");
    let line = format!("Node 127.0.0.1:{from} has slot 7000 in migrating state");
    assert!(run.stdout.contains(&line), "{run}");
    assert!(
        run.stdout
            .contains("[WARNING] The following slots are open: 7000."),
        "{run}"
    );
    assert!(run.stderr.contains("found problems"), "{run}");
}

#[test]
fn reshard_stops_at_a_busy_key_and_resumes_with_replace() {
    let Some(_) = require_redis() else { return };
    let cluster = RedisCluster::start(3, 0);
    let from = cluster.master_for_slot(0).expect("an owner of slot 0");
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    let key = format!("{{{}}}:k", hash_tag_for_slot(1));
    cluster.client(from).cmd(&["SET", &key, "new"]).expect_ok();
    // Plant a stale copy of the key on the target: only a node importing
    // the slot accepts it (after ASKING).
    let mut target = cluster.client(to);
    target
        .cmd(&["CLUSTER", "SETSLOT", "1", "IMPORTING", &from_id])
        .expect_ok();
    let replies = target.pipeline(&[vec!["ASKING"], vec!["SET", &key, "stale"]]);
    assert!(replies.iter().all(Reply::is_ok), "{replies:?}");
    target
        .cmd(&["CLUSTER", "SETSLOT", "1", "STABLE"])
        .expect_ok();

    let entry = cluster.nodes()[0].addr();
    let reshard = |extra: &[&str]| {
        let mut args = vec![
            "reshard", &entry, "--from", &from_id, "--to", &to_id, "--slots", "2", "--yes",
        ];
        args.extend(extra);
        slotway_cluster(&args)
    };
    let run = reshard(&[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr
            .contains("slot 1: a key being moved already exists"),
        "{run}"
    );
    assert!(run.stderr.contains("--replace"), "{run}");
    let open = slotway_cluster(&["check", &entry]);
    assert_eq!(open.code, Some(1), "{open}");
    assert!(open.stdout.contains("slots are open: 1."), "{open}");

    // Run again with --replace: the open slot is finished first.
    let run = reshard(&["--replace"]);
    assert!(run.ok(), "{run}");
    assert!(
        run.stdout.contains("Resuming open slot(s) 1 first"),
        "{run}"
    );
    assert_eq!(cluster.master_for_slot(0), Some(to));
    assert_eq!(cluster.master_for_slot(1), Some(to));
    assert_eq!(target.cmd(&["GET", &key]).as_str(), Some("new"));
}
