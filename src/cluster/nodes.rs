//! Parsing `CLUSTER NODES`: every node's address, role, config epoch and
//! the slots it claims. Config epochs are what let the proxy prefer the newest
//! claim when nodes disagree (a master that wakes from a pause still claims
//! its old slots, at its old epoch).

use std::ops::RangeInclusive;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    /// `host:port` for clients (the bus port and hostname are dropped).
    pub addr: String,
    pub myself: bool,
    pub master: bool,
    /// Flagged `fail` (not `fail?`): the cluster agrees the node is down.
    pub failed: bool,
    /// Flagged `fail?`: this node alone suspects it.
    pub suspected: bool,
    /// In handshake or without an address: not a usable node yet.
    pub unusable: bool,
    /// The master's id for a replica.
    pub master_id: Option<String>,
    pub config_epoch: u64,
    pub connected: bool,
    /// Slot ranges owned (open slots are in `migrating` and `importing`).
    pub slots: Vec<RangeInclusive<u16>>,
    /// Open slots this node is moving out: `[slot->-<target id>]`. Redis
    /// lists them on the `myself` line only; the operator's check reports
    /// them, the proxy ignores them.
    pub migrating: Vec<(u16, String)>,
    /// Open slots this node is taking in: `[slot-<-<source id>]`.
    pub importing: Vec<(u16, String)>,
}

/// A `[slot->-id]` (migrating) or `[slot-<-id]` (importing) marker.
enum OpenSlot {
    Migrating(u16, String),
    Importing(u16, String),
}

fn parse_open_slot(field: &str) -> Option<OpenSlot> {
    let inner = field.strip_prefix('[')?.strip_suffix(']')?;
    if let Some((slot, id)) = inner.split_once("->-") {
        return Some(OpenSlot::Migrating(slot.parse().ok()?, id.to_string()));
    }
    let (slot, id) = inner.split_once("-<-")?;
    Some(OpenSlot::Importing(slot.parse().ok()?, id.to_string()))
}

/// Parses the whole `CLUSTER NODES` text. Lines that cannot be read are
/// skipped rather than trusted.
pub fn parse(text: &str) -> Vec<NodeLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<NodeLine> {
    let mut fields = line.split(' ');
    let id = fields.next()?.to_string();
    let addr_field = fields.next()?;
    let flags = fields.next()?;
    let master_id = fields.next()?;
    let _ping_sent = fields.next()?;
    let _pong_recv = fields.next()?;
    let config_epoch = fields.next()?.parse().ok()?;
    let link = fields.next()?;
    // ip:port@cport[,hostname]
    let addr = normalize_addr(addr_field.split(['@', ',']).next()?);
    let flag = |name: &str| flags.split(',').any(|f| f == name);
    let mut slots = Vec::new();
    let mut migrating = Vec::new();
    let mut importing = Vec::new();
    for field in fields {
        if field.starts_with('[') {
            // A marker that cannot be read is dropped, not the whole line:
            // ownership is what the proxy needs from it.
            match parse_open_slot(field) {
                Some(OpenSlot::Migrating(slot, id)) => migrating.push((slot, id)),
                Some(OpenSlot::Importing(slot, id)) => importing.push((slot, id)),
                None => {}
            }
            continue;
        }
        let range = match field.split_once('-') {
            Some((a, b)) => a.parse().ok()?..=b.parse().ok()?,
            None => {
                let s: u16 = field.parse().ok()?;
                s..=s
            }
        };
        if usize::from(*range.end()) >= super::SLOT_COUNT || range.start() > range.end() {
            return None;
        }
        slots.push(range);
    }
    let port_known = addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p != "0" && !p.is_empty());
    Some(NodeLine {
        id,
        myself: flag("myself"),
        master: flag("master"),
        failed: flag("fail"),
        suspected: flag("fail?"),
        unusable: flag("handshake") || flag("noaddr") || !port_known,
        master_id: (master_id != "-").then(|| master_id.to_string()),
        config_epoch,
        connected: link == "connected",
        addr,
        slots,
        migrating,
        importing,
    })
}

/// Writes `host:port` so that it can be connected to: Redis prints IPv6
/// addresses without brackets (`::1:7001`), which need them (`[::1]:7001`).
pub fn normalize_addr(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        _ => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host4 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 1426238316232 5 disconnected 7 9-9
";

    #[test]
    fn parses_roles_epochs_and_slots() {
        let nodes = parse(SAMPLE);
        assert_eq!(nodes.len(), 5);
        let replica = &nodes[0];
        assert_eq!(replica.addr, "127.0.0.1:30004");
        assert!(!replica.master);
        assert_eq!(
            replica.master_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        let me = &nodes[3];
        assert!(me.myself && me.master);
        assert_eq!(me.slots, vec![0..=5460]);
        assert_eq!(
            me.migrating,
            vec![(5461, "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".to_string())]
        );
        assert!(me.importing.is_empty());
        assert_eq!(me.config_epoch, 1);
        let failed = &nodes[4];
        assert!(failed.failed && !failed.connected);
        assert_eq!(failed.slots, vec![7..=7, 9..=9]);
    }

    #[test]
    fn open_slot_markers() {
        let line = "a 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-9 [10-<-b] [11->-c] [x->-d]";
        let me = &parse(line)[0];
        assert_eq!(me.slots, vec![0..=9]);
        assert_eq!(me.importing, vec![(10, "b".to_string())]);
        assert_eq!(me.migrating, vec![(11, "c".to_string())]);
    }

    #[test]
    fn ipv6_addresses_get_brackets() {
        assert_eq!(normalize_addr("::1:7001"), "[::1]:7001");
        assert_eq!(normalize_addr("[::1]:7001"), "[::1]:7001");
        assert_eq!(normalize_addr("127.0.0.1:7001"), "127.0.0.1:7001");
        assert_eq!(normalize_addr("redis-1:6379"), "redis-1:6379");
    }

    #[test]
    fn rejects_bad_slots() {
        assert!(parse("a 127.0.0.1:1@2 master - 0 0 1 connected 16384").is_empty());
        assert!(parse("a 127.0.0.1:1@2 master - 0 0 x connected").is_empty());
        assert!(parse("a :0@0 master,noaddr - 0 0 1 connected")[0].unusable);
    }
}
