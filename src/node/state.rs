//! A node's state: everything commands read and write, behind one lock, as
//! Redis runs every command on one thread. A connection takes the lock once
//! for all the complete requests it has read, so a pipeline costs one lock.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::aof::AofState;
use super::bus::BusHandle;
use super::client::ClientRegistry;
use super::cluster::ClusterState;
use super::config::NodeConfig;
use super::db::Keyspace;
use super::events::KeyEvents;
use super::propagate::Feed;
use super::pubsub::PubSub;
use super::replication::Replication;
use crate::command::{CommandSpec, flags};
use crate::resp::Request;

/// What every connection and background task of a node holds.
pub struct Shared {
    pub config: NodeConfig,
    state: Mutex<NodeState>,
    pub next_client_id: AtomicU64,
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub bus: BusHandle,
}

impl Shared {
    pub fn new(
        config: NodeConfig,
        state: NodeState,
        bus: BusHandle,
        shutdown: CancellationToken,
    ) -> Self {
        Shared {
            bus,
            config,
            state: Mutex::new(state),
            next_client_id: AtomicU64::new(1),
            shutdown,
            started: Instant::now(),
        }
    }

    /// Locks the node state. No command panics while holding it, and a
    /// poisoned lock still holds a consistent state, so poisoning is
    /// ignored rather than taking the node down.
    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counters INFO reports.
#[derive(Debug, Default)]
pub struct Stats {
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub connected_clients: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    /// Writes since start (INFO persistence `rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Bytes read from and written to clients (folded in per batch).
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    /// Connections refused at `maxclients`.
    pub rejected_connections: u64,
    /// Clients waiting in a blocking command.
    pub blocked_clients: u64,
    /// Samples for INFO's `instantaneous_*` rates.
    pub instantaneous: super::server::Instantaneous,
}

/// The state commands work on.
pub struct NodeState {
    pub db: Keyspace,
    pub cluster: ClusterState,
    pub events: KeyEvents,
    pub pubsub: PubSub,
    pub stats: Stats,
    /// Every connected client (CLIENT LIST, CLIENT KILL).
    pub clients: ClientRegistry,
    /// DEBUG SET-ACTIVE-EXPIRE: the background expiry runs.
    pub active_expire: bool,
    /// The write stream to replicas and the append-only file.
    pub feed: Feed,
    /// Replication: this node's history id, its replicas, its link to its
    /// master.
    pub repl: Replication,
    /// The append-only file's settings and status, shared with its writer.
    pub aof: AofState,
}

impl NodeState {
    pub fn new(cluster: ClusterState) -> Self {
        NodeState {
            db: Keyspace::new(),
            cluster,
            events: KeyEvents::default(),
            pubsub: PubSub::default(),
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            active_expire: true,
            feed: Feed::new(),
            repl: Replication::new(),
            aof: AofState::default(),
        }
    }

    /// A write command succeeded: its keys' watchers and blocked clients
    /// hear of it, and it goes into the write stream unless it came from
    /// one (`replayed`).
    pub fn note_write(&mut self, spec: &'static CommandSpec, req: &Request, replayed: bool) {
        debug_assert!(spec.has_flag(flags::WRITE));
        self.stats.dirty += 1;
        if !replayed {
            self.feed.write(&mut self.db, spec, req);
        }
        if let Ok(keys) = spec.keys(req) {
            for &pos in keys.as_slice() {
                if let Some(key) = req.arg(pos) {
                    self.events.touched(key);
                }
            }
        }
    }

    /// Keys that expired since the last call go into the write stream as
    /// `DEL`s. (Watchers are not told here: a lazy expiry does not break a
    /// WATCH in Redis; the active one tells them itself.)
    pub fn propagate_expired(&mut self) {
        for key in self.db.take_expired() {
            self.feed.push(&[b"DEL", &key]);
        }
    }
}
