//! The proxy as a cluster of its own: CLUSTER SLOTS, SHARDS, NODES, INFO,
//! MYID, REPLICAS and LINKS describe masters that together own every slot,
//! all at the proxy's advertised address, so cluster-aware clients
//! (`redis-cli -c`, `redis-benchmark --cluster`, redis-py's `RedisCluster`)
//! send everything to the proxy, which routes it as for any client.
//!
//! Two masters, each owning half the slots, rather than one: Redis 7's
//! `redis-benchmark --cluster` refuses a cluster of fewer than two masters,
//! and clients keyed by address (every common one) see one node either way.
//! INFO still says `cluster_enabled:0`: none of those clients reads it, and
//! plain clients keep seeing a plain server.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use crate::cluster::SLOT_COUNT;
use crate::resp::encode;

/// The slots of each emulated master.
const HALVES: [(i64, i64); 2] = [(0, 8191), (8192, SLOT_COUNT as i64 - 1)];

/// The emulated cluster: its masters share one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// As Redis prints an IP: IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Each master's id, 40 hex digits derived from the address: every
    /// proxy advertising the same address (a pool behind one load balancer)
    /// describes the same cluster. The first is the one clients talk to
    /// (`myself`, CLUSTER MYID).
    pub ids: [String; 2],
}

impl Identity {
    /// The identity for `advertise` (`host:port`, from the configuration),
    /// or, when it is empty, for `local`: the address the client reached.
    pub fn new(advertise: &str, local: SocketAddr) -> Identity {
        let (host, port) = match advertise.rsplit_once(':') {
            Some((host, port)) if !advertise.is_empty() => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port.parse().unwrap_or(local.port()),
            ),
            _ => (local.ip().to_string(), local.port()),
        };
        let ids = [node_id(&host, port, 0), node_id(&host, port, 1)];
        Identity { host, port, ids }
    }

    /// The id of the master clients talk to (CLUSTER MYID).
    pub fn my_id(&self) -> &str {
        &self.ids[0]
    }

    fn masters(&self) -> impl Iterator<Item = (&str, (i64, i64))> {
        self.ids.iter().map(String::as_str).zip(HALVES)
    }
}

fn node_id(host: &str, port: u16, index: u8) -> String {
    let mut id = String::with_capacity(48);
    for round in 0u8..3 {
        let mut hasher = DefaultHasher::new();
        ("slotway-proxy", index, round, host, port).hash(&mut hasher);
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id.truncate(40);
    id
}

/// CLUSTER SLOTS: each master's range (Redis 7's four node fields: ip,
/// port, id, and no extra metadata).
pub fn slots(me: &Identity) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    encode::array_header(&mut out, HALVES.len());
    for (id, (first, last)) in me.masters() {
        encode::array_header(&mut out, 3);
        encode::integer(&mut out, first);
        encode::integer(&mut out, last);
        encode::array_header(&mut out, 4);
        encode::bulk(&mut out, me.host.as_bytes());
        encode::integer(&mut out, i64::from(me.port));
        encode::bulk(&mut out, id.as_bytes());
        encode::array_header(&mut out, 0);
    }
    out.freeze()
}

/// CLUSTER SHARDS: a shard per master, each with one healthy master.
pub fn shards(me: &Identity) -> Bytes {
    let mut out = BytesMut::with_capacity(512);
    encode::array_header(&mut out, HALVES.len());
    for (id, (first, last)) in me.masters() {
        encode::array_header(&mut out, 4);
        encode::bulk(&mut out, b"slots");
        encode::array_header(&mut out, 2);
        encode::integer(&mut out, first);
        encode::integer(&mut out, last);
        encode::bulk(&mut out, b"nodes");
        encode::array_header(&mut out, 1);
        encode::array_header(&mut out, 14);
        encode::bulk(&mut out, b"id");
        encode::bulk(&mut out, id.as_bytes());
        encode::bulk(&mut out, b"port");
        encode::integer(&mut out, i64::from(me.port));
        for (key, value) in [
            ("ip", me.host.as_str()),
            ("endpoint", me.host.as_str()),
            ("role", "master"),
        ] {
            encode::bulk(&mut out, key.as_bytes());
            encode::bulk(&mut out, value.as_bytes());
        }
        encode::bulk(&mut out, b"replication-offset");
        encode::integer(&mut out, 0);
        encode::bulk(&mut out, b"health");
        encode::bulk(&mut out, b"online");
    }
    out.freeze()
}

/// How the host appears in `ip:port`: IPv6 unbracketed, as Redis prints it.
fn host_port(me: &Identity) -> String {
    format!("{}:{}", me.host, me.port)
}

/// CLUSTER NODES: a line per master, the first one `myself`. There is no
/// cluster bus, so the bus port is 0.
pub fn nodes(me: &Identity) -> Bytes {
    let mut text = String::new();
    for (i, (id, (first, last))) in me.masters().enumerate() {
        let flags = if i == 0 { "myself,master" } else { "master" };
        let epoch = i + 1;
        text.push_str(&format!(
            "{id} {}@0 {flags} - 0 0 {epoch} connected {first}-{last}\n",
            host_port(me)
        ));
    }
    let mut out = BytesMut::with_capacity(text.len() + 16);
    encode::bulk(&mut out, text.as_bytes());
    out.freeze()
}

/// CLUSTER INFO: the emulated cluster, `ok` while the proxy's slot map
/// covers every slot of the real cluster behind it.
pub fn info(complete: bool) -> Bytes {
    let (state, slots_ok, slots_fail) = if complete {
        ("ok", SLOT_COUNT, 0)
    } else {
        ("fail", 0, SLOT_COUNT)
    };
    let masters = HALVES.len();
    let text = format!(
        "cluster_state:{state}\r\n\
         cluster_slots_assigned:{SLOT_COUNT}\r\n\
         cluster_slots_ok:{slots_ok}\r\n\
         cluster_slots_pfail:0\r\n\
         cluster_slots_fail:{slots_fail}\r\n\
         cluster_known_nodes:{masters}\r\n\
         cluster_size:{masters}\r\n\
         cluster_current_epoch:{masters}\r\n\
         cluster_my_epoch:1\r\n\
         cluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    );
    let mut out = BytesMut::with_capacity(text.len() + 16);
    encode::bulk(&mut out, text.as_bytes());
    out.freeze()
}

/// `CLUSTER REPLICAS/SLAVES <id>`: the masters have none; any other id is
/// unknown, in Redis's words.
pub fn replicas(me: &Identity, id: &[u8]) -> Bytes {
    if me.ids.iter().any(|m| m.as_bytes() == id) {
        return Bytes::from_static(b"*0\r\n");
    }
    let mut out = BytesMut::new();
    encode::error(
        &mut out,
        &format!("ERR Unknown node {}", String::from_utf8_lossy(id)),
    );
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::nodes::parse;
    use crate::resp::Frame;

    fn me() -> Identity {
        Identity::new("", "127.0.0.1:7777".parse().unwrap())
    }

    #[test]
    fn identity_comes_from_advertise_or_the_local_address() {
        let local = me();
        assert_eq!((local.host.as_str(), local.port), ("127.0.0.1", 7777));
        assert_eq!(local.my_id().len(), 40);
        assert!(local.my_id().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(local.ids[0], local.ids[1]);
        assert_eq!(local, me(), "stable");
        let nat = Identity::new("203.0.113.7:6379", "10.0.0.2:7777".parse().unwrap());
        assert_eq!((nat.host.as_str(), nat.port), ("203.0.113.7", 6379));
        assert_ne!(nat.ids, local.ids);
        let v6 = Identity::new("[2001:db8::1]:7000", "127.0.0.1:1".parse().unwrap());
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 7000));
        let unspecified = Identity::new("", "[::1]:7777".parse().unwrap());
        assert_eq!(unspecified.host, "::1");
    }

    #[test]
    fn nodes_lines_parse_as_masters_sharing_every_slot() {
        let reply = nodes(&me());
        let (frame, _) = Frame::parse(&reply).unwrap().unwrap();
        let text = String::from_utf8(frame.as_bytes().unwrap().to_vec()).unwrap();
        let lines = parse(&text);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].myself && !lines[1].myself);
        for line in &lines {
            assert!(line.master && !line.unusable);
            assert_eq!(line.addr, "127.0.0.1:7777");
        }
        assert_eq!(lines[0].slots, vec![0..=8191]);
        assert_eq!(lines[1].slots, vec![8192..=16383]);
    }

    #[test]
    fn slots_and_shards_have_redis_shapes() {
        let (frame, _) = Frame::parse(&slots(&me())).unwrap().unwrap();
        let ranges = frame.as_array().unwrap();
        assert_eq!(ranges.len(), 2);
        let second = ranges[1].as_array().unwrap();
        assert_eq!(second[0], Frame::Integer(8192));
        assert_eq!(second[1], Frame::Integer(16383));
        let node = second[2].as_array().unwrap();
        assert_eq!(node[0].as_bytes().unwrap().as_ref(), b"127.0.0.1");
        assert_eq!(node[1], Frame::Integer(7777));
        assert_eq!(node[2].as_bytes().unwrap().as_ref(), me().ids[1].as_bytes());
        let (frame, _) = Frame::parse(&shards(&me())).unwrap().unwrap();
        let shard = frame.as_array().unwrap()[1].as_array().unwrap();
        assert_eq!(shard.len(), 4);
        let node = shard[3].as_array().unwrap()[0].as_array().unwrap();
        assert_eq!(node.len(), 14);
        assert_eq!(
            replicas(&me(), b"nope").as_ref(),
            b"-ERR Unknown node nope\r\n"
        );
        assert_eq!(replicas(&me(), me().ids[1].as_bytes()).as_ref(), b"*0\r\n");
        assert!(String::from_utf8_lossy(&info(true)).contains("cluster_state:ok\r\n"));
    }
}
