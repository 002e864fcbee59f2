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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::resp::reply::reply_len;

use super::workers::{self, Workers};

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
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

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
}

/// One multiplexed connection to a node, kept alive by its own task.
pub struct Link {
    tx: mpsc::UnboundedSender<Pending>,
    shared: Arc<LinkShared>,
}

struct LinkShared {
    addr: Arc<str>,
    ready: AtomicBool,
    /// Requests written and replies read on the current connection; the
    /// stall check compares them (touched only by the link's own task).
    written: AtomicU64,
    answered: AtomicU64,
}

impl Link {
    fn spawn(addr: Arc<str>, settings: LinkSettings, workers: &Workers, worker: usize) -> Link {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(LinkShared {
            addr,
            ready: AtomicBool::new(false),
            written: AtomicU64::new(0),
            answered: AtomicU64::new(0),
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
}

impl Node {
    /// Creates the node and starts connecting `links_per_worker` links on
    /// every worker.
    pub fn new(
        addr: &str,
        links_per_worker: usize,
        settings: &LinkSettings,
        workers: &Workers,
    ) -> Arc<Node> {
        let addr: Arc<str> = Arc::from(addr);
        let links = (0..workers.len().max(1))
            .map(|w| {
                (0..links_per_worker.max(1))
                    .map(|_| Link::spawn(addr.clone(), settings.clone(), workers, w))
                    .collect()
            })
            .collect();
        Arc::new(Node {
            links,
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
                tracing::debug!(addr = %shared.addr, "backend link ready");
                let closed = serve(&shared, &settings, reader, writer, buf, &mut rx).await;
                shared.ready.store(false, Ordering::Release);
                if closed {
                    return;
                }
                tracing::debug!(addr = %shared.addr, "backend link lost");
            }
            Err(err) => {
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

/// Connects and checks the node answers a PING before declaring it ready,
/// so a frozen process whose kernel still accepts connections is not used.
async fn connect(
    addr: &str,
    timeout: Duration,
) -> std::io::Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut)> {
    let attempt = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (mut reader, mut writer) = stream.into_split();
        writer.write_all(PING).await?;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            if let Some(len) = reply_len(&buf).map_err(std::io::Error::other)? {
                let reply = buf.split_to(len);
                if reply.first() != Some(&b'+') {
                    // -LOADING and friends: not ready yet.
                    return Err(std::io::Error::other(format!(
                        "PING answered {}",
                        String::from_utf8_lossy(&reply).trim_end()
                    )));
                }
                return Ok((reader, writer, buf));
            }
            if reader.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Serves one connection until it fails or stalls. Returns true when the
/// node was dropped and the link should end.
///
/// A stall is a connection with requests outstanding and no reply for the
/// request timeout: the node may be frozen (SIGSTOP, a hung host) with its
/// socket still open. Rather than time out every request (a timer each), the
/// link checks its own progress a few times per timeout and drops the
/// connection; every request in flight then fails as "may have run".
async fn serve(
    shared: &LinkShared,
    settings: &LinkSettings,
    reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    buf: BytesMut,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
) -> bool {
    shared.written.store(0, Ordering::Relaxed);
    shared.answered.store(0, Ordering::Relaxed);
    let (waiters_tx, waiters_rx) = mpsc::unbounded_channel::<Waiter>();
    let read_task = read_replies(shared, reader, buf, waiters_rx);
    tokio::pin!(read_task);
    let period =
        (settings.request_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut check = tokio::time::interval(period);
    let mut last_answered = 0;
    let mut last_progress = Instant::now();
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut batch = Vec::with_capacity(64);
    let closed = loop {
        tokio::select! {
            biased;
            _ = &mut read_task => break false,
            n = rx.recv_many(&mut batch, 512) => {
                if n == 0 {
                    break true;
                }
                // Register the waiters before the bytes can reach the node,
                // so the reader always finds the waiter for a reply.
                let mut count = 0;
                for p in batch.drain(..) {
                    if p.asking {
                        out.extend_from_slice(ASKING);
                        let _ = waiters_tx.send(Waiter::Asking);
                        count += 1;
                    }
                    out.extend_from_slice(&p.request);
                    let _ = waiters_tx.send(Waiter::Client(p.reply));
                    count += 1;
                }
                shared.written.fetch_add(count, Ordering::Relaxed);
                let written = tokio::time::timeout(settings.request_timeout, writer.write_all(&out)).await;
                out.clear();
                if !matches!(written, Ok(Ok(()))) {
                    break false;
                }
            }
            _ = check.tick() => {
                let answered = shared.answered.load(Ordering::Relaxed);
                if answered != last_answered || answered >= shared.written.load(Ordering::Relaxed) {
                    last_answered = answered;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() >= settings.request_timeout {
                    tracing::warn!(addr = %shared.addr, "backend stopped answering; reconnecting");
                    break false;
                }
            }
        }
    };
    // Dropping the reader drops every waiter still registered: those requests
    // may have been executed. Requests still queued were never written; the
    // caller refuses them with Sent::No while the link is down.
    drop(waiters_tx);
    closed
}

/// Reads replies and hands each to the oldest waiter, until the connection
/// fails. Waiters left behind are dropped with it, which their requests see
/// as "closed, may have been executed".
async fn read_replies(
    shared: &LinkShared,
    mut reader: OwnedReadHalf,
    mut buf: BytesMut,
    mut waiters: mpsc::UnboundedReceiver<Waiter>,
) {
    loop {
        loop {
            match reply_len(&buf) {
                Ok(Some(len)) => {
                    let reply = buf.split_to(len).freeze();
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                    match waiters.try_recv() {
                        Ok(Waiter::Client(tx)) => {
                            let _ = tx.send(Ok(reply));
                        }
                        Ok(Waiter::Asking) => {}
                        // A reply nobody asked for: the stream is out of step.
                        Err(_) => return,
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(%err, "backend sent an invalid reply; closing the link");
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
