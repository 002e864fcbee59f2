//! Transactions through the proxy: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! The proxy queues a transaction itself. It answers MULTI and each queued
//! command as Redis would (`+QUEUED`, or an error that flags the
//! transaction, so that EXEC answers `EXECABORT`), and holds every key to
//! one slot: the first key's, or the watched keys'. A key in another slot
//! gets `CROSSSLOT` and aborts the transaction, as a cluster node does.
//!
//! At EXEC, `MULTI`, the queued commands and `EXEC` leave in one write on a
//! dedicated connection to the slot's master, and the client gets EXEC's
//! reply. Nothing reaches a node before EXEC, so a transaction that cannot
//! start (the node is down, the slot moved) is sent again to the new owner.
//!
//! WATCH pins a dedicated connection: the watched keys live on it from WATCH
//! to EXEC, DISCARD or UNWATCH, and the transaction runs on it. If it is
//! lost, or the slot moves, the watch is void and EXEC answers nil, as when a
//! watched key changed: the client starts over.
//!
//! A transaction whose EXEC was written but whose reply was lost may or may
//! not have run: the client gets an error saying so, never a success.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;

use crate::cluster::redirect::{self, CROSSSLOT, ClusterError};
use crate::command::{self, CommandSpec, flags};
use crate::resp::resp3::Shape;
use crate::resp::{Request, encode};

use super::Proxy;
use super::dedicated::{DedicatedConn, Pinned};
use super::dispatch::{
    Target, await_topology, execute_pinned, no_owner_error, note_failure, outcome_unknown_error,
    pick, too_many_redirects, unavailable_error, with_host,
};
use super::pause::may_replicate;
use super::refresh::RefreshReason;
use super::router::Route;

const OK: &[u8] = b"+OK\r\n";
const QUEUED: &[u8] = b"+QUEUED\r\n";
/// EXEC's answer when a watched key changed (or the watch was lost).
const NIL: &[u8] = b"*-1\r\n";
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
const MIGRATING: &[u8] =
    b"-TRYAGAIN the transaction's slot is being migrated between nodes; try again\r\n";

/// What the session does with a request, as far as transactions go.
pub enum TxStep {
    /// Not the transaction's business: route it as usual.
    Pass,
    /// This reply, now.
    Reply(Bytes),
    /// Run this, alone: nothing before it is still running, nothing after it
    /// starts before it ends (WATCH, EXEC).
    Run(BoxFuture<'static, Bytes>),
}

/// One client's transaction state.
#[derive(Default)]
pub struct Transaction {
    watch: Option<Watch>,
    multi: Option<Multi>,
}

/// Keys watched on a pinned connection. An empty [`Pinned`] after WATCH
/// means the watch is void (lost, or its slot moved).
struct Watch {
    slot: u16,
    conn: Pinned,
}

/// An open MULTI.
#[derive(Default)]
struct Multi {
    /// The queued requests, each in wire form, back to back.
    queued: BytesMut,
    count: usize,
    /// Each queued command's RESP3 reply shape, for EXEC's reply to a
    /// RESP3 client.
    shapes: Vec<&'static Shape>,
    /// The first queued key's slot.
    slot: Option<u16>,
    /// A queued command was refused: EXEC answers EXECABORT.
    dirty: bool,
    /// A queued command may replicate: a WRITE pause holds the EXEC.
    may_replicate: bool,
}

fn error(text: &str) -> TxStep {
    let mut out = BytesMut::with_capacity(text.len() + 3);
    encode::error(&mut out, text);
    TxStep::Reply(out.freeze())
}

fn upper(spec: &CommandSpec) -> String {
    spec.name.replace('|', " ").to_uppercase()
}

impl Transaction {
    /// True while a MULTI is open: every request goes through
    /// [`Transaction::handle`].
    pub fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// The number of commands queued while a MULTI is open.
    pub fn queued(&self) -> Option<usize> {
        self.multi.as_ref().map(|m| m.count)
    }

    /// The RESP3 shapes of the queued commands' replies, in order (what
    /// EXEC's reply holds).
    pub fn reply_shapes(&self) -> Vec<&'static Shape> {
        self.multi
            .as_ref()
            .map_or_else(Vec::new, |m| m.shapes.clone())
    }

    /// True when the open MULTI queued a command that may replicate (a
    /// WRITE pause then holds its EXEC).
    pub fn may_replicate(&self) -> bool {
        self.multi.as_ref().is_some_and(|m| m.may_replicate)
    }

    /// True when EXEC (or WATCH) must run alone.
    pub fn is_barrier(&self, spec: Option<&CommandSpec>) -> bool {
        matches!(spec.map(|s| s.name), Some("exec" | "watch"))
    }

    /// Ends everything: the open MULTI, the watch (RESET, and a client that
    /// leaves).
    pub fn reset(&mut self) {
        self.multi = None;
        self.unwatch();
    }

    fn unwatch(&mut self) {
        if let Some(conn) = self.watch.take().and_then(|w| w.conn.take()) {
            conn.recycle();
        }
    }

    /// Handles a transaction command, or any command while MULTI is open.
    pub fn handle(
        &mut self,
        proxy: &Arc<Proxy>,
        spec: Option<&'static CommandSpec>,
        route: &Route,
        req: &Request,
    ) -> TxStep {
        let name = spec.map_or("", |s| s.name);
        match name {
            "multi" => {
                if self.multi.is_some() {
                    return error("ERR MULTI calls can not be nested");
                }
                self.multi = Some(Multi::default());
                TxStep::Reply(Bytes::from_static(OK))
            }
            "exec" => match self.multi.take() {
                None => error("ERR EXEC without MULTI"),
                Some(multi) if multi.dirty => {
                    self.unwatch();
                    TxStep::Reply(Bytes::from_static(EXECABORT))
                }
                Some(multi) => self.exec(proxy, multi),
            },
            "discard" => match self.multi.take() {
                None => error("ERR DISCARD without MULTI"),
                Some(_) => {
                    self.unwatch();
                    TxStep::Reply(Bytes::from_static(OK))
                }
            },
            "watch" if self.multi.is_some() => error("ERR WATCH inside MULTI is not allowed"),
            "watch" => self.watch(proxy, route, req),
            "unwatch" if self.multi.is_none() => {
                self.unwatch();
                TxStep::Reply(Bytes::from_static(OK))
            }
            // RESET and QUIT act at once, also inside MULTI.
            "reset" | "quit" => TxStep::Pass,
            _ if self.multi.is_some() => self.queue(spec, route, req),
            _ => TxStep::Pass,
        }
    }

    /// The slot every key of the transaction must be in, once known.
    fn slot(&self) -> Option<u16> {
        self.watch
            .as_ref()
            .map(|w| w.slot)
            .or(self.multi.as_ref().and_then(|m| m.slot))
    }

    fn watch(&mut self, proxy: &Arc<Proxy>, route: &Route, req: &Request) -> TxStep {
        let slot = match route {
            Route::Session { slot: Some(slot) } => *slot,
            Route::Error(text) => return error(text),
            _ => return error("ERR wrong number of arguments for 'watch' command"),
        };
        let proxy = proxy.clone();
        let request = req.raw().clone();
        match &self.watch {
            Some(watch) if watch.slot != slot => error(CROSSSLOT),
            Some(watch) => {
                let conn = watch.conn.clone();
                TxStep::Run(Box::pin(
                    async move { watch_more(&proxy, request, conn).await },
                ))
            }
            None => {
                let conn = Pinned::default();
                self.watch = Some(Watch {
                    slot,
                    conn: conn.clone(),
                });
                TxStep::Run(Box::pin(async move {
                    execute_pinned(&proxy, request, Target::Slot(slot), &conn).await
                }))
            }
        }
    }

    /// Queues a command inside MULTI, or refuses it (and flags the
    /// transaction) as Redis would.
    fn queue(
        &mut self,
        spec: Option<&'static CommandSpec>,
        route: &Route,
        req: &Request,
    ) -> TxStep {
        let tx_slot = self.slot();
        let Some(multi) = self.multi.as_mut() else {
            return TxStep::Pass;
        };
        let refuse = |multi: &mut Multi, text: &str| {
            multi.dirty = true;
            error(text)
        };
        let Some(spec) = spec else {
            return match route {
                Route::Error(text) => refuse(multi, text),
                _ => refuse(multi, "ERR unknown command"),
            };
        };
        if spec.has_flag(flags::NO_MULTI) {
            return refuse(multi, "ERR Command not allowed inside a transaction");
        }
        let slot = match route {
            Route::Slot { slot, .. } | Route::Blocking { slot, .. } => Some(*slot),
            Route::EvalSha { slot, .. } => *slot,
            Route::AnyMaster { .. } => None,
            Route::Local if matches!(spec.name, "ping" | "echo") => None,
            Route::Session { .. } if spec.name == "unwatch" => None,
            Route::Error(text) => return refuse(multi, text),
            Route::Split { .. } => return refuse(multi, CROSSSLOT),
            _ => {
                return refuse(
                    multi,
                    &format!(
                        "ERR '{}' cannot be queued in a transaction through this proxy",
                        upper(spec)
                    ),
                );
            }
        };
        if let Some(slot) = slot {
            match tx_slot {
                Some(s) if s != slot => return refuse(multi, CROSSSLOT),
                _ => multi.slot = Some(slot),
            }
        }
        multi.queued.extend_from_slice(req.raw());
        multi.count += 1;
        multi.shapes.push(command::reply_shape(spec.name, req));
        multi.may_replicate |= may_replicate(Some(spec), false);
        TxStep::Reply(Bytes::from_static(QUEUED))
    }

    fn exec(&mut self, proxy: &Arc<Proxy>, multi: Multi) -> TxStep {
        let slot = self.slot().or(multi.slot);
        let mut batch = BytesMut::with_capacity(multi.queued.len() + MULTI.len() + EXEC.len());
        batch.extend_from_slice(MULTI);
        batch.extend_from_slice(&multi.queued);
        batch.extend_from_slice(EXEC);
        let batch = Batch {
            bytes: batch.freeze(),
            replies: multi.count + 2,
        };
        let proxy = proxy.clone();
        match self.watch.take() {
            Some(watch) => TxStep::Run(Box::pin(async move {
                exec_watched(&proxy, batch, watch.conn).await
            })),
            None => TxStep::Run(Box::pin(async move {
                exec_unwatched(&proxy, batch, slot).await
            })),
        }
    }
}

/// `MULTI`, the queued commands, `EXEC`, and how many replies they get.
struct Batch {
    bytes: Bytes,
    replies: usize,
}

impl Batch {
    async fn run(
        &self,
        conn: &mut DedicatedConn,
    ) -> Result<Vec<Bytes>, super::backend::BackendError> {
        conn.write(&self.bytes).await?;
        let mut replies = Vec::with_capacity(self.replies);
        for _ in 0..self.replies {
            replies.push(conn.read_reply().await?);
        }
        Ok(replies)
    }
}

/// What a transaction's replies mean.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It ran (or was refused for good): EXEC's reply goes to the client.
    Deliver(Bytes),
    /// It did not run: the slot lives elsewhere now.
    Moved { slot: u16, addr: String },
    /// It did not run: the cluster is busy (a migration, a failover). The
    /// bytes are the error to give up with.
    Later(Bytes),
}

/// Judges a transaction by its replies (`MULTI`'s, each queued command's,
/// `EXEC`'s). A redirect, on EXEC itself or on a queued command (which made
/// EXEC answer EXECABORT), means nothing ran.
fn judge(replies: &[Bytes]) -> Verdict {
    let Some((exec, queued)) = replies.split_last() else {
        return Verdict::Deliver(Bytes::from_static(EXECABORT));
    };
    if exec.first() != Some(&b'-') {
        return Verdict::Deliver(exec.clone());
    }
    let cause = std::iter::once(exec)
        .chain(queued)
        .filter(|r| r.first() == Some(&b'-'))
        .find_map(|r| redirect::parse(r).map(|e| (e, r)));
    match cause {
        None => Verdict::Deliver(exec.clone()),
        Some((ClusterError::Moved { slot, addr }, _)) => Verdict::Moved { slot, addr },
        Some((ClusterError::Ask { .. }, _)) => Verdict::Later(Bytes::from_static(MIGRATING)),
        Some((_, reply)) => Verdict::Later(reply.clone()),
    }
}

/// A transaction with watched keys, on the connection that watches them.
async fn exec_watched(proxy: &Proxy, batch: Batch, pinned: Pinned) -> Bytes {
    // A connection the node closed took the watch with it (nothing of the
    // transaction was sent yet).
    let Some(mut conn) = pinned.take().filter(DedicatedConn::is_open) else {
        return Bytes::from_static(NIL);
    };
    match batch.run(&mut conn).await {
        Ok(replies) => {
            let addr = conn.addr().clone();
            // EXEC ends the transaction and the watch, whatever it answered.
            conn.release();
            match judge(&replies) {
                Verdict::Deliver(reply) => reply,
                Verdict::Moved { slot, addr: to } => {
                    proxy.cluster.apply_moved(slot, &with_host(&to, &addr));
                    Bytes::from_static(NIL)
                }
                Verdict::Later(_) => Bytes::from_static(NIL),
            }
        }
        Err(err) => {
            note_failure(proxy, &err);
            proxy.cluster.request_refresh(RefreshReason::NodeDown);
            outcome_unknown_error(&err)
        }
    }
}

/// A transaction without watched keys, on a dedicated connection to the
/// slot's master (any master when it has no key), sent again as long as it
/// provably did not run.
async fn exec_unwatched(proxy: &Proxy, batch: Batch, slot: Option<u16>) -> Bytes {
    let cfg = &proxy.config;
    let started = Instant::now();
    let retry_deadline = started + Duration::from_millis(cfg.retry.retry_deadline_ms);
    let failover_deadline = started + Duration::from_millis(cfg.retry.failover_deadline_ms);
    let target = slot.map_or(Target::AnyMaster, Target::Slot);
    let mut redirects = 0u32;
    let mut backoff = Duration::from_millis(5);
    let mut last_failure = None;
    loop {
        let Some(node) = pick(proxy, &target) else {
            if !await_topology(proxy, failover_deadline).await {
                return no_owner_error(&target, last_failure.as_ref());
            }
            continue;
        };
        let mut conn = match node.dedicated().acquire().await {
            Ok(conn) => conn,
            Err(err) => match err.into_reply() {
                Err(reply) => return reply,
                Ok(err) => {
                    note_failure(proxy, &err);
                    proxy.cluster.request_refresh(RefreshReason::NodeDown);
                    last_failure = Some(err);
                    if !await_topology(proxy, failover_deadline).await {
                        return unavailable_error(last_failure.as_ref());
                    }
                    continue;
                }
            },
        };
        let replies = match batch.run(&mut conn).await {
            Ok(replies) => replies,
            Err(err) => {
                note_failure(proxy, &err);
                proxy.cluster.request_refresh(RefreshReason::NodeDown);
                return outcome_unknown_error(&err);
            }
        };
        conn.release();
        match judge(&replies) {
            Verdict::Deliver(reply) => return reply,
            Verdict::Moved { slot, addr } => {
                redirects += 1;
                if redirects > cfg.retry.max_redirects {
                    return too_many_redirects(Some(slot), &addr);
                }
                proxy
                    .cluster
                    .apply_moved(slot, &with_host(&addr, node.addr()));
            }
            Verdict::Later(reply) => {
                if Instant::now() + backoff > retry_deadline {
                    return reply;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// A further WATCH on the connection that already watches: if it is gone,
/// or the slot moved away from it, the whole watch is void (EXEC will
/// answer nil) and the client is told `+OK` like any WATCH.
async fn watch_more(proxy: &Proxy, request: Bytes, pinned: Pinned) -> Bytes {
    let Some(mut conn) = pinned.take() else {
        return Bytes::from_static(OK);
    };
    match conn.request(&request).await {
        Ok(reply) => match redirect::parse(&reply).filter(|_| reply.first() == Some(&b'-')) {
            None => {
                pinned.put(conn);
                reply
            }
            Some(cause) => {
                if let ClusterError::Moved { slot, addr } = cause {
                    proxy
                        .cluster
                        .apply_moved(slot, &with_host(&addr, conn.addr()));
                }
                conn.recycle();
                Bytes::from_static(OK)
            }
        },
        Err(_) => Bytes::from_static(OK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn a_transaction_that_ran_is_delivered() {
        let replies = [b("+OK\r\n"), b("+QUEUED\r\n"), b("*1\r\n:1\r\n")];
        assert_eq!(judge(&replies), Verdict::Deliver(b("*1\r\n:1\r\n")));
        let watched = [b("+OK\r\n"), b("+QUEUED\r\n"), b("*-1\r\n")];
        assert_eq!(judge(&watched), Verdict::Deliver(b("*-1\r\n")));
        // A plain error on a queued command: EXECABORT is the answer.
        let aborted = [
            b("+OK\r\n"),
            b("-ERR unknown\r\n"),
            b("-EXECABORT Transaction discarded because of previous errors.\r\n"),
        ];
        assert_eq!(judge(&aborted), Verdict::Deliver(aborted[2].clone()));
    }

    #[test]
    fn a_redirect_means_it_did_not_run() {
        let moved = [
            b("+OK\r\n"),
            b("-MOVED 5 127.0.0.1:7002\r\n"),
            b("-EXECABORT Transaction discarded because of previous errors.\r\n"),
        ];
        assert_eq!(
            judge(&moved),
            Verdict::Moved {
                slot: 5,
                addr: "127.0.0.1:7002".into()
            }
        );
        let exec_moved = [b("+OK\r\n"), b("+QUEUED\r\n"), b("-MOVED 5 :7002\r\n")];
        assert!(matches!(judge(&exec_moved), Verdict::Moved { slot: 5, .. }));
        let ask = [
            b("+OK\r\n"),
            b("+QUEUED\r\n"),
            b("-ASK 5 127.0.0.1:7002\r\n"),
        ];
        assert_eq!(judge(&ask), Verdict::Later(Bytes::from_static(MIGRATING)));
        let down = [b("+OK\r\n"), b("+QUEUED\r\n"), b("-CLUSTERDOWN x\r\n")];
        assert_eq!(judge(&down), Verdict::Later(b("-CLUSTERDOWN x\r\n")));
    }
}
