use super::*;

fn state() -> ClusterState {
    ClusterState::new(
        ClusterNode::new(random_node_id(), "127.0.0.1", 7000, 17000),
        true,
    )
}

fn other(port: u16) -> ClusterNode {
    ClusterNode::new(random_node_id(), "127.0.0.1", port, port + 10000)
}

#[test]
fn owners_and_bitmaps_move_together() {
    let mut cs = state();
    let b = other(7001);
    let b_id = Arc::clone(&b.id);
    cs.add_node(b);
    let me = Arc::clone(&cs.myself);
    cs.set_owners(0..8192, Some(&me));
    assert!(!cs.state_ok, "half the slots are not covered");
    cs.set_owners(8192..16384, Some(&b_id));
    assert!(cs.state_ok);
    assert_eq!(cs.size, 2);
    cs.set_owner(0, Some(Arc::clone(&b_id)));
    assert_eq!(cs.me().numslots(), 8191);
    assert_eq!(cs.node(&b_id).unwrap().numslots(), 8193);
    assert!(cs.node(&b_id).unwrap().slots().contains(0));
    assert!(!cs.me().slots().contains(0));
    assert_eq!(cs.slots_of(&b_id).next(), Some(0));
    assert_eq!(cs.slots_assigned(), 16384);
    cs.set_owner(1, None);
    assert!(!cs.state_ok);
    assert_eq!(cs.slots_assigned(), 16383);
}

#[test]
fn full_coverage_can_be_waived_but_not_the_majority() {
    let mut cs = ClusterState::new(
        ClusterNode::new(random_node_id(), "127.0.0.1", 7000, 17000),
        false,
    );
    assert!(!cs.state_ok, "no master serves anything");
    let me = Arc::clone(&cs.myself);
    cs.set_owner(5, Some(me));
    assert!(cs.state_ok);
    let b = other(7001);
    let b_id = Arc::clone(&b.id);
    cs.add_node(b);
    cs.set_owner(6, Some(Arc::clone(&b_id)));
    let c = other(7002);
    let c_id = Arc::clone(&c.id);
    cs.add_node(c);
    cs.set_owner(7, Some(Arc::clone(&c_id)));
    for id in [&b_id, &c_id] {
        cs.node_mut(id).unwrap().pfail = true;
    }
    cs.update_state();
    assert!(!cs.state_ok, "one of three masters is a minority");
}

#[test]
fn forgetting_a_node_frees_its_slots_and_its_replicas() {
    let mut cs = state();
    let b = other(7001);
    let b_id = Arc::clone(&b.id);
    cs.add_node(b);
    let mut r = other(7002);
    r.role = Role::Replica;
    r.master = Some(Arc::clone(&b_id));
    let r_id = Arc::clone(&r.id);
    cs.add_node(r);
    cs.set_owners(0..100, Some(&b_id));
    cs.importing.insert(5, Arc::clone(&b_id));
    assert_eq!(cs.replicas_of(&b_id).len(), 1);
    cs.del_node(&b_id);
    assert!(cs.node(&b_id).is_none());
    assert_eq!(cs.owner(0), None);
    assert!(cs.importing.is_empty());
    assert_eq!(cs.node(&r_id).unwrap().master, None);
    assert_eq!(cs.known_nodes(), 2);
}

#[test]
fn a_renamed_handshake_node_keeps_its_place() {
    let mut cs = state();
    assert!(cs.start_handshake("127.0.0.1", 7001, 17001, true));
    assert!(
        !cs.start_handshake("127.0.0.1", 7001, 17001, true),
        "one handshake per address"
    );
    let old = Arc::clone(&cs.others().next().unwrap().id);
    let new = "f".repeat(40);
    cs.rename_node(&old, &new);
    assert!(cs.node(&old).is_none());
    let n = cs.node(&new).unwrap();
    assert_eq!((n.port, n.handshake, n.meet), (7001, true, true));
}

#[test]
fn epochs_bump_only_when_not_already_the_greatest() {
    let mut cs = state();
    assert!(cs.bump_epoch_without_consensus());
    assert_eq!((cs.current_epoch, cs.me().config_epoch), (1, 1));
    assert!(!cs.bump_epoch_without_consensus());
    let mut b = other(7001);
    b.config_epoch = 5;
    cs.add_node(b);
    assert_eq!(cs.max_epoch(), 5);
    assert!(cs.bump_epoch_without_consensus());
    assert_eq!((cs.current_epoch, cs.me().config_epoch), (2, 2));
}

#[test]
fn replicating_and_resetting() {
    let mut cs = state();
    let mut rx = cs.subscribe_master();
    let b = other(7001);
    let b_id = Arc::clone(&b.id);
    cs.add_node(b);
    cs.migrating.insert(1, Arc::clone(&b_id));
    cs.set_my_master(&b_id);
    assert!(cs.me().is_replica());
    assert!(cs.migrating.is_empty(), "a replica has no open slots");
    assert_eq!(
        rx.borrow_and_update().as_ref().map(|m| m.port),
        Some(7001),
        "replication hears of its master"
    );
    cs.current_epoch = 4;
    let old_id = Arc::clone(&cs.myself);
    cs.reset(false);
    assert!(cs.me().is_master());
    assert_eq!(cs.known_nodes(), 1);
    assert_eq!(cs.current_epoch, 4);
    assert_eq!(cs.myself, old_id);
    assert!(rx.borrow_and_update().is_none());
    cs.reset(true);
    assert_eq!(cs.current_epoch, 0);
    assert_ne!(cs.myself, old_id);
    assert_eq!(cs.me().id, cs.myself);
}

#[test]
fn the_blacklist_expires() {
    let mut cs = state();
    let id: NodeId = "a".repeat(40).into();
    cs.blacklist_add(&id, 1000);
    assert!(cs.is_blacklisted(&id, 1000 + BLACKLIST_TTL_MS - 1));
    assert!(!cs.is_blacklisted(&id, 1000 + BLACKLIST_TTL_MS));
}

#[test]
fn info_counts_slots_by_health() {
    let mut cs = state();
    let b = other(7001);
    let b_id = Arc::clone(&b.id);
    cs.add_node(b);
    let me = Arc::clone(&cs.myself);
    cs.set_owners(0..10000, Some(&me));
    cs.set_owners(10000..16384, Some(&b_id));
    cs.node_mut(&b_id).unwrap().pfail = true;
    cs.stats.sent[0] = 3;
    let info = cs.info_text();
    for line in [
        "cluster_slots_assigned:16384\r\n",
        "cluster_slots_ok:10000\r\n",
        "cluster_slots_pfail:6384\r\n",
        "cluster_known_nodes:2\r\n",
        "cluster_size:2\r\n",
        "cluster_stats_messages_ping_sent:3\r\ncluster_stats_messages_sent:3\r\n",
        "cluster_stats_messages_received:0\r\n",
        "total_cluster_links_buffer_limit_exceeded:0\r\n",
    ] {
        assert!(info.contains(line), "{line:?} not in {info}");
    }
    assert!(info.starts_with("cluster_state:"));
}

#[test]
fn changes_mark_the_config_dirty() {
    let mut cs = state();
    assert!(cs.take_dirty() || !cs.take_dirty());
    assert!(!cs.take_dirty());
    cs.set_owner(3, Some(Arc::clone(&cs.myself)));
    assert!(cs.take_dirty());
    cs.start_handshake("127.0.0.1", 7005, 17005, true);
    assert!(cs.take_dirty());
}
