//! The replica side: while the cluster names a master for this node
//! (`ClusterState::subscribe_master`), keep a link to it: connect to its
//! client port, hand-shake (`REPLCONF listening-port`, `capa`), `PSYNC`
//! with this node's history and offset, load the snapshot of a full sync,
//! then apply the master's stream and pass it on whole (to this node's
//! own backlog and append-only file), acknowledging the offset every
//! second and when asked. A dropped link is retried with backoff; a new
//! master (failover, rejoin) replaces the link; no master (a promotion)
//! ends it, keeping the data under a new history.
//!
//! A replica runs with expiry off (its master's `DEL`s expire keys), a
//! master with expiry on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::{LinkStatus, MasterLink, REPL_TIMEOUT};
use crate::node::client::ClientHandle;
use crate::node::cluster::MasterAddr;
use crate::node::propagate::encode_command;
use crate::node::replay::Replayer;
use crate::node::state::Shared;

/// Retry delays after a failed or dropped link.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the replica acknowledges its offset.
const ACK_PERIOD: Duration = Duration::from_secs(1);
/// The longest reply line of the handshake.
const MAX_LINE: usize = 64 * 1024;
/// Snapshot bytes applied under one lock: the node keeps serving (and
/// its bus keeps talking) while a large snapshot loads.
const LOAD_CHUNK: usize = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Why a link to the master ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the master")]
    Closed,
    #[error("no data from the master for {0:?}")]
    Timeout(Duration),
    #[error("the master refused: {0}")]
    Refused(String),
    #[error("unexpected reply from the master: {0}")]
    Unexpected(String),
    #[error("bad replication stream: {0}")]
    Protocol(String),
    #[error("link killed")]
    Killed,
}

/// The master's answer to PSYNC.
#[derive(Debug, PartialEq, Eq)]
pub enum PsyncReply {
    /// `+FULLRESYNC <replid> <offset>`: a snapshot follows.
    Full { replid: String, offset: u64 },
    /// `+CONTINUE [<replid>]`: the stream follows from our offset.
    Continue { replid: Option<String> },
}

/// Reads the line the master answers PSYNC with.
///
/// # Errors
/// The master's error (`-NOMASTERLINK`, `-LOADING`...) or a line that is
/// neither answer.
pub fn parse_psync_reply(line: &str) -> Result<PsyncReply, LinkError> {
    if let Some(error) = line.strip_prefix('-') {
        return Err(LinkError::Refused(error.to_string()));
    }
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        Some("+FULLRESYNC") => {
            let replid = words.next().filter(|id| id.len() == 40);
            let offset = words.next().and_then(|o| o.parse().ok());
            match (replid, offset) {
                (Some(replid), Some(offset)) => Ok(PsyncReply::Full {
                    replid: replid.to_string(),
                    offset,
                }),
                _ => Err(LinkError::Unexpected(line.to_string())),
            }
        }
        Some("+CONTINUE") => Ok(PsyncReply::Continue {
            replid: words.next().filter(|id| id.len() == 40).map(str::to_string),
        }),
        _ => Err(LinkError::Unexpected(line.to_string())),
    }
}

/// Follows the master the cluster names for this node, until shutdown.
pub async fn run(shared: Arc<Shared>) {
    let (mut changes, mut target) = {
        let node = shared.lock();
        let mut changes = node.cluster.subscribe_master();
        changes.borrow_and_update();
        // The current master from the state itself: a change sent before
        // anyone listened is not in the channel.
        let target = node.cluster.my_master().map(|m| MasterAddr {
            id: Arc::clone(&m.id),
            ip: m.ip.clone(),
            port: m.port,
        });
        (changes, target)
    };
    let mut replica = false;
    loop {
        match target.clone() {
            Some(addr) => {
                become_replica(&shared, &addr, !replica);
                replica = true;
                match follow(&shared, &addr, &mut changes).await {
                    Some(next) => target = next,
                    None => return,
                }
            }
            None => {
                if replica {
                    become_master(&shared);
                    replica = false;
                }
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = shared.shutdown.cancelled() => return,
                }
                target = changes.borrow_and_update().clone();
            }
        }
    }
}

/// The node replicates `addr` from now on: expiry off; if it was a
/// master, its own replicas must resync (its history changes).
fn become_replica(shared: &Arc<Shared>, addr: &MasterAddr, was_master: bool) {
    let mut node = shared.lock();
    node.db.set_expiry_enabled(false);
    if was_master {
        node.repl.disconnect_replicas();
    }
    node.repl.link = MasterLink {
        master: Some((addr.ip.clone(), addr.port)),
        ..MasterLink::default()
    };
    tracing::info!(master = %format!("{}:{}", addr.ip, addr.port), "replicating");
}

/// The node was promoted: a new history (the old one kept as `replid2`
/// for the replicas that followed the same master), expiry on, and its
/// replicas reconnect to learn the new history.
fn become_master(shared: &Arc<Shared>) {
    let mut node = shared.lock();
    let offset = node.feed.offset();
    node.repl.shift_replid(offset);
    node.repl.link = MasterLink::default();
    node.repl.disconnect_replicas();
    node.db.set_expiry_enabled(true);
    tracing::info!(offset, "no longer a replica: new replication history");
}

/// Waits until the cluster names a master other than `current`: the
/// new one (or none); `None` if the channel closed.
async fn next_master(
    changes: &mut watch::Receiver<Option<MasterAddr>>,
    current: &MasterAddr,
) -> Option<Option<MasterAddr>> {
    loop {
        changes.changed().await.ok()?;
        let next = changes.borrow_and_update().clone();
        if next.as_ref() != Some(current) {
            return Some(next);
        }
    }
}

/// Keeps a link to `addr` (reconnecting with backoff) until the cluster
/// names another master: returns it, or `None` at shutdown.
async fn follow(
    shared: &Arc<Shared>,
    addr: &MasterAddr,
    changes: &mut watch::Receiver<Option<MasterAddr>>,
) -> Option<Option<MasterAddr>> {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            ended = link(shared, addr) => ended,
            next = next_master(changes, addr) => {
                link_down(shared);
                return next;
            }
            () = shared.shutdown.cancelled() => return None,
        };
        let was_up = link_down(shared);
        if let Err(e) = ended {
            tracing::info!(master = %format!("{}:{}", addr.ip, addr.port), reason = %e, "link to the master down");
        }
        if was_up || started.elapsed() > MAX_BACKOFF {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            next = next_master(changes, addr) => return next,
            () = shared.shutdown.cancelled() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The link ended: returns true if it was streaming.
fn link_down(shared: &Arc<Shared>) -> bool {
    let mut node = shared.lock();
    let link = &mut node.repl.link;
    let was_up = link.status == LinkStatus::Connected;
    if was_up {
        link.down_since = Some(Instant::now());
    }
    link.status = LinkStatus::Connect;
    link.ack_requested = false;
    was_up
}

/// One link to the master, from connect to its end.
async fn link(shared: &Arc<Shared>, addr: &MasterAddr) -> Result<(), LinkError> {
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((addr.ip.as_str(), addr.port)),
    )
    .await
    .map_err(|_| LinkError::Connect("timed out".into()))?
    .map_err(|e| LinkError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut link = Link::register(shared, stream);
    link.run().await
}

/// A connection to the master, registered as the node's master client
/// (CLIENT LIST flag `M`; CLIENT KILL TYPE master closes it).
struct Link<'a> {
    shared: &'a Arc<Shared>,
    stream: TcpStream,
    handle: Arc<ClientHandle>,
    /// Bytes read and not consumed yet.
    input: BytesMut,
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        self.shared.lock().clients.unregister(self.handle.id);
    }
}

impl<'a> Link<'a> {
    fn register(shared: &'a Arc<Shared>, stream: TcpStream) -> Self {
        use std::sync::atomic::Ordering;
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(ClientHandle::new(
            id,
            stream.peer_addr().ok(),
            stream.local_addr().ok(),
            -1,
        ));
        handle.snapshot().master = true;
        let mut node = shared.lock();
        node.clients.register(Arc::clone(&handle));
        node.repl.link.status = LinkStatus::Connecting;
        Link {
            shared,
            stream,
            handle,
            input: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    async fn run(&mut self) -> Result<(), LinkError> {
        let handle = Arc::clone(&self.handle);
        tokio::select! {
            ended = self.sync_and_stream() => ended,
            () = handle.killed() => Err(LinkError::Killed),
        }
    }

    async fn sync_and_stream(&mut self) -> Result<(), LinkError> {
        let port = self.shared.config.port.to_string();
        self.send(&[b"PING"]).await?;
        let pong = self.read_line().await?;
        if let Some(error) = pong.strip_prefix('-') {
            return Err(LinkError::Refused(error.to_string()));
        }
        self.send(&[b"REPLCONF", b"listening-port", port.as_bytes()])
            .await?;
        self.expect_ok().await?;
        self.send(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
            .await?;
        // Redis carries on if the master does not know the capabilities.
        self.read_line().await?;
        let (replid, offset) = {
            let node = self.shared.lock();
            (node.repl.replid.clone(), node.feed.offset())
        };
        if offset == 0 {
            self.send(&[b"PSYNC", b"?", b"-1"]).await?;
        } else {
            let next = (offset + 1).to_string();
            self.send(&[b"PSYNC", replid.as_bytes(), next.as_bytes()])
                .await?;
        }
        let reply = loop {
            // A master may send newlines to keep the link alive meanwhile.
            let line = self.read_line().await?;
            if !line.is_empty() {
                break line;
            }
        };
        match parse_psync_reply(&reply)? {
            PsyncReply::Full { replid, offset } => self.full_sync(replid, offset).await?,
            PsyncReply::Continue { replid: new } => {
                let mut node = self.shared.lock();
                if let Some(new) = new.filter(|id| *id != node.repl.replid) {
                    // The master was promoted: our replicas learn the new
                    // history by reconnecting, as Redis does.
                    node.repl.follow_new_replid(new, offset);
                    node.repl.disconnect_replicas();
                }
                tracing::info!(offset, "partial resync with the master");
            }
        }
        self.stream_from_master().await
    }

    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = BytesMut::new();
        encode_command(&mut out, argv);
        with_timeout(self.stream.write_all(&out)).await??;
        Ok(())
    }

    async fn expect_ok(&mut self) -> Result<(), LinkError> {
        let line = self.read_line().await?;
        match line.strip_prefix('-') {
            Some(error) => Err(LinkError::Refused(error.to_string())),
            None if line == "+OK" => Ok(()),
            None => Err(LinkError::Unexpected(line)),
        }
    }

    /// Reads more input; an error at the end of the connection.
    async fn fill(&mut self) -> Result<usize, LinkError> {
        self.input.reserve(READ_CHUNK);
        match with_timeout(self.stream.read_buf(&mut self.input)).await?? {
            0 => Err(LinkError::Closed),
            n => Ok(n),
        }
    }

    /// One line without its `\r\n`.
    async fn read_line(&mut self) -> Result<String, LinkError> {
        loop {
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                let line = self.input.split_to(end + 1);
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.input.len() > MAX_LINE {
                return Err(LinkError::Unexpected("a line too long".into()));
            }
            self.fill().await?;
        }
    }

    /// Receives the snapshot (`$<len>` and its bytes), then replaces the
    /// keyspace with it and adopts the master's history at `offset`.
    async fn full_sync(&mut self, replid: String, offset: u64) -> Result<(), LinkError> {
        let header = loop {
            let line = self.read_line().await?;
            if !line.is_empty() {
                break line;
            }
        };
        let len: usize = header
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| LinkError::Unexpected(header.clone()))?;
        let started = Instant::now();
        self.set_sync_progress(len, 0);
        while self.input.len() < len {
            self.fill().await?;
            self.set_sync_progress(len, self.input.len());
        }
        let payload = self.input.split_to(len);
        self.load_snapshot(&payload).await?;
        let mut node = self.shared.lock();
        let node = &mut *node;
        node.repl.adopt_replid(replid);
        // Our own replicas followed another history.
        node.repl.disconnect_replicas();
        node.feed.reset_offset(offset);
        node.feed.enable_backlog(node.repl.backlog_size);
        node.cluster.me_mut().repl_offset = offset;
        // The append-only file starts over from the keyspace just loaded.
        crate::node::aof::rewrite_after_sync(node);
        tracing::info!(
            bytes = len,
            keys = node.db.len(),
            offset,
            ms = started.elapsed().as_millis() as u64,
            "full sync with the master done"
        );
        Ok(())
    }

    fn set_sync_progress(&self, total: usize, read: usize) {
        let mut node = self.shared.lock();
        let link = &mut node.repl.link;
        link.status = LinkStatus::Sync;
        link.sync_total = total as u64;
        link.sync_read = read.min(total) as u64;
        link.last_io = Some(Instant::now());
    }

    /// Empties the keyspace and replays the snapshot, a chunk per lock.
    async fn load_snapshot(&mut self, payload: &[u8]) -> Result<(), LinkError> {
        let mut replayer = Replayer::new(self.handle.id);
        let bad = |e: crate::resp::ProtocolError| LinkError::Protocol(e.to_string());
        {
            let mut flush = BytesMut::new();
            encode_command(&mut flush, &[b"FLUSHALL"]);
            let mut node = self.shared.lock();
            replayer
                .apply(&mut node, self.shared, &mut flush)
                .map_err(bad)?;
        }
        let mut pending = BytesMut::new();
        for chunk in payload.chunks(LOAD_CHUNK) {
            pending.extend_from_slice(chunk);
            {
                let mut node = self.shared.lock();
                replayer
                    .apply(&mut node, self.shared, &mut pending)
                    .map_err(bad)?;
            }
            tokio::task::yield_now().await;
        }
        if !pending.is_empty() || replayer.in_transaction() {
            return Err(LinkError::Protocol("the snapshot ends mid-command".into()));
        }
        Ok(())
    }

    /// Applies the master's stream until the link ends.
    async fn stream_from_master(&mut self) -> Result<(), LinkError> {
        {
            let mut node = self.shared.lock();
            let link = &mut node.repl.link;
            link.status = LinkStatus::Connected;
            link.last_io = Some(Instant::now());
            link.down_since = None;
            link.sync_total = 0;
            link.sync_read = 0;
        }
        let shared = self.shared;
        let mut replayer = Replayer::new(self.handle.id);
        // The bytes not passed on yet: what the replayer holds (a MULTI
        // block waiting for its EXEC) and what it has not decoded.
        let mut raw = BytesMut::new();
        let mut pending = std::mem::take(&mut self.input);
        raw.extend_from_slice(&pending);
        let (mut rd, mut wr) = self.stream.split();
        let mut ack = apply(shared, &mut replayer, &mut raw, &mut pending)?;
        send_ack(shared, &mut wr).await?;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + ACK_PERIOD, ACK_PERIOD);
        let mut last_io = tokio::time::Instant::now();
        loop {
            if std::mem::take(&mut ack) {
                send_ack(shared, &mut wr).await?;
            }
            tokio::select! {
                n = read_into(&mut rd, &mut pending) => {
                    let before = pending.len() - n?;
                    raw.extend_from_slice(pending.get(before..).unwrap_or_default());
                    last_io = tokio::time::Instant::now();
                    ack = apply(shared, &mut replayer, &mut raw, &mut pending)?;
                }
                _ = ticks.tick() => ack = true,
                () = tokio::time::sleep_until(last_io + REPL_TIMEOUT) => {
                    return Err(LinkError::Timeout(REPL_TIMEOUT));
                }
            }
        }
    }
}

async fn read_into(rd: &mut ReadHalf<'_>, buf: &mut BytesMut) -> Result<usize, LinkError> {
    buf.reserve(READ_CHUNK);
    match rd.read_buf(buf).await? {
        0 => Err(LinkError::Closed),
        n => Ok(n),
    }
}

/// Applies the complete commands of `pending` and passes the bytes
/// applied on to this node's own stream; returns true if the master
/// asked for an ACK.
fn apply(
    shared: &Arc<Shared>,
    replayer: &mut Replayer,
    raw: &mut BytesMut,
    pending: &mut BytesMut,
) -> Result<bool, LinkError> {
    let mut node = shared.lock();
    let node = &mut *node;
    let applied = replayer
        .apply(node, shared, pending)
        .map_err(|e| LinkError::Protocol(e.to_string()))?;
    if applied > 0 {
        let take = applied.min(raw.len());
        node.feed.append_raw(raw.get(..take).unwrap_or_default());
        raw.advance(take);
        node.cluster.me_mut().repl_offset = node.feed.offset();
    }
    // The data age a replica's failover eligibility depends on.
    node.cluster
        .note_master_link_alive(crate::node::db::unix_ms());
    let link = &mut node.repl.link;
    link.read_offset = node.feed.offset() + raw.len() as u64;
    link.last_io = Some(Instant::now());
    Ok(std::mem::take(&mut link.ack_requested))
}

/// `REPLCONF ACK <offset>`: the offset this node processed.
async fn send_ack(shared: &Arc<Shared>, wr: &mut WriteHalf<'_>) -> Result<(), LinkError> {
    let offset = shared.lock().feed.offset().to_string();
    let mut out = BytesMut::new();
    encode_command(&mut out, &[b"REPLCONF", b"ACK", offset.as_bytes()]);
    with_timeout(wr.write_all(&out)).await??;
    Ok(())
}

/// Bounds one read or write of the link by `repl-timeout`.
async fn with_timeout<T>(io: impl std::future::Future<Output = T>) -> Result<T, LinkError> {
    tokio::time::timeout(REPL_TIMEOUT, io)
        .await
        .map_err(|_| LinkError::Timeout(REPL_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn psync_replies() {
        assert_eq!(
            parse_psync_reply(&format!("+FULLRESYNC {ID} 42")).unwrap(),
            PsyncReply::Full {
                replid: ID.into(),
                offset: 42
            }
        );
        assert_eq!(
            parse_psync_reply("+CONTINUE").unwrap(),
            PsyncReply::Continue { replid: None }
        );
        assert_eq!(
            parse_psync_reply(&format!("+CONTINUE {ID}")).unwrap(),
            PsyncReply::Continue {
                replid: Some(ID.into())
            }
        );
        assert!(matches!(
            parse_psync_reply("-NOMASTERLINK Can't SYNC while not connected with my master"),
            Err(LinkError::Refused(_))
        ));
        for bad in [
            "+FULLRESYNC short 1",
            &format!("+FULLRESYNC {ID} x"),
            "+OK",
            "",
        ] {
            assert!(
                matches!(parse_psync_reply(bad), Err(LinkError::Unexpected(_))),
                "{bad}"
            );
        }
    }
}
