//! The cluster bus wire format: Slotway's own, modelled on Redis's
//! `clusterMsg` (every message carries the sender's view of itself, so any
//! message refreshes what the receiver knows about the sender).
//!
//! ```text
//! frame   = u32 length (big endian, excluding itself) body
//! body    = "SWCB" version:u8 kind:u8 header payload
//! header  = sender:id current_epoch:u64 config_epoch:u64 repl_offset:u64
//!           flags:u16 master:id(40 zero bytes: none) ip:str port:u16
//!           cport:u16 state_ok:u8 mflags:u8 slots:[u8; 2048]
//! id      = 40 bytes, [0-9a-z]
//! str     = len:u8 bytes (UTF-8)
//!
//! payload by kind (numbers as Redis's CLUSTERMSG_TYPE_*):
//!   0 PING, 1 PONG, 2 MEET   count:u16 gossip*count
//!       gossip = id ping_sent:u32(s) pong_received:u32(s) ip:str port:u16
//!                cport:u16 flags:u16
//!   3 FAIL                   about:id
//!   4 PUBLISH, 10 PUBLISHSHARD
//!                            channel:u32+bytes message:u32+bytes
//!   5 FAILOVER_AUTH_REQUEST, 6 FAILOVER_AUTH_ACK, 8 MFSTART
//!                            (nothing: the header says it all)
//!   7 UPDATE                 node:id config_epoch:u64 slots:[u8; 2048]
//! ```
//!
//! `slots` in the header are the slots of the sender's shard: its own if it
//! is a master, its master's if it is a replica (with that master's config
//! epoch), as Redis sends them. Anything malformed is a [`ProtoError`]; the
//! link that sent it is closed and nothing else is affected.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::cluster::slot_bitmap::{BITMAP_BYTES, SlotBitmap};

const MAGIC: &[u8; 4] = b"SWCB";
const VERSION: u8 = 1;
/// Length of a node id on the wire.
pub const ID_LEN: usize = 40;
/// Largest frame accepted: a PUBLISH of a 512 MB message (Redis's
/// proto-max-bulk-len) plus its header.
pub const MAX_FRAME: usize = 512 * 1024 * 1024 + 64 * 1024;

/// Node flags in headers and gossip, with Redis's bit values.
pub mod flags {
    pub const MASTER: u16 = 1;
    pub const REPLICA: u16 = 2;
    pub const PFAIL: u16 = 4;
    pub const FAIL: u16 = 8;
    pub const MYSELF: u16 = 16;
    pub const HANDSHAKE: u16 = 32;
    pub const NOADDR: u16 = 64;
    pub const NOFAILOVER: u16 = 512;
}

/// Manual failover bits of the header's `mflags`, as Redis's
/// `CLUSTERMSG_FLAG0_*`.
pub mod mflags {
    /// The sender is a master whose client writes are paused for a manual
    /// failover: the replication offset it sends is final.
    pub const PAUSED: u8 = 1;
    /// A FAILOVER_AUTH_REQUEST of a manual failover: vote even though the
    /// requester's master is not failing.
    pub const FORCEACK: u8 = 2;
}

/// Message kinds, numbered as Redis's `CLUSTERMSG_TYPE_*` (their index in
/// the `cluster_stats_messages_*` counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Ping = 0,
    Pong = 1,
    Meet = 2,
    Fail = 3,
    Publish = 4,
    FailoverAuthRequest = 5,
    FailoverAuthAck = 6,
    Update = 7,
    MfStart = 8,
    PublishShard = 10,
}

/// Number of message kind counters (Redis's CLUSTERMSG_TYPE_COUNT).
pub const KIND_COUNT: usize = 11;

/// The names CLUSTER INFO uses for each counter index.
pub const KIND_NAMES: [&str; KIND_COUNT] = [
    "ping",
    "pong",
    "meet",
    "fail",
    "publish",
    "auth-req",
    "auth-ack",
    "update",
    "mfstart",
    "module",
    "publishshard",
];

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Ping,
            1 => Kind::Pong,
            2 => Kind::Meet,
            3 => Kind::Fail,
            4 => Kind::Publish,
            5 => Kind::FailoverAuthRequest,
            6 => Kind::FailoverAuthAck,
            7 => Kind::Update,
            8 => Kind::MfStart,
            10 => Kind::PublishShard,
            _ => return None,
        })
    }
}

/// What the sender says about itself, on every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sender: String,
    pub current_epoch: u64,
    /// Its own config epoch (a replica sends its master's).
    pub config_epoch: u64,
    pub repl_offset: u64,
    pub flags: u16,
    /// The master it replicates.
    pub master: Option<String>,
    /// The IP it announces; empty: use the address the link comes from.
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// Its `cluster_state` is ok.
    pub state_ok: bool,
    /// Manual failover flags (for the failover handshake).
    pub mflags: u8,
    /// The slots of its shard.
    pub slots: SlotBitmap,
}

/// One other node as the sender sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    pub id: String,
    /// Unix seconds (0: none), as Redis sends them.
    pub ping_sent: u32,
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Ping(Vec<Gossip>),
    Pong(Vec<Gossip>),
    Meet(Vec<Gossip>),
    /// The cluster agrees that `about` failed.
    Fail {
        about: String,
    },
    Publish {
        channel: Bytes,
        message: Bytes,
    },
    PublishShard {
        channel: Bytes,
        message: Bytes,
    },
    FailoverAuthRequest,
    FailoverAuthAck,
    /// `node` serves `slots` at `config_epoch`: the receiver's claim on them
    /// is stale.
    Update {
        node: String,
        config_epoch: u64,
        slots: SlotBitmap,
    },
    MfStart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Bytes a peer sent that are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad cluster bus message: {0}")]
pub struct ProtoError(pub &'static str);

impl Message {
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Ping(_) => Kind::Ping,
            Body::Pong(_) => Kind::Pong,
            Body::Meet(_) => Kind::Meet,
            Body::Fail { .. } => Kind::Fail,
            Body::Publish { .. } => Kind::Publish,
            Body::PublishShard { .. } => Kind::PublishShard,
            Body::FailoverAuthRequest => Kind::FailoverAuthRequest,
            Body::FailoverAuthAck => Kind::FailoverAuthAck,
            Body::Update { .. } => Kind::Update,
            Body::MfStart => Kind::MfStart,
        }
    }

    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(2300);
        out.put_u32(0);
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        out.put_u8(self.kind() as u8);
        let h = &self.header;
        put_id(&mut out, &h.sender);
        out.put_u64(h.current_epoch);
        out.put_u64(h.config_epoch);
        out.put_u64(h.repl_offset);
        out.put_u16(h.flags);
        match &h.master {
            Some(id) => put_id(&mut out, id),
            None => out.put_bytes(0, ID_LEN),
        }
        put_str(&mut out, &h.ip);
        out.put_u16(h.port);
        out.put_u16(h.cport);
        out.put_u8(u8::from(h.state_ok));
        out.put_u8(h.mflags);
        out.put_slice(&h.slots.to_bytes());
        match &self.body {
            Body::Ping(g) | Body::Pong(g) | Body::Meet(g) => {
                let n = g.len().min(usize::from(u16::MAX));
                out.put_u16(n as u16);
                for entry in g.iter().take(n) {
                    put_id(&mut out, &entry.id);
                    out.put_u32(entry.ping_sent);
                    out.put_u32(entry.pong_received);
                    put_str(&mut out, &entry.ip);
                    out.put_u16(entry.port);
                    out.put_u16(entry.cport);
                    out.put_u16(entry.flags);
                }
            }
            Body::Fail { about } => put_id(&mut out, about),
            Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
                put_blob(&mut out, channel);
                put_blob(&mut out, message);
            }
            Body::Update {
                node,
                config_epoch,
                slots,
            } => {
                put_id(&mut out, node);
                out.put_u64(*config_epoch);
                out.put_slice(&slots.to_bytes());
            }
            Body::FailoverAuthRequest | Body::FailoverAuthAck | Body::MfStart => {}
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out.freeze()
    }

    /// Decodes one frame body (the bytes after the length prefix).
    ///
    /// # Errors
    /// [`ProtoError`] for anything that is not a well-formed message.
    pub fn decode(mut body: Bytes) -> Result<Message, ProtoError> {
        let b = &mut body;
        if take(b, 4)?.as_ref() != MAGIC {
            return Err(ProtoError("bad magic"));
        }
        if get_u8(b)? != VERSION {
            return Err(ProtoError("unsupported version"));
        }
        let kind = Kind::from_u8(get_u8(b)?).ok_or(ProtoError("unknown message type"))?;
        let sender = get_id(b)?;
        let current_epoch = get_u64(b)?;
        let config_epoch = get_u64(b)?;
        let repl_offset = get_u64(b)?;
        let flags = get_u16(b)?;
        let master = get_opt_id(b)?;
        let ip = get_str(b)?;
        let port = get_u16(b)?;
        let cport = get_u16(b)?;
        let state_ok = get_u8(b)? != 0;
        let mflags = get_u8(b)?;
        let slots = get_slots(b)?;
        let header = Header {
            sender,
            current_epoch,
            config_epoch,
            repl_offset,
            flags,
            master,
            ip,
            port,
            cport,
            state_ok,
            mflags,
            slots,
        };
        let body = match kind {
            Kind::Ping | Kind::Pong | Kind::Meet => {
                let n = get_u16(b)?;
                let mut gossip = Vec::with_capacity(usize::from(n).min(b.remaining() / 50));
                for _ in 0..n {
                    gossip.push(Gossip {
                        id: get_id(b)?,
                        ping_sent: get_u32(b)?,
                        pong_received: get_u32(b)?,
                        ip: get_str(b)?,
                        port: get_u16(b)?,
                        cport: get_u16(b)?,
                        flags: get_u16(b)?,
                    });
                }
                match kind {
                    Kind::Ping => Body::Ping(gossip),
                    Kind::Pong => Body::Pong(gossip),
                    _ => Body::Meet(gossip),
                }
            }
            Kind::Fail => Body::Fail { about: get_id(b)? },
            Kind::Publish | Kind::PublishShard => {
                let channel = get_blob(b)?;
                let message = get_blob(b)?;
                if kind == Kind::Publish {
                    Body::Publish { channel, message }
                } else {
                    Body::PublishShard { channel, message }
                }
            }
            Kind::Update => Body::Update {
                node: get_id(b)?,
                config_epoch: get_u64(b)?,
                slots: get_slots(b)?,
            },
            Kind::FailoverAuthRequest => Body::FailoverAuthRequest,
            Kind::FailoverAuthAck => Body::FailoverAuthAck,
            Kind::MfStart => Body::MfStart,
        };
        if b.has_remaining() {
            return Err(ProtoError("trailing bytes"));
        }
        Ok(Message { header, body })
    }
}

/// True for a well-formed node id: 40 characters of `[0-9a-z]`, as Redis's
/// `verifyClusterNodeId` accepts.
pub fn is_node_id(id: &[u8]) -> bool {
    id.len() == ID_LEN
        && id
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

fn put_id(out: &mut BytesMut, id: &str) {
    let bytes = id.as_bytes();
    let n = bytes.len().min(ID_LEN);
    out.put_slice(&bytes[..n]);
    out.put_bytes(b'0', ID_LEN - n);
}

fn put_str(out: &mut BytesMut, s: &str) {
    // Addresses are short; a longer string is cut at a char boundary.
    let mut n = s.len().min(usize::from(u8::MAX));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.put_u8(n as u8);
    out.put_slice(&s.as_bytes()[..n]);
}

fn put_blob(out: &mut BytesMut, data: &[u8]) {
    out.put_u32(data.len() as u32);
    out.put_slice(data);
}

fn take(b: &mut Bytes, n: usize) -> Result<Bytes, ProtoError> {
    if b.remaining() < n {
        return Err(ProtoError("truncated"));
    }
    Ok(b.split_to(n))
}

fn get_u8(b: &mut Bytes) -> Result<u8, ProtoError> {
    b.try_get_u8().map_err(|_| ProtoError("truncated"))
}

fn get_u16(b: &mut Bytes) -> Result<u16, ProtoError> {
    b.try_get_u16().map_err(|_| ProtoError("truncated"))
}

fn get_u32(b: &mut Bytes) -> Result<u32, ProtoError> {
    b.try_get_u32().map_err(|_| ProtoError("truncated"))
}

fn get_u64(b: &mut Bytes) -> Result<u64, ProtoError> {
    b.try_get_u64().map_err(|_| ProtoError("truncated"))
}

fn get_id(b: &mut Bytes) -> Result<String, ProtoError> {
    let raw = take(b, ID_LEN)?;
    if !is_node_id(&raw) {
        return Err(ProtoError("bad node id"));
    }
    // Checked ASCII above.
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn get_opt_id(b: &mut Bytes) -> Result<Option<String>, ProtoError> {
    if b.remaining() >= ID_LEN && b[..ID_LEN].iter().all(|&c| c == 0) {
        b.advance(ID_LEN);
        return Ok(None);
    }
    get_id(b).map(Some)
}

fn get_str(b: &mut Bytes) -> Result<String, ProtoError> {
    let n = get_u8(b)?;
    let raw = take(b, usize::from(n))?;
    String::from_utf8(raw.to_vec()).map_err(|_| ProtoError("bad string"))
}

fn get_blob(b: &mut Bytes) -> Result<Bytes, ProtoError> {
    let n = get_u32(b)? as usize;
    take(b, n)
}

fn get_slots(b: &mut Bytes) -> Result<SlotBitmap, ProtoError> {
    let raw = take(b, BITMAP_BYTES)?;
    SlotBitmap::from_bytes(&raw).ok_or(ProtoError("truncated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        let mut slots = SlotBitmap::new();
        slots.insert(0);
        slots.insert(5460);
        Header {
            sender: "a".repeat(40),
            current_epoch: 7,
            config_epoch: 3,
            repl_offset: 1234,
            flags: flags::REPLICA,
            master: Some("b".repeat(40)),
            ip: "127.0.0.1".into(),
            port: 7000,
            cport: 17000,
            state_ok: true,
            mflags: 0,
            slots,
        }
    }

    fn round_trip(msg: &Message) {
        let frame = msg.encode();
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(&Message::decode(frame.slice(4..)).unwrap(), msg);
    }

    #[test]
    fn every_kind_round_trips() {
        let gossip = vec![Gossip {
            id: "c".repeat(40),
            ping_sent: 0,
            pong_received: 1_700_000_000,
            ip: "10.0.0.2".into(),
            port: 7001,
            cport: 17001,
            flags: flags::MASTER | flags::PFAIL,
        }];
        let mut master_header = header();
        master_header.master = None;
        let bodies = [
            Body::Ping(gossip.clone()),
            Body::Pong(vec![]),
            Body::Meet(gossip),
            Body::Fail {
                about: "d".repeat(40),
            },
            Body::Publish {
                channel: Bytes::from_static(b"ch"),
                message: Bytes::from_static(b"\x00\xffhello"),
            },
            Body::PublishShard {
                channel: Bytes::new(),
                message: Bytes::new(),
            },
            Body::FailoverAuthRequest,
            Body::FailoverAuthAck,
            Body::Update {
                node: "e".repeat(40),
                config_epoch: 9,
                slots: header().slots,
            },
            Body::MfStart,
        ];
        for body in bodies {
            round_trip(&Message {
                header: header(),
                body: body.clone(),
            });
            round_trip(&Message {
                header: master_header.clone(),
                body,
            });
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let frame = Message {
            header: header(),
            body: Body::Ping(vec![]),
        }
        .encode();
        let body = frame.slice(4..);
        // Every truncation fails cleanly.
        for cut in 0..body.len() {
            assert!(Message::decode(body.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut extra = body.to_vec();
        extra.push(0);
        assert!(Message::decode(Bytes::from(extra)).is_err());
        let mut bad_kind = body.to_vec();
        bad_kind[5] = 99;
        assert!(Message::decode(Bytes::from(bad_kind)).is_err());
        let mut bad_id = body.to_vec();
        bad_id[6] = b'!';
        assert!(Message::decode(Bytes::from(bad_id)).is_err());
        assert!(Message::decode(Bytes::from_static(b"GET / HTTP/1.1")).is_err());
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(is_node_id(
            "0123456789abcdef0123456789abcdef01234567".as_bytes()
        ));
        assert!(!is_node_id(b"abc"));
        assert!(!is_node_id(
            "0123456789ABCDEF0123456789abcdef01234567".as_bytes()
        ));
    }
}
