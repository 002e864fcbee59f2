//! The cluster bus: the nodes of a cluster talking to each other on their
//! cluster ports (gossip, MEET, slot and epoch agreement, PUBLISH fan-out).
//! The protocol is Slotway's own ([`proto`]); what the messages do to the
//! cluster state is in `node::cluster::gossip`.
//!
//! Commands hand messages to the bus through a [`BusHandle`], which never
//! blocks: the bus task owns the connections and sends them out.
//!
//! ```text
//! bus task (every 100 ms, and on demand)
//!   lock -> gossip::cron -> unlock -> open/close links, queue PINGs
//!   outbox (PUBLISH from commands) -> lock -> build -> unlock -> queue
//! outbound link to each known node (we connect; PING/MEET out, PONG in)
//! inbound links (peers connect; PING/MEET/PUBLISH/UPDATE in, PONG out)
//!   each link: reader (frame -> lock -> gossip::process -> unlock) and
//!   writer (a bounded queue; a link that falls that far behind is closed)
//! ```
//!
//! Like Redis, a node keeps one outbound link per peer and answers on
//! whatever link a message came in. The node lock is only held to read or
//! update the cluster state; no socket I/O happens under it. A link that
//! sends bytes that are not a message is closed, and only that link.
//! Failed connects are retried with a backoff (100 ms doubling to 1 s),
//! cut short when the node speaks to us again (it restarted).

pub mod proto;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cluster::NodeId;
use super::cluster::gossip::{self, LinkInfo, LinkView};
use super::db::unix_ms;
use super::state::Shared;
use proto::{MAX_FRAME, Message};

/// How often the bus runs its periodic work (Redis: clusterCron, 10 Hz).
const TICK: Duration = Duration::from_millis(100);
/// Frames a link may have queued before it is considered stuck and closed.
const LINK_QUEUE: usize = 1024;
/// First and longest wait before reconnecting to a node that refused.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bytes read from a link at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Something a command asks the bus to tell other nodes.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// PUBLISH (shard `None`: every node) or SPUBLISH (the nodes serving
    /// that slot: its master and replicas).
    Publish {
        channel: Bytes,
        message: Bytes,
        shard: Option<u16>,
    },
}

/// The sending side of the bus, held by [`crate::node::state::Shared`].
#[derive(Debug, Clone)]
pub struct BusHandle {
    tx: mpsc::UnboundedSender<Outbound>,
}

impl BusHandle {
    pub fn new() -> (BusHandle, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (BusHandle { tx }, rx)
    }

    /// Queues `message` for the bus; dropped if the bus has stopped (the
    /// node is shutting down).
    pub fn send(&self, message: Outbound) {
        let _ = self.tx.send(message);
    }
}

/// What links tell the bus task.
enum Ctl {
    /// The outbound link `generation` to `node` is connected.
    Up { node: NodeId, generation: u64 },
    /// The outbound link `generation` to `node` is gone.
    Down { node: NodeId, generation: u64 },
    /// Messages to send on outbound links (UPDATE answers).
    Send(Vec<(NodeId, Message)>),
    /// Close the links to these nodes (their address changed).
    Reset(Vec<NodeId>),
}

/// Our link to one node.
struct OutLink {
    generation: u64,
    tx: mpsc::Sender<Bytes>,
    /// Unix ms it connected, once it has.
    up_since: Option<i64>,
    cancel: CancellationToken,
}

/// Reconnection backoff for one node.
struct Backoff {
    failures: u32,
    retry_at: Instant,
    /// Unix ms the link went down or failed to connect.
    since_ms: i64,
}

/// The bus task's own state.
struct Bus {
    shared: Arc<Shared>,
    links: HashMap<NodeId, OutLink>,
    backoff: HashMap<NodeId, Backoff>,
    next_generation: u64,
    ctl_tx: mpsc::UnboundedSender<Ctl>,
}

/// Runs the bus on `listener` (the cluster port) until shutdown.
pub async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut outbox: mpsc::UnboundedReceiver<Outbound>,
) {
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    tokio::spawn(accept_loop(listener, Arc::clone(&shared), ctl_tx.clone()));
    let mut bus = Bus {
        shared: Arc::clone(&shared),
        links: HashMap::new(),
        backoff: HashMap::new(),
        next_generation: 0,
        ctl_tx,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => bus.tick(),
            Some(out) = outbox.recv() => bus.outbound(out),
            Some(ctl) = ctl_rx.recv() => bus.ctl(ctl),
            () = shared.shutdown.cancelled() => break,
        }
    }
    for link in bus.links.values() {
        link.cancel.cancel();
    }
}

impl Bus {
    fn tick(&mut self) {
        let now = unix_ms();
        let instant = Instant::now();
        let (plan, stale, forgotten) = {
            let mut node = self.shared.lock();
            // A node that spoke to us since our link to it failed is back
            // (a restart): reconnect now rather than after the backoff.
            self.backoff.retain(|id, b| {
                node.cluster
                    .node(id)
                    .is_none_or(|n| n.data_received_ms <= b.since_ms)
            });
            let links = &self.links;
            let backoff = &self.backoff;
            let view = |id: &str| match links.get(id) {
                Some(OutLink {
                    up_since: Some(t), ..
                }) => LinkView::Up { since_ms: *t },
                Some(_) => LinkView::Pending,
                None if backoff.get(id).is_some_and(|b| b.retry_at > instant) => LinkView::Pending,
                None => LinkView::Missing,
            };
            let offset = node.feed.offset();
            node.cluster.set_my_repl_offset(offset);
            let plan = gossip::cron(&mut node.cluster, now, &view);
            // Links and backoffs of nodes that left the table (forgotten,
            // renamed after a handshake, timed out) go too.
            let gone = |id: &&NodeId| node.cluster.node(id).is_none();
            let stale: Vec<NodeId> = links.keys().filter(gone).cloned().collect();
            let forgotten: Vec<NodeId> = backoff.keys().filter(gone).cloned().collect();
            (plan, stale, forgotten)
        };
        for id in forgotten {
            self.backoff.remove(&id);
        }
        let mut closed = stale;
        closed.extend(plan.reset_links);
        self.close_links(&closed);
        for (id, ip, cport, first) in plan.connect {
            self.connect(id, ip, cport, first.encode());
        }
        for (id, msg) in plan.send {
            self.send_to(&id, msg.encode());
        }
    }

    /// A PUBLISH from a command: to every node, or to a shard.
    fn outbound(&mut self, out: Outbound) {
        let Outbound::Publish {
            channel,
            message,
            shard,
        } = out;
        let (msg, targets) = {
            let mut node = self.shared.lock();
            gossip::publish_message(&mut node.cluster, channel, message, shard)
        };
        let frame = msg.encode();
        for id in targets {
            self.send_to(&id, frame.clone());
        }
    }

    fn ctl(&mut self, ctl: Ctl) {
        match ctl {
            Ctl::Up { node, generation } => {
                let Some(link) = self
                    .links
                    .get_mut(&node)
                    .filter(|l| l.generation == generation)
                else {
                    return;
                };
                link.up_since = Some(unix_ms());
                self.backoff.remove(&node);
                let mut state = self.shared.lock();
                if let Some(n) = state.cluster.node_mut(&node) {
                    n.connected = true;
                    n.meet = false;
                }
            }
            Ctl::Down { node, generation } => {
                let Some(link) = self.links.get(&node).filter(|l| l.generation == generation)
                else {
                    return;
                };
                let was_up = link.up_since.is_some();
                self.links.remove(&node);
                let failures = if was_up {
                    0
                } else {
                    self.backoff.get(&node).map_or(0, |b| b.failures) + 1
                };
                let wait = BACKOFF_MIN
                    .saturating_mul(1 << failures.saturating_sub(1).min(4))
                    .min(BACKOFF_MAX);
                self.backoff.insert(
                    node.clone(),
                    Backoff {
                        failures,
                        retry_at: Instant::now() + if was_up { Duration::ZERO } else { wait },
                        since_ms: unix_ms(),
                    },
                );
                let mut state = self.shared.lock();
                if let Some(n) = state.cluster.node_mut(&node) {
                    n.connected = false;
                }
            }
            Ctl::Send(list) => {
                for (id, msg) in list {
                    self.send_to(&id, msg.encode());
                }
            }
            Ctl::Reset(ids) => self.close_links(&ids),
        }
    }

    /// Opens a link to `ip:cport` for `node`, `first` queued on it.
    fn connect(&mut self, node: NodeId, ip: String, cport: u16, first: Bytes) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let _ = tx.try_send(first);
        let cancel = self.shared.shutdown.child_token();
        let connect_timeout = Duration::from_millis(self.shared.config.node_timeout_ms.max(1000));
        tokio::spawn(outbound_link(OutboundLink {
            shared: Arc::clone(&self.shared),
            node: node.clone(),
            generation,
            ip,
            cport,
            tx: tx.clone(),
            rx,
            cancel: cancel.clone(),
            ctl: self.ctl_tx.clone(),
            connect_timeout,
        }));
        self.links.insert(
            node,
            OutLink {
                generation,
                tx,
                up_since: None,
                cancel,
            },
        );
    }

    /// Queues `frame` on our link to `node`; a link whose queue is full is
    /// closed (and reopened on the next tick).
    fn send_to(&mut self, node: &NodeId, frame: Bytes) {
        let Some(link) = self.links.get(node) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = link.tx.try_send(frame) {
            tracing::warn!(%node, "cluster link send queue full: closing it");
            self.shared.lock().cluster.stats.links_buffer_limit_exceeded += 1;
            self.close_links(std::slice::from_ref(node));
        }
    }

    fn close_links(&mut self, ids: &[NodeId]) {
        let mut closed = Vec::new();
        for id in ids {
            if let Some(link) = self.links.remove(id) {
                link.cancel.cancel();
                closed.push(id);
            }
        }
        if !closed.is_empty() {
            let mut state = self.shared.lock();
            for id in closed {
                if let Some(n) = state.cluster.node_mut(id) {
                    n.connected = false;
                }
            }
        }
    }
}

/// Accepts links from peers.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, ctl: mpsc::UnboundedSender<Ctl>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let (tx, rx) = mpsc::channel(LINK_QUEUE);
                let cancel = shared.shutdown.child_token();
                tokio::spawn(serve_link(
                    Arc::clone(&shared),
                    stream,
                    None,
                    tx,
                    rx,
                    cancel,
                    ctl.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster bus accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Everything an outbound link task needs.
struct OutboundLink {
    shared: Arc<Shared>,
    node: NodeId,
    generation: u64,
    ip: String,
    cport: u16,
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
    ctl: mpsc::UnboundedSender<Ctl>,
    connect_timeout: Duration,
}

async fn outbound_link(l: OutboundLink) {
    let connect = tokio::time::timeout(
        l.connect_timeout,
        TcpStream::connect((l.ip.as_str(), l.cport)),
    );
    let stream = tokio::select! {
        r = connect => match r {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(node = %l.node, addr = %format!("{}:{}", l.ip, l.cport), error = %e, "cluster bus connect failed");
                None
            }
            Err(_) => None,
        },
        () = l.cancel.cancelled() => None,
    };
    if let Some(stream) = stream {
        let _ = stream.set_nodelay(true);
        let _ = l.ctl.send(Ctl::Up {
            node: l.node.clone(),
            generation: l.generation,
        });
        serve_link(
            l.shared,
            stream,
            Some(l.node.clone()),
            l.tx,
            l.rx,
            l.cancel,
            l.ctl.clone(),
        )
        .await;
    }
    let _ = l.ctl.send(Ctl::Down {
        node: l.node,
        generation: l.generation,
    });
}

/// Runs one connected link: a writer draining `rx`, and a reader handing
/// each message to the cluster logic. Returns when either side stops.
async fn serve_link(
    shared: Arc<Shared>,
    stream: TcpStream,
    to: Option<NodeId>,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
    ctl: mpsc::UnboundedSender<Ctl>,
) {
    let peer_ip = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let local_ip = stream
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let (mut reader, mut writer) = stream.into_split();
    let writer_cancel = cancel.clone();
    let writer_task = tokio::spawn(async move {
        let mut batch = BytesMut::new();
        loop {
            let frame = tokio::select! {
                frame = rx.recv() => frame,
                () = writer_cancel.cancelled() => None,
            };
            let Some(frame) = frame else { break };
            batch.extend_from_slice(&frame);
            while batch.len() < READ_CHUNK {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if writer.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
        }
        writer_cancel.cancel();
    });

    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, &mut buf) => frame,
            () = cancel.cancelled() => break,
        };
        let msg = match frame {
            Ok(Some(body)) => match Message::decode(body) {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::warn!(peer = %peer_ip, error = %e, "closing cluster link");
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(peer = %peer_ip, error = %e, "cluster link closed");
                break;
            }
        };
        let info = LinkInfo {
            to: to.as_deref(),
            peer_ip: &peer_ip,
            local_ip: &local_ip,
        };
        let fx = {
            let mut node = shared.lock();
            gossip::process(&mut node, msg, &info, unix_ms())
        };
        if let Some(reply) = fx.reply {
            if tx.try_send(reply.encode()).is_err() {
                break;
            }
        }
        if !fx.send.is_empty() {
            let _ = ctl.send(Ctl::Send(fx.send));
        }
        if !fx.reset_links.is_empty() {
            let _ = ctl.send(Ctl::Reset(fx.reset_links));
        }
        if fx.close_link {
            break;
        }
    }
    cancel.cancel();
    let _ = writer_task.await;
}

/// Reads one frame body: `Ok(None)` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<Option<Bytes>> {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("frame of {len} bytes is too large"),
                ));
            }
            if buf.len() >= 4 + len {
                buf.advance(4);
                return Ok(Some(buf.split_to(len).freeze()));
            }
            buf.reserve((4 + len - buf.len()).min(1 << 20));
        } else {
            buf.reserve(READ_CHUNK);
        }
        if reader.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_split_and_bounded() {
        let mut data = Vec::new();
        for body in [&b"abc"[..], b"", b"hello"] {
            data.extend_from_slice(&(body.len() as u32).to_be_bytes());
            data.extend_from_slice(body);
        }
        let mut reader = &data[..];
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        while let Some(frame) = read_frame(&mut reader, &mut buf).await.unwrap() {
            got.push(frame);
        }
        assert_eq!(got, [&b"abc"[..], b"", b"hello"]);

        let mut reader = &[0u8, 0, 1][..];
        assert!(read_frame(&mut reader, &mut BytesMut::new()).await.is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        let mut reader = &huge[..];
        assert!(read_frame(&mut reader, &mut BytesMut::new()).await.is_err());
    }
}
