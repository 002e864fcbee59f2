//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, as Redis runs them.
//!
//! Commands are queued by `cmd::execute` (after the lookup, arity and
//! cluster checks that flag the transaction on failure). EXEC checks, like
//! Redis's `getNodeByQuery` does for it, that every queued key is in one
//! slot this node serves; then that no watched key changed; then runs the
//! queued commands one after the other under the lock it already holds.
//!
//! Inside EXEC a command that would block answers as if its timeout had
//! passed (Redis does the same), and one that would wait for I/O or time
//! (an `Outcome::Async`) is refused with an error in its place: a handler
//! that can answer synchronously checks `ClientState::in_exec` (WAIT
//! answers its current count, DEBUG SLEEP sleeps under the lock).

use std::sync::atomic::Ordering;

use super::{Args, CmdError, CmdResult, Ctx, Outcome, execute};
use crate::command::{self, flags};
use crate::node::client::{ClientState, Transaction, WatchedKey};
use crate::node::state::NodeState;
use crate::resp::{Request, encode};

pub const COMMANDS: &[(&str, super::Handler)] = &[
    ("multi", multi),
    ("exec", exec),
    ("discard", discard),
    ("watch", watch),
    ("unwatch", unwatch),
];

/// Forgets every watched key of `client`.
pub fn unwatch_all(node: &mut NodeState, client: &mut ClientState) {
    for watched in client.watched.drain(..) {
        node.events.unwatch(&watched.key, &client.watch_dirty);
    }
    client.watch_dirty.store(false, Ordering::Release);
}

/// Ends an open transaction without running it (DISCARD, a failed EXEC,
/// RESET), and forgets the watches.
pub fn discard_transaction(node: &mut NodeState, client: &mut ClientState) {
    client.multi = None;
    unwatch_all(node, client);
}

fn multi(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::fixed("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Transaction::default());
    ctx.ok()
}

fn discard(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::fixed("ERR DISCARD without MULTI"));
    }
    discard_transaction(ctx.node, ctx.client);
    ctx.ok()
}

fn watch(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::fixed("ERR WATCH inside MULTI is not allowed"));
    }
    for i in 1..args.len() {
        let key = args.bytes(i);
        if ctx.client.watched.iter().any(|w| w.key == key) {
            continue;
        }
        let existed = ctx.node.db.contains(&key);
        ctx.node.events.watch(key.clone(), &ctx.client.watch_dirty);
        ctx.client.watched.push(WatchedKey { key, existed });
    }
    ctx.ok()
}

fn unwatch(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    unwatch_all(ctx.node, ctx.client);
    ctx.ok()
}

/// Redis's cluster check of EXEC: the keys of all queued commands
/// together must be in one slot this node serves (CROSSSLOT, MOVED, ASK,
/// TRYAGAIN, CLUSTERDOWN otherwise). Checked as one request holding every
/// key, read-only if every queued command is.
fn check_slots(ctx: &mut Ctx<'_>, queued: &[Request]) -> Result<(), CmdError> {
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut writes = false;
    for req in queued {
        let Ok(spec) = command::lookup(req) else {
            continue;
        };
        writes |= !spec.has_flag(flags::READONLY);
        if let Ok(positions) = spec.keys(req) {
            keys.extend(positions.as_slice().iter().filter_map(|&pos| req.arg(pos)));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let carrier = if writes { "del" } else { "mget" };
    let Some(spec) = command::lookup_name(carrier.as_bytes()) else {
        return Ok(());
    };
    let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
    args.push(carrier.as_bytes());
    args.extend(keys);
    let all = Request::from_args(&args);
    let node = &mut *ctx.node;
    node.cluster
        .check_request(&mut node.db, spec, &all, ctx.client)
}

/// True if a watched key changed since WATCH: written, deleted, or expired
/// (even if nobody has read it since).
fn watch_broken(ctx: &mut Ctx<'_>) -> bool {
    if ctx.client.watch_broken() {
        return true;
    }
    let watched = std::mem::take(&mut ctx.client.watched);
    let gone = watched
        .iter()
        .any(|w| w.existed && !ctx.node.db.contains(&w.key));
    ctx.client.watched = watched;
    gone
}

fn exec(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let Some(tx) = ctx.client.multi.take() else {
        return Err(CmdError::fixed("ERR EXEC without MULTI"));
    };
    if let Err(e) = check_slots(ctx, &tx.queued) {
        unwatch_all(ctx.node, ctx.client);
        return Err(e);
    }
    if tx.aborted {
        unwatch_all(ctx.node, ctx.client);
        return Err(CmdError::fixed(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if watch_broken(ctx) {
        unwatch_all(ctx.node, ctx.client);
        return ctx.null_array();
    }
    unwatch_all(ctx.node, ctx.client);
    ctx.array_header(tx.queued.len());
    let asking = ctx.client.asking;
    let now = ctx.node.db.now_ms();
    let mut close = false;
    ctx.client.in_exec = true;
    ctx.node.feed.begin_exec();
    for req in &tx.queued {
        // ASKING, checked once for EXEC, holds for every queued command.
        ctx.client.asking = asking;
        ctx.node.stats.total_commands_processed += 1;
        match execute(ctx.node, ctx.client, ctx.shared, ctx.out, req, now) {
            Outcome::Done => {}
            Outcome::Close => close = true,
            Outcome::Block { timeout_reply, .. } => ctx.out.extend_from_slice(timeout_reply),
            // Never: paused writes hold back the EXEC, not what it runs.
            Outcome::Postponed { .. } => {}
            Outcome::Async(_) | Outcome::ServeReplica(_) => encode::error(
                ctx.out,
                &format!(
                    "ERR '{}' cannot run inside a transaction on the built-in node",
                    String::from_utf8_lossy(req.name()).to_ascii_lowercase()
                ),
            ),
        }
    }
    ctx.client.in_exec = false;
    ctx.node.feed.end_exec();
    ctx.client.last_command = "exec";
    Ok(if close { Outcome::Close } else { Outcome::Done })
}

/// A node in a test: every slot served, commands run directly.
#[cfg(test)]
pub(crate) mod harness {
    use std::sync::Arc;

    use bytes::BytesMut;
    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio_util::sync::CancellationToken;

    use crate::node::bus::{BusHandle, Outbound};
    use crate::node::client::ClientState;
    use crate::node::cluster::{ClusterNode, ClusterState, random_node_id};
    use crate::node::config::NodeConfig;
    use crate::node::state::{NodeState, Shared};
    use crate::resp::Request;

    /// A node that serves every slot, and what it hands to the bus.
    pub fn node() -> (Arc<Shared>, UnboundedReceiver<Outbound>) {
        let me = ClusterNode::new(random_node_id(), "127.0.0.1", 7000, 17000);
        let id = me.id.clone();
        let mut cluster = ClusterState::new(me, true);
        cluster.set_owners(0..16384, Some(&id));
        let (bus, outbox) = BusHandle::new();
        let shared = Arc::new(Shared::new(
            NodeConfig::for_port(7000),
            NodeState::new(cluster),
            bus,
            CancellationToken::new(),
        ));
        (shared, outbox)
    }

    /// Runs one command at time `now` (Unix ms); returns the reply.
    pub fn run(shared: &Arc<Shared>, client: &mut ClientState, now: i64, args: &[&str]) -> String {
        let mut out = BytesMut::new();
        let mut node = shared.lock();
        let req = Request::from_args(args);
        let _ = super::execute(&mut node, client, shared, &mut out, &req, now);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::harness::run;
    use crate::node::client::ClientState;
    use crate::node::db::{Entry, Value};
    use crate::node::state::Shared;

    fn node() -> Arc<Shared> {
        super::harness::node().0
    }

    const NOW: i64 = 1_700_000_000_000;

    fn insert_with_ttl(shared: &Arc<Shared>, key: &'static str, expires_at: i64) {
        let mut node = shared.lock();
        node.db.set_clock(NOW);
        node.db.insert_entry(
            Bytes::from_static(key.as_bytes()),
            Entry {
                value: Value::Str(Bytes::from_static(b"v")),
                expires_at: Some(expires_at),
            },
        );
    }

    /// Runs one command and returns its outcome.
    fn outcome(shared: &Arc<Shared>, c: &mut ClientState, args: &[&str]) -> super::Outcome {
        let mut out = bytes::BytesMut::new();
        let mut node = shared.lock();
        let req = crate::resp::Request::from_args(args);
        super::super::execute(&mut node, c, shared, &mut out, &req, NOW)
    }

    #[test]
    fn paused_writes_hold_back_writes_and_exec_with_writes_only() {
        let shared = node();
        let mut c = ClientState::new(1, None);
        let postponed = |o: &super::Outcome| matches!(o, super::Outcome::Postponed { .. });
        run(&shared, &mut c, NOW, &["MULTI"]);
        run(&shared, &mut c, NOW, &["SET", "k", "v"]);
        shared.lock().cluster.manual.pause_until_ms = NOW + 1000;
        assert!(postponed(&outcome(&shared, &mut c, &["EXEC"])));
        assert!(!postponed(&outcome(&shared, &mut c, &["DISCARD"])));
        assert!(postponed(&outcome(&shared, &mut c, &["SET", "k", "v"])));
        assert!(postponed(&outcome(&shared, &mut c, &["DEL", "k"])));
        assert!(!postponed(&outcome(&shared, &mut c, &["GET", "k"])));
        run(&shared, &mut c, NOW, &["MULTI"]);
        run(&shared, &mut c, NOW, &["GET", "k"]);
        assert!(
            !postponed(&outcome(&shared, &mut c, &["EXEC"])),
            "reads only"
        );
        // The pause is over (the failover ended): the write runs.
        shared.lock().cluster.manual.pause_until_ms = NOW;
        assert_eq!(run(&shared, &mut c, NOW, &["SET", "k", "v"]), "+OK\r\n");
    }

    #[test]
    fn a_watched_key_that_expires_fails_exec() {
        let shared = node();
        let mut c = ClientState::new(1, None);
        insert_with_ttl(&shared, "k", NOW + 100);
        assert_eq!(run(&shared, &mut c, NOW, &["WATCH", "k"]), "+OK\r\n");
        run(&shared, &mut c, NOW, &["MULTI"]);
        assert_eq!(run(&shared, &mut c, NOW, &["GET", "k"]), "+QUEUED\r\n");
        // Nobody has read it since it expired: EXEC still sees the change.
        assert_eq!(run(&shared, &mut c, NOW + 200, &["EXEC"]), "*-1\r\n");
        assert!(c.watched.is_empty());
    }

    #[test]
    fn a_key_already_expired_at_watch_time_does_not_fail_exec() {
        let shared = node();
        let mut c = ClientState::new(1, None);
        insert_with_ttl(&shared, "k", NOW - 1);
        run(&shared, &mut c, NOW, &["WATCH", "k"]);
        run(&shared, &mut c, NOW, &["MULTI"]);
        run(&shared, &mut c, NOW, &["GET", "k"]);
        assert_eq!(run(&shared, &mut c, NOW + 1, &["EXEC"]), "*1\r\n$-1\r\n");
    }

    #[test]
    fn flushing_everything_fails_every_watch() {
        let shared = node();
        let mut c = ClientState::new(1, None);
        let watch = run(&shared, &mut c, NOW, &["WATCH", "{t}a", "{t}b"]);
        assert_eq!(watch, "+OK\r\n");
        shared.lock().events.touched_all();
        run(&shared, &mut c, NOW, &["MULTI"]);
        assert_eq!(run(&shared, &mut c, NOW, &["EXEC"]), "*-1\r\n");
        // The next transaction starts clean.
        run(&shared, &mut c, NOW, &["MULTI"]);
        assert_eq!(run(&shared, &mut c, NOW, &["EXEC"]), "*0\r\n");
    }

    #[test]
    fn exec_runs_commands_subscribed_mode_would_refuse() {
        let shared = node();
        let mut c = ClientState::new(1, None);
        run(&shared, &mut c, NOW, &["MULTI"]);
        run(&shared, &mut c, NOW, &["SUBSCRIBE", "ch"]);
        run(&shared, &mut c, NOW, &["SET", "{t}a", "1"]);
        let reply = run(&shared, &mut c, NOW, &["EXEC"]);
        // Redis runs queued commands without the subscribed-mode check.
        assert_eq!(
            reply,
            "*2\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n+OK\r\n"
        );
        assert!(c.in_pubsub_mode());
        assert!(!c.in_exec);
        assert!(
            run(&shared, &mut c, NOW, &["GET", "{t}a"]).starts_with("-ERR Can't execute 'get'")
        );
    }
}
