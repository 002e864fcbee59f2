//! The slot map: which master owns each slot, as one immutable snapshot.
//!
//! Snapshots are built off the hot path and published through an `ArcSwap`
//! (see [`super::refresh`]); a request reads the current one without a lock.
//!
//! Nodes can disagree about ownership: a master frozen past its node timeout
//! wakes up still claiming slots that a promoted replica now serves. Every
//! claim therefore carries the claimant's config epoch, and for each slot the
//! highest epoch wins ([`merge`]). The previous snapshot's claims take part
//! in the merge, so one stale answer can never pull the map back.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::cluster::SLOT_COUNT;
use crate::cluster::nodes::NodeLine;

use super::backend::Node;

/// Marks a slot no master claims.
const NO_OWNER: u16 = u16::MAX;

/// Who owns one slot, and how sure we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Shared: the same address stands in thousands of slots, and the map
    /// is copied on every change.
    pub addr: Arc<str>,
    pub config_epoch: u64,
}

/// Ownership of every slot, merged from the answers of several nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaims {
    pub slots: Vec<Option<Claim>>,
    /// Every usable node any answer mentioned (masters and replicas).
    pub known_addrs: Vec<String>,
    /// Addresses of nodes flagged `fail` by some answer.
    pub failed_addrs: Vec<String>,
    /// Each master's replicas (addresses), as the answers describe them.
    pub replicas: BTreeMap<String, Vec<String>>,
}

/// Merges `CLUSTER NODES` answers (and the previous claims, if any) into one
/// claim per slot, the highest config epoch winning. On a tie the previous
/// owner stays, so equal-epoch noise cannot flip a slot back and forth.
pub fn merge(answers: &[Vec<NodeLine>], previous: Option<&SlotClaims>) -> SlotClaims {
    let usable = || answers.iter().flatten().filter(|line| !line.unusable);
    let mut known: Vec<String> = usable().map(|line| line.addr.clone()).collect();
    let mut failed: Vec<String> = usable()
        .filter(|line| line.failed)
        .map(|line| line.addr.clone())
        .collect();
    // Sorted, so that answers arriving in another order compare equal.
    known.sort();
    known.dedup();
    failed.sort();
    failed.dedup();
    let mut slots: Vec<Option<Claim>> = match previous {
        Some(p) => p.slots.clone(),
        None => vec![None; SLOT_COUNT],
    };
    // A previous owner that no answer mentions any more was removed from the
    // cluster (or the cluster was rebuilt): its claims are void.
    if !answers.is_empty() {
        for entry in &mut slots {
            if entry
                .as_ref()
                .is_some_and(|c| known.binary_search_by(|k| k.as_str().cmp(&c.addr)).is_err())
            {
                *entry = None;
            }
        }
    }
    for line in usable().filter(|line| line.master) {
        let addr: Arc<str> = Arc::from(line.addr.as_str());
        for slot in line.slots.iter().flat_map(|range| range.clone()) {
            let Some(entry) = slots.get_mut(usize::from(slot)) else {
                continue;
            };
            if entry
                .as_ref()
                .is_none_or(|c| line.config_epoch > c.config_epoch)
            {
                *entry = Some(Claim {
                    addr: addr.clone(),
                    config_epoch: line.config_epoch,
                });
            }
        }
    }
    SlotClaims {
        slots,
        known_addrs: known,
        failed_addrs: failed,
        replicas: replicas_by_master(answers),
    }
}

/// Groups replicas under their master's address. A node that any answer
/// calls a master is not listed as a replica (mid-failover answers differ).
fn replicas_by_master(answers: &[Vec<NodeLine>]) -> BTreeMap<String, Vec<String>> {
    let lines = || answers.iter().flatten().filter(|line| !line.unusable);
    let addr_of: BTreeMap<&str, &str> = lines().map(|l| (l.id.as_str(), l.addr.as_str())).collect();
    let masters: Vec<&str> = lines()
        .filter(|l| l.master)
        .map(|l| l.addr.as_str())
        .collect();
    let mut replicas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines().filter(|l| !l.master && !masters.contains(&l.addr.as_str())) {
        let Some(master) = line.master_id.as_deref().and_then(|id| addr_of.get(id)) else {
            continue;
        };
        let list = replicas.entry((*master).to_string()).or_default();
        if !list.contains(&line.addr) {
            list.push(line.addr.clone());
        }
    }
    for list in replicas.values_mut() {
        list.sort();
    }
    replicas
}

/// The masters in the order a fan-out walk visits them, and a fingerprint
/// of who owns which slots.
#[derive(Debug)]
pub struct WalkOrder {
    /// Every master owning a slot, ordered by the lowest slot it owns.
    pub masters: Vec<Arc<Node>>,
    /// Equal for two snapshots where the same masters own the same slots
    /// (also in another process of the same build); different, but for
    /// hash collisions, otherwise.
    pub fingerprint: u64,
}

/// One immutable view of the cluster, shared by every request.
#[derive(Debug)]
pub struct Topology {
    /// Increases by one with every snapshot published.
    pub version: u64,
    claims: SlotClaims,
    /// For each slot, an index into `nodes` (or [`NO_OWNER`]).
    owners: Box<[u16]>,
    nodes: Vec<Arc<Node>>,
    /// Computed on first use (SCAN), not on the refresh path.
    walk: OnceLock<WalkOrder>,
}

impl Topology {
    /// An empty map: no slot has an owner yet.
    pub fn empty() -> Topology {
        Topology {
            version: 0,
            claims: SlotClaims {
                slots: vec![None; SLOT_COUNT],
                known_addrs: vec![],
                failed_addrs: vec![],
                replicas: BTreeMap::new(),
            },
            owners: vec![NO_OWNER; SLOT_COUNT].into_boxed_slice(),
            nodes: vec![],
            walk: OnceLock::new(),
        }
    }

    /// Builds a snapshot from merged claims, taking each node's handle from
    /// `node_for(addr)` (which creates or reuses the links).
    pub fn build(
        version: u64,
        claims: SlotClaims,
        mut node_for: impl FnMut(&str) -> Arc<Node>,
    ) -> Topology {
        let mut index: HashMap<Arc<str>, u16> = HashMap::new();
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut owners = vec![NO_OWNER; SLOT_COUNT].into_boxed_slice();
        for (slot, claim) in claims.slots.iter().enumerate() {
            let Some(claim) = claim else { continue };
            let i = match index.get(&claim.addr) {
                Some(&i) => i,
                None => {
                    let i = nodes.len() as u16;
                    nodes.push(node_for(&claim.addr));
                    index.insert(claim.addr.clone(), i);
                    i
                }
            };
            if let Some(o) = owners.get_mut(slot) {
                *o = i;
            }
        }
        Topology {
            version,
            claims,
            owners,
            nodes,
            walk: OnceLock::new(),
        }
    }

    /// The master that owns `slot`, if any.
    #[inline]
    pub fn master(&self, slot: u16) -> Option<&Arc<Node>> {
        let i = *self.owners.get(usize::from(slot))?;
        self.nodes.get(usize::from(i))
    }

    /// True when every slot has an owner.
    pub fn is_complete(&self) -> bool {
        self.owners.iter().all(|&o| o != NO_OWNER)
    }

    /// The distinct masters owning at least one slot.
    pub fn masters(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The master keyless commands go to, and the pub/sub home: every
    /// subscriber's channels and patterns are there and so is every
    /// PUBLISH, so PUBLISH counts this proxy's subscribers as one server
    /// would (see pubsub.rs). The owner of slot 0 while it is up, else the
    /// first master in slot order that is; the owner of slot 0 when none is.
    /// Every session sees the same snapshot, so they all agree on it.
    pub fn home(&self) -> Option<&Arc<Node>> {
        let first = self.master(0).or(self.nodes.first());
        first
            .into_iter()
            .chain(self.nodes.iter())
            .find(|n| n.is_ready())
            .or(first)
    }

    /// The replicas of the master that owns `slot`.
    pub fn replicas(&self, slot: u16) -> &[String] {
        self.master(slot)
            .and_then(|m| self.claims.replicas.get(m.addr()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn claims(&self) -> &SlotClaims {
        &self.claims
    }

    /// A copy with `slot` moved to `node` (a `MOVED` reply), keeping the
    /// slot's config epoch: the next refresh confirms or corrects it.
    pub fn with_moved_slot(&self, slot: u16, node: Arc<Node>) -> Topology {
        let mut claims = self.claims.clone();
        let epoch = claims
            .slots
            .get(usize::from(slot))
            .and_then(|c| c.as_ref().map(|c| c.config_epoch))
            .unwrap_or(0);
        if let Some(entry) = claims.slots.get_mut(usize::from(slot)) {
            *entry = Some(Claim {
                addr: Arc::from(node.addr()),
                config_epoch: epoch,
            });
        }
        let mut nodes = self.nodes.clone();
        let mut owners = self.owners.clone();
        let i = match nodes.iter().position(|n| n.addr() == node.addr()) {
            Some(i) => i,
            None => {
                nodes.push(node);
                nodes.len() - 1
            }
        };
        if let Some(o) = owners.get_mut(usize::from(slot)) {
            *o = i as u16;
        }
        Topology {
            version: self.version + 1,
            claims,
            owners,
            nodes,
            walk: OnceLock::new(),
        }
    }

    /// The masters in walk order (by lowest owned slot), with the
    /// fingerprint of this slot map.
    pub fn walk_order(&self) -> &WalkOrder {
        self.walk.get_or_init(|| {
            let addrs: Vec<&str> = self.nodes.iter().map(|n| n.addr()).collect();
            let (order, fingerprint) = walk_order_of(&self.owners, &addrs);
            WalkOrder {
                masters: order
                    .into_iter()
                    .filter_map(|i| self.nodes.get(i).cloned())
                    .collect(),
                fingerprint,
            }
        })
    }
}

/// For a slot map (`owners[slot]` indexes `addrs`, or is [`NO_OWNER`]): the
/// owners ordered by the lowest slot each owns, and a fingerprint of the map
/// as runs of slots, each naming its owner by address.
fn walk_order_of(owners: &[u16], addrs: &[&str]) -> (Vec<usize>, u64) {
    let mut position = vec![usize::MAX; addrs.len()];
    let mut order: Vec<usize> = Vec::new();
    let mut hasher = DefaultHasher::new();
    let mut previous = NO_OWNER;
    for (slot, &owner) in owners.iter().enumerate() {
        let owner_index = usize::from(owner);
        if let Some(pos) = position.get_mut(owner_index) {
            if *pos == usize::MAX {
                *pos = order.len();
                order.push(owner_index);
            }
        }
        if owner != previous {
            slot.hash(&mut hasher);
            addrs.get(owner_index).unwrap_or(&"").hash(&mut hasher);
            previous = owner;
        }
    }
    (order, hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::nodes::parse;

    fn answer(lines: &str) -> Vec<NodeLine> {
        parse(lines)
    }

    const HEALTHY: &str = "\
a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-8191
b 127.0.0.1:7002@17002 master - 0 0 2 connected 8192-16383
c 127.0.0.1:7003@17003 slave a 0 0 1 connected
";
    // c was promoted (epoch 3) while a was frozen; a still believes it owns
    // its slots at epoch 1.
    const PROMOTED: &str = "\
a 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected
b 127.0.0.1:7002@17002 myself,master - 0 0 2 connected 8192-16383
c 127.0.0.1:7003@17003 master - 0 0 3 connected 0-8191
";
    const STALE: &str = "\
a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-8191
b 127.0.0.1:7002@17002 master - 0 0 2 connected 8192-16383
c 127.0.0.1:7003@17003 slave a 0 0 1 connected
";

    fn owner(c: &SlotClaims, slot: usize) -> &str {
        c.slots[slot].as_ref().unwrap().addr.as_ref()
    }

    #[test]
    fn highest_epoch_wins_within_one_refresh() {
        let merged = merge(&[answer(STALE), answer(PROMOTED)], None);
        assert_eq!(owner(&merged, 0), "127.0.0.1:7003");
        assert_eq!(owner(&merged, 16383), "127.0.0.1:7002");
        assert_eq!(merged.failed_addrs, vec!["127.0.0.1:7001".to_string()]);
    }

    #[test]
    fn replicas_follow_their_master() {
        let healthy = merge(&[answer(HEALTHY)], None);
        assert_eq!(
            healthy.replicas.get("127.0.0.1:7001"),
            Some(&vec!["127.0.0.1:7003".to_string()])
        );
        // After the promotion 7003 is a master: no longer anyone's replica,
        // even while a stale answer still calls it one.
        let promoted = merge(&[answer(STALE), answer(PROMOTED)], Some(&healthy));
        assert!(promoted.replicas.is_empty(), "{:?}", promoted.replicas);
    }

    #[test]
    fn a_stale_answer_alone_cannot_pull_the_map_back() {
        let first = merge(&[answer(HEALTHY)], None);
        let after_failover = merge(&[answer(PROMOTED)], Some(&first));
        assert_eq!(owner(&after_failover, 100), "127.0.0.1:7003");
        let stale = merge(&[answer(STALE)], Some(&after_failover));
        assert_eq!(owner(&stale, 100), "127.0.0.1:7003");
    }

    fn owners(runs: &[(usize, u16)]) -> Vec<u16> {
        let mut owners = vec![NO_OWNER; SLOT_COUNT];
        for (i, &(start, owner)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(SLOT_COUNT, |r| r.0);
            owners[start..end].fill(owner);
        }
        owners
    }

    #[test]
    fn walk_order_follows_the_lowest_slot_and_fingerprints_ownership() {
        let addrs = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
        let map = owners(&[(0, 1), (5000, 0), (10000, 1), (12000, 2)]);
        let (order, fingerprint) = walk_order_of(&map, &addrs);
        assert_eq!(order, [1, 0, 2]);
        // The same owners under other node indices: the same fingerprint.
        let renumbered = owners(&[(0, 0), (5000, 2), (10000, 0), (12000, 1)]);
        let other_addrs = ["127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7001"];
        assert_eq!(walk_order_of(&renumbered, &other_addrs).1, fingerprint);
        // One slot moved, or another node in the same place: another one.
        let moved = owners(&[(0, 1), (5001, 0), (10000, 1), (12000, 2)]);
        assert_ne!(walk_order_of(&moved, &addrs).1, fingerprint);
        let promoted = ["127.0.0.1:7001", "127.0.0.1:7004", "127.0.0.1:7003"];
        assert_ne!(walk_order_of(&map, &promoted).1, fingerprint);
        // A slot without an owner counts too.
        let mut gap = map.clone();
        gap[42] = NO_OWNER;
        assert_ne!(walk_order_of(&gap, &addrs).1, fingerprint);
    }

    #[test]
    fn forgotten_owners_lose_their_slots() {
        let first = merge(&[answer(HEALTHY)], None);
        let rebuilt = merge(
            &[answer(
                "x 127.0.0.1:7100@17100 myself,master - 0 0 1 connected 0-100",
            )],
            Some(&first),
        );
        assert_eq!(owner(&rebuilt, 5), "127.0.0.1:7100");
        assert!(rebuilt.slots[200].is_none());
    }
}
