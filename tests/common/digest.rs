//! The content of a node's whole keyspace, for comparing two nodes (a
//! master and its replica, a node before and after a restart): every key
//! with its type, its value in an order that does not depend on the
//! node's hash maps, and its absolute expiry.

use std::collections::BTreeMap;

use super::client::{Reply, TestClient};

/// Keys read per pipeline.
const BATCH: usize = 1000;

/// Every key of the node `client` talks to (reading a replica needs
/// READONLY first), by name: `type value expiry`.
///
/// # Panics
/// When the node does not answer.
pub fn keyspace_digest(client: &mut TestClient) -> BTreeMap<Vec<u8>, String> {
    // A replica serves the reads below only after READONLY; a master
    // accepts it too.
    client.cmd(&["READONLY"]).expect_ok();
    let keys: Vec<Vec<u8>> = match client.cmd(&["KEYS", "*"]) {
        Reply::Array(Some(keys)) => keys
            .into_iter()
            .filter_map(|k| k.as_bulk().map(<[u8]>::to_vec))
            .collect(),
        other => panic!("KEYS *: {other:?}"),
    };
    let mut digest = BTreeMap::new();
    for batch in keys.chunks(BATCH) {
        let types: Vec<[&[u8]; 2]> = batch.iter().map(|k| [&b"TYPE"[..], k]).collect();
        let types = client.pipeline(&types);
        let reads: Vec<Vec<&[u8]>> = batch
            .iter()
            .zip(&types)
            .map(|(key, kind)| match kind.as_str().unwrap_or("") {
                "string" => vec![&b"GET"[..], key],
                "list" => vec![&b"LRANGE"[..], key, b"0", b"-1"],
                "hash" => vec![&b"HGETALL"[..], key],
                "set" => vec![&b"SMEMBERS"[..], key],
                "zset" => vec![&b"ZRANGE"[..], key, b"0", b"-1", b"WITHSCORES"],
                _ => vec![&b"EXISTS"[..], key],
            })
            .collect();
        let values = client.pipeline(&reads);
        let ttls: Vec<[&[u8]; 2]> = batch.iter().map(|k| [&b"PEXPIRETIME"[..], k]).collect();
        let ttls = client.pipeline(&ttls);
        for (((key, kind), value), ttl) in batch.iter().zip(&types).zip(values).zip(ttls) {
            let kind = kind.as_str().unwrap_or("?").to_string();
            if kind == "none" {
                // Expired or deleted since KEYS listed it.
                continue;
            }
            let value = match (kind.as_str(), value) {
                // Field-value pairs, in an order of their own.
                ("hash", Reply::Array(Some(items))) => {
                    let mut pairs: Vec<String> =
                        items.chunks(2).map(|pair| format!("{pair:?}")).collect();
                    pairs.sort();
                    format!("{pairs:?}")
                }
                ("set", Reply::Array(Some(mut items))) => {
                    items.sort_by_key(|m| m.as_bulk().map(<[u8]>::to_vec));
                    format!("{items:?}")
                }
                (_, value) => format!("{value:?}"),
            };
            digest.insert(key.clone(), format!("{kind} {value} {ttl:?}"));
        }
    }
    digest
}

/// The keys whose content differs between two digests, with both sides.
pub fn digest_diff(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (key, content) in before {
        let name = String::from_utf8_lossy(key);
        match after.get(key) {
            Some(c) if c == content => {}
            other => diff.push(format!("{name}: {content} -> {other:?}")),
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        diff.push(format!("{}: new", String::from_utf8_lossy(key)));
    }
    diff
}

/// Fails, naming how many keys differ and the first few, when two digests
/// differ.
#[track_caller]
pub fn assert_same_keyspace(before: &BTreeMap<Vec<u8>, String>, after: &BTreeMap<Vec<u8>, String>) {
    if after != before {
        let diff = digest_diff(before, after);
        panic!(
            "{} keys differ: {:?}",
            diff.len(),
            diff.iter().take(5).collect::<Vec<_>>()
        );
    }
}
