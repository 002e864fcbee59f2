//! The command table. PLACEHOLDER: a handful of entries until the generated
//! table from Redis 7.0's COMMAND INFO lands.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::flags::*;
use super::{BeginSearch, CommandError, CommandSpec, FindKeys, KeySpec};
use crate::resp::Request;

const ONE_KEY: &[KeySpec] = &[KeySpec {
    begin: BeginSearch::Index(1),
    find: FindKeys::Range {
        last_key: 0,
        step: 1,
        limit: 0,
    },
    flags: &[],
}];
const ALL_KEYS: &[KeySpec] = &[KeySpec {
    begin: BeginSearch::Index(1),
    find: FindKeys::Range {
        last_key: -1,
        step: 1,
        limit: 0,
    },
    flags: &[],
}];
const PAIRS: &[KeySpec] = &[KeySpec {
    begin: BeginSearch::Index(1),
    find: FindKeys::Range {
        last_key: -1,
        step: 2,
        limit: 0,
    },
    flags: &[],
}];

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    key_specs: &'static [KeySpec],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        key_specs,
        subcommands: &[],
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, ONE_KEY),
    cmd("set", -3, WRITE | DENYOOM, ONE_KEY),
    cmd("incr", 2, WRITE | FAST, ONE_KEY),
    cmd("lpush", -3, WRITE | FAST, ONE_KEY),
    cmd("lrange", 4, READONLY, ONE_KEY),
    cmd("mget", -2, READONLY | FAST, ALL_KEYS),
    cmd("mset", -3, WRITE | DENYOOM, PAIRS),
    cmd("del", -2, WRITE, ALL_KEYS),
    cmd("exists", -2, READONLY | FAST, ALL_KEYS),
    cmd("ping", -1, FAST, &[]),
    cmd("echo", 2, FAST, &[]),
];

static BY_NAME: LazyLock<HashMap<&'static str, &'static CommandSpec>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name, c)).collect());

pub(super) fn lookup(req: &Request) -> Result<&'static CommandSpec, CommandError> {
    let name = req.name();
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len()).ok_or_else(|| unknown(req))?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let spec = std::str::from_utf8(lower)
        .ok()
        .and_then(|n| BY_NAME.get(n))
        .ok_or_else(|| unknown(req))?;
    if !spec.arity_ok(req.len()) {
        return Err(CommandError::WrongArity(spec.name.to_string()));
    }
    Ok(spec)
}

fn unknown(req: &Request) -> CommandError {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(req.name())
    );
    for arg in req.args().skip(1) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(arg)));
    }
    CommandError::Unknown(text)
}
