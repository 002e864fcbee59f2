//! Connection and server commands: PING, ECHO, SELECT, QUIT, RESET, HELLO,
//! AUTH, TIME, LASTSAVE, DEBUG, the persistence commands, and the
//! per-connection cluster flags ASKING, READONLY, READWRITE. INFO, CONFIG,
//! CLIENT and COMMAND have modules of their own.

mod clients;
mod command;
mod config;
mod info;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome, parse_i64, tx};
use crate::node::client::ReplyMode;
use crate::node::db::unix_ms;
use crate::resp::encode;

pub use clients::valid_client_name;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("ping", ping),
    ("echo", echo),
    ("select", select),
    ("quit", quit),
    ("reset", reset),
    ("hello", hello),
    ("auth", auth),
    ("time", time),
    ("lastsave", lastsave),
    ("debug", debug),
    ("save", save),
    ("bgsave", bgsave),
    ("bgrewriteaof", bgrewriteaof),
    ("asking", asking),
    ("readonly", readonly),
    ("readwrite", readwrite),
    ("info", info::info),
    ("config|get", config::get),
    ("config|set", config::set),
    ("config|resetstat", config::resetstat),
    ("config|rewrite", config::rewrite),
    ("client|id", clients::id),
    ("client|getname", clients::getname),
    ("client|setname", clients::setname),
    ("client|info", clients::info),
    ("client|list", clients::list),
    ("client|kill", clients::kill),
    ("client|no-evict", clients::no_evict),
    ("client|reply", clients::reply),
    ("client|getredir", clients::getredir),
    ("client|unblock", clients::unblock),
    ("command", command::all),
    ("command|count", command::count),
    ("command|info", command::info),
    ("command|docs", command::docs),
    ("command|list", command::list),
    ("command|getkeys", command::getkeys),
    ("command|getkeysandflags", command::getkeysandflags),
];

fn ping(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::fixed(
            "ERR wrong number of arguments for 'ping' command",
        ));
    }
    // In subscribed mode a RESP2 client gets a pub/sub-shaped reply.
    if ctx.client.in_pubsub_mode() {
        ctx.array_header(2);
        encode::bulk(ctx.out, b"pong");
        return ctx.bulk(args.get(1));
    }
    match args.len() {
        1 => ctx.simple("PONG"),
        _ => ctx.bulk(args.get(1)),
    }
}

fn echo(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ctx.bulk(args.get(1))
}

/// A cluster node has only database 0.
fn select(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let db = args.int(1)?;
    if db != 0 {
        return Err(CmdError::fixed("ERR SELECT is not allowed in cluster mode"));
    }
    ctx.ok()
}

fn quit(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.ok()?;
    Ok(Outcome::Close)
}

/// RESET: the connection as it was when it opened (Redis's
/// `clearClientConnectionState`): no transaction, watches or
/// subscriptions, no name, replies on, cluster flags off.
fn reset(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    tx::discard_transaction(ctx.node, ctx.client);
    ctx.node.pubsub.remove_client(ctx.client.id);
    let client = &mut *ctx.client;
    client.subscriptions = 0;
    client.name = None;
    client.asking = false;
    client.readonly = false;
    client.reply_mode = ReplyMode::On;
    client.no_evict = false;
    ctx.simple("RESET")
}

/// The role a client sees in HELLO and INFO.
fn is_replica(ctx: &Ctx<'_>) -> bool {
    ctx.node
        .cluster
        .myself()
        .is_some_and(|me| me.master.is_some())
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]. Only RESP2 is spoken:
/// HELLO 3 gets Redis's refusal for an unknown protocol, on which clients
/// fall back to RESP2.
fn hello(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut i = 1;
    if args.len() > 1 {
        let version = parse_i64(args.get(1)).map_err(|_| {
            CmdError::fixed("ERR Protocol version is not an integer or out of range")
        })?;
        if version != 2 {
            return Err(CmdError::fixed("NOPROTO unsupported protocol version"));
        }
        i = 2;
    }
    let (mut user, mut name) = (None, None);
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args.is(i, "AUTH") && more >= 2 {
            user = Some(args.get(i + 1));
            i += 3;
        } else if args.is(i, "SETNAME") && more >= 1 {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            return Err(CmdError::new(format!(
                "ERR Syntax error in HELLO option '{}'",
                args.lossy(i)
            )));
        }
    }
    if user.is_some_and(|u| u != b"default") {
        return Err(CmdError::fixed(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    }
    if let Some(name) = name {
        ctx.client.name = valid_client_name(name)?;
    }
    let role = if is_replica(ctx) { "replica" } else { "master" };
    ctx.array_header(14);
    for (key, value) in [
        ("server", "redis"),
        ("version", crate::command::REDIS_VERSION),
    ] {
        encode::bulk(ctx.out, key.as_bytes());
        encode::bulk(ctx.out, value.as_bytes());
    }
    encode::bulk(ctx.out, b"proto");
    encode::integer(ctx.out, 2);
    encode::bulk(ctx.out, b"id");
    encode::integer(ctx.out, ctx.client.id as i64);
    for (key, value) in [("mode", "cluster"), ("role", role)] {
        encode::bulk(ctx.out, key.as_bytes());
        encode::bulk(ctx.out, value.as_bytes());
    }
    encode::bulk(ctx.out, b"modules");
    ctx.array_header(0);
    Ok(Outcome::Done)
}

/// The node has no password: it behaves like a server whose default user
/// is `nopass`.
fn auth(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match args.len() {
        2 => Err(CmdError::fixed(
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )),
        3 if args.get(1) == b"default" => ctx.ok(),
        3 => Err(CmdError::fixed(
            "WRONGPASS invalid username-password pair or user is disabled.",
        )),
        _ => Err(CmdError::SYNTAX),
    }
}

fn time(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs().to_string();
    let micros = now.subsec_micros().to_string();
    ctx.bulk_array([secs.as_bytes(), micros.as_bytes()].into_iter())
}

/// Unix time (seconds) the node started: its "last save", since it has
/// never written a snapshot (Redis sets `lastsave` at startup too).
pub(super) fn started_unix_secs(ctx: &Ctx<'_>) -> i64 {
    let uptime = ctx.shared.started.elapsed().as_millis() as i64;
    (unix_ms() - uptime) / 1000
}

fn lastsave(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let at = started_unix_secs(ctx);
    ctx.int(at)
}

/// The leading number of `text`, as C's `strtod` reads it (0 if none).
fn strtod(text: &[u8]) -> f64 {
    // A number is never longer than this; the rest cannot change it.
    let text = String::from_utf8_lossy(text.get(..64).unwrap_or(text));
    let text = text.trim_start();
    (1..=text.len())
        .rev()
        .filter_map(|end| text.get(..end))
        .find_map(|prefix| prefix.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The leading integer of `text`, as C's `atoi` reads it (0 if none).
fn atoi(text: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_start();
    let end = text
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))
        .count();
    text.get(..end).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// DEBUG subcommands of Redis 7.0 the built-in node does not implement.
const DEBUG_UNSUPPORTED: &[&str] = &[
    "segfault",
    "panic",
    "restart",
    "crash-and-recover",
    "assert",
    "log",
    "leak",
    "reload",
    "loadaof",
    "drop-cluster-packet-filter",
    "object",
    "sdslen",
    "ziplist",
    "listpack",
    "quicklist",
    "populate",
    "digest",
    "digest-value",
    "protocol",
    "set-skip-checksum-validation",
    "aof-flush-sleep",
    "replicate",
    "error",
    "structsize",
    "htstats",
    "htstats-key",
    "change-repl-id",
    "stringmatch-len",
    "pause-cron",
    "replybuffer",
    "quicklist-packed-threshold",
    "set-disable-deny-scripts",
    "config-rewrite-force-all",
    "client-eviction",
    "jmap",
    "mallctl",
    "mallctl-str",
];

/// DEBUG SLEEP seconds and DEBUG SET-ACTIVE-EXPIRE 0|1.
fn debug(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let sub = args.lossy(1).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("sleep", 3) => {
            let secs = strtod(args.get(2));
            let pause = Duration::try_from_secs_f64(secs).unwrap_or_default();
            if pause.is_zero() {
                return ctx.ok();
            }
            if ctx.client.in_exec {
                // Already under the node lock: the node stops, as Redis's.
                std::thread::sleep(pause);
                return ctx.ok();
            }
            // Redis's DEBUG SLEEP stops its one thread: no client is
            // served meanwhile (tests use it to make a node unresponsive).
            // The sleep holds the node lock on a blocking thread.
            let shared = Arc::clone(ctx.shared);
            Ok(Outcome::Async(Box::pin(async move {
                let _ = tokio::task::spawn_blocking(move || {
                    let _node = shared.lock();
                    std::thread::sleep(pause);
                })
                .await;
                Bytes::from_static(b"+OK\r\n")
            })))
        }
        ("set-active-expire", 3) => {
            ctx.node.active_expire = atoi(args.get(2)) != 0;
            ctx.ok()
        }
        (name, _) if DEBUG_UNSUPPORTED.contains(&name) || name == "help" => Err(CmdError::new(
            format!("ERR DEBUG {name} is not supported by the built-in node"),
        )),
        _ => Err(CmdError::new(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            args.lossy(1)
        ))),
    }
}

/// The node writes no RDB snapshots: SAVE and BGSAVE say so rather than
/// claim a save that did not happen.
fn save(_ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    Err(CmdError::fixed(
        "ERR SAVE is not supported by the built-in node (it keeps an append-only file instead)",
    ))
}

fn bgsave(_ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    Err(CmdError::fixed(
        "ERR BGSAVE is not supported by the built-in node (it keeps an append-only file instead)",
    ))
}

fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    crate::node::aof::bgrewriteaof(ctx.node).map_err(CmdError::fixed)?;
    ctx.simple("Background append only file rewriting started")
}

fn asking(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.asking = true;
    ctx.ok()
}

fn readonly(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.readonly = true;
    ctx.ok()
}

fn readwrite(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.client.readonly = false;
    ctx.ok()
}

#[cfg(test)]
mod tests {
    use super::{atoi, strtod};

    #[test]
    fn c_number_prefixes() {
        assert_eq!(strtod(b"0.5"), 0.5);
        assert_eq!(strtod(b"2abc"), 2.0);
        assert_eq!(strtod(b"x"), 0.0);
        assert_eq!(strtod(b" 1e1"), 10.0);
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"-3z"), -3);
    }
}
