//! Serving clients: accept connections, and for each one read every
//! complete request in the buffer, run them all under one lock, and write
//! the replies in one go. Blocking and asynchronous commands pause the
//! client's pipeline (never the node) until their reply is ready.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::client::ClientState;
use super::cmd::{self, Outcome};
use super::db::unix_ms;
use super::state::Shared;
use crate::resp::{DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN, Request, RequestDecoder};

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Accepts clients until shutdown.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
                    let mut conn = Connection::new(stream, addr, id, Arc::clone(&shared));
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

/// Why a blocked client stopped waiting.
enum Wake {
    Written,
    Timeout,
    Gone,
}

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
}

impl Connection {
    fn new(stream: TcpStream, addr: SocketAddr, id: u64, shared: Arc<Shared>) -> Self {
        {
            let mut node = shared.lock();
            node.stats.total_connections_received += 1;
            node.stats.connected_clients += 1;
        }
        Connection {
            stream,
            shared,
            client: ClientState::new(id, Some(addr)),
            decoder: RequestDecoder::new(DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_MULTIBULK_LEN),
            input: BytesMut::with_capacity(READ_CHUNK),
            output: BytesMut::with_capacity(READ_CHUNK),
            pending: VecDeque::new(),
            wake: Arc::new(Notify::new()),
            retry_deadline: None,
            closing: false,
        }
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        while !self.closing {
            self.input.reserve(READ_CHUNK);
            let n = tokio::select! {
                n = self.stream.read_buf(&mut self.input) => n?,
                () = self.shared.shutdown.cancelled() => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            self.decode();
            self.run_pending().await;
            if !self.output.is_empty() {
                self.stream.write_all(&self.output).await?;
                self.output.clear();
            }
        }
        Ok(())
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
                    let _ = self.flush().await;
                    let reply = future.await;
                    self.output.extend_from_slice(&reply);
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
        let now = unix_ms();
        let mut retry_deadline = self.retry_deadline.take();
        while let Some(req) = self.pending.pop_front() {
            node.stats.total_commands_processed += 1;
            // Only the first request can be a woken one.
            let retry_deadline = retry_deadline.take();
            self.client.block_retry = retry_deadline.is_some();
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
                Outcome::Done => {}
                Outcome::Block {
                    keys,
                    deadline,
                    timeout_reply,
                } => {
                    for key in &keys {
                        node.events.block_on(key.clone(), &self.wake);
                    }
                    let deadline = retry_deadline.unwrap_or(deadline);
                    return Some((
                        req,
                        Outcome::Block {
                            keys,
                            deadline,
                            timeout_reply,
                        },
                    ));
                }
                other => return Some((req, other)),
            }
        }
        None
    }

    /// Waits until one of `keys` (registered by `run_locked`) is written
    /// (then runs `req` again, keeping `deadline`) or the deadline passes
    /// (then answers `timeout_reply`).
    async fn block(
        &mut self,
        req: Request,
        keys: Vec<bytes::Bytes>,
        deadline: Option<Instant>,
        timeout_reply: &'static [u8],
    ) {
        let _ = self.flush().await;
        let woken = loop {
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.wake.notified() => break Wake::Written,
                () = timeout => break Wake::Timeout,
                () = self.shared.shutdown.cancelled() => break Wake::Gone,
                // A blocked client that hangs up must not take an element
                // that is pushed later; bytes it pipelines wait in `input`.
                n = self.stream.read_buf(&mut self.input) => match n {
                    Ok(0) | Err(_) => break Wake::Gone,
                    Ok(_) => continue,
                },
            }
        };
        {
            let mut node = self.shared.lock();
            for key in &keys {
                node.events.unblock(key, &self.wake);
            }
        }
        match woken {
            // Run it again first: it blocks again if another client won.
            Wake::Written => {
                self.pending.push_front(req);
                self.retry_deadline = Some(deadline);
            }
            Wake::Timeout => self.output.extend_from_slice(timeout_reply),
            Wake::Gone => {
                self.pending.clear();
                self.closing = true;
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(())
    }

    /// Cleans up after the connection: flushes a last reply (QUIT's OK,
    /// a protocol error) and forgets the client's watches.
    fn finish(&mut self) {
        let mut node = self.shared.lock();
        node.stats.connected_clients = node.stats.connected_clients.saturating_sub(1);
        for key in self.client.watched.drain(..) {
            node.events.unwatch(&key, &self.client.watch_dirty);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Best effort for replies written just before a close.
        if !self.output.is_empty() {
            let _ = self.stream.try_write(&self.output);
        }
    }
}
