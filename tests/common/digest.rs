//! A digest of a keyspace that compares equal across nodes and across
//! Redis and the built-in node: each key's type, its value in an order that
//! does not depend on hash tables, and its absolute TTL. (DUMP payloads
//! differ between servers, and between two nodes for the same hash.)

use std::collections::BTreeMap;

use super::client::{Reply, TestClient};

/// Key -> its canonical content, for every key `client`'s node holds
/// (reads sent with READONLY so that a replica answers too).
pub fn keyspace_digest(client: &mut TestClient) -> BTreeMap<String, String> {
    let _ = client.cmd(&["READONLY"]);
    let mut keys = Vec::new();
    let mut cursor = "0".to_string();
    // SCAN returns every key at least once within a bounded number of calls.
    for _ in 0..100_000 {
        let reply = client.cmd(&["SCAN", &cursor, "COUNT", "1000"]);
        let parts = reply.expect_array();
        cursor = parts[0].expect_str().to_string();
        for key in parts[1].expect_array() {
            keys.push(key.expect_str().to_string());
        }
        if cursor == "0" {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| key_content(client, &key).map(|c| (key, c)))
        .collect()
}

/// One key's canonical content; `None` if it is gone.
pub fn key_content(client: &mut TestClient, key: &str) -> Option<String> {
    let kind = client.cmd(&["TYPE", key]).expect_str().to_string();
    let read: &[&str] = match kind.as_str() {
        "string" => &["GET", key],
        "list" => &["LRANGE", key, "0", "-1"],
        "hash" => &["HGETALL", key],
        "set" => &["SMEMBERS", key],
        "zset" => &["ZRANGE", key, "0", "-1", "WITHSCORES"],
        "none" => return None,
        other => panic!("{key}: type {other} has no digest"),
    };
    let value = client.cmd(read);
    let mut items: Vec<String> = match &value {
        Reply::Array(Some(items)) => items.iter().map(|r| format!("{r:?}")).collect(),
        other => vec![format!("{other:?}")],
    };
    match kind.as_str() {
        // Field-value pairs sorted by field.
        "hash" => {
            let mut pairs: Vec<String> = items.chunks(2).map(|p| p.join("=")).collect();
            pairs.sort();
            items = pairs;
        }
        "set" => items.sort(),
        _ => {}
    }
    let ttl = client.cmd(&["PEXPIRETIME", key]);
    Some(format!("{kind} {items:?} expires {ttl:?}"))
}

/// The keys whose content differs between two digests, with both sides.
pub fn digest_diff(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (key, content) in before {
        match after.get(key) {
            Some(c) if c == content => {}
            other => diff.push(format!("{key}: {content} -> {other:?}")),
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        diff.push(format!("{key}: new"));
    }
    diff
}
