use std::sync::Arc;
use std::time::Instant;

use super::info::info_lines;
use super::*;
use crate::node::client::{ClientHandle, ClientState};
use crate::node::cmd::tx::harness::{node, run};
use crate::node::propagate::Feed;

/// A feed whose stream holds `len` bytes, with a backlog of `size`.
fn feed_with(len: usize, size: usize) -> Feed {
    let mut feed = Feed::new();
    feed.enable_backlog(size);
    let value = vec![b'x'; len.saturating_sub(25).max(1)];
    while feed.offset() < len as u64 {
        feed.push(&[b"SET", b"k", &value]);
    }
    feed
}

fn link(id: u64, next: u64) -> ReplicaLink {
    ReplicaLink {
        client_id: id,
        handle: Arc::new(ClientHandle::new(id, None, None, -1)),
        ip: None,
        port: 7000 + id as u16,
        state: SyncState::Online,
        ack_offset: 0,
        ack_time: Instant::now(),
        next,
        backed_up: false,
    }
}

#[test]
fn a_replica_continues_only_within_our_history_and_the_backlog() {
    let repl = Replication::new();
    let feed = feed_with(100, 1 << 20);
    let end = feed.offset() as i64;
    let ours = repl.replid.as_bytes();
    // PSYNC offsets are 1-based: offset+1 of the last byte processed.
    assert_eq!(repl.continue_point(ours, 1, &feed), Some(0));
    assert_eq!(repl.continue_point(ours, end + 1, &feed), Some(end as u64));
    assert_eq!(
        repl.continue_point(ours, end + 2, &feed),
        None,
        "ahead of us"
    );
    assert_eq!(repl.continue_point(ours, 0, &feed), None);
    assert_eq!(repl.continue_point(b"?", -1, &feed), None);
    let other = new_replid();
    assert_eq!(repl.continue_point(other.as_bytes(), 1, &feed), None);
    let no_backlog = Feed::new();
    assert_eq!(repl.continue_point(ours, 1, &no_backlog), None);
}

#[test]
fn the_backlog_forgets_old_bytes() {
    let repl = Replication::new();
    let feed = feed_with(10_000, 1000);
    let start = feed.backlog().unwrap().start();
    assert!(start > 0);
    let ours = repl.replid.as_bytes();
    assert_eq!(repl.continue_point(ours, start as i64, &feed), None);
    assert_eq!(
        repl.continue_point(ours, start as i64 + 1, &feed),
        Some(start)
    );
}

#[test]
fn after_a_promotion_the_old_history_continues_up_to_where_it_ended() {
    let mut repl = Replication::new();
    let mut feed = feed_with(100, 1 << 20);
    let old = repl.replid.clone();
    let at = feed.offset();
    repl.shift_replid(at);
    assert_eq!(repl.replid2, old);
    assert_eq!(repl.second_offset, at as i64 + 1);
    assert_ne!(repl.replid, old);
    // The new master writes on.
    feed.push(&[b"SET", b"a", b"b"]);
    // A replica of the old master that had everything continues...
    assert_eq!(
        repl.continue_point(old.as_bytes(), at as i64 + 1, &feed),
        Some(at)
    );
    // ...one that had less too; one that saw writes we never got does not.
    assert_eq!(repl.continue_point(old.as_bytes(), 50, &feed), Some(49));
    assert_eq!(
        repl.continue_point(old.as_bytes(), at as i64 + 2, &feed),
        None
    );
    // A replica that follows the promoted node learns the new history.
    let mut follower = Replication::new();
    follower.adopt_replid(old.clone());
    follower.follow_new_replid(repl.replid.clone(), at);
    assert_eq!(
        (follower.replid.as_str(), follower.replid2.as_str()),
        (repl.replid.as_str(), old.as_str())
    );
    assert_eq!(follower.second_offset, at as i64 + 1);
    follower.adopt_replid(new_replid());
    assert_eq!(follower.replid2, NO_REPLID);
    assert_eq!(follower.second_offset, -1);
}

#[test]
fn wait_counts_online_replicas_whose_ack_reached_the_offset() {
    let mut repl = Replication::new();
    let mut feed = feed_with(10, 1 << 20);
    let mut acks = repl.subscribe_acks();
    repl.add_replica(link(1, 0), &mut feed);
    repl.add_replica(link(2, 0), &mut feed);
    let mut syncing = link(3, 0);
    syncing.state = SyncState::SendBulk;
    repl.add_replica(syncing, &mut feed);
    repl.note_ack(1, 100);
    repl.note_ack(2, 50);
    repl.note_ack(3, 500);
    assert!(acks.has_changed().unwrap());
    acks.borrow_and_update();
    assert_eq!(repl.count_acks(0), 2);
    assert_eq!(repl.count_acks(50), 2);
    assert_eq!(repl.count_acks(51), 1);
    assert_eq!(repl.count_acks(101), 0);
    // An older ACK does not move a replica back.
    repl.note_ack(1, 10);
    assert_eq!(repl.count_acks(100), 1);
    repl.remove_replica(1, &mut feed);
    assert_eq!(repl.count_acks(0), 1);
}

#[test]
fn getack_goes_to_the_replicas_once_per_stream_position() {
    let mut repl = Replication::new();
    let mut feed = feed_with(10, 1 << 20);
    repl.request_acks(&mut feed);
    let before = feed.offset();
    assert_eq!(
        before,
        feed_with(10, 1 << 20).offset(),
        "no replica: no GETACK"
    );
    repl.add_replica(link(1, 0), &mut feed);
    repl.request_acks(&mut feed);
    let after = feed.offset();
    assert!(after > before);
    repl.request_acks(&mut feed);
    assert_eq!(feed.offset(), after, "nothing new since the last one");
    let tail = feed.backlog().unwrap().read_from(before).unwrap();
    assert_eq!(
        &tail[..],
        b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n"
    );
}

#[test]
fn the_backlog_holds_what_the_slowest_link_still_has_to_send() {
    let mut repl = Replication::new();
    repl.backlog_size = 1000;
    repl.replica_limit.hard = 5000;
    let mut feed = Feed::new();
    feed.enable_backlog(1000);
    repl.add_replica(link(1, 0), &mut feed);
    while feed.offset() < 4000 {
        feed.push(&[b"SET", b"k", b"0123456789"]);
    }
    assert_eq!(feed.backlog().unwrap().start(), 0, "kept for the link");
    assert!(feed.backlog().unwrap().read_chunk(0, 100).is_some());
    // The link sends: the backlog may forget what it sent.
    repl.advance(1, 3500, false, &mut feed);
    while feed.offset() < 8000 {
        feed.push(&[b"SET", b"k", b"0123456789"]);
    }
    let start = feed.backlog().unwrap().start();
    assert!(start > 0 && start <= 3500, "{start}");
    // A link past the limit loses its place.
    while feed.offset() < 20_000 {
        feed.push(&[b"SET", b"k", b"0123456789"]);
    }
    assert!(feed.backlog().unwrap().read_chunk(3500, 100).is_none());
    assert!(feed.backlog().unwrap().len() <= 5000 + 1000 + 1000);
    // Without links the backlog is its own size again.
    repl.remove_replica(1, &mut feed);
    while feed.offset() < 30_000 {
        feed.push(&[b"SET", b"k", b"0123456789"]);
    }
    assert!(feed.backlog().unwrap().len() < 2000);
}

#[test]
fn chunks_are_bounded() {
    let feed = feed_with(1000, 1 << 20);
    let backlog = feed.backlog().unwrap();
    assert_eq!(backlog.read_chunk(10, 100).unwrap().len(), 100);
    let end = feed.offset();
    assert_eq!(backlog.read_chunk(end - 5, 100).unwrap().len(), 5);
    assert!(backlog.read_chunk(end, 100).unwrap().is_empty());
    assert!(backlog.read_chunk(end + 1, 100).is_none());
}

/// The fields of INFO replication, in order, as Redis 7.0 prints them
/// for a master with one replica and for a replica whose link is down.
#[test]
fn info_replication_names_fields_as_redis() {
    let (shared, _) = node();
    {
        let mut guard = shared.lock();
        let n = &mut *guard;
        n.feed.enable_backlog(1 << 20);
        n.repl.add_replica(link(1, 0), &mut n.feed);
    }
    let keys = |shared: &Arc<crate::node::state::Shared>| -> Vec<String> {
        info_lines(&shared.lock(), Instant::now())
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let master = [
        "role",
        "connected_slaves",
        "slave0",
        "master_failover_state",
        "master_replid",
        "master_replid2",
        "master_repl_offset",
        "second_repl_offset",
        "repl_backlog_active",
        "repl_backlog_size",
        "repl_backlog_first_byte_offset",
        "repl_backlog_histlen",
    ];
    assert_eq!(keys(&shared), master);
    let slave0 = info_lines(&shared.lock(), Instant::now())
        .into_iter()
        .find(|(k, _)| k == "slave0")
        .unwrap()
        .1;
    assert_eq!(slave0, "ip=,port=7001,state=online,offset=0,lag=0");

    // A replica: the cluster names a master for it.
    let (replica, _) = node();
    {
        let mut guard = replica.lock();
        let other = crate::node::cluster::ClusterNode::new(
            crate::node::cluster::random_node_id(),
            "127.0.0.1",
            7001,
            17001,
        );
        let id = other.id.clone();
        guard.cluster.add_node(other);
        guard.cluster.set_my_master(&id);
    }
    assert_eq!(
        keys(&replica),
        [
            "role",
            "master_host",
            "master_port",
            "master_link_status",
            "master_last_io_seconds_ago",
            "master_sync_in_progress",
            "slave_read_repl_offset",
            "slave_repl_offset",
            "master_link_down_since_seconds",
            "slave_priority",
            "slave_read_only",
            "replica_announced",
            "connected_slaves",
            "master_failover_state",
            "master_replid",
            "master_replid2",
            "master_repl_offset",
            "second_repl_offset",
            "repl_backlog_active",
            "repl_backlog_size",
            "repl_backlog_first_byte_offset",
            "repl_backlog_histlen",
        ]
    );
    let mut c = ClientState::new(1, None);
    let role = run(&replica, &mut c, 0, &["ROLE"]);
    assert_eq!(
        role,
        "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:7001\r\n$7\r\nconnect\r\n:-1\r\n"
    );
    assert!(run(&replica, &mut c, 0, &["WAIT", "1", "0"]).starts_with("-ERR WAIT cannot be used"));
}

#[test]
fn handshake_commands_answer_as_redis() {
    let (shared, _) = node();
    let mut c = ClientState::new(1, None);
    assert_eq!(
        run(&shared, &mut c, 0, &["REPLCONF", "listening-port", "7005"]),
        "+OK\r\n"
    );
    assert_eq!(c.replica_port, Some(7005));
    assert_eq!(
        run(
            &shared,
            &mut c,
            0,
            &["REPLCONF", "capa", "eof", "capa", "psync2"]
        ),
        "+OK\r\n"
    );
    assert_eq!(run(&shared, &mut c, 0, &["REPLCONF", "ACK", "5"]), "");
    assert_eq!(
        run(&shared, &mut c, 0, &["REPLCONF", "bogus", "1"]),
        "-ERR Unrecognized REPLCONF option: bogus\r\n"
    );
    assert_eq!(
        run(&shared, &mut c, 0, &["REPLCONF", "capa"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        run(&shared, &mut c, 0, &["REPLICAOF", "127.0.0.1", "1"]),
        "-ERR REPLICAOF not allowed in cluster mode.\r\n"
    );
    // WAIT with no replicas and 0 wanted answers at once.
    assert_eq!(run(&shared, &mut c, 0, &["WAIT", "0", "0"]), ":0\r\n");
    assert_eq!(
        run(&shared, &mut c, 0, &["ROLE"]),
        "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n"
    );
}

#[test]
fn a_write_sets_the_clients_write_offset() {
    let (shared, _) = node();
    shared.lock().feed.enable_backlog(1 << 20);
    let mut c = ClientState::new(1, None);
    run(&shared, &mut c, 0, &["GET", "k"]);
    assert_eq!(c.write_offset, 0);
    run(&shared, &mut c, 0, &["SET", "k", "v"]);
    assert_eq!(c.write_offset, shared.lock().feed.offset());
    assert!(c.write_offset > 0);
}

#[tokio::test]
async fn replies_wait_until_the_online_links_hand_their_writes_to_the_socket() {
    let mut repl = Replication::new();
    let mut feed = Feed::new();
    feed.enable_backlog(1 << 20);
    assert!(
        repl.handoff_wait(100).is_none(),
        "no replica: nothing to wait for"
    );
    let mut syncing = link(1, 0);
    syncing.state = SyncState::SendBulk;
    repl.add_replica(syncing, &mut feed);
    assert!(
        repl.handoff_wait(100).is_none(),
        "a replica still in its full sync"
    );
    repl.add_replica(link(2, 0), &mut feed);
    let wait = repl
        .handoff_wait(100)
        .expect("an online link behind the batch");
    let waiting = tokio::spawn(wait.wait());
    repl.advance(2, 60, false, &mut feed);
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "handed only part of the batch");
    repl.advance(2, 100, false, &mut feed);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("released once handed")
        .unwrap();
    assert!(repl.handoff_wait(100).is_none());
    // A full socket: its bytes wait in the link's buffer, not the clients.
    repl.advance(2, 150, true, &mut feed);
    assert!(
        repl.handoff_wait(500).is_none(),
        "a backed-up link holds nobody"
    );
    repl.advance(2, 150, false, &mut feed);
    let wait = repl.handoff_wait(500).expect("behind again");
    let waiting = tokio::spawn(wait.wait());
    // A link that closes releases its waiters.
    repl.remove_replica(2, &mut feed);
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("released when the link is gone")
        .unwrap();
}
