//! Replication, as Redis does it over the client port: a replica connects
//! to its master, asks `PSYNC <replid> <offset>`, and gets either the
//! whole keyspace (`+FULLRESYNC`, then a snapshot) or the rest of the
//! write stream from the backlog (`+CONTINUE`); then the master's write
//! stream follows for as long as the link lives, and the replica
//! acknowledges the offset it processed (`REPLCONF ACK`) every second and
//! when asked (`REPLCONF GETACK`), which WAIT counts.
//!
//! [`Replication`] is the state both sides keep under the node lock:
//! the history id (`replid`, and `replid2` for the history before a
//! promotion, so the replicas of the old master continue with a partial
//! resync, as Redis's PSYNC2), the replicas of a master, the link of a
//! replica. `master` serves replicas (PSYNC, REPLCONF, WAIT, ROLE);
//! `replica` keeps the link to the master the cluster names; `info`
//! renders INFO replication and ROLE.

pub mod info;
pub mod master;
pub mod replica;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::client::{BufferLimit, ClientHandle};
use super::config::DEFAULT_REPL_BACKLOG_SIZE;
use super::propagate::Feed;
use super::state::Shared;

/// Redis's default `client-output-buffer-limit replica 256mb 64mb 60`.
pub const DEFAULT_REPLICA_LIMIT: BufferLimit = BufferLimit {
    hard: 256 * 1024 * 1024,
    soft: 64 * 1024 * 1024,
    soft_seconds: 60,
};

/// `master_replid2` when there is no previous history.
const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// Starts the replication tasks of a node: the link to its master (while
/// it is a replica) and the upkeep of its replicas' links.
pub fn start(shared: &Arc<Shared>) {
    {
        let mut node = shared.lock();
        let size = shared.config.repl_backlog_size;
        node.repl.backlog_size = size;
    }
    tokio::spawn(replica::run(Arc::clone(shared)));
    tokio::spawn(master::cron(Arc::clone(shared)));
}

/// A fresh replication id: 40 hex digits, as Redis's.
pub fn new_replid() -> String {
    super::cluster::random_node_id().to_string()
}

/// Where a replica's link stands, as Redis's `replstate` (ROLE names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Sending the snapshot (`send_bulk`).
    SendBulk,
    /// Streaming (`online`).
    Online,
}

/// One replica linked to this node.
#[derive(Debug)]
pub struct ReplicaLink {
    pub client_id: u64,
    pub handle: Arc<ClientHandle>,
    pub ip: Option<IpAddr>,
    /// Its `REPLCONF listening-port` (0 if it gave none).
    pub port: u16,
    pub state: SyncState,
    /// The offset it last acknowledged, and when.
    pub ack_offset: u64,
    pub ack_time: Instant,
    /// The first stream byte its link has not taken from the backlog yet.
    /// The link hands what it takes to its socket under the same lock, so
    /// everything before `next` is in the kernel, or in the link's buffer
    /// when the socket is full (`backed_up`).
    pub next: u64,
    /// The socket did not take all of the last chunk: the link is waiting
    /// for the replica to read.
    pub backed_up: bool,
}

/// The state of this node's link to its master (replica side), as INFO
/// and ROLE report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkStatus {
    /// Not connected (`connect`).
    #[default]
    Connect,
    /// Connected, in the handshake (`connecting`).
    Connecting,
    /// Receiving the snapshot (`sync`).
    Sync,
    /// Streaming (`connected`).
    Connected,
}

/// The replica side: this node's link to its master.
#[derive(Debug, Default)]
pub struct MasterLink {
    /// The master's address while this node is a replica.
    pub master: Option<(String, u16)>,
    pub status: LinkStatus,
    /// The last bytes received from the master.
    pub last_io: Option<Instant>,
    /// When the link last went down (after having been up).
    pub down_since: Option<Instant>,
    /// Stream bytes received, applied or not (`slave_read_repl_offset`).
    pub read_offset: u64,
    /// The snapshot of a full sync: its size and the bytes received.
    pub sync_total: u64,
    pub sync_read: u64,
    /// The master asked for an ACK (a replayed `REPLCONF GETACK`).
    pub ack_requested: bool,
}

/// Counters INFO stats reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncStats {
    pub full: u64,
    pub partial_ok: u64,
    pub partial_err: u64,
}

/// Replication state of a node (see the module documentation).
#[derive(Debug)]
pub struct Replication {
    /// This node's history (`master_replid`); a replica takes its
    /// master's.
    pub replid: String,
    /// The history before the last promotion (`master_replid2`) and the
    /// first offset it does not cover, 1-based as Redis counts it
    /// (`second_repl_offset`, -1 for none).
    pub replid2: String,
    pub second_offset: i64,
    /// `repl-backlog-size`.
    pub backlog_size: usize,
    /// `client-output-buffer-limit replica`.
    pub replica_limit: BufferLimit,
    /// The replicas linked to this node.
    pub replicas: Vec<ReplicaLink>,
    pub link: MasterLink,
    pub stats: SyncStats,
    /// Bumped at every ACK: WAIT waits on it.
    acks: watch::Sender<u64>,
    /// The stream offset at the last GETACK sent, so that many WAITs at
    /// once ask only once.
    getack_at: Option<u64>,
    /// When a PING last went to the replicas.
    pub last_ping: Option<Instant>,
    /// How far every online replica's link has handed the stream to its
    /// socket (`u64::MAX` with none): replies to writes wait for it.
    handed: watch::Sender<u64>,
}

impl Default for Replication {
    fn default() -> Self {
        Self::new()
    }
}

impl Replication {
    pub fn new() -> Self {
        let (acks, _) = watch::channel(0);
        let (handed, _) = watch::channel(u64::MAX);
        Replication {
            replid: new_replid(),
            replid2: NO_REPLID.to_string(),
            second_offset: -1,
            backlog_size: DEFAULT_REPL_BACKLOG_SIZE,
            replica_limit: DEFAULT_REPLICA_LIMIT,
            replicas: Vec::new(),
            link: MasterLink::default(),
            stats: SyncStats::default(),
            acks,
            getack_at: None,
            last_ping: None,
            handed,
        }
    }

    /// Where a replica asking `PSYNC replid psync_offset` continues (the
    /// 0-based stream offset of its next byte), or `None` when it needs a
    /// full sync: the history must be ours (or our previous one, up to
    /// where it ended) and the backlog must still hold that byte.
    pub fn continue_point(&self, replid: &[u8], psync_offset: i64, feed: &Feed) -> Option<u64> {
        let ours = replid == self.replid.as_bytes();
        let previous = replid == self.replid2.as_bytes()
            && replid != NO_REPLID.as_bytes()
            && psync_offset <= self.second_offset;
        if !(ours || previous) {
            return None;
        }
        let next = u64::try_from(psync_offset.checked_sub(1)?).ok()?;
        let backlog = feed.backlog()?;
        let end = feed.offset();
        (next >= backlog.start() && next <= end).then_some(next)
    }

    /// A promoted replica starts a history of its own and remembers its
    /// master's, up to `offset`, for the replicas that followed it
    /// (Redis's `shiftReplicationId`).
    pub fn shift_replid(&mut self, offset: u64) {
        self.replid2 = std::mem::replace(&mut self.replid, new_replid());
        self.second_offset = i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1);
    }

    /// A full sync adopted the master's history: none before it.
    pub fn adopt_replid(&mut self, replid: String) {
        self.replid = replid;
        self.replid2 = NO_REPLID.to_string();
        self.second_offset = -1;
    }

    /// The master continued under a new history (it was promoted): ours
    /// becomes the previous one, valid up to `offset`.
    pub fn follow_new_replid(&mut self, replid: String, offset: u64) {
        if replid != self.replid {
            self.replid2 = std::mem::replace(&mut self.replid, replid);
            self.second_offset = i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1);
        }
    }

    /// Replicas online whose acknowledged offset reached `offset`.
    pub fn count_acks(&self, offset: u64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == SyncState::Online && r.ack_offset >= offset)
            .count()
    }

    /// Wakes on every ACK.
    pub fn subscribe_acks(&self) -> watch::Receiver<u64> {
        self.acks.subscribe()
    }

    /// A replica acknowledged `offset`.
    pub fn note_ack(&mut self, client_id: u64, offset: u64) {
        if let Some(r) = self.replicas.iter_mut().find(|r| r.client_id == client_id) {
            r.ack_offset = r.ack_offset.max(offset);
            r.ack_time = Instant::now();
        }
        self.acks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Asks every replica for an ACK (WAIT), once per stream position.
    pub fn request_acks(&mut self, feed: &mut Feed) {
        if self.replicas.is_empty() || self.getack_at == Some(feed.offset()) {
            return;
        }
        feed.push_to_replicas(&[b"REPLCONF", b"GETACK", b"*"]);
        self.getack_at = Some(feed.offset());
    }

    pub fn add_replica(&mut self, link: ReplicaLink, feed: &mut Feed) {
        self.replicas.push(link);
        self.retain_backlog(feed);
    }

    pub fn remove_replica(&mut self, client_id: u64, feed: &mut Feed) {
        self.replicas.retain(|r| r.client_id != client_id);
        self.retain_backlog(feed);
        self.publish_handed();
    }

    /// A replica's link took the stream up to `next` and handed it to its
    /// socket; `backed_up` when the socket did not take it all.
    pub fn advance(&mut self, client_id: u64, next: u64, backed_up: bool, feed: &mut Feed) {
        if let Some(r) = self.replicas.iter_mut().find(|r| r.client_id == client_id) {
            r.next = next;
            r.backed_up = backed_up;
        }
        self.retain_backlog(feed);
        self.publish_handed();
    }

    /// How far the stream has reached the replicas' sockets: the lowest
    /// `next` of the online links, leaving out those whose socket is full
    /// (their bytes wait in the link's buffer, as in Redis's output
    /// buffer; a slow replica must not hold the master's clients).
    fn handed(&self) -> u64 {
        self.replicas
            .iter()
            .filter(|r| r.state == SyncState::Online && !r.backed_up)
            .map(|r| r.next)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn publish_handed(&self) {
        let handed = self.handed();
        self.handed
            .send_if_modified(|h| std::mem::replace(h, handed) != handed);
    }

    /// Called under the lock at the end of a batch of commands that left
    /// the stream at `offset`: what the batch's replies wait for, so that
    /// no reply reaches its client before its write reaches the replicas'
    /// sockets (Redis writes to its replicas before its clients in each
    /// turn of its loop). A master that dies right after answering then
    /// loses no acknowledged write its replica could have had.
    pub fn handoff_wait(&self, offset: u64) -> Option<HandoffWait> {
        (self.handed() < offset).then(|| HandoffWait {
            handed: self.handed.subscribe(),
            need: offset,
        })
    }

    /// The backlog keeps what the slowest link still has to send, within
    /// the replicas' output buffer limit.
    pub fn retain_backlog(&self, feed: &mut Feed) {
        let floor = self.replicas.iter().map(|r| r.next).min();
        let limit = match self.replica_limit.hard {
            0 => usize::MAX,
            hard => hard.saturating_add(self.backlog_size),
        };
        feed.retain_for_replicas(floor, limit);
    }

    /// Closes every replica's link (this node's history changed: they
    /// must resync).
    pub fn disconnect_replicas(&mut self) {
        for r in &self.replicas {
            r.handle.kill();
        }
    }

    /// Seconds since the last PING to the replicas is due (Redis's
    /// `repl-ping-replica-period`, 10 s).
    pub fn ping_due(&self, now: Instant) -> bool {
        !self.replicas.is_empty()
            && self
                .last_ping
                .is_none_or(|at| now.duration_since(at) >= PING_PERIOD)
    }
}

/// The replies of a batch of writes, held until the replicas' links have
/// handed the writes to their sockets ([`Replication::handoff_wait`]).
#[derive(Debug)]
pub struct HandoffWait {
    handed: watch::Receiver<u64>,
    need: u64,
}

impl HandoffWait {
    /// Resolves once every online link has handed the stream up to the
    /// batch's end to its socket (or is gone, or backed up).
    pub async fn wait(mut self) {
        let need = self.need;
        let _ = self.handed.wait_for(|&handed| handed >= need).await;
    }
}

/// How often a master PINGs its replicas through the stream, so that
/// they see it alive (`repl-ping-replica-period`).
pub const PING_PERIOD: Duration = Duration::from_secs(10);

/// A link with no traffic for this long is dead (`repl-timeout`).
pub const REPL_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests;
