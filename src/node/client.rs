//! One connected client: its own state ([`ClientState`], owned by its
//! connection: the per-command cluster flags, its transaction and watches,
//! its reply mode), the part other clients and the node reach
//! ([`ClientHandle`]: what CLIENT LIST shows, pushed pub/sub messages, the
//! kill switch), and the registry of every connected client
//! ([`ClientRegistry`], for CLIENT LIST and CLIENT KILL).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::command::CommandSpec;
use crate::resp::Request;

/// Commands that run at once even inside MULTI.
const RUN_INSIDE_MULTI: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

/// The state of an open MULTI.
#[derive(Debug, Default)]
pub struct Transaction {
    pub queued: Vec<Request>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// A key under WATCH.
#[derive(Debug, Clone)]
pub struct WatchedKey {
    pub key: Bytes,
    /// The key existed when it was watched: if it is gone at EXEC (deleted
    /// or expired, even if nobody noticed the expiry yet), EXEC fails, as
    /// Redis's `isWatchedKeyExpired` makes it.
    pub existed: bool,
}

/// CLIENT REPLY: whether replies are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// CLIENT REPLY SKIP was the previous command: the next reply is
    /// dropped.
    SkipNext,
    /// This command's reply is dropped.
    Skip,
}

#[derive(Debug)]
pub struct ClientState {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub name: Option<Bytes>,
    pub created: Instant,
    /// ASKING was the previous command: an importing slot is served.
    pub asking: bool,
    /// READONLY: a replica serves reads of its master's slots.
    pub readonly: bool,
    pub multi: Option<Transaction>,
    /// Keys under WATCH; `watch_dirty` is set when one of them is written.
    pub watched: Vec<WatchedKey>,
    pub watch_dirty: Arc<AtomicBool>,
    /// EXEC is running the queued commands: a command that would block
    /// answers as if it timed out, and one that would wait answers at once
    /// (or is refused).
    pub in_exec: bool,
    /// Commands of a master's replication stream or of the append-only
    /// file at start (Redis's master client): no cluster redirection, and
    /// not propagated again one by one (the stream is passed on whole).
    pub replaying: bool,
    /// Channels, patterns and shard channels subscribed to, all kinds
    /// together: more than 0 puts a RESP2 client in subscribed mode.
    pub subscriptions: usize,
    pub reply_mode: ReplyMode,
    /// CLIENT NO-EVICT on (flag `e`; the node evicts no clients anyway).
    pub no_evict: bool,
    /// Name of the last command run (CLIENT LIST `cmd=`).
    pub last_command: &'static str,
    /// True while a blocking command woken by a write of one of its keys
    /// runs again (the connection sets it): a key that now holds another
    /// type leaves it waiting, as Redis only serves a blocked client from
    /// a key of the type it waits for, where a first run answers WRONGTYPE.
    pub block_retry: bool,
    /// The write stream's offset after this client's last write (Redis's
    /// `woff`): WAIT counts the replicas that acknowledged it.
    pub write_offset: u64,
    /// `REPLCONF listening-port` of a replica about to PSYNC.
    pub replica_port: Option<u16>,
    /// What the node and other clients reach of this client.
    pub handle: Arc<ClientHandle>,
}

impl ClientState {
    /// A client with a handle of its own (not registered anywhere).
    pub fn new(id: u64, addr: Option<SocketAddr>) -> Self {
        Self::with_handle(Arc::new(ClientHandle::new(id, addr, None, -1)))
    }

    /// The state of the client `handle` describes.
    pub fn with_handle(handle: Arc<ClientHandle>) -> Self {
        ClientState {
            id: handle.id,
            addr: handle.addr,
            name: None,
            created: handle.created,
            asking: false,
            readonly: false,
            multi: None,
            watched: Vec::new(),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            in_exec: false,
            replaying: false,
            subscriptions: 0,
            reply_mode: ReplyMode::On,
            no_evict: false,
            last_command: "NULL",
            block_retry: false,
            write_offset: 0,
            replica_port: None,
            handle,
        }
    }

    /// Inside MULTI, queues `req` and returns true (the caller answers
    /// `+QUEUED`); outside, or for EXEC/DISCARD/..., returns false.
    pub fn queue_in_multi(&mut self, spec: &'static CommandSpec, req: &Request) -> bool {
        match &mut self.multi {
            Some(tx) if !RUN_INSIDE_MULTI.contains(&spec.name) => {
                tx.queued.push(req.clone());
                true
            }
            _ => false,
        }
    }

    /// A command was refused while a MULTI is open: EXEC will abort.
    pub fn flag_multi_error(&mut self) {
        if let Some(tx) = &mut self.multi {
            tx.aborted = true;
        }
    }

    /// True when a blocking command must answer at once instead of
    /// blocking: inside a transaction.
    pub fn may_not_block(&self) -> bool {
        self.in_exec || self.multi.is_some()
    }

    /// True if a watched key was written since WATCH.
    pub fn watch_broken(&self) -> bool {
        self.watch_dirty.load(Ordering::Acquire)
    }

    /// True in RESP2 subscribed mode, where only (P|S)(UN)SUBSCRIBE, PING,
    /// QUIT and RESET run.
    pub fn in_pubsub_mode(&self) -> bool {
        self.subscriptions > 0
    }

    /// Copies what CLIENT LIST shows into the handle; the connection calls
    /// this once per batch of commands, under the node lock.
    pub fn publish_snapshot(&self, query_buffer: usize) {
        let mut snap = self.handle.snapshot();
        snap.name.clone_from(&self.name);
        snap.last_command = self.last_command;
        snap.last_active = Instant::now();
        snap.multi = self.multi.as_ref().map(|tx| tx.queued.len());
        snap.dirty_cas = self.watch_broken();
        snap.readonly = self.readonly;
        snap.no_evict = self.no_evict;
        snap.pubsub = self.in_pubsub_mode();
        snap.query_buffer = query_buffer;
    }
}

/// What CLIENT LIST shows of a client, refreshed once per batch of
/// commands (never per command).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: Option<Bytes>,
    pub last_command: &'static str,
    pub last_active: Instant,
    /// Queued commands of an open MULTI.
    pub multi: Option<usize>,
    /// A watched key was touched (flag `d`).
    pub dirty_cas: bool,
    pub readonly: bool,
    pub no_evict: bool,
    pub pubsub: bool,
    /// Waiting in a blocking command (flag `b`).
    pub blocked: bool,
    pub query_buffer: usize,
    /// The connection is a replica's link (flag `S`, type `replica`).
    pub replica: bool,
    /// The connection is this replica's link to its master (flag `M`,
    /// type `master`).
    pub master: bool,
}

/// Output buffer limits of one client class (`client-output-buffer-limit`):
/// over `hard` bytes, or over `soft` bytes for `soft_seconds` in a row, the
/// client is disconnected. 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl BufferLimit {
    /// Redis's default for pub/sub clients: `pubsub 32mb 8mb 60`.
    pub const PUBSUB_DEFAULT: BufferLimit = BufferLimit {
        hard: 32 * 1024 * 1024,
        soft: 8 * 1024 * 1024,
        soft_seconds: 60,
    };
}

/// Messages pushed to a subscriber and not yet written to its socket.
#[derive(Debug, Default)]
struct Pushes {
    buf: BytesMut,
    /// Bytes taken by the connection whose write has not finished: they
    /// count against the output limit until they leave.
    in_flight: usize,
    /// Since when the soft limit has been exceeded.
    over_soft_since: Option<Instant>,
}

/// The part of a client that the node and other clients reach: identity,
/// the CLIENT LIST snapshot, pushed messages and the kill switch.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u64,
    pub addr: Option<SocketAddr>,
    pub laddr: Option<SocketAddr>,
    /// The socket's file descriptor (-1 where there is none).
    pub fd: i64,
    pub created: Instant,
    snapshot: Mutex<Snapshot>,
    pushes: Mutex<Pushes>,
    pushed: Notify,
    /// CLIENT UNBLOCK's request for the command this client is blocked in.
    unblock: Mutex<Option<Unblock>>,
    unblocked: Notify,
    kill: CancellationToken,
}

/// How CLIENT UNBLOCK ends a blocked command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// The command's timeout reply.
    Timeout,
    /// `-UNBLOCKED client unblocked via CLIENT UNBLOCK`.
    Error,
}

/// Locks `m`, ignoring poisoning: no code panics while holding these.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientHandle {
    pub fn new(id: u64, addr: Option<SocketAddr>, laddr: Option<SocketAddr>, fd: i64) -> Self {
        let now = Instant::now();
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: now,
            snapshot: Mutex::new(Snapshot {
                name: None,
                last_command: "NULL",
                last_active: now,
                multi: None,
                dirty_cas: false,
                readonly: false,
                no_evict: false,
                pubsub: false,
                blocked: false,
                query_buffer: 0,
                replica: false,
                master: false,
            }),
            pushes: Mutex::new(Pushes::default()),
            pushed: Notify::new(),
            unblock: Mutex::new(None),
            unblocked: Notify::new(),
            kill: CancellationToken::new(),
        }
    }

    /// The CLIENT LIST snapshot, for reading or refreshing.
    pub fn snapshot(&self) -> MutexGuard<'_, Snapshot> {
        lock(&self.snapshot)
    }

    /// Marks the client blocked (BLPOP and friends) or not.
    pub fn set_blocked(&self, blocked: bool) {
        self.snapshot().blocked = blocked;
    }

    /// Asks the connection to close as soon as possible (CLIENT KILL, an
    /// output limit).
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Asks the client's blocked command to end now (CLIENT UNBLOCK, under
    /// the node lock that saw it blocked).
    pub fn request_unblock(&self, how: Unblock) {
        *lock(&self.unblock) = Some(how);
        self.unblocked.notify_one();
    }

    /// The pending CLIENT UNBLOCK request, taken.
    pub fn take_unblock(&self) -> Option<Unblock> {
        lock(&self.unblock).take()
    }

    /// Resolves once CLIENT UNBLOCK was asked (possibly for an earlier
    /// block: check [`ClientHandle::take_unblock`]).
    pub async fn unblock_requested(&self) {
        self.unblocked.notified().await;
    }

    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Resolves once the client is killed.
    pub async fn killed(&self) {
        self.kill.cancelled().await;
    }

    /// Appends a pushed message (pub/sub) for the connection to write.
    /// Going over `limit` kills the client and drops what is queued, as
    /// Redis's `client-output-buffer-limit` does. Returns false if the
    /// client was already killed (nothing queued).
    pub fn push(&self, message: &[u8], limit: BufferLimit) -> bool {
        if self.is_killed() {
            return false;
        }
        let mut pushes = lock(&self.pushes);
        pushes.buf.extend_from_slice(message);
        let used = pushes.buf.len() + pushes.in_flight;
        let over_hard = limit.hard > 0 && used > limit.hard;
        let over_soft = limit.soft > 0 && used > limit.soft;
        let soft_expired = if over_soft {
            let since = *pushes.over_soft_since.get_or_insert_with(Instant::now);
            since.elapsed() >= Duration::from_secs(limit.soft_seconds)
        } else {
            pushes.over_soft_since = None;
            false
        };
        if over_hard || soft_expired {
            pushes.buf = BytesMut::new();
            drop(pushes);
            tracing::warn!(
                client = self.id,
                used,
                "client scheduled to be closed for overcoming of output buffer limits"
            );
            self.kill();
            return true;
        }
        drop(pushes);
        self.pushed.notify_one();
        true
    }

    /// Moves the pushed messages into `out`; they count against the limit
    /// until [`ClientHandle::pushes_written`].
    pub fn take_pushes(&self, out: &mut BytesMut) {
        let mut pushes = lock(&self.pushes);
        if pushes.buf.is_empty() {
            return;
        }
        pushes.in_flight += pushes.buf.len();
        if out.is_empty() {
            std::mem::swap(out, &mut pushes.buf);
        } else {
            out.extend_from_slice(&pushes.buf);
            pushes.buf.clear();
        }
    }

    /// The output that held taken pushes has been written.
    pub fn pushes_written(&self) {
        let mut pushes = lock(&self.pushes);
        pushes.in_flight = 0;
        if pushes.buf.is_empty() {
            pushes.over_soft_since = None;
        }
    }

    /// Bytes pushed and not yet written (CLIENT LIST `omem`).
    pub fn pushes_pending(&self) -> usize {
        let pushes = lock(&self.pushes);
        pushes.buf.len() + pushes.in_flight
    }

    /// Resolves when a message was pushed since the last call.
    pub async fn pushed(&self) {
        self.pushed.notified().await;
    }
}

/// Every connected client, by id (ascending: the order CLIENT LIST uses).
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: BTreeMap<u64, Arc<ClientHandle>>,
}

impl ClientRegistry {
    pub fn register(&mut self, handle: Arc<ClientHandle>) {
        self.clients.insert(handle.id, handle);
    }

    pub fn unregister(&mut self, id: u64) {
        self.clients.remove(&id);
    }

    pub fn get(&self, id: u64) -> Option<&Arc<ClientHandle>> {
        self.clients.get(&id)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ClientHandle>> + '_ {
        self.clients.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: BufferLimit = BufferLimit {
        hard: 100,
        soft: 50,
        soft_seconds: 3600,
    };

    #[test]
    fn pushes_are_taken_in_order_and_count_until_written() {
        let h = ClientHandle::new(1, None, None, -1);
        assert!(h.push(b"ab", LIMIT));
        assert!(h.push(b"cd", LIMIT));
        let mut out = BytesMut::from(&b"x"[..]);
        h.take_pushes(&mut out);
        assert_eq!(&out[..], b"xabcd");
        assert_eq!(h.pushes_pending(), 4);
        h.pushes_written();
        assert_eq!(h.pushes_pending(), 0);
    }

    #[test]
    fn the_hard_limit_kills_and_drops_the_queue() {
        let h = ClientHandle::new(1, None, None, -1);
        assert!(h.push(&[0; 60], LIMIT));
        assert!(!h.is_killed());
        let mut out = BytesMut::new();
        h.take_pushes(&mut out);
        // Taken but not written: still counted.
        assert!(h.push(&[0; 41], LIMIT));
        assert!(h.is_killed());
        assert_eq!(h.pushes_pending(), 60);
        assert!(!h.push(b"more", LIMIT));
    }

    #[test]
    fn the_soft_limit_kills_only_after_its_time() {
        let h = ClientHandle::new(1, None, None, -1);
        let soft_now = BufferLimit {
            soft_seconds: 0,
            ..LIMIT
        };
        assert!(h.push(&[0; 60], LIMIT));
        assert!(!h.is_killed());
        assert!(h.push(b"x", soft_now));
        assert!(h.is_killed());
    }

    #[test]
    fn registry_lists_by_id() {
        let mut r = ClientRegistry::default();
        r.register(Arc::new(ClientHandle::new(5, None, None, -1)));
        r.register(Arc::new(ClientHandle::new(2, None, None, -1)));
        assert_eq!(r.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2, 5]);
        r.unregister(2);
        assert_eq!(r.len(), 1);
        assert!(r.get(5).is_some());
    }
}
