//! The proxy as a one-node cluster: CLUSTER SLOTS, SHARDS, NODES, INFO,
//! MYID, REPLICAS and LINKS describe a single master that owns every slot at
//! the proxy's advertised address, so cluster-aware clients (`redis-cli -c`,
//! `redis-benchmark --cluster`, redis-py's `RedisCluster`) send everything to
//! the proxy, which routes it as for any client. INFO still says
//! `cluster_enabled:0` (see the README: the clients above do not look at it).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use crate::cluster::SLOT_COUNT;
use crate::resp::encode;

/// The one node of the emulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// As Redis prints an IP: IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// 40 hex digits, derived from the address: every proxy advertising the
    /// same address (a pool behind one load balancer) has the same id.
    pub id: String,
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
        let id = node_id(&host, port);
        Identity { host, port, id }
    }
}

fn node_id(host: &str, port: u16) -> String {
    let mut id = String::with_capacity(48);
    for round in 0u8..3 {
        let mut hasher = DefaultHasher::new();
        ("slotway-proxy", round, host, port).hash(&mut hasher);
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id.truncate(40);
    id
}

const LAST_SLOT: i64 = SLOT_COUNT as i64 - 1;

/// CLUSTER SLOTS: one range, every slot, at this node (Redis 7's four
/// fields: ip, port, id, and no extra metadata).
pub fn slots(me: &Identity) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    encode::array_header(&mut out, 1);
    encode::array_header(&mut out, 3);
    encode::integer(&mut out, 0);
    encode::integer(&mut out, LAST_SLOT);
    encode::array_header(&mut out, 4);
    encode::bulk(&mut out, me.host.as_bytes());
    encode::integer(&mut out, i64::from(me.port));
    encode::bulk(&mut out, me.id.as_bytes());
    encode::array_header(&mut out, 0);
    out.freeze()
}

/// CLUSTER SHARDS: one shard with every slot and one healthy master.
pub fn shards(me: &Identity) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    encode::array_header(&mut out, 1);
    encode::array_header(&mut out, 4);
    encode::bulk(&mut out, b"slots");
    encode::array_header(&mut out, 2);
    encode::integer(&mut out, 0);
    encode::integer(&mut out, LAST_SLOT);
    encode::bulk(&mut out, b"nodes");
    encode::array_header(&mut out, 1);
    encode::array_header(&mut out, 14);
    encode::bulk(&mut out, b"id");
    encode::bulk(&mut out, me.id.as_bytes());
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
    out.freeze()
}

/// How the host appears in `ip:port`: IPv6 unbracketed, as Redis prints it.
fn host_port(me: &Identity) -> String {
    format!("{}:{}", me.host, me.port)
}

/// CLUSTER NODES: one line, this node, master of every slot. It has no
/// cluster bus, so its bus port is 0.
pub fn nodes(me: &Identity) -> Bytes {
    let line = format!(
        "{} {}@0 myself,master - 0 0 1 connected 0-{LAST_SLOT}\n",
        me.id,
        host_port(me)
    );
    let mut out = BytesMut::with_capacity(line.len() + 16);
    encode::bulk(&mut out, line.as_bytes());
    out.freeze()
}

/// CLUSTER INFO: a cluster of one node, `ok` while the proxy's slot map
/// covers every slot of the real cluster behind it.
pub fn info(complete: bool) -> Bytes {
    let (state, slots_ok, slots_fail) = if complete {
        ("ok", SLOT_COUNT, 0)
    } else {
        ("fail", 0, SLOT_COUNT)
    };
    let text = format!(
        "cluster_state:{state}\r\n\
         cluster_slots_assigned:{SLOT_COUNT}\r\n\
         cluster_slots_ok:{slots_ok}\r\n\
         cluster_slots_pfail:0\r\n\
         cluster_slots_fail:{slots_fail}\r\n\
         cluster_known_nodes:1\r\n\
         cluster_size:1\r\n\
         cluster_current_epoch:1\r\n\
         cluster_my_epoch:1\r\n\
         cluster_stats_messages_sent:0\r\n\
         cluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    );
    let mut out = BytesMut::with_capacity(text.len() + 16);
    encode::bulk(&mut out, text.as_bytes());
    out.freeze()
}

/// CLUSTER REPLICAS/SLAVES <id>: this node has none; any other id is
/// unknown, in Redis's words.
pub fn replicas(me: &Identity, id: &[u8]) -> Bytes {
    if id == me.id.as_bytes() {
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
        assert_eq!(local.id.len(), 40);
        assert!(local.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(local, me(), "stable");
        let nat = Identity::new("203.0.113.7:6379", "10.0.0.2:7777".parse().unwrap());
        assert_eq!((nat.host.as_str(), nat.port), ("203.0.113.7", 6379));
        assert_ne!(nat.id, local.id);
        let v6 = Identity::new("[2001:db8::1]:7000", "127.0.0.1:1".parse().unwrap());
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 7000));
        let unspecified = Identity::new("", "[::1]:7777".parse().unwrap());
        assert_eq!(unspecified.host, "::1");
    }

    #[test]
    fn nodes_line_parses_as_one_master_with_every_slot() {
        let reply = nodes(&me());
        let (frame, _) = Frame::parse(&reply).unwrap().unwrap();
        let text = String::from_utf8(frame.as_bytes().unwrap().to_vec()).unwrap();
        let lines = parse(&text);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.myself && line.master && !line.unusable);
        assert_eq!(line.addr, "127.0.0.1:7777");
        assert_eq!(line.slots, vec![0..=16383]);
    }

    #[test]
    fn slots_and_shards_have_redis_shapes() {
        let (frame, _) = Frame::parse(&slots(&me())).unwrap().unwrap();
        let range = &frame.as_array().unwrap()[0];
        let range = range.as_array().unwrap();
        assert_eq!(range[0], Frame::Integer(0));
        assert_eq!(range[1], Frame::Integer(16383));
        let node = range[2].as_array().unwrap();
        assert_eq!(node[0].as_bytes().unwrap().as_ref(), b"127.0.0.1");
        assert_eq!(node[1], Frame::Integer(7777));
        let (frame, _) = Frame::parse(&shards(&me())).unwrap().unwrap();
        let shard = frame.as_array().unwrap()[0].as_array().unwrap();
        assert_eq!(shard.len(), 4);
        let node = shard[3].as_array().unwrap()[0].as_array().unwrap();
        assert_eq!(node.len(), 14);
        assert_eq!(
            replicas(&me(), b"nope").as_ref(),
            b"-ERR Unknown node nope\r\n"
        );
        assert_eq!(replicas(&me(), me().id.as_bytes()).as_ref(), b"*0\r\n");
        assert!(String::from_utf8_lossy(&info(true)).contains("cluster_state:ok\r\n"));
    }
}
