//! What the cluster bus does with the cluster state, without any I/O: the
//! messages a node sends ([`ping_message`] and friends), what it does with
//! a message it receives ([`process`], after Redis's
//! `clusterProcessPacket`), and its periodic work ([`cron`], after
//! `clusterCron`). The bus (`node::bus`) calls these under the node lock
//! and does the sending itself, after the lock is released.
//!
//! How the cluster converges, as in Redis:
//! - CLUSTER MEET adds a node in handshake under a random id; the first
//!   PONG on our link to it gives its real id. A node receiving a MEET from
//!   a stranger starts a handshake back the same way.
//! - Every PING/PONG carries a sample of the nodes the sender knows
//!   (gossip); unknown ones are added and then pinged, so one MEET per new
//!   node to any member is enough.
//! - Every message carries the sender's slots and config epoch. A claim
//!   with a greater epoch than the current owner's wins the slot
//!   ([`update_slots_config_with`]); a stale claim gets an UPDATE back.
//!   Two masters with the same epoch: the one with the smaller id bumps.
//! - A node that does not answer a ping within node_timeout is suspected
//!   (PFAIL); gossip carries suspicions as failure reports, and once a
//!   majority of the masters report it, it is failed (FAIL), which is
//!   broadcast ([`mark_failing_if_needed`]). Its replicas then run an
//!   election (`cluster::failover`).

use std::sync::Arc;

use rand::seq::SliceRandom;

use super::{ClusterNode, ClusterState, FailReport, NodeId, Role, failover};
use crate::cluster::SlotBitmap;
use crate::node::bus::proto::{
    Body, Gossip, Header, Kind, Message, flags as f, is_node_id, mflags,
};
use crate::node::state::NodeState;

/// Candidates sampled for the extra random ping of each tick, as Redis
/// samples five.
const RANDOM_PING_SAMPLE: usize = 5;
/// A node answered less than this long ago is not picked for the random
/// ping: it caps the pings each peer gets.
const RANDOM_PING_MIN_AGE_MS: i64 = 200;
/// Failure reports older than node_timeout times this are dropped (Redis's
/// CLUSTER_FAIL_REPORT_VALIDITY_MULT).
const FAIL_REPORT_VALIDITY_MULT: i64 = 2;
/// A master flagged FAIL that answers again is cleared after node_timeout
/// times this (Redis's CLUSTER_FAIL_UNDO_TIME_MULT).
const FAIL_UNDO_TIME_MULT: i64 = 2;

/// The connection a message came in on.
#[derive(Debug, Clone, Copy)]
pub struct LinkInfo<'a> {
    /// For a link this node opened: the id of the node it was opened to.
    /// `None` for a link a peer opened to us.
    pub to: Option<&'a str>,
    /// The peer's address on this connection.
    pub peer_ip: &'a str,
    /// Our address on this connection.
    pub local_ip: &'a str,
}

/// What receiving a message asks the bus to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Answer on the same link (PONG to PING and MEET).
    pub reply: Option<Message>,
    /// Send to one node (on our link to it).
    pub send: Vec<(NodeId, Message)>,
    /// Close the link the message came in on.
    pub close_link: bool,
    /// Close our links to these nodes: their address changed.
    pub reset_links: Vec<NodeId>,
}

/// The state of our link to a node, as the bus sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkView {
    /// No link: open one.
    Missing,
    /// Connecting, or waiting before the next attempt.
    Pending,
    /// Connected since this Unix ms.
    Up { since_ms: i64 },
}

/// What a tick of [`cron`] asks the bus to do.
#[derive(Debug, Default)]
pub struct CronPlan {
    /// Open a link to `ip:cport` of the node and send the message first.
    pub connect: Vec<(NodeId, String, u16, Message)>,
    pub send: Vec<(NodeId, Message)>,
    pub reset_links: Vec<NodeId>,
}

pub(super) fn count_sent(cs: &mut ClusterState, kind: Kind, n: u64) {
    if let Some(c) = cs.stats.sent.get_mut(kind as usize) {
        *c += n;
    }
}

/// The header of every message this node sends: itself, and the slots
/// and config epoch of its shard (its master's, for a replica).
pub fn header(cs: &ClusterState) -> Header {
    let me = cs.me();
    let shard = match me.role {
        Role::Replica => cs.my_master(),
        _ => None,
    }
    .unwrap_or(me);
    Header {
        sender: me.id.to_string(),
        current_epoch: cs.current_epoch,
        config_epoch: shard.config_epoch,
        repl_offset: me.repl_offset,
        flags: me.flag_bits() | f::MYSELF,
        master: me.master.as_deref().map(str::to_string),
        ip: cs.announce_ip.clone().unwrap_or_default(),
        port: me.port,
        cport: me.cport,
        state_ok: cs.state_ok,
        // A master paused for a manual failover says so: the replica then
        // knows the offset in this header is final.
        mflags: if me.is_master() && cs.manual.end_ms != 0 {
            mflags::PAUSED
        } else {
            0
        },
        slots: shard.slots().clone(),
    }
}

fn gossip_entry(n: &ClusterNode) -> Gossip {
    let secs = |ms: i64| u32::try_from(ms / 1000).unwrap_or(0);
    Gossip {
        id: n.id.to_string(),
        ping_sent: secs(n.ping_sent_ms),
        pong_received: secs(n.pong_received_ms),
        ip: n.ip.clone(),
        port: n.port,
        cport: n.cport,
        flags: n.flag_bits(),
    }
}

/// A sample of the other nodes for a PING/PONG/MEET, as Redis picks it: a
/// tenth of the cluster but at least three, leaving out nodes in handshake,
/// without address, or unreachable and slotless; plus every node this one
/// suspects (PFAIL), so suspicions spread.
fn gossip_section(cs: &ClusterState) -> Vec<Gossip> {
    let total = cs.known_nodes();
    let wanted = (total / 10).max(3).min(total.saturating_sub(2));
    let mut fresh: Vec<&ClusterNode> = cs
        .others()
        .filter(|n| !n.pfail && !n.handshake && !n.noaddr && (n.connected || n.numslots() > 0))
        .collect();
    fresh.shuffle(&mut rand::rng());
    fresh
        .into_iter()
        .take(wanted)
        .chain(cs.others().filter(|n| n.pfail && !n.handshake && !n.noaddr))
        .map(gossip_entry)
        .collect()
}

/// A PING, PONG or MEET from this node.
pub fn ping_message(cs: &mut ClusterState, kind: Kind) -> Message {
    let gossip = gossip_section(cs);
    let body = match kind {
        Kind::Pong => Body::Pong(gossip),
        Kind::Meet => Body::Meet(gossip),
        _ => Body::Ping(gossip),
    };
    count_sent(cs, kind, 1);
    Message {
        header: header(cs),
        body,
    }
}

/// A PING on our link to `id`, which now counts as the ping in flight.
pub(super) fn ping_to(cs: &mut ClusterState, id: &str, now: i64) -> Message {
    if let Some(n) = cs.node_mut(id) {
        if n.ping_sent_ms == 0 {
            n.ping_sent_ms = now;
        }
    }
    ping_message(cs, Kind::Ping)
}

/// `msg` to every node we know (not in handshake), as Redis's
/// `clusterBroadcastMessage`; nodes without a link miss it.
pub(super) fn broadcast(cs: &mut ClusterState, msg: Message, out: &mut Vec<(NodeId, Message)>) {
    let targets: Vec<NodeId> = cs
        .others()
        .filter(|n| !n.handshake)
        .map(|n| Arc::clone(&n.id))
        .collect();
    count_sent(cs, msg.kind(), targets.len() as u64);
    for id in targets {
        out.push((id, msg.clone()));
    }
}

/// The PONG to every node (on the links `up` says are up) that a change
/// asked for with `broadcast_pong` (Redis's `clusterBroadcastPong`).
pub(super) fn pong_everyone_if_asked(
    cs: &mut ClusterState,
    out: &mut Vec<(NodeId, Message)>,
    up: impl Fn(&str) -> bool,
) {
    if !std::mem::take(&mut cs.broadcast_pong) {
        return;
    }
    let targets: Vec<NodeId> = cs
        .others()
        .filter(|n| !n.handshake && up(&n.id))
        .map(|n| Arc::clone(&n.id))
        .collect();
    for id in targets {
        let msg = ping_message(cs, Kind::Pong);
        out.push((id, msg));
    }
}

/// FAIL about `about`, to everyone.
fn broadcast_fail(cs: &mut ClusterState, about: &str, out: &mut Vec<(NodeId, Message)>) {
    let msg = Message {
        header: header(cs),
        body: Body::Fail {
            about: about.to_string(),
        },
    };
    broadcast(cs, msg, out);
}

/// An UPDATE telling a node with a stale claim that `about` serves its
/// slots at a greater config epoch.
pub fn update_message(cs: &mut ClusterState, about: &str) -> Option<Message> {
    let n = cs.node(about)?;
    let body = Body::Update {
        node: n.id.to_string(),
        config_epoch: n.config_epoch,
        slots: n.slots().clone(),
    };
    count_sent(cs, Kind::Update, 1);
    Some(Message {
        header: header(cs),
        body,
    })
}

/// A PUBLISH (or SPUBLISH for `shard: Some(slot)`) for the other nodes,
/// and the nodes to send it to: everyone, or the master and replicas of
/// the slot's shard.
pub fn publish_message(
    cs: &mut ClusterState,
    channel: bytes::Bytes,
    message: bytes::Bytes,
    shard: Option<u16>,
) -> (Message, Vec<NodeId>) {
    let targets: Vec<NodeId> = match shard {
        None => cs
            .others()
            .filter(|n| !n.handshake && !n.noaddr)
            .map(|n| Arc::clone(&n.id))
            .collect(),
        Some(slot) => match cs.owner(slot).cloned() {
            Some(master) => std::iter::once(Arc::clone(&master))
                .chain(cs.replicas_of(&master).iter().map(|n| Arc::clone(&n.id)))
                .filter(|id| !cs.is_myself(id))
                .collect(),
            None => Vec::new(),
        },
    };
    let (kind, body) = match shard {
        None => (Kind::Publish, Body::Publish { channel, message }),
        Some(_) => (Kind::PublishShard, Body::PublishShard { channel, message }),
    };
    count_sent(cs, kind, targets.len() as u64);
    (
        Message {
            header: header(cs),
            body,
        },
        targets,
    )
}

fn role_from_flags(bits: u16) -> Role {
    if bits & f::MASTER != 0 {
        Role::Master
    } else if bits & f::REPLICA != 0 {
        Role::Replica
    } else {
        Role::Unknown
    }
}

/// Handles one message from a peer (Redis's `clusterProcessPacket`).
pub fn process(node: &mut NodeState, msg: Message, link: &LinkInfo<'_>, now: i64) -> Effects {
    let mut fx = Effects::default();
    let kind = msg.kind();
    let Message { header: hdr, body } = msg;
    // What we tell others of our offset is never staler than this message
    // (a manual failover waits for the master's exact offset).
    node.cluster.set_my_repl_offset(node.feed.offset());
    let cs = &mut node.cluster;
    if let Some(c) = cs.stats.received.get_mut(kind as usize) {
        *c += 1;
    }

    if cs.is_myself(&hdr.sender) {
        // Our own voice: a CLUSTER MEET of our own address (the handshake
        // node it created is this node: forget it), or an entry for a node
        // that no longer answers at this address, which is ours.
        if let (Kind::Pong, Some(to)) = (kind, link.to) {
            match cs.node(to).map(|n| n.handshake) {
                Some(true) => cs.del_node(to),
                Some(false) => {
                    mark_noaddr(cs, to);
                    fx.close_link = true;
                }
                None => {}
            }
        }
        if matches!(kind, Kind::Ping | Kind::Meet) {
            fx.reply = Some(ping_message(cs, Kind::Pong));
        }
        return fx;
    }

    let mut sender_known = cs.node(&hdr.sender).is_some_and(|n| !n.handshake);
    if sender_known {
        note_sender(cs, &hdr, now);
        if failover::note_master_offset(cs, &hdr) {
            failover::react(cs, now, &mut fx.send);
        }
    }

    if matches!(kind, Kind::Ping | Kind::Meet) {
        // MEET comes from a node that connected to the address it was given
        // for us: that is how others see us.
        if kind == Kind::Meet
            && cs.announce_ip.is_none()
            && !link.local_ip.is_empty()
            && cs.me().ip != link.local_ip
        {
            cs.me_mut().ip = link.local_ip.to_string();
            cs.mark_dirty();
        }
        if !sender_known && kind == Kind::Meet {
            let ip = if hdr.ip.is_empty() {
                link.peer_ip
            } else {
                hdr.ip.as_str()
            };
            cs.start_handshake(ip, hdr.port, hdr.cport, false);
            if let Body::Meet(gossip) = &body {
                process_gossip(node, None, gossip, now, &mut fx);
            }
        }
        fx.reply = Some(ping_message(&mut node.cluster, Kind::Pong));
    }

    match body {
        Body::Ping(gossip) | Body::Pong(gossip) | Body::Meet(gossip) => {
            let cs = &mut node.cluster;
            // The node our own link was opened to; it may be renamed below.
            let mut link_node: Option<NodeId> = link
                .to
                .and_then(|to| cs.node(to))
                .map(|n| Arc::clone(&n.id));
            if let (Kind::Pong, Some(to)) = (kind, link_node.clone()) {
                let handshake = cs.node(&to).is_some_and(|n| n.handshake);
                if handshake {
                    if sender_known {
                        // We met a node we already know: keep the old entry,
                        // at the address that just answered.
                        update_address(cs, &hdr, link, &mut fx);
                        cs.del_node(&to);
                        return fx;
                    }
                    cs.rename_node(&to, &hdr.sender);
                    if let Some(n) = cs.node_mut(&hdr.sender) {
                        n.handshake = false;
                        n.role = role_from_flags(hdr.flags);
                    }
                    cs.mark_dirty();
                    link_node = cs.node(&hdr.sender).map(|n| Arc::clone(&n.id));
                    sender_known = true;
                    note_sender(cs, &hdr, now);
                } else if *to != *hdr.sender {
                    // Someone else answers at that address now.
                    mark_noaddr(cs, &to);
                    fx.close_link = true;
                    return fx;
                }
            }
            if sender_known && kind == Kind::Ping && link.to.is_none() {
                update_address(cs, &hdr, link, &mut fx);
            }
            if let (Kind::Pong, Some(id)) = (kind, &link_node) {
                pong_received(cs, id, now);
            }
            if !sender_known {
                return fx;
            }
            // Whether it competes in elections is its own say.
            if let Some(n) = cs.node_mut(&hdr.sender) {
                n.nofailover = hdr.flags & f::NOFAILOVER != 0;
            }
            role_switch(cs, &hdr);
            slots_config(node, &hdr, &mut fx);
            let cs = &mut node.cluster;
            let sender_is_master = cs.node(&hdr.sender).is_some_and(ClusterNode::is_master);
            if sender_is_master && cs.me().is_master() && hdr.config_epoch == cs.me().config_epoch {
                handle_epoch_collision(cs, &hdr.sender);
            }
            process_gossip(node, Some(&hdr.sender), &gossip, now, &mut fx);
        }
        Body::Fail { about } => {
            let cs = &mut node.cluster;
            if sender_known && !cs.is_myself(&about) {
                if let Some(n) = cs.node_mut(&about).filter(|n| !n.fail) {
                    tracing::info!(node = %about, "FAIL message received");
                    n.fail = true;
                    n.pfail = false;
                    n.fail_time_ms = now;
                    cs.mark_dirty();
                    cs.update_state();
                }
            }
        }
        Body::Publish { channel, message } => {
            if sender_known {
                node.pubsub.publish_local(&channel, &message, false);
            }
        }
        Body::PublishShard { channel, message } => {
            if sender_known {
                node.pubsub.publish_local(&channel, &message, true);
            }
        }
        Body::Update {
            node: about,
            config_epoch,
            slots,
        } => {
            let cs = &mut node.cluster;
            let stale = cs
                .node(&about)
                .is_none_or(|n| n.config_epoch >= config_epoch);
            if !sender_known || stale {
                return fx;
            }
            if cs.node(&about).is_some_and(ClusterNode::is_replica) {
                cs.set_node_as_master(&about);
            }
            if let Some(n) = cs.node_mut(&about) {
                n.config_epoch = config_epoch;
            }
            cs.mark_dirty();
            update_slots_config_with(node, &about, config_epoch, &slots);
        }
        Body::FailoverAuthRequest => {
            if sender_known {
                if let Some(ack) = failover::vote(&mut node.cluster, &hdr, now) {
                    fx.send.push((hdr.sender.as_str().into(), ack));
                }
            }
        }
        Body::FailoverAuthAck => {
            let cs = &mut node.cluster;
            if sender_known && failover::note_vote(cs, &hdr.sender, hdr.current_epoch) {
                // Maybe the vote that makes the majority: no need to wait
                // for the next tick.
                failover::react(cs, now, &mut fx.send);
            }
        }
        Body::MfStart => {
            let cs = &mut node.cluster;
            if sender_known && failover::manual_failover_requested(cs, &hdr.sender, now) {
                // The paused offset goes out at once, on the same link.
                fx.reply = Some(ping_message(cs, Kind::Ping));
            }
        }
    }
    fx
}

/// Another node answers at `id`'s address: its address is unknown now.
fn mark_noaddr(cs: &mut ClusterState, id: &str) {
    if let Some(n) = cs.node_mut(id) {
        tracing::info!(node = %id, addr = %n.addr(), "another node answers at its address");
        n.noaddr = true;
        n.ip.clear();
        n.port = 0;
        n.cport = 0;
    }
    cs.mark_dirty();
}

/// A known sender: epochs and offsets from its header.
fn note_sender(cs: &mut ClusterState, hdr: &Header, now: i64) {
    if hdr.current_epoch > cs.current_epoch {
        cs.current_epoch = hdr.current_epoch;
        cs.mark_dirty();
    }
    let mut newer_epoch = false;
    if let Some(s) = cs.node_mut(&hdr.sender) {
        s.data_received_ms = now;
        s.repl_offset = hdr.repl_offset;
        if hdr.config_epoch > s.config_epoch {
            s.config_epoch = hdr.config_epoch;
            newer_epoch = true;
        }
    }
    if newer_epoch {
        cs.mark_dirty();
    }
}

/// A PONG on our link to `id`: it is alive.
fn pong_received(cs: &mut ClusterState, id: &str, now: i64) {
    let timeout = cs.node_timeout_ms as i64;
    let Some(n) = cs.node_mut(id) else { return };
    n.pong_received_ms = now;
    n.ping_sent_ms = 0;
    let changed = if n.pfail {
        n.pfail = false;
        true
    } else if n.fail
        && (n.is_replica()
            || n.numslots() == 0
            || now - n.fail_time_ms > timeout * FAIL_UNDO_TIME_MULT)
    {
        // Redis's clearNodeFailureIfNeeded.
        tracing::info!(node = %id, "clear FAIL state: it is reachable again");
        n.fail = false;
        true
    } else {
        false
    };
    if changed {
        cs.mark_dirty();
        cs.update_state();
    }
}

/// Redis's `nodeUpdateAddressIfNeeded`: the sender speaks from another
/// address than the one we have for it; take the new one and reconnect.
fn update_address(cs: &mut ClusterState, hdr: &Header, link: &LinkInfo<'_>, fx: &mut Effects) {
    let ip = if hdr.ip.is_empty() {
        link.peer_ip
    } else {
        hdr.ip.as_str()
    };
    if ip.is_empty() {
        return;
    }
    let is_my_master = cs.me().master.as_deref() == Some(hdr.sender.as_str());
    let Some(n) = cs.node_mut(&hdr.sender) else {
        return;
    };
    if n.ip == ip && n.port == hdr.port && n.cport == hdr.cport {
        return;
    }
    n.ip = ip.to_string();
    n.port = hdr.port;
    n.cport = hdr.cport;
    n.noaddr = false;
    tracing::info!(node = %hdr.sender, addr = %n.addr(), "address updated");
    fx.reset_links.push(Arc::clone(&n.id));
    cs.mark_dirty();
    if is_my_master {
        cs.master_addr_changed();
    }
}

/// The sender's role as its header states it.
fn role_switch(cs: &mut ClusterState, hdr: &Header) {
    match &hdr.master {
        None => cs.set_node_as_master(&hdr.sender),
        Some(master) => {
            let was_master = cs
                .node(&hdr.sender)
                .is_some_and(|n| n.role != Role::Replica);
            if was_master {
                // A master turned replica gives its slots up.
                let slots: Vec<u16> = cs.slots_of(&hdr.sender).collect();
                if !slots.is_empty() {
                    cs.set_owners(slots, None);
                }
                if let Some(n) = cs.node_mut(&hdr.sender) {
                    n.role = Role::Replica;
                    n.migrate_to = false;
                }
                cs.mark_dirty();
                cs.update_state();
            }
            let master_id = cs.node(master).map(|m| Arc::clone(&m.id));
            if let Some(master_id) = master_id {
                let changed = cs
                    .node(&hdr.sender)
                    .is_some_and(|n| n.master.as_deref() != Some(&*master_id));
                if changed {
                    cs.set_master_of(&hdr.sender, Some(master_id));
                    cs.mark_dirty();
                }
            }
        }
    }
}

/// The sender's slot claim: take it where it is newer, and tell the
/// sender where its claim is older than what we know.
fn slots_config(node: &mut NodeState, hdr: &Header, fx: &mut Effects) {
    let cs = &node.cluster;
    let Some(sender) = cs.node(&hdr.sender) else {
        return;
    };
    let sender_is_master = sender.is_master();
    let shard_slots = if sender_is_master {
        Some(sender.slots())
    } else {
        sender
            .master
            .as_deref()
            .and_then(|m| cs.node(m))
            .map(ClusterNode::slots)
    };
    let dirty_slots = shard_slots.is_some_and(|s| *s != hdr.slots);
    if !dirty_slots {
        return;
    }
    if sender_is_master {
        update_slots_config_with(node, &hdr.sender, hdr.config_epoch, &hdr.slots);
    }
    let cs = &mut node.cluster;
    let newer_owner = hdr.slots.iter().find_map(|slot| {
        let owner = cs.owner_node(slot)?;
        (*owner.id != *hdr.sender && owner.config_epoch > hdr.config_epoch)
            .then(|| Arc::clone(&owner.id))
    });
    if let Some(owner) = newer_owner {
        tracing::debug!(node = %hdr.sender, owner = %owner, "stale slot claim: sending UPDATE");
        if let Some(update) = update_message(cs, &owner) {
            fx.send.push((hdr.sender.as_str().into(), update));
        }
    }
}

/// Redis's `clusterUpdateSlotsConfigWith`: `sender` claims `slots` at
/// `epoch`; every claimed slot whose owner has an older epoch (or none)
/// moves to it, unless this node is importing it. If that leaves our
/// shard's master without slots, this node follows the sender as a
/// replica (with `cluster-allow-replica-migration no`, only when the
/// sender took exactly our slots: a failover, not a resharding); a
/// replica whose master became a replica follows that one's master.
/// Otherwise the keys of slots this node lost are deleted.
pub fn update_slots_config_with(
    node: &mut NodeState,
    sender: &str,
    epoch: u64,
    slots: &SlotBitmap,
) {
    let cs = &mut node.cluster;
    if cs.is_myself(sender) {
        return;
    }
    let Some(sender_id) = cs.node(sender).map(|n| Arc::clone(&n.id)) else {
        return;
    };
    let cur_master: Option<NodeId> = if cs.me().is_master() {
        Some(Arc::clone(&cs.myself))
    } else {
        cs.me().master.clone()
    };
    let mut lost_with_keys = Vec::new();
    let mut sender_slots = 0usize;
    let mut migrated_our_slots = 0usize;
    let mut changed = false;
    for slot in slots.iter() {
        sender_slots += 1;
        let owner = cs.owner(slot).cloned();
        if owner.as_deref() == Some(sender) || cs.importing.contains_key(&slot) {
            continue;
        }
        let owner_epoch = owner
            .as_deref()
            .and_then(|o| cs.node(o))
            .map_or(0, |n| n.config_epoch);
        if owner.is_some() && owner_epoch >= epoch {
            continue;
        }
        if owner.as_deref() == Some(&*cs.myself) && node.db.count_in_slot(slot) > 0 {
            lost_with_keys.push(slot);
        }
        if owner.is_some() && owner == cur_master {
            migrated_our_slots += 1;
        }
        cs.assign(slot, Some(&sender_id));
        changed = true;
    }
    if changed {
        cs.mark_dirty();
        cs.update_state();
    }
    let our_master_is_empty = cur_master
        .as_deref()
        .and_then(|m| cs.node(m))
        .is_some_and(|m| m.numslots() == 0);
    let grandmaster = cs
        .my_master()
        .and_then(|m| m.master.clone())
        .filter(|g| !cs.is_myself(g));
    if migrated_our_slots > 0
        && our_master_is_empty
        && (cs.allow_replica_migration || sender_slots == migrated_our_slots)
    {
        tracing::warn!(
            master = %sender_id,
            "configuration change detected: reconfiguring myself as a replica"
        );
        // Keys stay: the resync with the new master replaces them.
        cs.set_my_master(&sender_id);
    } else if let Some(grandmaster) = grandmaster {
        tracing::warn!(
            master = %grandmaster,
            "I'm a sub-replica: reconfiguring myself as a replica of my master's master"
        );
        cs.set_my_master(&grandmaster);
    } else {
        for slot in lost_with_keys {
            let keys = node.db.keys_in_slot(slot, usize::MAX);
            node.db.clear_slot(slot);
            for key in keys {
                node.events.touched(&key);
            }
        }
    }
}

/// Redis's `clusterHandleConfigEpochCollision`: two masters with one
/// config epoch; the one with the smaller id takes a new one.
fn handle_epoch_collision(cs: &mut ClusterState, sender: &str) {
    if sender <= &*cs.myself {
        return;
    }
    cs.current_epoch += 1;
    let epoch = cs.current_epoch;
    cs.me_mut().config_epoch = epoch;
    cs.mark_dirty();
    tracing::info!(epoch, "config epoch collision resolved");
}

/// The gossip section of a PING/PONG/MEET (Redis's
/// `clusterProcessGossipSection`). `sender` is `None` for a MEET from a
/// node we do not know yet: known nodes are still updated, nobody is added.
fn process_gossip(
    node: &mut NodeState,
    sender: Option<&str>,
    entries: &[Gossip],
    now: i64,
    fx: &mut Effects,
) {
    let cs = &mut node.cluster;
    let reporter = sender
        .and_then(|s| cs.node(s))
        .filter(|n| n.is_master())
        .map(|n| Arc::clone(&n.id));
    for g in entries {
        let failing = g.flags & (f::PFAIL | f::FAIL) != 0;
        if cs.node(&g.id).is_some() {
            if let Some(reporter) = &reporter {
                if !cs.is_myself(&g.id) {
                    if failing {
                        add_failure_report(cs, &g.id, reporter, now);
                        if mark_failing_if_needed(cs, &g.id, now) {
                            broadcast_fail(cs, &g.id, &mut fx.send);
                        }
                    } else {
                        del_failure_report(cs, &g.id, reporter);
                    }
                }
            }
            let myself = cs.is_myself(&g.id);
            let Some(n) = cs.node_mut(&g.id) else {
                continue;
            };
            if !failing && n.ping_sent_ms == 0 && n.fail_reports.is_empty() {
                let pong = i64::from(g.pong_received) * 1000;
                if pong <= now + 500 && pong > n.pong_received_ms {
                    n.pong_received_ms = pong;
                }
            }
            let moved = n.ip != g.ip || n.port != g.port || n.cport != g.cport;
            if !myself
                && (n.pfail || n.fail)
                && g.flags & f::NOADDR == 0
                && !failing
                && moved
                && !g.ip.is_empty()
            {
                n.ip = g.ip.clone();
                n.port = g.port;
                n.cport = g.cport;
                n.noaddr = false;
                fx.reset_links.push(Arc::clone(&n.id));
                cs.mark_dirty();
            }
        } else if sender.is_some()
            && g.flags & f::NOADDR == 0
            && g.flags & f::HANDSHAKE == 0
            && g.port != 0
            && !g.ip.is_empty()
            && is_node_id(g.id.as_bytes())
            && !cs.is_blacklisted(&g.id, now)
        {
            let mut n = ClusterNode::new(g.id.as_str().into(), g.ip.clone(), g.port, g.cport);
            n.role = role_from_flags(g.flags);
            tracing::debug!(node = %g.id, addr = %n.addr(), "learned a node from gossip");
            cs.add_node(n);
        }
    }
}

/// `reporter` (a master) says `failing` is failing.
pub fn add_failure_report(cs: &mut ClusterState, failing: &str, reporter: &NodeId, now: i64) {
    let Some(n) = cs.node_mut(failing) else {
        return;
    };
    match n.fail_reports.iter_mut().find(|r| r.reporter == *reporter) {
        Some(r) => r.time_ms = now,
        None => n.fail_reports.push(FailReport {
            reporter: Arc::clone(reporter),
            time_ms: now,
        }),
    }
}

/// `reporter` no longer says `failing` is failing.
pub fn del_failure_report(cs: &mut ClusterState, failing: &str, reporter: &NodeId) {
    if let Some(n) = cs.node_mut(failing) {
        n.fail_reports.retain(|r| r.reporter != *reporter);
    }
}

/// Redis's `markNodeAsFailingIfNeeded`: a node this one suspects (PFAIL)
/// becomes FAIL once a majority of the masters serving slots (this one
/// included, if it is such a master) reported it failing within
/// node_timeout * 2. True when it just became FAIL: the caller tells
/// everyone (even a replica does, to spread it faster).
pub fn mark_failing_if_needed(cs: &mut ClusterState, id: &str, now: i64) -> bool {
    if !cs.node(id).is_some_and(|n| n.pfail && !n.fail) {
        return false;
    }
    let mut failures = count_failure_reports(cs, id, now);
    if cs.me().is_master() {
        failures += 1;
    }
    if failures < failover::quorum(cs.size) {
        return false;
    }
    let Some(n) = cs.node_mut(id) else {
        return false;
    };
    n.pfail = false;
    n.fail = true;
    n.fail_time_ms = now;
    tracing::warn!(node = %id, reports = failures, "marking node as failing (quorum reached)");
    cs.mark_dirty();
    cs.update_state();
    true
}

/// Valid failure reports about `id` (old ones are dropped first), as
/// CLUSTER COUNT-FAILURE-REPORTS answers.
pub fn count_failure_reports(cs: &mut ClusterState, id: &str, now: i64) -> usize {
    let max_age = cs.node_timeout_ms as i64 * FAIL_REPORT_VALIDITY_MULT;
    let Some(n) = cs.node_mut(id) else { return 0 };
    n.fail_reports.retain(|r| now - r.time_ms <= max_age);
    n.fail_reports.len()
}

/// One tick of the bus (every 100 ms; Redis's `clusterCron`): drops
/// handshakes that got no answer, opens missing links, pings nodes not
/// heard from in node_timeout/2 plus one more picked at random, resets
/// links that went quiet, flags nodes that do not answer as PFAIL, and
/// sends the PONG broadcast a change asked for.
pub fn cron(cs: &mut ClusterState, now: i64, link: &dyn Fn(&str) -> LinkView) -> CronPlan {
    let mut plan = CronPlan::default();
    let timeout = cs.node_timeout_ms as i64;
    let handshake_timeout = timeout.max(1000);
    let expired: Vec<NodeId> = cs
        .others()
        .filter(|n| n.handshake && now - n.ctime_ms > handshake_timeout)
        .map(|n| Arc::clone(&n.id))
        .collect();
    for id in expired {
        tracing::debug!(node = %id, "handshake timed out");
        cs.del_node(&id);
    }

    let ids: Vec<NodeId> = cs
        .others()
        .filter(|n| !n.noaddr && n.port != 0)
        .map(|n| Arc::clone(&n.id))
        .collect();
    for id in &ids {
        if link(id) != LinkView::Missing {
            continue;
        }
        let Some(n) = cs.node_mut(id) else { continue };
        let kind = if n.meet { Kind::Meet } else { Kind::Ping };
        if kind == Kind::Ping && n.ping_sent_ms == 0 {
            n.ping_sent_ms = now;
        }
        let (ip, cport) = (n.ip.clone(), n.cport);
        let msg = ping_message(cs, kind);
        plan.connect.push((Arc::clone(id), ip, cport, msg));
    }

    // One extra ping per tick, to the least recently heard of a few random
    // idle nodes: spreads gossip fast without flooding anyone.
    let mut idle: Vec<&ClusterNode> = cs
        .others()
        .filter(|n| {
            !n.handshake
                && n.ping_sent_ms == 0
                && matches!(link(&n.id), LinkView::Up { .. })
                && now - n.pong_received_ms >= RANDOM_PING_MIN_AGE_MS
        })
        .collect();
    idle.shuffle(&mut rand::rng());
    let random_target = idle
        .into_iter()
        .take(RANDOM_PING_SAMPLE)
        .min_by_key(|n| n.pong_received_ms)
        .map(|n| Arc::clone(&n.id));
    let mut pinged: Vec<NodeId> = Vec::new();
    if let Some(id) = random_target {
        send_ping(cs, &id, now, &mut plan);
        pinged.push(id);
    }

    let mut state_changed = false;
    for id in &ids {
        let Some(n) = cs.node(id) else { continue };
        if n.handshake {
            continue;
        }
        if let LinkView::Up { since_ms } = link(id) {
            let quiet = n.ping_sent_ms != 0
                && now - since_ms > timeout
                && now - n.ping_sent_ms > timeout / 2
                && now - n.data_received_ms > timeout / 2;
            if quiet {
                plan.reset_links.push(Arc::clone(id));
            } else if n.ping_sent_ms == 0
                && now - n.pong_received_ms > timeout / 2
                && !pinged.contains(id)
            {
                send_ping(cs, id, now, &mut plan);
            }
        }
        let Some(n) = cs.node_mut(id) else { continue };
        if n.ping_sent_ms != 0
            && now - n.ping_sent_ms > timeout
            && now - n.data_received_ms > timeout
            && !n.pfail
            && !n.fail
        {
            tracing::info!(node = %id, "node is not answering: PFAIL");
            n.pfail = true;
            state_changed = true;
        }
    }

    failover::cron(cs, now, &mut plan.send);
    super::replica_migration::cron(cs, now);

    pong_everyone_if_asked(cs, &mut plan.send, |id| {
        matches!(link(id), LinkView::Up { .. })
    });
    if state_changed {
        cs.mark_dirty();
    }
    cs.update_state();
    plan
}

fn send_ping(cs: &mut ClusterState, id: &NodeId, now: i64, plan: &mut CronPlan) {
    let msg = ping_to(cs, id, now);
    plan.send.push((Arc::clone(id), msg));
}

#[cfg(test)]
mod tests;
