//! A replica replacing its master, as Redis Cluster does it (cluster.c:
//! `clusterHandleSlaveFailover`, `clusterGetSlaveRank`,
//! `clusterSendFailoverAuthIfNeeded`, `clusterFailoverReplaceYourMaster`
//! and the manual failover of CLUSTER FAILOVER). Logic on the cluster
//! state only: the messages to send are handed back, the bus sends them.
//!
//! Automatic failover, once the master is agreed failed (FAIL, see
//! `gossip::mark_failing_if_needed`) and still serves slots:
//! 1. Each replica waits 500 ms + random(0..500 ms) + rank * 1 s, its rank
//!    being the number of sibling replicas with a greater replication
//!    offset: the most up to date one asks first.
//! 2. It bumps currentEpoch and asks every node for a vote
//!    (FAILOVER_AUTH_REQUEST).
//! 3. A master serving slots votes at most once per epoch, only for a
//!    replica whose master it sees failed, not twice about one master
//!    within node_timeout * 2, and not if some claimed slot has a newer
//!    owner ([`vote_refusal`]).
//! 4. With votes from a majority of the masters serving slots, the
//!    replica takes its master's slots under the election epoch and tells
//!    everyone (a PONG to all); the others learn the new owner from its
//!    messages (`gossip::update_slots_config_with`). Without a majority
//!    the attempt expires after max(node_timeout * 2, 2 s) and a new one
//!    may start after twice that.
//!
//! Manual failover (CLUSTER FAILOVER, run on a replica):
//! - default: the replica sends MFSTART; its master pauses client writes
//!   (the server checks [`ClusterState::client_writes_paused_until`]) and
//!   pings it with the PAUSED flag and its replication offset; once the
//!   replica's own offset equals it, nothing written is missing and the
//!   replica runs the election at once, voters voting although the master
//!   is up (FORCEACK). Abandoned after 5 s (Redis's CLUSTER_MF_TIMEOUT).
//! - FORCE: the election at once, without the master's agreement.
//! - TAKEOVER: no election: a new config epoch without consensus, and the
//!   slots.

use std::sync::Arc;

use rand::Rng;

use super::gossip::{self, count_sent};
use super::{ClusterState, NodeId};
use crate::cluster::SlotBitmap;
use crate::node::bus::proto::{Body, Header, Kind, Message, mflags};

/// `cluster-replica-validity-factor`'s default, as Redis's.
pub const DEFAULT_VALIDITY_FACTOR: u64 = 10;
/// How long a manual failover may take before it is abandoned (Redis's
/// CLUSTER_MF_TIMEOUT).
pub const MF_TIMEOUT_MS: i64 = 5000;
/// A master pauses writes for this many times the manual failover timeout
/// at most (Redis's CLUSTER_MF_PAUSE_MULT); the pause ends sooner when the
/// failover ends.
const MF_PAUSE_MULT: i64 = 2;
/// Redis's default `repl-ping-replica-period`, which the data age check
/// allows on top of node_timeout * validity factor.
const REPL_PING_PERIOD_MS: i64 = 10_000;
/// Fixed delay before an election, so the FAIL message reaches everyone.
const ELECTION_DELAY_MS: i64 = 500;
/// Random delay on top, so sibling replicas rarely ask at once.
const ELECTION_JITTER_MS: i64 = 500;
/// Extra delay per rank.
const RANK_DELAY_MS: i64 = 1000;
/// Shortest time an election waits for votes.
const MIN_AUTH_TIMEOUT_MS: i64 = 2000;

/// Why this replica is not failing over now (Redis's
/// `CLUSTER_CANT_FAILOVER_*`), kept so each reason is logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Blocked {
    #[default]
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

/// The election of a replica (Redis's `failover_auth_*` fields).
#[derive(Debug, Default)]
pub struct Election {
    /// Unix ms the election starts (or started); 0: never scheduled.
    pub auth_time_ms: i64,
    /// Votes received for `auth_epoch`.
    pub auth_count: usize,
    /// The vote requests went out.
    pub auth_sent: bool,
    /// This replica's rank when the election was scheduled.
    pub auth_rank: usize,
    /// The epoch this replica asked votes for.
    pub auth_epoch: u64,
    blocked: Blocked,
}

/// A manual failover in progress (Redis's `mf_*` fields). On the replica:
/// `end_ms`, `can_start`, `master_offset`, `send_mfstart`; on its master:
/// `end_ms`, `replica`, `pause_until_ms`.
#[derive(Debug, Default)]
pub struct ManualFailover {
    /// Unix ms it is abandoned; 0: none in progress.
    pub end_ms: i64,
    /// Replica: the election may start (offsets matched, or FORCE).
    pub can_start: bool,
    /// Master: the replica that asked.
    pub replica: Option<NodeId>,
    /// Replica: the master's replication offset, from a message it sent
    /// with its writes paused.
    pub master_offset: Option<u64>,
    /// Master: client writes wait until this Unix ms (0: not paused).
    pub pause_until_ms: i64,
    /// Replica: MFSTART is to be sent to the master on the next tick.
    pub send_mfstart: bool,
}

/// The form of CLUSTER FAILOVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Agree with the master on the offset first: no write is lost.
    Default,
    /// Elect without the master.
    Force,
    /// No election at all.
    Takeover,
}

/// Votes needed to win: a majority of the masters serving slots.
pub fn quorum(cluster_size: usize) -> usize {
    cluster_size / 2 + 1
}

/// How long an election waits for votes: max(node_timeout * 2, 2 s).
pub fn auth_timeout_ms(node_timeout_ms: u64) -> i64 {
    (node_timeout_ms as i64 * 2).max(MIN_AUTH_TIMEOUT_MS)
}

/// The delay before a replica of `rank` asks for votes, `jitter` being
/// its random part (0..500 ms).
pub fn election_delay_ms(rank: usize, jitter_ms: i64) -> i64 {
    ELECTION_DELAY_MS + jitter_ms + rank as i64 * RANK_DELAY_MS
}

/// Redis's `clusterGetSlaveRank`: how many other replicas of our master
/// (that may fail over) have a greater replication offset than ours. 0 is
/// the most up to date; equal offsets share a rank.
pub fn rank(cs: &ClusterState) -> usize {
    let Some(master) = cs.me().master.as_deref() else {
        return 0;
    };
    let mine = cs.me().repl_offset;
    cs.replicas_of(master)
        .iter()
        .filter(|r| !cs.is_myself(&r.id) && !r.nofailover && r.repl_offset > mine)
        .count()
}

/// What a vote request says, from its header.
#[derive(Debug, Clone, Copy)]
pub struct VoteRequest<'a> {
    pub requester: &'a str,
    /// The requester's current epoch: the epoch of its election.
    pub current_epoch: u64,
    /// The config epoch of the slots it claims (its master's).
    pub config_epoch: u64,
    pub slots: &'a SlotBitmap,
    /// A manual failover: vote although its master is up.
    pub force_ack: bool,
}

impl<'a> VoteRequest<'a> {
    pub fn from_header(hdr: &'a Header) -> Self {
        VoteRequest {
            requester: &hdr.sender,
            current_epoch: hdr.current_epoch,
            config_epoch: hdr.config_epoch,
            slots: &hdr.slots,
            force_ack: hdr.mflags & mflags::FORCEACK != 0,
        }
    }
}

/// Why a master does not vote (Redis's "Failover auth denied" reasons).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("I am not a master serving slots")]
    NotAVoter,
    #[error("reqEpoch ({request}) < curEpoch ({current})")]
    StaleRequest { request: u64, current: u64 },
    #[error("already voted for epoch {0}")]
    AlreadyVoted(u64),
    #[error("it is a master node")]
    RequesterIsMaster,
    #[error("I don't know its master")]
    UnknownMaster,
    #[error("its master is up")]
    MasterUp,
    #[error("can't vote about this master before {0} milliseconds")]
    VotedRecently(i64),
    #[error("slot {slot} epoch ({epoch}) > reqEpoch ({request})")]
    NewerSlotOwner { slot: u16, epoch: u64, request: u64 },
}

/// Redis's voting rules (`clusterSendFailoverAuthIfNeeded`): whether this
/// node may vote for `req` now.
///
/// # Errors
/// The [`Refusal`] that applies first.
pub fn vote_refusal(cs: &ClusterState, req: &VoteRequest<'_>, now: i64) -> Result<(), Refusal> {
    let me = cs.me();
    if !me.is_master() || me.numslots() == 0 {
        return Err(Refusal::NotAVoter);
    }
    if req.current_epoch < cs.current_epoch {
        return Err(Refusal::StaleRequest {
            request: req.current_epoch,
            current: cs.current_epoch,
        });
    }
    if cs.last_vote_epoch == cs.current_epoch {
        return Err(Refusal::AlreadyVoted(cs.current_epoch));
    }
    let requester = cs.node(req.requester).ok_or(Refusal::UnknownMaster)?;
    if requester.is_master() {
        return Err(Refusal::RequesterIsMaster);
    }
    let master = requester
        .master
        .as_deref()
        .and_then(|m| cs.node(m))
        .ok_or(Refusal::UnknownMaster)?;
    if !master.fail && !req.force_ack {
        return Err(Refusal::MasterUp);
    }
    let window = cs.node_timeout_ms as i64 * 2;
    let since = now - master.voted_time_ms;
    if since < window {
        return Err(Refusal::VotedRecently(window - since));
    }
    for slot in req.slots.iter() {
        if let Some(owner) = cs.owner_node(slot) {
            if owner.config_epoch > req.config_epoch {
                return Err(Refusal::NewerSlotOwner {
                    slot,
                    epoch: owner.config_epoch,
                    request: req.config_epoch,
                });
            }
        }
    }
    Ok(())
}

/// A FAILOVER_AUTH_REQUEST came in: votes if the rules allow, and returns
/// the FAILOVER_AUTH_ACK to send to the requester.
pub fn vote(cs: &mut ClusterState, hdr: &Header, now: i64) -> Option<Message> {
    let req = VoteRequest::from_header(hdr);
    if let Err(why) = vote_refusal(cs, &req, now) {
        if why != Refusal::NotAVoter {
            tracing::warn!(node = %hdr.sender, reason = %why, "failover auth denied");
        }
        return None;
    }
    cs.last_vote_epoch = cs.current_epoch;
    if let Some(master) = cs.node(&hdr.sender).and_then(|n| n.master.clone()) {
        if let Some(m) = cs.node_mut(&master) {
            m.voted_time_ms = now;
        }
    }
    cs.mark_dirty();
    tracing::info!(node = %hdr.sender, epoch = cs.current_epoch, "failover auth granted");
    count_sent(cs, Kind::FailoverAuthAck, 1);
    Some(Message {
        header: gossip::header(cs),
        body: Body::FailoverAuthAck,
    })
}

/// A FAILOVER_AUTH_ACK came in: it counts if the sender is a master
/// serving slots that voted in our election's epoch (or later). True if
/// it counted.
pub fn note_vote(cs: &mut ClusterState, sender: &str, sender_current_epoch: u64) -> bool {
    let counts = cs
        .node(sender)
        .is_some_and(|n| n.is_master() && n.numslots() > 0)
        && sender_current_epoch >= cs.election.auth_epoch;
    if counts {
        cs.election.auth_count += 1;
        tracing::info!(node = %sender, votes = cs.election.auth_count, "failover vote received");
    }
    counts
}

/// MFSTART came in (this node is the master): pauses client writes and
/// starts pinging the replica with its offset. False if `sender` is not
/// one of our replicas (the message is then ignored).
pub fn manual_failover_requested(cs: &mut ClusterState, sender: &str, now: i64) -> bool {
    let mine = cs
        .node(sender)
        .is_some_and(|n| n.master.as_deref() == Some(&*cs.myself));
    if !mine || !cs.me().is_master() {
        return false;
    }
    reset_manual_failover(cs);
    cs.manual.end_ms = now + MF_TIMEOUT_MS;
    cs.manual.replica = cs.node(sender).map(|n| Arc::clone(&n.id));
    cs.manual.pause_until_ms = now + MF_TIMEOUT_MS * MF_PAUSE_MULT;
    tracing::info!(replica = %sender, "manual failover requested by replica: client writes paused");
    true
}

/// Any message from our master: while a manual failover waits for it, a
/// message sent with its writes paused carries the offset to reach. True
/// when it did.
pub fn note_master_offset(cs: &mut ClusterState, hdr: &Header) -> bool {
    let from_my_master = cs.me().is_replica() && cs.me().master.as_deref() == Some(&*hdr.sender);
    if cs.manual.end_ms == 0
        || !from_my_master
        || hdr.mflags & mflags::PAUSED == 0
        || cs.manual.master_offset.is_some()
    {
        return false;
    }
    cs.manual.master_offset = Some(hdr.repl_offset);
    tracing::info!(
        offset = hdr.repl_offset,
        "received replication offset for paused master manual failover"
    );
    true
}

/// Moves this replica's failover forward at once after a message that may
/// let it (the paused master's offset, a vote), rather than on the next
/// tick, as Redis's `clusterBeforeSleep` does; a won election's PONGs go
/// out at once too.
pub fn react(cs: &mut ClusterState, now: i64, out: &mut Vec<(NodeId, Message)>) {
    if !cs.me().is_replica() {
        return;
    }
    handle_manual_failover(cs);
    handle_replica_failover(cs, now, out);
    gossip::pong_everyone_if_asked(cs, out, |_| true);
}

/// Redis's `resetManualFailover`: ends a manual failover on either side;
/// a paused master serves writes again.
pub fn reset_manual_failover(cs: &mut ClusterState) {
    if cs.manual.pause_until_ms != 0 {
        tracing::info!("manual failover over: client writes resume");
    }
    cs.manual = ManualFailover::default();
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER] on this node.
///
/// # Errors
/// Redis's reply text when this node cannot fail over.
pub fn start_manual(cs: &mut ClusterState, mode: Mode, now: i64) -> Result<(), &'static str> {
    if cs.me().is_master() {
        return Err("ERR You should send CLUSTER FAILOVER to a replica");
    }
    let Some(master) = cs.my_master() else {
        return Err("ERR I'm a replica but my master is unknown to me");
    };
    if mode == Mode::Default && (master.fail || !master.connected) {
        return Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE");
    }
    reset_manual_failover(cs);
    cs.manual.end_ms = now + MF_TIMEOUT_MS;
    match mode {
        Mode::Takeover => {
            tracing::info!("taking over the master (user request)");
            cs.bump_epoch_without_consensus();
            replace_my_master(cs);
        }
        Mode::Force => {
            tracing::info!("forced failover user request accepted");
            cs.manual.can_start = true;
        }
        Mode::Default => {
            tracing::info!("manual failover user request accepted");
            cs.manual.send_mfstart = true;
        }
    }
    Ok(())
}

/// Redis's `clusterFailoverReplaceYourMaster`: this replica becomes a
/// master serving its master's slots, and tells everyone at once. The
/// caller has given it its new config epoch.
pub fn replace_my_master(cs: &mut ClusterState) {
    let Some(old) = cs.me().master.clone() else {
        return;
    };
    if cs.me().is_master() {
        return;
    }
    let me = Arc::clone(&cs.myself);
    cs.set_node_as_master(&me);
    let slots: Vec<u16> = cs.slots_of(&old).collect();
    cs.set_owners(slots, Some(&me));
    tracing::warn!(
        old_master = %old,
        epoch = cs.me().config_epoch,
        slots = cs.me().numslots(),
        "failover won: I'm the new master"
    );
    cs.broadcast_pong = true;
    reset_manual_failover(cs);
}

/// The failover part of a bus tick (Redis's `clusterCron` and
/// `clusterBeforeSleep` steps): abandons a manual failover past its time,
/// sends MFSTART, pings the replica of a manual failover, and moves this
/// replica's manual failover and election forward. Messages go to `out`.
pub fn cron(cs: &mut ClusterState, now: i64, out: &mut Vec<(NodeId, Message)>) {
    if cs.manual.end_ms != 0 && cs.manual.end_ms < now {
        tracing::warn!("manual failover timed out");
        reset_manual_failover(cs);
    }
    if cs.me().is_master() {
        if cs.manual.end_ms != 0 {
            if let Some(replica) = cs.manual.replica.clone() {
                out.push((Arc::clone(&replica), gossip::ping_to(cs, &replica, now)));
            }
        }
        return;
    }
    if std::mem::take(&mut cs.manual.send_mfstart) {
        if let Some(master) = cs.me().master.clone() {
            count_sent(cs, Kind::MfStart, 1);
            let msg = Message {
                header: gossip::header(cs),
                body: Body::MfStart,
            };
            out.push((master, msg));
        }
    }
    handle_manual_failover(cs);
    handle_replica_failover(cs, now, out);
}

/// Redis's `clusterHandleManualFailover`: the replica may start the
/// election once it has processed everything its paused master wrote.
fn handle_manual_failover(cs: &mut ClusterState) {
    if cs.manual.end_ms == 0 || cs.manual.can_start {
        return;
    }
    let Some(target) = cs.manual.master_offset else {
        return;
    };
    if target == cs.me().repl_offset {
        cs.manual.can_start = true;
        tracing::info!("all master replication stream processed, manual failover can start");
    }
}

/// Logs why the replica cannot fail over, once per reason.
fn blocked(cs: &mut ClusterState, why: Blocked) {
    if cs.election.blocked == why {
        return;
    }
    cs.election.blocked = why;
    let text = match why {
        Blocked::None => return,
        Blocked::DataAge => {
            "disconnected from master for longer than allowed: \
             please check the 'cluster-replica-validity-factor' configuration option"
        }
        Blocked::WaitingDelay => "waiting the delay before I can start a new failover",
        Blocked::Expired => "failover attempt expired",
        Blocked::WaitingVotes => "waiting for votes, but majority still not reached",
    };
    tracing::info!(
        votes = cs.election.auth_count,
        quorum = quorum(cs.size),
        "currently unable to failover: {text}"
    );
}

/// Redis's `clusterHandleSlaveFailover`: schedules, runs and concludes
/// this replica's election when its master failed (or a manual failover
/// may start).
fn handle_replica_failover(cs: &mut ClusterState, now: i64, out: &mut Vec<(NodeId, Message)>) {
    let manual = cs.manual.end_ms != 0 && cs.manual.can_start;
    let auth_timeout = auth_timeout_ms(cs.node_timeout_ms);
    let auth_retry = auth_timeout * 2;
    let eligible = cs.me().is_replica()
        && cs
            .my_master()
            .is_some_and(|m| (m.fail || manual) && m.numslots() > 0)
        && (manual || !cs.me().nofailover);
    if !eligible {
        cs.election.blocked = Blocked::None;
        return;
    }

    // The master being down for node_timeout is the baseline, not age.
    let timeout = cs.node_timeout_ms as i64;
    let mut data_age = cs.master_data_age_ms(now);
    if data_age > timeout {
        data_age -= timeout;
    }
    let max_age = REPL_PING_PERIOD_MS + timeout.saturating_mul(cs.replica_validity_factor as i64);
    if cs.replica_validity_factor != 0 && data_age > max_age && !manual {
        blocked(cs, Blocked::DataAge);
        return;
    }

    if now - cs.election.auth_time_ms > auth_retry {
        let rank = rank(cs);
        let jitter = rand::rng().random_range(0..ELECTION_JITTER_MS);
        let election = &mut cs.election;
        election.auth_time_ms = now + election_delay_ms(rank, jitter);
        election.auth_count = 0;
        election.auth_sent = false;
        election.auth_rank = rank;
        if cs.manual.end_ms != 0 {
            election.auth_time_ms = now;
            election.auth_rank = 0;
        }
        tracing::info!(
            delay_ms = cs.election.auth_time_ms - now,
            rank = cs.election.auth_rank,
            offset = cs.me().repl_offset,
            "start of election delayed"
        );
        // Siblings learn our offset now, so their ranks are right.
        pong_local_replicas(cs, out);
        // A manual failover asks for votes at once.
        if cs.manual.end_ms == 0 {
            return;
        }
    }
    let auth_age = now - cs.election.auth_time_ms;

    // A sibling with a better offset may have spoken since: wait longer.
    if !cs.election.auth_sent && cs.manual.end_ms == 0 {
        let new_rank = rank(cs);
        if new_rank > cs.election.auth_rank {
            let added = (new_rank - cs.election.auth_rank) as i64 * RANK_DELAY_MS;
            cs.election.auth_time_ms += added;
            cs.election.auth_rank = new_rank;
            tracing::info!(rank = new_rank, added_ms = added, "replica rank updated");
        }
    }

    if now < cs.election.auth_time_ms {
        blocked(cs, Blocked::WaitingDelay);
        return;
    }
    if auth_age > auth_timeout {
        blocked(cs, Blocked::Expired);
        return;
    }

    if !cs.election.auth_sent {
        cs.current_epoch += 1;
        cs.election.auth_epoch = cs.current_epoch;
        cs.election.auth_sent = true;
        cs.mark_dirty();
        tracing::info!(epoch = cs.current_epoch, "starting a failover election");
        let mut header = gossip::header(cs);
        if cs.manual.end_ms != 0 {
            header.mflags |= mflags::FORCEACK;
        }
        let request = Message {
            header,
            body: Body::FailoverAuthRequest,
        };
        gossip::broadcast(cs, request, out);
        return;
    }

    if cs.election.auth_count >= quorum(cs.size) {
        let epoch = cs.election.auth_epoch;
        if cs.me().config_epoch < epoch {
            cs.me_mut().config_epoch = epoch;
            tracing::info!(epoch, "config epoch set after successful failover");
        }
        replace_my_master(cs);
    } else {
        blocked(cs, Blocked::WaitingVotes);
    }
}

/// A PONG to every replica of our master (Redis's
/// CLUSTER_BROADCAST_LOCAL_SLAVES).
fn pong_local_replicas(cs: &mut ClusterState, out: &mut Vec<(NodeId, Message)>) {
    let Some(master) = cs.me().master.clone() else {
        return;
    };
    let siblings: Vec<NodeId> = cs
        .replicas_of(&master)
        .iter()
        .filter(|r| !cs.is_myself(&r.id) && !r.handshake)
        .map(|r| Arc::clone(&r.id))
        .collect();
    for id in siblings {
        let msg = gossip::ping_message(cs, Kind::Pong);
        out.push((id, msg));
    }
}

#[cfg(test)]
mod tests;
