//! Generic key commands (db.c, expire.c, object.c, cluster.c's DUMP and
//! RESTORE), with Redis 7.0's replies and error texts; MIGRATE is in the
//! `migrate` submodule.

mod migrate;

use bytes::Bytes;

use super::strings::owned_key;
use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome, parse_i64};
use crate::cluster::SLOT_COUNT;
use crate::node::db::{Entry, Value};
use crate::node::dump;
use crate::node::glob::glob_match;
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("del", del),
    ("unlink", del),
    ("exists", exists),
    ("touch", exists),
    ("type", type_),
    ("expire", expire),
    ("pexpire", pexpire),
    ("expireat", expireat),
    ("pexpireat", pexpireat),
    ("ttl", ttl),
    ("pttl", pttl),
    ("expiretime", expiretime),
    ("pexpiretime", pexpiretime),
    ("persist", persist),
    ("rename", rename),
    ("renamenx", renamenx),
    ("copy", copy),
    ("keys", keys),
    ("scan", scan),
    ("randomkey", randomkey),
    ("dbsize", dbsize),
    ("flushall", flushall),
    ("flushdb", flushall),
    ("object|encoding", object_encoding),
    ("object|refcount", object_refcount),
    ("object|idletime", object_idletime),
    ("object|freq", object_freq),
    ("object|help", object_help),
    ("dump", dump_),
    ("restore", restore),
    ("restore-asking", restore),
    ("migrate", migrate::migrate),
];

/// DEL and UNLINK (which frees in the background in Redis; here freeing
/// is the same work either way).
fn del(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut deleted = 0;
    for key in args.rest(1) {
        if ctx.node.db.remove(key).is_some() {
            deleted += 1;
        }
    }
    ctx.int(deleted)
}

/// EXISTS and TOUCH: how many of the keys exist, a repeated key counted
/// each time.
fn exists(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut found = 0;
    for key in args.rest(1) {
        if ctx.node.db.contains(key) {
            found += 1;
        }
    }
    ctx.int(found)
}

fn type_(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let name = ctx
        .node
        .db
        .get(args.get(1))
        .map_or("none", Value::type_name);
    ctx.simple(name)
}

/// The NX/XX/GT/LT flags of the EXPIRE family.
#[derive(Debug, Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &Args<'_>) -> Result<ExpireFlags, CmdError> {
    let mut f = ExpireFlags::default();
    for i in 3..args.len() {
        if args.is(i, "nx") {
            f.nx = true;
        } else if args.is(i, "xx") {
            f.xx = true;
        } else if args.is(i, "gt") {
            f.gt = true;
        } else if args.is(i, "lt") {
            f.lt = true;
        } else {
            return Err(CmdError::new(format!(
                "ERR Unsupported option {}",
                args.lossy(i)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(CmdError::fixed(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(CmdError::fixed(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT key time [NX|XX|GT|LT]
/// (`expireGenericCommand`): a time in the past deletes the key.
fn expire_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, seconds: bool, relative: bool) -> CmdResult {
    let flags = parse_expire_flags(args)?;
    let mut when = args.int(2)?;
    let invalid = CmdError::new(format!(
        "ERR invalid expire time in '{}' command",
        ctx.spec.name
    ));
    if seconds {
        when = when.checked_mul(1000).ok_or(invalid.clone())?;
    }
    if relative {
        when = when.checked_add(ctx.now_ms()).ok_or(invalid)?;
    }
    let key = args.get(1);
    let Some(entry) = ctx.node.db.entry(key) else {
        return ctx.int(0);
    };
    let current = entry.expires_at;
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        // No TTL counts as an infinite one.
        || (flags.gt && current.is_none_or(|t| when <= t))
        || (flags.lt && current.is_some_and(|t| when >= t));
    if refused {
        return ctx.int(0);
    }
    ctx.node.db.set_expiry(key, Some(when));
    ctx.int(1)
}

fn expire(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    expire_generic(ctx, args, true, true)
}

fn pexpire(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    expire_generic(ctx, args, false, true)
}

fn expireat(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    expire_generic(ctx, args, true, false)
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    expire_generic(ctx, args, false, false)
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME (`ttlGenericCommand`): -2 for a
/// missing key, -1 for no TTL; seconds are rounded to the nearest.
fn ttl_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, ms: bool, absolute: bool) -> CmdResult {
    let Some(entry) = ctx.node.db.entry(args.get(1)) else {
        return ctx.int(-2);
    };
    let Some(at) = entry.expires_at else {
        return ctx.int(-1);
    };
    let left = if absolute { at } else { at - ctx.now_ms() }.max(0);
    ctx.int(if ms { left } else { (left + 500) / 1000 })
}

fn ttl(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, false, false)
}

fn pttl(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, true, false)
}

fn expiretime(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, false, true)
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, true, true)
}

fn persist(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    if ctx.node.db.expires_at(key).is_some() {
        ctx.node.db.set_expiry(key, None);
        return ctx.int(1);
    }
    ctx.int(0)
}

/// RENAME and RENAMENX (`renameGenericCommand`); the cluster check has
/// made sure both keys are in one slot. The TTL moves with the value.
fn rename_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, nx: bool) -> CmdResult {
    let (from, to) = (args.get(1), args.get(2));
    if !ctx.node.db.contains(from) {
        return Err(CmdError::NO_SUCH_KEY);
    }
    if from == to {
        return if nx { ctx.int(0) } else { ctx.ok() };
    }
    if nx && ctx.node.db.contains(to) {
        return ctx.int(0);
    }
    if let Some(entry) = ctx.node.db.remove_entry(from) {
        ctx.node.db.insert_entry(owned_key(to), entry);
    }
    if nx { ctx.int(1) } else { ctx.ok() }
}

fn rename(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    rename_generic(ctx, args, true)
}

/// COPY source destination [DB n] [REPLACE]: a cluster node has only
/// database 0.
fn copy(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut replace = false;
    let mut db = 0;
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "db") && i + 1 < args.len() {
            db = args
                .int(i + 1)
                .ok()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or(CmdError::NOT_INTEGER)?;
            if !(0..16).contains(&db) {
                return Err(CmdError::fixed("ERR DB index is out of range"));
            }
            i += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    if db != 0 {
        return Err(CmdError::fixed(
            "ERR Copying to another database is not allowed in cluster mode",
        ));
    }
    let (from, to) = (args.get(1), args.get(2));
    if from == to {
        return Err(CmdError::fixed(
            "ERR source and destination objects are the same",
        ));
    }
    let Some(entry) = ctx.node.db.entry(from).cloned() else {
        return ctx.int(0);
    };
    if ctx.node.db.contains(to) && !replace {
        return ctx.int(0);
    }
    ctx.node.db.insert_entry(owned_key(to), entry);
    ctx.int(1)
}

/// KEYS pattern: every live key matching, in no particular order.
fn keys(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let pattern = args.get(1);
    let all = pattern == b"*";
    let Ctx { node, out, .. } = ctx;
    let db = &node.db;
    let found: Vec<&Bytes> = (0..SLOT_COUNT as u16)
        .filter(|&slot| db.count_in_slot(slot) > 0)
        .flat_map(|slot| db.iter_slot(slot))
        .map(|(k, _)| k)
        .filter(|k| all || glob_match(pattern, k))
        .collect();
    encode::array_header(out, found.len());
    for key in found {
        encode::bulk(out, key);
    }
    Ok(Outcome::Done)
}

/// A SCAN cursor as Redis reads it (`strtoul`): digits with an optional
/// sign (a negative one wraps), nothing else; the empty string reads 0.
pub fn parse_cursor(text: &[u8]) -> Result<u64, CmdError> {
    let invalid = CmdError::fixed("ERR invalid cursor");
    if text.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    let value = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(invalid)?;
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
///
/// The cursor is the next hash slot to visit. Each call returns whole
/// slots, in slot order, until it has examined at least COUNT keys (or
/// passed the last slot), and answers cursor 0 after slot 16383. So a key
/// that exists for the whole scan is returned exactly once, and a key
/// added or deleted meanwhile at most once: a stronger guarantee than
/// Redis's, which may repeat keys while its table is resized. MATCH and
/// TYPE filter the examined keys, as in Redis, so a call may return fewer
/// keys than COUNT, or none, before the scan ends; a slot holding many
/// keys is returned whole, so a call may return more.
fn scan(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(1))?;
    let mut count: i64 = 10;
    let mut pattern: Option<&[u8]> = None;
    let mut type_name: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if args.is(i, "count") && has_value {
            count = args.int(i + 1)?;
            if count < 1 {
                return Err(CmdError::SYNTAX);
            }
        } else if args.is(i, "match") && has_value {
            let p = args.get(i + 1);
            pattern = if p == b"*" { None } else { Some(p) };
        } else if args.is(i, "type") && has_value {
            type_name = Some(args.get(i + 1));
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let Ctx { node, out, .. } = ctx;
    let db = &node.db;
    let mut slot = usize::try_from(cursor).unwrap_or(usize::MAX);
    let mut examined = 0usize;
    let mut found: Vec<&Bytes> = Vec::new();
    while slot < SLOT_COUNT && examined < count {
        let here = slot as u16;
        slot += 1;
        if db.count_in_slot(here) == 0 {
            continue;
        }
        for (key, entry) in db.iter_slot(here) {
            examined += 1;
            let type_ok = type_name
                .is_none_or(|t| t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()));
            if type_ok && pattern.is_none_or(|p| glob_match(p, key)) {
                found.push(key);
            }
        }
    }
    let next = if slot >= SLOT_COUNT { 0 } else { slot };
    encode::array_header(out, 2);
    encode::bulk(out, next.to_string().as_bytes());
    encode::array_header(out, found.len());
    for key in found {
        encode::bulk(out, key);
    }
    Ok(Outcome::Done)
}

/// RANDOMKEY: a key chosen uniformly (a random index over all keys, found
/// by walking the slot counts), or nil when there is none.
fn randomkey(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    use rand::Rng;
    let mut rng = rand::rng();
    let db = &ctx.node.db;
    // An expired key not yet removed is skipped by trying again.
    for _ in 0..100 {
        let total = db.len();
        if total == 0 {
            break;
        }
        let mut index = rng.random_range(0..total);
        let mut chosen = None;
        for slot in 0..SLOT_COUNT as u16 {
            let n = db.count_in_slot(slot);
            if index < n {
                chosen = Some(slot);
                break;
            }
            index -= n;
        }
        let Some(slot) = chosen else { break };
        let key = db.iter_slot(slot).nth(index).map(|(k, _)| k.clone());
        if let Some(key) = key {
            return ctx.bulk(&key);
        }
    }
    ctx.nil()
}

fn dbsize(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    let n = ctx.node.db.len();
    ctx.int(n as i64)
}

/// FLUSHALL and FLUSHDB [ASYNC|SYNC]: one database, so both empty it.
fn flushall(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match args.len() {
        1 => {}
        2 if args.is(1, "sync") || args.is(1, "async") => {}
        _ => return Err(CmdError::SYNTAX),
    }
    ctx.node.db.clear();
    ctx.node.events.touched_all();
    ctx.ok()
}

/// Redis's `OBJ_SHARED_REFCOUNT`: the refcount of a shared integer.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// The integer Redis would store this string as (`OBJ_ENCODING_INT`).
fn int_encoded(s: &[u8]) -> Option<i64> {
    if s.len() > 20 {
        return None;
    }
    parse_i64(s).ok()
}

/// The encoding Redis 7.0 would report for a value built the ordinary way.
/// An approximation: it is computed from the value as it is now, with
/// Redis's default thresholds, while Redis remembers how a value was built
/// (APPEND makes a short string `raw`; a hash that grew past 128 entries
/// stays `hashtable` after shrinking).
pub fn encoding(value: &Value) -> &'static str {
    const LISTPACK_ENTRIES: usize = 128;
    const LISTPACK_VALUE: usize = 64;
    const INTSET_ENTRIES: usize = 512;
    const EMBSTR_LIMIT: usize = 44;
    match value {
        Value::Str(s) if int_encoded(s).is_some() => "int",
        Value::Str(s) if s.len() <= EMBSTR_LIMIT => "embstr",
        Value::Str(_) => "raw",
        // Redis 7.0 keeps every list in a quicklist.
        Value::List(_) => "quicklist",
        Value::Hash(h)
            if h.len() <= LISTPACK_ENTRIES
                && h.iter()
                    .all(|(f, v)| f.len() <= LISTPACK_VALUE && v.len() <= LISTPACK_VALUE) =>
        {
            "listpack"
        }
        Value::Hash(_) => "hashtable",
        Value::Set(s)
            if s.len() <= INTSET_ENTRIES && s.iter().all(|m| int_encoded(m).is_some()) =>
        {
            "intset"
        }
        Value::Set(_) => "hashtable",
        // The set tracks Redis's encoding, which stays a skiplist once
        // converted, however small the set gets again.
        Value::ZSet(z) if z.is_compact() => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}

fn object_encoding(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match ctx.node.db.get(args.get(2)).map(encoding) {
        Some(name) => ctx.bulk(name.as_bytes()),
        None => ctx.nil(),
    }
}

/// 1, or Redis's shared-object count for the integers 0..9999 it shares.
fn object_refcount(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let refcount = match ctx.node.db.get(args.get(2)) {
        None => return ctx.nil(),
        Some(Value::Str(s)) if int_encoded(s).is_some_and(|n| (0..10_000).contains(&n)) => {
            SHARED_REFCOUNT
        }
        Some(_) => 1,
    };
    ctx.int(refcount)
}

/// The node does not track access times: every key reads as just used.
fn object_idletime(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if !ctx.node.db.contains(args.get(2)) {
        return ctx.nil();
    }
    ctx.int(0)
}

/// No LFU policy is ever selected, so Redis's refusal.
fn object_freq(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if !ctx.node.db.contains(args.get(2)) {
        return ctx.nil();
    }
    Err(CmdError::fixed(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
    ))
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object_help(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.array_header(OBJECT_HELP.len());
    for line in OBJECT_HELP {
        encode::simple(ctx.out, line);
    }
    Ok(Outcome::Done)
}

fn dump_(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let payload = match ctx.node.db.get(args.get(1)) {
        Some(value) => dump::dump(value),
        None => return ctx.nil(),
    };
    ctx.bulk(&payload)
}

/// RESTORE (and RESTORE-ASKING, which MIGRATE sends so that an importing
/// node accepts it) key ttl payload [REPLACE] [ABSTTL] [IDLETIME s]
/// [FREQ f], checking in Redis's order: options, an existing key
/// (BUSYKEY), the TTL, the payload's footer, then its contents. IDLETIME
/// and FREQ are validated and otherwise ignored (no LRU/LFU here).
fn restore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut replace = false;
    let mut absttl = false;
    let mut idle_given = false;
    let mut freq_given = false;
    let mut i = 4;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if args.is(i, "replace") {
            replace = true;
        } else if args.is(i, "absttl") {
            absttl = true;
        } else if args.is(i, "idletime") && has_value && !freq_given {
            if args.int(i + 1)? < 0 {
                return Err(CmdError::fixed("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle_given = true;
            i += 1;
        } else if args.is(i, "freq") && has_value && !idle_given {
            if !(0..=255).contains(&args.int(i + 1)?) {
                return Err(CmdError::fixed(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq_given = true;
            i += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    let key = args.get(1);
    if !replace && ctx.node.db.contains(key) {
        return Err(CmdError::fixed("BUSYKEY Target key name already exists."));
    }
    let mut ttl = args.int(2)?;
    if ttl < 0 {
        return Err(CmdError::fixed("ERR Invalid TTL value, must be >= 0"));
    }
    let value = dump::restore(args.get(3)).map_err(|e| CmdError::fixed(e.text()))?;
    if replace {
        ctx.node.db.remove(key);
    }
    if ttl > 0 && !absttl {
        ttl = ttl.saturating_add(ctx.now_ms());
    }
    if ttl > 0 && ctx.node.db.is_due(ttl) {
        // Already expired: nothing is created, as in Redis.
        return ctx.ok();
    }
    let expires_at = (ttl > 0).then_some(ttl);
    ctx.node
        .db
        .insert_entry(owned_key(key), Entry { value, expires_at });
    ctx.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"007"), Ok(7));
        assert_eq!(parse_cursor(b"+5"), Ok(5));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        for bad in [&b"x"[..], b" 1", b"1 ", b"+", b"18446744073709551616"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodings_follow_redis_thresholds() {
        let s = |t: &str| Value::Str(Bytes::copy_from_slice(t.as_bytes()));
        assert_eq!(encoding(&s("123")), "int");
        assert_eq!(encoding(&s("-9223372036854775808")), "int");
        assert_eq!(encoding(&s("012")), "embstr");
        assert_eq!(encoding(&s(&"x".repeat(44))), "embstr");
        assert_eq!(encoding(&s(&"x".repeat(45))), "raw");
    }
}
