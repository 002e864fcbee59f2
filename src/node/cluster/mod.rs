//! The cluster state of a built-in node: who is in the cluster, which node
//! serves each slot, epochs, and the slots being migrated. Commands check
//! here that this node serves their keys ([`ClusterState::check_request`]);
//! the cluster bus ([`gossip`] for the logic, `node::bus` for the sockets)
//! keeps it in agreement with the other nodes; [`failover`] replaces a
//! failed master by a replica (and runs CLUSTER FAILOVER);
//! [`replica_migration`] moves a spare replica to a master left without
//! one; [`nodes_conf`] writes it to `nodes-<port>.conf` and reads it back.
//!
//! The structure follows Redis's `clusterState`: a table of nodes (this one
//! included), an owner per slot, and each master's slot bitmap, kept in
//! step by [`ClusterState::set_owner`] so that comparing a gossiped claim
//! with what we know is a bitmap compare.

pub mod failover;
pub mod gossip;
pub mod nodes_conf;
pub mod replica_migration;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, watch};

use super::client::ClientState;
use super::cmd::CmdError;
use super::db::{Keyspace, Map, unix_ms};
use crate::cluster::{SLOT_COUNT, SlotBitmap, key_slot};
use crate::command::{CommandSpec, flags};
use crate::resp::Request;

/// A node id: 40 lowercase hex characters.
pub type NodeId = Arc<str>;

/// How long a forgotten node is kept from coming back through gossip
/// (Redis's CLUSTER_BLACKLIST_TTL).
pub const BLACKLIST_TTL_MS: i64 = 60_000;

/// Bounds of the delay before a master that was in a minority partition
/// serves again (Redis's CLUSTER_{MIN,MAX}_REJOIN_DELAY).
const MIN_REJOIN_DELAY_MS: i64 = 500;
const MAX_REJOIN_DELAY_MS: i64 = 5000;
/// How long a master restarted into a cluster waits before it serves
/// (Redis's CLUSTER_WRITABLE_DELAY).
const WRITABLE_DELAY_MS: i64 = 2000;

/// A fresh random node id.
pub fn random_node_id() -> NodeId {
    use rand::Rng;
    let mut rng = rand::rng();
    let id: String = (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect();
    id.into()
}

/// A node's role as this node knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
    /// Not known yet: a node in handshake.
    Unknown,
}

/// One node's report that another node is failing (PFAIL or FAIL in its
/// gossip). Kept per reported node; the failover logic counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailReport {
    pub reporter: NodeId,
    pub time_ms: i64,
}

/// What this node knows about one node of the cluster (itself included).
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: NodeId,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub role: Role,
    /// The master this node replicates, if it is a replica and that master
    /// is known.
    pub master: Option<NodeId>,
    pub config_epoch: u64,
    /// Its replication offset, as it last told us. For this node itself,
    /// replication keeps it current (a master's offset, or what a replica
    /// has processed): CLUSTER SLOTS lists a replica only once it is not 0.
    pub repl_offset: u64,
    /// Unix ms of the PING in flight (0: none) / the last PONG received.
    pub ping_sent_ms: i64,
    pub pong_received_ms: i64,
    /// Unix ms of the last message of any kind from it.
    pub data_received_ms: i64,
    /// When this node entered the table (handshake timeout).
    pub ctime_ms: i64,
    /// The bus link to it is up.
    pub connected: bool,
    /// Suspected failing by this node (PFAIL) / agreed failed (FAIL).
    pub pfail: bool,
    pub fail: bool,
    pub fail_time_ms: i64,
    /// Met but not yet answered: its real id is not known yet.
    pub handshake: bool,
    /// The next link to it starts with MEET rather than PING.
    pub meet: bool,
    /// Its address is not known (it answered with another id).
    pub noaddr: bool,
    /// Other masters' reports that it is failing.
    pub fail_reports: Vec<FailReport>,
    /// Unix ms this node (a master) last gave its vote to one of this
    /// master's replicas (Redis's `voted_time`): at most one vote per
    /// master every node_timeout * 2.
    pub voted_time_ms: i64,
    /// It never fails over its master by itself
    /// (`cluster-replica-no-failover`); it does not compete in elections.
    pub nofailover: bool,
    /// A master meant to have replicas (Redis's MIGRATE_TO): it has or had
    /// one, or replaced a master. Left without a working replica, it is
    /// orphaned and a spare replica may migrate to it.
    pub migrate_to: bool,
    /// Unix ms since it has been orphaned (0: it is not).
    pub orphaned_since_ms: i64,
    /// The slots it serves (kept in step with the owner table).
    slots: SlotBitmap,
    numslots: usize,
}

impl ClusterNode {
    /// A master with no slots, known from now on.
    pub fn new(id: NodeId, ip: impl Into<String>, port: u16, cport: u16) -> Self {
        ClusterNode {
            id,
            ip: ip.into(),
            port,
            cport,
            role: Role::Master,
            master: None,
            config_epoch: 0,
            repl_offset: 0,
            ping_sent_ms: 0,
            pong_received_ms: 0,
            data_received_ms: 0,
            ctime_ms: unix_ms(),
            connected: false,
            pfail: false,
            fail: false,
            fail_time_ms: 0,
            handshake: false,
            meet: false,
            noaddr: false,
            fail_reports: Vec::new(),
            voted_time_ms: 0,
            nofailover: false,
            migrate_to: false,
            orphaned_since_ms: 0,
            slots: SlotBitmap::new(),
            numslots: 0,
        }
    }

    pub fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    pub fn is_replica(&self) -> bool {
        self.role == Role::Replica
    }

    /// `ip:port` as redirects name it.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The slots it serves.
    pub fn slots(&self) -> &SlotBitmap {
        &self.slots
    }

    pub fn numslots(&self) -> usize {
        self.numslots
    }

    /// Flag bits as the bus sends them (see `bus::proto::flags`).
    pub fn flag_bits(&self) -> u16 {
        use crate::node::bus::proto::flags as f;
        let mut bits = 0;
        match self.role {
            Role::Master => bits |= f::MASTER,
            Role::Replica => bits |= f::REPLICA,
            Role::Unknown => {}
        }
        if self.pfail {
            bits |= f::PFAIL;
        }
        if self.fail {
            bits |= f::FAIL;
        }
        if self.handshake {
            bits |= f::HANDSHAKE;
        }
        if self.noaddr {
            bits |= f::NOADDR;
        }
        if self.nofailover {
            bits |= f::NOFAILOVER;
        }
        bits
    }
}

/// Bus message counters (CLUSTER INFO `cluster_stats_messages_*`).
#[derive(Debug, Clone, Default)]
pub struct BusStats {
    pub sent: [u64; crate::node::bus::proto::KIND_COUNT],
    pub received: [u64; crate::node::bus::proto::KIND_COUNT],
    /// Links closed because their send queue overflowed.
    pub links_buffer_limit_exceeded: u64,
}

/// Where this node replicates from, for the replication task: `None` while
/// it is a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddr {
    pub id: NodeId,
    pub ip: String,
    pub port: u16,
}

/// This node's view of the cluster.
#[derive(Debug)]
pub struct ClusterState {
    /// This node's id (also `me.id`).
    pub myself: NodeId,
    me: ClusterNode,
    /// Every other node.
    others: Map<NodeId, ClusterNode>,
    /// Slot -> the master serving it.
    owners: Vec<Option<NodeId>>,
    /// Slot -> node it is being migrated to (this node owns it).
    pub migrating: BTreeMap<u16, NodeId>,
    /// Slot -> node it is being imported from.
    pub importing: BTreeMap<u16, NodeId>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub require_full_coverage: bool,
    pub node_timeout_ms: u64,
    /// `cluster_state:ok`.
    pub state_ok: bool,
    /// Masters serving at least one slot (`cluster_size`).
    pub size: usize,
    /// When this node last found itself in a minority partition.
    among_minority_ms: i64,
    /// Forgotten nodes, until the Unix ms they may be learned again.
    blacklist: Map<NodeId, i64>,
    pub stats: BusStats,
    /// The IP given to peers. `None`: none configured, so peers use the
    /// address our links come from, and MEET tells us how they see us.
    pub announce_ip: Option<String>,
    /// The configuration changed since it was last written.
    dirty: bool,
    /// Woken when the configuration needs saving.
    save_notify: Arc<Notify>,
    /// A PONG to every node is due (after a change others must learn fast).
    pub broadcast_pong: bool,
    /// Where the configuration is saved (none in unit tests).
    pub conf_file: Option<Arc<nodes_conf::ConfigFile>>,
    /// Always updated with `send_replace`: `send` drops the value while
    /// nobody subscribes, as when the state is loaded at start.
    master_tx: watch::Sender<Option<MasterAddr>>,
    /// The election this replica runs, or last ran, to replace its master.
    pub election: failover::Election,
    /// A manual failover (CLUSTER FAILOVER) in progress, on either side.
    pub manual: failover::ManualFailover,
    /// `cluster-replica-validity-factor`: a replica whose link to its master
    /// has been down for longer than node_timeout times this (plus the
    /// replication ping period) does not fail over by itself; 0: always
    /// may.
    pub replica_validity_factor: u64,
    /// `cluster-allow-replica-migration`: a master left without slots
    /// because some of them moved elsewhere follows their new owner as a
    /// replica, and a spare replica moves to an orphaned master.
    pub allow_replica_migration: bool,
    /// `cluster-migration-barrier`: a replica migrates only if its master
    /// keeps more than this many working replicas.
    pub migration_barrier: u64,
    /// Unix ms replication last heard from our master (the link's last
    /// interaction, or when it went down); `None` while replication has not
    /// said (the data then counts as fresh).
    master_link_seen_ms: Option<i64>,
    /// A master restarted into a cluster keeps `cluster_state:fail` until
    /// this Unix ms, so that the others can tell it about a failover first
    /// (Redis's CLUSTER_WRITABLE_DELAY).
    rejoin_hold_until_ms: i64,
}

impl ClusterState {
    /// A node alone, knowing only itself, serving no slot.
    pub fn new(myself: ClusterNode, require_full_coverage: bool) -> Self {
        let (master_tx, _) = watch::channel(None);
        let mut me = myself;
        me.connected = true;
        let mut state = ClusterState {
            myself: Arc::clone(&me.id),
            me,
            others: Map::default(),
            owners: vec![None; SLOT_COUNT],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            require_full_coverage,
            node_timeout_ms: 15_000,
            state_ok: false,
            size: 0,
            among_minority_ms: 0,
            blacklist: Map::default(),
            stats: BusStats::default(),
            announce_ip: None,
            dirty: false,
            save_notify: Arc::new(Notify::new()),
            broadcast_pong: false,
            conf_file: None,
            master_tx,
            election: failover::Election::default(),
            manual: failover::ManualFailover::default(),
            replica_validity_factor: failover::DEFAULT_VALIDITY_FACTOR,
            allow_replica_migration: true,
            migration_barrier: replica_migration::DEFAULT_BARRIER,
            master_link_seen_ms: None,
            rejoin_hold_until_ms: 0,
        };
        state.update_state();
        state
    }

    /// This node.
    pub fn me(&self) -> &ClusterNode {
        &self.me
    }

    pub fn me_mut(&mut self) -> &mut ClusterNode {
        &mut self.me
    }

    /// Kept for callers that predate [`ClusterState::me`].
    pub fn myself(&self) -> Option<&ClusterNode> {
        Some(&self.me)
    }

    pub fn is_myself(&self, id: &str) -> bool {
        *self.myself == *id
    }

    pub fn node(&self, id: &str) -> Option<&ClusterNode> {
        if self.is_myself(id) {
            Some(&self.me)
        } else {
            self.others.get(id)
        }
    }

    pub fn node_mut(&mut self, id: &str) -> Option<&mut ClusterNode> {
        if self.is_myself(id) {
            Some(&mut self.me)
        } else {
            self.others.get_mut(id)
        }
    }

    /// Every node, this one first.
    pub fn nodes(&self) -> impl Iterator<Item = &ClusterNode> {
        std::iter::once(&self.me).chain(self.others.values())
    }

    /// Every other node.
    pub fn others(&self) -> impl Iterator<Item = &ClusterNode> {
        self.others.values()
    }

    pub fn others_mut(&mut self) -> impl Iterator<Item = &mut ClusterNode> {
        self.others.values_mut()
    }

    /// Nodes known, this one included (`cluster_known_nodes`).
    pub fn known_nodes(&self) -> usize {
        self.others.len() + 1
    }

    /// The replicas of `master`, by id.
    pub fn replicas_of(&self, master: &str) -> Vec<&ClusterNode> {
        let mut list: Vec<&ClusterNode> = self
            .nodes()
            .filter(|n| n.master.as_deref() == Some(master))
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// The master this node replicates.
    pub fn my_master(&self) -> Option<&ClusterNode> {
        self.me.master.as_deref().and_then(|id| self.node(id))
    }

    /// Follows which master this node replicates (for replication).
    pub fn subscribe_master(&self) -> watch::Receiver<Option<MasterAddr>> {
        self.master_tx.subscribe()
    }

    /// Replication's hook: this node's replication offset (a master's
    /// offset, or what a replica has processed). Elections rank replicas
    /// by it and a manual failover waits until it reaches the master's.
    /// It must be updated under the node lock with each write it counts.
    pub fn set_my_repl_offset(&mut self, offset: u64) {
        self.me.repl_offset = offset;
    }

    /// Replication's hook: the link to our master is alive at `now_ms`
    /// (call it on every interaction; when the link goes down, stop
    /// calling). The data age `cluster-replica-validity-factor` checks is
    /// measured from the last call.
    pub fn note_master_link_alive(&mut self, now_ms: i64) {
        self.master_link_seen_ms = Some(now_ms);
    }

    /// How long ago replication last heard from our master, in ms; 0 while
    /// replication has not said.
    pub fn master_data_age_ms(&self, now_ms: i64) -> i64 {
        self.master_link_seen_ms
            .map_or(0, |seen| (now_ms - seen).max(0))
    }

    /// The server's hook: while a manual failover pauses this master's
    /// client writes, the Unix ms the pause ends at the latest (it ends
    /// earlier when the failover completes or is abandoned). Commands that
    /// write wait meanwhile, as Redis's `pauseActions` makes them, so the
    /// replication offset the replica must reach stays put.
    pub fn client_writes_paused_until(&self, now_ms: i64) -> Option<i64> {
        (self.manual.pause_until_ms > now_ms).then_some(self.manual.pause_until_ms)
    }

    /// `cluster-replica-no-failover`: this node (as a replica) never starts
    /// an election by itself; manual failovers still work.
    pub fn set_replica_no_failover(&mut self, on: bool) {
        if self.me.nofailover != on {
            self.me.nofailover = on;
            self.mark_dirty();
        }
    }

    /// This node restarted into a cluster it knows: as a master, it keeps
    /// `cluster_state:fail` for a moment, long enough to learn whether a
    /// replica replaced it meanwhile.
    pub fn hold_state_after_restart(&mut self, now_ms: i64) {
        if self.known_nodes() > 1 {
            self.rejoin_hold_until_ms = now_ms + WRITABLE_DELAY_MS;
        }
    }

    /// Wakes whoever saves the configuration file.
    pub fn save_notify(&self) -> Arc<Notify> {
        Arc::clone(&self.save_notify)
    }

    /// The configuration changed: `nodes-<port>.conf` must be rewritten.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
        self.save_notify.notify_one();
    }

    /// True (once) if the configuration changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Adds a node (it must not be known yet).
    pub fn add_node(&mut self, node: ClusterNode) {
        if self.is_myself(&node.id) {
            return;
        }
        self.others.insert(Arc::clone(&node.id), node);
        self.mark_dirty();
    }

    /// Starts a handshake with `ip:port@cport` (CLUSTER MEET, or a MEET
    /// from an unknown node): a node under a random id until it answers.
    /// Returns false if one with that address is already in handshake.
    pub fn start_handshake(&mut self, ip: &str, port: u16, cport: u16, meet: bool) -> bool {
        let in_progress = self
            .others
            .values()
            .any(|n| n.handshake && n.ip == ip && n.port == port && n.cport == cport);
        if in_progress {
            return false;
        }
        let mut node = ClusterNode::new(random_node_id(), ip, port, cport);
        node.role = Role::Unknown;
        node.handshake = true;
        node.meet = meet;
        self.add_node(node);
        true
    }

    /// Forgets a node (FORGET, RESET, a handshake that timed out): its
    /// slots become unassigned, its replicas lose their master, its
    /// failure reports go.
    pub fn del_node(&mut self, id: &str) {
        if self.is_myself(id) {
            return;
        }
        self.importing.retain(|_, from| **from != *id);
        self.migrating.retain(|_, to| **to != *id);
        let slots: Vec<u16> = match self.others.get(id) {
            Some(n) => n.slots.iter().collect(),
            None => return,
        };
        self.set_owners(slots, None);
        for n in self.nodes_mut() {
            n.fail_reports.retain(|r| *r.reporter != *id);
            if n.master.as_deref() == Some(id) {
                n.master = None;
            }
        }
        // A replica that goes leaves its master.
        self.set_master_of(id, None);
        self.others.remove(id);
        self.mark_dirty();
        self.update_state();
    }

    fn nodes_mut(&mut self) -> impl Iterator<Item = &mut ClusterNode> {
        std::iter::once(&mut self.me).chain(self.others.values_mut())
    }

    /// Gives the handshake node `old` its real id `new`.
    pub fn rename_node(&mut self, old: &str, new: &str) {
        let Some(mut node) = self.others.remove(old) else {
            return;
        };
        let new: NodeId = new.into();
        node.id = Arc::clone(&new);
        for owner in self.owners.iter_mut().flatten() {
            if **owner == *old {
                *owner = Arc::clone(&new);
            }
        }
        for id in self
            .importing
            .values_mut()
            .chain(self.migrating.values_mut())
        {
            if **id == *old {
                *id = Arc::clone(&new);
            }
        }
        for n in self.nodes_mut() {
            if n.master.as_deref() == Some(old) {
                n.master = Some(Arc::clone(&new));
            }
        }
        self.others.insert(new, node);
        self.mark_dirty();
    }

    /// Sets `id`'s master (Redis's `clusterNodeRemoveSlave` and
    /// `clusterNodeAddSlave`): a master with a replica is meant to have
    /// one (MIGRATE_TO), until its last replica leaves.
    pub fn set_master_of(&mut self, id: &str, master: Option<NodeId>) {
        let Some(n) = self.node_mut(id) else { return };
        let old = std::mem::replace(&mut n.master, master.clone());
        if old == master {
            return;
        }
        if let Some(old) = old {
            let alone = self.replicas_of(&old).is_empty();
            if let Some(m) = self.node_mut(&old).filter(|_| alone) {
                m.migrate_to = false;
            }
        }
        if let Some(m) = master.and_then(|m| self.node_mut(&m)) {
            m.migrate_to = true;
        }
    }

    /// A node says it is a master (Redis's `clusterSetNodeAsMaster`).
    pub fn set_node_as_master(&mut self, id: &str) {
        let me = self.is_myself(id);
        let Some(n) = self.node_mut(id) else { return };
        if n.role == Role::Master {
            return;
        }
        n.role = Role::Master;
        // A replica that took over is meant to have replicas in turn.
        if n.master.is_some() && !me {
            n.migrate_to = true;
        }
        self.set_master_of(id, None);
        if me {
            self.master_tx.send_replace(None);
        }
        self.mark_dirty();
        self.update_state();
    }

    /// This node becomes a replica of `master` (CLUSTER REPLICATE, or its
    /// slots moved to another master): Redis's `clusterSetMaster`. Open
    /// migrations are closed.
    pub fn set_my_master(&mut self, master: &str) {
        let Some(m) = self.others.get(master) else {
            return;
        };
        let addr = MasterAddr {
            id: Arc::clone(&m.id),
            ip: m.ip.clone(),
            port: m.port,
        };
        if self.me.role != Role::Replica {
            self.me.role = Role::Replica;
            self.me.migrate_to = false;
            self.migrating.clear();
            self.importing.clear();
        }
        let me = Arc::clone(&self.myself);
        self.set_master_of(&me, Some(Arc::clone(&addr.id)));
        self.master_tx.send_replace(Some(addr));
        failover::reset_manual_failover(self);
        self.mark_dirty();
        self.update_state();
    }

    /// Tells replication that the master's address changed.
    pub fn master_addr_changed(&mut self) {
        let addr = self.my_master().map(|m| MasterAddr {
            id: Arc::clone(&m.id),
            ip: m.ip.clone(),
            port: m.port,
        });
        self.master_tx.send_replace(addr);
    }

    /// The greatest config epoch known, or the current epoch if greater.
    pub fn max_epoch(&self) -> u64 {
        self.nodes()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0)
            .max(self.current_epoch)
    }

    /// Redis's `clusterBumpConfigEpochWithoutConsensus`: takes a new config
    /// epoch unless this node already has the greatest one, unique. True if
    /// it was bumped.
    pub fn bump_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_epoch();
        if self.me.config_epoch == 0 || self.me.config_epoch != max {
            self.current_epoch += 1;
            self.me.config_epoch = self.current_epoch;
            self.mark_dirty();
            true
        } else {
            false
        }
    }

    /// Keeps `id` from being re-added by gossip for a minute.
    pub fn blacklist_add(&mut self, id: &NodeId, now_ms: i64) {
        self.blacklist_cleanup(now_ms);
        self.blacklist
            .insert(Arc::clone(id), now_ms + BLACKLIST_TTL_MS);
    }

    pub fn is_blacklisted(&mut self, id: &str, now_ms: i64) -> bool {
        self.blacklist_cleanup(now_ms);
        self.blacklist.contains_key(id)
    }

    fn blacklist_cleanup(&mut self, now_ms: i64) {
        self.blacklist.retain(|_, until| *until > now_ms);
    }

    /// Forgets every other node, every slot and migration (CLUSTER RESET);
    /// a hard reset also zeroes the epochs and takes a new id.
    pub fn reset(&mut self, hard: bool) {
        if self.me.role != Role::Master {
            self.me.role = Role::Master;
            let me = Arc::clone(&self.myself);
            self.set_master_of(&me, None);
            self.master_tx.send_replace(None);
        }
        self.migrating.clear();
        self.importing.clear();
        failover::reset_manual_failover(self);
        self.set_owners(0..SLOT_COUNT as u16, None);
        let ids: Vec<NodeId> = self.others.keys().cloned().collect();
        for id in ids {
            self.del_node(&id);
        }
        if hard {
            self.current_epoch = 0;
            self.last_vote_epoch = 0;
            self.me.config_epoch = 0;
            let id = random_node_id();
            self.me.id = Arc::clone(&id);
            self.myself = id;
        }
        self.mark_dirty();
        self.update_state();
    }

    /// The master serving `slot`.
    pub fn owner(&self, slot: u16) -> Option<&NodeId> {
        self.owners.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// The node serving `slot`.
    pub fn owner_node(&self, slot: u16) -> Option<&ClusterNode> {
        self.owner(slot).and_then(|id| self.node(id))
    }

    /// Moves `slot` to `owner` (or unassigns it) without the state update.
    fn assign(&mut self, slot: u16, owner: Option<&NodeId>) {
        let Some(entry) = self.owners.get_mut(usize::from(slot)) else {
            return;
        };
        if entry.as_deref() == owner.map(|o| &**o) {
            return;
        }
        let old = std::mem::replace(entry, owner.cloned());
        if let Some(old) = old {
            let old_node = if *old == *self.myself {
                Some(&mut self.me)
            } else {
                self.others.get_mut(&old)
            };
            if let Some(n) = old_node {
                if n.slots.remove(slot) {
                    n.numslots -= 1;
                }
            }
        }
        if let Some(new) = owner {
            // A master's first slot, while others have replicas: it is
            // meant to have some too (Redis's clusterNodeSetSlotBit).
            let first = self.node(new).is_some_and(|n| n.numslots == 0);
            let meant_for_replicas = first && self.nodes().any(|n| n.master.is_some());
            let new_node = if **new == *self.myself {
                Some(&mut self.me)
            } else {
                self.others.get_mut(new)
            };
            if let Some(n) = new_node {
                if n.slots.insert(slot) {
                    n.numslots += 1;
                    n.migrate_to |= meant_for_replicas;
                }
            }
        }
        self.dirty = true;
    }

    /// Sets (or clears) the master serving `slot`, then recomputes
    /// `cluster_state`.
    pub fn set_owner(&mut self, slot: u16, owner: Option<NodeId>) {
        self.assign(slot, owner.as_ref());
        self.mark_dirty();
        self.update_state();
    }

    /// Sets the master of every slot in `slots` with one state update.
    pub fn set_owners(&mut self, slots: impl IntoIterator<Item = u16>, owner: Option<&NodeId>) {
        for slot in slots {
            self.assign(slot, owner);
        }
        self.mark_dirty();
        self.update_state();
    }

    /// The slots `id` serves, ascending.
    pub fn slots_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = u16> + 'a {
        self.node(id).into_iter().flat_map(|n| n.slots.iter())
    }

    /// Number of slots with an owner.
    pub fn slots_assigned(&self) -> usize {
        self.nodes().map(|n| n.numslots).sum()
    }

    /// Recomputes `cluster_state` and `cluster_size` as Redis's
    /// `clusterUpdateState`: ok when every slot is served by a master not
    /// agreed failed (unless full coverage is not required), and this node
    /// sees a majority of the masters that serve slots. A master that was
    /// in a minority waits a little before serving again.
    ///
    /// Like Redis, a master restarted into a cluster waits 2 s before its
    /// state may turn ok ([`ClusterState::hold_state_after_restart`]);
    /// unlike Redis, a new node does not (its first slots serve at once).
    pub fn update_state(&mut self) {
        let now = unix_ms();
        let mut ok = true;
        if self.require_full_coverage {
            let mut covered = SlotBitmap::new();
            for n in self.nodes().filter(|n| !n.fail && n.numslots > 0) {
                covered.union_with(&n.slots);
            }
            ok = covered.is_full();
        }
        let mut size = 0;
        let mut reachable = 0;
        for n in self.nodes() {
            if n.is_master() && n.numslots > 0 {
                size += 1;
                if !n.fail && !n.pfail {
                    reachable += 1;
                }
            }
        }
        self.size = size;
        if reachable < size / 2 + 1 {
            ok = false;
            // A node that serves nothing yet is not in a partition: unlike
            // Redis, claiming slots then takes effect at once.
            if size > 0 {
                self.among_minority_ms = now;
            }
        }
        if ok != self.state_ok {
            if ok && self.me.is_master() && now < self.rejoin_hold_until_ms {
                return;
            }
            let rejoin_delay =
                (self.node_timeout_ms as i64).clamp(MIN_REJOIN_DELAY_MS, MAX_REJOIN_DELAY_MS);
            if ok
                && self.me.is_master()
                && self.among_minority_ms != 0
                && now - self.among_minority_ms < rejoin_delay
            {
                return;
            }
            tracing::info!(
                state = if ok { "ok" } else { "fail" },
                "cluster state changed"
            );
            self.state_ok = ok;
        }
    }

    /// The CLUSTER INFO text.
    pub fn info_text(&self) -> String {
        use std::fmt::Write as _;
        let (mut ok, mut pfail, mut fail, mut assigned) = (0, 0, 0, 0);
        for n in self.nodes() {
            assigned += n.numslots;
            if n.fail {
                fail += n.numslots;
            } else if n.pfail {
                pfail += n.numslots;
            } else {
                ok += n.numslots;
            }
        }
        let my_epoch = match (self.me.role, self.my_master()) {
            (Role::Replica, Some(m)) => m.config_epoch,
            _ => self.me.config_epoch,
        };
        let mut s = String::with_capacity(1024);
        let _ = write!(
            s,
            "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
             cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\n\
             cluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\n\
             cluster_my_epoch:{my_epoch}\r\n",
            if self.state_ok { "ok" } else { "fail" },
            self.known_nodes(),
            self.size,
            self.current_epoch,
        );
        let names = crate::node::bus::proto::KIND_NAMES;
        for (counts, dir) in [
            (&self.stats.sent, "sent"),
            (&self.stats.received, "received"),
        ] {
            let mut total = 0;
            for (name, &n) in names.iter().zip(counts.iter()) {
                if n > 0 {
                    let _ = write!(s, "cluster_stats_messages_{name}_{dir}:{n}\r\n");
                    total += n;
                }
            }
            let _ = write!(s, "cluster_stats_messages_{dir}:{total}\r\n");
        }
        let _ = write!(
            s,
            "total_cluster_links_buffer_limit_exceeded:{}\r\n",
            self.stats.links_buffer_limit_exceeded
        );
        s
    }

    fn addr_of(&self, id: &str) -> String {
        self.node(id).map(ClusterNode::addr).unwrap_or_default()
    }

    fn is_my_master(&self, id: &str) -> bool {
        self.me.master.as_deref().is_some_and(|m| m == id)
    }

    /// Checks that this node serves `req`'s keys, as Redis's
    /// `getNodeByQuery` (cluster.c) does, and gives the redirect or error
    /// Redis would send otherwise.
    ///
    /// # Errors
    /// `CROSSSLOT`, `MOVED`, `ASK`, `TRYAGAIN` or `CLUSTERDOWN`, in Redis's
    /// words.
    pub fn check_request(
        &self,
        db: &mut Keyspace,
        spec: &'static CommandSpec,
        req: &Request,
        client: &ClientState,
    ) -> Result<(), CmdError> {
        if spec.key_specs.is_empty() {
            return Ok(());
        }
        let positions = match spec.keys(req) {
            Ok(p) => p,
            // The handler reports a bad key count with its own text.
            Err(_) => return Ok(()),
        };
        let is_migrate = spec.name == "migrate";
        let mut slot = None;
        let mut multiple_keys = false;
        let mut missing_keys = 0usize;
        let mut migrating = false;
        let mut importing = false;
        for &pos in positions.as_slice() {
            let key = req.arg(pos).unwrap_or_default();
            // MIGRATE's key is "" in its KEYS form; the keys follow.
            if is_migrate && key.is_empty() {
                continue;
            }
            let this = key_slot(key);
            match slot {
                None => {
                    slot = Some(this);
                    let Some(owner) = self.owner(this) else {
                        return Err(CmdError::fixed("CLUSTERDOWN Hash slot not served"));
                    };
                    if **owner == *self.myself && self.migrating.contains_key(&this) {
                        migrating = true;
                    } else if self.importing.contains_key(&this) {
                        importing = true;
                    }
                }
                Some(first) if first != this => return Err(CmdError::CROSSSLOT),
                Some(_) => multiple_keys = true,
            }
            if (migrating || importing) && !db.contains(key) {
                missing_keys += 1;
            }
        }
        let Some(slot) = slot else {
            return Ok(());
        };
        if !self.state_ok {
            return Err(CmdError::fixed("CLUSTERDOWN The cluster is down"));
        }
        if (migrating || importing) && is_migrate {
            return Ok(());
        }
        if migrating && missing_keys > 0 {
            let to = self.migrating.get(&slot).map(|id| self.addr_of(id));
            return Err(CmdError::new(format!(
                "ASK {slot} {}",
                to.unwrap_or_default()
            )));
        }
        if importing && (client.asking || spec.has_flag(flags::ASKING)) {
            if multiple_keys && missing_keys > 0 {
                return Err(CmdError::fixed(
                    "TRYAGAIN Multiple keys request during rehashing of slot",
                ));
            }
            return Ok(());
        }
        let Some(owner) = self.owner(slot) else {
            return Err(CmdError::fixed("CLUSTERDOWN Hash slot not served"));
        };
        if **owner == *self.myself {
            return Ok(());
        }
        let read_only = spec.has_flag(flags::READONLY) && !spec.has_flag(flags::WRITE);
        if client.readonly && read_only && self.is_my_master(owner) {
            return Ok(());
        }
        Err(CmdError::new(format!(
            "MOVED {slot} {}",
            self.addr_of(owner)
        )))
    }
}

#[cfg(test)]
mod tests;
