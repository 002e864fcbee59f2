//! Channel subscriptions of this node's clients (SUBSCRIBE, PSUBSCRIBE,
//! SSUBSCRIBE) and delivery of published messages to them, whether the
//! PUBLISH came from a local client or from another node over the bus.
//!
//! A message is encoded once (RESP2 `message`, `pmessage`, `smessage`) and
//! appended to each subscriber's push queue ([`ClientHandle::push`]); the
//! subscriber's connection writes it. A subscriber that does not read is
//! disconnected at the pub/sub output limit ([`PubSub::limit`], Redis's
//! `client-output-buffer-limit pubsub 32mb 8mb 60`) so it cannot hold the
//! node's memory.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::client::{BufferLimit, ClientHandle};
use super::db::{Map, Set};
use super::glob;
use crate::cluster::key_slot;
use crate::resp::encode;

/// The three kinds of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE: a channel, every node of the cluster delivers it.
    Channel,
    /// PSUBSCRIBE: a glob pattern over channels.
    Pattern,
    /// SSUBSCRIBE: a shard channel, delivered by the nodes of its slot.
    Shard,
}

type Subscribers = Map<u64, Arc<ClientHandle>>;

/// What one client is subscribed to.
#[derive(Debug, Default)]
struct ClientSubs {
    channels: Set<Bytes>,
    patterns: Set<Bytes>,
    shard: Set<Bytes>,
}

impl ClientSubs {
    fn of(&self, kind: Kind) -> &Set<Bytes> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut Set<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }
}

/// Subscriptions by channel, by pattern and by shard channel, and each
/// client's own list.
#[derive(Debug)]
pub struct PubSub {
    channels: Map<Bytes, Subscribers>,
    patterns: Map<Bytes, Subscribers>,
    shard: Map<Bytes, Subscribers>,
    clients: Map<u64, ClientSubs>,
    /// Output limit of subscribers (`client-output-buffer-limit pubsub`).
    pub limit: BufferLimit,
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            channels: Map::default(),
            patterns: Map::default(),
            shard: Map::default(),
            clients: Map::default(),
            limit: BufferLimit::PUBSUB_DEFAULT,
        }
    }
}

/// `*3 <kind> <channel> <message>` (or `*4 pmessage <pattern> ...`).
fn encode_message(kind: &[u8], pattern: Option<&[u8]>, channel: &[u8], message: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(channel.len() + message.len() + 48);
    encode::array_header(&mut out, if pattern.is_some() { 4 } else { 3 });
    encode::bulk(&mut out, kind);
    if let Some(pattern) = pattern {
        encode::bulk(&mut out, pattern);
    }
    encode::bulk(&mut out, channel);
    encode::bulk(&mut out, message);
    out
}

impl PubSub {
    fn map(&self, kind: Kind) -> &Map<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    fn map_mut(&mut self, kind: Kind) -> &mut Map<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Subscribes `client`; false if it already was.
    pub fn subscribe(&mut self, client: &Arc<ClientHandle>, kind: Kind, channel: Bytes) -> bool {
        let subs = self.clients.entry(client.id).or_default();
        if !subs.of_mut(kind).insert(channel.clone()) {
            return false;
        }
        self.map_mut(kind)
            .entry(channel)
            .or_default()
            .insert(client.id, Arc::clone(client));
        true
    }

    /// Unsubscribes client `id`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: u64, kind: Kind, channel: &[u8]) -> bool {
        let Some(subs) = self.clients.get_mut(&id) else {
            return false;
        };
        if !subs.of_mut(kind).remove(channel) {
            return false;
        }
        if subs.total() == 0 {
            self.clients.remove(&id);
        }
        let map = self.map_mut(kind);
        if let Some(subscribers) = map.get_mut(channel) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                map.remove(channel);
            }
        }
        true
    }

    /// The channels (or patterns) client `id` is subscribed to.
    pub fn subscriptions_of(&self, id: u64, kind: Kind) -> Vec<Bytes> {
        self.clients
            .get(&id)
            .map(|subs| subs.of(kind).iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many of `kind` client `id` has.
    pub fn count_of(&self, id: u64, kind: Kind) -> usize {
        self.clients.get(&id).map_or(0, |subs| subs.of(kind).len())
    }

    /// Every subscription of client `id`, all kinds.
    pub fn total_of(&self, id: u64) -> usize {
        self.clients.get(&id).map_or(0, ClientSubs::total)
    }

    /// Forgets every subscription of client `id` (it disconnected), without
    /// telling it.
    pub fn remove_client(&mut self, id: u64) {
        let Some(subs) = self.clients.remove(&id) else {
            return;
        };
        for (kind, set) in [
            (Kind::Channel, subs.channels),
            (Kind::Pattern, subs.patterns),
            (Kind::Shard, subs.shard),
        ] {
            let map = self.map_mut(kind);
            for channel in set {
                if let Some(subscribers) = map.get_mut(&channel) {
                    subscribers.remove(&id);
                    if subscribers.is_empty() {
                        map.remove(&channel);
                    }
                }
            }
        }
    }

    /// Channels (or shard channels, or patterns) with at least one
    /// subscriber, optionally only those matching the glob `pattern`
    /// (PUBSUB CHANNELS / SHARDCHANNELS).
    pub fn active(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.map(kind)
            .keys()
            .filter(|ch| pattern.is_none_or(|p| glob::matches(p, ch, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn subscriber_count(&self, kind: Kind, channel: &[u8]) -> usize {
        self.map(kind).get(channel).map_or(0, Map::len)
    }

    /// Distinct patterns subscribed to (PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Channels with subscribers, of `kind` (INFO stats).
    pub fn channel_count(&self, kind: Kind) -> usize {
        self.map(kind).len()
    }

    /// Delivers `message` to this node's subscribers of `channel` (shard
    /// channels when `sharded`); returns how many clients received it. The
    /// cluster bus calls this for messages published on other nodes;
    /// PUBLISH and SPUBLISH call it for their own.
    pub fn publish_local(&mut self, channel: &[u8], message: &[u8], sharded: bool) -> usize {
        let limit = self.limit;
        let mut receivers = 0;
        if sharded {
            if let Some(subscribers) = self.shard.get(channel) {
                let frame = encode_message(b"smessage", None, channel, message);
                receivers += deliver(subscribers, &frame, limit);
            }
            return receivers;
        }
        if let Some(subscribers) = self.channels.get(channel) {
            let frame = encode_message(b"message", None, channel, message);
            receivers += deliver(subscribers, &frame, limit);
        }
        for (pattern, subscribers) in &self.patterns {
            if glob::matches(pattern, channel, false) {
                let frame = encode_message(b"pmessage", Some(pattern), channel, message);
                receivers += deliver(subscribers, &frame, limit);
            }
        }
        receivers
    }

    /// The node no longer serves `slot`: its shard channels' subscribers are
    /// unsubscribed and told so (`sunsubscribe`), as Redis does when a slot
    /// leaves a node. Returns the ids of the clients affected.
    pub fn unsubscribe_shard_slot(&mut self, slot: u16) -> Vec<u64> {
        let channels: Vec<Bytes> = self
            .shard
            .keys()
            .filter(|ch| key_slot(ch) == slot)
            .cloned()
            .collect();
        let mut affected = Vec::new();
        for channel in channels {
            let Some(subscribers) = self.shard.remove(&channel) else {
                continue;
            };
            for (id, handle) in subscribers {
                let left = match self.clients.get_mut(&id) {
                    Some(subs) => {
                        subs.shard.remove(&channel);
                        subs.shard.len()
                    }
                    None => 0,
                };
                if self.clients.get(&id).is_some_and(|s| s.total() == 0) {
                    self.clients.remove(&id);
                }
                let mut frame = BytesMut::new();
                encode::array_header(&mut frame, 3);
                encode::bulk(&mut frame, b"sunsubscribe");
                encode::bulk(&mut frame, &channel);
                encode::integer(&mut frame, left as i64);
                handle.push(&frame, self.limit);
                affected.push(id);
            }
        }
        affected
    }
}

fn deliver(subscribers: &Subscribers, frame: &[u8], limit: BufferLimit) -> usize {
    subscribers
        .values()
        .filter(|handle| handle.push(frame, limit))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> Arc<ClientHandle> {
        Arc::new(ClientHandle::new(id, None, None, -1))
    }

    fn drain(h: &ClientHandle) -> Vec<u8> {
        let mut out = BytesMut::new();
        h.take_pushes(&mut out);
        h.pushes_written();
        out.to_vec()
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers() {
        let mut ps = PubSub::default();
        let (a, b) = (client(1), client(2));
        assert!(ps.subscribe(&a, Kind::Channel, Bytes::from_static(b"news")));
        assert!(!ps.subscribe(&a, Kind::Channel, Bytes::from_static(b"news")));
        assert!(ps.subscribe(&b, Kind::Pattern, Bytes::from_static(b"n*")));
        assert_eq!(ps.publish_local(b"news", b"hi", false), 2);
        assert_eq!(
            drain(&a),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec()
        );
        assert_eq!(
            drain(&b),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n".to_vec()
        );
        assert_eq!(ps.publish_local(b"other", b"x", false), 0);
        // Shard channels are a separate namespace.
        assert_eq!(ps.publish_local(b"news", b"x", true), 0);
    }

    #[test]
    fn counts_and_cleanup() {
        let mut ps = PubSub::default();
        let a = client(1);
        ps.subscribe(&a, Kind::Channel, Bytes::from_static(b"c1"));
        ps.subscribe(&a, Kind::Shard, Bytes::from_static(b"s1"));
        ps.subscribe(&a, Kind::Pattern, Bytes::from_static(b"p*"));
        assert_eq!(ps.total_of(1), 3);
        assert_eq!(ps.subscriber_count(Kind::Channel, b"c1"), 1);
        assert_eq!(ps.pattern_count(), 1);
        assert!(ps.unsubscribe(1, Kind::Channel, b"c1"));
        assert!(!ps.unsubscribe(1, Kind::Channel, b"c1"));
        assert_eq!(ps.active(Kind::Channel, None), Vec::<Bytes>::new());
        ps.remove_client(1);
        assert_eq!(ps.total_of(1), 0);
        assert_eq!(ps.pattern_count(), 0);
        assert_eq!(ps.channel_count(Kind::Shard), 0);
    }

    #[test]
    fn removing_a_slot_unsubscribes_its_shard_channels() {
        let mut ps = PubSub::default();
        let a = client(1);
        ps.subscribe(&a, Kind::Shard, Bytes::from_static(b"{x}1"));
        ps.subscribe(&a, Kind::Shard, Bytes::from_static(b"{y}1"));
        assert_eq!(ps.unsubscribe_shard_slot(key_slot(b"x")), vec![1]);
        assert_eq!(ps.count_of(1, Kind::Shard), 1);
        assert_eq!(
            drain(&a),
            b"*3\r\n$12\r\nsunsubscribe\r\n$4\r\n{x}1\r\n:1\r\n".to_vec()
        );
    }

    #[test]
    fn a_subscriber_over_the_limit_is_killed_and_not_counted_again() {
        let mut ps = PubSub {
            limit: BufferLimit {
                hard: 100,
                soft: 0,
                soft_seconds: 0,
            },
            ..PubSub::default()
        };
        let a = client(1);
        ps.subscribe(&a, Kind::Channel, Bytes::from_static(b"c"));
        assert_eq!(ps.publish_local(b"c", &[b'x'; 40], false), 1);
        assert_eq!(ps.publish_local(b"c", &[b'x'; 40], false), 1);
        assert!(a.is_killed());
        assert_eq!(ps.publish_local(b"c", b"y", false), 0);
    }
}
