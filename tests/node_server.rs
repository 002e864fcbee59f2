//! The built-in node's server and connection commands, transactions and
//! pub/sub, against a plain redis-server where the two must agree (a
//! cluster node differs from a plain server only in SELECT, HELLO's mode,
//! INFO's cluster fields and CROSSSLOT, which are checked on their own).

mod common;
use common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends `args` on two connections (ours, theirs) and asserts equal replies.
#[track_caller]
fn same_on(ours: &mut TestClient, theirs: &mut TestClient, args: &[&str]) -> Reply {
    let (a, b) = (ours.cmd(args), theirs.cmd(args));
    assert_eq!(a, b, "replies differ for {args:?}");
    a
}

/// The `key:value` fields of an INFO reply, by section title.
fn info_fields(reply: &Reply) -> BTreeMap<String, BTreeSet<String>> {
    let text = reply.expect_str();
    let mut sections = BTreeMap::new();
    let mut current = String::new();
    for line in text.split("\r\n") {
        if let Some(title) = line.strip_prefix("# ") {
            current = title.to_string();
            sections.insert(current.clone(), BTreeSet::new());
        } else if let Some((key, _)) = line.split_once(':') {
            sections
                .entry(current.clone())
                .or_insert_with(BTreeSet::new)
                .insert(key.to_string());
        }
    }
    sections
}

/// Sends `args` to both servers of `pair` and reads `n` replies from
/// each (SUBSCRIBE a b answers twice), asserting they are equal.
#[track_caller]
fn same_n(pair: &mut NodePair, args: &[&str], n: usize) -> Vec<Reply> {
    pair.ours.send_raw(&encode_command(args));
    pair.theirs.send_raw(&encode_command(args));
    (0..n)
        .map(|_| {
            let (a, b) = (pair.ours.read_reply(), pair.theirs.read_reply());
            assert_eq!(a, b, "replies differ for {args:?}");
            a
        })
        .collect()
}

fn sorted(reply: &Reply) -> Vec<Reply> {
    let mut items = reply.expect_array().to_vec();
    items.sort_by_key(|r| r.encode());
    items
}

#[test]
fn connection_and_server_errors_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    for args in [
        &["PING"][..],
        &["PING", "x"],
        &["PING", "a", "b"],
        &["ECHO", "hi"],
        &["SELECT", "0"],
        &["SELECT", "x"],
        &["AUTH", "secret"],
        &["AUTH", "default", "secret"],
        &["AUTH", "someone", "secret"],
        &["HELLO", "1"],
        &["HELLO", "x"],
        &["HELLO", "2", "FOO"],
        &["HELLO", "2", "SETNAME"],
        &["HELLO", "2", "SETNAME", "a b"],
        &["HELLO", "2", "AUTH", "someone", "x"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "SETNAME", "worker-1"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", ""],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "x"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "ID", "999999"],
        &["CLIENT", "KILL", "FOO", "bar"],
        &["CLIENT", "KILL", "TYPE", "foo"],
        &["CLIENT", "KILL", "TYPE", "pubsub"],
        &["CLIENT", "KILL", "USER", "nobody"],
        &["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "x"],
        &["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "yes"],
        &["CLIENT", "NO-EVICT", "on"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "REPLY", "maybe"],
        &["CLIENT", "LIST", "TYPE", "x"],
        &["CLIENT", "LIST", "ID", "x"],
        &["CLIENT", "LIST", "ID", "999999"],
        &["CLIENT", "LIST", "foo"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "SETINFO", "lib-name", "x"],
        &["CONFIG", "GET", "save"],
        &["CONFIG", "GET", "appendonly"],
        &["CONFIG", "GET", "no-such-setting"],
        &["CONFIG", "GET", "databases"],
        &["CONFIG", "GET", "maxmemory-policy"],
        &["CONFIG", "SET", "no-such-setting", "1"],
        &["CONFIG", "SET", "save", "", "appendonly"],
        &["CONFIG", "SET", "save", "", "save", ""],
        &["CONFIG", "SET", "cluster-require-full-coverage", "maybe"],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "master 1 1 1",
        ],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub x 1 1",
        ],
        &["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb"],
        &["CONFIG", "SET", "save", ""],
        &["CONFIG", "RESETSTAT"],
        &["WAIT", "0", "0"],
        &["WAIT", "x", "1"],
        &["WAIT", "1", "x"],
        &["WAIT", "1", "-1"],
        &["PUBSUB", "NUMSUB", "a", "b"],
        &["PUBSUB", "NUMPAT"],
        &["PUBSUB", "CHANNELS"],
        &["PUBSUB", "CHANNELS", "a", "b"],
        &["PUBSUB", "SHARDNUMSUB", "a"],
        &["PUBLISH", "nobody-listens", "x"],
        &["UNSUBSCRIBE"],
        &["PUNSUBSCRIBE"],
        &["SUNSUBSCRIBE"],
        &["COMMAND", "COUNT"],
        &["COMMAND", "INFO", "no-such-command"],
        &["COMMAND", "GETKEYS", "get", "k"],
        &["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"],
        &["COMMAND", "GETKEYS", "no-such-command", "a"],
        &["COMMAND", "GETKEYS", "ping", "a"],
        &["COMMAND", "GETKEYS", "set", "a"],
        &["COMMAND", "GETKEYS", "zunionstore", "a", "b", "c"],
        &["COMMAND", "GETKEYS", "spublish", "ch", "msg"],
        &["COMMAND", "GETKEYS", "config", "get", "x"],
        &["COMMAND", "GETKEYS", "config", "foo", "x"],
        &["COMMAND", "GETKEYS", "eval", "return 1", "2", "a", "b", "c"],
        &[
            "COMMAND",
            "GETKEYSANDFLAGS",
            "lmove",
            "a",
            "b",
            "left",
            "right",
        ],
        &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
        &["COMMAND", "LIST", "FILTERBY", "foo", "x"],
        &["COMMAND", "LIST", "foo"],
        &["INFO", "no-such-section"],
    ] {
        pair.same(args);
    }
    // Several patterns: the pairs in any order, as Redis's dict gives them.
    let (ours, theirs) = pair.both(&["CONFIG", "GET", "save", "appendonly", "save"]);
    let pairs = |r: &Reply| -> BTreeSet<Vec<u8>> {
        r.expect_array()
            .chunks(2)
            .map(|kv| [kv[0].encode(), kv[1].encode()].concat())
            .collect()
    };
    assert_eq!(pairs(&ours), pairs(&theirs));
    assert_eq!(ours.expect_array().len(), theirs.expect_array().len());
    // The old form of CLIENT KILL may kill the caller: OK, then closed.
    let addr = |c: &mut TestClient| {
        let info = c.cmd(&["CLIENT", "INFO"]).expect_str().to_string();
        info.split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .unwrap()
            .to_string()
    };
    for mut client in [pair.builtin.client(), pair.redis.server.client()] {
        let me = addr(&mut client);
        assert!(client.cmd(&["CLIENT", "KILL", &me]).is_ok());
        assert!(client.read_raw_until_close().is_empty());
    }
}

#[test]
fn cluster_mode_replies() {
    let node = StandaloneNode::start(&[]);
    let mut c = node.client();
    assert_eq!(
        c.cmd(&["SELECT", "1"]).expect_error(),
        "ERR SELECT is not allowed in cluster mode"
    );
    let hello = c.cmd(&["HELLO", "2", "SETNAME", "me"]);
    let fields = hello.expect_array();
    let id = c.cmd(&["CLIENT", "ID"]).expect_int();
    assert_eq!(
        fields.to_vec(),
        vec![
            Reply::bulk("server"),
            Reply::bulk("redis"),
            Reply::bulk("version"),
            Reply::bulk("7.0.15"),
            Reply::bulk("proto"),
            Reply::Int(2),
            Reply::bulk("id"),
            Reply::Int(id),
            Reply::bulk("mode"),
            Reply::bulk("cluster"),
            Reply::bulk("role"),
            Reply::bulk("master"),
            Reply::bulk("modules"),
            Reply::Array(Some(vec![])),
        ]
    );
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).expect_str(), "me");
    // RESP3 is not spoken: clients fall back to RESP2 on this error.
    assert_eq!(
        c.cmd(&["HELLO", "3"]).expect_error(),
        "NOPROTO unsupported protocol version"
    );
    let info = c.cmd(&["INFO"]);
    let text = info.expect_str();
    for line in [
        "redis_version:7.0.15",
        "redis_mode:cluster",
        "cluster_enabled:1",
    ] {
        assert!(text.contains(line), "{line} missing from INFO:\n{text}");
    }
    assert!(text.contains(&format!("tcp_port:{}", node.server.port())));
    assert!(text.contains("role:master"));
    // Persistence is not pretended.
    assert!(c.cmd(&["BGSAVE"]).expect_error().contains("not supported"));
    assert!(c.cmd(&["SAVE"]).expect_error().contains("not supported"));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "cluster-enabled"]),
        Reply::Array(Some(vec![
            Reply::bulk("cluster-enabled"),
            Reply::bulk("yes")
        ]))
    );
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "cluster-enabled", "no"])
            .expect_error(),
        "ERR CONFIG SET failed (possibly related to argument 'cluster-enabled') - can't set immutable config"
    );
    c.cmd(&["CONFIG", "SET", "cluster-require-full-coverage", "no"])
        .expect_ok();
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "cluster-require-full-coverage"]),
        Reply::Array(Some(vec![
            Reply::bulk("cluster-require-full-coverage"),
            Reply::bulk("no")
        ]))
    );
    assert!(
        c.cmd(&["CONFIG", "SET", "maxmemory", "100mb"])
            .expect_error()
            .contains("not supported by the built-in node")
    );
    // Every setting the node reports, reported once.
    let all = c.cmd(&["CONFIG", "GET", "*"]);
    let names: Vec<_> = all.expect_array().iter().step_by(2).collect();
    let unique: BTreeSet<_> = names.iter().map(|n| n.encode()).collect();
    assert_eq!(unique.len(), names.len());
    assert!(names.len() > 20);
    // COMMAND DOCS is refused (redis-cli then uses its own help).
    assert!(c.cmd(&["COMMAND", "DOCS", "get"]).is_error());
}

#[test]
fn info_reports_the_fields_redis_server_does() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    pair.same(&["SET", "k", "v"]);
    let (ours, theirs) = pair.both(&["INFO"]);
    let (ours, theirs) = (info_fields(&ours), info_fields(&theirs));
    let theirs_all = info_fields(&pair.theirs.cmd(&["INFO", "everything"]));
    // Sections in both: all of Redis's default ones, less the error
    // counts the node does not keep.
    let mut expected: BTreeSet<_> = theirs.keys().cloned().collect();
    expected.remove("Errorstats");
    assert_eq!(ours.keys().cloned().collect::<BTreeSet<_>>(), expected);
    // No invented field: each is one Redis reports (slotway_version aside).
    for (section, fields) in &ours {
        let known = &theirs_all[section];
        for field in fields {
            assert!(
                known.contains(field) || field == "slotway_version",
                "{section}/{field} is not a Redis INFO field"
            );
        }
    }
    // The fields tools read.
    for (section, field) in [
        ("Server", "redis_version"),
        ("Server", "redis_mode"),
        ("Server", "os"),
        ("Server", "arch_bits"),
        ("Server", "process_id"),
        ("Server", "tcp_port"),
        ("Server", "uptime_in_seconds"),
        ("Server", "run_id"),
        ("Clients", "connected_clients"),
        ("Clients", "blocked_clients"),
        ("Clients", "maxclients"),
        ("Memory", "used_memory"),
        ("Memory", "used_memory_human"),
        ("Memory", "used_memory_rss"),
        ("Memory", "maxmemory"),
        ("Memory", "maxmemory_policy"),
        ("Persistence", "loading"),
        ("Persistence", "rdb_changes_since_last_save"),
        ("Persistence", "rdb_last_save_time"),
        ("Persistence", "aof_enabled"),
        ("Stats", "total_connections_received"),
        ("Stats", "total_commands_processed"),
        ("Stats", "instantaneous_ops_per_sec"),
        ("Stats", "total_net_input_bytes"),
        ("Stats", "keyspace_hits"),
        ("Stats", "keyspace_misses"),
        ("Stats", "expired_keys"),
        ("Stats", "pubsub_channels"),
        ("Replication", "role"),
        ("Replication", "connected_slaves"),
        ("Replication", "master_repl_offset"),
        ("CPU", "used_cpu_sys"),
        ("CPU", "used_cpu_user"),
        ("Cluster", "cluster_enabled"),
        ("Keyspace", "db0"),
    ] {
        assert!(
            ours[section].contains(field),
            "ours lacks {section}/{field}"
        );
        assert!(
            theirs[section].contains(field),
            "redis lacks {section}/{field}"
        );
    }
    // Sections asked for by name, in Redis's order whatever the order asked.
    let (ours, theirs) = pair.both(&["INFO", "keyspace", "CLIENTS"]);
    assert_eq!(
        info_fields(&ours).keys().collect::<Vec<_>>(),
        info_fields(&theirs).keys().collect::<Vec<_>>()
    );
    pair.same(&["INFO", "keyspace"]);
    let text = pair.ours.cmd(&["INFO", "stats"]);
    let processed: u64 = text
        .expect_str()
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(processed >= 3, "{processed}");
}

#[test]
fn command_info_matches_redis_server_but_for_acl_categories() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let names = [
        "get",
        "set",
        "config|get",
        "xread",
        "zunionstore",
        "lmove",
        "spublish",
        "config",
        "no-such-command",
    ];
    let mut args = vec!["COMMAND", "INFO"];
    args.extend(names);
    let (ours, theirs) = pair.both(&args);
    let strip = |entry: &Reply| -> Reply {
        match entry {
            Reply::Array(Some(fields)) => {
                let mut fields = fields.clone();
                // ACL categories: the table has none of their own.
                fields[6] = Reply::Array(None);
                // Key spec notes are not in the table either.
                if let Reply::Array(Some(specs)) = &mut fields[8] {
                    for spec in specs.iter_mut() {
                        if let Reply::Array(Some(kv)) = spec {
                            if kv.first() == Some(&Reply::bulk("notes")) {
                                kv.drain(..2);
                            }
                        }
                    }
                }
                if let Reply::Array(Some(subs)) = &mut fields[9] {
                    let mut stripped: Vec<_> = subs.iter().map(strip_entry).collect();
                    stripped.sort_by_key(Reply::encode);
                    *subs = stripped;
                }
                Reply::Array(Some(fields))
            }
            other => other.clone(),
        }
    };
    fn strip_entry(entry: &Reply) -> Reply {
        match entry {
            Reply::Array(Some(fields)) => {
                let mut fields = fields.clone();
                fields[6] = Reply::Array(None);
                Reply::Array(Some(fields))
            }
            other => other.clone(),
        }
    }
    let (ours, theirs) = (ours.expect_array(), theirs.expect_array());
    assert_eq!(ours.len(), names.len());
    for (i, name) in names.iter().enumerate() {
        assert_eq!(strip(&ours[i]), strip(&theirs[i]), "COMMAND INFO {name}");
    }
    // Categories derived from the flags are among Redis's.
    let cats = |r: &Reply| -> BTreeSet<Vec<u8>> {
        r.expect_array()[6]
            .expect_array()
            .iter()
            .map(|c| c.encode())
            .collect()
    };
    assert!(cats(&ours[0]).is_subset(&cats(&theirs[0])));
    // COMMAND LIST: every command and subcommand, in any order.
    let (ours, theirs) = pair.both(&["COMMAND", "LIST"]);
    assert_eq!(sorted(&ours), sorted(&theirs));
    let (ours, theirs) = pair.both(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "conf*"]);
    assert_eq!(sorted(&ours), sorted(&theirs));
    let (ours, theirs) = pair.both(&["COMMAND"]);
    assert_eq!(ours.expect_array().len(), theirs.expect_array().len());
}

#[test]
fn transactions_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let flows: &[&[&[&str]]] = &[
        &[
            &["MULTI"],
            &["MULTI"],
            &["SET", "{t}a", "1"],
            &["INCR", "{t}a"],
            &["GET", "{t}a"],
            &["EXEC"],
        ],
        &[&["EXEC"], &["DISCARD"]],
        &[
            &["MULTI"],
            &["NOSUCHCOMMAND"],
            &["SET", "{t}a", "2"],
            &["EXEC"],
            &["GET", "{t}a"],
        ],
        &[&["MULTI"], &["SET", "{t}a"], &["EXEC"]],
        &[&["MULTI"], &["SAVE"], &["EXEC"]],
        &[
            &["MULTI"],
            &["WATCH", "{t}a"],
            &["SET", "{t}a", "3"],
            &["EXEC"],
        ],
        &[
            &["MULTI"],
            &["SET", "{t}s", "text"],
            &["INCR", "{t}s"],
            &["GET", "{t}s"],
            &["EXEC"],
        ],
        &[
            &["MULTI"],
            &["SET", "{t}a", "4"],
            &["DISCARD"],
            &["GET", "{t}a"],
        ],
        // A malformed EXEC aborts and discards the transaction.
        &[&["MULTI"], &["SET", "{t}a", "5"], &["EXEC", "x"], &["EXEC"]],
        &[&["MULTI"], &["EXEC"]],
        &[&["MULTI"], &["PING"], &["WAIT", "1", "0"], &["EXEC"]],
        // SUBSCRIBE inside MULTI enters subscribed mode at EXEC.
        &[
            &["MULTI"],
            &["SUBSCRIBE", "tx-channel"],
            &["PING"],
            &["EXEC"],
            &["GET", "{t}a"],
            &["DISCARD"],
            &["RESET"],
        ],
    ];
    for flow in flows {
        for args in *flow {
            pair.same(args);
        }
    }
    // WATCH: another client's write makes EXEC fail with a nil array.
    let mut ours2 = pair.builtin.client();
    let mut theirs2 = pair.redis.server.client();
    for (set_by_other, expect_nil) in [(true, true), (false, false)] {
        pair.same(&["WATCH", "{t}w"]);
        pair.same(&["MULTI"]);
        pair.same(&["INCR", "{t}w"]);
        if set_by_other {
            same_on(&mut ours2, &mut theirs2, &["SET", "{t}w", "10"]);
        }
        let reply = pair.same(&["EXEC"]);
        assert_eq!(reply.is_nil(), expect_nil, "{reply:?}");
    }
    // The client's own write before MULTI breaks its watch too.
    pair.same(&["WATCH", "{t}w"]);
    pair.same(&["SET", "{t}w", "1"]);
    pair.same(&["MULTI"]);
    pair.same(&["GET", "{t}w"]);
    assert!(pair.same(&["EXEC"]).is_nil());
    // UNWATCH forgets it; a watch also ends with EXEC.
    pair.same(&["WATCH", "{t}w"]);
    same_on(&mut ours2, &mut theirs2, &["SET", "{t}w", "2"]);
    pair.same(&["UNWATCH"]);
    pair.same(&["MULTI"]);
    pair.same(&["GET", "{t}w"]);
    pair.same(&["EXEC"]);
    same_on(&mut ours2, &mut theirs2, &["SET", "{t}w", "3"]);
    pair.same(&["MULTI"]);
    pair.same(&["GET", "{t}w"]);
    pair.same(&["EXEC"]);
    // A watched key that did not exist and was then created.
    pair.same(&["WATCH", "{t}new"]);
    same_on(&mut ours2, &mut theirs2, &["SET", "{t}new", "x"]);
    pair.same(&["MULTI"]);
    pair.same(&["GET", "{t}new"]);
    assert!(pair.same(&["EXEC"]).is_nil());
}

#[test]
fn exec_checks_the_slot_of_every_queued_key() {
    let node = StandaloneNode::start(&[]);
    let mut c = node.client();
    c.cmd(&["MULTI"]).expect_ok();
    assert_eq!(c.cmd(&["SET", "a", "1"]).expect_str(), "QUEUED");
    assert_eq!(c.cmd(&["SET", "b", "2"]).expect_str(), "QUEUED");
    assert_eq!(
        c.cmd(&["EXEC"]).expect_error(),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    // The transaction is gone, and nothing ran.
    assert_eq!(c.cmd(&["EXEC"]).expect_error(), "ERR EXEC without MULTI");
    assert!(c.cmd(&["GET", "a"]).is_nil());
    // A queued command with keys in two slots is refused when queued.
    c.cmd(&["MULTI"]).expect_ok();
    assert!(
        c.cmd(&["MGET", "a", "b"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    assert_eq!(
        c.cmd(&["EXEC"]).expect_error(),
        "EXECABORT Transaction discarded because of previous errors."
    );
    // One slot: fine.
    c.cmd(&["MULTI"]).expect_ok();
    c.cmd(&["SET", "{x}a", "1"]);
    c.cmd(&["INCR", "{x}b"]);
    assert_eq!(
        c.cmd(&["EXEC"]),
        Reply::Array(Some(vec![Reply::Simple("OK".into()), Reply::Int(1)]))
    );
}

#[test]
fn pubsub_matches_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let mut ours_pub = pair.builtin.client();
    let mut theirs_pub = pair.redis.server.client();
    same_n(&mut pair, &["SUBSCRIBE", "news", "sport"], 2);
    pair.same(&["PSUBSCRIBE", "ne*"]);
    pair.same(&["SUBSCRIBE", "news"]);
    pair.same(&["SSUBSCRIBE", "shard-ch"]);
    pair.same(&["GET", "x"]);
    pair.same(&["PING"]);
    pair.same(&["PING", "hello"]);
    pair.same(&["PUBSUB", "NUMPAT"]);
    // Subscribed mode refuses PUBSUB; ask from the publishers.
    same_on(
        &mut ours_pub,
        &mut theirs_pub,
        &["PUBSUB", "NUMSUB", "news", "sport", "x"],
    );
    same_on(
        &mut ours_pub,
        &mut theirs_pub,
        &["PUBSUB", "SHARDNUMSUB", "shard-ch"],
    );
    let (a, b) = (
        ours_pub.cmd(&["PUBSUB", "CHANNELS"]),
        theirs_pub.cmd(&["PUBSUB", "CHANNELS"]),
    );
    assert_eq!(sorted(&a), sorted(&b));
    same_on(
        &mut ours_pub,
        &mut theirs_pub,
        &["PUBSUB", "CHANNELS", "s*"],
    );
    same_on(&mut ours_pub, &mut theirs_pub, &["PUBSUB", "SHARDCHANNELS"]);
    // A message to `news` reaches the channel and the pattern subscription.
    assert_eq!(
        same_on(
            &mut ours_pub,
            &mut theirs_pub,
            &["PUBLISH", "news", "hello"]
        )
        .expect_int(),
        2
    );
    for _ in 0..2 {
        let (a, b) = (pair.ours.read_reply(), pair.theirs.read_reply());
        assert_eq!(a, b);
    }
    same_on(
        &mut ours_pub,
        &mut theirs_pub,
        &["PUBLISH", "sport", "goal"],
    );
    assert_eq!(pair.ours.read_reply(), pair.theirs.read_reply());
    same_on(
        &mut ours_pub,
        &mut theirs_pub,
        &["SPUBLISH", "shard-ch", "s"],
    );
    assert_eq!(pair.ours.read_reply(), pair.theirs.read_reply());
    same_on(&mut ours_pub, &mut theirs_pub, &["PUBLISH", "nothing", "x"]);
    // Unsubscribing: counts per confirmation.
    same_n(&mut pair, &["UNSUBSCRIBE", "sport", "not-subscribed"], 2);
    pair.same(&["PUNSUBSCRIBE"]);
    pair.same(&["SUNSUBSCRIBE"]);
    pair.same(&["SUNSUBSCRIBE"]);
    pair.same(&["UNSUBSCRIBE"]);
    // Out of subscribed mode: every command again.
    pair.same(&["SET", "k", "v"]);
    pair.same(&["UNSUBSCRIBE"]);
    // Unsubscribing from everything at once confirms each channel.
    same_n(&mut pair, &["SUBSCRIBE", "c1", "c2", "c3"], 3);
    let mut replies = Vec::new();
    for c in [&mut pair.ours, &mut pair.theirs] {
        c.send_raw(&encode_command(&["UNSUBSCRIBE"]));
        let mut got: Vec<_> = (0..3).map(|_| c.read_reply()).collect();
        got.sort_by_key(|r| r.encode());
        replies.push(got);
    }
    assert_eq!(replies[0].len(), 3);
    // The counts differ by order; the channels do not.
    let channels = |got: &[Reply]| -> BTreeSet<Vec<u8>> {
        got.iter().map(|r| r.expect_array()[1].encode()).collect()
    };
    assert_eq!(channels(&replies[0]), channels(&replies[1]));
    // RESET leaves subscribed mode silently.
    pair.same(&["PSUBSCRIBE", "p*"]);
    pair.same(&["RESET"]);
    pair.same(&["GET", "k"]);
    same_on(&mut ours_pub, &mut theirs_pub, &["PUBSUB", "NUMPAT"]);
}

#[test]
fn messages_flow_between_clients_and_stop_at_unsubscribe() {
    let node = StandaloneNode::start(&[]);
    let mut sub = node.client();
    let mut publisher = node.client();
    sub.cmd(&["SUBSCRIBE", "orders"]);
    sub.cmd(&["PSUBSCRIBE", "user.*"]);
    for i in 0..100 {
        let n = publisher
            .cmd(&["PUBLISH", "orders", &i.to_string()])
            .expect_int();
        assert_eq!(n, 1);
    }
    for i in 0..100 {
        assert_eq!(
            sub.read_reply(),
            Reply::Array(Some(vec![
                Reply::bulk("message"),
                Reply::bulk("orders"),
                Reply::bulk(i.to_string()),
            ]))
        );
    }
    assert_eq!(publisher.cmd(&["PUBLISH", "user.42", "hi"]).expect_int(), 1);
    assert_eq!(
        sub.read_reply(),
        Reply::Array(Some(vec![
            Reply::bulk("pmessage"),
            Reply::bulk("user.*"),
            Reply::bulk("user.42"),
            Reply::bulk("hi"),
        ]))
    );
    // A message published before the unsubscribe is handled comes first.
    publisher.cmd(&["PUBLISH", "orders", "last"]);
    let reply = sub.cmd(&["UNSUBSCRIBE", "orders"]);
    assert_eq!(reply.expect_array()[0], Reply::bulk("message"));
    assert_eq!(
        sub.read_reply(),
        Reply::Array(Some(vec![
            Reply::bulk("unsubscribe"),
            Reply::bulk("orders"),
            Reply::Int(1),
        ]))
    );
    assert_eq!(publisher.cmd(&["PUBLISH", "orders", "x"]).expect_int(), 0);
    // A disconnected subscriber is forgotten.
    drop(sub);
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        publisher.cmd(&["PUBSUB", "NUMPAT"]).expect_int() == 0
    });
    assert_eq!(publisher.cmd(&["PUBLISH", "user.1", "x"]).expect_int(), 0);
}

#[test]
fn a_slow_subscriber_is_disconnected_at_its_output_limit() {
    let node = StandaloneNode::start(&[]);
    let mut admin = node.client();
    admin
        .cmd(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 256kb 60",
        ])
        .expect_ok();
    let mut slow = node.client();
    slow.cmd(&["SUBSCRIBE", "firehose"]);
    let mut fast = node.client();
    fast.cmd(&["SUBSCRIBE", "firehose"]);
    let mut publisher = node.client();
    let message = "x".repeat(64 * 1024);
    let started = Instant::now();
    let mut last = 2;
    // The slow one never reads: once the socket buffers are full its queue
    // grows to the limit and it is cut off. The fast one keeps up.
    for i in 0..2000 {
        last = publisher
            .cmd(&["PUBLISH", "firehose", &message])
            .expect_int();
        let got = fast.read_reply();
        assert_eq!(
            got.expect_array()[2].as_bulk().map(<[u8]>::len),
            Some(message.len())
        );
        if last == 1 {
            assert!(i > 4, "cut off after only {i} messages");
            break;
        }
    }
    assert_eq!(last, 1, "the slow subscriber was never disconnected");
    assert!(started.elapsed() < Duration::from_secs(30));
    // It is gone from the subscribers and the client list; the node serves
    // everyone else.
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        publisher.cmd(&["PUBSUB", "NUMSUB", "firehose"])
            == Reply::Array(Some(vec![Reply::bulk("firehose"), Reply::Int(1)]))
    });
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        let list = admin.cmd(&["CLIENT", "LIST"]);
        list.expect_str().lines().count() == 3
    });
    assert_eq!(admin.cmd(&["PING"]).expect_str(), "PONG");
    // What reaches the slow client ends with the close.
    let rest = slow.read_raw_until_close();
    assert!(rest.len() < 64 * 1024 * 2000);
}

#[test]
fn client_list_shows_and_kill_closes_other_clients() {
    let node = StandaloneNode::start(&[]);
    let mut a = node.client();
    let mut b = node.client();
    a.cmd(&["CLIENT", "SETNAME", "alpha"]).expect_ok();
    let a_id = a.cmd(&["CLIENT", "ID"]).expect_int();
    a.cmd(&["MULTI"]).expect_ok();
    a.cmd(&["GET", "x"]);
    let list = b.cmd(&["CLIENT", "LIST"]).expect_str().to_string();
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("id={a_id} ")))
        .unwrap_or_else(|| panic!("{a_id} not in {list}"));
    for field in [
        "name=alpha",
        "flags=x",
        "multi=1",
        "cmd=get",
        "db=0",
        "resp=2",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    let own = b.cmd(&["CLIENT", "INFO"]).expect_str().to_string();
    assert!(own.contains("cmd=client|info"), "{own}");
    assert!(own.ends_with('\n'));
    // TYPE and ID filters.
    let mut s = node.client();
    s.cmd(&["SUBSCRIBE", "c"]);
    let pubsub = b
        .cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])
        .expect_str()
        .to_string();
    assert_eq!(pubsub.lines().count(), 1);
    assert!(
        pubsub.contains("flags=P ") && pubsub.contains(" sub=1 "),
        "{pubsub}"
    );
    let by_id = b
        .cmd(&["CLIENT", "LIST", "ID", &a_id.to_string(), "999999"])
        .expect_str()
        .to_string();
    assert_eq!(by_id.lines().count(), 1);
    // KILL by id: a is closed at once.
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", &a_id.to_string()])
            .expect_int(),
        1
    );
    assert!(a.try_cmd(&["PING"]).is_err());
    // KILL by type (skipping the caller), then the old form by address.
    assert_eq!(b.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).expect_int(), 1);
    let mut c = node.client();
    let c_info = c.cmd(&["CLIENT", "INFO"]).expect_str().to_string();
    let c_addr = c_info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    b.cmd(&["CLIENT", "KILL", &c_addr]).expect_ok();
    assert!(c.try_cmd(&["PING"]).is_err());
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        b.cmd(&["CLIENT", "LIST"]).expect_str().lines().count() == 1
    });
    assert_eq!(b.cmd(&["CLIENT", "KILL", "TYPE", "normal"]).expect_int(), 0);
}

#[test]
fn client_reply_off_and_skip_match_redis_server() {
    let Some(bins) = require_redis() else { return };
    let pair = NodePair::start(&bins);
    let script: Vec<u8> = [
        &["CLIENT", "REPLY", "SKIP"][..],
        &["PING", "skipped"],
        &["PING", "a"],
        &["CLIENT", "REPLY", "OFF"],
        &["PING", "b"],
        &["CLIENT", "REPLY", "SKIP"],
        &["PING", "c"],
        &["CLIENT", "REPLY", "ON"],
        &["PING", "d"],
    ]
    .iter()
    .flat_map(|args| encode_command(args))
    .collect();
    let mut outputs = Vec::new();
    for mut client in [pair.builtin.client(), pair.redis.server.client()] {
        client.send_raw(&script);
        outputs.push(client.read_raw_for(Duration::from_millis(300)));
    }
    assert_eq!(
        String::from_utf8_lossy(&outputs[0]),
        String::from_utf8_lossy(&outputs[1])
    );
    assert_eq!(outputs[0], b"$1\r\na\r\n+OK\r\n$1\r\nd\r\n");
}

#[test]
fn debug_sleep_stops_the_node_and_wait_times_out() {
    let node = StandaloneNode::start(&[]);
    let mut a = node.client();
    let mut b = node.client();
    assert!(a.cmd(&["DEBUG", "SLEEP", "0"]).is_ok());
    assert!(a.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]).is_ok());
    assert_eq!(
        a.cmd(&["DEBUG", "FOO"]).expect_error(),
        "ERR unknown subcommand or wrong number of arguments for 'FOO'. Try DEBUG HELP."
    );
    // While one client's DEBUG SLEEP runs, nobody is served: the other
    // client's PING is answered when the sleep ends, with the sleeper's OK.
    a.send_raw(&encode_command(&["DEBUG", "SLEEP", "1"]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.cmd(&["PING"]).expect_str(), "PONG");
    let pinged = Instant::now();
    assert!(a.read_reply().is_ok());
    assert!(
        pinged.elapsed() < Duration::from_millis(300),
        "PING was answered during the sleep"
    );
    // WAIT for a replica that does not exist: 0 after the timeout.
    let started = Instant::now();
    assert_eq!(a.cmd(&["WAIT", "1", "300"]).expect_int(), 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(a.cmd(&["WAIT", "0", "0"]).expect_int(), 0);
    // Inside EXEC it answers at once.
    a.cmd(&["MULTI"]).expect_ok();
    a.cmd(&["WAIT", "1", "0"]);
    a.cmd(&["DEBUG", "SLEEP", "0.1"]);
    assert_eq!(
        a.cmd(&["EXEC"]),
        Reply::Array(Some(vec![Reply::Int(0), Reply::Simple("OK".into())]))
    );
    // A client that leaves while waiting for ever does not linger.
    let mut c = node.client();
    c.send_raw(&encode_command(&["WAIT", "1", "0"]));
    std::thread::sleep(Duration::from_millis(100));
    drop(c);
    eventually(Duration::from_secs(5), Duration::from_millis(20), || {
        b.cmd(&["CLIENT", "LIST"]).expect_str().lines().count() == 2
    });
}

/// `redis-benchmark` next to `redis-cli`.
fn benchmark_bin(bins: &RedisBins) -> Option<std::path::PathBuf> {
    let path = bins.cli.with_file_name("redis-benchmark");
    path.is_file().then_some(path)
}

#[test]
fn redis_benchmark_runs_without_warnings() {
    let Some(bins) = require_redis() else { return };
    let Some(bench) = benchmark_bin(&bins) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-benchmark not installed"
        );
        eprintln!("SKIP: redis-benchmark not installed");
        return;
    };
    let node = StandaloneNode::start(&[]);
    let mut child = Command::new(bench)
        .args(["-p", &node.server.port().to_string()])
        .args(["-t", "ping,set,get", "-n", "2000", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "redis-benchmark did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.trim().is_empty(), "stderr: {stderr}");
    for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
        assert!(
            stdout.contains(&format!("{test}: ")) && stdout.contains("requests per second"),
            "{test} missing: {stdout}"
        );
    }
    assert!(
        !stdout.contains("WARNING") && !stdout.contains("ERROR"),
        "{stdout}"
    );
}

/// CLIENT UNBLOCK ends another client's blocking command as redis-server
/// does: the command's timeout reply (TIMEOUT) or an `-UNBLOCKED` error
/// (ERROR); `:0` for a client that is not blocked; Redis's errors.
#[test]
fn client_unblock_matches_redis_server() {
    let Some(bins) = require_redis() else { return };
    let mut pair = NodePair::start(&bins);
    let mut replies = Vec::new();
    for server in [&pair.builtin.server, &pair.redis.server] {
        let mut blocked = server.client();
        let mut admin = server.client();
        let id = blocked.cmd(&["CLIENT", "ID"]).expect_int().to_string();
        let mut seen = vec![admin.cmd(&["CLIENT", "UNBLOCK", &id])];
        for (command, mode) in [
            (&["BLPOP", "{u}l", "0"][..], "TIMEOUT"),
            (&["BZPOPMIN", "{u}z", "0"], "ERROR"),
            (&["BRPOP", "{u}l", "0"], "ERROR"),
            (&["BLMOVE", "{u}l", "{u}m", "LEFT", "LEFT", "0"], "TIMEOUT"),
        ] {
            blocked.send_raw(&encode_command(command));
            let unblocked =
                try_eventually(Duration::from_secs(5), Duration::from_millis(10), || {
                    admin.cmd(&["CLIENT", "UNBLOCK", &id, mode]).expect_int() == 1
                });
            let reply = blocked.read_reply();
            assert!(unblocked.is_ok(), "{command:?}: {reply:?}");
            seen.push(reply);
        }
        seen.push(blocked.cmd(&["PING"]));
        replies.push(seen);
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(
        replies[0][2].expect_error(),
        "UNBLOCKED client unblocked via CLIENT UNBLOCK"
    );
    pair.same_all(&[
        &["CLIENT", "UNBLOCK", "x"],
        &["CLIENT", "UNBLOCK", "x", "LATER"],
        &["CLIENT", "UNBLOCK", "1", "TIMEOUT", "x"],
        &["CLIENT", "UNBLOCK", "-1"],
        &["CLIENT", "UNBLOCK", "999999"],
    ]);
}
