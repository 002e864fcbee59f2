//! The cluster bus: the nodes of a cluster talking to each other on their
//! cluster ports (gossip, MEET, slot and epoch agreement, PUBLISH fan-out).
//! The protocol is Slotway's own.
//!
//! Commands hand messages to the bus through a [`BusHandle`], which never
//! blocks: the bus task owns the connections and sends them out.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Something a command asks the bus to tell other nodes.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// PUBLISH (shard `None`: every node) or SPUBLISH (the nodes serving
    /// that slot: its master and replicas).
    Publish {
        channel: Bytes,
        message: Bytes,
        shard: Option<u16>,
    },
}

/// The sending side of the bus, held by [`crate::node::state::Shared`].
#[derive(Debug, Clone)]
pub struct BusHandle {
    tx: mpsc::UnboundedSender<Outbound>,
}

impl BusHandle {
    pub fn new() -> (BusHandle, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (BusHandle { tx }, rx)
    }

    /// Queues `message` for the bus; dropped if the bus has stopped (the
    /// node is shutting down).
    pub fn send(&self, message: Outbound) {
        let _ = self.tx.send(message);
    }
}
