//! Hash commands, with Redis 7.0's replies and error texts.
//!
//! Fields come back in the map's order, not in insertion order as a small
//! Redis hash (a listpack) gives them; clients must not rely on either.
//! HSCAN returns the whole hash in one step with cursor 0, as Redis does
//! for small hashes.

use bytes::Bytes;
use rand::Rng;
use rand::seq::index;

use super::lists::{lookup_read, range_long};
use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome, parse_i64};
use crate::node::db::{Keyspace, Map, Value};
use crate::node::float::LongDouble;
use crate::node::glob::glob_match;
use crate::node::state::NodeState;
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("hset", hset),
    ("hmset", hmset),
    ("hsetnx", hsetnx),
    ("hget", hget),
    ("hmget", hmget),
    ("hgetall", hgetall),
    ("hdel", hdel),
    ("hlen", hlen),
    ("hexists", hexists),
    ("hkeys", hkeys),
    ("hvals", hvals),
    ("hincrby", hincrby),
    ("hincrbyfloat", hincrbyfloat),
    ("hstrlen", hstrlen),
    ("hrandfield", hrandfield),
    ("hscan", hscan),
];

/// The hash at `key` for writing, created empty if absent (the caller
/// adds a field before it returns), or WRONGTYPE.
fn hash_for_write<'d>(
    db: &'d mut Keyspace,
    key: &Bytes,
) -> Result<&'d mut Map<Bytes, Bytes>, CmdError> {
    db.get_or_insert_with(key, || Value::Hash(Map::default()))
        .as_hash_mut()
}

/// The hash at `key` for a read-only command (hits and misses counted),
/// `None` if absent, or WRONGTYPE.
fn hash_for_read<'n>(
    node: &'n mut NodeState,
    key: &[u8],
) -> Result<Option<&'n Map<Bytes, Bytes>>, CmdError> {
    lookup_read(node, key).map(Value::as_hash).transpose()
}

/// HSET key field value [field value ...]: the number of new fields.
fn hset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let added = set_fields(ctx, args)?;
    ctx.int(added as i64)
}

/// HMSET: HSET answering OK.
fn hmset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_fields(ctx, args)?;
    ctx.ok()
}

fn set_fields(ctx: &mut Ctx<'_>, args: &Args<'_>) -> Result<usize, CmdError> {
    if args.len() % 2 == 1 {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.spec.name
        )));
    }
    let hash = hash_for_write(&mut ctx.node.db, &args.bytes(1))?;
    hash.reserve((args.len() - 2) / 2);
    let mut added = 0;
    for i in (2..args.len()).step_by(2) {
        if hash.insert(args.bytes(i), args.bytes(i + 1)).is_none() {
            added += 1;
        }
    }
    Ok(added)
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let hash = hash_for_write(&mut ctx.node.db, &args.bytes(1))?;
    if hash.contains_key(args.get(2)) {
        return ctx.int(0);
    }
    hash.insert(args.bytes(2), args.bytes(3));
    ctx.int(1)
}

fn hget(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let value = hash_for_read(ctx.node, args.get(1))?.and_then(|h| h.get(args.get(2)).cloned());
    match value {
        Some(value) => ctx.bulk(&value),
        None => ctx.nil(),
    }
}

fn hmget(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let hash = hash_for_read(ctx.node, args.get(1))?;
    encode::array_header(ctx.out, args.len() - 2);
    for field in args.rest(2) {
        match hash.and_then(|h| h.get(field)) {
            Some(value) => encode::bulk(ctx.out, value),
            None => encode::null_bulk(ctx.out),
        }
    }
    Ok(Outcome::Done)
}

/// Which parts of each field HGETALL, HKEYS and HVALS answer.
#[derive(Clone, Copy)]
enum Parts {
    Both,
    Fields,
    Values,
}

fn hgetall(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    list_fields(ctx, args, Parts::Both)
}

fn hkeys(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    list_fields(ctx, args, Parts::Fields)
}

fn hvals(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    list_fields(ctx, args, Parts::Values)
}

fn list_fields(ctx: &mut Ctx<'_>, args: &Args<'_>, parts: Parts) -> CmdResult {
    let hash = hash_for_read(ctx.node, args.get(1))?;
    let Some(hash) = hash else {
        encode::array_header(ctx.out, 0);
        return Ok(Outcome::Done);
    };
    let out = &mut *ctx.out;
    match parts {
        Parts::Both => {
            encode::array_header(out, hash.len() * 2);
            for (field, value) in hash {
                encode::bulk(out, field);
                encode::bulk(out, value);
            }
        }
        Parts::Fields => {
            encode::array_header(out, hash.len());
            for field in hash.keys() {
                encode::bulk(out, field);
            }
        }
        Parts::Values => {
            encode::array_header(out, hash.len());
            for value in hash.values() {
                encode::bulk(out, value);
            }
        }
    }
    Ok(Outcome::Done)
}

fn hdel(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let Some(value) = ctx.node.db.get_mut(key) else {
        return ctx.int(0);
    };
    let hash = value.as_hash_mut()?;
    let removed = args
        .rest(2)
        .filter(|field| hash.remove(*field).is_some())
        .count();
    ctx.node.db.remove_if_empty(key);
    ctx.int(removed as i64)
}

fn hlen(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = hash_for_read(ctx.node, args.get(1))?.map_or(0, Map::len);
    ctx.int(len as i64)
}

fn hexists(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let exists = hash_for_read(ctx.node, args.get(1))?.is_some_and(|h| h.contains_key(args.get(2)));
    ctx.int(i64::from(exists))
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = hash_for_read(ctx.node, args.get(1))?
        .and_then(|h| h.get(args.get(2)))
        .map_or(0, Bytes::len);
    ctx.int(len as i64)
}

/// HINCRBY key field increment.
fn hincrby(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let incr = args.int(3)?;
    let hash = hash_for_write(&mut ctx.node.db, &args.bytes(1))?;
    let current = match hash.get(args.get(2)) {
        Some(value) => {
            parse_i64(value).map_err(|_| CmdError::fixed("ERR hash value is not an integer"))?
        }
        None => 0,
    };
    let next = current.checked_add(incr).ok_or(CmdError::OVERFLOW)?;
    hash.insert(args.bytes(2), Bytes::from(next.to_string()));
    ctx.int(next)
}

/// HINCRBYFLOAT key field increment, in long double as Redis computes it.
fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let incr = LongDouble::parse(args.get(3)).ok_or(CmdError::NOT_FLOAT)?;
    if incr.is_infinite() {
        return Err(CmdError::fixed("ERR value is NaN or Infinity"));
    }
    let hash = hash_for_write(&mut ctx.node.db, &args.bytes(1))?;
    let current = match hash.get(args.get(2)) {
        Some(value) => {
            LongDouble::parse(value).ok_or(CmdError::fixed("ERR hash value is not a float"))?
        }
        None => LongDouble::ZERO,
    };
    let next = current.finite_add(incr).ok_or(CmdError::fixed(
        "ERR increment would produce NaN or Infinity",
    ))?;
    let text = Bytes::from(next.to_human());
    hash.insert(args.bytes(2), text.clone());
    ctx.bulk(&text)
}

/// HRANDFIELD key [count [WITHVALUES]]: a positive count gives distinct
/// fields (all of them when it exceeds the size), a negative one may
/// repeat fields.
fn hrandfield(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() == 2 {
        let hash = hash_for_read(ctx.node, args.get(1))?;
        let field = hash.and_then(|h| {
            let at = rand::rng().random_range(0..h.len().max(1));
            h.keys().nth(at).cloned()
        });
        return match field {
            Some(field) => ctx.bulk(&field),
            None => ctx.nil(),
        };
    }
    let count = range_long(args.get(2), -i64::MAX, i64::MAX, None)?;
    let with_values = match args.len() {
        3 => false,
        4 if args.is(3, "withvalues") => true,
        _ => return Err(CmdError::SYNTAX),
    };
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::fixed("ERR value is out of range"));
    }
    let Some(hash) = hash_for_read(ctx.node, args.get(1))? else {
        encode::array_header(ctx.out, 0);
        return Ok(Outcome::Done);
    };
    let wanted = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    let per_field = if with_values { 2 } else { 1 };
    let out = &mut *ctx.out;
    let write = |out: &mut bytes::BytesMut, (field, value): (&Bytes, &Bytes)| {
        encode::bulk(out, field);
        if with_values {
            encode::bulk(out, value);
        }
    };
    let mut rng = rand::rng();
    if count < 0 {
        // Fields may repeat: pick by position in a snapshot of the entries.
        let entries: Vec<(&Bytes, &Bytes)> = hash.iter().collect();
        encode::array_header(out, wanted.saturating_mul(per_field));
        for _ in 0..wanted {
            if let Some(&entry) = entries.get(rng.random_range(0..entries.len())) {
                write(out, entry);
            }
        }
    } else if wanted >= hash.len() {
        encode::array_header(out, hash.len() * per_field);
        for entry in hash {
            write(out, entry);
        }
    } else {
        let mut picks = index::sample(&mut rng, hash.len(), wanted).into_vec();
        picks.sort_unstable();
        encode::array_header(out, wanted * per_field);
        let mut picks = picks.into_iter().peekable();
        for (at, entry) in hash.iter().enumerate() {
            if picks.peek() == Some(&at) {
                picks.next();
                write(out, entry);
            }
        }
    }
    Ok(Outcome::Done)
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: everything in one step.
fn hscan(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if !valid_cursor(args.get(2)) {
        return Err(CmdError::fixed("ERR invalid cursor"));
    }
    let Some(hash) = hash_for_read(ctx.node, args.get(1))? else {
        ctx.out.extend_from_slice(b"*2\r\n$1\r\n0\r\n*0\r\n");
        return Ok(Outcome::Done);
    };
    let mut pattern: Option<&[u8]> = None;
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if args.is(i, "count") && more {
            if args.int(i + 1)? < 1 {
                return Err(CmdError::SYNTAX);
            }
        } else if args.is(i, "match") && more {
            let p = args.get(i + 1);
            pattern = (p != b"*").then_some(p);
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    let matching: Vec<(&Bytes, &Bytes)> = hash
        .iter()
        .filter(|(field, _)| pattern.is_none_or(|p| glob_match(p, field)))
        .collect();
    let out = &mut *ctx.out;
    out.extend_from_slice(b"*2\r\n$1\r\n0\r\n");
    encode::array_header(out, matching.len() * 2);
    for (field, value) in matching {
        encode::bulk(out, field);
        encode::bulk(out, value);
    }
    Ok(Outcome::Done)
}

/// A cursor as Redis's `strtoul` check accepts it: optional sign, digits
/// (none at all reads as 0), no spaces, no overflow. The value does not
/// matter here: every HSCAN answers the whole hash.
fn valid_cursor(arg: &[u8]) -> bool {
    let digits = match arg {
        [] => return true,
        [b'+' | b'-', rest @ ..] => rest,
        _ => arg,
    };
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_as_strtoul() {
        for ok in ["0", "", "+5", "-1", "18446744073709551615"] {
            assert!(valid_cursor(ok.as_bytes()), "{ok:?}");
        }
        for bad in ["x", " 1", "1 ", "-", "18446744073709551616", "1.5"] {
            assert!(!valid_cursor(bad.as_bytes()), "{bad:?}");
        }
    }
}
