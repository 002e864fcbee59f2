//! Replica migration, as Redis Cluster does it (cluster.c:
//! `clusterHandleSlaveMigration`): a master that is meant to have
//! replicas (MIGRATE_TO) but has no working one left is orphaned; after
//! 5 s, one spare replica moves to it: a replica of a master with the
//! most working replicas (at least two, and more than
//! `cluster-migration-barrier` of them), the one with the smallest id.
//! Off with `cluster-allow-replica-migration no`.

use std::sync::Arc;

use super::{ClusterState, NodeId};

/// `cluster-migration-barrier`'s default, as Redis's.
pub const DEFAULT_BARRIER: u64 = 1;
/// How long a master must stay orphaned before a replica moves to it, so
/// that the replicas of a master that just failed over have time to say
/// they follow it (Redis's CLUSTER_SLAVE_MIGRATION_DELAY).
const MIGRATION_DELAY_MS: i64 = 5000;

/// Replicas of `master` not agreed failed.
fn working_replicas(cs: &ClusterState, master: &str) -> usize {
    cs.replicas_of(master).iter().filter(|r| !r.fail).count()
}

/// The replica migration part of a bus tick (this node being a replica).
pub fn cron(cs: &mut ClusterState, now: i64) {
    if !cs.me().is_replica() || !cs.allow_replica_migration {
        return;
    }
    let (mut orphaned, mut max_replicas, mut mine) = (0usize, 0usize, 0usize);
    for n in cs.others() {
        if n.noaddr || n.handshake || !n.is_master() || n.fail {
            continue;
        }
        let ok = working_replicas(cs, &n.id);
        if ok == 0 && n.numslots() > 0 && n.migrate_to {
            orphaned += 1;
        }
        max_replicas = max_replicas.max(ok);
        if cs.me().master.as_deref() == Some(&*n.id) {
            mine = ok;
        }
    }
    // Migrating only makes sense from a master with two working replicas.
    if orphaned > 0 && max_replicas >= 2 && mine == max_replicas {
        migrate_if_needed(cs, max_replicas, now);
    }
}

/// Redis's `clusterHandleSlaveMigration`.
fn migrate_if_needed(cs: &mut ClusterState, max_replicas: usize, now: i64) {
    if !cs.state_ok {
        return;
    }
    let Some(my_master) = cs.me().master.clone() else {
        return;
    };
    let keeps = cs
        .replicas_of(&my_master)
        .iter()
        .filter(|r| !r.fail && !r.pfail)
        .count();
    if keeps as u64 <= cs.migration_barrier {
        return;
    }
    let mut candidate: NodeId = Arc::clone(&cs.myself);
    let mut target: Option<NodeId> = None;
    let ids: Vec<NodeId> = cs.nodes().map(|n| Arc::clone(&n.id)).collect();
    for id in ids {
        let Some(n) = cs.node(&id) else { continue };
        let ok = if n.is_master() {
            working_replicas(cs, &id)
        } else {
            0
        };
        let is_orphaned = n.is_master() && !n.fail && n.migrate_to && ok == 0;
        if is_orphaned && target.is_none() && n.numslots() > 0 {
            target = Some(Arc::clone(&id));
        }
        if ok == max_replicas {
            for r in cs.replicas_of(&id) {
                if r.id < candidate {
                    candidate = Arc::clone(&r.id);
                }
            }
        }
        if let Some(n) = cs.node_mut(&id) {
            if !is_orphaned {
                n.orphaned_since_ms = 0;
            } else if n.orphaned_since_ms == 0 {
                n.orphaned_since_ms = now;
            }
        }
    }
    let Some(target) = target else { return };
    let waited = cs
        .node(&target)
        .is_some_and(|t| now - t.orphaned_since_ms > MIGRATION_DELAY_MS);
    if cs.is_myself(&candidate) && waited {
        tracing::warn!(master = %target, "migrating to orphaned master");
        cs.set_my_master(&target);
    }
}
