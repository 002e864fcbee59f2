//! Routing: from a request to what the proxy does with it. A pure function
//! of the request and the command table; no I/O, no clock, no topology.
//!
//! How each command is handled is data ([`handling`]): a short list of
//! exceptions, and a default derived from the table's flags and key specs.

use crate::cluster::redirect::CROSSSLOT;
use crate::cluster::{SLOT_COUNT, key_slot};
use crate::command::{self, BeginSearch, CommandError, CommandSpec, FindKeys, Learned, flags};
use crate::resp::Request;
use crate::resp::request::parse_int;

/// How a split command's partial replies are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// MGET: the values, back in argument order.
    Values,
    /// MSET: `+OK` once every part succeeded.
    Ok,
    /// DEL, UNLINK, EXISTS, TOUCH: the sum of the integers.
    Sum,
}

/// How the replies of a command sent to every master are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// DBSIZE: the sum of the integers.
    Sum,
    /// FLUSHALL, FLUSHDB: `+OK` once every master said so.
    AllOk,
    /// KEYS: every master's keys in one array, each key once.
    Keys,
}

/// What the proxy does with a command, before looking at its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Forwarded to the master owning the slot of its keys (all keys must
    /// share one slot, else CROSSSLOT).
    ByKey,
    /// XREAD and XREADGROUP: by key, on a dedicated connection when a BLOCK
    /// option makes the request blocking.
    ByKeyUnlessBlock,
    /// A blocking command: by key, on a dedicated connection of its own.
    Blocking,
    /// Transactions and RESET: the session's own state, kept by the proxy
    /// (and a pinned connection for WATCH).
    Session,
    /// (Un)subscribing: the session turns subscriber, on dedicated
    /// connections (shard channels by their slot).
    Subscribe,
    /// PUBSUB CHANNELS, NUMSUB, SHARDCHANNELS, SHARDNUMSUB: asked of every
    /// master, merged.
    PubsubIntrospect,
    /// EVALSHA, EVALSHA_RO: by key, and a NOSCRIPT is healed from the
    /// proxy's script cache.
    EvalSha,
    /// SCRIPT LOAD/FLUSH/EXISTS/KILL, FUNCTION LOAD/DELETE/FLUSH/RESTORE/KILL:
    /// sent to every master, merged.
    ScriptAdmin,
    /// CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT: to the master of the
    /// slot given as first argument (a slot number, not a key).
    BySlotArgument,
    /// Split per slot, sent concurrently, merged. `group` is the number of
    /// arguments that travel with each key (2 for MSET's key/value pairs).
    Split { merge: Merge, group: usize },
    /// Keyless; every master answers alike, so one is asked.
    AnyMaster,
    /// Sent to every master, the replies combined as [`Fanout`] says.
    AllMasters(Fanout),
    /// SCAN: every master in turn, the cursor naming the master and its own
    /// cursor.
    Scan,
    /// RANDOMKEY: a random master, then the others while they are empty.
    RandomMaster,
    /// Sent to every node, masters and replicas; `+OK` once all agree
    /// (CONFIG SET).
    AllNodes,
    /// Answered by the proxy itself.
    Local,
    /// WAIT: the replicas that acknowledged this client's writes, read from
    /// the masters it wrote to ([`super::wait`]).
    Wait,
    /// Not served through the proxy (yet), with the reason given to clients.
    Unsupported(&'static str),
}

const SCRIPT_DEBUG: &str =
    "debugs a script interactively on one node; send it to the node directly";
const NODE_ADMIN: &str = "administers a single node; send it to the node directly";
const KEYLESS: &str = "has no key to route by, and this proxy does not serve it yet";
const LEARNED_KEYLESS: &str = "is not in this proxy's command table, and the cluster's \
     COMMAND INFO gives it no key to route by";
const LEARNED_UNKNOWN_KEYS: &str = "is not in this proxy's command table, and the cluster's \
     COMMAND INFO does not say where all its keys are";

/// The handling of the command named `name` (lower case, subcommands as
/// `container|sub`), given its table entry.
pub fn handling(spec: &CommandSpec) -> Handling {
    use Handling::*;
    match spec.name {
        "mget" => Split {
            merge: Merge::Values,
            group: 1,
        },
        "mset" => Split {
            merge: Merge::Ok,
            group: 2,
        },
        "del" | "unlink" | "exists" | "touch" => Split {
            merge: Merge::Sum,
            group: 1,
        },
        "ping" | "echo" | "quit" | "select" | "hello" | "info" | "auth" | "readonly"
        | "readwrite" | "client|setname" | "client|getname" | "client|id" | "client|info"
        | "client|list" | "client|kill" | "client|setinfo" | "client|no-evict" | "client|reply"
        | "client|unblock" | "client|pause" | "client|unpause" | "role" => Local,
        // The proxy presents itself as a cluster of its own (emulation.rs).
        "cluster|keyslot" | "cluster|slots" | "cluster|shards" | "cluster|nodes"
        | "cluster|info" | "cluster|myid" | "cluster|replicas" | "cluster|slaves"
        | "cluster|links" => Local,
        "cluster|countkeysinslot" | "cluster|getkeysinslot" => BySlotArgument,
        "dbsize" => AllMasters(Fanout::Sum),
        "flushall" | "flushdb" => AllMasters(Fanout::AllOk),
        "keys" => AllMasters(Fanout::Keys),
        "scan" => Scan,
        "randomkey" => RandomMaster,
        "config|set" | "config|resetstat" | "config|rewrite" => AllNodes,
        "command"
        | "command|help"
        | "config|help"
        | "object|help"
        | "memory|help"
        | "xinfo|help"
        | "xgroup|help"
        | "command|count"
        | "command|info"
        | "command|docs"
        | "command|list"
        | "command|getkeys"
        | "command|getkeysandflags"
        | "config|get"
        | "time"
        | "lastsave" => AnyMaster,
        "multi" | "exec" | "discard" | "watch" | "unwatch" | "reset" => Session,
        "evalsha" | "evalsha_ro" => EvalSha,
        "script|load" | "script|flush" | "script|exists" | "script|kill" | "function|load"
        | "function|delete" | "function|flush" | "function|restore" | "function|kill" => {
            ScriptAdmin
        }
        "script|help" | "function|help" | "function|list" | "function|dump" | "function|stats" => {
            AnyMaster
        }
        "script|debug" => Unsupported(SCRIPT_DEBUG),
        "wait" => Wait,
        "migrate" | "monitor" | "sync" | "psync" | "replconf" | "debug" | "shutdown"
        | "failover" | "replicaof" | "slaveof" => Unsupported(NODE_ADMIN),
        "xread" | "xreadgroup" => ByKeyUnlessBlock,
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ssubscribe"
        | "sunsubscribe" => Subscribe,
        // "Any master" is the pub/sub home (Topology::home), where every
        // subscriber's channels and patterns are: PUBLISH counts them all.
        "publish" | "pubsub|help" => AnyMaster,
        "pubsub|numpat" => AllMasters(Fanout::Sum),
        "pubsub|channels" | "pubsub|numsub" | "pubsub|shardchannels" | "pubsub|shardnumsub" => {
            PubsubIntrospect
        }
        _ if spec.has_flag(flags::LEARNED) => learned_handling(spec),
        _ if spec.has_flag(flags::BLOCKING) => Blocking,
        _ if !spec.key_specs.is_empty() => ByKey,
        _ => Unsupported(KEYLESS),
    }
}

/// A command learned from the cluster's `COMMAND INFO` is forwarded by key
/// only when its key specs find every key; anything else would be a guess.
fn learned_handling(spec: &CommandSpec) -> Handling {
    if spec.key_specs.is_empty() {
        return Handling::Unsupported(LEARNED_KEYLESS);
    }
    let complete = spec.key_specs.iter().all(|ks| {
        ks.begin != BeginSearch::Unknown
            && ks.find != FindKeys::Unknown
            && !ks
                .flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case("incomplete"))
    });
    if complete {
        Handling::ByKey
    } else {
        Handling::Unsupported(LEARNED_UNKNOWN_KEYS)
    }
}

/// The command support matrix, as Markdown: every command and subcommand
/// of the table, grouped by how the proxy handles it. The README carries it,
/// and a test keeps the two equal.
pub fn support_matrix() -> String {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
    for spec in command::all_commands().chain(PROXY_COMMANDS.iter()) {
        // A container (CONFIG, CLUSTER...) is described by its subcommands.
        if spec.is_container() {
            continue;
        }
        let (rank, what) = match handling(spec) {
            Handling::ByKey => (
                0,
                "Forwarded to the master of the keys' slot (all keys in one slot, else CROSSSLOT)"
                    .to_string(),
            ),
            Handling::ByKeyUnlessBlock => (
                0,
                "Forwarded to the master of the keys' slot; with BLOCK, on a dedicated connection"
                    .to_string(),
            ),
            Handling::Blocking => (
                0,
                "Blocking: on a dedicated connection to the master of the keys' slot (all keys in one slot, else CROSSSLOT)"
                    .to_string(),
            ),
            Handling::Subscribe => (
                2,
                "Subscribed mode: on dedicated connections, channels and patterns to the master PUBLISH goes to (so it counts every subscriber), shard channels to their slot's master; resubscribed when a connection dies or a slot moves"
                    .to_string(),
            ),
            Handling::PubsubIntrospect | Handling::ScriptAdmin => (
                4,
                "Sent to every master, replies merged".to_string(),
            ),
            Handling::EvalSha => (
                0,
                "Forwarded to the master of the keys' slot (any master without keys); a NOSCRIPT is healed from the scripts SCRIPT LOAD gave the proxy"
                    .to_string(),
            ),
            Handling::Session => (
                2,
                "Session state: transactions queued by the proxy and run on a dedicated connection to the master of their slot"
                    .to_string(),
            ),
            Handling::BySlotArgument => (
                0,
                "Forwarded to the master of the slot given as argument".to_string(),
            ),
            Handling::Split { .. } => (1, "Split per slot, sent concurrently, merged".to_string()),
            Handling::Local => (2, "Answered by the proxy".to_string()),
            Handling::Wait => (
                2,
                "Runs alone: counts, on every master this client wrote to, the replicas that acknowledged the master's offset after those writes; the smallest count".to_string(),
            ),
            Handling::AnyMaster => (3, "Keyless, answered by one master".to_string()),
            Handling::AllMasters(Fanout::Sum) => {
                (4, "Sent to every master, replies summed".to_string())
            }
            Handling::AllMasters(Fanout::AllOk) => (
                4,
                "Sent to every master, +OK once every master agrees".to_string(),
            ),
            Handling::AllMasters(Fanout::Keys) => (
                4,
                "Sent to every master, keys merged (each once)".to_string(),
            ),
            Handling::Scan => (
                4,
                "Walks every master in turn; the cursor names the master and its own cursor"
                    .to_string(),
            ),
            Handling::RandomMaster => (
                4,
                "Sent to a random master (the others in turn while it is empty)".to_string(),
            ),
            Handling::AllNodes => (
                5,
                "Sent to every node, masters and replicas; +OK once every node agrees"
                    .to_string(),
            ),
            Handling::Unsupported(why) => (6, format!("Refused: the command {why}")),
        };
        groups
            .entry((rank, what))
            .or_default()
            .push(spec.name.replace('|', " ").to_uppercase());
    }
    let mut out = String::new();
    for ((_, what), names) in groups {
        out.push_str(&format!(
            "- **{what}** ({}): {}\n",
            names.len(),
            names.join(", ")
        ));
    }
    out
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To the master of this slot.
    Slot {
        slot: u16,
        readonly: bool,
    },
    Split {
        merge: Merge,
        group: usize,
        first_key: usize,
        readonly: bool,
    },
    AnyMaster {
        readonly: bool,
    },
    AllMasters {
        how: Fanout,
        readonly: bool,
    },
    Scan,
    RandomMaster,
    AllNodes,
    Local,
    /// On a dedicated connection to the master of this slot (a blocking
    /// command).
    Blocking {
        slot: u16,
        readonly: bool,
    },
    /// The session's own state (MULTI, EXEC, WATCH ...); `slot` is WATCH's.
    Session {
        slot: Option<u16>,
    },
    /// (Un)subscribing: the session turns subscriber.
    Subscribe,
    /// Asked of every master, merged (PUBSUB CHANNELS ...).
    PubsubIntrospect,
    /// EVALSHA to the master of this slot (any master without one).
    EvalSha {
        slot: Option<u16>,
        readonly: bool,
    },
    /// SCRIPT/FUNCTION administration, to every master.
    ScriptAdmin,
    /// WAIT, after every earlier reply.
    Wait,
    /// Answered at once with this error (without the leading `-`).
    Error(String),
}

/// Routes `req`, returning its table entry (when it has one) too. Errors
/// (unknown command, arity, CROSSSLOT, unsupported) come back as
/// [`Route::Error`] with Redis's wording.
pub fn route(req: &Request) -> (Option<&'static CommandSpec>, Route) {
    route_with(req, Learned::none)
}

/// [`route`], also knowing the commands learned from the cluster (those the
/// table lacks). The table is looked at first; `learned` is only called for
/// a command the table does not know, so a known command costs nothing more.
pub fn route_with<L: std::ops::Deref<Target = Learned>>(
    req: &Request,
    learned: impl FnOnce() -> L,
) -> (Option<&'static CommandSpec>, Route) {
    match command::lookup(req) {
        Ok(spec) => (Some(spec), route_known(spec, req)),
        Err(err) => match learned_lookup(req, &err, &learned()) {
            Some(Ok(spec)) => (Some(spec), route_known(spec, req)),
            Some(Err(arity)) => (None, Route::Error(arity.to_string())),
            None => match own_lookup(req) {
                Some(spec) if spec.arity_ok(req.len()) => (Some(spec), route_known(spec, req)),
                Some(spec) => (
                    None,
                    Route::Error(CommandError::WrongArity(spec.name.to_string()).to_string()),
                ),
                None => (None, Route::Error(err.to_string())),
            },
        },
    }
}

/// Commands newer than the table's Redis that the proxy answers itself
/// whatever its backends run: client libraries send CLIENT SETINFO on
/// connect.
static PROXY_COMMANDS: [CommandSpec; 1] = [CommandSpec {
    name: "client|setinfo",
    arity: 4,
    flags: flags::NOSCRIPT | flags::LOADING | flags::STALE,
    first_key: 0,
    last_key: 0,
    step: 0,
    tips: &[],
    key_specs: &[],
    subcommands: &[],
}];

/// The proxy's own entry for a request neither the table nor the cluster
/// knows.
fn own_lookup(req: &Request) -> Option<&'static CommandSpec> {
    let name = format!(
        "{}|{}",
        String::from_utf8_lossy(req.name()).to_lowercase(),
        String::from_utf8_lossy(req.arg(1).unwrap_or_default()).to_lowercase()
    );
    PROXY_COMMANDS.iter().find(|spec| spec.name == name)
}

/// The learned entry for a request the table does not know: an unknown
/// command, or an unknown subcommand of a known container.
fn learned_lookup(
    req: &Request,
    err: &CommandError,
    learned: &Learned,
) -> Option<Result<&'static CommandSpec, CommandError>> {
    if learned.is_empty() {
        return None;
    }
    let spec = match err {
        CommandError::Unknown(_) => {
            let spec = learned.get(&String::from_utf8_lossy(req.name()))?;
            match (spec.is_container(), req.arg(1)) {
                (true, Some(sub)) => command::lookup_subcommand(spec, sub)?,
                _ => spec,
            }
        }
        CommandError::UnknownSubcommand { .. } => {
            let name = format!(
                "{}|{}",
                String::from_utf8_lossy(req.name()),
                String::from_utf8_lossy(req.arg(1).unwrap_or_default())
            );
            learned.get(&name)?
        }
        CommandError::WrongArity(_) => return None,
    };
    if spec.arity_ok(req.len()) {
        Some(Ok(spec))
    } else {
        Some(Err(CommandError::WrongArity(spec.name.to_string())))
    }
}

fn route_known(spec: &'static CommandSpec, req: &Request) -> Route {
    let readonly = spec.has_flag(flags::READONLY) && !spec.has_flag(flags::WRITE);
    match handling(spec) {
        Handling::Local => Route::Local,
        Handling::Wait => Route::Wait,
        Handling::AnyMaster => Route::AnyMaster { readonly },
        Handling::AllMasters(how) => Route::AllMasters { how, readonly },
        Handling::Scan => Route::Scan,
        Handling::RandomMaster => Route::RandomMaster,
        Handling::AllNodes => Route::AllNodes,
        Handling::Unsupported(why) => Route::Error(format!(
            "ERR '{}' {why}",
            spec.name.replace('|', " ").to_uppercase()
        )),
        Handling::Split { merge, group } => {
            let keys = match spec.keys(req) {
                Ok(k) => k,
                Err(err) => return Route::Error(err.to_string()),
            };
            let positions = keys.as_slice();
            // MSET's arity check passes `MSET k v k`; Redis answers that too.
            if group > 1 && (req.len() - 1) % group != 0 {
                return Route::Error(format!(
                    "ERR wrong number of arguments for '{}' command",
                    spec.name
                ));
            }
            match single_slot(req, positions) {
                Ok(Some(slot)) => Route::Slot { slot, readonly },
                Ok(None) => Route::AnyMaster { readonly },
                Err(()) => Route::Split {
                    merge,
                    group,
                    first_key: positions.first().copied().unwrap_or(1),
                    readonly,
                },
            }
        }
        Handling::Session => match by_key(spec, req, readonly) {
            Route::Slot { slot, .. } => Route::Session { slot: Some(slot) },
            Route::AnyMaster { .. } => Route::Session { slot: None },
            other => other,
        },
        Handling::Blocking => blocking(by_key(spec, req, readonly)),
        // SSUBSCRIBE's channels must share a slot, as keys do.
        Handling::Subscribe => match by_key(spec, req, readonly) {
            Route::Error(text) => Route::Error(text),
            _ => Route::Subscribe,
        },
        Handling::PubsubIntrospect => Route::PubsubIntrospect,
        Handling::ScriptAdmin => Route::ScriptAdmin,
        Handling::EvalSha => match by_key(spec, req, readonly) {
            Route::Slot { slot, readonly } => Route::EvalSha {
                slot: Some(slot),
                readonly,
            },
            Route::AnyMaster { readonly } => Route::EvalSha {
                slot: None,
                readonly,
            },
            other => other,
        },
        Handling::ByKeyUnlessBlock if has_block_option(req) => {
            blocking(by_key(spec, req, readonly))
        }
        Handling::ByKey | Handling::ByKeyUnlessBlock => by_key(spec, req, readonly),
        Handling::BySlotArgument => by_slot_argument(spec, req),
    }
}

/// The master of the slot CLUSTER COUNTKEYSINSLOT/GETKEYSINSLOT names. A
/// bad slot has no master to answer it, so its error (Redis's, in Redis's
/// order: both numbers parsed, then the ranges checked) is given here; a
/// bad count with a good slot is left to the master. Both only read.
fn by_slot_argument(spec: &CommandSpec, req: &Request) -> Route {
    const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    let with_count = spec.name == "cluster|getkeysinslot";
    let Some(slot) = req.arg(2).and_then(parse_int) else {
        return Route::Error(NOT_INTEGER.to_string());
    };
    if with_count && req.arg(3).and_then(parse_int).is_none() {
        return Route::Error(NOT_INTEGER.to_string());
    }
    match u16::try_from(slot) {
        Ok(slot) if usize::from(slot) < SLOT_COUNT => Route::Slot {
            slot,
            readonly: true,
        },
        _ if with_count => Route::Error("ERR Invalid slot or number of keys".to_string()),
        _ => Route::Error("ERR Invalid slot".to_string()),
    }
}

/// The master of the keys' slot; any master without keys.
fn by_key(spec: &'static CommandSpec, req: &Request, readonly: bool) -> Route {
    let keys = match spec.keys(req) {
        Ok(k) => k,
        Err(err) => return Route::Error(err.to_string()),
    };
    match single_slot(req, keys.as_slice()) {
        Ok(Some(slot)) => Route::Slot { slot, readonly },
        // No key in this request (optional keys): any master will do.
        Ok(None) => Route::AnyMaster { readonly },
        Err(()) => Route::Error(CROSSSLOT.to_string()),
    }
}

/// A keyed route, made blocking. (Every blocking command has a key.)
fn blocking(route: Route) -> Route {
    match route {
        Route::Slot { slot, readonly } => Route::Blocking { slot, readonly },
        other => other,
    }
}

/// True when an XREAD/XREADGROUP request has a BLOCK option: the word
/// BLOCK among the options, before STREAMS (after it come keys and IDs,
/// which may be called anything; XREADGROUP's group and consumer names come
/// first and may too).
fn has_block_option(req: &Request) -> bool {
    stream_options(req).any(|a| a.eq_ignore_ascii_case(b"BLOCK"))
}

/// The value of an XREAD/XREADGROUP request's BLOCK option (milliseconds),
/// if it has one.
pub(super) fn block_option(req: &Request) -> Option<&[u8]> {
    let mut options = stream_options(req);
    options.find(|a| a.eq_ignore_ascii_case(b"BLOCK"))?;
    options.next()
}

/// The options of an XREAD/XREADGROUP request, up to STREAMS.
fn stream_options(req: &Request) -> impl Iterator<Item = &[u8]> + '_ {
    let first_option = if req.name().eq_ignore_ascii_case(b"xreadgroup") {
        4
    } else {
        1
    };
    req.args()
        .skip(first_option)
        .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
}

/// The one slot all keys share; `Ok(None)` without keys, `Err` if they span
/// slots.
fn single_slot(req: &Request, positions: &[usize]) -> Result<Option<u16>, ()> {
    let mut slot = None;
    for &pos in positions {
        let s = key_slot(req.arg(pos).unwrap_or_default());
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Err(()),
            Some(_) => {}
        }
    }
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[&str]) -> Route {
        route(&Request::from_args(args)).1
    }

    #[test]
    fn keyed_commands_go_to_their_slot() {
        assert_eq!(
            r(&["GET", "foo"]),
            Route::Slot {
                slot: 12182,
                readonly: true
            }
        );
        assert_eq!(
            r(&["set", "foo", "1"]),
            Route::Slot {
                slot: 12182,
                readonly: false
            }
        );
    }

    #[test]
    fn multi_key_commands_split_only_across_slots() {
        assert_eq!(
            r(&["MGET", "{a}1", "{a}2"]),
            Route::Slot {
                slot: key_slot(b"a"),
                readonly: true
            }
        );
        assert_eq!(
            r(&["MGET", "a", "b"]),
            Route::Split {
                merge: Merge::Values,
                group: 1,
                first_key: 1,
                readonly: true
            }
        );
        assert_eq!(
            r(&["MSET", "a", "1", "b", "2"]),
            Route::Split {
                merge: Merge::Ok,
                group: 2,
                first_key: 1,
                readonly: false
            }
        );
        assert_eq!(
            r(&["MSET", "a", "1", "b"]),
            Route::Error("ERR wrong number of arguments for 'mset' command".into())
        );
        assert_eq!(
            r(&["DEL", "a", "b"]),
            Route::Split {
                merge: Merge::Sum,
                group: 1,
                first_key: 1,
                readonly: false
            }
        );
    }

    #[test]
    fn atomic_multi_key_commands_are_never_split() {
        for args in [
            &["MSETNX", "a", "1", "b", "2"][..],
            &["RENAME", "a", "b"],
            &["SMOVE", "a", "b", "m"],
            &["SUNIONSTORE", "d", "a", "b"],
            &["LMOVE", "a", "b", "LEFT", "RIGHT"],
            &["ZUNIONSTORE", "d", "2", "a", "b"],
        ] {
            assert_eq!(r(args), Route::Error(CROSSSLOT.into()), "{args:?}");
        }
        assert_eq!(
            r(&["RENAME", "{u}a", "{u}b"]),
            Route::Slot {
                slot: key_slot(b"u"),
                readonly: false
            }
        );
    }

    #[test]
    fn keyless_and_session_commands() {
        assert_eq!(
            r(&["DBSIZE"]),
            Route::AllMasters {
                how: Fanout::Sum,
                readonly: true
            }
        );
        assert_eq!(
            r(&["KEYS", "*"]),
            Route::AllMasters {
                how: Fanout::Keys,
                readonly: true
            }
        );
        assert_eq!(
            r(&["FLUSHALL", "ASYNC"]),
            Route::AllMasters {
                how: Fanout::AllOk,
                readonly: false
            }
        );
        assert_eq!(r(&["SCAN", "0", "COUNT", "5"]), Route::Scan);
        assert_eq!(r(&["RANDOMKEY"]), Route::RandomMaster);
        assert_eq!(r(&["CONFIG", "SET", "maxmemory", "0"]), Route::AllNodes);
        assert_eq!(r(&["CLUSTER", "SLOTS"]), Route::Local);
        assert_eq!(r(&["OBJECT", "HELP"]), Route::AnyMaster { readonly: false });
        assert_eq!(r(&["PING"]), Route::Local);
        assert_eq!(r(&["ROLE"]), Route::Local);
        assert_eq!(r(&["info", "keyspace"]), Route::Local);
        assert_eq!(r(&["CLUSTER", "KEYSLOT", "foo"]), Route::Local);
        assert_eq!(
            r(&["CONFIG", "GET", "save"]),
            Route::AnyMaster { readonly: false }
        );
        assert_eq!(r(&["MULTI"]), Route::Session { slot: None });
        assert_eq!(
            r(&["WATCH", "{a}1", "{a}2"]),
            Route::Session {
                slot: Some(key_slot(b"a"))
            }
        );
        assert_eq!(r(&["WATCH", "a", "b"]), Route::Error(CROSSSLOT.into()));
        assert_eq!(
            r(&["BLPOP", "l", "0"]),
            Route::Blocking {
                slot: key_slot(b"l"),
                readonly: false
            }
        );
        assert_eq!(r(&["BLPOP", "a", "b", "0"]), Route::Error(CROSSSLOT.into()));
        assert_eq!(r(&["SUBSCRIBE", "c"]), Route::Subscribe);
        assert_eq!(r(&["SSUBSCRIBE", "{a}1", "{a}2"]), Route::Subscribe);
        assert_eq!(r(&["SSUBSCRIBE", "a", "b"]), Route::Error(CROSSSLOT.into()));
        assert_eq!(
            r(&["SPUBLISH", "c", "m"]),
            Route::Slot {
                slot: key_slot(b"c"),
                readonly: false
            }
        );
        assert_eq!(
            r(&["EVAL", "return 1", "2", "{a}1", "{a}2"]),
            Route::Slot {
                slot: key_slot(b"a"),
                readonly: false
            }
        );
        assert_eq!(
            r(&["EVAL", "return 1", "0"]),
            Route::AnyMaster { readonly: false }
        );
        assert_eq!(
            r(&["EVAL", "return 1", "2", "a", "b"]),
            Route::Error(CROSSSLOT.into())
        );
        assert_eq!(
            r(&["EVALSHA_RO", "abc", "1", "a"]),
            Route::EvalSha {
                slot: Some(key_slot(b"a")),
                readonly: true
            }
        );
        assert_eq!(r(&["SCRIPT", "LOAD", "return 1"]), Route::ScriptAdmin);
        for args in [
            &["MONITOR"][..],
            &["SCRIPT", "DEBUG", "YES"],
            &["SWAPDB", "0", "1"],
        ] {
            match r(args) {
                Route::Error(e) => assert!(e.starts_with(&format!("ERR '{}", args[0])), "{e}"),
                other => panic!("{args:?} routed to {other:?}"),
            }
        }
    }

    #[test]
    fn slot_argument_commands_go_to_that_slot_or_get_redis_errors() {
        let read = |slot| Route::Slot {
            slot,
            readonly: true,
        };
        let err = |text: &str| Route::Error(text.to_string());
        assert_eq!(r(&["CLUSTER", "COUNTKEYSINSLOT", "7"]), read(7));
        assert_eq!(r(&["cluster", "getkeysinslot", "16383", "10"]), read(16383));
        // A bad count with a good slot is the master's to refuse.
        assert_eq!(r(&["CLUSTER", "GETKEYSINSLOT", "0", "-1"]), read(0));
        let not_integer = "ERR value is not an integer or out of range";
        assert_eq!(r(&["CLUSTER", "COUNTKEYSINSLOT", "x"]), err(not_integer));
        assert_eq!(r(&["CLUSTER", "COUNTKEYSINSLOT", "+1"]), err(not_integer));
        assert_eq!(
            r(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]),
            err("ERR Invalid slot")
        );
        assert_eq!(
            r(&["CLUSTER", "COUNTKEYSINSLOT", "-1"]),
            err("ERR Invalid slot")
        );
        assert_eq!(r(&["CLUSTER", "GETKEYSINSLOT", "x", "1"]), err(not_integer));
        assert_eq!(
            r(&["CLUSTER", "GETKEYSINSLOT", "99999", "x"]),
            err(not_integer)
        );
        assert_eq!(
            r(&["CLUSTER", "GETKEYSINSLOT", "16384", "1"]),
            err("ERR Invalid slot or number of keys")
        );
        assert_eq!(
            r(&["CLUSTER", "COUNTKEYSINSLOT"]),
            err("ERR wrong number of arguments for 'cluster|countkeysinslot' command")
        );
    }

    #[test]
    fn stream_reads_route_by_key_unless_they_block() {
        let slot = key_slot(b"s");
        assert_eq!(
            r(&["XREAD", "COUNT", "2", "STREAMS", "s", "0"]),
            Route::Slot {
                slot,
                readonly: true
            }
        );
        assert_eq!(
            r(&["XREAD", "STREAMS", "BLOCK", "0"]),
            Route::Slot {
                slot: key_slot(b"BLOCK"),
                readonly: true
            }
        );
        assert_eq!(
            r(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]),
            Route::Blocking {
                slot,
                readonly: true
            }
        );
        assert_eq!(
            r(&["XREADGROUP", "GROUP", "BLOCK", "c", "STREAMS", "s", ">"]),
            Route::Slot {
                slot,
                readonly: false
            }
        );
        assert_eq!(
            r(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">"
            ]),
            Route::Blocking {
                slot,
                readonly: false
            }
        );
    }

    fn learned() -> Learned {
        use crate::command::learned::{OwnedBegin, OwnedKeySpec, OwnedSpec};
        let spec = |name: &str, arity, key_specs: Vec<OwnedKeySpec>| OwnedSpec {
            name: name.to_string(),
            arity,
            flags: flags::READONLY,
            first_key: 0,
            last_key: 0,
            step: 0,
            tips: vec![],
            key_specs,
            subcommands: vec![],
        };
        let first_key = OwnedKeySpec {
            begin: OwnedBegin::Index(1),
            find: FindKeys::Range {
                last_key: 0,
                step: 1,
                limit: 0,
            },
            flags: vec!["RO".into()],
        };
        let unknown = OwnedKeySpec {
            begin: OwnedBegin::Unknown,
            find: FindKeys::Unknown,
            flags: vec!["RO".into()],
        };
        Learned::default().with(vec![
            spec("my.get", 2, vec![first_key.clone()]),
            spec("my.info", 1, vec![]),
            spec("my.guess", -2, vec![first_key, unknown]),
            spec("client|no-touch", 3, vec![]),
        ])
    }

    fn rl(args: &[&str]) -> Route {
        let learned = learned();
        route_with(&Request::from_args(args), || &learned).1
    }

    #[test]
    fn learned_commands_route_by_their_key_specs_or_are_refused() {
        assert_eq!(
            rl(&["MY.GET", "foo"]),
            Route::Slot {
                slot: 12182,
                readonly: true
            }
        );
        assert_eq!(
            rl(&["my.get"]),
            Route::Error("ERR wrong number of arguments for 'my.get' command".into())
        );
        for (args, why) in [
            (&["my.info"][..], LEARNED_KEYLESS),
            (&["my.guess", "k"], LEARNED_UNKNOWN_KEYS),
            (&["CLIENT", "NO-TOUCH", "on"], LEARNED_KEYLESS),
        ] {
            match rl(args) {
                Route::Error(e) => assert!(e.ends_with(why), "{args:?}: {e}"),
                other => panic!("{args:?} routed to {other:?}"),
            }
        }
        // Unknown to both: Redis's own error.
        assert!(
            matches!(rl(&["nope", "x"]), Route::Error(e) if e.starts_with("ERR unknown command 'nope'"))
        );
        assert!(
            matches!(rl(&["CLIENT", "NOPE"]), Route::Error(e) if e.starts_with("ERR unknown subcommand 'NOPE'"))
        );
    }

    #[test]
    fn errors_use_redis_texts() {
        assert_eq!(
            r(&["GET"]),
            Route::Error("ERR wrong number of arguments for 'get' command".into())
        );
        assert!(
            matches!(r(&["NOPE", "x"]), Route::Error(e) if e.starts_with("ERR unknown command 'NOPE'"))
        );
    }
}
