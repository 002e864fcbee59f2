//! CLIENT subcommands: ID, GETNAME, SETNAME, INFO, LIST, KILL, NO-EVICT,
//! REPLY, GETREDIR, UNBLOCK.
//!
//! CLIENT LIST reads each client's snapshot (refreshed once per batch of
//! its commands) from the node's client registry; the caller's own line is
//! built from its live state. Memory fields are what the node measures:
//! `qbuf` (unparsed input) and `omem` (pushed messages not yet written);
//! the buffer internals Redis reports (`rbs`, `argv-mem`...) are 0.

use std::fmt::Write as _;

use bytes::Bytes;

use super::super::{Args, CmdError, CmdResult, Ctx, Outcome, parse_i64};
use crate::node::client::{ClientHandle, ReplyMode, Snapshot, Unblock};
use crate::node::pubsub::Kind;

/// A name CLIENT SETNAME (and HELLO SETNAME) accepts: `None` clears it.
///
/// # Errors
/// Redis's text for spaces and special characters.
pub fn valid_client_name(name: &[u8]) -> Result<Option<Bytes>, CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::fixed(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok((!name.is_empty()).then(|| Bytes::copy_from_slice(name)))
}

pub fn id(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let id = ctx.client.id as i64;
    ctx.int(id)
}

pub fn getname(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    match ctx.client.name.clone() {
        Some(name) => ctx.bulk(&name),
        None => ctx.nil(),
    }
}

pub fn setname(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.client.name = valid_client_name(args.get(2))?;
    ctx.ok()
}

/// Client types of CLIENT LIST TYPE and CLIENT KILL TYPE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    Pubsub,
}

fn client_type(name: &[u8]) -> Result<ClientType, CmdError> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"slave" | b"replica" => Ok(ClientType::Replica),
        b"master" => Ok(ClientType::Master),
        b"pubsub" => Ok(ClientType::Pubsub),
        _ => Err(CmdError::new(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// The type of a client.
fn type_of(snapshot: &Snapshot) -> ClientType {
    if snapshot.master {
        ClientType::Master
    } else if snapshot.replica {
        ClientType::Replica
    } else if snapshot.pubsub {
        ClientType::Pubsub
    } else {
        ClientType::Normal
    }
}

/// The caller's snapshot, from its live state.
fn own_snapshot(ctx: &Ctx<'_>) -> Snapshot {
    let c = &*ctx.client;
    let mut snap = ctx.client.handle.snapshot().clone();
    snap.name.clone_from(&c.name);
    snap.last_command = c.last_command;
    snap.last_active = std::time::Instant::now();
    snap.multi = c.multi.as_ref().map(|tx| tx.queued.len());
    snap.dirty_cas = c.watch_broken();
    snap.readonly = c.readonly;
    snap.no_evict = c.no_evict;
    snap.pubsub = c.in_pubsub_mode();
    snap
}

/// The snapshot of `handle`: live for the caller, else the last one its
/// connection published.
fn snapshot_of(ctx: &Ctx<'_>, handle: &ClientHandle) -> Snapshot {
    if handle.id == ctx.client.id {
        own_snapshot(ctx)
    } else {
        handle.snapshot().clone()
    }
}

/// One line of CLIENT LIST, as Redis's `getClientInfoString`.
fn client_line(ctx: &Ctx<'_>, handle: &ClientHandle, out: &mut String) {
    let snap = snapshot_of(ctx, handle);
    let mut flags = String::new();
    for (on, flag) in [
        (snap.replica, 'S'),
        (snap.master, 'M'),
        (snap.pubsub, 'P'),
        (snap.multi.is_some(), 'x'),
        (snap.blocked, 'b'),
        (snap.dirty_cas, 'd'),
        (handle.is_killed(), 'A'),
        (snap.readonly, 'r'),
        (snap.no_evict, 'e'),
    ] {
        if on {
            flags.push(flag);
        }
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let pubsub = &ctx.node.pubsub;
    let omem = handle.pushes_pending();
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
         multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} \
         tot-mem={} events=r cmd={} user=default redir=-1 resp=2",
        handle.id,
        addr(handle.addr),
        addr(handle.laddr),
        handle.fd,
        snap.name
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default(),
        handle.created.elapsed().as_secs(),
        snap.last_active.elapsed().as_secs(),
        flags,
        pubsub.count_of(handle.id, Kind::Channel),
        pubsub.count_of(handle.id, Kind::Pattern),
        pubsub.count_of(handle.id, Kind::Shard),
        snap.multi.map_or(-1, |n| n as i64),
        snap.query_buffer,
        omem,
        snap.query_buffer + omem,
        snap.last_command,
    );
}

pub fn info(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let mut text = String::new();
    let handle = std::sync::Arc::clone(&ctx.client.handle);
    client_line(ctx, &handle, &mut text);
    ctx.bulk(text.as_bytes())
}

/// CLIENT LIST [TYPE type] [ID id [id ...]]
pub fn list(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut only_type = None;
    let mut only_ids = None;
    if args.len() == 4 && args.is(2, "type") {
        only_type = Some(client_type(args.get(3))?);
    } else if args.len() > 3 && args.is(2, "id") {
        let ids = args
            .rest(3)
            .map(parse_i64)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CmdError::fixed("ERR Invalid client ID"))?;
        only_ids = Some(ids);
    } else if args.len() != 2 {
        return Err(CmdError::SYNTAX);
    }
    let handles: Vec<_> = ctx.node.clients.iter().cloned().collect();
    let mut text = String::new();
    for handle in handles {
        if only_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&(handle.id as i64)))
        {
            continue;
        }
        if only_type.is_some_and(|t| t != type_of(&snapshot_of(ctx, &handle))) {
            continue;
        }
        client_line(ctx, &handle, &mut text);
    }
    ctx.bulk(text.as_bytes())
}

/// The filters of CLIENT KILL.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    kind: Option<ClientType>,
    addr: Option<String>,
    laddr: Option<String>,
    skip_me: bool,
}

/// CLIENT KILL addr:port (old form: OK or "No such client") or CLIENT KILL
/// with filters (ID, TYPE, ADDR, LADDR, USER, SKIPME; replies with the
/// number killed). A killed client is closed at once; the caller, if it
/// kills itself, gets its reply first.
pub fn kill(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let old_form = args.len() == 3;
    let mut filter = KillFilter {
        skip_me: !old_form,
        ..KillFilter::default()
    };
    if old_form {
        filter.addr = Some(args.lossy(2));
    } else {
        let mut i = 2;
        while i < args.len() {
            let more = i + 1 < args.len();
            let value = args.get(i + 1);
            if args.is(i, "id") && more {
                match parse_i64(value) {
                    Ok(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return Err(CmdError::fixed("ERR client-id should be greater than 0")),
                }
            } else if args.is(i, "type") && more {
                filter.kind = Some(client_type(value)?);
            } else if args.is(i, "addr") && more {
                filter.addr = Some(args.lossy(i + 1));
            } else if args.is(i, "laddr") && more {
                filter.laddr = Some(args.lossy(i + 1));
            } else if args.is(i, "user") && more {
                if value != b"default" {
                    return Err(CmdError::new(format!(
                        "ERR No such user '{}'",
                        args.lossy(i + 1)
                    )));
                }
            } else if args.is(i, "skipme") && more {
                filter.skip_me = match value.to_ascii_lowercase().as_slice() {
                    b"yes" => true,
                    b"no" => false,
                    _ => return Err(CmdError::SYNTAX),
                };
            } else {
                return Err(CmdError::SYNTAX);
            }
            i += 2;
        }
    }
    let to_string = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string());
    let handles: Vec<_> = ctx.node.clients.iter().cloned().collect();
    let mut killed = 0;
    let mut close_me = false;
    for handle in handles {
        let me = handle.id == ctx.client.id;
        let matches = filter
            .addr
            .as_ref()
            .is_none_or(|a| to_string(handle.addr).as_ref() == Some(a))
            && filter
                .laddr
                .as_ref()
                .is_none_or(|a| to_string(handle.laddr).as_ref() == Some(a))
            && filter.id.is_none_or(|id| handle.id == id)
            && filter
                .kind
                .is_none_or(|t| t == type_of(&snapshot_of(ctx, &handle)));
        if !matches || (me && filter.skip_me) {
            continue;
        }
        if me {
            close_me = true;
        } else {
            handle.kill();
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            return Err(CmdError::fixed("ERR No such client"));
        }
        ctx.ok()?;
    } else {
        ctx.int(killed)?;
    }
    Ok(if close_me {
        Outcome::Close
    } else {
        Outcome::Done
    })
}

pub fn no_evict(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.client.no_evict = match args.get(2).to_ascii_lowercase().as_slice() {
        b"on" => true,
        b"off" => false,
        _ => return Err(CmdError::SYNTAX),
    };
    ctx.ok()
}

/// CLIENT REPLY ON|OFF|SKIP; the connection drops the replies.
pub fn reply(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match args.get(2).to_ascii_lowercase().as_slice() {
        b"on" => {
            ctx.client.reply_mode = ReplyMode::On;
            ctx.ok()
        }
        b"off" => {
            ctx.client.reply_mode = ReplyMode::Off;
            Ok(Outcome::Done)
        }
        b"skip" => {
            if ctx.client.reply_mode != ReplyMode::Off {
                ctx.client.reply_mode = ReplyMode::SkipNext;
            }
            Ok(Outcome::Done)
        }
        _ => Err(CmdError::SYNTAX),
    }
}

/// Client-side caching is not offered, so no client redirects it.
/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking
/// command (its timeout reply, or an `-UNBLOCKED` error), with Redis's
/// checks in Redis's order. `:0` when that client is not blocked.
pub fn unblock(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::new(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            args.lossy(1)
        )));
    }
    let how = if args.len() < 4 || args.is(3, "timeout") {
        Unblock::Timeout
    } else if args.is(3, "error") {
        Unblock::Error
    } else {
        return Err(CmdError::fixed(
            "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
        ));
    };
    let id = parse_i64(args.get(2))?;
    let target = u64::try_from(id)
        .ok()
        .and_then(|id| ctx.node.clients.get(id))
        .filter(|c| c.id != ctx.client.id && c.snapshot().blocked)
        .cloned();
    match target {
        Some(target) => {
            // Under the node lock that sees it blocked: the blocked
            // connection takes the request under the same lock.
            target.request_unblock(how);
            ctx.int(1)
        }
        None => ctx.int(0),
    }
}

pub fn getredir(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.int(-1)
}
