//! The serving side: PSYNC and SYNC turn a client connection into a
//! replica's link (a full sync sends a snapshot of the keyspace taken
//! under the node lock, then the stream from that offset; a partial one
//! the rest of the stream from the backlog); REPLCONF carries the
//! handshake and the replica's ACKs; WAIT counts the ACKs; ROLE reports.
//!
//! A link sends straight from the backlog (see `propagate::Backlog`): it
//! holds at most one chunk of its own, and a replica that falls too far
//! behind loses its place and is dropped, as Redis drops a replica over
//! its output buffer limit; it comes back with a resync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ReplicaLink, SyncState};
use crate::node::client::ClientHandle;
use crate::node::cmd::{Args, CmdError, CmdResult, Ctx, Handler, Outcome, parse_i64};
use crate::node::snapshot;
use crate::node::state::Shared;
use crate::resp::{RequestDecoder, encode};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("psync", psync),
    ("sync", sync),
    ("replconf", replconf),
    ("wait", wait),
    ("role", super::info::role),
    ("replicaof", replicaof),
    ("slaveof", replicaof),
];

/// The most a link takes from the backlog at once.
const CHUNK: usize = 256 * 1024;

/// How often a link checks its output limits while it waits.
const LIMIT_CHECK: Duration = Duration::from_millis(250);

/// How often the master upkeep runs.
const CRON_PERIOD: Duration = Duration::from_millis(100);

/// The text WAIT answers on a replica.
const WAIT_ON_REPLICA: &str = "ERR WAIT cannot be used with replica instances. Please also note that \
     since Redis 4.0 if a replica is configured to be writable (which is not the default) writes \
     to replicas are just local and are not propagated.";

/// What a connection that became a replica's link starts with.
pub struct LinkStart {
    /// The `+FULLRESYNC` / `+CONTINUE` line and the snapshot, if any.
    head: Bytes,
    /// The stream offset the link continues from once `head` is sent.
    next: u64,
}

fn is_replica(ctx: &Ctx<'_>) -> bool {
    ctx.node.cluster.me().master.is_some()
}

/// PSYNC replid offset.
fn psync(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let offset = parse_i64(args.get(2))?;
    start_link(ctx, Some((args.get(1), offset)))
}

/// SYNC: the old protocol, a full sync without the `+FULLRESYNC` line.
fn sync(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    start_link(ctx, None)
}

fn start_link(ctx: &mut Ctx<'_>, psync: Option<(&[u8], i64)>) -> CmdResult {
    if ctx.client.handle.snapshot().replica {
        // Already a replica's link: Redis ignores it.
        return Ok(Outcome::Done);
    }
    if is_replica(ctx) && ctx.node.repl.link.status != super::LinkStatus::Connected {
        return Err(CmdError::fixed(
            "NOMASTERLINK Can't SYNC while not connected with my master",
        ));
    }
    let node = &mut *ctx.node;
    let fresh_backlog = node.feed.backlog().is_none();
    node.feed.enable_backlog(node.repl.backlog_size);
    let repl = &mut node.repl;
    let partial = psync.and_then(|(id, offset)| repl.continue_point(id, offset, &node.feed));
    let (head, next, state) = match partial {
        Some(next) => {
            repl.stats.partial_ok += 1;
            let line = format!("+CONTINUE {}\r\n", repl.replid);
            (Bytes::from(line), next, SyncState::Online)
        }
        None => {
            if psync.is_some_and(|(id, _)| id != b"?") {
                repl.stats.partial_err += 1;
            }
            repl.stats.full += 1;
            let next = node.feed.offset();
            let mut payload = BytesMut::new();
            snapshot::write_keyspace(&node.db, &mut payload);
            let mut head = BytesMut::with_capacity(payload.len() + 128);
            if psync.is_some() {
                head.extend_from_slice(
                    format!("+FULLRESYNC {} {next}\r\n", repl.replid).as_bytes(),
                );
            }
            encode::bulk_header(&mut head, payload.len());
            head.extend_from_slice(&payload);
            (head.freeze(), next, SyncState::SendBulk)
        }
    };
    let handle = Arc::clone(&ctx.client.handle);
    handle.snapshot().replica = true;
    tracing::info!(
        replica = ?handle.addr,
        full = state == SyncState::SendBulk,
        offset = next,
        "replica linked"
    );
    repl.add_replica(
        ReplicaLink {
            client_id: handle.id,
            ip: handle.addr.map(|a| a.ip()),
            handle,
            port: ctx.client.replica_port.unwrap_or(0),
            state,
            ack_offset: 0,
            ack_time: Instant::now(),
            next,
            backed_up: false,
        },
        &mut node.feed,
    );
    if fresh_backlog {
        // Redis's replicas see a first PING at once: the offsets move
        // past 0, which tells the cluster they have synced.
        node.feed.push_to_replicas(&[b"PING"]);
        node.repl.last_ping = Some(Instant::now());
    }
    Ok(Outcome::ServeReplica(Box::new(LinkStart { head, next })))
}

/// REPLCONF option value [option value ...]: the replica's handshake
/// (`listening-port`, `capa`...), its `ACK`s (handled by the link
/// itself once streaming), and `GETACK` from a master.
fn replconf(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() % 2 == 0 {
        return Err(CmdError::SYNTAX);
    }
    for i in (1..args.len()).step_by(2) {
        let option = args.lossy(i).to_ascii_lowercase();
        match option.as_str() {
            "listening-port" => {
                let port = parse_i64(args.get(i + 1))?;
                ctx.client.replica_port = u16::try_from(port).ok();
            }
            "getack" => {
                // Only the master's stream asks; no reply.
                if ctx.client.replaying {
                    ctx.node.repl.link.ack_requested = true;
                }
                return Ok(Outcome::Done);
            }
            // An ACK outside a replica's link: no reply, as Redis.
            "ack" => return Ok(Outcome::Done),
            "ip-address" | "capa" | "rdb-only" | "rdb-filter-only" => {}
            _ => {
                return Err(CmdError::new(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    args.lossy(i)
                )));
            }
        }
    }
    ctx.ok()
}

/// WAIT numreplicas timeout: the number of replicas that acknowledged
/// this client's last write, once `numreplicas` did or at the timeout
/// (0: none). Waits without the node lock.
fn wait(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if is_replica(ctx) {
        return Err(CmdError::fixed(WAIT_ON_REPLICA));
    }
    let wanted = args.int(1)?;
    let timeout = parse_i64(args.get(2))
        .map_err(|_| CmdError::fixed("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::fixed("ERR timeout is negative"));
    }
    let target = ctx.client.write_offset;
    let acked = ctx.node.repl.count_acks(target);
    if i64::try_from(acked).unwrap_or(i64::MAX) >= wanted || ctx.client.in_exec {
        return ctx.int(acked as i64);
    }
    let node = &mut *ctx.node;
    node.repl.request_acks(&mut node.feed);
    let mut acks = node.repl.subscribe_acks();
    let shared = Arc::clone(ctx.shared);
    let deadline = (timeout > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_millis(timeout.unsigned_abs()));
    Ok(Outcome::Async(Box::pin(async move {
        loop {
            let acked = shared.lock().repl.count_acks(target);
            if i64::try_from(acked).unwrap_or(i64::MAX) >= wanted {
                return Bytes::from(format!(":{acked}\r\n"));
            }
            let timed_out = tokio::select! {
                changed = acks.changed() => changed.is_err(),
                () = sleep_until(deadline) => true,
            };
            if timed_out {
                let acked = shared.lock().repl.count_acks(target);
                return Bytes::from(format!(":{acked}\r\n"));
            }
        }
    })))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// REPLICAOF / SLAVEOF: a cluster node's master is set with CLUSTER
/// REPLICATE.
fn replicaof(_ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    Err(CmdError::fixed(
        "ERR REPLICAOF not allowed in cluster mode.",
    ))
}

/// Why a replica's link ended.
#[derive(Debug, thiserror::Error)]
enum LinkEnd {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("killed")]
    Killed,
    #[error("lost its place in the backlog (output buffer limit)")]
    Overrun,
    #[error("over the soft output buffer limit for too long")]
    SoftLimit,
    #[error("no ACK for {0:?}")]
    Timeout(Duration),
    #[error("bad input: {0}")]
    Protocol(String),
}

/// Serves a replica on `stream` until its link ends: `start.head`, then
/// the stream from the backlog, reading its ACKs (`input` holds what it
/// already sent). The replica is then forgotten.
pub async fn serve(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    shared: &Arc<Shared>,
    handle: &Arc<ClientHandle>,
    start: LinkStart,
) {
    let id = handle.id;
    let end = run_link(stream, input, shared, handle, start).await;
    let mut node = shared.lock();
    let node = &mut *node;
    node.repl.remove_replica(id, &mut node.feed);
    match end {
        Err(LinkEnd::Overrun | LinkEnd::SoftLimit) => tracing::warn!(
            replica = ?handle.addr,
            "client scheduled to be closed for overcoming of output buffer limits"
        ),
        Err(e) => tracing::info!(replica = ?handle.addr, reason = %e, "replica link closed"),
        Ok(()) => {}
    }
}

async fn run_link(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    shared: &Arc<Shared>,
    handle: &Arc<ClientHandle>,
    start: LinkStart,
) -> Result<(), LinkEnd> {
    let id = handle.id;
    let mut offsets = shared.lock().feed.subscribe();
    let (mut rd, mut wr) = stream.split();
    let mut decoder = RequestDecoder::default();
    let mut out = start.head;
    let mut written = 0;
    let mut next = start.next;
    let mut sending_head = true;
    let mut over_soft_since: Option<Instant> = None;
    let mut check = tokio::time::interval(LIMIT_CHECK);
    read_acks(shared, id, &mut decoder, input)?;
    loop {
        if written == out.len() {
            let mut node = shared.lock();
            let node = &mut *node;
            if sending_head {
                sending_head = false;
                if let Some(r) = node.repl.replicas.iter_mut().find(|r| r.client_id == id) {
                    r.state = SyncState::Online;
                }
            }
            offsets.borrow_and_update();
            let chunk = node
                .feed
                .backlog()
                .and_then(|b| b.read_chunk(next, CHUNK))
                .ok_or(LinkEnd::Overrun)?;
            next += chunk.len() as u64;
            out = chunk;
            // Handed to the socket under the lock that took it: the
            // replies to these writes wait for it (`handoff_wait`). A full
            // socket keeps the rest here, as Redis's output buffer does.
            written = match wr.try_write(&out) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e.into()),
            };
            node.repl
                .advance(id, next, written < out.len(), &mut node.feed);
            let behind = node.feed.offset().saturating_sub(next);
            over_soft(&node.repl.replica_limit, behind, &mut over_soft_since)?;
        }
        tokio::select! {
            n = wr.write(out.get(written..).unwrap_or_default()), if written < out.len() => {
                match n? {
                    0 => return Err(LinkEnd::Closed),
                    n => written += n,
                }
            }
            changed = offsets.changed(), if written == out.len() => {
                if changed.is_err() {
                    return Err(LinkEnd::Closed);
                }
                // Let the writes of the moment pile up (one lock and one
                // send for many, as Redis writes to replicas once per
                // loop), for one turn of the scheduler: their replies wait
                // for this link to hand them to its socket.
                tokio::task::yield_now().await;
            }
            n = rd.read_buf(input) => {
                if n? == 0 {
                    return Err(LinkEnd::Closed);
                }
                read_acks(shared, id, &mut decoder, input)?;
            }
            _ = check.tick() => {
                let node = shared.lock();
                let behind = node.feed.offset().saturating_sub(next);
                over_soft(&node.repl.replica_limit, behind, &mut over_soft_since)?;
                let silent = node
                    .repl
                    .replicas
                    .iter()
                    .find(|r| r.client_id == id)
                    .map(|r| r.ack_time.elapsed());
                if !sending_head && silent.is_some_and(|s| s > super::REPL_TIMEOUT) {
                    return Err(LinkEnd::Timeout(super::REPL_TIMEOUT));
                }
            }
            () = handle.killed() => return Err(LinkEnd::Killed),
            () = shared.shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Checks the soft output limit: `behind` bytes not yet taken by the link.
fn over_soft(
    limit: &crate::node::client::BufferLimit,
    behind: u64,
    since: &mut Option<Instant>,
) -> Result<(), LinkEnd> {
    let behind = usize::try_from(behind).unwrap_or(usize::MAX);
    if limit.hard > 0 && behind > limit.hard {
        return Err(LinkEnd::Overrun);
    }
    if limit.soft == 0 || behind <= limit.soft {
        *since = None;
        return Ok(());
    }
    let at = *since.get_or_insert_with(Instant::now);
    if at.elapsed() >= Duration::from_secs(limit.soft_seconds) {
        return Err(LinkEnd::SoftLimit);
    }
    Ok(())
}

/// Handles what a replica sent on its link: `REPLCONF ACK <offset>`;
/// anything else is ignored.
fn read_acks(
    shared: &Arc<Shared>,
    id: u64,
    decoder: &mut RequestDecoder,
    input: &mut BytesMut,
) -> Result<(), LinkEnd> {
    let mut last = None;
    while let Some(req) = decoder
        .decode(input)
        .map_err(|e| LinkEnd::Protocol(e.to_string()))?
    {
        let is_ack = req.name().eq_ignore_ascii_case(b"replconf")
            && req.arg(1).is_some_and(|a| a.eq_ignore_ascii_case(b"ack"));
        if let Some(offset) = req
            .arg(2)
            .filter(|_| is_ack)
            .and_then(|a| parse_i64(a).ok())
            .and_then(|n| u64::try_from(n).ok())
        {
            last = Some(offset);
        }
    }
    if let Some(offset) = last {
        shared.lock().repl.note_ack(id, offset);
    }
    Ok(())
}

/// The master's upkeep, every 100 ms: this node's offset for the cluster
/// bus, and a PING to the replicas every 10 s so they see the master
/// alive.
pub async fn cron(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(CRON_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let mut node = shared.lock();
        let node = &mut *node;
        let now = Instant::now();
        if node.repl.ping_due(now) && node.cluster.me().master.is_none() {
            node.feed.push_to_replicas(&[b"PING"]);
            node.repl.last_ping = Some(now);
        }
        let offset = node.feed.offset();
        node.cluster.me_mut().repl_offset = offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::client::BufferLimit;

    #[test]
    fn the_soft_limit_needs_its_time_and_the_hard_one_none() {
        let limit = BufferLimit {
            hard: 100,
            soft: 50,
            soft_seconds: 3600,
        };
        let mut since = None;
        assert!(over_soft(&limit, 40, &mut since).is_ok());
        assert!(over_soft(&limit, 60, &mut since).is_ok());
        assert!(since.is_some());
        assert!(over_soft(&limit, 10, &mut since).is_ok());
        assert!(since.is_none(), "back under the soft limit");
        assert!(matches!(
            over_soft(&limit, 101, &mut since),
            Err(LinkEnd::Overrun)
        ));
        let now = BufferLimit {
            soft_seconds: 0,
            ..limit
        };
        assert!(matches!(
            over_soft(&now, 60, &mut since),
            Err(LinkEnd::SoftLimit)
        ));
    }
}
