//! Dedicated backend connections: one client's own connection to one node,
//! for what cannot share a multiplexed link: a transaction (its WATCH state
//! lives on the connection), a blocking command (it holds the connection
//! until it is answered), subscriptions (the node pushes messages).
//!
//! Each node has a bounded [`DedicatedPool`]: at most `max` connections open
//! at once, in use or idle. A connection goes back to the pool only in a
//! known state: clean ones at once, others after a `RESET` answered
//! `+RESET` ([`DedicatedConn::recycle`]). Dropping a connection closes it,
//! which is also how a blocked command is cancelled when its client leaves.
//!
//! A frozen node (SIGSTOP, a hung host) keeps its sockets open and answers
//! nothing, so every wait on a dedicated connection is bounded: a reply
//! must come within the request timeout ([`ReplyWait::Prompt`]), or within a
//! blocking command's own timeout plus the request timeout. Only a blocking
//! command that waits forever (timeout 0) waits forever: a frozen node is
//! then indistinguishable from an empty list. A connection that timed out
//! is dropped, never reused: its reply may still come.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::resp::reply::reply_len;

use super::backend::{BackendError, FailureKind, Sent, connect_identified};

/// Idle connections kept per node for reuse; more are closed.
const MAX_IDLE: usize = 16;
const RESET: &[u8] = b"*1\r\n$5\r\nRESET\r\n";
/// How long a recycled connection may take to answer its `RESET`.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a reply on a dedicated connection may take before the node
/// counts as failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyWait {
    /// The request timeout: the node answers at once, or it is failing.
    Prompt,
    /// A blocking command that may itself wait this long: that, plus the
    /// request timeout.
    Blocking(Duration),
    /// A blocking command without a timeout.
    Forever,
}

/// Why no dedicated connection could be had.
#[derive(Debug)]
pub enum AcquireError {
    /// The node did not accept a connection (nothing was sent).
    Down(BackendError),
    /// Every connection the pool allows is in use.
    Exhausted { addr: Arc<str>, max: usize },
}

impl AcquireError {
    /// A node that is down as the failure the caller handles like any
    /// failover (`Ok`); an exhausted pool as the error reply the client gets
    /// (`Err`).
    ///
    /// # Errors
    /// The reply, for an exhausted pool.
    pub fn into_reply(self) -> Result<BackendError, Bytes> {
        match self {
            AcquireError::Down(err) => Ok(err),
            AcquireError::Exhausted { addr, max } => Err(Bytes::from(format!(
                "-ERR too many dedicated connections to node {addr} (all {max} in use by \
                 transactions, blocking commands and subscriptions; see \
                 backend.max_dedicated_connections_per_node)\r\n"
            ))),
        }
    }
}

/// The dedicated connections of one node.
pub struct DedicatedPool {
    addr: Arc<str>,
    max: usize,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<DedicatedConn>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl DedicatedPool {
    pub fn new(
        addr: Arc<str>,
        max: usize,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> DedicatedPool {
        let max = max.max(1);
        DedicatedPool {
            addr,
            max,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            request_timeout,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<DedicatedConn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection that is still open, or a new one.
    ///
    /// # Errors
    /// [`AcquireError`] when the node refuses or every connection is taken.
    pub async fn acquire(self: &Arc<Self>) -> Result<DedicatedConn, AcquireError> {
        loop {
            let Some(conn) = self.idle().pop() else { break };
            if conn.is_open() {
                return Ok(conn);
            }
        }
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            // An idle connection's permit is held; closing one frees room.
            AcquireError::Exhausted {
                addr: self.addr.clone(),
                max: self.max,
            }
        })?;
        match connect_identified(&self.addr, self.connect_timeout).await {
            Ok((reader, writer, input, backend_id)) => Ok(DedicatedConn {
                frames: FrameReader {
                    reader,
                    input,
                    addr: self.addr.clone(),
                },
                writer,
                backend_id,
                pool: self.clone(),
                _permit: permit,
            }),
            Err(err) => {
                tracing::debug!(addr = %self.addr, %err, "dedicated connection failed");
                Err(AcquireError::Down(BackendError {
                    addr: self.addr.clone(),
                    kind: FailureKind::Down,
                    sent: Sent::No,
                }))
            }
        }
    }

    /// Connections open now, in use or idle.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    fn put(&self, conn: DedicatedConn) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// A dedicated connection one session keeps between commands (the one
/// holding its WATCH), lent to one command at a time.
#[derive(Clone, Default)]
pub struct Pinned(Arc<Mutex<Option<DedicatedConn>>>);

impl Pinned {
    fn slot(&self) -> MutexGuard<'_, Option<DedicatedConn>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, if one is held; the caller puts it back when done.
    pub fn take(&self) -> Option<DedicatedConn> {
        self.slot().take()
    }

    pub fn put(&self, conn: DedicatedConn) {
        *self.slot() = Some(conn);
    }

    pub fn is_held(&self) -> bool {
        self.slot().is_some()
    }
}

/// Reads complete frames (replies or pushed messages) off a connection.
struct FrameReader {
    reader: OwnedReadHalf,
    /// Bytes read but not yet returned.
    input: BytesMut,
    addr: Arc<str>,
}

impl FrameReader {
    fn error(&self, kind: FailureKind) -> BackendError {
        BackendError {
            addr: self.addr.clone(),
            kind,
            sent: Sent::Maybe,
        }
    }

    async fn read_frame(&mut self) -> Result<Bytes, BackendError> {
        loop {
            match reply_len(&self.input) {
                Ok(Some(len)) => return Ok(self.input.split_to(len).freeze()),
                Ok(None) => {}
                Err(_) => return Err(self.error(FailureKind::Protocol)),
            }
            if self.input.capacity() - self.input.len() < 4096 {
                self.input.reserve(16 * 1024);
            }
            match self.reader.read_buf(&mut self.input).await {
                Ok(n) if n > 0 => {}
                _ => return Err(self.error(FailureKind::Closed)),
            }
        }
    }
}

/// One dedicated connection. Dropping it closes it.
pub struct DedicatedConn {
    frames: FrameReader,
    writer: OwnedWriteHalf,
    /// The connection's `CLIENT ID` on the node (CLIENT UNBLOCK).
    backend_id: Option<i64>,
    pool: Arc<DedicatedPool>,
    _permit: OwnedSemaphorePermit,
}

impl DedicatedConn {
    pub fn addr(&self) -> &Arc<str> {
        &self.pool.addr
    }

    /// The connection's client id on its node, when the node told it.
    pub fn backend_id(&self) -> Option<i64> {
        self.backend_id
    }

    /// True unless the node closed the connection (or sent something
    /// unasked) while it sat idle.
    pub fn is_open(&self) -> bool {
        if !self.frames.input.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.frames.reader.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Writes `bytes` (one or more requests), within the request timeout
    /// (a frozen node stops reading once its socket buffer is full).
    ///
    /// # Errors
    /// A [`BackendError`] that may have been sent.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        match tokio::time::timeout(self.pool.request_timeout, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(self.frames.error(FailureKind::Closed)),
        }
    }

    /// The next reply, within the request timeout.
    ///
    /// # Errors
    /// A [`BackendError`] when the connection closes, the bytes are not
    /// RESP, or the node does not answer in time.
    pub async fn read_reply(&mut self) -> Result<Bytes, BackendError> {
        self.read_reply_within(ReplyWait::Prompt).await
    }

    /// The next reply, within `wait`.
    ///
    /// # Errors
    /// As [`DedicatedConn::read_reply`].
    pub async fn read_reply_within(&mut self, wait: ReplyWait) -> Result<Bytes, BackendError> {
        let limit = match wait {
            ReplyWait::Prompt => self.pool.request_timeout,
            ReplyWait::Blocking(own) => own.saturating_add(self.pool.request_timeout),
            ReplyWait::Forever => return self.frames.read_frame().await,
        };
        match tokio::time::timeout(limit, self.frames.read_frame()).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(addr = %self.pool.addr, ?limit, "node stopped answering on a dedicated connection");
                Err(self.frames.error(FailureKind::Closed))
            }
        }
    }

    /// Sends one request and reads its reply, within the request timeout.
    ///
    /// # Errors
    /// As [`DedicatedConn::write`] and [`DedicatedConn::read_reply`].
    pub async fn request(&mut self, request: &[u8]) -> Result<Bytes, BackendError> {
        self.write(request).await?;
        self.read_reply().await
    }

    /// Back to the pool as it is: the caller knows it holds no state (no
    /// WATCH, no subscription, no reply owed).
    pub fn release(self) {
        let pool = self.pool.clone();
        pool.put(self);
    }

    /// Back to the pool after a `RESET` (which ends a transaction, forgets
    /// watched keys and subscriptions), in the background. Replies still on
    /// the way (pushed messages) are skipped up to the `+RESET`.
    pub fn recycle(mut self) {
        tokio::spawn(async move {
            let reset = async {
                self.write(RESET).await?;
                loop {
                    if self.read_reply().await?.starts_with(b"+RESET") {
                        return Ok::<_, BackendError>(());
                    }
                }
            };
            if let Ok(Ok(())) = tokio::time::timeout(RESET_TIMEOUT, reset).await {
                self.release();
            }
        });
    }

    /// The two halves, for a subscriber that reads and writes apart. The
    /// connection counts against the pool until the reader is dropped.
    pub fn into_split(self) -> (DedicatedReader, OwnedWriteHalf) {
        (
            DedicatedReader {
                frames: self.frames,
                _permit: self._permit,
            },
            self.writer,
        )
    }
}

/// The reading half of a split [`DedicatedConn`].
pub struct DedicatedReader {
    frames: FrameReader,
    _permit: OwnedSemaphorePermit,
}

impl DedicatedReader {
    /// The next complete frame (a reply or a pushed message).
    ///
    /// # Errors
    /// A [`BackendError`] when the connection closes or the bytes are not
    /// RESP.
    pub async fn read_frame(&mut self) -> Result<Bytes, BackendError> {
        self.frames.read_frame().await
    }
}
