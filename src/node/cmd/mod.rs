//! Running one command on a built-in node: find it in the command table
//! (arity, flags, keys), check that this node serves its slot (MOVED, ASK,
//! CROSSSLOT... in Redis's words), queue it inside MULTI, run its handler,
//! then tell watchers and blocked clients which keys a write touched.
//!
//! A handler is a plain function over a [`Ctx`] (the node's state, locked
//! for the duration of the command, the client's own state, and the output
//! buffer) and its [`Args`]. Each data type's handlers live in their own
//! module and are listed in that module's `COMMANDS`.

mod args;
mod error;

pub mod cluster;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod pubsub;
pub mod server;
pub mod sets;
pub mod strings;
pub mod tx;
pub mod zsets;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

pub use args::{Args, parse_f64, parse_i64};
pub use error::CmdError;

use super::client::ClientState;
use super::state::{NodeState, Shared};
use crate::command::{self, CommandSpec, flags};
use crate::resp::{Request, encode};

/// What a handler returns when it did not fail.
pub enum Outcome {
    /// The reply is in `ctx.out`.
    Done,
    /// Nothing to serve yet (BLPOP on empty lists): wait until one of
    /// `keys` is written or `deadline` passes, then run the same request
    /// again. At the deadline the client gets `timeout_reply`.
    Block {
        keys: Vec<Bytes>,
        deadline: Option<Instant>,
        timeout_reply: &'static [u8],
    },
    /// The reply needs I/O or time (MIGRATE, WAIT, DEBUG SLEEP): the
    /// connection awaits this future, without the node lock, and writes the
    /// bytes it yields.
    Async(Pin<Box<dyn Future<Output = Bytes> + Send>>),
    /// The reply is in `ctx.out`; close the connection after writing it.
    Close,
    /// Not run: writes are paused (a manual failover). Run the same request
    /// again at `until`, as Redis's `blockPostponeClient` does.
    Postponed { until: Instant },
    /// PSYNC or SYNC: after the replies so far, the connection becomes a
    /// replica's link, fed from the write stream until it ends.
    ServeReplica(Box<super::replication::master::LinkStart>),
}

pub type CmdResult = Result<Outcome, CmdError>;

/// A command's implementation.
pub type Handler = fn(&mut Ctx<'_>, &Args<'_>) -> CmdResult;

/// Everything a handler may touch.
pub struct Ctx<'a> {
    /// The node's state, locked for this command.
    pub node: &'a mut NodeState,
    /// The calling client's own state.
    pub client: &'a mut ClientState,
    /// Shared handles (config, the bus) for handlers that start async work.
    pub shared: &'a Arc<Shared>,
    /// Where the reply goes.
    pub out: &'a mut BytesMut,
    /// The table entry of the command being run.
    pub spec: &'static CommandSpec,
}

impl Ctx<'_> {
    pub fn ok(&mut self) -> CmdResult {
        encode::simple(self.out, "OK");
        Ok(Outcome::Done)
    }

    pub fn simple(&mut self, text: &str) -> CmdResult {
        encode::simple(self.out, text);
        Ok(Outcome::Done)
    }

    pub fn int(&mut self, n: i64) -> CmdResult {
        encode::integer(self.out, n);
        Ok(Outcome::Done)
    }

    pub fn bulk(&mut self, data: &[u8]) -> CmdResult {
        encode::bulk(self.out, data);
        Ok(Outcome::Done)
    }

    /// `$-1`: a missing value.
    pub fn nil(&mut self) -> CmdResult {
        encode::null_bulk(self.out);
        Ok(Outcome::Done)
    }

    /// `*-1`: a missing array (BLPOP timeout, EXEC aborted by WATCH).
    pub fn null_array(&mut self) -> CmdResult {
        self.out.extend_from_slice(b"*-1\r\n");
        Ok(Outcome::Done)
    }

    /// Starts an array of `n` elements; the caller writes them next.
    pub fn array_header(&mut self, n: usize) {
        encode::array_header(self.out, n);
    }

    /// An array of bulk strings.
    pub fn bulk_array<'b>(&mut self, items: impl ExactSizeIterator<Item = &'b [u8]>) -> CmdResult {
        encode::array_header(self.out, items.len());
        for item in items {
            encode::bulk(self.out, item);
        }
        Ok(Outcome::Done)
    }

    /// A double as Redis writes one in RESP2: a bulk string.
    pub fn double(&mut self, value: f64) -> CmdResult {
        let text = format_double(value);
        self.bulk(text.as_bytes())
    }

    /// The current time of this command, Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.node.db.now_ms()
    }
}

/// A double the way Redis 7.0 prints it in a reply: `printf("%.17g")`
/// (`3`, `1.1000000000000001`, `1e+20`), `inf` and `-inf`.
pub fn format_double(value: f64) -> String {
    super::float::fmt_g17(value)
}

/// Every handler, by table name (`get`, `config|get`).
fn handlers() -> &'static super::db::Map<&'static str, Handler> {
    static HANDLERS: OnceLock<super::db::Map<&'static str, Handler>> = OnceLock::new();
    HANDLERS.get_or_init(|| {
        let mut map = super::db::Map::default();
        let lists = [
            server::COMMANDS,
            strings::COMMANDS,
            keys::COMMANDS,
            lists::COMMANDS,
            hashes::COMMANDS,
            sets::COMMANDS,
            zsets::COMMANDS,
            tx::COMMANDS,
            pubsub::COMMANDS,
            cluster::COMMANDS,
            super::replication::master::COMMANDS,
        ];
        for list in lists {
            for (name, handler) in list {
                map.insert(*name, *handler);
            }
        }
        map
    })
}

/// True if the built-in node implements the table command `name`.
pub fn is_implemented(name: &str) -> bool {
    handlers().contains_key(name)
}

/// Commands a RESP2 client in subscribed mode may run.
const ALLOWED_IN_PUBSUB: &[&str] = &[
    "ping",
    "subscribe",
    "ssubscribe",
    "unsubscribe",
    "sunsubscribe",
    "psubscribe",
    "punsubscribe",
    "quit",
    "reset",
];

/// Refusals that depend on the client's mode, with Redis's texts
/// (`processCommand`): commands outside pub/sub in subscribed mode, and
/// `no_multi` commands inside MULTI. Commands run by EXEC skip them, as
/// Redis runs them without `processCommand`.
fn check_context(client: &ClientState, spec: &'static CommandSpec) -> Result<(), CmdError> {
    if client.in_exec {
        return Ok(());
    }
    if client.in_pubsub_mode() && !ALLOWED_IN_PUBSUB.contains(&spec.name) {
        return Err(CmdError::new(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        )));
    }
    if client.multi.is_some() && spec.has_flag(flags::NO_MULTI) {
        return Err(CmdError::fixed(
            "ERR Command not allowed inside a transaction",
        ));
    }
    Ok(())
}

/// How often a request postponed by paused writes is tried again, in ms.
const POSTPONE_POLL_MS: i64 = 10;

/// True for what paused writes hold back (Redis's
/// `is_may_replicate_command`): a write, or an EXEC with a write queued.
/// Commands EXEC runs were held back with it.
fn may_replicate(client: &ClientState, spec: &'static CommandSpec) -> bool {
    if client.in_exec {
        return false;
    }
    if spec.has_flag(flags::WRITE) {
        return true;
    }
    spec.name == "exec"
        && client.multi.as_ref().is_some_and(|tx| {
            tx.queued
                .iter()
                .any(|req| command::lookup(req).is_ok_and(|s| s.has_flag(flags::WRITE)))
        })
}

/// Runs one request: table lookup, cluster check, MULTI queueing, the
/// handler, and the notifications for written keys. The reply (or error)
/// is appended to `ctx.out`, except for the `Block` and `Async` outcomes.
pub fn execute(
    node: &mut NodeState,
    client: &mut ClientState,
    shared: &Arc<Shared>,
    out: &mut BytesMut,
    req: &Request,
    now_ms: i64,
) -> Outcome {
    let spec = match command::lookup(req) {
        Ok(spec) => spec,
        Err(e) => {
            client.flag_multi_error();
            if matches!(&e, command::CommandError::WrongArity(name) if name == "exec") {
                // Redis's execCommandAbort: a malformed EXEC also discards
                // the open transaction.
                tx::discard_transaction(node, client);
            }
            encode::error(out, &e.to_string());
            return Outcome::Done;
        }
    };
    client.last_command = spec.name;
    node.db.set_clock(now_ms);
    if !client.replaying {
        if let Err(e) = node.cluster.check_request(&mut node.db, spec, req, client) {
            client.flag_multi_error();
            encode::error(out, e.text());
            return Outcome::Done;
        }
        if let Err(e) = check_context(client, spec) {
            client.flag_multi_error();
            encode::error(out, e.text());
            return Outcome::Done;
        }
        if spec.has_flag(flags::WRITE) {
            if let Some(refusal) = crate::node::aof::write_refusal(node) {
                client.flag_multi_error();
                encode::error(out, &refusal);
                return Outcome::Done;
            }
        }
    }
    if let Some(until) = node.cluster.client_writes_paused_until(now_ms) {
        if may_replicate(client, spec) {
            // Retried often: the pause ends early when the failover does.
            let wait = (until - now_ms).clamp(1, POSTPONE_POLL_MS);
            return Outcome::Postponed {
                until: Instant::now() + Duration::from_millis(wait as u64),
            };
        }
    }
    let Some(handler) = handlers().get(spec.name).copied() else {
        client.flag_multi_error();
        encode::error(
            out,
            &format!(
                "ERR command '{}' is not supported by the built-in node",
                spec.name.replace('|', " ")
            ),
        );
        return Outcome::Done;
    };
    if client.queue_in_multi(spec, req) {
        encode::simple(out, "QUEUED");
        return Outcome::Done;
    }
    let args = Args::new(req);
    let mut ctx = Ctx {
        node,
        client,
        shared,
        out,
        spec,
    };
    let offset_before = ctx.node.feed.offset();
    let result = handler(&mut ctx, &args);
    // ASKING holds for exactly one command after it.
    if spec.name != "asking" {
        ctx.client.asking = false;
    }
    // Keys the command found expired go out as DELs before the command.
    ctx.node.propagate_expired();
    let outcome = match result {
        Ok(outcome) => {
            if spec.has_flag(flags::WRITE) && !matches!(outcome, Outcome::Block { .. }) {
                ctx.node.note_write(spec, req, ctx.client.replaying);
            } else {
                // A handler that asked to propagate something else but did
                // not write (an error path) leaves nothing behind.
                ctx.node.feed.discard_instead();
            }
            outcome
        }
        Err(e) => {
            ctx.node.feed.discard_instead();
            encode::error(ctx.out, e.text());
            Outcome::Done
        }
    };
    // As Redis's `call`: the client's writes reach replicas up to here.
    let offset = ctx.node.feed.offset();
    if offset != offset_before {
        ctx.client.write_offset = offset;
    }
    outcome
}
