//! Backend links: multiplexed, pipelined connections to one cluster node.
//!
//! A [`Node`] owns a few [`Link`]s. Each link is one TCP connection shared by
//! every client session: requests are queued on a channel, written in
//! batches (one syscall for everything that is waiting), and replies are
//! matched to requests in FIFO order, as RESP guarantees. A task per link owns
//! the connection and reconnects with backoff.
//!
//! A link only accepts requests while it is *ready*: connected, and its
//! opening PING answered. Otherwise a request fails at once with
//! [`Sent::No`], so the dispatcher can wait for the topology instead of
//! queueing behind a dead (or frozen) node. Every failure says whether the
//! request may have reached the node ([`Sent`]), which decides whether it may
//! be retried.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::resp::reply::reply_len;

use super::dedicated::DedicatedPool;
use super::multikey::parse_integer;
use super::workers::{self, Workers};
use crate::metrics::{BackendErrorKind, NodeMetrics};

/// Whether a failed request may have reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Never written: safe to send again, anywhere.
    No,
    /// Written (or partly written): the node may have executed it.
    Maybe,
}

/// What went wrong on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not connected (connect refused, in backoff, or not yet ready).
    Down,
    /// The connection closed or failed with the request in flight.
    Closed,
    /// The node sent bytes that are not RESP.
    Protocol,
}

/// A request that failed on a backend link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub addr: Arc<str>,
    pub kind: FailureKind,
    pub sent: Sent,
}

impl BackendError {
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            FailureKind::Down => "down",
            FailureKind::Closed => "closed",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// The reply to one request: the raw reply bytes, or why there is none.
pub type ReplyResult = Result<Bytes, BackendError>;

/// `ASKING`, sent before a request redirected by `-ASK`.
pub(super) const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const CLIENT_ID: &[u8] = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";
/// Requests waiting to be written to one node beyond which the link stops
/// taking more from its queue until the node reads what it was sent.
const MAX_UNWRITTEN: usize = 4 * 1024 * 1024;

/// One request queued on a link.
struct Pending {
    request: Bytes,
    asking: bool,
    reply: oneshot::Sender<ReplyResult>,
}

/// Who waits for the next reply on the wire.
enum Waiter {
    /// The reply to an `ASKING` the link sent itself; dropped.
    Asking,
    Client(oneshot::Sender<ReplyResult>),
}

/// Settings shared by every link.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub connect_timeout: Duration,
    pub backoff_max: Duration,
    /// How long a link may go without any reply while requests are
    /// outstanding before it is declared stalled and reconnected.
    pub request_timeout: Duration,
    /// Dedicated connections (transactions, blocking commands,
    /// subscriptions) open at once per node.
    pub max_dedicated: usize,
}

/// One multiplexed connection to a node, kept alive by its own task.
pub struct Link {
    tx: mpsc::UnboundedSender<Pending>,
    shared: Arc<LinkShared>,
}

struct LinkShared {
    addr: Arc<str>,
    ready: AtomicBool,
    metrics: NodeMetrics,
}

impl Link {
    fn spawn(
        addr: Arc<str>,
        settings: LinkSettings,
        metrics: NodeMetrics,
        workers: &Workers,
        worker: usize,
    ) -> Link {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(LinkShared {
            addr,
            ready: AtomicBool::new(false),
            metrics,
        });
        workers.spawn_on(worker, run_link(shared.clone(), settings, rx));
        Link { tx, shared }
    }

    fn send(&self, request: Bytes, asking: bool) -> oneshot::Receiver<ReplyResult> {
        let (reply, rx) = oneshot::channel();
        if !self.shared.ready.load(Ordering::Acquire) {
            let _ = reply.send(Err(self.error(FailureKind::Down, Sent::No)));
            return rx;
        }
        if let Err(mpsc::error::SendError(p)) = self.tx.send(Pending {
            request,
            asking,
            reply,
        }) {
            let _ = p.reply.send(Err(self.error(FailureKind::Down, Sent::No)));
        }
        rx
    }

    fn error(&self, kind: FailureKind, sent: Sent) -> BackendError {
        BackendError {
            addr: self.shared.addr.clone(),
            kind,
            sent,
        }
    }
}

/// A cluster node as the proxy sees it: an address and its links, a set
/// per worker thread, so requests use a link that lives on their own thread.
pub struct Node {
    addr: Arc<str>,
    /// `links[worker]` are the links whose tasks run on that worker.
    links: Vec<Vec<Link>>,
    next: AtomicUsize,
    dedicated: Arc<DedicatedPool>,
}

impl Node {
    /// Creates the node and starts connecting `links_per_worker` links on
    /// every worker.
    pub fn new(
        addr: &str,
        links_per_worker: usize,
        settings: &LinkSettings,
        metrics: &NodeMetrics,
        workers: &Workers,
    ) -> Arc<Node> {
        let addr: Arc<str> = Arc::from(addr);
        let links = (0..workers.len().max(1))
            .map(|w| {
                (0..links_per_worker.max(1))
                    .map(|_| {
                        Link::spawn(addr.clone(), settings.clone(), metrics.clone(), workers, w)
                    })
                    .collect()
            })
            .collect();
        Arc::new(Node {
            links,
            dedicated: Arc::new(DedicatedPool::new(
                addr.clone(),
                settings.max_dedicated,
                settings.connect_timeout,
                settings.request_timeout,
            )),
            addr,
            next: AtomicUsize::new(0),
        })
    }

    fn all_links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().flatten()
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The node's pool of dedicated connections.
    pub fn dedicated(&self) -> &Arc<DedicatedPool> {
        &self.dedicated
    }

    /// True when at least one link is connected and answered its PING.
    pub fn is_ready(&self) -> bool {
        self.all_links()
            .any(|l| l.shared.ready.load(Ordering::Acquire))
    }

    /// Queues `request` (raw RESP) on one of the node's links, behind an
    /// `ASKING` when `asking` is set.
    pub fn send(&self, request: Bytes, asking: bool) -> oneshot::Receiver<ReplyResult> {
        // The links of this thread's worker; outside the workers (the
        // refresher), those of worker 0.
        let links = self
            .links
            .get(workers::current().unwrap_or(0))
            .or(self.links.first())
            .map_or(&[][..], Vec::as_slice);
        let n = links.len().max(1);
        let start = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        // Prefer a ready link; fall back to the chosen one, which fails fast.
        let link = (0..n)
            .filter_map(|i| links.get((start + i) % n))
            .find(|l| l.shared.ready.load(Ordering::Acquire))
            .or_else(|| links.get(start % n));
        match link {
            Some(link) => link.send(request, asking),
            None => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Err(BackendError {
                    addr: self.addr.clone(),
                    kind: FailureKind::Down,
                    sent: Sent::No,
                }));
                rx
            }
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("addr", &self.addr).finish()
    }
}

/// The link task: connect, serve until the connection dies, back off, repeat.
/// Ends when the node is dropped (every sender gone).
async fn run_link(
    shared: Arc<LinkShared>,
    settings: LinkSettings,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match connect(&shared.addr, settings.connect_timeout).await {
            Ok((reader, writer, buf)) => {
                backoff = Duration::from_millis(10);
                shared.ready.store(true, Ordering::Release);
                shared.metrics.connections.inc();
                tracing::debug!(addr = %shared.addr, "backend link ready");
                let closed = serve(&shared, &settings, reader, writer, buf, &mut rx).await;
                shared.ready.store(false, Ordering::Release);
                shared.metrics.connections.dec();
                if closed {
                    return;
                }
                tracing::debug!(addr = %shared.addr, "backend link lost");
            }
            Err(err) => {
                shared.metrics.record_error(BackendErrorKind::Connect);
                tracing::debug!(addr = %shared.addr, %err, "backend connect failed");
            }
        }
        // Refuse everything queued while we were not connected, then wait.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                pending = rx.recv() => match pending {
                    Some(p) => fail(&shared, p, FailureKind::Down, Sent::No),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(settings.backoff_max);
    }
}

fn fail(shared: &LinkShared, p: Pending, kind: FailureKind, sent: Sent) {
    let _ = p.reply.send(Err(BackendError {
        addr: shared.addr.clone(),
        kind,
        sent,
    }));
}

/// An open connection: its halves and the bytes read past the handshake.
pub(super) type Connection = (OwnedReadHalf, OwnedWriteHalf, BytesMut);

/// Connects and checks the node answers a PING before declaring it ready,
/// so a frozen process whose kernel still accepts connections is not used.
pub(super) async fn connect(addr: &str, timeout: Duration) -> std::io::Result<Connection> {
    handshake(addr, timeout, false)
        .await
        .map(|(reader, writer, input, _)| (reader, writer, input))
}

/// [`connect`], also asking the connection's `CLIENT ID` in the same write
/// (no extra round trip): what CLIENT UNBLOCK names it by on the node.
/// `None` when the node refuses CLIENT ID (a renamed command).
pub(super) async fn connect_identified(
    addr: &str,
    timeout: Duration,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut, Option<i64>)> {
    handshake(addr, timeout, true).await
}

async fn handshake(
    addr: &str,
    timeout: Duration,
    identify: bool,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut, Option<i64>)> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        if identify {
            writer.write_all(&[PING, CLIENT_ID].concat()).await?;
        } else {
            writer.write_all(PING).await?;
        }
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut replies = Vec::with_capacity(2);
        let wanted = if identify { 2 } else { 1 };
        loop {
            while let Some(len) = reply_len(&buf).map_err(std::io::Error::other)? {
                replies.push(buf.split_to(len).freeze());
                if replies.len() == wanted {
                    break;
                }
            }
            if replies.len() == wanted {
                break;
            }
            if reader.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        if replies[0].first() != Some(&b'+') {
            // -LOADING and friends: not ready yet.
            return Err(std::io::Error::other(format!(
                "PING answered {}",
                String::from_utf8_lossy(&replies[0]).trim_end()
            )));
        }
        let id = replies.get(1).and_then(|r| parse_integer(r));
        Ok((reader, writer, buf, id))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Serves one connection until it fails or stalls. Returns true when the
/// node was dropped and the link should end.
///
/// One loop owns the socket and the queue of waiters: it takes every queued
/// request at once (one write for the batch), reads every reply that has
/// arrived (one read for many), and hands each reply to the oldest waiter.
/// Writes are partial and non-blocking, so reading never waits behind a
/// write.
///
/// A stall is a connection with requests outstanding and no reply for the
/// request timeout: the node may be frozen (SIGSTOP, a hung host) with its
/// socket still open. Rather than time out every request (a timer each), the
/// link checks its own progress a few times per timeout and drops the
/// connection; every request in flight then fails as "may have run".
async fn serve(
    shared: &LinkShared,
    settings: &LinkSettings,
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    mut input: BytesMut,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
) -> bool {
    let period =
        (settings.request_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut check = tokio::time::interval(period);
    // Waiters in the order their requests were written: replies come back in
    // that order. Dropped with the connection, which their requests see as
    // "closed, may have been executed".
    let mut waiters: VecDeque<Waiter> = VecDeque::with_capacity(64);
    let mut answered_at_last_check = 0u64;
    let mut answered = 0u64;
    let mut last_progress = Instant::now();
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut batch = Vec::with_capacity(64);
    loop {
        tokio::select! {
            biased;
            read = reader.read_buf(&mut input) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return false;
                }
                loop {
                    match reply_len(&input) {
                        Ok(Some(len)) => {
                            let reply = input.split_to(len).freeze();
                            answered += 1;
                            match waiters.pop_front() {
                                Some(Waiter::Client(tx)) => {
                                    let _ = tx.send(Ok(reply));
                                }
                                Some(Waiter::Asking) => {}
                                // A reply nobody asked for: the stream is out of step.
                                None => return false,
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(addr = %shared.addr, %err, "backend sent an invalid reply; closing the link");
                            return false;
                        }
                    }
                }
                if input.capacity() - input.len() < 4096 {
                    input.reserve(16 * 1024);
                }
            }
            written = writer.write(&output), if !output.is_empty() => match written {
                Ok(n) if n > 0 => output.advance(n),
                _ => return false,
            },
            n = rx.recv_many(&mut batch, 512), if output.len() < MAX_UNWRITTEN => {
                if n == 0 {
                    return true;
                }
                shared.metrics.requests_total.inc_by(n as u64);
                // An idle link starts its stall clock with its first request.
                if waiters.is_empty() {
                    last_progress = Instant::now();
                }
                // Waiters are queued before their bytes can reach the node,
                // so every reply finds its waiter.
                for p in batch.drain(..) {
                    if p.asking {
                        output.extend_from_slice(ASKING);
                        waiters.push_back(Waiter::Asking);
                    }
                    output.extend_from_slice(&p.request);
                    waiters.push_back(Waiter::Client(p.reply));
                }
            }
            _ = check.tick() => {
                if answered != answered_at_last_check || waiters.is_empty() {
                    answered_at_last_check = answered;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() >= settings.request_timeout {
                    tracing::warn!(addr = %shared.addr, "backend stopped answering; reconnecting");
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
