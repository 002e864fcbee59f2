//! WAIT numreplicas timeout, for a client whose writes travel on links
//! shared with other clients.
//!
//! Redis counts the replicas that acknowledged the calling connection's
//! last write offset. Sending WAIT on the shared link would count the right
//! writes but block every other client's requests to that master; sending
//! it on a connection of its own counts nothing (that connection wrote
//! nothing, so every replica qualifies at once). So the proxy does what WAIT
//! does, from outside:
//!
//! 1. The session remembers the slots it sent writes to ([`Written`]).
//!    WAIT runs alone, after every earlier reply, so those writes have been
//!    executed and fed to the replication stream.
//! 2. For each master of those slots, `INFO replication` gives the master's
//!    offset now, at or past the end of those writes: the target.
//! 3. The replicas whose acknowledged offset (`slaveN:...offset=`) reaches
//!    the target count. Replicas acknowledge once a second on their own; to
//!    hear sooner, the proxy sends a WAIT that cannot be satisfied on a
//!    dedicated connection, which makes the master ask its replicas for an
//!    acknowledgement (`REPLCONF GETACK`) at once, and polls INFO meanwhile.
//!
//! The reply is the smallest count over those masters: every replica
//! counted holds every write of this client to its master.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use crate::command::{CommandSpec, flags};
use crate::resp::{Frame, Request, encode};

use super::Proxy;
use super::backend::Node;
use super::dedicated::ReplyWait;
use super::dispatch::{Target, execute, execute_dedicated};
use super::router::Route;
use crate::cluster::SlotBitmap;

/// Where a session's writes went: what its WAIT waits for.
#[derive(Debug, Default, Clone)]
pub struct Written {
    /// A bitmap (2 KB, made at the first write): recording a write costs
    /// one bit, and a session that writes everywhere stays bounded.
    slots: Option<SlotBitmap>,
    /// A write to several or unknown masters (a split MSET, FLUSHALL, a
    /// transaction): WAIT waits on every master.
    everywhere: bool,
}

impl Written {
    /// Records the request about to be sent, if it may write.
    pub fn note(&mut self, spec: Option<&CommandSpec>, route: &Route) {
        let Some(spec) = spec else { return };
        if spec.has_flag(flags::READONLY) && !spec.has_flag(flags::WRITE) {
            return;
        }
        match route {
            Route::Slot {
                slot,
                readonly: false,
            }
            | Route::Blocking {
                slot,
                readonly: false,
            }
            | Route::EvalSha {
                slot: Some(slot),
                readonly: false,
            } => {
                self.slots.get_or_insert_with(SlotBitmap::new).insert(*slot);
            }
            Route::Split {
                readonly: false, ..
            }
            | Route::AnyMaster { readonly: false }
            | Route::AllMasters {
                readonly: false, ..
            }
            | Route::EvalSha { slot: None, .. }
            | Route::AllNodes
            | Route::ScriptAdmin => self.everywhere = true,
            Route::Session { .. } if spec.name == "exec" => self.everywhere = true,
            _ => {}
        }
    }

    fn any(&self) -> bool {
        self.everywhere || self.slots.as_ref().is_some_and(|s| !s.is_empty())
    }
}

/// How often INFO is read while replicas catch up, at first and at most.
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(50);
/// How long each acknowledgement request blocks its dedicated connection.
const NUDGE: Duration = Duration::from_millis(1000);

/// Answers WAIT for a session that wrote where `written` says.
pub async fn wait(proxy: Arc<Proxy>, written: Written, req: Request) -> Bytes {
    let (wanted, timeout) = match parse(&req) {
        Ok(args) => args,
        Err(text) => return error(text),
    };
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout));
    let snapshot = proxy.cluster.snapshot();
    // Masters this client wrote to; without a write, Redis's offset is 0 and
    // every connected replica counts: asked of every master.
    let masters: Vec<Arc<Node>> = if written.everywhere || !written.any() {
        snapshot.masters().to_vec()
    } else {
        let mut masters: Vec<Arc<Node>> = Vec::new();
        for slot in written.slots.iter().flat_map(SlotBitmap::iter) {
            if let Some(node) = snapshot.master(slot) {
                if !masters.iter().any(|m| m.addr() == node.addr()) {
                    masters.push(node.clone());
                }
            }
        }
        masters
    };
    let from_offset = written.any();
    let counts = futures_util::future::join_all(
        masters
            .into_iter()
            .map(|node| acknowledged(&proxy, node, from_offset, wanted, deadline)),
    )
    .await;
    let mut least: Option<i64> = None;
    for count in counts {
        match count {
            Ok(n) => least = Some(least.map_or(n, |l| l.min(n))),
            Err(reply) => return reply,
        }
    }
    let mut out = BytesMut::with_capacity(16);
    encode::integer(&mut out, least.unwrap_or(0));
    out.freeze()
}

/// WAIT's arguments, with Redis's errors.
fn parse(req: &Request) -> Result<(i64, u64), &'static str> {
    let int = |i| {
        std::str::from_utf8(req.arg(i).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
    };
    let wanted = int(1).ok_or("ERR value is not an integer or out of range")?;
    let timeout = int(2).ok_or("ERR timeout is not an integer or out of range")?;
    if timeout < 0 {
        return Err("ERR timeout is negative");
    }
    Ok((wanted, timeout as u64))
}

fn error(text: &str) -> Bytes {
    let mut out = BytesMut::new();
    encode::error(&mut out, text);
    out.freeze()
}

/// The replicas of `node` that acknowledged its offset as of now (0 when
/// `from_offset` is false), once `wanted` do or at `deadline`.
async fn acknowledged(
    proxy: &Arc<Proxy>,
    node: Arc<Node>,
    from_offset: bool,
    wanted: i64,
    deadline: Option<Instant>,
) -> Result<i64, Bytes> {
    let first = replication(proxy, &node).await?;
    let target = if from_offset { first.offset } else { 0 };
    let mut count = first.acks(target);
    let mut nudge: Option<tokio::task::JoinHandle<Bytes>> = None;
    let mut pause = POLL_MIN;
    while count < wanted && deadline.is_none_or(|d| Instant::now() < d) {
        if nudge.as_ref().is_none_or(|n| n.is_finished()) {
            nudge = Some(tokio::spawn(ask_for_acks(proxy.clone(), node.clone())));
        }
        let wake = Instant::now() + pause;
        tokio::time::sleep_until(deadline.map_or(wake, |d| d.min(wake))).await;
        pause = (pause * 2).min(POLL_MAX);
        count = replication(proxy, &node).await?.acks(target);
    }
    if let Some(nudge) = nudge {
        // Closes its connection: the nudge is of no use any more.
        nudge.abort();
    }
    Ok(count)
}

/// A WAIT no master can satisfy, on a connection of its own: the master
/// asks its replicas to acknowledge at once.
async fn ask_for_acks(proxy: Arc<Proxy>, node: Arc<Node>) -> Bytes {
    let ms = NUDGE.as_millis().to_string();
    let request = Request::from_args(&["WAIT", "1000000", &ms]).raw().clone();
    let wait = ReplyWait::Blocking(NUDGE);
    execute_dedicated(&proxy, request, Target::Node(node), true, wait, None).await
}

/// A master's replication offset and its replicas' acknowledged offsets.
struct Replication {
    offset: i64,
    acked: Vec<i64>,
}

impl Replication {
    fn acks(&self, target: i64) -> i64 {
        self.acked.iter().filter(|&&o| o >= target).count() as i64
    }
}

async fn replication(proxy: &Proxy, node: &Arc<Node>) -> Result<Replication, Bytes> {
    let request = Request::from_args(&["INFO", "replication"]).raw().clone();
    let reply = execute(proxy, request, Target::Node(node.clone()), true).await;
    let text = match Frame::parse(&reply) {
        Ok(Some((frame, _))) => match frame.as_bytes() {
            Some(text) => String::from_utf8_lossy(text).into_owned(),
            None => return Err(reply),
        },
        _ => return Err(reply),
    };
    Ok(parse_replication(&text))
}

/// Reads `master_repl_offset` and the `slaveN:` lines of online replicas.
fn parse_replication(text: &str) -> Replication {
    let mut out = Replication {
        offset: 0,
        acked: Vec::new(),
    };
    for line in text.lines() {
        if let Some(offset) = line.strip_prefix("master_repl_offset:") {
            out.offset = offset.trim().parse().unwrap_or(0);
        } else if let Some((name, fields)) = line.split_once(':') {
            if !name.starts_with("slave") || !name[5..].bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            };
            if field("state") == Some("online") {
                if let Some(offset) = field("offset").and_then(|o| o.trim().parse().ok()) {
                    out.acked.push(offset);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_info_gives_the_offset_and_the_online_replicas_acks() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n\
            slave0:ip=127.0.0.1,port=7003,state=online,offset=120,lag=0\r\n\
            slave1:ip=127.0.0.1,port=7004,state=wait_bgsave,offset=0,lag=0\r\n\
            slave2:ip=127.0.0.1,port=7005,state=online,offset=90,lag=1\r\n\
            slave_read_repl_offset:5\r\n\
            master_failover_state:no-failover\r\nmaster_repl_offset:120\r\n";
        let r = parse_replication(info);
        assert_eq!(r.offset, 120);
        assert_eq!(r.acked, vec![120, 90]);
        assert_eq!(r.acks(120), 1);
        assert_eq!(r.acks(0), 2);
    }

    #[test]
    fn arguments_are_checked_as_redis_does() {
        let p = |args: &[&str]| parse(&Request::from_args(args));
        assert_eq!(p(&["WAIT", "1", "100"]), Ok((1, 100)));
        assert_eq!(
            p(&["WAIT", "x", "100"]),
            Err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            p(&["WAIT", "1", "x"]),
            Err("ERR timeout is not an integer or out of range")
        );
        assert_eq!(p(&["WAIT", "1", "-1"]), Err("ERR timeout is negative"));
    }
}
