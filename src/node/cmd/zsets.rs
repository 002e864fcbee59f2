//! Sorted-set commands. This file has the member-level ones (ZADD, ZINCRBY,
//! ZREM, ZSCORE, ZRANK, the pops and their blocking forms, ZRANDMEMBER,
//! ZSCAN); `range` has the ZRANGE family and its counts and removals,
//! `algebra` ZUNION/ZINTER/ZDIFF, and `num` how Redis reads and prints
//! the numbers.

mod algebra;
mod num;
mod range;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::Rng;

use super::lists::parse_timeout;
use super::sets::{
    ScanOptions, long_in_range, parse_scan_cursor, positive_long, read_value, reply_empty_scan,
};
use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome};
use crate::node::db::{SortedSet, Value};
use crate::node::state::NodeState;
use crate::resp::encode;

pub use num::format_score;
use num::{bulk_score, parse_double};
pub(super) use num::{c_str, is_c_space};

pub const COMMANDS: &[(&str, Handler)] = &[
    ("zadd", zadd),
    ("zincrby", zincrby),
    ("zrem", zrem),
    ("zcard", zcard),
    ("zscore", zscore),
    ("zmscore", zmscore),
    ("zrank", zrank),
    ("zrevrank", zrevrank),
    ("zpopmin", zpopmin),
    ("zpopmax", zpopmax),
    ("bzpopmin", bzpopmin),
    ("bzpopmax", bzpopmax),
    ("zmpop", zmpop),
    ("bzmpop", bzmpop),
    ("zrandmember", zrandmember),
    ("zscan", zscan),
    ("zcount", range::zcount),
    ("zlexcount", range::zlexcount),
    ("zrange", range::zrange),
    ("zrangestore", range::zrangestore),
    ("zrevrange", range::zrevrange),
    ("zrangebyscore", range::zrangebyscore),
    ("zrevrangebyscore", range::zrevrangebyscore),
    ("zrangebylex", range::zrangebylex),
    ("zrevrangebylex", range::zrevrangebylex),
    ("zremrangebyrank", range::zremrangebyrank),
    ("zremrangebyscore", range::zremrangebyscore),
    ("zremrangebylex", range::zremrangebylex),
    ("zunion", algebra::zunion),
    ("zinter", algebra::zinter),
    ("zdiff", algebra::zdiff),
    ("zunionstore", algebra::zunionstore),
    ("zinterstore", algebra::zinterstore),
    ("zdiffstore", algebra::zdiffstore),
    ("zintercard", algebra::zintercard),
];

/// What a blocked BZPOPMIN/BZPOPMAX/BZMPOP answers at its timeout.
const TIMEOUT_REPLY: &[u8] = b"*-1\r\n";

/// The sorted set at `key` for a read command.
fn read_zset<'a>(node: &'a mut NodeState, key: &[u8]) -> Result<Option<&'a SortedSet>, CmdError> {
    match read_value(node, key) {
        Some(value) => Ok(Some(value.as_zset()?)),
        None => Ok(None),
    }
}

/// Members with their scores, flat (`member score member score`) or
/// members only.
fn reply_members<'b>(
    out: &mut BytesMut,
    items: impl ExactSizeIterator<Item = (&'b Bytes, f64)>,
    withscores: bool,
) {
    encode::array_header(out, items.len() * if withscores { 2 } else { 1 });
    for (member, score) in items {
        encode::bulk(out, member);
        if withscores {
            bulk_score(out, score);
        }
    }
}

/// ZADD's options.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// What one score-member pair did.
enum Added {
    New(f64),
    Updated(f64),
    /// Processed, but the score stayed the same.
    Same(f64),
    /// Skipped by NX, XX, GT or LT.
    Skipped,
}

const NAN_SCORE: CmdError = CmdError::fixed("ERR resulting score is not a number (NaN)");

/// Redis's `zsetAdd`: one pair under ZADD's flags.
fn add_one(
    zset: &mut SortedSet,
    member: Bytes,
    mut score: f64,
    f: AddFlags,
) -> Result<Added, CmdError> {
    match zset.score(&member) {
        Some(current) => {
            if f.nx {
                return Ok(Added::Skipped);
            }
            if f.incr {
                score += current;
                if score.is_nan() {
                    return Err(NAN_SCORE);
                }
            }
            if (f.lt && score >= current) || (f.gt && score <= current) {
                return Ok(Added::Skipped);
            }
            // -0 equals 0 here, as in C: no update.
            if score == current {
                return Ok(Added::Same(score));
            }
            zset.insert(member, score);
            Ok(Added::Updated(score))
        }
        None if f.xx => Ok(Added::Skipped),
        None => {
            zset.insert(member, score);
            Ok(Added::New(score))
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...],
/// and ZINCRBY (ZADD INCR with one pair; its options are read the same
/// way, as in Redis).
fn zadd_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, incr: bool) -> CmdResult {
    let mut f = AddFlags {
        incr,
        ..AddFlags::default()
    };
    let mut ch = false;
    let mut i = 2;
    while i < args.len() {
        if args.is(i, "nx") {
            f.nx = true;
        } else if args.is(i, "xx") {
            f.xx = true;
        } else if args.is(i, "ch") {
            ch = true;
        } else if args.is(i, "incr") {
            f.incr = true;
        } else if args.is(i, "gt") {
            f.gt = true;
        } else if args.is(i, "lt") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let elements = args.len() - i;
    if elements == 0 || elements % 2 != 0 {
        return Err(CmdError::SYNTAX);
    }
    if f.nx && f.xx {
        return Err(CmdError::fixed(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::fixed(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 2 {
        return Err(CmdError::fixed(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything changes.
    let scores = (i..args.len())
        .step_by(2)
        .map(|at| parse_double(args.get(at)).ok_or(CmdError::NOT_FLOAT))
        .collect::<Result<Vec<f64>, _>>()?;
    let key = args.bytes(1);
    let exists = match ctx.node.db.get(&key) {
        Some(value) => {
            value.as_zset()?;
            true
        }
        None => false,
    };
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut last = 0.0;
    if exists || !f.xx {
        let zset = ctx
            .node
            .db
            .get_or_insert_with(&key, || Value::ZSet(SortedSet::new()))
            .as_zset_mut()?;
        for (n, score) in scores.into_iter().enumerate() {
            let member = args.bytes(i + 2 * n + 1);
            let done = add_one(zset, member, score, f);
            let done = match done {
                Ok(done) => done,
                Err(e) => {
                    ctx.node.db.remove_if_empty(&key);
                    return Err(e);
                }
            };
            match done {
                Added::New(s) => {
                    added += 1;
                    processed += 1;
                    last = s;
                }
                Added::Updated(s) => {
                    updated += 1;
                    processed += 1;
                    last = s;
                }
                Added::Same(s) => {
                    processed += 1;
                    last = s;
                }
                Added::Skipped => {}
            }
        }
        ctx.node.db.remove_if_empty(&key);
    }
    if f.incr {
        if processed > 0 {
            bulk_score(ctx.out, last);
            Ok(Outcome::Done)
        } else {
            ctx.nil()
        }
    } else {
        ctx.int(if ch { added + updated } else { added })
    }
}

fn zadd(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, false)
}

fn zincrby(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, true)
}

fn zrem(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let key = args.get(1);
    let Some(value) = ctx.node.db.get_mut(key) else {
        return ctx.int(0);
    };
    let zset = value.as_zset_mut()?;
    let removed = args.rest(2).filter(|m| zset.remove(m).is_some()).count();
    ctx.node.db.remove_if_empty(key);
    ctx.int(removed as i64)
}

fn zcard(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = read_zset(ctx.node, args.get(1))?.map_or(0, SortedSet::len);
    ctx.int(len as i64)
}

fn zscore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    match read_zset(ctx.node, args.get(1))?.and_then(|z| z.score(args.get(2))) {
        Some(score) => {
            bulk_score(ctx.out, score);
            Ok(Outcome::Done)
        }
        None => ctx.nil(),
    }
}

fn zmscore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let zset = read_zset(ctx.node, args.get(1))?;
    let out = &mut *ctx.out;
    encode::array_header(out, args.len() - 2);
    for member in args.rest(2) {
        match zset.and_then(|z| z.score(member)) {
            Some(score) => bulk_score(out, score),
            None => encode::null_bulk(out),
        }
    }
    Ok(Outcome::Done)
}

fn rank_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, reverse: bool) -> CmdResult {
    let Some(zset) = read_zset(ctx.node, args.get(1))? else {
        return ctx.nil();
    };
    let len = zset.len();
    match zset.rank(args.get(2)) {
        Some(rank) if reverse => ctx.int((len - 1 - rank) as i64),
        Some(rank) => ctx.int(rank as i64),
        None => ctx.nil(),
    }
}

fn zrank(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    rank_generic(ctx, args, true)
}

/// Takes `count` members from the low (or high) end, in pop order.
fn pop(zset: &mut SortedSet, count: usize, max: bool) -> Vec<(Bytes, f64)> {
    let count = count.min(zset.len());
    if max {
        let len = zset.len();
        let mut popped = zset.remove_range(len - count, len);
        popped.reverse();
        popped
    } else {
        zset.remove_range(0, count)
    }
}

/// ZPOPMIN/ZPOPMAX key [count]
fn zpop_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let count = if args.len() == 3 {
        positive_long(args.get(2), None)? as usize
    } else {
        1
    };
    let key = args.get(1);
    let popped = match ctx.node.db.get_mut(key) {
        Some(value) => pop(value.as_zset_mut()?, count, max),
        None => Vec::new(),
    };
    ctx.node.db.remove_if_empty(key);
    reply_members(ctx.out, popped.iter().map(|(m, s)| (m, *s)), true);
    Ok(Outcome::Done)
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// The key popped from and its members with their scores, in pop order.
type Popped = (Bytes, Vec<(Bytes, f64)>);

/// Pops up to `count` members from the first of `keys` that holds a sorted
/// set; None when none does. A key of another type before that is an error,
/// except for a blocked client woken again (`skip_wrong_type`): Redis only
/// serves it from a sorted set and leaves it waiting.
fn pop_first_key(
    node: &mut NodeState,
    keys: &[Bytes],
    count: usize,
    max: bool,
    skip_wrong_type: bool,
) -> Result<Option<Popped>, CmdError> {
    for key in keys {
        let Some(value) = node.db.get_mut(key) else {
            continue;
        };
        let zset = match value.as_zset_mut() {
            Ok(zset) => zset,
            Err(_) if skip_wrong_type => continue,
            Err(e) => return Err(e),
        };
        let popped = pop(zset, count, max);
        node.db.remove_if_empty(key);
        if !popped.is_empty() {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// Waits for one of `keys` to be written, or `timeout` to pass (the
/// connection keeps the first deadline when a woken client waits again).
/// Inside a transaction it answers as on timeout, at once.
fn block(ctx: &mut Ctx<'_>, keys: Vec<Bytes>, timeout: Option<Duration>) -> CmdResult {
    if ctx.client.may_not_block() {
        ctx.out.extend_from_slice(TIMEOUT_REPLY);
        return Ok(Outcome::Done);
    }
    Ok(Outcome::Block {
        keys,
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        timeout_reply: TIMEOUT_REPLY,
    })
}

/// BZPOPMIN/BZPOPMAX key [key ...] timeout
fn bzpop_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, max: bool) -> CmdResult {
    let last = args.len() - 1;
    let timeout = parse_timeout(args.get(last))?;
    let keys: Vec<Bytes> = (1..last).map(|i| args.bytes(i)).collect();
    let retry = ctx.client.block_retry;
    match pop_first_key(ctx.node, &keys, 1, max, retry)? {
        Some((key, popped)) => {
            let out = &mut *ctx.out;
            encode::array_header(out, 1 + 2 * popped.len());
            encode::bulk(out, &key);
            for (member, score) in &popped {
                encode::bulk(out, member);
                bulk_score(out, *score);
            }
            Ok(Outcome::Done)
        }
        None => block(ctx, keys, timeout),
    }
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, false)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, true)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count], and BZMPOP with a
/// timeout before numkeys.
fn zmpop_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, blocking: bool) -> CmdResult {
    let numkeys_at = if blocking { 2 } else { 1 };
    let numkeys = long_in_range(
        args.get(numkeys_at),
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    )?;
    let where_at = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_at + 1))
        .filter(|&at| at < args.len())
        .ok_or(CmdError::SYNTAX)?;
    let max = if args.is(where_at, "min") {
        false
    } else if args.is(where_at, "max") {
        true
    } else {
        return Err(CmdError::SYNTAX);
    };
    let mut count = None;
    let mut i = where_at + 1;
    while i < args.len() {
        if count.is_none() && args.is(i, "count") && i + 1 < args.len() {
            count = Some(long_in_range(
                args.get(i + 1),
                1,
                i64::MAX,
                Some("ERR count should be greater than 0"),
            )? as usize);
            i += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let timeout = if blocking {
        parse_timeout(args.get(1))?
    } else {
        None
    };
    let keys: Vec<Bytes> = (numkeys_at + 1..where_at).map(|i| args.bytes(i)).collect();
    let retry = blocking && ctx.client.block_retry;
    match pop_first_key(ctx.node, &keys, count.unwrap_or(1), max, retry)? {
        Some((key, popped)) => {
            let out = &mut *ctx.out;
            encode::array_header(out, 2);
            encode::bulk(out, &key);
            encode::array_header(out, popped.len());
            for (member, score) in &popped {
                encode::array_header(out, 2);
                encode::bulk(out, member);
                bulk_score(out, *score);
            }
            Ok(Outcome::Done)
        }
        None if blocking => block(ctx, keys, timeout),
        None => ctx.null_array(),
    }
}

fn zmpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zmpop_generic(ctx, args, false)
}

fn bzmpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zmpop_generic(ctx, args, true)
}

/// ZRANDMEMBER key [count [WITHSCORES]]: a negative count may repeat
/// members.
fn zrandmember(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() < 3 {
        let Some(zset) = read_zset(ctx.node, args.get(1))? else {
            return ctx.nil();
        };
        let rank = rand::rng().random_range(0..zset.len().max(1));
        return match zset.get(rank) {
            Some((member, _)) => {
                encode::bulk(ctx.out, member);
                Ok(Outcome::Done)
            }
            None => ctx.nil(),
        };
    }
    let count = long_in_range(args.get(2), -i64::MAX, i64::MAX, None)?;
    if args.len() > 4 || (args.len() == 4 && !args.is(3, "withscores")) {
        return Err(CmdError::SYNTAX);
    }
    let withscores = args.len() == 4;
    // The reply has twice as many entries: Redis keeps that countable.
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::fixed("ERR value is out of range"));
    }
    let Some(zset) = read_zset(ctx.node, args.get(1))? else {
        encode::array_header(ctx.out, 0);
        return Ok(Outcome::Done);
    };
    let out = &mut *ctx.out;
    let len = zset.len();
    let mut rng = rand::rng();
    let n = count.unsigned_abs() as usize;
    if n == 0 {
        encode::array_header(out, 0);
    } else if count < 0 || n == 1 {
        let picks = (0..n).filter_map(|_| zset.get(rng.random_range(0..len)));
        encode::array_header(out, n * if withscores { 2 } else { 1 });
        for (member, score) in picks {
            encode::bulk(out, member);
            if withscores {
                bulk_score(out, score);
            }
        }
    } else if n >= len {
        // The whole set, highest first: Redis walks it from the tail.
        let all: Vec<(&Bytes, f64)> = zset.iter().rev().collect();
        reply_members(out, all.into_iter(), withscores);
    } else {
        let picks: Vec<(&Bytes, f64)> = rand::seq::index::sample(&mut rng, len, n)
            .into_iter()
            .filter_map(|rank| zset.get(rank))
            .collect();
        reply_members(out, picks.into_iter(), withscores);
    }
    Ok(Outcome::Done)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]: the whole set in one
/// step (cursor 0), as Redis does for sets small enough to be listpacks.
/// A rank cursor could skip members when lower ones are removed mid-scan.
fn zscan(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    parse_scan_cursor(args.get(2))?;
    let Some(zset) = read_zset(ctx.node, args.get(1))? else {
        reply_empty_scan(ctx.out);
        return Ok(Outcome::Done);
    };
    let options = ScanOptions::parse(args, 3)?;
    let found: Vec<(&Bytes, f64)> = zset.iter().filter(|(m, _)| options.matches(m)).collect();
    // A listpack hands out the score text it stores.
    let format = if zset.is_compact() {
        num::format_stored_score
    } else {
        format_score
    };
    let out = &mut *ctx.out;
    encode::array_header(out, 2);
    encode::bulk(out, b"0");
    encode::array_header(out, found.len() * 2);
    for (member, score) in found {
        encode::bulk(out, member);
        encode::bulk(out, format(score).as_bytes());
    }
    Ok(Outcome::Done)
}
