//! `slotway cluster check HOST:PORT`: is the cluster whole and settled?
//!
//! Starting from one node's `CLUSTER NODES`, every node is asked for its own
//! view, and the views are compared: the same nodes, the same owner for every
//! slot, no node flagged failing, no slot left migrating or importing, every
//! slot owned. Masters' key counts (`DBSIZE`) and replica counts are listed
//! as `redis-cli --cluster check` does.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::error::OpError;
use super::survey::{Survey, format_ranges, known_ids, owners, slot_count};
use crate::cluster::SLOT_COUNT;

/// What a check found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The node the check started from.
    pub entry: String,
    /// Every master the entry node knows, by first slot.
    pub masters: Vec<MasterReport>,
    /// Every replica the entry node knows, in the order of their masters.
    pub replicas: Vec<ReplicaReport>,
    /// Slots with an owner in the entry node's view.
    pub covered: usize,
    /// Everything wrong; empty when the cluster is fine.
    pub issues: Vec<Issue>,
}

/// One master, as the entry node sees it.
#[derive(Debug, Clone)]
pub struct MasterReport {
    pub id: String,
    pub addr: String,
    pub slots: Vec<RangeInclusive<u16>>,
    /// `DBSIZE`; `None` when the node could not be asked.
    pub keys: Option<u64>,
    /// Replicas not flagged `fail`.
    pub replicas: usize,
}

/// One replica, as the entry node sees it.
#[derive(Debug, Clone)]
pub struct ReplicaReport {
    pub id: String,
    pub addr: String,
    pub master_id: Option<String>,
}

/// Whether an open slot is leaving or arriving at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Migrating,
    Importing,
}

/// One thing wrong with the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// A node could not be reached or did not answer.
    Unreachable { addr: String, error: String },
    /// `by` flags `addr` as failing (`fail`, `fail?`) or not yet usable.
    Flagged {
        by: String,
        addr: String,
        flag: &'static str,
    },
    /// A node knows a different set of nodes than the entry node.
    OtherNodes { addr: String, detail: String },
    /// A node names other owners than the entry node for some slots.
    Disagree {
        addr: String,
        slots: usize,
        first: u16,
    },
    /// A slot left half moved: `CLUSTER SETSLOT ... MIGRATING/IMPORTING`.
    OpenSlot {
        addr: String,
        slot: u16,
        state: SlotState,
        /// The node id on the other end of the move.
        peer: String,
    },
    /// Slots without an owner in the entry node's view.
    Uncovered { count: usize, first: u16 },
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issue::Unreachable { addr, error } => write!(f, "[ERR] Node {addr}: {error}"),
            Issue::Flagged { by, addr, flag } => {
                write!(f, "[ERR] Node {by} flags {addr} as {flag}")
            }
            Issue::OtherNodes { addr, detail } => {
                write!(
                    f,
                    "[ERR] Node {addr} knows other nodes than the entry node: {detail}"
                )
            }
            Issue::Disagree { addr, slots, first } => write!(
                f,
                "[ERR] Node {addr} disagrees on the owner of {slots} slot(s), first {first}"
            ),
            Issue::OpenSlot {
                addr,
                slot,
                state,
                peer,
            } => {
                let (state, dir) = match state {
                    SlotState::Migrating => ("migrating", "to"),
                    SlotState::Importing => ("importing", "from"),
                };
                write!(
                    f,
                    "[WARNING] Node {addr} has slot {slot} in {state} state ({dir} {peer})"
                )
            }
            Issue::Uncovered { count, first } => write!(
                f,
                "[ERR] Not all {SLOT_COUNT} slots are covered by nodes: {count} without an owner, first {first}"
            ),
        }
    }
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.issues.is_empty()
    }

    /// The open slots found, with the node and direction.
    pub fn open_slots(&self) -> impl Iterator<Item = (&str, u16, SlotState)> {
        self.issues.iter().filter_map(|issue| match issue {
            Issue::OpenSlot {
                addr, slot, state, ..
            } => Some((addr.as_str(), *slot, *state)),
            _ => None,
        })
    }

    /// The report as `redis-cli --cluster check` lays it out.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut total_keys = 0u64;
        for m in &self.masters {
            let keys = m.keys.map_or_else(|| "?".to_string(), |k| k.to_string());
            total_keys += m.keys.unwrap_or(0);
            out.push(format!(
                "{} ({}...) -> {keys} keys | {} slots | {} replicas.",
                m.addr,
                short_id(&m.id),
                slot_count(&m.slots),
                m.replicas
            ));
        }
        out.push(format!(
            "[OK] {total_keys} keys in {} masters.",
            self.masters.len()
        ));
        out.push(format!(
            "{:.2} keys per slot on average.",
            total_keys as f64 / SLOT_COUNT as f64
        ));
        out.push(format!(
            ">>> Performing Cluster Check (using node {})",
            self.entry
        ));
        for m in &self.masters {
            out.push(format!("M: {} {}", m.id, m.addr));
            out.push(format!(
                "   slots:[{}] ({} slots) master",
                format_ranges(&m.slots),
                slot_count(&m.slots)
            ));
            if m.replicas > 0 {
                out.push(format!("   {} additional replica(s)", m.replicas));
            }
        }
        for r in &self.replicas {
            out.push(format!("S: {} {}", r.id, r.addr));
            out.push("   slots: (0 slots) slave".to_string());
            if let Some(master) = &r.master_id {
                out.push(format!("   replicates {master}"));
            }
        }
        let reach: Vec<&Issue> = self
            .issues
            .iter()
            .filter(|i| matches!(i, Issue::Unreachable { .. } | Issue::Flagged { .. }))
            .collect();
        out.extend(reach.iter().map(ToString::to_string));
        let disagree: Vec<&Issue> = self
            .issues
            .iter()
            .filter(|i| matches!(i, Issue::OtherNodes { .. } | Issue::Disagree { .. }))
            .collect();
        if disagree.is_empty() {
            out.push("[OK] All nodes agree about slots configuration.".to_string());
        } else {
            out.push("[ERR] Nodes don't agree about configuration!".to_string());
            out.extend(disagree.iter().map(ToString::to_string));
        }
        out.push(">>> Check for open slots...".to_string());
        let open: Vec<u16> = self.open_slots().map(|(_, slot, _)| slot).collect();
        if !open.is_empty() {
            out.extend(
                self.issues
                    .iter()
                    .filter(|i| matches!(i, Issue::OpenSlot { .. }))
                    .map(ToString::to_string),
            );
            let mut slots = open;
            slots.sort_unstable();
            slots.dedup();
            let listed: Vec<String> = slots.iter().map(u16::to_string).collect();
            out.push(format!(
                "[WARNING] The following slots are open: {}.",
                listed.join(",")
            ));
        }
        out.push(">>> Check slots coverage...".to_string());
        match self
            .issues
            .iter()
            .find(|i| matches!(i, Issue::Uncovered { .. }))
        {
            Some(issue) => out.push(issue.to_string()),
            None => out.push(format!("[OK] All {SLOT_COUNT} slots covered.")),
        }
        out
    }
}

/// Checks the cluster that `addr` belongs to. `timeout` bounds connecting
/// to each node and each command.
///
/// # Errors
/// Only when `addr` itself cannot be reached or is not a cluster node;
/// every other problem is an [`Issue`] in the report.
pub async fn check(addr: &str, timeout: Duration) -> Result<CheckReport, OpError> {
    let mut survey = Survey::load(addr, timeout).await?;
    Ok(inspect(&mut survey).await)
}

/// Compares the views a survey holds, and asks masters for `DBSIZE`.
pub(crate) async fn inspect(survey: &mut Survey) -> CheckReport {
    let mut issues = Vec::new();
    let entry_owners = owners(&survey.view);
    let entry_ids = known_ids(&survey.view);

    for node in &survey.nodes {
        let addr = &node.line.addr;
        let view = match &node.view {
            Ok(view) => view,
            Err(error) => {
                issues.push(Issue::Unreachable {
                    addr: addr.clone(),
                    error: error.clone(),
                });
                continue;
            }
        };
        for line in view {
            let flag = if line.failed {
                Some("failing (fail)")
            } else if line.suspected {
                Some("possibly failing (fail?)")
            } else if line.unusable {
                Some("not usable yet (handshake or no address)")
            } else {
                None
            };
            if let Some(flag) = flag {
                issues.push(Issue::Flagged {
                    by: addr.clone(),
                    addr: line.addr.clone(),
                    flag,
                });
            }
        }
        let ids = known_ids(view);
        if ids != entry_ids {
            let missing = entry_ids.difference(&ids).count();
            let extra = ids.difference(&entry_ids).count();
            issues.push(Issue::OtherNodes {
                addr: addr.clone(),
                detail: format!("{missing} missing, {extra} unknown to the entry node"),
            });
        }
        let mine = owners(view);
        let differing: Vec<usize> = (0..SLOT_COUNT)
            .filter(|&s| mine.get(s) != entry_owners.get(s))
            .collect();
        if let Some(&first) = differing.first() {
            issues.push(Issue::Disagree {
                addr: addr.clone(),
                slots: differing.len(),
                first: u16::try_from(first).unwrap_or(0),
            });
        }
        if let Some(me) = node.own_line() {
            for (slot, peer) in &me.migrating {
                issues.push(Issue::OpenSlot {
                    addr: addr.clone(),
                    slot: *slot,
                    state: SlotState::Migrating,
                    peer: peer.clone(),
                });
            }
            for (slot, peer) in &me.importing {
                issues.push(Issue::OpenSlot {
                    addr: addr.clone(),
                    slot: *slot,
                    state: SlotState::Importing,
                    peer: peer.clone(),
                });
            }
        }
    }

    let uncovered: Vec<usize> = (0..SLOT_COUNT)
        .filter(|&s| entry_owners.get(s).is_some_and(Option::is_none))
        .collect();
    let covered = SLOT_COUNT - uncovered.len();
    if let Some(&first) = uncovered.first() {
        issues.push(Issue::Uncovered {
            count: uncovered.len(),
            first: u16::try_from(first).unwrap_or(0),
        });
    }

    let mut masters = Vec::new();
    let mut replicas = Vec::new();
    for node in &mut survey.nodes {
        let line = &node.line;
        if line.master {
            let keys = match node.client.as_mut() {
                Some(client) if node.view.is_ok() => client
                    .int(&["DBSIZE"])
                    .await
                    .ok()
                    .and_then(|n| u64::try_from(n).ok()),
                _ => None,
            };
            let replica_count = survey
                .view
                .iter()
                .filter(|r| r.master_id.as_deref() == Some(line.id.as_str()) && !r.failed)
                .count();
            masters.push(MasterReport {
                id: line.id.clone(),
                addr: line.addr.clone(),
                slots: line.slots.clone(),
                keys,
                replicas: replica_count,
            });
        } else {
            replicas.push(ReplicaReport {
                id: line.id.clone(),
                addr: line.addr.clone(),
                master_id: line.master_id.clone(),
            });
        }
    }

    // Masters by their first slot (slotless last), replicas by master.
    masters.sort_by_key(|m| m.slots.first().map_or(u32::MAX, |r| u32::from(*r.start())));
    let rank = |r: &ReplicaReport| {
        masters
            .iter()
            .position(|m| Some(&m.id) == r.master_id.as_ref())
            .unwrap_or(usize::MAX)
    };
    replicas.sort_by_key(rank);
    CheckReport {
        entry: survey.entry.clone(),
        masters,
        replicas,
        covered,
        issues,
    }
}

/// The first 8 characters of a node id, for summaries.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
