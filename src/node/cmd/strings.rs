//! String commands, with Redis 7.0's replies and error texts (t_string.c).
//!
//! Storing request bytes: a key or value taken from a request with
//! `Args::bytes` is a slice of the connection's read buffer, and keeping it
//! would keep that whole buffer (a pipeline's worth, 16 KiB and up) alive
//! for as long as the key lives, and force the connection to allocate a
//! fresh read buffer. So keys, and values below Redis's own "big argument"
//! size (`PROTO_MBULK_BIG_ARG`, 32 KiB), are copied into their own
//! allocation; bigger values are stored zero-copy, as Redis does with big
//! arguments: the decoder reserved their buffer for them, so they make up
//! most of it. Measured with `redis-benchmark -t set -r 100000 -P 32 -d 3`
//! (95,000 keys): 46 MB resident with copies, 92 MB zero-copy. The copies
//! are one small allocation each, as Redis makes for its own objects.
//! Handlers of the other types storing request bytes use the same helpers
//! ([`owned_key`], [`owned_value`], [`owned_arg`]).

use bytes::{Bytes, BytesMut};

use super::{Args, CmdError, CmdResult, Ctx, Handler, parse_i64};
use crate::node::db::{Entry, Keyspace, Value};
use crate::node::float::LongDouble;
use crate::resp::{DEFAULT_MAX_BULK_LEN, encode};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("get", get),
    ("set", set),
    ("setnx", setnx),
    ("setex", setex),
    ("psetex", psetex),
    ("getset", getset),
    ("getdel", getdel),
    ("getex", getex),
    ("append", append),
    ("strlen", strlen),
    ("getrange", getrange),
    ("substr", getrange),
    ("setrange", setrange),
    ("incr", incr),
    ("decr", decr),
    ("incrby", incrby),
    ("decrby", decrby),
    ("incrbyfloat", incrbyfloat),
    ("mget", mget),
    ("mset", mset),
    ("msetnx", msetnx),
];

/// Redis stores arguments this big without copying them.
const BIG_ARG: usize = 32 * 1024;

/// A key to store: always in its own allocation (see the module doc).
pub fn owned_key(key: &[u8]) -> Bytes {
    Bytes::copy_from_slice(key)
}

/// A value to store: copied unless big (see the module doc).
pub fn owned_value(value: Bytes) -> Bytes {
    if value.len() < BIG_ARG {
        Bytes::copy_from_slice(&value)
    } else {
        value
    }
}

/// Argument `i` as a value to store (see [`owned_value`]).
pub fn owned_arg(args: &Args<'_>, i: usize) -> Bytes {
    let value = args.get(i);
    if value.len() < BIG_ARG {
        Bytes::copy_from_slice(value)
    } else {
        args.bytes(i)
    }
}

/// The string at `key`: `None` if missing, WRONGTYPE if not a string.
/// Counts a keyspace hit or miss, as Redis's read lookups do.
fn read_str(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
    match ctx.node.db.get(key) {
        Some(value) => {
            let s = value.as_str()?.clone();
            ctx.node.stats.keyspace_hits += 1;
            Ok(Some(s))
        }
        None => {
            ctx.node.stats.keyspace_misses += 1;
            Ok(None)
        }
    }
}

/// Replies with a string or nil.
fn bulk_or_nil(ctx: &mut Ctx<'_>, value: Option<&[u8]>) -> CmdResult {
    match value {
        Some(v) => ctx.bulk(v),
        None => ctx.nil(),
    }
}

fn get(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    // Written straight from the stored value: no copy of it is made.
    let Ctx { node, out, .. } = ctx;
    match node.db.get(args.get(1)) {
        Some(value) => {
            encode::bulk(out, value.as_str()?);
            node.stats.keyspace_hits += 1;
        }
        None => {
            encode::null_bulk(out);
            node.stats.keyspace_misses += 1;
        }
    }
    Ok(super::Outcome::Done)
}

/// How an expire argument is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// The options of SET (from argument 3) and GETEX (from argument 2).
#[derive(Debug, Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// The kind and the argument index of the expire time.
    expire: Option<(ExpireKind, usize)>,
}

/// Parses SET's (`for_set`) or GETEX's options exactly as Redis's
/// `parseExtendedStringArgumentsOrReply`: an option that conflicts with an
/// earlier one, or is not valid for the command, is a syntax error; the
/// same expire option given twice keeps the last.
fn parse_set_options(args: &Args<'_>, from: usize, for_set: bool) -> Result<SetOptions, CmdError> {
    let mut o = SetOptions::default();
    let mut j = from;
    while j < args.len() {
        let has_next = j + 1 < args.len();
        let expire_ok = |o: &SetOptions, kind| {
            !o.keepttl && !o.persist && o.expire.is_none_or(|(k, _)| k == kind)
        };
        let kind = if args.is(j, "ex") {
            Some(ExpireKind::Ex)
        } else if args.is(j, "px") {
            Some(ExpireKind::Px)
        } else if args.is(j, "exat") {
            Some(ExpireKind::ExAt)
        } else if args.is(j, "pxat") {
            Some(ExpireKind::PxAt)
        } else {
            None
        };
        if args.is(j, "nx") && !o.xx && for_set {
            o.nx = true;
        } else if args.is(j, "xx") && !o.nx && for_set {
            o.xx = true;
        } else if args.is(j, "get") && for_set {
            o.get = true;
        } else if args.is(j, "keepttl") && !o.persist && o.expire.is_none() && for_set {
            o.keepttl = true;
        } else if args.is(j, "persist") && !for_set && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let Some(kind) = kind.filter(|&k| expire_ok(&o, k) && has_next) {
            o.expire = Some((kind, j + 1));
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// The "invalid expire time" error of the running command.
fn invalid_expire(ctx: &Ctx<'_>) -> CmdError {
    CmdError::new(format!(
        "ERR invalid expire time in '{}' command",
        ctx.spec.name
    ))
}

/// The absolute expiry (Unix ms) an expire argument gives, with Redis's
/// checks (`getExpireMillisecondsOrReply`): a positive integer that does
/// not overflow once converted to an absolute time in ms.
fn expire_ms(ctx: &Ctx<'_>, arg: &[u8], kind: ExpireKind) -> Result<i64, CmdError> {
    let n = parse_i64(arg)?;
    let seconds = matches!(kind, ExpireKind::Ex | ExpireKind::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid_expire(ctx));
    }
    let ms = if seconds { n * 1000 } else { n };
    let at = match kind {
        ExpireKind::Ex | ExpireKind::Px => ms.checked_add(ctx.now_ms()),
        ExpireKind::ExAt | ExpireKind::PxAt => Some(ms),
    };
    at.filter(|&t| t > 0).ok_or_else(|| invalid_expire(ctx))
}

/// Stores argument `value` of `args` as a string under argument `key`
/// (SET's semantics: the TTL becomes `expires_at`).
fn store(db: &mut Keyspace, args: &Args<'_>, key: usize, value: usize, expires_at: Option<i64>) {
    db.insert_entry(
        owned_key(args.get(key)),
        Entry {
            value: Value::Str(owned_arg(args, value)),
            expires_at,
        },
    );
}

/// Replaces the string at `key` keeping its TTL (INCR, APPEND...), or
/// creates it without one.
fn overwrite(db: &mut Keyspace, key: &[u8], value: Bytes) {
    match db.get_mut(key) {
        Some(slot) => *slot = Value::Str(value),
        None => {
            db.insert(owned_key(key), Value::Str(value));
        }
    }
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]
fn set(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let o = parse_set_options(args, 3, true)?;
    let expires_at = match o.expire {
        Some((kind, at)) => Some(expire_ms(ctx, args.get(at), kind)?),
        None => None,
    };
    let key = args.get(1);
    let old = if o.get {
        Some(read_str(ctx, key)?)
    } else {
        None
    };
    let found = match &old {
        Some(old) => old.is_some(),
        None => ctx.node.db.contains(key),
    };
    if (o.nx && found) || (o.xx && !found) {
        return match old {
            Some(old) => bulk_or_nil(ctx, old.as_deref()),
            None => ctx.nil(),
        };
    }
    let expires_at = if o.keepttl {
        ctx.node.db.expires_at(key)
    } else {
        expires_at
    };
    store(&mut ctx.node.db, args, 1, 2, expires_at);
    match old {
        Some(old) => bulk_or_nil(ctx, old.as_deref()),
        None => ctx.ok(),
    }
}

fn setnx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    if ctx.node.db.contains(key) {
        return ctx.int(0);
    }
    store(&mut ctx.node.db, args, 1, 2, None);
    ctx.int(1)
}

fn setex_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, kind: ExpireKind) -> CmdResult {
    let at = expire_ms(ctx, args.get(2), kind)?;
    store(&mut ctx.node.db, args, 1, 3, Some(at));
    ctx.ok()
}

fn setex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    setex_generic(ctx, args, ExpireKind::Ex)
}

fn psetex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    setex_generic(ctx, args, ExpireKind::Px)
}

fn getset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let old = read_str(ctx, key)?;
    store(&mut ctx.node.db, args, 1, 2, None);
    bulk_or_nil(ctx, old.as_deref())
}

fn getdel(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let old = read_str(ctx, key)?;
    if old.is_some() {
        ctx.node.db.remove(key);
    }
    bulk_or_nil(ctx, old.as_deref())
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]
fn getex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let o = parse_set_options(args, 2, false)?;
    let expires_at = match o.expire {
        Some((kind, at)) => Some(expire_ms(ctx, args.get(at), kind)?),
        None => None,
    };
    let key = args.get(1);
    let Some(value) = read_str(ctx, key)? else {
        return ctx.nil();
    };
    ctx.bulk(&value)?;
    match expires_at {
        // An absolute time already past deletes the key.
        Some(at) => {
            ctx.node.db.set_expiry(key, Some(at));
        }
        None if o.persist => {
            ctx.node.db.set_expiry(key, None);
        }
        None => {}
    }
    Ok(super::Outcome::Done)
}

/// The "string exceeds maximum allowed size" check (`checkStringLength`).
fn check_length(size: usize, append: usize) -> Result<usize, CmdError> {
    size.checked_add(append)
        .filter(|&total| total <= DEFAULT_MAX_BULK_LEN)
        .ok_or(CmdError::fixed(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ))
}

/// The stored string as a buffer that may be changed: the same allocation
/// when nobody else holds it (so repeated APPENDs grow it amortized, like
/// an sds), else a copy.
fn make_mut(s: &mut Bytes) -> BytesMut {
    match std::mem::take(s).try_into_mut() {
        Ok(buf) => buf,
        Err(shared) => BytesMut::from(&shared[..]),
    }
}

fn append(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let tail = args.get(2);
    match ctx.node.db.get_mut(key) {
        Some(value) => {
            let s = value.as_str_mut()?;
            let total = check_length(s.len(), tail.len())?;
            let mut buf = make_mut(s);
            buf.extend_from_slice(tail);
            *s = buf.freeze();
            ctx.int(total as i64)
        }
        None => {
            store(&mut ctx.node.db, args, 1, 2, None);
            ctx.int(tail.len() as i64)
        }
    }
}

fn strlen(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = match ctx.node.db.get(args.get(1)) {
        Some(value) => value.as_str()?.len(),
        None => 0,
    };
    ctx.int(len as i64)
}

/// GETRANGE key start end (and its old name SUBSTR).
fn getrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let start = args.int(2)?;
    let end = args.int(3)?;
    let Some(s) = read_str(ctx, args.get(1))? else {
        return ctx.bulk(b"");
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return ctx.bulk(b"");
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if start > end || len == 0 {
        return ctx.bulk(b"");
    }
    ctx.bulk(s.get(start as usize..=end as usize).unwrap_or_default())
}

fn setrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let offset = args.int(2)?;
    let Ok(offset) = usize::try_from(offset) else {
        return Err(CmdError::fixed("ERR offset is out of range"));
    };
    let key = args.get(1);
    let patch = args.get(3);
    match ctx.node.db.get_mut(key) {
        Some(value) => {
            let s = value.as_str_mut()?;
            if patch.is_empty() {
                let len = s.len();
                return ctx.int(len as i64);
            }
            let end = check_length(offset, patch.len())?;
            let mut buf = make_mut(s);
            if buf.len() < end {
                buf.resize(end, 0);
            }
            if let Some(dst) = buf.get_mut(offset..end) {
                dst.copy_from_slice(patch);
            }
            let len = buf.len();
            *s = buf.freeze();
            ctx.int(len as i64)
        }
        None => {
            if patch.is_empty() {
                return ctx.int(0);
            }
            let end = check_length(offset, patch.len())?;
            let mut buf = BytesMut::zeroed(end);
            if let Some(dst) = buf.get_mut(offset..end) {
                dst.copy_from_slice(patch);
            }
            ctx.node.db.insert(owned_key(key), Value::Str(buf.freeze()));
            ctx.int(end as i64)
        }
    }
}

/// The decimal text of `n` in its own small allocation.
fn int_bytes(n: i64) -> Bytes {
    let mut buf = BytesMut::with_capacity(24);
    encode::integer(&mut buf, n);
    // `:<digits>\r\n`: keep the digits.
    buf.truncate(buf.len() - 2);
    buf.freeze().slice(1..)
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let current = match ctx.node.db.get(key) {
        Some(value) => parse_i64(value.as_str()?)?,
        None => 0,
    };
    let next = current.checked_add(delta).ok_or(CmdError::OVERFLOW)?;
    overwrite(&mut ctx.node.db, key, int_bytes(next));
    ctx.int(next)
}

fn incr(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let delta = args.int(2)?;
    incr_by(ctx, args.get(1), delta)
}

fn decrby(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let delta = args.int(2)?;
    // Negating i64::MIN would overflow.
    let Some(delta) = delta.checked_neg() else {
        return Err(CmdError::fixed("ERR decrement would overflow"));
    };
    incr_by(ctx, args.get(1), delta)
}

/// INCRBYFLOAT computes in x87 long double and stores `%.17Lf` without
/// trailing zeros, as Redis does (see [`crate::node::float`]).
fn incrbyfloat(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let current = match ctx.node.db.get(key) {
        Some(value) => LongDouble::parse(value.as_str()?).ok_or(CmdError::NOT_FLOAT)?,
        None => LongDouble::ZERO,
    };
    let incr = LongDouble::parse(args.get(2)).ok_or(CmdError::NOT_FLOAT)?;
    let next = current.finite_add(incr).ok_or(CmdError::fixed(
        "ERR increment would produce NaN or Infinity",
    ))?;
    let text = Bytes::from(next.to_human());
    overwrite(&mut ctx.node.db, key, text.clone());
    ctx.bulk(&text)
}

fn mget(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let Ctx { node, out, .. } = ctx;
    encode::array_header(out, args.len() - 1);
    for key in args.rest(1) {
        // A key of another type reads as nil, not WRONGTYPE.
        match node.db.get(key) {
            Some(Value::Str(s)) => {
                encode::bulk(out, s);
                node.stats.keyspace_hits += 1;
            }
            Some(_) => encode::null_bulk(out),
            None => {
                encode::null_bulk(out);
                node.stats.keyspace_misses += 1;
            }
        }
    }
    Ok(super::Outcome::Done)
}

/// MSET and MSETNX take key-value pairs: an odd count of them is an arity
/// error in Redis's words.
fn check_pairs(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<(), CmdError> {
    if args.len() % 2 == 0 {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.spec.name
        )));
    }
    Ok(())
}

fn mset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    check_pairs(ctx, args)?;
    for i in (1..args.len()).step_by(2) {
        store(&mut ctx.node.db, args, i, i + 1, None);
    }
    ctx.ok()
}

fn msetnx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    check_pairs(ctx, args)?;
    for i in (1..args.len()).step_by(2) {
        if ctx.node.db.contains(args.get(i)) {
            return ctx.int(0);
        }
    }
    for i in (1..args.len()).step_by(2) {
        store(&mut ctx.node.db, args, i, i + 1, None);
    }
    ctx.int(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_copied_big_ones_shared() {
        let buffer = Bytes::from(vec![7u8; BIG_ARG * 2]);
        let small = owned_value(buffer.slice(0..10));
        let big = owned_value(buffer.slice(0..BIG_ARG));
        assert_eq!(small.len(), 10);
        assert_ne!(small.as_ptr(), buffer.as_ptr(), "copied");
        assert_eq!(big.as_ptr(), buffer.as_ptr(), "shared");
    }

    #[test]
    fn integers_become_their_digits() {
        for n in [0, 7, -7, 10, i64::MAX, i64::MIN] {
            assert_eq!(int_bytes(n), n.to_string().as_bytes());
        }
    }
}
