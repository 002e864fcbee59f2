//! One look at a whole cluster: the entry node's `CLUSTER NODES`, then a
//! connection to every node it lists and that node's own `CLUSTER NODES`.
//! Check compares the views; reshard reuses the connections.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::client::NodeClient;
use super::error::OpError;
use crate::cluster::SLOT_COUNT;
use crate::cluster::nodes::{self, NodeLine};

/// The cluster as seen from one entry node, and from each node it knows.
pub(crate) struct Survey {
    /// The address the operator gave.
    pub entry: String,
    /// The entry node's view, in its order.
    pub view: Vec<NodeLine>,
    /// Every usable node of `view`, in the same order.
    pub nodes: Vec<Surveyed>,
}

/// One node of a [`Survey`].
pub(crate) struct Surveyed {
    /// As the entry node lists it; the entry's own line carries the address
    /// the operator gave, which a node that has met nobody does not know.
    pub line: NodeLine,
    /// `None` when the node could not be reached.
    pub client: Option<NodeClient>,
    /// The node's own `CLUSTER NODES`, or why it could not be had.
    pub view: Result<Vec<NodeLine>, String>,
}

impl Surveyed {
    /// This node's own `myself` line: the only one listing its open slots.
    pub fn own_line(&self) -> Option<&NodeLine> {
        self.view.as_ref().ok()?.iter().find(|n| n.myself)
    }
}

impl Survey {
    /// Reads the entry node's view, then connects to every node in it.
    /// Nodes in handshake or without an address are left out; a node that
    /// cannot be reached is kept, with the reason.
    ///
    /// # Errors
    /// When the entry node cannot be reached or does not answer `CLUSTER
    /// NODES` (it is not a cluster node).
    pub async fn load(entry: &str, timeout: Duration) -> Result<Survey, OpError> {
        let mut entry_client = NodeClient::connect(entry, timeout).await?;
        let text = entry_client.text(&["CLUSTER", "NODES"]).await?;
        let view = nodes::parse(&text);
        if !view.iter().any(|n| n.myself) {
            return Err(OpError::Refused(format!(
                "{entry}: CLUSTER NODES lists no 'myself' line: not a cluster node"
            )));
        }
        let mut entry_client = Some(entry_client);
        let mut surveyed = Vec::with_capacity(view.len());
        for line in view.iter().filter(|n| !n.unusable) {
            let mut line = line.clone();
            let client = if line.myself {
                line.addr = entry.to_string();
                entry_client.take()
            } else {
                NodeClient::connect(&line.addr, timeout).await.ok()
            };
            let mut node = Surveyed {
                line,
                client,
                view: Err(String::new()),
            };
            node.view = fetch_view(&mut node).await;
            surveyed.push(node);
        }
        Ok(Survey {
            entry: entry.to_string(),
            view,
            nodes: surveyed,
        })
    }

    /// Asks every reachable node for its `CLUSTER NODES` again.
    pub async fn refresh_views(&mut self) {
        for node in &mut self.nodes {
            node.view = fetch_view(node).await;
        }
    }
}

async fn fetch_view(node: &mut Surveyed) -> Result<Vec<NodeLine>, String> {
    let Some(client) = node.client.as_mut() else {
        return Err(format!("cannot connect to {}", node.line.addr));
    };
    match client.text(&["CLUSTER", "NODES"]).await {
        Ok(text) => Ok(nodes::parse(&text)),
        Err(e) => Err(e.to_string()),
    }
}

/// The owner (master id) of every slot in one node's view.
pub(crate) fn owners(view: &[NodeLine]) -> Vec<Option<&str>> {
    let mut owners = vec![None; SLOT_COUNT];
    for node in view.iter().filter(|n| n.master) {
        for range in &node.slots {
            for slot in range.clone() {
                if let Some(owner) = owners.get_mut(usize::from(slot)) {
                    *owner = Some(node.id.as_str());
                }
            }
        }
    }
    owners
}

/// The ids a view lists, handshakes left out (their ids are temporary).
pub(crate) fn known_ids(view: &[NodeLine]) -> BTreeSet<&str> {
    view.iter()
        .filter(|n| !n.unusable)
        .map(|n| n.id.as_str())
        .collect()
}

/// Sorted slots folded into ranges.
pub(crate) fn ranges(slots: impl IntoIterator<Item = u16>) -> Vec<RangeInclusive<u16>> {
    let mut out: Vec<RangeInclusive<u16>> = Vec::new();
    for slot in slots {
        match out.last_mut() {
            Some(last) if u32::from(*last.end()) + 1 == u32::from(slot) => {
                *last = *last.start()..=slot;
            }
            _ => out.push(slot..=slot),
        }
    }
    out
}

/// `0-5460,5462`, as redis-cli writes slot ranges.
pub(crate) fn format_ranges(ranges: &[RangeInclusive<u16>]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        })
        .collect();
    parts.join(",")
}

/// How many slots `ranges` cover.
pub(crate) fn slot_count(ranges: &[RangeInclusive<u16>]) -> usize {
    ranges
        .iter()
        .map(|r| usize::from(*r.end()) + 1 - usize::from(*r.start()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges() {
        let r = ranges([0, 1, 2, 5, 7, 8]);
        assert_eq!(r, vec![0..=2, 5..=5, 7..=8]);
        assert_eq!(format_ranges(&r), "0-2,5,7-8");
        assert_eq!(slot_count(&r), 6);
        assert!(ranges([]).is_empty());
    }

    #[test]
    fn owners_by_slot() {
        let view = nodes::parse(
            "a 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-2\n\
             b 127.0.0.1:3@4 slave a 0 0 1 connected\n\
             c 127.0.0.1:5@6 master - 0 0 2 connected 4",
        );
        let owners = owners(&view);
        assert_eq!(
            &owners[..5],
            &[Some("a"), Some("a"), Some("a"), None, Some("c")]
        );
        assert_eq!(known_ids(&view).len(), 3);
    }
}
