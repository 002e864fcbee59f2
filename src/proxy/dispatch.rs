//! Executing a routed request: send it, and absorb what the cluster says
//! back (redirects, transient errors, dead or frozen masters) so the client
//! sees one server.
//!
//! The decision for each reply is one pure function (`next_step`); the
//! loop in [`execute`] only carries it out. The rules:
//! - `MOVED`: fix the slot in the map at once, refresh in the background,
//!   resend. `ASK`: resend once to the named node behind `ASKING`.
//! - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`: retry with backoff
//!   until the retry deadline, then hand the error to the client.
//! - A request that never left the proxy (link down): wait for the
//!   topology to change (a replica promoted, the node back), then resend,
//!   until the failover deadline.
//! - A request that may have reached a node that then failed or stopped
//!   answering: read-only commands are resent like the above; anything else
//!   gets an error saying its outcome is unknown, so no write is ever
//!   applied twice by the proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::cluster::redirect::{self, ClusterError};
use crate::metrics::{BackendErrorKind, RedirectKind};

use super::Proxy;
use super::backend::{ASKING, BackendError, FailureKind, Node, ReplyResult, Sent};
use super::blocking::{BlockedGuard, BlockedOn};
use super::clients::ClientHandle;
use super::dedicated::{Pinned, ReplyWait};
use super::refresh::RefreshReason;

/// Where a request should go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The master owning this slot in the current snapshot.
    Slot(u16),
    /// Any master (a keyless command every master answers alike): the
    /// topology's home, where PUBLISH must go too ([`super::topology::Topology::home`]).
    AnyMaster,
    /// This node, whatever the topology says (fan-out to every master).
    Node(Arc<Node>),
}

/// What to do after one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Hand this reply to the client.
    Deliver,
    /// The slot moved for good: fix the map and resend.
    Moved { slot: u16, addr: String },
    /// Resend once to this node behind ASKING.
    Ask { addr: String },
    /// A transient cluster error: back off and resend.
    RetryLater,
    /// The request did not reach a node (or may have, and is safe to
    /// repeat): wait for the topology, then resend.
    AwaitTopology,
    /// The request may have been executed and must not be repeated.
    OutcomeUnknown,
}

/// Decides what a reply (or failure) means for the request.
fn next_step(result: &ReplyResult, readonly: bool) -> Step {
    match result {
        Ok(reply) => {
            if reply.first() != Some(&b'-') {
                return Step::Deliver;
            }
            match redirect::parse(reply) {
                None => Step::Deliver,
                Some(ClusterError::Moved { slot, addr }) => Step::Moved { slot, addr },
                Some(ClusterError::Ask { addr, .. }) => Step::Ask { addr },
                Some(
                    ClusterError::TryAgain
                    | ClusterError::ClusterDown
                    | ClusterError::Loading
                    | ClusterError::MasterDown,
                ) => Step::RetryLater,
            }
        }
        Err(err) if err.sent == Sent::No || readonly => Step::AwaitTopology,
        Err(_) => Step::OutcomeUnknown,
    }
}

/// A redirect's address may lack a host (`:7001`) when the node does not
/// know its own; it then shares the host of the node that sent it.
pub(super) fn with_host(addr: &str, sender: &str) -> String {
    if let Some(port) = addr.strip_prefix(':') {
        let host = sender.rsplit_once(':').map_or(sender, |(h, _)| h);
        format!("{host}:{port}")
    } else {
        addr.to_string()
    }
}

/// Sends `request` (raw RESP) to `target` and returns the reply for the
/// client, with every redirect, retry and failover wait absorbed.
pub async fn execute(proxy: &Proxy, request: Bytes, target: Target, readonly: bool) -> Bytes {
    execute_after(proxy, request, target, readonly, None).await
}

/// Sends `request` to every master at once and returns their replies, in
/// the order of the masters; `Err` is the reply for a cluster with no
/// master known.
///
/// # Errors
/// `-CLUSTERDOWN` when the map has no master.
pub async fn ask_every_master(
    proxy: &Proxy,
    request: Bytes,
    readonly: bool,
) -> Result<Vec<Bytes>, Bytes> {
    let masters: Vec<_> = proxy.cluster.snapshot().masters().to_vec();
    if masters.is_empty() {
        return Err(Bytes::from_static(b"-CLUSTERDOWN The cluster is down\r\n"));
    }
    Ok(futures_util::future::join_all(
        masters
            .into_iter()
            .map(|node| execute(proxy, request.clone(), Target::Node(node), readonly)),
    )
    .await)
}

/// The fast path for a single-slot request: sends it to the slot's master
/// as the current map says, with no retry machinery. `None` when the slot
/// has no owner. A reply that needs handling (a redirect, a failure) goes to
/// [`execute_after`].
#[inline]
pub fn send_to_slot(
    proxy: &Proxy,
    request: Bytes,
    slot: u16,
) -> Option<oneshot::Receiver<ReplyResult>> {
    proxy
        .cluster
        .snapshot()
        .master(slot)
        .map(|node| node.send(request, false))
}

/// True when a first attempt's reply can go to the client as it is.
#[inline]
pub fn is_final(reply: &Bytes) -> bool {
    reply.first() != Some(&b'-') || redirect::parse(reply).is_none()
}

/// The result of a first attempt whose reply channel was dropped: the link
/// lost (or gave up on) its connection with the request in flight.
pub fn dropped_reply(proxy: &Proxy, target: &Target) -> ReplyResult {
    let addr: Arc<str> =
        pick(proxy, target).map_or_else(|| Arc::from("unknown"), |n| Arc::from(n.addr()));
    Err(BackendError {
        addr,
        kind: FailureKind::Closed,
        sent: Sent::Maybe,
    })
}

/// Like [`execute`], for a request whose first attempt already produced
/// `first` (when given).
pub async fn execute_after(
    proxy: &Proxy,
    request: Bytes,
    target: Target,
    readonly: bool,
    first: Option<ReplyResult>,
) -> Bytes {
    execute_via(proxy, request, target, readonly, first, Via::Shared).await
}

/// Like [`execute`], on a dedicated connection of the node's pool rather
/// than a shared link: for a blocking command, which may hold its connection
/// for as long as it blocks, and whose reply may take `wait`. Dropping the
/// future closes the connection, which cancels the command on the node.
/// With `blocked`, the client's handle names the connection while the
/// command waits, so CLIENT UNBLOCK can reach it.
pub async fn execute_dedicated(
    proxy: &Proxy,
    request: Bytes,
    target: Target,
    readonly: bool,
    wait: ReplyWait,
    blocked: Option<&ClientHandle>,
) -> Bytes {
    let via = Via::Dedicated(Dedicated {
        keep: None,
        wait,
        blocked,
    });
    execute_via(proxy, request, target, readonly, None, via).await
}

/// Like [`execute_dedicated`], for a request that leaves state on its
/// connection (WATCH): once it succeeds, the connection stays in `pinned`
/// instead of going back to the pool. The request is resent after a
/// redirect or a lost connection, so it must be harmless to repeat.
pub async fn execute_pinned(
    proxy: &Proxy,
    request: Bytes,
    target: Target,
    pinned: &Pinned,
) -> Bytes {
    let via = Via::Dedicated(Dedicated {
        keep: Some(pinned),
        wait: ReplyWait::Prompt,
        blocked: None,
    });
    execute_via(proxy, request, target, true, None, via).await
}

/// Which connection a request travels on.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// A multiplexed link shared by every client.
    Shared,
    /// A connection of its own from the node's pool.
    Dedicated(Dedicated<'a>),
}

/// How a request uses a dedicated connection.
#[derive(Clone, Copy)]
struct Dedicated<'a> {
    /// Where the connection stays once the request succeeds (WATCH),
    /// rather than going back to the pool.
    keep: Option<&'a Pinned>,
    /// How long the reply may take.
    wait: ReplyWait,
    /// The client waiting on it (a blocking command).
    blocked: Option<&'a ClientHandle>,
}

/// Sends `request` on a dedicated connection to `node` and reads its reply.
/// The connection goes back to the pool once the reply is in, or into
/// `how.keep` when the reply is not an error. `Err` is a reply for the
/// client: the pool is exhausted.
async fn send_dedicated(
    node: &Arc<Node>,
    request: &Bytes,
    asking: bool,
    how: Dedicated<'_>,
) -> Result<ReplyResult, Bytes> {
    let mut conn = match node.dedicated().acquire().await {
        Ok(conn) => conn,
        Err(err) => return err.into_reply().map(Err),
    };
    let blocked = how
        .blocked
        .and_then(|client| BlockedOn::register(client, node, &conn));
    let result = async {
        if asking {
            conn.write(ASKING).await?;
            conn.read_reply().await?;
        }
        conn.write(request).await?;
        conn.read_reply_within(how.wait).await
    }
    .await;
    let unblocked = blocked.is_some_and(BlockedGuard::finish);
    match (&result, how.keep) {
        // Closed: a CLIENT UNBLOCK naming it may still be on its way.
        _ if unblocked => {}
        (Ok(reply), Some(keep)) if reply.first() != Some(&b'-') => keep.put(conn),
        (Ok(_), _) => conn.release(),
        (Err(_), _) => {}
    }
    Ok(result)
}

async fn execute_via(
    proxy: &Proxy,
    request: Bytes,
    target: Target,
    readonly: bool,
    first: Option<ReplyResult>,
    via: Via<'_>,
) -> Bytes {
    let cfg = &proxy.config;
    let started = Instant::now();
    let retry_deadline = started + Duration::from_millis(cfg.retry.retry_deadline_ms);
    let failover_deadline = started + Duration::from_millis(cfg.retry.failover_deadline_ms);
    let mut redirects = 0u32;
    let mut backoff = Duration::from_millis(5);
    let mut ask_node: Option<Arc<Node>> = None;
    let mut last_failure: Option<BackendError> = None;
    let mut first = first;
    loop {
        // The node that answered: for a redirect without a host (and the
        // first attempt's, whoever owns the slot now).
        let (result, sender) = if let Some(result) = first.take() {
            (result, pick(proxy, &target))
        } else {
            let (node, asking) = match ask_node.take() {
                Some(node) => (node, true),
                None => match pick(proxy, &target) {
                    Some(node) => (node, false),
                    None => {
                        if !await_topology(proxy, failover_deadline).await {
                            return no_owner_error(&target, last_failure.as_ref());
                        }
                        continue;
                    }
                },
            };
            let result = match via {
                Via::Shared => match node.send(request.clone(), asking).await {
                    Ok(result) => result,
                    // The link dropped the request with its connection (lost,
                    // or stalled past the request timeout).
                    Err(_) => Err(BackendError {
                        addr: node.addr().into(),
                        kind: FailureKind::Closed,
                        sent: Sent::Maybe,
                    }),
                },
                Via::Dedicated(how) => match send_dedicated(&node, &request, asking, how).await {
                    Ok(result) => result,
                    Err(reply) => return reply,
                },
            };
            (result, Some(node))
        };
        let sender_addr = sender.as_ref().map_or("", |n| n.addr());
        match next_step(&result, readonly) {
            Step::Deliver => {
                return result.unwrap_or_default();
            }
            Step::Moved { slot, addr } => {
                proxy.metrics.record_redirect(RedirectKind::Moved);
                redirects += 1;
                if redirects > cfg.retry.max_redirects {
                    return too_many_redirects(Some(slot), &addr);
                }
                proxy
                    .cluster
                    .apply_moved(slot, &with_host(&addr, sender_addr));
            }
            Step::Ask { addr } => {
                proxy.metrics.record_redirect(RedirectKind::Ask);
                redirects += 1;
                if redirects > cfg.retry.max_redirects {
                    return too_many_redirects(slot_of(&target), &addr);
                }
                ask_node = Some(proxy.cluster.node(&with_host(&addr, sender_addr)));
            }
            Step::RetryLater => {
                let kind = match result.as_ref().ok().and_then(|r| redirect::parse(r)) {
                    Some(ClusterError::TryAgain) => RedirectKind::TryAgain,
                    Some(ClusterError::Loading) => RedirectKind::Loading,
                    _ => RedirectKind::ClusterDown,
                };
                proxy.metrics.record_redirect(kind);
                if Instant::now() + backoff > retry_deadline {
                    return result.unwrap_or_default();
                }
                if kind == RedirectKind::ClusterDown {
                    proxy.cluster.request_refresh(RefreshReason::NodeDown);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
                // The retry starts over: during a migration each attempt
                // may take an ASK before its TRYAGAIN (Redis before 7.2
                // does), and the deadline, not the redirect count, bounds
                // the retries.
                redirects = 0;
            }
            Step::AwaitTopology => {
                let err = result.err();
                if let Some(err) = &err {
                    note_failure(proxy, err);
                }
                last_failure = err;
                proxy.cluster.request_refresh(RefreshReason::NodeDown);
                if !await_topology(proxy, failover_deadline).await {
                    return unavailable_error(last_failure.as_ref());
                }
            }
            Step::OutcomeUnknown => {
                if let Err(err) = &result {
                    note_failure(proxy, err);
                    proxy.metrics.unknown_outcome_total.inc();
                    proxy.cluster.request_refresh(RefreshReason::NodeDown);
                    return outcome_unknown_error(err);
                }
                return result.unwrap_or_default();
            }
        }
    }
}

pub(super) fn pick(proxy: &Proxy, target: &Target) -> Option<Arc<Node>> {
    match target {
        Target::Node(node) => Some(node.clone()),
        Target::Slot(slot) => proxy.cluster.snapshot().master(*slot).cloned(),
        Target::AnyMaster => proxy.cluster.snapshot().home().cloned(),
    }
}

pub(super) fn note_failure(proxy: &Proxy, err: &BackendError) {
    let kind = match err.kind {
        FailureKind::Down => BackendErrorKind::Connect,
        FailureKind::Closed => BackendErrorKind::Closed,
        FailureKind::Protocol => BackendErrorKind::Protocol,
    };
    proxy.metrics.node(&err.addr).record_error(kind);
}

/// Waits for the next topology snapshot, or one fast-poll interval, but not
/// past `deadline`. False once the deadline has passed.
pub(super) async fn await_topology(proxy: &Proxy, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let poll = Duration::from_millis(proxy.config.cluster.failing_poll_interval_ms);
    let wait = poll.min(deadline - now);
    let mut versions = proxy.cluster.subscribe();
    let _ = tokio::time::timeout(wait, versions.changed()).await;
    true
}

pub(super) fn outcome_unknown_error(err: &BackendError) -> Bytes {
    Bytes::from(format!(
        "-ERR outcome unknown: the connection to master {} was lost or stopped answering \
         after the command was sent; it may or may not have been applied\r\n",
        err.addr
    ))
}

/// The nodes keep sending the request elsewhere (a cluster in the middle of
/// a reconfiguration, or misconfigured): give up with a clear error rather
/// than leak a redirect to a client that cannot follow it.
pub(super) fn too_many_redirects(slot: Option<u16>, last: &str) -> Bytes {
    let slot = slot.map_or_else(|| "?".to_string(), |s| s.to_string());
    Bytes::from(format!(
        "-CLUSTERDOWN too many redirects for slot {slot} (the last one to {last}); the cluster is reconfiguring\r\n"
    ))
}

fn slot_of(target: &Target) -> Option<u16> {
    match target {
        Target::Slot(slot) => Some(*slot),
        _ => None,
    }
}

pub(super) fn unavailable_error(err: Option<&BackendError>) -> Bytes {
    match err {
        Some(err) => Bytes::from(format!(
            "-CLUSTERDOWN master {} is unreachable and no replica took over before the failover deadline\r\n",
            err.addr
        )),
        None => Bytes::from_static(b"-CLUSTERDOWN The cluster is down\r\n"),
    }
}

pub(super) fn no_owner_error(target: &Target, err: Option<&BackendError>) -> Bytes {
    match (target, err) {
        (_, Some(err)) => unavailable_error(Some(err)),
        (Target::Slot(_), None) => Bytes::from_static(b"-CLUSTERDOWN Hash slot not served\r\n"),
        _ => Bytes::from_static(b"-CLUSTERDOWN The cluster is down\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(sent: Sent) -> ReplyResult {
        Err(BackendError {
            addr: "127.0.0.1:1".into(),
            kind: FailureKind::Closed,
            sent,
        })
    }

    #[test]
    fn replies_and_redirects() {
        let ok: ReplyResult = Ok(Bytes::from_static(b"+OK\r\n"));
        assert_eq!(next_step(&ok, false), Step::Deliver);
        let wrongtype: ReplyResult = Ok(Bytes::from_static(b"-WRONGTYPE Operation\r\n"));
        assert_eq!(next_step(&wrongtype, false), Step::Deliver);
        let moved: ReplyResult = Ok(Bytes::from_static(b"-MOVED 1 127.0.0.1:2\r\n"));
        assert_eq!(
            next_step(&moved, true),
            Step::Moved {
                slot: 1,
                addr: "127.0.0.1:2".into()
            }
        );
        let ask: ReplyResult = Ok(Bytes::from_static(b"-ASK 1 127.0.0.1:2\r\n"));
        assert_eq!(
            next_step(&ask, true),
            Step::Ask {
                addr: "127.0.0.1:2".into()
            }
        );
        let tryagain: ReplyResult = Ok(Bytes::from_static(b"-TRYAGAIN x\r\n"));
        assert_eq!(next_step(&tryagain, false), Step::RetryLater);
    }

    #[test]
    fn writes_that_may_have_run_are_never_resent() {
        assert_eq!(next_step(&err(Sent::No), false), Step::AwaitTopology);
        assert_eq!(next_step(&err(Sent::Maybe), true), Step::AwaitTopology);
        assert_eq!(next_step(&err(Sent::Maybe), false), Step::OutcomeUnknown);
    }

    #[test]
    fn redirect_without_host_uses_the_senders() {
        assert_eq!(with_host(":7001", "127.0.0.1:7000"), "127.0.0.1:7001");
        assert_eq!(
            with_host("10.0.0.1:7001", "127.0.0.1:7000"),
            "10.0.0.1:7001"
        );
    }
}
