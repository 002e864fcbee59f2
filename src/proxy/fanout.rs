//! Keyless commands that need more than one node: sent to every master
//! (DBSIZE, KEYS, FLUSHALL, FLUSHDB), to a random one (RANDOMKEY), or to
//! every node, replicas included (CONFIG SET), with the replies combined as
//! one server would have answered. SCAN, which walks the masters one call
//! at a time, is in [`super::scan`].

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use rand::seq::SliceRandom;

use crate::resp::{Frame, encode};

use super::Proxy;
use super::dispatch::{Target, execute};
use super::multikey::array_elements;
use super::router::Fanout;

const CLUSTER_DOWN: &[u8] = b"-CLUSTERDOWN The cluster is down\r\n";

/// Sends `request` to every master at once and combines the replies. An
/// error from any master is the answer (the first one, in walk order).
pub async fn all_masters(proxy: &Proxy, request: Bytes, how: Fanout, readonly: bool) -> Bytes {
    let masters = proxy.cluster.snapshot().walk_order().masters.clone();
    if masters.is_empty() {
        return Bytes::from_static(CLUSTER_DOWN);
    }
    let replies = futures_util::future::join_all(
        masters
            .into_iter()
            .map(|node| execute(proxy, request.clone(), Target::Node(node), readonly)),
    )
    .await;
    if let Some(err) = replies.iter().find(|r| r.first() == Some(&b'-')) {
        return err.clone();
    }
    match how {
        Fanout::Sum => sum(&replies),
        Fanout::AllOk => all_ok(&replies),
        Fanout::Keys => keys(&replies),
    }
}

fn sum(replies: &[Bytes]) -> Bytes {
    let mut total: i64 = 0;
    for reply in replies {
        match Frame::parse(reply) {
            Ok(Some((Frame::Integer(n), _))) => total = total.saturating_add(n),
            _ => return unexpected(reply),
        }
    }
    let mut out = BytesMut::with_capacity(24);
    encode::integer(&mut out, total);
    out.freeze()
}

fn all_ok(replies: &[Bytes]) -> Bytes {
    match replies.iter().find(|r| &r[..] != b"+OK\r\n") {
        Some(other) => unexpected(other),
        None => Bytes::from_static(b"+OK\r\n"),
    }
}

/// Every master's keys in one array. A key is listed once even if a
/// migration made two masters report it.
fn keys(replies: &[Bytes]) -> Bytes {
    let mut seen: HashSet<Bytes> = HashSet::new();
    let mut merged: Vec<Bytes> = Vec::new();
    for reply in replies {
        let Some(elements) = array_elements(reply) else {
            return unexpected(reply);
        };
        for key in elements {
            if seen.insert(key.clone()) {
                merged.push(key);
            }
        }
    }
    let mut out = BytesMut::with_capacity(16 + merged.iter().map(Bytes::len).sum::<usize>());
    encode::array_header(&mut out, merged.len());
    for key in &merged {
        out.extend_from_slice(key);
    }
    out.freeze()
}

/// RANDOMKEY: asks the masters in a random order until one has a key; nil
/// when none has. (Each master picks uniformly among its own keys, so a key
/// on a master with fewer keys is a little more likely than on one server.)
pub async fn random_key(proxy: &Proxy, request: Bytes) -> Bytes {
    let mut masters = proxy.cluster.snapshot().walk_order().masters.clone();
    if masters.is_empty() {
        return Bytes::from_static(CLUSTER_DOWN);
    }
    masters.shuffle(&mut rand::rng());
    for node in masters {
        let reply = execute(proxy, request.clone(), Target::Node(node), true).await;
        if &reply[..] != b"$-1\r\n" {
            return reply;
        }
    }
    Bytes::from_static(b"$-1\r\n")
}

/// Sends `request` to every node the cluster knows and does not consider
/// failed, masters and replicas, so that a setting survives a failover
/// (CONFIG SET). `+OK` when every node said so; otherwise an error naming
/// the nodes that did not.
pub async fn all_nodes(proxy: &Proxy, request: Bytes, name: &str) -> Bytes {
    let addrs: Vec<String> = {
        let topo = proxy.cluster.snapshot();
        let claims = topo.claims();
        claims
            .known_addrs
            .iter()
            .filter(|a| !claims.failed_addrs.contains(a))
            .cloned()
            .collect()
    };
    if addrs.is_empty() {
        return Bytes::from_static(CLUSTER_DOWN);
    }
    // Setting a value twice is harmless, so a lost reply may be resent.
    let replies = futures_util::future::join_all(addrs.iter().map(|addr| {
        let node = proxy.cluster.node(addr);
        execute(proxy, request.clone(), Target::Node(node), true)
    }))
    .await;
    let failed: Vec<String> = addrs
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| &reply[..] != b"+OK\r\n")
        .map(|(addr, reply)| format!("{addr}: {}", one_line(reply)))
        .collect();
    if failed.is_empty() {
        return Bytes::from_static(b"+OK\r\n");
    }
    // Every node refused alike (a bad parameter): Redis's own error.
    if failed.len() == replies.len() && replies.windows(2).all(|w| w[0] == w[1]) {
        if let Some(first) = replies.first() {
            return first.clone();
        }
    }
    Bytes::from(format!(
        "-ERR {name} applied on {} of {} nodes; not on {}\r\n",
        replies.len() - failed.len(),
        replies.len(),
        failed.join("; ")
    ))
}

/// A reply as one line of text, for an error message.
fn one_line(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply.get(..reply.len().min(120)).unwrap_or_default())
        .trim_end()
        .to_string();
    text.trim_start_matches(['-', '+'])
        .replace(['\r', '\n'], " ")
}

fn unexpected(reply: &[u8]) -> Bytes {
    Bytes::from(format!(
        "-ERR unexpected reply from a master while combining a fan-out command: {}\r\n",
        one_line(reply)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_combine_as_one_server_answers() {
        let ints = [
            Bytes::from_static(b":2\r\n"),
            Bytes::from_static(b":40\r\n"),
        ];
        assert_eq!(&sum(&ints)[..], b":42\r\n");
        let oks = [
            Bytes::from_static(b"+OK\r\n"),
            Bytes::from_static(b"+OK\r\n"),
        ];
        assert_eq!(&all_ok(&oks)[..], b"+OK\r\n");
        let mixed = [
            Bytes::from_static(b"+OK\r\n"),
            Bytes::from_static(b":1\r\n"),
        ];
        assert!(all_ok(&mixed).starts_with(b"-ERR unexpected reply"));
        let lists = [
            Bytes::from_static(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            Bytes::from_static(b"*0\r\n"),
            Bytes::from_static(b"*2\r\n$1\r\nb\r\n$0\r\n\r\n"),
        ];
        assert_eq!(
            &keys(&lists)[..],
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$0\r\n\r\n",
            "each key once, the empty key included"
        );
    }
}
