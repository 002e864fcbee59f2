//! The cluster state of a built-in node: who is in the cluster, which node
//! serves each slot, epochs, and the slots being migrated. Commands check
//! here that this node serves their keys ([`ClusterState::check_request`]);
//! the cluster bus keeps it in agreement with the other nodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::client::ClientState;
use super::cmd::CmdError;
use super::db::{Keyspace, Map};
use crate::cluster::{SLOT_COUNT, key_slot};
use crate::command::{CommandSpec, flags};
use crate::resp::Request;

/// A node id: 40 lowercase hex characters.
pub type NodeId = Arc<str>;

/// A fresh random node id.
pub fn random_node_id() -> NodeId {
    use rand::Rng;
    let mut rng = rand::rng();
    let id: String = (0..40)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect();
    id.into()
}

/// What this node knows about one node of the cluster (itself included).
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: NodeId,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// The master this node replicates, if it is a replica.
    pub master: Option<NodeId>,
    pub config_epoch: u64,
    /// Unix ms of the last PING sent / PONG received (CLUSTER NODES).
    pub ping_sent_ms: i64,
    pub pong_received_ms: i64,
    /// The bus link to it is up.
    pub connected: bool,
    /// Suspected failing by this node (PFAIL) / agreed failed (FAIL).
    pub pfail: bool,
    pub fail: bool,
    /// Met but not yet answered: its real id is not known yet.
    pub handshake: bool,
}

impl ClusterNode {
    pub fn is_master(&self) -> bool {
        self.master.is_none()
    }

    /// `ip:port` as redirects name it.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// This node's view of the cluster.
#[derive(Debug)]
pub struct ClusterState {
    pub myself: NodeId,
    pub nodes: Map<NodeId, ClusterNode>,
    /// Slot -> the master serving it.
    owners: Vec<Option<NodeId>>,
    /// Slot -> node it is being migrated to (this node owns it).
    pub migrating: BTreeMap<u16, NodeId>,
    /// Slot -> node it is being imported from.
    pub importing: BTreeMap<u16, NodeId>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub require_full_coverage: bool,
    /// `cluster_state:ok`.
    pub state_ok: bool,
}

impl ClusterState {
    /// A node alone, knowing only itself, serving no slot.
    pub fn new(myself: ClusterNode, require_full_coverage: bool) -> Self {
        let id = Arc::clone(&myself.id);
        let mut nodes = Map::default();
        nodes.insert(Arc::clone(&id), myself);
        let mut state = ClusterState {
            myself: id,
            nodes,
            owners: vec![None; SLOT_COUNT],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            require_full_coverage,
            state_ok: false,
        };
        state.update_state();
        state
    }

    pub fn myself(&self) -> Option<&ClusterNode> {
        self.nodes.get(&self.myself)
    }

    /// The master serving `slot`.
    pub fn owner(&self, slot: u16) -> Option<&NodeId> {
        self.owners.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// Sets (or clears) the master serving `slot`, then recomputes
    /// `cluster_state`.
    pub fn set_owner(&mut self, slot: u16, owner: Option<NodeId>) {
        if let Some(entry) = self.owners.get_mut(usize::from(slot)) {
            *entry = owner;
        }
        self.update_state();
    }

    /// Sets the master of every slot in `slots` with one state update.
    pub fn set_owners(&mut self, slots: impl IntoIterator<Item = u16>, owner: Option<&NodeId>) {
        for slot in slots {
            if let Some(entry) = self.owners.get_mut(usize::from(slot)) {
                *entry = owner.cloned();
            }
        }
        self.update_state();
    }

    /// The slots `id` serves, ascending.
    pub fn slots_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = u16> + 'a {
        self.owners
            .iter()
            .enumerate()
            .filter(move |(_, o)| o.as_deref() == Some(id))
            .map(|(slot, _)| slot as u16)
    }

    /// Number of slots with an owner.
    pub fn slots_assigned(&self) -> usize {
        self.owners.iter().filter(|o| o.is_some()).count()
    }

    /// Recomputes `cluster_state`: ok when every slot has an owner not
    /// agreed failed (or when full coverage is not required).
    pub fn update_state(&mut self) {
        let covered = self.owners.iter().all(|o| match o {
            Some(id) => self.nodes.get(id).is_some_and(|n| !n.fail),
            None => false,
        });
        self.state_ok = covered || !self.require_full_coverage;
    }

    fn addr_of(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .map(ClusterNode::addr)
            .unwrap_or_default()
    }

    fn is_my_master(&self, id: &str) -> bool {
        self.myself()
            .and_then(|me| me.master.as_deref())
            .is_some_and(|m| m == id)
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
