//! Scripts and functions through the proxy, on redis-server (the built-in
//! node runs no scripts): routed by their keys, administered on every
//! master, and a script the proxy saw loaded survives a master that lost it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use slotway::cluster::key_slot;

const SET_SCRIPT: &str = "return redis.call('set', KEYS[1], ARGV[1])";
const ECHO_SCRIPT: &str = "return ARGV[1]";
const LIBRARY: &str = "#!lua name=mylib\nredis.register_function('echo1', function(keys, args) return args[1] end)\nredis.register_function{function_name='get1', callback=function(keys, args) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

/// A tag whose slot the master on `port` owns.
fn tag_on(cluster: &RedisCluster, port: u16) -> String {
    (0..100_000)
        .map(|i| format!("tag{i}"))
        .find(|t| cluster.master_for_slot(key_slot(t.as_bytes())) == Some(port))
        .unwrap()
}

#[test]
fn scripts_and_functions_act_on_the_whole_cluster() {
    let Some((cluster, proxy)) = cluster_with_proxy(Backend::Redis, 0, ProxyOptions::default())
    else {
        return;
    };
    let mut c = proxy.client();
    // EVAL by its keys; keyless on any master; CROSSSLOT across slots.
    assert!(c.cmd(&["EVAL", SET_SCRIPT, "1", "{k}a", "v"]).is_ok());
    assert_eq!(c.cmd(&["GET", "{k}a"]), Reply::bulk("v"));
    assert_eq!(c.cmd(&["EVAL", "return 7", "0"]), Reply::Int(7));
    assert_eq!(
        c.cmd(&["EVAL", SET_SCRIPT, "2", "a", "b", "v"]),
        Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(
        c.cmd(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "{k}a"]),
        Reply::bulk("v")
    );
    assert!(c.cmd(&["EVAL_RO", SET_SCRIPT, "1", "{k}a", "w"]).is_error());

    // SCRIPT LOAD reaches every master.
    let sha = c.cmd(&["SCRIPT", "LOAD", ECHO_SCRIPT]);
    let sha = sha.expect_str().to_string();
    for port in cluster.masters() {
        assert_eq!(
            cluster.client(port).cmd(&["SCRIPT", "EXISTS", &sha]),
            Reply::Array(Some(vec![Reply::Int(1)])),
            "master {port}"
        );
    }
    assert_eq!(
        c.cmd(&[
            "SCRIPT",
            "EXISTS",
            &sha,
            "0000000000000000000000000000000000000000"
        ]),
        Reply::Array(Some(vec![Reply::Int(1), Reply::Int(0)]))
    );
    for port in cluster.masters() {
        let key = format!("{{{}}}k", tag_on(&cluster, port));
        assert_eq!(
            c.cmd(&["EVALSHA", &sha, "1", &key, "hi"]),
            Reply::bulk("hi")
        );
    }
    // A master that lost the script gets it again from the proxy.
    let victim = cluster.masters()[0];
    let key = format!("{{{}}}k", tag_on(&cluster, victim));
    cluster.client(victim).cmd(&["SCRIPT", "FLUSH"]).expect_ok();
    assert_eq!(
        c.cmd(&["EVALSHA_RO", &sha, "1", &key, "healed"]),
        Reply::bulk("healed")
    );
    assert_eq!(
        cluster.client(victim).cmd(&["SCRIPT", "EXISTS", &sha]),
        Reply::Array(Some(vec![Reply::Int(1)]))
    );
    // ... but a script nobody loaded is NOSCRIPT, as on Redis.
    let unknown = c.cmd(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]);
    assert!(
        unknown.expect_error().starts_with("NOSCRIPT"),
        "{unknown:?}"
    );
    // SCRIPT FLUSH empties every master and the proxy's cache.
    c.cmd(&["SCRIPT", "FLUSH"]).expect_ok();
    assert_eq!(
        c.cmd(&["SCRIPT", "EXISTS", &sha]),
        Reply::Array(Some(vec![Reply::Int(0)]))
    );
    assert!(
        c.cmd(&["EVALSHA", &sha, "1", &key, "x"])
            .expect_error()
            .starts_with("NOSCRIPT")
    );
    assert!(
        c.cmd(&["SCRIPT", "KILL"])
            .expect_error()
            .starts_with("NOTBUSY")
    );
    let debug = c.cmd(&["SCRIPT", "DEBUG", "YES"]);
    assert!(debug.expect_error().contains("'SCRIPT DEBUG'"), "{debug:?}");

    // Functions: loaded, deleted, restored everywhere.
    assert_eq!(c.cmd(&["FUNCTION", "LOAD", LIBRARY]), Reply::bulk("mylib"));
    for port in cluster.masters() {
        let list = cluster.client(port).cmd(&["FUNCTION", "LIST"]);
        assert_eq!(list.expect_array().len(), 1, "master {port}: {list:?}");
    }
    assert!(
        c.cmd(&["FUNCTION", "LOAD", LIBRARY])
            .expect_error()
            .contains("already exists")
    );
    assert_eq!(c.cmd(&["FCALL", "echo1", "0", "yo"]), Reply::bulk("yo"));
    assert_eq!(c.cmd(&["FCALL_RO", "get1", "1", "{k}a"]), Reply::bulk("v"));
    assert!(
        c.cmd(&["FCALL", "echo1", "2", "a", "b", "x"])
            .expect_error()
            .starts_with("CROSSSLOT")
    );
    assert_eq!(c.cmd(&["FUNCTION", "LIST"]).expect_array().len(), 1);
    let dump = c.cmd(&["FUNCTION", "DUMP"]);
    let dump = dump.as_bulk().expect("a dump").to_vec();
    c.cmd(&["FUNCTION", "DELETE", "mylib"]).expect_ok();
    for port in cluster.masters() {
        let list = cluster.client(port).cmd(&["FUNCTION", "LIST"]);
        assert_eq!(list.expect_array().len(), 0, "master {port}");
    }
    assert!(c.cmd_bytes(&[&b"FUNCTION"[..], b"RESTORE", &dump]).is_ok());
    assert_eq!(c.cmd(&["FCALL", "echo1", "0", "back"]), Reply::bulk("back"));
    c.cmd(&["FUNCTION", "FLUSH"]).expect_ok();
    for port in cluster.masters() {
        let list = cluster.client(port).cmd(&["FUNCTION", "LIST"]);
        assert_eq!(list.expect_array().len(), 0, "master {port}");
    }
    // Scripts queue in a transaction like any keyed command.
    let sha = c.cmd(&["SCRIPT", "LOAD", ECHO_SCRIPT]);
    let sha = sha.expect_str().to_string();
    c.cmd(&["MULTI"]).expect_ok();
    c.cmd(&["EVALSHA", &sha, "1", "{k}a", "in-tx"]);
    c.cmd(&["EVAL", SET_SCRIPT, "1", "{k}a", "tx"]);
    assert_eq!(
        c.cmd(&["EXEC"]),
        Reply::Array(Some(vec![Reply::bulk("in-tx"), Reply::Simple("OK".into())]))
    );
}

#[test]
fn a_script_cached_by_the_proxy_survives_a_failover() {
    let Some((mut cluster, proxy)) = cluster_with_proxy(Backend::Redis, 1, ProxyOptions::default())
    else {
        return;
    };
    let mut c = proxy.client();
    let sha = c.cmd(&["SCRIPT", "LOAD", SET_SCRIPT]);
    let sha = sha.expect_str().to_string();
    assert!(c.cmd(&["EVALSHA", &sha, "1", "{f}k", "before"]).is_ok());
    let victim = cluster.master_for_slot(key_slot(b"f")).unwrap();
    let replica = cluster.replicas_of(victim)[0];
    cluster.kill(victim);
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        cluster.master_for_slot(key_slot(b"f")) == Some(replica)
    });
    let mut promoted = cluster.client(replica);
    let had_it = promoted.cmd(&["SCRIPT", "EXISTS", &sha]);
    // Whatever replication did, the new master starts without the script.
    promoted.cmd(&["SCRIPT", "FLUSH"]).expect_ok();
    assert!(c.cmd(&["EVALSHA", &sha, "1", "{f}k", "after"]).is_ok());
    assert_eq!(c.cmd(&["GET", "{f}k"]), Reply::bulk("after"));
    eprintln!("the promoted replica had the script before the flush: {had_it:?}");
}
