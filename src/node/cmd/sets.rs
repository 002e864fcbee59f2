//! Set commands: SADD, SREM, SMEMBERS, SPOP, SRANDMEMBER, the algebra
//! (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD), SMOVE and SSCAN.
//! Also the helpers the sorted-set commands share: reads that count
//! keyspace hits, Redis's ranged integer arguments, and SCAN's options.

use bytes::{Bytes, BytesMut};

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome, parse_i64};
use crate::node::db::{MemberSet, Value};
use crate::node::glob::glob_match;
use crate::node::state::NodeState;
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("sadd", sadd),
    ("srem", srem),
    ("smembers", smembers),
    ("sismember", sismember),
    ("smismember", smismember),
    ("scard", scard),
    ("spop", spop),
    ("srandmember", srandmember),
    ("sinter", sinter),
    ("sunion", sunion),
    ("sdiff", sdiff),
    ("sinterstore", sinterstore),
    ("sunionstore", sunionstore),
    ("sdiffstore", sdiffstore),
    ("sintercard", sintercard),
    ("smove", smove),
    ("sscan", sscan),
];

/// The value of `key` for a read command (Redis's `lookupKeyRead`), counting
/// a keyspace hit or miss.
pub(super) fn read_value<'a>(node: &'a mut NodeState, key: &[u8]) -> Option<&'a Value> {
    let found = node.db.get(key);
    if found.is_some() {
        node.stats.keyspace_hits += 1;
    } else {
        node.stats.keyspace_misses += 1;
    }
    found
}

/// An integer argument within `min..=max`, as `getRangeLongFromObjectOrReply`
/// reads it: `msg` (or the default texts) on failure.
pub(super) fn long_in_range(
    arg: &[u8],
    min: i64,
    max: i64,
    msg: Option<&'static str>,
) -> Result<i64, CmdError> {
    let value = parse_i64(arg).map_err(|e| msg.map_or(e, CmdError::fixed))?;
    if value < min || value > max {
        return Err(match msg {
            Some(text) => CmdError::fixed(text),
            None => CmdError::new(format!(
                "ERR value is out of range, value must between {min} and {max}"
            )),
        });
    }
    Ok(value)
}

/// A non-negative integer argument (`getPositiveLongFromObjectOrReply`).
pub(super) fn positive_long(arg: &[u8], msg: Option<&'static str>) -> Result<i64, CmdError> {
    long_in_range(
        arg,
        0,
        i64::MAX,
        Some(msg.unwrap_or("ERR value is out of range, must be positive")),
    )
}

fn reply_bulks<'b>(out: &mut BytesMut, items: impl ExactSizeIterator<Item = &'b Bytes>) {
    encode::array_header(out, items.len());
    for item in items {
        encode::bulk(out, item);
    }
}

fn sadd(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.bytes(1);
    let value = ctx
        .node
        .db
        .get_or_insert_with(&key, || Value::Set(MemberSet::new()));
    let set = value.as_set_mut()?;
    let mut added = 0;
    for i in 2..args.len() {
        if set.insert(args.bytes(i)) {
            added += 1;
        }
    }
    ctx.int(added)
}

fn srem(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let Some(value) = ctx.node.db.get_mut(key) else {
        return ctx.int(0);
    };
    let set = value.as_set_mut()?;
    let removed = args.rest(2).filter(|m| set.remove(m)).count();
    ctx.node.db.remove_if_empty(key);
    ctx.int(removed as i64)
}

fn smembers(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match read_value(ctx.node, args.get(1)) {
        Some(value) => reply_bulks(ctx.out, value.as_set()?.iter()),
        None => encode::array_header(ctx.out, 0),
    }
    Ok(Outcome::Done)
}

fn sismember(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let found = match read_value(ctx.node, args.get(1)) {
        Some(value) => value.as_set()?.contains(args.get(2)),
        None => false,
    };
    ctx.int(i64::from(found))
}

fn smismember(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let set = match read_value(ctx.node, args.get(1)) {
        Some(value) => Some(value.as_set()?),
        None => None,
    };
    let found: Vec<bool> = args
        .rest(2)
        .map(|m| set.is_some_and(|s| s.contains(m)))
        .collect();
    encode::array_header(ctx.out, found.len());
    for f in found {
        encode::integer(ctx.out, i64::from(f));
    }
    Ok(Outcome::Done)
}

fn scard(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = match read_value(ctx.node, args.get(1)) {
        Some(value) => value.as_set()?.len(),
        None => 0,
    };
    ctx.int(len as i64)
}

/// SPOP key [count]
fn spop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let key = args.get(1);
    let count = if args.len() == 3 {
        Some(positive_long(args.get(2), None)? as usize)
    } else {
        None
    };
    let Some(value) = ctx.node.db.get_mut(key) else {
        return match count {
            Some(_) => {
                encode::array_header(ctx.out, 0);
                Ok(Outcome::Done)
            }
            None => ctx.nil(),
        };
    };
    let set = value.as_set_mut()?;
    let mut rng = rand::rng();
    match count {
        None => {
            let popped = set.pop_random(&mut rng);
            ctx.node.db.remove_if_empty(key);
            match popped {
                Some(member) => {
                    // Chance picked the member: replicas remove that one.
                    propagate_srem(ctx, key, std::slice::from_ref(&member));
                    ctx.bulk(&member)
                }
                None => ctx.nil(),
            }
        }
        Some(0) => {
            encode::array_header(ctx.out, 0);
            Ok(Outcome::Done)
        }
        Some(n) if n >= set.len() => {
            let all = std::mem::take(set);
            ctx.node.db.remove(key);
            reply_bulks(ctx.out, all.iter());
            Ok(Outcome::Done)
        }
        Some(n) => {
            let popped: Vec<Bytes> = (0..n).filter_map(|_| set.pop_random(&mut rng)).collect();
            propagate_srem(ctx, key, &popped);
            reply_bulks(ctx.out, popped.iter());
            Ok(Outcome::Done)
        }
    }
}

/// SPOP goes into the write stream as the SREM of what it popped.
fn propagate_srem(ctx: &mut Ctx<'_>, key: &[u8], members: &[Bytes]) {
    let mut argv = Vec::with_capacity(members.len() + 2);
    argv.push(Bytes::from_static(b"SREM"));
    argv.push(Bytes::copy_from_slice(key));
    argv.extend(members.iter().cloned());
    ctx.node.feed.instead(vec![argv]);
}

/// SRANDMEMBER key [count]: a negative count may repeat members.
fn srandmember(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let count = if args.len() == 3 {
        Some(long_in_range(args.get(2), -i64::MAX, i64::MAX, None)?)
    } else {
        None
    };
    let set = match read_value(ctx.node, args.get(1)) {
        Some(value) => value.as_set()?,
        None if count.is_some() => {
            encode::array_header(ctx.out, 0);
            return Ok(Outcome::Done);
        }
        None => return ctx.nil(),
    };
    let mut rng = rand::rng();
    let Some(count) = count else {
        return match set.random(&mut rng) {
            Some(member) => {
                encode::bulk(ctx.out, member);
                Ok(Outcome::Done)
            }
            None => ctx.nil(),
        };
    };
    let out = &mut *ctx.out;
    if count < 0 {
        let n = count.unsigned_abs() as usize;
        encode::array_header(out, n);
        for _ in 0..n {
            if let Some(member) = set.random(&mut rng) {
                encode::bulk(out, member);
            }
        }
    } else if count as usize >= set.len() {
        reply_bulks(out, set.iter());
    } else {
        let picks = rand::seq::index::sample(&mut rng, set.len(), count as usize);
        encode::array_header(out, picks.len());
        for pos in picks {
            if let Some(member) = set.get_index(pos) {
                encode::bulk(out, member);
            }
        }
    }
    Ok(Outcome::Done)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// The sets at `keys` (None for a missing key), after checking every key's
/// type as Redis does before computing anything.
fn gather<'a>(
    node: &'a mut NodeState,
    keys: &[&[u8]],
) -> Result<Vec<Option<&'a MemberSet>>, CmdError> {
    for &key in keys {
        if let Some(value) = read_value(node, key) {
            value.as_set()?;
        }
    }
    let db = &node.db;
    keys.iter()
        .map(|key| db.peek(key).map(Value::as_set).transpose())
        .collect()
}

/// Members of the intersection, union or difference of `sets`; `limit`
/// stops an intersection early (SINTERCARD).
fn combine(sets: &[Option<&MemberSet>], op: SetOp, limit: usize) -> Vec<Bytes> {
    match op {
        SetOp::Inter => {
            let Some(mut present) = sets.iter().copied().collect::<Option<Vec<_>>>() else {
                return Vec::new();
            };
            present.sort_by_key(|s| s.len());
            let Some((smallest, others)) = present.split_first() else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for member in smallest.iter() {
                if others.iter().all(|s| s.contains(member)) {
                    out.push(member.clone());
                    if limit > 0 && out.len() >= limit {
                        break;
                    }
                }
            }
            out
        }
        SetOp::Union => {
            let mut all = MemberSet::new();
            for set in sets.iter().flatten() {
                all.extend(set.iter().cloned());
            }
            all.into_iter().collect()
        }
        SetOp::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Vec::new();
            };
            let others = sets.get(1..).unwrap_or_default();
            first
                .iter()
                .filter(|m| !others.iter().flatten().any(|s| s.contains(m)))
                .cloned()
                .collect()
        }
    }
}

fn set_algebra(ctx: &mut Ctx<'_>, args: &Args<'_>, op: SetOp) -> CmdResult {
    let sets = gather(ctx.node, &args.rest(1).collect::<Vec<_>>())?;
    let members = combine(&sets, op, 0);
    reply_bulks(ctx.out, members.iter());
    Ok(Outcome::Done)
}

fn set_algebra_store(ctx: &mut Ctx<'_>, args: &Args<'_>, op: SetOp) -> CmdResult {
    let sets = gather(ctx.node, &args.rest(2).collect::<Vec<_>>())?;
    let members: MemberSet = combine(&sets, op, 0).into_iter().collect();
    let dst = args.bytes(1);
    let len = members.len();
    if len == 0 {
        ctx.node.db.remove(&dst);
    } else {
        ctx.node.db.insert(dst, Value::Set(members));
    }
    ctx.int(len as i64)
}

fn sinter(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra(ctx, args, SetOp::Inter)
}

fn sunion(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra(ctx, args, SetOp::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra(ctx, args, SetOp::Diff)
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra_store(ctx, args, SetOp::Inter)
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra_store(ctx, args, SetOp::Union)
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    set_algebra_store(ctx, args, SetOp::Diff)
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let numkeys = long_in_range(
        args.get(1),
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    )? as usize;
    if numkeys > args.len() - 2 {
        return Err(CmdError::fixed(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = 0;
    let mut i = 2 + numkeys;
    while i < args.len() {
        if args.is(i, "limit") && i + 1 < args.len() {
            limit = positive_long(args.get(i + 1), Some("ERR LIMIT can't be negative"))? as usize;
            i += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let sets = gather(ctx.node, &args.rest(2).take(numkeys).collect::<Vec<_>>())?;
    let count = combine(&sets, SetOp::Inter, limit).len();
    ctx.int(count as i64)
}

/// SMOVE source destination member
fn smove(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let (src, dst, member) = (args.get(1), args.bytes(2), args.bytes(3));
    // A missing source answers 0 before any type check, as in Redis.
    let Some(source) = ctx.node.db.get(src) else {
        return ctx.int(0);
    };
    source.as_set()?;
    if let Some(target) = ctx.node.db.get(&dst) {
        target.as_set()?;
    }
    if src == dst.as_ref() {
        let present = ctx
            .node
            .db
            .peek(src)
            .and_then(|v| v.as_set().ok())
            .is_some_and(|s| s.contains(&member));
        return ctx.int(i64::from(present));
    }
    let removed = match ctx.node.db.get_mut(src) {
        Some(value) => value.as_set_mut()?.remove(&member),
        None => false,
    };
    if !removed {
        return ctx.int(0);
    }
    ctx.node.db.remove_if_empty(src);
    let target = ctx
        .node
        .db
        .get_or_insert_with(&dst, || Value::Set(MemberSet::new()));
    target.as_set_mut()?.insert(member);
    ctx.int(1)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// The cursor walks positions of the member vector downwards: removing a
/// member moves the last one into its place, which is at or above the
/// cursor, so a member present for the whole scan is never skipped (it may
/// come twice, which SCAN allows).
fn sscan(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let cursor = parse_scan_cursor(args.get(2))?;
    let Some(value) = read_value(ctx.node, args.get(1)) else {
        reply_empty_scan(ctx.out);
        return Ok(Outcome::Done);
    };
    let set = value.as_set()?;
    let options = ScanOptions::parse(args, 3)?;
    let len = set.len();
    // Cursor 0 starts at the top; cursor c resumes at position c - 1.
    let mut next = if cursor == 0 {
        len
    } else {
        usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
    };
    let mut found = Vec::new();
    let mut visited = 0;
    while next > 0 && visited < options.count {
        next -= 1;
        visited += 1;
        if let Some(member) = set.get_index(next) {
            if options.matches(member) {
                found.push(member.clone());
            }
        }
    }
    let out = &mut *ctx.out;
    encode::array_header(out, 2);
    encode::bulk(out, next.to_string().as_bytes());
    reply_bulks(out, found.iter());
    Ok(Outcome::Done)
}

/// `*2 "0" *0`: the scan of a missing key.
pub(super) fn reply_empty_scan(out: &mut BytesMut) {
    out.extend_from_slice(b"*2\r\n$1\r\n0\r\n*0\r\n");
}

/// A SCAN cursor as `parseScanCursorOrReply` reads it (C's `strtoul`: a
/// sign is allowed and `-1` wraps).
pub(super) fn parse_scan_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    const INVALID: CmdError = CmdError::fixed("ERR invalid cursor");
    let text = super::zsets::c_str(arg);
    if text.first().is_some_and(|&b| super::zsets::is_c_space(b)) {
        return Err(INVALID);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        // No number at all: strtoul stops at the start, fine only for "".
        return if text.is_empty() { Ok(0) } else { Err(INVALID) };
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(INVALID);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(INVALID)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// The MATCH and COUNT options of SSCAN and ZSCAN.
pub(super) struct ScanOptions<'a> {
    pub count: usize,
    pattern: Option<&'a [u8]>,
}

impl<'a> ScanOptions<'a> {
    pub fn parse(args: &Args<'a>, from: usize) -> Result<Self, CmdError> {
        let mut options = ScanOptions {
            count: 10,
            pattern: None,
        };
        let mut i = from;
        while i < args.len() {
            if args.is(i, "count") && i + 1 < args.len() {
                let count = args.int(i + 1)?;
                if count < 1 {
                    return Err(CmdError::SYNTAX);
                }
                options.count = usize::try_from(count).unwrap_or(usize::MAX);
            } else if args.is(i, "match") && i + 1 < args.len() {
                let pattern = args.get(i + 1);
                // A lone `*` is no filter at all (it would not match "").
                options.pattern = (pattern != b"*").then_some(pattern);
            } else {
                return Err(CmdError::SYNTAX);
            }
            i += 2;
        }
        Ok(options)
    }

    pub fn matches(&self, member: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cursors_read_like_strtoul() {
        assert_eq!(parse_scan_cursor(b"0"), Ok(0));
        assert_eq!(parse_scan_cursor(b"+7"), Ok(7));
        assert_eq!(parse_scan_cursor(b"007"), Ok(7));
        assert_eq!(parse_scan_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_scan_cursor(b""), Ok(0));
        assert!(parse_scan_cursor(b" 1").is_err());
        assert!(parse_scan_cursor(b"1x").is_err());
        assert!(parse_scan_cursor(b"-").is_err());
        assert!(parse_scan_cursor(b"18446744073709551616").is_err());
    }

    #[test]
    fn set_algebra() {
        let a: MemberSet = ["1", "2", "3"].iter().map(|s| Bytes::from(*s)).collect();
        let b: MemberSet = ["2", "3", "4"].iter().map(|s| Bytes::from(*s)).collect();
        let sorted = |mut v: Vec<Bytes>| {
            v.sort();
            v
        };
        let both = [Some(&a), Some(&b)];
        assert_eq!(sorted(combine(&both, SetOp::Inter, 0)), ["2", "3"]);
        assert_eq!(combine(&both, SetOp::Inter, 1).len(), 1);
        assert_eq!(
            sorted(combine(&both, SetOp::Union, 0)),
            ["1", "2", "3", "4"]
        );
        assert_eq!(sorted(combine(&both, SetOp::Diff, 0)), ["1"]);
        assert!(combine(&[Some(&a), None], SetOp::Inter, 0).is_empty());
        assert_eq!(combine(&[Some(&a), None], SetOp::Diff, 0).len(), 3);
        assert!(combine(&[None, Some(&a)], SetOp::Diff, 0).is_empty());
    }
}
