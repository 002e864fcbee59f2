use super::*;
use crate::node::cluster::gossip::{
    add_failure_report, count_failure_reports, mark_failing_if_needed,
};
use crate::node::cluster::{ClusterNode, Role, random_node_id};

const NOW: i64 = 1_000_000;

fn node(port: u16) -> ClusterNode {
    ClusterNode::new(random_node_id(), "127.0.0.1", port, port + 10000)
}

/// This node as a master serving slots 0..100 (epoch 1), with another
/// master `b` (100..200, epoch 2) and `b`'s replica `r`; also masters `c`
/// and `d` serving one slot each. Returns (state, b, r, c, d).
fn cluster() -> (ClusterState, NodeId, NodeId, NodeId, NodeId) {
    let mut cs = ClusterState::new(node(7000), true);
    cs.node_timeout_ms = 1000;
    let me = Arc::clone(&cs.myself);
    cs.set_owners(0..100, Some(&me));
    cs.me_mut().config_epoch = 1;
    let mut ids = Vec::new();
    for port in 7001..7005 {
        let n = node(port);
        ids.push(Arc::clone(&n.id));
        cs.add_node(n);
    }
    let (b, r, c, d) = (
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[3].clone(),
    );
    cs.set_owners(100..200, Some(&b));
    cs.node_mut(&b).unwrap().config_epoch = 2;
    cs.set_owners(200..201, Some(&c));
    cs.set_owners(201..202, Some(&d));
    let rn = cs.node_mut(&r).unwrap();
    rn.role = Role::Replica;
    rn.master = Some(Arc::clone(&b));
    cs.current_epoch = 5;
    cs.update_state();
    (cs, b, r, c, d)
}

fn request<'a>(r: &'a str, slots: &'a SlotBitmap, epoch: u64) -> VoteRequest<'a> {
    VoteRequest {
        requester: r,
        current_epoch: epoch,
        config_epoch: 2,
        slots,
        force_ack: false,
    }
}

fn slots_of(cs: &ClusterState, id: &str) -> SlotBitmap {
    cs.node(id).unwrap().slots().clone()
}

#[test]
fn quorum_is_a_majority_of_the_masters_serving_slots() {
    assert_eq!(quorum(1), 1);
    assert_eq!(quorum(2), 2);
    assert_eq!(quorum(3), 2);
    assert_eq!(quorum(4), 3);
    assert_eq!(quorum(5), 3);
}

#[test]
fn the_election_waits_longer_by_rank_and_for_votes_at_least_2_s() {
    assert_eq!(election_delay_ms(0, 0), 500);
    assert_eq!(election_delay_ms(0, 499), 999);
    assert_eq!(election_delay_ms(2, 100), 2600);
    assert_eq!(auth_timeout_ms(500), 2000);
    assert_eq!(auth_timeout_ms(1500), 3000);
}

#[test]
fn rank_counts_siblings_with_a_greater_offset() {
    let mut cs = ClusterState::new(node(7000), true);
    let m = node(7001);
    let m_id = Arc::clone(&m.id);
    cs.add_node(m);
    let mut siblings = Vec::new();
    for (port, offset, nofailover) in [(7002, 50, false), (7003, 200, false), (7004, 300, true)] {
        let mut n = node(port);
        n.role = Role::Replica;
        n.master = Some(Arc::clone(&m_id));
        n.repl_offset = offset;
        n.nofailover = nofailover;
        siblings.push(Arc::clone(&n.id));
        cs.add_node(n);
    }
    cs.set_my_master(&m_id);
    assert_eq!(
        rank(&cs),
        2,
        "offset 0: behind 50 and 200; 300 cannot fail over"
    );
    cs.set_my_repl_offset(100);
    assert_eq!(rank(&cs), 1);
    cs.set_my_repl_offset(200);
    assert_eq!(rank(&cs), 0, "equal offsets share a rank");
    cs.set_my_repl_offset(1000);
    assert_eq!(rank(&cs), 0);
}

#[test]
fn a_master_votes_once_per_epoch_for_a_replica_of_a_failed_master() {
    let (mut cs, b, r, _, _) = cluster();
    let slots = slots_of(&cs, &b);
    assert_eq!(
        vote_refusal(&cs, &request(&r, &slots, 5), NOW),
        Err(Refusal::MasterUp)
    );
    cs.node_mut(&b).unwrap().fail = true;
    assert_eq!(vote_refusal(&cs, &request(&r, &slots, 5), NOW), Ok(()));
    assert_eq!(
        vote_refusal(&cs, &request(&r, &slots, 4), NOW),
        Err(Refusal::StaleRequest {
            request: 4,
            current: 5
        })
    );
    let mut forced = request(&r, &slots, 5);
    cs.node_mut(&b).unwrap().fail = false;
    forced.force_ack = true;
    assert_eq!(vote_refusal(&cs, &forced, NOW), Ok(()), "manual failover");

    cs.last_vote_epoch = 5;
    assert_eq!(
        vote_refusal(&cs, &forced, NOW),
        Err(Refusal::AlreadyVoted(5))
    );
    cs.current_epoch = 6;
    forced.current_epoch = 6;
    assert_eq!(vote_refusal(&cs, &forced, NOW), Ok(()));
    // One vote about a master per node_timeout * 2 (1 s here).
    cs.node_mut(&b).unwrap().voted_time_ms = NOW - 500;
    assert_eq!(
        vote_refusal(&cs, &forced, NOW),
        Err(Refusal::VotedRecently(1500))
    );
    assert_eq!(vote_refusal(&cs, &forced, NOW + 1500), Ok(()));
}

#[test]
fn no_vote_for_a_master_an_unknown_shard_or_stale_slots() {
    let (mut cs, b, r, c, _) = cluster();
    cs.node_mut(&b).unwrap().fail = true;
    let slots = slots_of(&cs, &b);
    assert_eq!(
        vote_refusal(&cs, &request(&c, &slots, 5), NOW),
        Err(Refusal::RequesterIsMaster)
    );
    let stranger = random_node_id();
    assert_eq!(
        vote_refusal(&cs, &request(&stranger, &slots, 5), NOW),
        Err(Refusal::UnknownMaster)
    );
    // The claimed slots include one that c serves at a newer epoch.
    cs.node_mut(&c).unwrap().config_epoch = 9;
    let mut claim = slots.clone();
    claim.insert(200);
    assert_eq!(
        vote_refusal(&cs, &request(&r, &claim, 5), NOW),
        Err(Refusal::NewerSlotOwner {
            slot: 200,
            epoch: 9,
            request: 2
        })
    );
    // A master without slots, or a replica, has no vote.
    let me = Arc::clone(&cs.myself);
    let mine: Vec<u16> = cs.slots_of(&me).collect();
    cs.set_owners(mine, None);
    assert_eq!(
        vote_refusal(&cs, &request(&r, &slots, 5), NOW),
        Err(Refusal::NotAVoter)
    );
}

#[test]
fn a_vote_is_recorded_and_counted_by_the_requester() {
    let (mut cs, b, r, c, d) = cluster();
    cs.node_mut(&b).unwrap().fail = true;
    let mut hdr = crate::node::cluster::gossip::header(&cs);
    hdr.sender = r.to_string();
    hdr.current_epoch = 5;
    hdr.config_epoch = 2;
    hdr.slots = slots_of(&cs, &b);
    let ack = vote(&mut cs, &hdr, NOW).expect("a vote");
    assert_eq!(ack.kind(), Kind::FailoverAuthAck);
    assert_eq!(cs.last_vote_epoch, 5);
    assert_eq!(cs.node(&b).unwrap().voted_time_ms, NOW);
    assert!(vote(&mut cs, &hdr, NOW).is_none(), "once per epoch");

    // The requester's side: votes of masters serving slots, for our epoch.
    cs.election.auth_epoch = 7;
    note_vote(&mut cs, &c, 6);
    assert_eq!(cs.election.auth_count, 0, "an older epoch");
    note_vote(&mut cs, &c, 7);
    note_vote(&mut cs, &d, 8);
    note_vote(&mut cs, &r, 9);
    assert_eq!(cs.election.auth_count, 2, "a replica's vote does not count");
}

#[test]
fn fail_needs_a_majority_of_masters_within_the_report_validity() {
    let (mut cs, b, r, c, d) = cluster();
    assert_eq!(cs.size, 4, "quorum 3");
    // Not suspected here: reports alone do not make it FAIL.
    add_failure_report(&mut cs, &b, &c, NOW);
    add_failure_report(&mut cs, &b, &d, NOW);
    assert!(!mark_failing_if_needed(&mut cs, &b, NOW));
    cs.node_mut(&b).unwrap().pfail = true;
    // c, d and this master: 3 of 4.
    assert!(mark_failing_if_needed(&mut cs, &b, NOW));
    let n = cs.node(&b).unwrap();
    assert!(n.fail && !n.pfail && n.fail_time_ms == NOW);
    assert!(!mark_failing_if_needed(&mut cs, &b, NOW), "once");

    // Reports expire after node_timeout * 2.
    let (mut cs, b, _, c, d) = cluster();
    cs.node_mut(&b).unwrap().pfail = true;
    add_failure_report(&mut cs, &b, &c, NOW - 2500);
    add_failure_report(&mut cs, &b, &d, NOW);
    assert!(!mark_failing_if_needed(&mut cs, &b, NOW));
    assert_eq!(count_failure_reports(&mut cs, &b, NOW), 1);

    // A replica does not count itself.
    let (mut cs, b, _, c, d) = cluster();
    let me = Arc::clone(&cs.myself);
    let mine: Vec<u16> = cs.slots_of(&me).collect();
    cs.set_owners(mine, Some(&c));
    cs.set_my_master(&c);
    assert_eq!(cs.size, 3, "quorum 2");
    cs.node_mut(&b).unwrap().pfail = true;
    add_failure_report(&mut cs, &b, &d, NOW);
    assert!(!mark_failing_if_needed(&mut cs, &b, NOW));
    add_failure_report(&mut cs, &b, &c, NOW);
    assert!(mark_failing_if_needed(&mut cs, &b, NOW));
    let _ = r;
}

#[test]
fn cluster_failover_checks_its_preconditions_in_redis_words() {
    let (mut cs, b, _, _, _) = cluster();
    assert_eq!(
        start_manual(&mut cs, Mode::Force, NOW),
        Err("ERR You should send CLUSTER FAILOVER to a replica")
    );
    let me = Arc::clone(&cs.myself);
    let mine: Vec<u16> = cs.slots_of(&me).collect();
    cs.set_owners(mine, None);
    let mut master_rx = cs.subscribe_master();
    cs.set_my_master(&b);
    assert_eq!(
        master_rx.borrow_and_update().as_ref().map(|m| m.id.clone()),
        Some(b.clone()),
        "replication follows the new master"
    );
    assert_eq!(
        start_manual(&mut cs, Mode::Default, NOW),
        Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE"),
        "no link to the master"
    );
    cs.node_mut(&b).unwrap().connected = true;
    assert_eq!(start_manual(&mut cs, Mode::Default, NOW), Ok(()));
    assert!(cs.manual.send_mfstart);
    assert_eq!(cs.manual.end_ms, NOW + MF_TIMEOUT_MS);
    cs.node_mut(&b).unwrap().fail = true;
    assert!(start_manual(&mut cs, Mode::Default, NOW).is_err());
    assert_eq!(start_manual(&mut cs, Mode::Force, NOW), Ok(()));
    assert!(cs.manual.can_start && !cs.manual.send_mfstart);

    // TAKEOVER: the slots at once, under a new epoch nobody else has.
    let epoch = cs.max_epoch();
    assert_eq!(start_manual(&mut cs, Mode::Takeover, NOW), Ok(()));
    assert!(cs.me().is_master());
    assert_eq!(cs.me().numslots(), 100);
    assert_eq!(cs.me().config_epoch, epoch + 1);
    assert!(cs.broadcast_pong);
    assert_eq!(cs.manual.end_ms, 0);
    assert!(master_rx.has_changed().unwrap());
    assert_eq!(*master_rx.borrow(), None, "replication stops following");

    // A replica whose master is not known.
    let mut lone = ClusterState::new(node(7000), true);
    lone.me_mut().role = Role::Replica;
    lone.me_mut().master = Some(random_node_id());
    assert_eq!(
        start_manual(&mut lone, Mode::Takeover, NOW),
        Err("ERR I'm a replica but my master is unknown to me")
    );
}

#[test]
fn a_paused_master_holds_writes_until_the_failover_ends() {
    let (mut cs, _, _, _, _) = cluster();
    // r is a replica of b, not ours: ignored.
    let stranger = cs
        .others()
        .find(|n| n.is_replica())
        .map(|n| Arc::clone(&n.id))
        .unwrap();
    assert!(!manual_failover_requested(&mut cs, &stranger, NOW));
    let mut ours = node(7009);
    ours.role = Role::Replica;
    ours.master = Some(Arc::clone(&cs.myself));
    let ours_id = Arc::clone(&ours.id);
    cs.add_node(ours);
    assert!(manual_failover_requested(&mut cs, &ours_id, NOW));
    assert_eq!(cs.client_writes_paused_until(NOW), Some(NOW + 10_000));
    let hdr = crate::node::cluster::gossip::header(&cs);
    assert_eq!(hdr.mflags & mflags::PAUSED, mflags::PAUSED);
    // The master pings the replica every tick meanwhile.
    let mut out = Vec::new();
    cron(&mut cs, NOW + 100, &mut out);
    assert!(
        out.iter()
            .any(|(to, m)| *to == ours_id && m.kind() == Kind::Ping)
    );
    // Past 5 s the failover is dropped and writes resume.
    cron(&mut cs, NOW + MF_TIMEOUT_MS + 1, &mut Vec::new());
    assert_eq!(cs.client_writes_paused_until(NOW + MF_TIMEOUT_MS + 1), None);
    assert_eq!(gossip::header(&cs).mflags, 0);
}

#[test]
fn stale_data_keeps_a_replica_from_failing_over_by_itself() {
    let (mut cs, b, _, _, _) = cluster();
    let me = Arc::clone(&cs.myself);
    let mine: Vec<u16> = cs.slots_of(&me).collect();
    cs.set_owners(mine, None);
    cs.set_my_master(&b);
    cs.node_mut(&b).unwrap().fail = true;
    // Link down for 25 s: more than 10 s + node_timeout (1 s) * 10.
    cs.note_master_link_alive(NOW - 25_000);
    let mut out = Vec::new();
    cron(&mut cs, NOW, &mut out);
    assert_eq!(cs.election.auth_time_ms, 0, "no election scheduled");
    // With factor 0 it always may.
    cs.replica_validity_factor = 0;
    cron(&mut cs, NOW, &mut out);
    assert!(cs.election.auth_time_ms >= NOW + 500);
    assert!(cs.election.auth_time_ms < NOW + 1000);
    // cluster-replica-no-failover: no election by itself.
    let (mut cs, b, _, _, _) = cluster();
    let me = Arc::clone(&cs.myself);
    let mine: Vec<u16> = cs.slots_of(&me).collect();
    cs.set_owners(mine, None);
    cs.set_my_master(&b);
    cs.node_mut(&b).unwrap().fail = true;
    cs.set_replica_no_failover(true);
    cron(&mut cs, NOW, &mut Vec::new());
    assert_eq!(cs.election.auth_time_ms, 0);
}
