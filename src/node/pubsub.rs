//! Channel subscriptions of this node's clients (SUBSCRIBE, PSUBSCRIBE,
//! SSUBSCRIBE) and delivery of published messages to them, whether the
//! PUBLISH came from a local client or from another node over the bus.

/// Subscriptions by channel and by pattern.
#[derive(Debug, Default)]
pub struct PubSub {}

impl PubSub {
    /// Delivers `message` to this node's subscribers of `channel` (shard
    /// channels when `sharded`); returns how many clients received it.
    pub fn publish_local(&mut self, channel: &[u8], message: &[u8], sharded: bool) -> usize {
        let _ = (channel, message, sharded);
        0
    }
}
