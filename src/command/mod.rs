//! The command table: what Slotway knows about every Redis command.
//!
//! One static table ([`table::COMMANDS`]) holds each command's arity, flags
//! and key specs, exactly as Redis 7.0 reports them in `COMMAND INFO`; it is
//! the single source of routing facts; commands it lacks can be [`learned`]
//! from a server's own `COMMAND INFO`. [`lookup`] finds a request's entry
//! (resolving subcommands such as `CONFIG GET`) and checks its arity;
//! [`CommandSpec::keys`] lists the positions of its keys.

mod keys;
pub mod learned;
mod lookup;
mod reply_shape;
mod table;
#[cfg(test)]
mod tests;

pub use keys::{KeyError, KeyPositions};
pub use learned::Learned;
pub use lookup::{all_commands, lookup_name, lookup_subcommand};
pub use reply_shape::reply_shape;
pub use table::{COMMANDS, REDIS_VERSION};

use crate::resp::Request;

/// Command flags, as bits (Redis's `COMMAND INFO` flags that matter here).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const ADMIN: u32 = 1 << 2;
    pub const PUBSUB: u32 = 1 << 3;
    pub const BLOCKING: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    pub const FAST: u32 = 1 << 8;
    pub const NO_MULTI: u32 = 1 << 9;
    pub const MOVABLEKEYS: u32 = 1 << 10;
    pub const DENYOOM: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const ALLOW_BUSY: u32 = 1 << 13;
    pub const SKIP_SLOWLOG: u32 = 1 << 14;
    pub const SKIP_MONITOR: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    /// Accepted on an importing slot after ASKING (`restore-asking`).
    pub const ASKING: u32 = 1 << 18;
    /// A module's command (none in a stock server's table, but a backend's
    /// `COMMAND` may list some).
    pub const MODULE: u32 = 1 << 19;
    /// Not from the static table: learned from a backend's `COMMAND INFO`
    /// (a proxy-side mark, never printed).
    pub const LEARNED: u32 = 1 << 20;

    /// Every flag with the name `COMMAND INFO` gives it, in the order Redis
    /// lists them (`addReplyCommandFlags`, server.c).
    pub const NAMES: &[(&str, u32)] = &[
        ("write", WRITE),
        ("readonly", READONLY),
        ("denyoom", DENYOOM),
        ("module", MODULE),
        ("admin", ADMIN),
        ("pubsub", PUBSUB),
        ("noscript", NOSCRIPT),
        ("blocking", BLOCKING),
        ("loading", LOADING),
        ("stale", STALE),
        ("skip_monitor", SKIP_MONITOR),
        ("skip_slowlog", SKIP_SLOWLOG),
        ("asking", ASKING),
        ("fast", FAST),
        ("no_auth", NO_AUTH),
        ("no_mandatory_keys", NO_MANDATORY_KEYS),
        ("no_async_loading", NO_ASYNC_LOADING),
        ("no_multi", NO_MULTI),
        ("movablekeys", MOVABLEKEYS),
        ("allow_busy", ALLOW_BUSY),
    ];

    /// The names of the flags set in `bits`, in [`NAMES`] order.
    pub fn names(bits: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .filter(move |(_, bit)| bits & bit != 0)
            .map(|(name, _)| *name)
    }
}

/// Where the search for a key spec's keys begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index (0 is the command name).
    Index(usize),
    /// After the first (or, for a negative `start_from`, last) occurrence of
    /// `keyword`, searching from `start_from`.
    Keyword {
        keyword: &'static str,
        start_from: i32,
    },
    /// The keys cannot be found from the spec alone.
    Unknown,
}

/// How keys are found once the search has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the begin index up to `last_key` (relative; -1 is the last
    /// argument), every `step` arguments; `limit` > 1 means "1/limit of the
    /// remaining arguments".
    Range {
        last_key: i32,
        step: usize,
        limit: usize,
    },
    /// The argument at `keynum_idx` (relative) counts the keys, which start
    /// at `first_key` (relative), every `step` arguments.
    Keynum {
        keynum_idx: usize,
        first_key: usize,
        step: usize,
    },
    Unknown,
}

/// One key spec, as in Redis 7's `COMMAND INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub begin: BeginSearch,
    pub find: FindKeys,
    /// Key spec flags (`RO`, `RW`, `OW`, `RM`, `not_key`, `incomplete`...) as
    /// Redis names them.
    pub flags: &'static [&'static str],
}

/// Everything the table knows about one command or subcommand.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower case; a subcommand is `container|sub` (`config|get`).
    pub name: &'static str,
    /// Redis arity: N means exactly N arguments, -N at least N.
    pub arity: i32,
    /// Bits from [`flags`].
    pub flags: u32,
    /// Legacy first/last/step key positions, as `COMMAND INFO` reports them.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// Command tips (`request_policy:all_shards`, `response_policy:agg_sum`,
    /// `nondeterministic_output`...), as Redis names them.
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// True for a command with subcommands (`config`, `object`...).
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// The name without its container: `get` for `config|get`.
    pub fn short_name(&self) -> &'static str {
        match self.name.split_once('|') {
            Some((_, sub)) => sub,
            None => self.name,
        }
    }

    /// True if `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

/// Why a request cannot be matched to a table entry. Each renders as the
/// exact error Redis sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Unknown(String),
    UnknownSubcommand { sub: String, container: String },
    WrongArity(String),
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::Unknown(text) => f.write_str(text),
            CommandError::UnknownSubcommand { sub, container } => {
                write!(f, "ERR unknown subcommand '{sub}'. Try {container} HELP.")
            }
            // Redis rejects a malformed EXEC by aborting the transaction
            // (`rejectCommand` -> `execCommandAbort`), even outside MULTI.
            CommandError::WrongArity(name) if name == "exec" => f.write_str(
                "EXECABORT Transaction discarded because of: \
                 wrong number of arguments for 'exec' command",
            ),
            CommandError::WrongArity(name) => {
                write!(f, "ERR wrong number of arguments for '{name}' command")
            }
        }
    }
}

/// Finds the table entry for `req` (a subcommand's own entry where the
/// command has subcommands) and checks the arity, as Redis 7.0's
/// `processCommand` does before anything else.
///
/// Case-insensitive and allocation-free unless it fails.
///
/// # Errors
/// [`CommandError`] with Redis's wording for an unknown command, an unknown
/// subcommand or a wrong number of arguments.
pub fn lookup(req: &Request) -> Result<&'static CommandSpec, CommandError> {
    lookup::lookup(req)
}
