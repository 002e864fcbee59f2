//! Finding a request's table entry, with Redis 7.0's own errors for unknown
//! commands, unknown subcommands and wrong arity (server.c `processCommand`,
//! `commandCheckExistence`, `commandCheckArity`).
//!
//! The hot path allocates nothing: the name is lower-cased into a stack
//! buffer and binary-searched in the sorted table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use super::table::COMMANDS;
use super::{CommandError, CommandSpec};
use crate::resp::Request;

/// Longer than any command or subcommand name; a longer name is unknown.
pub(super) const MAX_NAME_LEN: usize = 32;

/// Redis prints at most this many bytes of a name or argument in an error
/// (`%.128s`), and stops adding arguments once it has printed this many.
const ERR_ARG_LIMIT: usize = 128;

pub(super) fn lookup(req: &Request) -> Result<&'static CommandSpec, CommandError> {
    let Some(mut spec) = lookup_name(req.name()) else {
        return Err(unknown_command(req));
    };
    // Like Redis's lookupCommandLogic: a container named alone is looked up
    // as itself (and fails the arity check below).
    if let (true, Some(sub)) = (spec.is_container(), req.arg(1)) {
        spec = lookup_subcommand(spec, sub).ok_or_else(|| unknown_subcommand(spec, sub))?;
    }
    if !spec.arity_ok(req.len()) {
        return Err(CommandError::WrongArity(spec.name.to_string()));
    }
    Ok(spec)
}

/// The top-level command called `name` (any case), without arity checks or
/// subcommand resolution.
pub fn lookup_name(name: &[u8]) -> Option<&'static CommandSpec> {
    // Every request looks its command up: a hash of the lower-cased name
    // (FNV-1a, a few nanoseconds for a short name) instead of a binary
    // search of eight or so string comparisons.
    let mut buf = [0u8; MAX_NAME_LEN];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(&*lower).copied()
}

/// Top-level commands by name.
static BY_NAME: LazyLock<HashMap<&'static [u8], &'static CommandSpec, BuildHasherDefault<Fnv1a>>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// FNV-1a: tiny and fast for the short keys of the command table, where
/// hash flooding is no concern (the keys are fixed).
#[derive(Default)]
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// The subcommand `sub` (any case, without the `container|` prefix) of
/// `container`, e.g. `get` of `config`.
pub fn lookup_subcommand(container: &CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    // Subcommand names are `container|sub`.
    find(container.subcommands, container.name.len() + 1, sub)
}

/// Every command and every subcommand, each container followed by its
/// subcommands. For `COMMAND COUNT` (which counts top-level commands only)
/// use [`COMMANDS`]`.len()`.
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

/// Binary search of a table sorted by name, comparing names from byte
/// `prefix_len` on (subcommands share their `container|` prefix, so the order
/// is the same without it).
fn find(
    table: &'static [CommandSpec],
    prefix_len: usize,
    name: &[u8],
) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let lower: &[u8] = lower;
    table
        .binary_search_by(|c| {
            c.name
                .as_bytes()
                .get(prefix_len..)
                .unwrap_or_default()
                .cmp(lower)
        })
        .ok()
        .and_then(|i| table.get(i))
}

/// What C's `%.Ns` prints of an argument: up to the first NUL, at most
/// `max` bytes.
fn c_str(arg: &[u8], max: usize) -> &[u8] {
    let end = arg
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(arg.len())
        .min(max);
    arg.get(..end).unwrap_or_default()
}

/// Redis replaces CR and LF with spaces so the error stays one line
/// (`sdsmapchars(err, "\r\n", "  ", 2)`).
fn one_line(mut text: Vec<u8>) -> String {
    for b in &mut text {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    // Redis sends the bytes as they are; a `String` cannot hold bytes that
    // are not UTF-8, so those (rare in command names) become U+FFFD.
    String::from_utf8(text).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn unknown_command(req: &Request) -> CommandError {
    let mut args = Vec::with_capacity(ERR_ARG_LIMIT + 16);
    for arg in req.args().skip(1) {
        if args.len() >= ERR_ARG_LIMIT {
            break;
        }
        // `sdscatprintf(args, "'%.*s' ", 128 - sdslen(args), arg)`
        let room = ERR_ARG_LIMIT - args.len();
        args.push(b'\'');
        args.extend_from_slice(c_str(arg, room));
        args.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(c_str(req.name(), ERR_ARG_LIMIT));
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&args);
    CommandError::Unknown(one_line(text))
}

fn unknown_subcommand(container: &CommandSpec, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        sub: one_line(c_str(sub, ERR_ARG_LIMIT).to_vec()),
        container: container.name.to_ascii_uppercase(),
    }
}
