//! MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password] [AUTH2 username password] [KEYS key...]
//!
//! As in Redis (cluster.c `migrateCommand`): the keys are serialized with
//! DUMP, sent to the target as pipelined `RESTORE-ASKING key ttl payload
//! [REPLACE]` (ASKING so that a node importing the slot accepts them), after
//! `AUTH` and `SELECT`, and each key the target acknowledged is deleted
//! here unless COPY was given. Replies and errors are Redis's.
//!
//! Unlike Redis, the node does not block while the target answers: the
//! serialization happens under the node lock, the network exchange after
//! it ([`Outcome::Async`]), and the deletion under the lock again. Other
//! clients may write a key in between. So before deleting a key the node
//! checks that it is still what was sent (same payload and expiry); a key
//! written meanwhile is sent again (with REPLACE), and a key deleted
//! meanwhile is deleted on the target (`ASKING` + `DEL`), until they agree.
//! No write is lost, and none is left behind on the source: MIGRATE moves
//! the keys as they are when it finishes, which is what Redis's atomic
//! MIGRATE guarantees too.
//!
//! Differences: a MIGRATE to the node itself fails at once (Redis waits
//! for its timeout, blocked on itself); no cached connection to the target (each MIGRATE connects
//! afresh, so Redis's retry on a stale cached socket has no purpose), and a
//! key named twice in KEYS is migrated once.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::strings::owned_key;
use super::super::{Args, CmdError, CmdResult, Ctx, Outcome};
use crate::node::db::{Keyspace, Set, unix_ms};
use crate::node::dump;
use crate::node::propagate::encode_command;
use crate::node::state::Shared;
use crate::resp::{Frame, encode};

/// Rounds of re-sending keys that were written during the migration before
/// MIGRATE gives up.
const MAX_ROUNDS: usize = 8;
/// Redis's default when the timeout given is not positive.
const DEFAULT_TIMEOUT_MS: u64 = 1000;

const CONNECT_ERROR: &str = "IOERR error or timeout connecting to the client";
const WRITE_ERROR: &str = "IOERR error or timeout writing to target instance";
const READ_ERROR: &str = "IOERR error or timeout reading to target instance";

/// What the target is to hold for a key.
#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    payload: Bytes,
    expires_at: Option<i64>,
    /// The TTL to send, in ms (0: none), as of the snapshot.
    ttl: i64,
}

/// One key to bring in line on the target: its value, or (`None`) its
/// absence.
#[derive(Debug)]
struct Item {
    key: Bytes,
    state: Option<KeyState>,
}

/// The parsed command.
struct Plan {
    host: String,
    port: String,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// (username, password)
    auth: Option<(Option<Bytes>, Bytes)>,
}

/// The key's state now: its payload and expiry, or `None` if it is gone.
fn snapshot(db: &mut Keyspace, key: &[u8]) -> Option<KeyState> {
    let now = db.now_ms();
    let entry = db.entry(key)?;
    let ttl = entry.expires_at.map_or(0, |t| (t - now).max(1));
    Some(KeyState {
        payload: dump::dump(&entry.value),
        expires_at: entry.expires_at,
        ttl,
    })
}

pub(super) fn migrate(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    // Not replayed as itself: each key moved away goes out as a DEL when
    // the target has it (`settle`).
    ctx.node.feed.instead(Vec::new());
    let mut copy = false;
    let mut replace = false;
    let mut auth = None;
    let mut keys: Vec<&[u8]> = vec![args.get(3)];
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args.is(j, "copy") {
            copy = true;
        } else if args.is(j, "replace") {
            replace = true;
        } else if args.is(j, "auth") {
            if more < 1 {
                return Err(CmdError::SYNTAX);
            }
            auth = Some((None, args.bytes(j + 1)));
            j += 1;
        } else if args.is(j, "auth2") {
            if more < 2 {
                return Err(CmdError::SYNTAX);
            }
            auth = Some((Some(args.bytes(j + 1)), args.bytes(j + 2)));
            j += 2;
        } else if args.is(j, "keys") {
            if !args.get(3).is_empty() {
                return Err(CmdError::fixed(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            keys = args.rest(j + 1).collect();
            break;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let timeout = args.int(5)?;
    let db = args.int(4)?;
    let timeout = u64::try_from(timeout)
        .ok()
        .filter(|&t| t > 0)
        .unwrap_or(DEFAULT_TIMEOUT_MS);

    let mut seen = Set::default();
    let mut items = Vec::new();
    for key in keys {
        if !seen.insert(key) {
            continue;
        }
        if let Some(state) = snapshot(&mut ctx.node.db, key) {
            items.push(Item {
                key: owned_key(key),
                state: Some(state),
            });
        }
    }
    if items.is_empty() {
        return ctx.simple("NOKEY");
    }
    let plan = Plan {
        host: args.lossy(1),
        port: args.lossy(2),
        db,
        timeout: Duration::from_millis(timeout),
        copy,
        replace,
        auth,
    };
    let shared = Arc::clone(ctx.shared);
    Ok(Outcome::Async(Box::pin(async move {
        let mut out = BytesMut::new();
        match run(&shared, &plan, items).await {
            Ok(()) => encode::simple(&mut out, "OK"),
            Err(text) => encode::error(&mut out, &text),
        }
        out.freeze()
    })))
}

/// The exchange with the target; `Err` is the error reply's text.
async fn run(shared: &Arc<Shared>, plan: &Plan, mut items: Vec<Item>) -> Result<(), String> {
    let port: u16 = plan.port.parse().map_err(|_| CONNECT_ERROR.to_string())?;
    let stream = tokio::time::timeout(plan.timeout, TcpStream::connect((plan.host.as_str(), port)))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| CONNECT_ERROR.to_string())?;
    let _ = stream.set_nodelay(true);
    if is_self(&stream, shared.config.port) {
        // Redis blocks on itself until the timeout; the answer is the same.
        return Err(READ_ERROR.into());
    }
    let mut target = Target {
        stream,
        pending: Bytes::new(),
        timeout: plan.timeout,
    };
    let mut target_error: Option<String> = None;
    for round in 0..MAX_ROUNDS {
        let first = round == 0;
        let mut request = BytesMut::new();
        let mut preamble = 0;
        if first {
            if let Some((user, password)) = &plan.auth {
                let mut auth: Vec<&[u8]> = vec![b"AUTH"];
                auth.extend(user.as_deref());
                auth.push(password);
                encode_command(&mut request, &auth);
                preamble += 1;
            }
            encode_command(&mut request, &[b"SELECT", plan.db.to_string().as_bytes()]);
            preamble += 1;
        }
        // Keys sent again are already on the target: replace them.
        let replace = plan.replace || !first;
        for item in &items {
            encode_item(&mut request, item, replace);
        }
        target.write(&request).await?;

        let mut preamble_error = None;
        for _ in 0..preamble {
            if let Frame::Error(e) = target.next().await? {
                preamble_error.get_or_insert(e);
            }
        }
        let mut acked = Vec::new();
        let mut socket_error = false;
        for item in items {
            let reply = match item.state {
                Some(_) => target.next().await,
                // ASKING, then DEL: the DEL's reply decides.
                None => match target.next().await {
                    Ok(Frame::Error(e)) => Ok(Frame::Error(e)),
                    Ok(_) => target.next().await,
                    Err(e) => Err(e),
                },
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(_) => {
                    socket_error = true;
                    break;
                }
            };
            let error = match (&preamble_error, reply) {
                (Some(e), _) => Some(e.clone()),
                (None, Frame::Error(e)) => Some(e),
                (None, _) => None,
            };
            match error {
                Some(e) => {
                    target_error.get_or_insert_with(|| {
                        format!(
                            "ERR Target instance replied with error: {}",
                            String::from_utf8_lossy(&e)
                        )
                    });
                }
                None => acked.push(item),
            }
        }
        // Keys the target holds now are deleted here (unless COPY), even
        // if a later reply failed, as Redis does.
        items = if plan.copy {
            Vec::new()
        } else {
            settle(shared, acked)
        };
        if socket_error {
            return Err(READ_ERROR.into());
        }
        if items.is_empty() {
            break;
        }
        if round + 1 == MAX_ROUNDS {
            target_error.get_or_insert_with(|| {
                "ERR MIGRATE gave up: the keys kept being written while they were migrated".into()
            });
        }
    }
    target_error.map_or(Ok(()), Err)
}

/// True if `stream` leads back to this node: restoring a key onto itself
/// and then deleting it "because it moved" would lose it.
fn is_self(stream: &TcpStream, my_port: u16) -> bool {
    match (stream.peer_addr(), stream.local_addr()) {
        (Ok(peer), Ok(local)) => peer.port() == my_port && peer.ip() == local.ip(),
        _ => false,
    }
}

/// Under the node lock: deletes the acknowledged keys that are still what
/// was sent, and returns those that changed meanwhile, with their state
/// now, to be sent again.
fn settle(shared: &Shared, acked: Vec<Item>) -> Vec<Item> {
    let mut node = shared.lock();
    node.db.set_clock(unix_ms());
    let mut again = Vec::new();
    for item in acked {
        let now = snapshot(&mut node.db, &item.key);
        let same = match (&now, &item.state) {
            (Some(a), Some(b)) => a.payload == b.payload && a.expires_at == b.expires_at,
            (None, None) => true,
            _ => false,
        };
        if !same {
            again.push(Item {
                key: item.key,
                state: now,
            });
        } else if item.state.is_some() {
            node.db.remove(&item.key);
            node.events.touched(&item.key);
            node.stats.dirty += 1;
            // The key left this node: its replicas drop it too.
            node.feed.push(&[b"DEL", &item.key]);
        }
    }
    again
}

fn encode_item(out: &mut BytesMut, item: &Item, replace: bool) {
    match &item.state {
        Some(state) => {
            let ttl = state.ttl.to_string();
            let mut parts: Vec<&[u8]> =
                vec![b"RESTORE-ASKING", &item.key, ttl.as_bytes(), &state.payload];
            if replace {
                parts.push(b"REPLACE");
            }
            encode_command(out, &parts);
        }
        None => {
            encode_command(out, &[b"ASKING"]);
            encode_command(out, &[b"DEL", &item.key]);
        }
    }
}

/// The connection to the target, every operation bounded by the timeout.
struct Target {
    stream: TcpStream,
    /// Bytes read and not yet parsed.
    pending: Bytes,
    timeout: Duration,
}

impl Target {
    async fn write(&mut self, data: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(WRITE_ERROR.into()),
        }
    }

    /// The next reply.
    async fn next(&mut self) -> Result<Frame, String> {
        loop {
            match Frame::parse(&self.pending) {
                Ok(Some((frame, len))) => {
                    self.pending = self.pending.slice(len..);
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(_) => return Err(READ_ERROR.into()),
            }
            let mut chunk = BytesMut::with_capacity(16 * 1024);
            chunk.extend_from_slice(&self.pending);
            match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.pending = chunk.freeze(),
                _ => return Err(READ_ERROR.into()),
            }
        }
    }
}
