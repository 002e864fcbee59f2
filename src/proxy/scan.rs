//! SCAN through the proxy: one cursor that walks every master in turn.
//!
//! The masters are walked in a stable order (by the lowest slot each owns),
//! each with its own SCAN from 0 until it answers 0. The proxy keeps no
//! state: the cursor it hands out carries everything, as one number
//! (a plain 64-bit cursor, below 2^53 in practice so JavaScript clients
//! read it exactly):
//!
//! ```text
//! bits 0..10   the position of the master in the walk, plus one (0: start)
//! bits 10..26  a tag: 16 bits of the slot map's fingerprint
//! bits 26..64  that master's own cursor
//! ```
//!
//! MATCH, COUNT and TYPE travel to each master unchanged.
//!
//! **What is guaranteed.** As with Redis's SCAN: a key that exists for the
//! whole scan is returned at least once, and a key may be returned more
//! than once. With no change to the slot map during the scan, each key is
//! returned exactly once (the masters hold disjoint slots). When the map
//! changes (a slot migrated, a replica promoted), the tag in the next
//! cursor no longer matches and the walk starts again from the first
//! master, so every key is found in a walk over a stable map; keys already
//! returned come again. Before answering the final cursor 0, the proxy
//! re-reads the slot map and starts over if it changed during the walk, so
//! a move the proxy had not yet noticed counts too. A migration still in
//! progress when the scan ends is not visible in the map (the slot still
//! has its old owner until `CLUSTER SETSLOT ... NODE`): keys already moved
//! by then to a master walked earlier can be missed, as with a
//! cluster client that scans node by node. A scan during continuous
//! resharding keeps starting over until the map holds still for one walk.

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use crate::resp::reply::reply_len;
use crate::resp::{Request, encode};

use super::Proxy;
use super::dispatch::{Target, execute};

const POSITION_BITS: u32 = 10;
const TAG_BITS: u32 = 16;
const NODE_CURSOR_SHIFT: u32 = POSITION_BITS + TAG_BITS;
/// Most masters one walk can name (position 0 means "not started").
pub const MAX_MASTERS: usize = (1 << POSITION_BITS) - 1;
/// Largest master cursor that fits: 2^38 - 1, well above what Redis 7's
/// cursors (bounded by its hash table size) or Valkey 8's per-slot cursors
/// reach.
const MAX_NODE_CURSOR: u64 = (1 << (64 - NODE_CURSOR_SHIFT)) - 1;
/// How long the end of a walk waits for a fresh slot map.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Cursor 0: a new scan.
    Start,
    /// Scanning the master at `position` in the walk, from `node_cursor`,
    /// under the slot map tagged `tag`.
    At {
        position: usize,
        tag: u16,
        node_cursor: u64,
    },
}

impl Cursor {
    pub fn decode(value: u64) -> Cursor {
        if value == 0 {
            return Cursor::Start;
        }
        let position_field = (value & ((1 << POSITION_BITS) - 1)) as usize;
        Cursor::At {
            // A field of 0 in a non-zero cursor was never handed out: it
            // reads as an impossible position, which restarts the walk.
            position: position_field.wrapping_sub(1),
            tag: ((value >> POSITION_BITS) & ((1 << TAG_BITS) - 1)) as u16,
            node_cursor: value >> NODE_CURSOR_SHIFT,
        }
    }

    /// The number handed to the client; `None` when the master's cursor is
    /// too large to fit.
    pub fn encode(self) -> Option<u64> {
        match self {
            Cursor::Start => Some(0),
            Cursor::At {
                position,
                tag,
                node_cursor,
            } => {
                if position >= MAX_MASTERS || node_cursor > MAX_NODE_CURSOR {
                    return None;
                }
                Some(
                    (node_cursor << NODE_CURSOR_SHIFT)
                        | (u64::from(tag) << POSITION_BITS)
                        | (position as u64 + 1),
                )
            }
        }
    }
}

/// The tag of a slot map: its fingerprint folded to 16 bits.
pub fn tag_of(fingerprint: u64) -> u16 {
    let folded = fingerprint ^ (fingerprint >> 16) ^ (fingerprint >> 32) ^ (fingerprint >> 48);
    (folded & 0xffff) as u16
}

/// A cursor as Redis reads one: decimal digits of an unsigned 64-bit number.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// A master's SCAN reply: its next cursor and the raw keys array.
fn split_reply(reply: &Bytes) -> Option<(u64, Bytes)> {
    let rest = reply.strip_prefix(b"*2\r\n")?;
    let cursor_len = reply_len(rest).ok()??;
    let cursor_frame = rest.get(..cursor_len)?;
    let cursor_text = cursor_frame
        .strip_prefix(b"$")
        .and_then(|r| r.iter().position(|&b| b == b'\n').map(|i| &r[i + 1..]))
        .and_then(|r| r.strip_suffix(b"\r\n"))?;
    let cursor = parse_cursor(cursor_text)?;
    let keys_start = 4 + cursor_len;
    let keys = reply.slice(keys_start..);
    if keys.first() != Some(&b'*') || reply_len(&keys).ok()?? != keys.len() {
        return None;
    }
    Some((cursor, keys))
}

/// The request for one master: the client's, with the master's cursor.
fn node_request(req: &Request, node_cursor: u64) -> Bytes {
    let cursor = node_cursor.to_string();
    let mut args: Vec<&[u8]> = req.args().collect();
    if let Some(arg) = args.get_mut(1) {
        *arg = cursor.as_bytes();
    }
    Request::from_args(&args).raw().clone()
}

fn reply(cursor: u64, keys: &[u8]) -> Bytes {
    let cursor = cursor.to_string();
    let mut out = BytesMut::with_capacity(keys.len() + 32);
    encode::array_header(&mut out, 2);
    encode::bulk(&mut out, cursor.as_bytes());
    out.extend_from_slice(keys);
    out.freeze()
}

/// Answers one SCAN call: one page from one master, and the cursor that
/// continues the walk.
pub async fn scan(proxy: &Proxy, req: &Request) -> Bytes {
    let Some(value) = req.arg(1).and_then(parse_cursor) else {
        return Bytes::from_static(b"-ERR invalid cursor\r\n");
    };
    let (node, position, tag, masters, node_cursor) = {
        let topo = proxy.cluster.snapshot();
        let walk = topo.walk_order();
        let tag = tag_of(walk.fingerprint);
        let masters = walk.masters.len();
        if masters > MAX_MASTERS {
            return Bytes::from(format!(
                "-ERR SCAN through this proxy walks at most {MAX_MASTERS} masters; \
                 the cluster has {masters}\r\n"
            ));
        }
        let (position, node_cursor) = match Cursor::decode(value) {
            Cursor::At {
                position,
                tag: seen,
                node_cursor,
            } if seen == tag && position < masters => (position, node_cursor),
            // A new scan, or the map changed since the last page: the walk
            // starts (again) from the first master.
            _ => (0, 0),
        };
        let Some(node) = walk.masters.get(position).cloned() else {
            return Bytes::from_static(b"-CLUSTERDOWN The cluster is down\r\n");
        };
        (node, position, tag, masters, node_cursor)
    };
    let addr = node.addr().to_string();
    let answer = execute(
        proxy,
        node_request(req, node_cursor),
        Target::Node(node),
        true,
    )
    .await;
    let Some((next_node_cursor, keys)) = split_reply(&answer) else {
        // An error (a bad option, a master unreachable): as it came.
        return answer;
    };
    let next = if next_node_cursor != 0 {
        Cursor::At {
            position,
            tag,
            node_cursor: next_node_cursor,
        }
    } else if position + 1 < masters {
        Cursor::At {
            position: position + 1,
            tag,
            node_cursor: 0,
        }
    } else {
        match fresh_tag(proxy).await {
            fresh if fresh == tag => Cursor::Start,
            // The map changed during the walk: these keys, and a new walk
            // under the new map.
            fresh => Cursor::At {
                position: 0,
                tag: fresh,
                node_cursor: 0,
            },
        }
    };
    match next.encode() {
        Some(value) => reply(value, &keys),
        None => Bytes::from(format!(
            "-ERR master {addr} answered SCAN with cursor {next_node_cursor}, too large for \
             this proxy's cursor encoding\r\n"
        )),
    }
}

/// At the end of a walk: the tag of a freshly read slot map (or of the
/// current one, when no refresh finishes in time: it is all there is to go
/// by).
async fn fresh_tag(proxy: &Proxy) -> u16 {
    proxy.cluster.refresh_now(VERIFY_TIMEOUT).await;
    tag_of(proxy.cluster.snapshot().walk_order().fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_zero_means_start() {
        assert_eq!(Cursor::decode(0), Cursor::Start);
        assert_eq!(Cursor::Start.encode(), Some(0));
        for (position, tag, node_cursor) in [
            (0, 0, 0),
            (0, 0xffff, 1),
            (2, 7, 123_456),
            (MAX_MASTERS - 1, 0xabcd, MAX_NODE_CURSOR),
        ] {
            let cursor = Cursor::At {
                position,
                tag,
                node_cursor,
            };
            let value = cursor.encode().unwrap();
            assert_ne!(value, 0, "only a finished walk says 0");
            assert_eq!(Cursor::decode(value), cursor);
        }
        // Small master cursors stay below 2^53 (exact in JavaScript).
        let typical = Cursor::At {
            position: 5,
            tag: 0xffff,
            node_cursor: (1 << 27) - 1,
        };
        assert!(typical.encode().unwrap() < 1 << 53);
        let too_big = Cursor::At {
            position: 0,
            tag: 0,
            node_cursor: MAX_NODE_CURSOR + 1,
        };
        assert_eq!(too_big.encode(), None);
        // A cursor never handed out decodes to a position no walk has.
        assert!(
            matches!(Cursor::decode(1 << 10), Cursor::At { position, .. } if position > MAX_MASTERS)
        );
    }

    #[test]
    fn master_replies_split_into_cursor_and_keys() {
        let reply = Bytes::from_static(b"*2\r\n$3\r\n384\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n");
        let (cursor, keys) = split_reply(&reply).unwrap();
        assert_eq!(cursor, 384);
        assert_eq!(&keys[..], b"*2\r\n$1\r\na\r\n$0\r\n\r\n");
        let done = Bytes::from_static(b"*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(split_reply(&done).unwrap().0, 0);
        assert!(split_reply(&Bytes::from_static(b"-ERR syntax error\r\n")).is_none());
        assert!(split_reply(&Bytes::from_static(b"*2\r\n$1\r\nx\r\n*0\r\n")).is_none());
    }

    #[test]
    fn requests_carry_the_master_cursor_and_every_option() {
        let req =
            Request::from_args(&["scan", "99999", "MATCH", "k*", "COUNT", "5", "TYPE", "hash"]);
        let expected =
            Request::from_args(&["scan", "17", "MATCH", "k*", "COUNT", "5", "TYPE", "hash"]);
        assert_eq!(node_request(&req, 17), expected.raw());
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b"1x", b"18446744073709551616"] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}
