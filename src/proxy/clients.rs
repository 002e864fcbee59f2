//! The proxy's own clients, across every worker thread: what CLIENT LIST
//! and CLIENT INFO show, and what CLIENT KILL acts on.
//!
//! Each session registers a [`ClientHandle`] for its lifetime. The handle
//! holds what other sessions may read (name, last command, subscriptions)
//! behind a mutex only its own session writes, so the lock is uncontended
//! except while someone lists clients. Killing a client cancels its
//! session's token; the session's whole future is dropped, which closes the
//! socket and every dedicated backend connection it held, wherever it runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::blocking::BlockedOn;

/// Every connected client, by id.
#[derive(Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

/// Removes its client from the registry when the session ends.
pub struct Registration {
    registry: Arc<Registry>,
    pub handle: Arc<ClientHandle>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.handle.id);
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new client; it leaves the registry when the returned
    /// registration is dropped.
    pub fn register(self: &Arc<Self>, handle: ClientHandle) -> Registration {
        let handle = Arc::new(handle);
        self.lock().insert(handle.id, handle.clone());
        Registration {
            registry: self.clone(),
            handle,
        }
    }

    /// Kills client `id`: it leaves the registry at once (the next CLIENT
    /// LIST no longer shows it), and its session ends on its own thread.
    pub fn kill(&self, id: u64) {
        if let Some(client) = self.lock().remove(&id) {
            client.kill.cancel();
        }
    }

    /// Client `id`, if connected.
    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.lock().get(&id).cloned()
    }

    /// Every client, in id order (a snapshot).
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.lock().values().cloned().collect()
    }
}

/// What may be known about one client from another thread.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    /// The proxy's address as this client reached it.
    pub local_addr: SocketAddr,
    /// The client socket's file descriptor (-1 where there is none).
    pub fd: i64,
    created: Instant,
    details: Mutex<Details>,
    /// The node connection its blocking command waits on (CLIENT UNBLOCK).
    blocked_on: Mutex<Option<BlockedOn>>,
    kill: CancellationToken,
}

/// The mutable part of a client's description.
#[derive(Debug, Clone)]
pub struct Details {
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// The last command, as CLIENT LIST writes it (`client|list`).
    pub last_command: &'static str,
    pub last_active: Instant,
    pub subscriptions: Subscriptions,
    /// Commands queued in MULTI (-1 outside a transaction).
    pub multi: i64,
    pub blocked: bool,
    pub no_evict: bool,
    /// The protocol, 2 or 3 (HELLO).
    pub resp: u8,
}

/// Channel, pattern and shard channel subscription counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subscriptions {
    pub channels: usize,
    pub patterns: usize,
    pub shard: usize,
}

impl Subscriptions {
    pub fn any(&self) -> bool {
        self.channels + self.patterns + self.shard > 0
    }
}

impl ClientHandle {
    pub fn new(id: u64, addr: SocketAddr, local_addr: SocketAddr, fd: i64) -> ClientHandle {
        let now = Instant::now();
        ClientHandle {
            id,
            addr,
            local_addr,
            fd,
            created: now,
            details: Mutex::new(Details {
                name: None,
                lib_name: None,
                lib_ver: None,
                last_command: "NULL",
                last_active: now,
                subscriptions: Subscriptions::default(),
                multi: -1,
                blocked: false,
                no_evict: false,
                resp: 2,
            }),
            blocked_on: Mutex::new(None),
            kill: CancellationToken::new(),
        }
    }

    /// The client's details, to read or change.
    pub fn details(&self) -> MutexGuard<'_, Details> {
        self.details.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where its blocking command waits, while it does; the one place
    /// CLIENT UNBLOCK and the command's end meet (see [`BlockedOn`]).
    pub fn blocked_on(&self) -> MutexGuard<'_, Option<BlockedOn>> {
        self.blocked_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Completes once the client was killed.
    pub fn killed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }

    /// True for a client in subscribed mode (CLIENT KILL TYPE pubsub).
    pub fn is_pubsub(&self) -> bool {
        self.details().subscriptions.any()
    }

    /// One line of CLIENT LIST, as Redis 7 writes it (without the newline).
    /// Buffer and memory figures the proxy does not track read 0.
    pub fn line(&self, now: Instant) -> String {
        let d = self.details().clone();
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let mut flags = String::new();
        if d.subscriptions.any() {
            flags.push('P');
        }
        if d.multi >= 0 {
            flags.push('x');
        }
        if d.blocked {
            flags.push('b');
        }
        if d.no_evict {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db=0 sub={} psub={} \
             ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.local_addr,
            self.fd,
            text(&d.name),
            now.saturating_duration_since(self.created).as_secs(),
            now.saturating_duration_since(d.last_active).as_secs(),
            d.subscriptions.channels,
            d.subscriptions.patterns,
            d.subscriptions.shard,
            d.multi,
            d.last_command,
            d.resp,
            text(&d.lib_name),
            text(&d.lib_ver),
        )
    }
}
