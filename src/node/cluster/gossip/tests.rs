//! The bus logic on an in-memory network: every node's `cron` runs each
//! simulated 100 ms, and messages are handed straight to `process` on the
//! other side, replies included. No sockets, no clocks: deterministic
//! enough to check convergence in a bounded number of ticks.

use std::collections::HashSet;

use bytes::Bytes;

use super::*;
use crate::node::db::Value;

const TICK_MS: i64 = 100;

struct Sim {
    nodes: Vec<NodeState>,
    /// Outbound links that are up: (from index, to node id).
    links: HashSet<(usize, String)>,
    /// Nodes that are down: they get nothing and send nothing.
    down: HashSet<usize>,
    now: i64,
}

fn node(i: usize) -> NodeState {
    let port = 7000 + i as u16;
    let mut cs = ClusterState::new(
        ClusterNode::new(
            super::super::random_node_id(),
            "127.0.0.1",
            port,
            port + 10000,
        ),
        true,
    );
    cs.node_timeout_ms = 2000;
    cs.announce_ip = Some("127.0.0.1".into());
    NodeState::new(cs)
}

impl Sim {
    fn new(n: usize) -> Sim {
        Sim {
            nodes: (0..n).map(node).collect(),
            links: HashSet::new(),
            down: HashSet::new(),
            now: 1_000_000,
        }
    }

    fn id(&self, i: usize) -> String {
        self.nodes[i].cluster.myself.to_string()
    }

    fn cs(&mut self, i: usize) -> &mut ClusterState {
        &mut self.nodes[i].cluster
    }

    /// Node `i` has processed `offset` bytes of its write stream (the bus
    /// announces the stream's offset).
    fn set_offset(&mut self, i: usize, offset: u64) {
        self.nodes[i].feed.reset_offset(offset);
        self.nodes[i].cluster.set_my_repl_offset(offset);
    }

    fn index_of_port(&self, cport: u16) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.cluster.me().cport == cport)
    }

    fn apply(&mut self, at: usize, fx: Effects) {
        for (id, msg) in fx.send {
            self.send(at, &id, msg);
        }
        for id in fx.reset_links {
            self.links.remove(&(at, id.to_string()));
        }
    }

    /// `from` sends on its outbound link to `id`, which must be up.
    fn send(&mut self, from: usize, id: &str, msg: Message) {
        if !self.links.contains(&(from, id.to_string())) {
            return;
        }
        let Some(cport) = self.nodes[from].cluster.node(id).map(|n| n.cport) else {
            return;
        };
        let Some(target) = self.index_of_port(cport) else {
            return;
        };
        self.request(from, id, target, msg);
    }

    /// A request on `from`'s link to `id`, and its reply.
    fn request(&mut self, from: usize, id: &str, target: usize, msg: Message) {
        if self.down.contains(&target) || self.down.contains(&from) {
            return;
        }
        let now = self.now;
        let inbound = LinkInfo {
            to: None,
            peer_ip: "127.0.0.1",
            local_ip: "127.0.0.1",
        };
        let fx = process(&mut self.nodes[target], msg, &inbound, now);
        let reply = fx.reply.clone();
        self.apply(target, Effects { reply: None, ..fx });
        if let Some(reply) = reply {
            let outbound = LinkInfo {
                to: Some(id),
                peer_ip: "127.0.0.1",
                local_ip: "127.0.0.1",
            };
            let fx = process(&mut self.nodes[from], reply, &outbound, now);
            if fx.close_link {
                self.links.remove(&(from, id.to_string()));
            }
            self.apply(from, fx);
        }
    }

    fn tick(&mut self) {
        self.now += TICK_MS;
        for i in 0..self.nodes.len() {
            if self.down.contains(&i) {
                continue;
            }
            let links = self.links.clone();
            let view = |id: &str| {
                if links.contains(&(i, id.to_string())) {
                    LinkView::Up { since_ms: 0 }
                } else {
                    LinkView::Missing
                }
            };
            let now = self.now;
            let plan = cron(&mut self.nodes[i].cluster, now, &view);
            // Links to nodes that are gone are dropped, as the bus does.
            self.links
                .retain(|(from, id)| *from != i || self.nodes[i].cluster.node(id).is_some());
            for id in plan.reset_links {
                self.links.remove(&(i, id.to_string()));
            }
            for (id, _ip, cport, first) in plan.connect {
                let Some(target) = self.index_of_port(cport) else {
                    continue;
                };
                if self.down.contains(&target) {
                    continue;
                }
                self.links.insert((i, id.to_string()));
                if let Some(n) = self.nodes[i].cluster.node_mut(&id) {
                    n.connected = true;
                    n.meet = false;
                }
                self.request(i, &id, target, first);
            }
            for (id, msg) in plan.send {
                self.send(i, &id, msg);
            }
        }
    }

    #[track_caller]
    fn run_until(&mut self, max_ticks: usize, mut done: impl FnMut(&mut Sim) -> bool) -> usize {
        for t in 0..max_ticks {
            if done(self) {
                return t;
            }
            self.tick();
        }
        assert!(done(self), "not converged after {max_ticks} ticks");
        max_ticks
    }

    fn meet(&mut self, i: usize, j: usize) {
        let (port, cport) = {
            let me = self.nodes[j].cluster.me();
            (me.port, me.cport)
        };
        self.cs(i).start_handshake("127.0.0.1", port, cport, true);
    }

    /// Every live node knows exactly the live set of ids, none in handshake,
    /// and they all agree on every slot's owner.
    fn agreed(&self) -> bool {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !self.down.contains(i))
            .collect();
        let first = &self.nodes[live[0]].cluster;
        live.iter().all(|&i| {
            let cs = &self.nodes[i].cluster;
            cs.known_nodes() == self.nodes.len()
                && cs.others().all(|n| !n.handshake)
                && (0..16384u16)
                    .step_by(97)
                    .all(|s| cs.owner(s) == first.owner(s))
        })
    }
}

fn assign_thirds(sim: &mut Sim) {
    for (i, range) in [(0, 0..5461u16), (1, 5461..10923), (2, 10923..16384)] {
        let me = Arc::clone(&sim.cs(i).myself);
        sim.cs(i).set_owners(range, Some(&me));
        sim.cs(i).me_mut().config_epoch = i as u64 + 1;
        sim.cs(i).current_epoch = i as u64 + 1;
    }
}

#[test]
fn one_meet_per_node_joins_everyone() {
    let mut sim = Sim::new(6);
    assign_thirds(&mut sim);
    // Distinct epochs for the slotless nodes too, as redis-cli sets them.
    for i in 3..6 {
        sim.cs(i).me_mut().config_epoch = i as u64 + 1;
        sim.cs(i).current_epoch = i as u64 + 1;
    }
    for i in 1..6 {
        sim.meet(i, 0);
    }
    let ticks = sim.run_until(40, |s| s.agreed());
    assert!(ticks <= 30, "took {ticks} ticks");
    for i in 0..6 {
        let cs = &sim.nodes[i].cluster;
        assert!(cs.state_ok, "node {i}: {}", cs.info_text());
        assert_eq!(cs.size, 3);
        assert_eq!(cs.current_epoch, 6);
        for j in 0..3 {
            let id = sim.id(j);
            assert_eq!(cs.node(&id).unwrap().config_epoch, j as u64 + 1);
        }
    }
}

#[test]
fn replicas_are_known_by_everyone() {
    let mut sim = Sim::new(4);
    assign_thirds(&mut sim);
    for i in 1..4 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let master = sim.id(1);
    sim.cs(3).set_my_master(&master);
    sim.run_until(40, |s| {
        (0..4).all(|i| {
            let id = s.id(3);
            s.nodes[i]
                .cluster
                .node(&id)
                .is_some_and(|n| n.is_replica() && n.master.as_deref() == Some(master.as_str()))
        })
    });
    let replicas = sim.nodes[0].cluster.replicas_of(&master).len();
    assert_eq!(replicas, 1);
}

#[test]
fn epoch_collisions_end_with_unique_epochs() {
    let mut sim = Sim::new(4);
    for i in 1..4 {
        sim.meet(i, 0);
    }
    sim.run_until(60, |s| {
        let mut epochs: Vec<u64> = s
            .nodes
            .iter()
            .map(|n| n.cluster.me().config_epoch)
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        s.agreed() && epochs.len() == 4
    });
}

#[test]
fn a_moved_slot_with_a_bumped_epoch_wins_everywhere() {
    let mut sim = Sim::new(3);
    assign_thirds(&mut sim);
    for i in 1..3 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    // SETSLOT 100 NODE <1> on node 1, then node 0: as redis-cli does.
    let to = Arc::clone(&sim.cs(1).myself);
    sim.cs(1).set_owner(100, Some(Arc::clone(&to)));
    assert!(sim.cs(1).bump_epoch_without_consensus());
    sim.cs(1).broadcast_pong = true;
    sim.run_until(30, |s| {
        (0..3).all(|i| s.nodes[i].cluster.owner(100).map(|o| &**o) == Some(&*to))
    });
    assert_eq!(sim.nodes[0].cluster.me().numslots(), 5460);
}

#[test]
fn a_stale_claim_is_answered_with_an_update() {
    let mut sim = Sim::new(3);
    assign_thirds(&mut sim);
    for i in 1..3 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    // Node 2 takes slot 5 with a newer epoch, but node 0 never hears of it
    // directly: node 0 keeps claiming slot 5 at its old epoch.
    let taker = Arc::clone(&sim.cs(2).myself);
    for i in 1..3 {
        sim.cs(i).set_owner(5, Some(Arc::clone(&taker)));
    }
    sim.cs(2).current_epoch = 10;
    sim.cs(2).me_mut().config_epoch = 10;
    sim.run_until(30, |s| {
        s.nodes[0].cluster.owner(5).map(|o| &**o) == Some(&*taker)
            && s.nodes[1].cluster.owner(5).map(|o| &**o) == Some(&*taker)
    });
    assert!(
        sim.nodes[2].cluster.stats.sent[Kind::Update as usize] > 0
            || sim.nodes[1].cluster.stats.sent[Kind::Update as usize] > 0
    );
}

#[test]
fn losing_a_slot_deletes_its_keys() {
    let mut sim = Sim::new(2);
    let a = Arc::clone(&sim.cs(0).myself);
    sim.cs(0).set_owners(0..16384, Some(&a));
    sim.cs(0).me_mut().config_epoch = 1;
    let key = Bytes::from_static(b"foo"); // slot 12182
    sim.nodes[0]
        .db
        .insert(key.clone(), Value::Str(Bytes::from_static(b"bar")));
    sim.meet(1, 0);
    sim.run_until(40, |s| s.agreed());
    let b = Arc::clone(&sim.cs(1).myself);
    sim.cs(1).current_epoch = 5;
    sim.cs(1).me_mut().config_epoch = 5;
    sim.cs(1).set_owner(12182, Some(Arc::clone(&b)));
    sim.run_until(30, |s| {
        s.nodes[0].cluster.owner(12182).map(|o| &**o) == Some(&*b)
    });
    assert!(!sim.nodes[0].db.contains(b"foo"));
    assert!(sim.nodes[0].cluster.me().is_master());
}

#[test]
fn a_master_that_loses_every_slot_follows_the_new_owner() {
    let mut sim = Sim::new(2);
    let a = Arc::clone(&sim.cs(0).myself);
    sim.cs(0).set_owners(0..10, Some(&a));
    sim.cs(0).me_mut().config_epoch = 1;
    let b = Arc::clone(&sim.cs(1).myself);
    sim.cs(1).set_owners(10..16384, Some(&b));
    sim.cs(1).me_mut().config_epoch = 2;
    sim.meet(1, 0);
    sim.run_until(40, |s| s.agreed());
    sim.cs(1).set_owners(0..10, Some(&b));
    sim.cs(1).current_epoch = 3;
    sim.cs(1).me_mut().config_epoch = 3;
    sim.run_until(30, |s| s.nodes[0].cluster.me().is_replica());
    assert_eq!(sim.nodes[0].cluster.me().master.as_deref(), Some(&*b));
    sim.run_until(30, |s| {
        s.nodes[1]
            .cluster
            .node(&a)
            .is_some_and(|n| n.master.as_deref() == Some(&*b))
    });
}

#[test]
fn a_silent_master_is_suspected_then_failed_by_the_majority_then_cleared() {
    let mut sim = Sim::new(3);
    assign_thirds(&mut sim);
    for i in 1..3 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    sim.down.insert(2);
    let id = sim.id(2);
    // node_timeout is 2 s: suspected well within 5 s...
    sim.run_until(50, |s| {
        s.nodes[0]
            .cluster
            .node(&id)
            .is_some_and(|n| n.pfail || n.fail)
    });
    // ...and failed once both live masters (a majority of 3) suspect it:
    // node 1's report plus node 0's own view.
    sim.run_until(20, |s| {
        (0..2).all(|i| {
            s.nodes[i]
                .cluster
                .node(&id)
                .is_some_and(|n| n.fail && !n.pfail)
        })
    });
    for i in 0..2 {
        let cs = &sim.nodes[i].cluster;
        let info = cs.info_text();
        assert!(info.contains("cluster_slots_fail:5461"), "{info}");
        assert!(!cs.state_ok, "a slot without a live master: {info}");
    }
    let fail_kind = Kind::Fail as usize;
    let fails_sent: u64 = (0..2)
        .map(|i| sim.nodes[i].cluster.stats.sent[fail_kind])
        .sum();
    assert!(fails_sent > 0, "FAIL is broadcast");
    // Back, still serving its slots and replaced by nobody: FAIL is lifted
    // once node_timeout * 2 has passed since it was set.
    sim.down.remove(&2);
    sim.run_until(80, |s| {
        (0..3).all(|i| {
            let cs = &s.nodes[i].cluster;
            cs.state_ok && cs.node(&id).is_some_and(|n| !n.pfail && !n.fail)
        })
    });
}

#[test]
fn a_forgotten_node_stays_forgotten_for_a_minute() {
    let mut sim = Sim::new(3);
    assign_thirds(&mut sim);
    for i in 1..3 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let gone = sim.id(2);
    let now = sim.now;
    sim.cs(0).blacklist_add(&gone.as_str().into(), now);
    sim.cs(0).del_node(&gone);
    sim.down.insert(2);
    for _ in 0..50 {
        sim.tick();
        assert!(sim.nodes[0].cluster.node(&gone).is_none());
    }
    assert_eq!(sim.nodes[0].cluster.owner(12000), None);
}

#[test]
fn a_meet_to_ones_own_address_is_dropped() {
    let mut sim = Sim::new(1);
    sim.meet(0, 0);
    sim.run_until(10, |s| s.nodes[0].cluster.known_nodes() == 1);
}

#[test]
fn publish_targets_everyone_or_the_shard() {
    let mut sim = Sim::new(4);
    assign_thirds(&mut sim);
    for i in 1..4 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let master = sim.id(1);
    sim.cs(3).set_my_master(&master);
    sim.run_until(40, |s| {
        let id = s.id(3);
        s.nodes[0]
            .cluster
            .node(&id)
            .is_some_and(ClusterNode::is_replica)
    });
    let (msg, all) = publish_message(
        sim.cs(0),
        Bytes::from_static(b"ch"),
        Bytes::from_static(b"m"),
        None,
    );
    assert_eq!(msg.kind(), Kind::Publish);
    assert_eq!(all.len(), 3);
    let (msg, shard) = publish_message(
        sim.cs(0),
        Bytes::from_static(b"ch"),
        Bytes::from_static(b"m"),
        Some(6000),
    );
    assert_eq!(msg.kind(), Kind::PublishShard);
    let mut shard: Vec<String> = shard.iter().map(|s| s.to_string()).collect();
    shard.sort();
    let mut want = vec![sim.id(1), sim.id(3)];
    want.sort();
    assert_eq!(shard, want);
}

#[test]
fn an_entry_answered_by_another_node_loses_its_address() {
    let mut sim = Sim::new(2);
    sim.meet(1, 0);
    sim.run_until(40, |s| s.agreed());
    // Node 0 believes a stale id lives at node 1's address.
    let (port, cport) = {
        let me = sim.nodes[1].cluster.me();
        (me.port, me.cport)
    };
    let stale = ClusterNode::new("e".repeat(40).into(), "127.0.0.1", port, cport);
    sim.cs(0).add_node(stale);
    sim.run_until(10, |s| {
        s.nodes[0]
            .cluster
            .node(&"e".repeat(40))
            .is_some_and(|n| n.noaddr && n.port == 0)
    });
    // It is no longer linked to, nor gossiped about.
    for _ in 0..10 {
        sim.tick();
    }
    assert!(!sim.links.contains(&(0, "e".repeat(40))));
}

/// Three masters (0, 1, 2) with one replica each (3, 4, 5), agreed.
fn shards() -> Sim {
    let mut sim = Sim::new(6);
    assign_thirds(&mut sim);
    for i in 3..6 {
        sim.cs(i).me_mut().config_epoch = i as u64 + 1;
        sim.cs(i).current_epoch = i as u64 + 1;
    }
    for i in 1..6 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    for i in 3..6 {
        let master = sim.id(i - 3);
        sim.cs(i).set_my_master(&master);
    }
    sim.run_until(40, |s| {
        (0..6).all(|i| {
            (3..6).all(|r| {
                let id = s.id(r);
                s.nodes[i]
                    .cluster
                    .node(&id)
                    .is_some_and(ClusterNode::is_replica)
            })
        })
    });
    sim
}

/// Every live node sees `replica` as a replica of `master`.
fn all_see_replica(sim: &Sim, replica: &str, master: &str) -> bool {
    (0..sim.nodes.len())
        .filter(|i| !sim.down.contains(i))
        .all(|i| {
            sim.nodes[i]
                .cluster
                .node(replica)
                .is_some_and(|n| n.is_replica() && n.master.as_deref() == Some(master))
        })
}

/// Every live node sees `id` as a master serving `slots` slots.
fn all_see_master(sim: &Sim, id: &str, slots: usize) -> bool {
    (0..sim.nodes.len())
        .filter(|i| !sim.down.contains(i))
        .all(|i| {
            sim.nodes[i]
                .cluster
                .node(id)
                .is_some_and(|n| n.is_master() && n.numslots() == slots)
        })
}

#[test]
fn a_failed_master_is_replaced_by_its_replica_everywhere() {
    let mut sim = shards();
    let (old, new) = (sim.id(0), sim.id(3));
    let epoch_before = sim.nodes[3].cluster.current_epoch;
    sim.down.insert(0);
    // Failure detection (2 s), FAIL, the election delay and the vote.
    let ticks = sim.run_until(80, |s| {
        all_see_master(s, &new, 5461) && (1..6).all(|i| s.nodes[i].cluster.state_ok)
    });
    assert!(ticks <= 50, "took {ticks} ticks");
    let cs = &sim.nodes[3].cluster;
    assert!(
        cs.me().config_epoch > epoch_before,
        "promoted under a new epoch"
    );
    assert_eq!(cs.me().config_epoch, cs.election.auth_epoch);
    for i in 1..6 {
        let cs = &sim.nodes[i].cluster;
        assert!(cs.node(&old).is_some_and(|n| n.fail), "node {i}");
        assert_eq!(cs.owner(0).map(|o| o.to_string()), Some(new.clone()));
    }
    // The old master comes back: it learns the newer epoch and follows its
    // replacement, and everyone clears its FAIL flag.
    sim.down.remove(&0);
    sim.run_until(60, |s| {
        (0..6).all(|i| {
            let cs = &s.nodes[i].cluster;
            cs.state_ok
                && cs.node(&old).is_some_and(|n| {
                    n.is_replica() && !n.fail && n.master.as_deref() == Some(new.as_str())
                })
        })
    });
    assert_eq!(sim.nodes[0].cluster.me().numslots(), 0);
    assert!(all_see_master(&sim, &new, 5461));
    // Replication is told to follow the new master, and stops on it.
    let follows = sim.nodes[0].cluster.subscribe_master().borrow().clone();
    assert_eq!(follows.map(|m| m.id.to_string()), Some(new.clone()));
    assert!(sim.nodes[3].cluster.subscribe_master().borrow().is_none());
}

#[test]
fn manual_failover_swaps_roles_in_every_form() {
    let mut sim = shards();
    let (a, b) = (sim.id(1), sim.id(4));
    let now = sim.now;
    // Default: MFSTART, the master pauses writes and sends its offset,
    // the replica (at the same offset) wins a forced-ack election.
    failover::start_manual(sim.cs(4), failover::Mode::Default, now).unwrap();
    sim.run_until(30, |s| {
        all_see_master(s, &b, 5462) && all_see_replica(s, &a, &b)
    });
    // (The pause itself is over within the tick: the unit tests check it.)
    assert_eq!(
        sim.nodes[1].cluster.stats.received[Kind::MfStart as usize],
        1
    );
    assert!(
        sim.nodes[1]
            .cluster
            .client_writes_paused_until(sim.now)
            .is_none()
    );
    assert!(sim.nodes[1].cluster.me().is_replica());
    // FORCE back: an election without the master's agreement.
    let now = sim.now;
    failover::start_manual(sim.cs(1), failover::Mode::Force, now).unwrap();
    sim.run_until(30, |s| {
        all_see_master(s, &a, 5462) && all_see_replica(s, &b, &a)
    });
    // TAKEOVER: no election at all.
    let votes_before: u64 = (0..6)
        .map(|i| sim.nodes[i].cluster.stats.sent[Kind::FailoverAuthAck as usize])
        .sum();
    let now = sim.now;
    failover::start_manual(sim.cs(4), failover::Mode::Takeover, now).unwrap();
    assert!(sim.nodes[4].cluster.me().is_master(), "at once");
    sim.run_until(30, |s| {
        all_see_master(s, &b, 5462) && all_see_replica(s, &a, &b)
    });
    let votes_after: u64 = (0..6)
        .map(|i| sim.nodes[i].cluster.stats.sent[Kind::FailoverAuthAck as usize])
        .sum();
    assert_eq!(votes_before, votes_after, "TAKEOVER asks nobody");
    // One owner per slot, everywhere.
    assert!(sim.agreed());
}

#[test]
fn a_manual_failover_waits_for_the_replica_to_catch_up() {
    let mut sim = shards();
    let b = sim.id(4);
    sim.set_offset(1, 1000);
    sim.set_offset(4, 900);
    let now = sim.now;
    failover::start_manual(sim.cs(4), failover::Mode::Default, now).unwrap();
    for _ in 0..20 {
        sim.tick();
    }
    assert_eq!(sim.nodes[4].cluster.manual.master_offset, Some(1000));
    assert!(!sim.nodes[4].cluster.manual.can_start);
    assert!(
        sim.nodes[4].cluster.me().is_replica(),
        "behind: no failover"
    );
    assert!(
        sim.nodes[1]
            .cluster
            .client_writes_paused_until(sim.now)
            .is_some()
    );
    // Replication catches up: the failover goes ahead.
    sim.set_offset(4, 1000);
    sim.run_until(20, |s| all_see_master(s, &b, 5462));
    // Past its 5 s, an unfinished manual failover is dropped on both sides.
    let now = sim.now;
    sim.set_offset(1, 5);
    failover::start_manual(sim.cs(1), failover::Mode::Default, now).unwrap();
    sim.run_until(70, |s| {
        s.nodes[1].cluster.manual.end_ms == 0 && s.nodes[4].cluster.manual.end_ms == 0
    });
    assert!(
        sim.nodes[4]
            .cluster
            .client_writes_paused_until(sim.now)
            .is_none()
    );
    assert!(sim.nodes[1].cluster.me().is_replica());
}

#[test]
fn a_spare_replica_migrates_to_an_orphaned_master() {
    // Masters 0, 1, 2; replicas 3 and 4 of master 0, 5 of master 1.
    let mut sim = Sim::new(6);
    assign_thirds(&mut sim);
    for i in 3..6 {
        sim.cs(i).me_mut().config_epoch = i as u64 + 1;
        sim.cs(i).current_epoch = i as u64 + 1;
    }
    for i in 1..6 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let (m0, m1) = (sim.id(0), sim.id(1));
    for (r, m) in [(3, &m0), (4, &m0), (5, &m1)] {
        sim.cs(r).set_my_master(m);
    }
    sim.run_until(40, |s| {
        all_see_replica(s, &s.id(3), &m0)
            && all_see_replica(s, &s.id(4), &m0)
            && all_see_replica(s, &s.id(5), &m1)
    });
    // Master 1 loses its only replica: after its FAIL and 5 s, the replica
    // of master 0 with the smaller id moves over; master 2, never meant to
    // have replicas, gets none.
    sim.down.insert(5);
    let mover = if sim.id(3) < sim.id(4) { 3 } else { 4 };
    let stayer = 7 - mover;
    let ticks = sim.run_until(150, |s| {
        let (r, m) = (s.id(mover), s.id(1));
        all_see_replica(s, &r, &m)
    });
    assert!(ticks >= 50, "waited 5 s first ({ticks} ticks)");
    assert!(sim.nodes[stayer].cluster.me().master.as_deref() == Some(m0.as_str()));
    let m2 = sim.id(2);
    assert!(sim.nodes[0].cluster.replicas_of(&m2).is_empty());
}

#[test]
fn no_replica_migration_when_it_is_off() {
    let mut sim = Sim::new(6);
    assign_thirds(&mut sim);
    for i in 1..6 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let (m0, m1) = (sim.id(0), sim.id(1));
    for (r, m) in [(3, &m0), (4, &m0), (5, &m1)] {
        sim.cs(r).set_my_master(m);
        sim.cs(r).allow_replica_migration = false;
    }
    sim.run_until(40, |s| all_see_replica(s, &s.id(5), &m1));
    sim.down.insert(5);
    for _ in 0..120 {
        sim.tick();
    }
    for r in [3, 4] {
        assert_eq!(
            sim.nodes[r].cluster.me().master.as_deref(),
            Some(m0.as_str())
        );
    }
}

#[test]
fn the_most_up_to_date_replica_wins_and_its_sibling_follows_it() {
    // Masters 0, 1, 2; replicas 3 and 4 of master 0, 5 of master 1.
    let mut sim = Sim::new(6);
    assign_thirds(&mut sim);
    for i in 1..6 {
        sim.meet(i, 0);
    }
    sim.run_until(40, |s| s.agreed());
    let (m0, m1) = (sim.id(0), sim.id(1));
    for (r, m) in [(3, &m0), (4, &m0), (5, &m1)] {
        sim.cs(r).set_my_master(m);
    }
    // Replica 4 has processed more of the stream than replica 3.
    sim.set_offset(3, 50);
    sim.set_offset(4, 100);
    sim.run_until(40, |s| {
        all_see_replica(s, &s.id(3), &m0) && all_see_replica(s, &s.id(4), &m0)
    });
    sim.down.insert(0);
    let (best, other) = (sim.id(4), sim.id(3));
    sim.run_until(80, |s| all_see_master(s, &best, 5461));
    assert_eq!(sim.nodes[3].cluster.election.auth_rank, 1);
    assert!(!sim.nodes[3].cluster.election.auth_sent, "it never asked");
    sim.run_until(30, |s| all_see_replica(s, &other, &best));
}
