//! Serving clients: accept connections, and for each one read every
//! complete request in the buffer, run them all under one lock, and write
//! the replies in one go. Blocking and asynchronous commands pause the
//! client's pipeline (never the node) until their reply is ready.
//!
//! Besides its socket, a connection listens to its [`ClientHandle`]:
//! pub/sub messages pushed to it are written as they come, and a kill
//! (CLIENT KILL, the pub/sub output limit) closes it. Pushed messages and
//! replies keep the order in which the node produced them: pushes queued
//! before a batch of commands takes the lock are written before its
//! replies. Writes reach the append-only file before their replies go
//! out; with `appendfsync always`, the replies also wait for the fsync.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::aof;
use super::client::{ClientHandle, ClientState, ReplyMode, Unblock};
use super::cmd::{self, Outcome};
use super::db::unix_ms;
use super::replication;
use super::state::Shared;
use crate::resp::{DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN, Request, RequestDecoder};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Most clients served at once (Redis's `maxclients` default); one more is
/// refused with Redis's error.
pub const MAX_CLIENTS: usize = 10_000;

/// Input read ahead while the client's replies are being written or its
/// command waits (Redis's `client-query-buffer-limit`); past it, reading
/// pauses until the pipeline catches up.
pub const MAX_BUFFERED_INPUT: usize = 1024 * 1024 * 1024;

/// Output buffer capacity kept between writes; a larger one is freed.
const MAX_IDLE_OUTPUT: usize = 1024 * 1024;

/// How often INFO's instantaneous rates are sampled (Redis: every 100 ms,
/// averaged over the last 16 samples).
const SAMPLE_PERIOD: Duration = Duration::from_millis(100);
const SAMPLES: usize = 16;

/// Accepts clients until shutdown.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    tokio::spawn(sample_loop(Arc::clone(&shared)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
                    let mut conn = match Connection::open(stream, addr, id, Arc::clone(&shared)) {
                        Ok(conn) => conn,
                        Err(mut stream) => {
                            let _ = stream
                                .write_all(b"-ERR max number of clients reached\r\n")
                                .await;
                            return;
                        }
                    };
                    if let Err(e) = conn.serve().await {
                        tracing::debug!(client = id, error = %e, "client connection ended");
                    }
                    conn.finish();
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One sampled rate: the average over the last [`SAMPLES`] periods.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    samples: [f64; SAMPLES],
    next: usize,
}

impl Rate {
    fn sample(&mut self, now: Instant, value: u64) {
        if let Some((at, before)) = self.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let rate = value.saturating_sub(before) as f64 / secs;
                if let Some(slot) = self.samples.get_mut(self.next) {
                    *slot = rate;
                }
                self.next = (self.next + 1) % SAMPLES;
            }
        }
        self.last = Some((now, value));
    }

    fn per_second(&self) -> f64 {
        self.samples.iter().sum::<f64>() / SAMPLES as f64
    }
}

/// INFO's `instantaneous_ops_per_sec`, `instantaneous_input_kbps` and
/// `instantaneous_output_kbps`, computed as Redis does.
#[derive(Debug, Default)]
pub struct Instantaneous {
    ops: Rate,
    input: Rate,
    output: Rate,
}

impl Instantaneous {
    pub fn ops_per_sec(&self) -> u64 {
        self.ops.per_second().round() as u64
    }

    pub fn input_kbps(&self) -> f64 {
        self.input.per_second() / 1024.0
    }

    pub fn output_kbps(&self) -> f64 {
        self.output.per_second() / 1024.0
    }
}

/// Samples the counters behind the instantaneous rates.
async fn sample_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let mut node = shared.lock();
        let now = Instant::now();
        let stats = &mut node.stats;
        let (ops, input, output) = (
            stats.total_commands_processed,
            stats.net_input_bytes,
            stats.net_output_bytes,
        );
        stats.instantaneous.ops.sample(now, ops);
        stats.instantaneous.input.sample(now, input);
        stats.instantaneous.output.sample(now, output);
    }
}

/// Why a blocked client stopped waiting.
enum Wake {
    Written,
    Timeout,
    /// CLIENT UNBLOCK (or a stale wake-up for an earlier block).
    Unblocked,
    Gone,
}

/// What a blocked command answers when CLIENT UNBLOCK ends it with ERROR.
const UNBLOCKED: &[u8] = b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";

/// One client connection.
struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    client: ClientState,
    decoder: RequestDecoder,
    input: BytesMut,
    output: BytesMut,
    /// Decoded requests not yet run (a blocked command holds the rest).
    pending: VecDeque<Request>,
    /// Woken when a key this client blocks on is written.
    wake: Arc<Notify>,
    /// The deadline of the block the front request was woken from: when
    /// it blocks again, it keeps that deadline, so a timeout counts from
    /// the first block however often the client is woken.
    retry_deadline: Option<Option<Instant>>,
    closing: bool,
    /// Bytes read and written since they were last added to the stats.
    net_in: u64,
    net_out: u64,
    /// `appendfsync always`: the replies in `output` wait for their writes
    /// to be on disk.
    aof_wait: Option<aof::SyncWait>,
    /// Replicas online: the replies in `output` wait for their writes to
    /// be handed to the replicas' sockets.
    handoff_wait: Option<replication::HandoffWait>,
}

/// Reads (and keeps) what the client sends while its command waits;
/// resolves when the client hangs up.
async fn until_hangup(stream: &mut TcpStream, input: &mut BytesMut, net_in: &mut u64) {
    loop {
        if input.len() >= MAX_BUFFERED_INPUT {
            std::future::pending::<()>().await;
        }
        input.reserve(READ_CHUNK);
        match stream.read_buf(input).await {
            Ok(0) | Err(_) => return,
            Ok(n) => *net_in += n as u64,
        }
    }
}

#[cfg(unix)]
fn raw_fd(stream: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    i64::from(stream.as_raw_fd())
}

#[cfg(not(unix))]
fn raw_fd(_stream: &TcpStream) -> i64 {
    -1
}

impl Connection {
    /// Registers a new client, or gives the stream back when the node
    /// already serves [`MAX_CLIENTS`].
    fn open(
        stream: TcpStream,
        addr: SocketAddr,
        id: u64,
        shared: Arc<Shared>,
    ) -> Result<Self, TcpStream> {
        let handle = Arc::new(ClientHandle::new(
            id,
            Some(addr),
            stream.local_addr().ok(),
            raw_fd(&stream),
        ));
        {
            let mut node = shared.lock();
            if node.clients.len() >= MAX_CLIENTS {
                node.stats.rejected_connections += 1;
                return Err(stream);
            }
            node.stats.total_connections_received += 1;
            node.stats.connected_clients += 1;
            node.clients.register(Arc::clone(&handle));
        }
        Ok(Connection {
            stream,
            shared,
            client: ClientState::with_handle(handle),
            decoder: RequestDecoder::new(DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN),
            input: BytesMut::with_capacity(READ_CHUNK),
            output: BytesMut::with_capacity(READ_CHUNK),
            pending: VecDeque::new(),
            wake: Arc::new(Notify::new()),
            retry_deadline: None,
            closing: false,
            net_in: 0,
            net_out: 0,
            aof_wait: None,
            handoff_wait: None,
        })
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        let handle = Arc::clone(&self.client.handle);
        let mut fresh_input = false;
        loop {
            if !fresh_input {
                self.input.reserve(READ_CHUNK);
                tokio::select! {
                    n = self.stream.read_buf(&mut self.input) => {
                        let n = n?;
                        if n == 0 {
                            return Ok(());
                        }
                        self.net_in += n as u64;
                    }
                    () = handle.pushed() => handle.take_pushes(&mut self.output),
                    () = handle.killed() => return Ok(()),
                    () = self.shared.shutdown.cancelled() => return Ok(()),
                }
            }
            self.decode();
            self.run_pending().await;
            fresh_input = self.flush().await?;
            if self.closing {
                return Ok(());
            }
        }
    }

    /// Moves every complete request from the input into `pending`. A
    /// protocol error answers with Redis's text and closes the connection.
    fn decode(&mut self) {
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(req)) => self.pending.push_back(req),
                Ok(None) => return,
                Err(e) => {
                    self.pending.clear();
                    self.output.extend_from_slice(e.to_reply().as_bytes());
                    self.closing = true;
                    return;
                }
            }
        }
    }

    /// Runs the pending requests in order: as many as possible under one
    /// lock, pausing for a blocked or asynchronous command.
    async fn run_pending(&mut self) {
        while !self.pending.is_empty() && !self.closing {
            let paused = self.run_locked();
            match paused {
                None => {}
                Some((
                    req,
                    Outcome::Block {
                        keys,
                        deadline,
                        timeout_reply,
                    },
                )) => {
                    self.block(req, keys, deadline, timeout_reply).await;
                    // Requests the client sent while it was blocked.
                    self.decode();
                }
                Some((_, Outcome::Async(future))) => {
                    // The replies so far go out first: the client may be
                    // waiting for them while this one takes time.
                    if self.flush().await.is_err() {
                        self.closing = true;
                        return;
                    }
                    let handle = Arc::clone(&self.client.handle);
                    tokio::select! {
                        reply = future => self.late_reply(&reply),
                        () = handle.killed() => self.closing = true,
                        () = self.shared.shutdown.cancelled() => self.closing = true,
                        () = until_hangup(&mut self.stream, &mut self.input, &mut self.net_in) => {
                            self.closing = true;
                        }
                    }
                    // Requests the client sent while it waited.
                    self.decode();
                }
                Some((req, Outcome::Postponed { until })) => {
                    if self.flush().await.is_err() {
                        self.closing = true;
                        return;
                    }
                    let handle = Arc::clone(&self.client.handle);
                    tokio::select! {
                        () = tokio::time::sleep_until(until.into()) => self.pending.push_front(req),
                        () = handle.killed() => self.closing = true,
                        () = self.shared.shutdown.cancelled() => self.closing = true,
                        () = until_hangup(&mut self.stream, &mut self.input, &mut self.net_in) => {
                            self.closing = true;
                        }
                    }
                    self.decode();
                }
                Some((_, Outcome::ServeReplica(start))) => {
                    // The replies so far (the handshake's) go out first;
                    // the connection is a replica's link from now on.
                    if self.flush().await.is_ok() {
                        self.pending.clear();
                        let handle = Arc::clone(&self.client.handle);
                        replication::master::serve(
                            &mut self.stream,
                            &mut self.input,
                            &self.shared,
                            &handle,
                            *start,
                        )
                        .await;
                    }
                    self.closing = true;
                }
                Some((_, Outcome::Close)) => self.closing = true,
                Some((_, Outcome::Done)) => {}
            }
        }
    }

    /// Runs pending requests under one lock until they are done or one
    /// pauses; returns the pausing request and its outcome. A blocking
    /// request is registered for its keys before the lock is released, so
    /// a write right after it cannot be missed.
    fn run_locked(&mut self) -> Option<(Request, Outcome)> {
        let shared = Arc::clone(&self.shared);
        let mut node = shared.lock();
        // Messages published before this lock was taken come before these
        // replies, as they would in Redis's single output buffer.
        self.client.handle.take_pushes(&mut self.output);
        if self.client.subscriptions > 0 {
            // The node may have unsubscribed this client (a slot left).
            self.client.subscriptions = node.pubsub.total_of(self.client.id);
        }
        node.stats.net_input_bytes += std::mem::take(&mut self.net_in);
        node.stats.net_output_bytes += std::mem::take(&mut self.net_out);
        let now = unix_ms();
        let offset_before = node.feed.offset();
        let mut retry_deadline = self.retry_deadline.take();
        let mut paused = None;
        while let Some(req) = self.pending.pop_front() {
            node.stats.total_commands_processed += 1;
            // Only the first request can be a woken one.
            let retry_deadline = retry_deadline.take();
            self.client.block_retry = retry_deadline.is_some();
            let mark = self.output.len();
            let outcome = cmd::execute(
                &mut node,
                &mut self.client,
                &shared,
                &mut self.output,
                &req,
                now,
            );
            self.client.block_retry = false;
            match outcome {
                Outcome::Done => self.apply_reply_mode(mark),
                Outcome::Close => {
                    self.apply_reply_mode(mark);
                    paused = Some((req, Outcome::Close));
                    break;
                }
                Outcome::Block {
                    keys,
                    deadline,
                    timeout_reply,
                } => {
                    // Registered under the lock that saw the keys empty, so
                    // a push right after cannot be missed.
                    for key in &keys {
                        node.events.block_on(key.clone(), &self.wake);
                    }
                    node.stats.blocked_clients += 1;
                    self.client.handle.set_blocked(true);
                    let deadline = retry_deadline.unwrap_or(deadline);
                    paused = Some((
                        req,
                        Outcome::Block {
                            keys,
                            deadline,
                            timeout_reply,
                        },
                    ));
                    break;
                }
                Outcome::Postponed { until } => {
                    // It did not run: it counts when it does.
                    node.stats.total_commands_processed -= 1;
                    paused = Some((req, Outcome::Postponed { until }));
                    break;
                }
                other => {
                    paused = Some((req, other));
                    break;
                }
            }
        }
        self.client.publish_snapshot(self.input.len());
        // Written before the replies go out, as Redis does.
        aof::flush(&mut node);
        if let Some(wait) = aof::sync_wait(&node, offset_before) {
            self.aof_wait = Some(wait);
        }
        if node.feed.offset() != offset_before {
            self.handoff_wait = node.repl.handoff_wait(node.feed.offset());
        }
        paused
    }

    /// CLIENT REPLY OFF/SKIP: drops the reply written since `mark`.
    fn apply_reply_mode(&mut self, mark: usize) {
        match self.client.reply_mode {
            ReplyMode::On => {}
            ReplyMode::Off => self.output.truncate(mark),
            // Set by CLIENT REPLY SKIP itself: the next command's reply goes.
            ReplyMode::SkipNext => self.client.reply_mode = ReplyMode::Skip,
            ReplyMode::Skip => {
                self.output.truncate(mark);
                self.client.reply_mode = ReplyMode::On;
            }
        }
    }

    /// The reply of a command that paused (a blocking timeout, an async
    /// result).
    fn late_reply(&mut self, reply: &[u8]) {
        let mark = self.output.len();
        self.output.extend_from_slice(reply);
        self.apply_reply_mode(mark);
    }

    /// Waits until one of `keys` (registered by `run_locked`) is written
    /// (then runs `req` again, keeping `deadline`) or the deadline passes
    /// (then answers `timeout_reply`).
    async fn block(
        &mut self,
        req: Request,
        keys: Vec<Bytes>,
        deadline: Option<Instant>,
        timeout_reply: &'static [u8],
    ) {
        let handle = Arc::clone(&self.client.handle);
        let woken = if self.flush().await.is_err() {
            Wake::Gone
        } else {
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.wake.notified() => Wake::Written,
                () = timeout => Wake::Timeout,
                () = handle.unblock_requested() => Wake::Unblocked,
                () = handle.killed() => Wake::Gone,
                () = self.shared.shutdown.cancelled() => Wake::Gone,
                // A blocked client that hangs up must not take an element
                // that is pushed later; bytes it pipelines wait in `input`.
                () = until_hangup(&mut self.stream, &mut self.input, &mut self.net_in) => Wake::Gone,
            }
        };
        // CLIENT UNBLOCK saw this client blocked under the node lock, so its
        // request is taken under the same lock: it wins over a write or the
        // timeout that woke the client meanwhile (nothing was served yet).
        let unblock = {
            let mut node = self.shared.lock();
            for key in &keys {
                node.events.unblock(key, &self.wake);
            }
            node.stats.blocked_clients = node.stats.blocked_clients.saturating_sub(1);
            handle.set_blocked(false);
            handle.take_unblock()
        };
        match (woken, unblock) {
            (Wake::Gone, _) => {
                self.pending.clear();
                self.closing = true;
            }
            (_, Some(Unblock::Timeout)) | (Wake::Timeout, None) => self.late_reply(timeout_reply),
            (_, Some(Unblock::Error)) => self.late_reply(UNBLOCKED),
            // Run it again first: it blocks again if another client won (or
            // the wake-up was left over from an earlier unblock).
            (Wake::Written | Wake::Unblocked, None) => {
                self.pending.push_front(req);
                self.retry_deadline = Some(deadline);
            }
        }
    }

    /// Writes the output. Meanwhile it keeps reading what the client sends,
    /// so a client that writes a long pipeline before it reads any reply
    /// cannot deadlock against us. Returns true if input arrived.
    async fn flush(&mut self) -> std::io::Result<bool> {
        if let Some(wait) = self.aof_wait.take() {
            tokio::select! {
                () = wait.wait() => {}
                () = self.shared.shutdown.cancelled() => {}
            }
        }
        if let Some(wait) = self.handoff_wait.take() {
            tokio::select! {
                () = wait.wait() => {}
                () = self.shared.shutdown.cancelled() => {}
            }
        }
        if self.output.is_empty() {
            return Ok(false);
        }
        let handle = Arc::clone(&self.client.handle);
        let mut fresh = false;
        let mut reading = true;
        let mut written = 0;
        let (mut rd, mut wr) = self.stream.split();
        while written < self.output.len() {
            let read_more = reading && self.input.len() < MAX_BUFFERED_INPUT;
            if read_more {
                self.input.reserve(READ_CHUNK);
            }
            let rest = self.output.get(written..).unwrap_or_default();
            tokio::select! {
                n = wr.write(rest) => {
                    let n = n?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    written += n;
                }
                n = rd.read_buf(&mut self.input), if read_more => match n {
                    // Half-closed: the replies may still be read.
                    Ok(0) | Err(_) => reading = false,
                    Ok(n) => {
                        fresh = true;
                        self.net_in += n as u64;
                    }
                },
                () = handle.killed() => {
                    self.output.clear();
                    self.closing = true;
                    return Ok(false);
                }
                () = self.shared.shutdown.cancelled() => {
                    self.output.clear();
                    self.closing = true;
                    return Ok(false);
                }
            }
        }
        self.net_out += written as u64;
        self.output.clear();
        if self.output.capacity() > MAX_IDLE_OUTPUT {
            // A burst (a big reply, a backlog of messages) does not keep
            // its memory for the life of the connection.
            self.output = BytesMut::with_capacity(READ_CHUNK);
        }
        handle.pushes_written();
        Ok(fresh)
    }

    /// Cleans up after the connection: forgets the client's watches and
    /// subscriptions, and takes it off the client list.
    fn finish(&mut self) {
        let mut node = self.shared.lock();
        node.stats.connected_clients = node.stats.connected_clients.saturating_sub(1);
        node.stats.net_input_bytes += std::mem::take(&mut self.net_in);
        node.stats.net_output_bytes += std::mem::take(&mut self.net_out);
        for watched in self.client.watched.drain(..) {
            node.events.unwatch(&watched.key, &self.client.watch_dirty);
        }
        node.pubsub.remove_client(self.client.id);
        node.clients.unregister(self.client.id);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Best effort for replies written just before a close (QUIT's OK,
        // a protocol error).
        // (Never replies still waiting for their writes to reach the disk
        // or the replicas.)
        if !self.output.is_empty()
            && !self.client.handle.is_killed()
            && self.aof_wait.is_none()
            && self.handoff_wait.is_none()
        {
            let _ = self.stream.try_write(&self.output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_average_the_last_samples() {
        let mut rate = Rate::default();
        let t0 = Instant::now();
        rate.sample(t0, 0);
        assert_eq!(rate.per_second(), 0.0);
        for i in 1..=SAMPLES as u64 {
            rate.sample(t0 + Duration::from_millis(100 * i), 100 * i);
        }
        assert!((rate.per_second() - 1000.0).abs() < 1e-6);
        // A reset counter reads as no traffic, not as a huge rate.
        rate.sample(t0 + Duration::from_millis(100 * (SAMPLES as u64 + 1)), 0);
        assert!(rate.per_second() < 1000.0);
    }
}
