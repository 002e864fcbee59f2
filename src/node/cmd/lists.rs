//! List commands, with Redis 7.0's replies and error texts, and the
//! blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP).
//!
//! A blocking command that finds data is served at once, like its plain
//! form. Otherwise it returns [`Outcome::Block`]: the connection waits
//! until one of the keys is written, then runs the same request again
//! (keeping the first deadline), so serving a woken client is the same code
//! as serving it at once. Inside a transaction it answers as on timeout.
//!
//! Argument parsing follows Redis's order (what is checked before the key
//! is looked up), since that decides which error a client sees.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Args, CmdError, CmdResult, Ctx, Handler, Outcome};
use crate::node::db::{Keyspace, Value};
use crate::node::float::LongDouble;
use crate::node::state::NodeState;
use crate::resp::encode;

pub const COMMANDS: &[(&str, Handler)] = &[
    ("lpush", lpush),
    ("rpush", rpush),
    ("lpushx", lpushx),
    ("rpushx", rpushx),
    ("lpop", lpop),
    ("rpop", rpop),
    ("llen", llen),
    ("lrange", lrange),
    ("lindex", lindex),
    ("lset", lset),
    ("lrem", lrem),
    ("ltrim", ltrim),
    ("linsert", linsert),
    ("lpos", lpos),
    ("lmove", lmove),
    ("rpoplpush", rpoplpush),
    ("lmpop", lmpop),
    ("blpop", blpop),
    ("brpop", brpop),
    ("blmove", blmove),
    ("brpoplpush", brpoplpush),
    ("blmpop", blmpop),
];

/// `*-1`: what a blocking pop answers on timeout.
const NULL_ARRAY: &[u8] = b"*-1\r\n";
/// `$-1`: what BLMOVE and BRPOPLPUSH answer inside a transaction.
const NULL_BULK: &[u8] = b"$-1\r\n";
const TIMEOUT_NOT_FLOAT: CmdError = CmdError::fixed("ERR timeout is not a float or out of range");
const TIMEOUT_NEGATIVE: CmdError = CmdError::fixed("ERR timeout is negative");

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    /// LEFT or RIGHT (any case), else a syntax error.
    fn parse(word: &[u8]) -> Result<End, CmdError> {
        if word.eq_ignore_ascii_case(b"left") {
            Ok(End::Left)
        } else if word.eq_ignore_ascii_case(b"right") {
            Ok(End::Right)
        } else {
            Err(CmdError::SYNTAX)
        }
    }
}

fn pop_end(list: &mut VecDeque<Bytes>, end: End) -> Option<Bytes> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
}

fn push_end(list: &mut VecDeque<Bytes>, end: End, item: Bytes) {
    match end {
        End::Left => list.push_front(item),
        End::Right => list.push_back(item),
    }
}

/// A key read by a read-only command, counted in INFO's keyspace hits and
/// misses as Redis's `lookupKeyRead` does.
pub(super) fn lookup_read<'n>(node: &'n mut NodeState, key: &[u8]) -> Option<&'n Value> {
    let NodeState { db, stats, .. } = node;
    let found = db.get(key);
    if found.is_some() {
        stats.keyspace_hits += 1;
    } else {
        stats.keyspace_misses += 1;
    }
    found
}

/// The list at `key` for changing, `None` if absent, WRONGTYPE if not a
/// list.
fn list_mut<'d>(
    db: &'d mut Keyspace,
    key: &[u8],
) -> Result<Option<&'d mut VecDeque<Bytes>>, CmdError> {
    db.get_mut(key).map(Value::as_list_mut).transpose()
}

/// Redis's `getRangeLongFromObjectOrReply`: an integer within
/// `min..=max`; `msg` (when given) is the error for both a non-integer and
/// a value out of range.
pub(super) fn range_long(
    arg: &[u8],
    min: i64,
    max: i64,
    msg: Option<&'static str>,
) -> Result<i64, CmdError> {
    let value = super::parse_i64(arg).map_err(|e| msg.map_or(e, CmdError::fixed))?;
    if value < min || value > max {
        return Err(msg.map_or_else(
            || {
                CmdError::new(format!(
                    "ERR value is out of range, value must between {min} and {max}"
                ))
            },
            CmdError::fixed,
        ));
    }
    Ok(value)
}

/// The count of LPOP/RPOP: zero or more.
fn positive_count(arg: &[u8]) -> Result<usize, CmdError> {
    let n = range_long(
        arg,
        0,
        i64::MAX,
        Some("ERR value is out of range, must be positive"),
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Redis's range rules (LRANGE, LTRIM): negative indexes count from the
/// end; `None` when the range selects nothing.
fn normalize_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 {
        start.saturating_add(len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        stop.saturating_add(len)
    } else {
        stop
    };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((usize::try_from(start).ok()?, usize::try_from(stop).ok()?))
}

/// An index (LINDEX, LSET) into a list of `len`, negative from the end.
fn normalize_index(len: usize, index: i64) -> Option<usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let index = if index < 0 {
        index.checked_add(len)?
    } else {
        index
    };
    if (0..len).contains(&index) {
        usize::try_from(index).ok()
    } else {
        None
    }
}

// ---- pushes ---------------------------------------------------------------

fn lpush(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    push(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    push(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    push(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    push(ctx, args, End::Right, true)
}

/// LPUSH/RPUSH key element...; the X forms only push to an existing list.
fn push(ctx: &mut Ctx<'_>, args: &Args<'_>, end: End, only_existing: bool) -> CmdResult {
    let db = &mut ctx.node.db;
    let list = if only_existing {
        match list_mut(db, args.get(1))? {
            Some(list) => list,
            None => return ctx.int(0),
        }
    } else {
        // The type is checked before anything is created: a WRONGTYPE
        // key is returned as it is.
        db.get_or_insert_with(&args.bytes(1), || Value::List(VecDeque::new()))
            .as_list_mut()?
    };
    list.reserve(args.len() - 2);
    for i in 2..args.len() {
        push_end(list, end, args.bytes(i));
    }
    let len = list.len();
    ctx.int(len as i64)
}

// ---- pops -----------------------------------------------------------------

fn lpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    pop(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    pop(ctx, args, End::Right)
}

/// LPOP/RPOP key [count]: without a count, one element or nil; with one,
/// an array (`*-1` for a missing key, `*0` for count 0).
fn pop(ctx: &mut Ctx<'_>, args: &Args<'_>, end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.spec.name
        )));
    }
    let count = if args.len() == 3 {
        Some(positive_count(args.get(2))?)
    } else {
        None
    };
    let key = args.get(1);
    let Some(list) = list_mut(&mut ctx.node.db, key)? else {
        return match count {
            Some(_) => ctx.null_array(),
            None => ctx.nil(),
        };
    };
    match count {
        None => match pop_end(list, end) {
            Some(item) => encode::bulk(ctx.out, &item),
            None => encode::null_bulk(ctx.out),
        },
        Some(count) => {
            let n = count.min(list.len());
            encode::array_header(ctx.out, n);
            for _ in 0..n {
                if let Some(item) = pop_end(list, end) {
                    encode::bulk(ctx.out, &item);
                }
            }
        }
    }
    ctx.node.db.remove_if_empty(key);
    Ok(Outcome::Done)
}

// ---- reads ----------------------------------------------------------------

fn llen(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let len = match lookup_read(ctx.node, args.get(1)) {
        Some(value) => value.as_list()?.len(),
        None => 0,
    };
    ctx.int(len as i64)
}

/// LRANGE key start stop, written straight into the output.
fn lrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let start = args.int(2)?;
    let stop = args.int(3)?;
    let Some(value) = lookup_read(ctx.node, args.get(1)) else {
        encode::array_header(ctx.out, 0);
        return Ok(Outcome::Done);
    };
    let list = value.as_list()?;
    let Some((from, to)) = normalize_range(list.len(), start, stop) else {
        encode::array_header(ctx.out, 0);
        return Ok(Outcome::Done);
    };
    let n = to - from + 1;
    // One allocation for the whole reply: `$<len>\r\n<data>\r\n` each.
    let bytes: usize = list.range(from..=to).map(|item| item.len() + 16).sum();
    ctx.out.reserve(bytes + 16);
    encode::array_header(ctx.out, n);
    for item in list.range(from..=to) {
        encode::bulk(ctx.out, item);
    }
    Ok(Outcome::Done)
}

fn lindex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let Some(value) = lookup_read(ctx.node, args.get(1)) else {
        return ctx.nil();
    };
    let list = value.as_list()?;
    let index = args.int(2)?;
    match normalize_index(list.len(), index).and_then(|i| list.get(i)) {
        Some(item) => encode::bulk(ctx.out, item),
        None => encode::null_bulk(ctx.out),
    }
    Ok(Outcome::Done)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
fn lpos(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if args.is(i, "rank") && more {
            rank = args.int(i + 1)?;
            if rank == 0 {
                return Err(CmdError::fixed(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                ));
            }
        } else if args.is(i, "count") && more {
            let n = range_long(
                args.get(i + 1),
                0,
                i64::MAX,
                Some("ERR COUNT can't be negative"),
            )?;
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
        } else if args.is(i, "maxlen") && more {
            let n = range_long(
                args.get(i + 1),
                0,
                i64::MAX,
                Some("ERR MAXLEN can't be negative"),
            )?;
            maxlen = usize::try_from(n).unwrap_or(usize::MAX);
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    let Some(value) = lookup_read(ctx.node, args.get(1)) else {
        return match count {
            Some(_) => {
                encode::array_header(ctx.out, 0);
                Ok(Outcome::Done)
            }
            None => ctx.nil(),
        };
    };
    let list = value.as_list()?;
    let element = args.get(2);
    // COUNT 0 means every match; without COUNT, the first one.
    let mut wanted = match count {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let limit = if maxlen == 0 {
        list.len()
    } else {
        maxlen.min(list.len())
    };
    let mut skip = usize::try_from(rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    if rank == i64::MIN {
        // Redis 7.0 negates the rank in a C long: it stays negative, so
        // every match from the tail counts, and a COUNT never stops it.
        skip = 0;
        if count.is_some() {
            wanted = usize::MAX;
        }
    }
    let mut found = Vec::new();
    let mut check = |index: usize, item: &Bytes| {
        if item.as_ref() == element {
            if skip == 0 {
                found.push(index as i64);
            } else {
                skip -= 1;
            }
        }
        found.len() < wanted
    };
    if rank > 0 {
        for (index, item) in list.iter().enumerate().take(limit) {
            if !check(index, item) {
                break;
            }
        }
    } else {
        for (index, item) in list.iter().enumerate().rev().take(limit) {
            if !check(index, item) {
                break;
            }
        }
    }
    match count {
        Some(_) => {
            encode::array_header(ctx.out, found.len());
            for index in found {
                encode::integer(ctx.out, index);
            }
            Ok(Outcome::Done)
        }
        None => match found.first() {
            Some(&index) => ctx.int(index),
            None => ctx.nil(),
        },
    }
}

// ---- in-place changes -----------------------------------------------------

fn lset(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let list = list_mut(&mut ctx.node.db, args.get(1))?.ok_or(CmdError::NO_SUCH_KEY)?;
    let index = args.int(2)?;
    let slot = normalize_index(list.len(), index)
        .and_then(|i| list.get_mut(i))
        .ok_or(CmdError::OUT_OF_RANGE)?;
    *slot = args.bytes(3);
    ctx.ok()
}

/// LREM key count element: count > 0 from the head, < 0 from the tail,
/// 0 every occurrence.
fn lrem(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let count = args.int(2)?;
    let key = args.get(1);
    let Some(list) = list_mut(&mut ctx.node.db, key)? else {
        return ctx.int(0);
    };
    let element = args.get(3);
    let before = list.len();
    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    if count == 0 {
        list.retain(|item| item.as_ref() != element);
    } else if count > 0 {
        let mut removed = 0;
        list.retain(|item| {
            if removed < limit && item.as_ref() == element {
                removed += 1;
                false
            } else {
                true
            }
        });
    } else {
        // From the tail: keep the first (matches - limit) matches.
        let matches = list.iter().filter(|item| item.as_ref() == element).count();
        let mut keep = matches.saturating_sub(limit);
        list.retain(|item| {
            if item.as_ref() != element {
                true
            } else if keep > 0 {
                keep -= 1;
                true
            } else {
                false
            }
        });
    }
    let removed = before - list.len();
    ctx.node.db.remove_if_empty(key);
    ctx.int(removed as i64)
}

fn ltrim(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let start = args.int(2)?;
    let stop = args.int(3)?;
    let key = args.get(1);
    if let Some(list) = list_mut(&mut ctx.node.db, key)? {
        match normalize_range(list.len(), start, stop) {
            Some((from, to)) => {
                list.truncate(to + 1);
                list.drain(..from);
            }
            None => list.clear(),
        }
        ctx.node.db.remove_if_empty(key);
    }
    ctx.ok()
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 when the
/// pivot is not there, 0 when the key is not.
fn linsert(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let after = if args.is(2, "after") {
        true
    } else if args.is(2, "before") {
        false
    } else {
        return Err(CmdError::SYNTAX);
    };
    let Some(list) = list_mut(&mut ctx.node.db, args.get(1))? else {
        return ctx.int(0);
    };
    let pivot = args.get(3);
    let Some(at) = list.iter().position(|item| item.as_ref() == pivot) else {
        return ctx.int(-1);
    };
    list.insert(if after { at + 1 } else { at }, args.bytes(4));
    let len = list.len();
    ctx.int(len as i64)
}

// ---- moves ----------------------------------------------------------------

fn lmove(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let from = End::parse(args.get(3))?;
    let to = End::parse(args.get(4))?;
    move_reply(ctx, args, from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    move_reply(ctx, args, End::Right, End::Left)
}

/// Moves one element from `args[1]` to `args[2]` and answers it (nil
/// when the source is missing).
fn move_reply(ctx: &mut Ctx<'_>, args: &Args<'_>, from: End, to: End) -> CmdResult {
    match move_one(&mut ctx.node.db, args.get(1), &args.bytes(2), from, to)? {
        Some(item) => ctx.bulk(&item),
        None => ctx.nil(),
    }
}

/// LMOVE's work: `None` when the source is missing. The destination's
/// type is checked before anything moves; a source that is also the
/// destination rotates (and is never deleted on the way).
fn move_one(
    db: &mut Keyspace,
    src: &[u8],
    dst: &Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, CmdError> {
    match db.get(src) {
        None => return Ok(None),
        Some(value) => {
            value.as_list()?;
        }
    }
    if let Some(value) = db.get(dst) {
        value.as_list()?;
    }
    let Some(item) = list_mut(db, src)?.and_then(|list| pop_end(list, from)) else {
        return Ok(None);
    };
    let target = db
        .get_or_insert_with(dst, || Value::List(VecDeque::new()))
        .as_list_mut()?;
    push_end(target, to, item.clone());
    db.remove_if_empty(src);
    Ok(Some(item))
}

// ---- multi-key pops -------------------------------------------------------

/// The parsed tail of LMPOP/BLMPOP: `numkeys key... LEFT|RIGHT [COUNT n]`.
struct MultiPop {
    first_key: usize,
    numkeys: usize,
    end: End,
    count: usize,
}

impl MultiPop {
    /// Parses from `numkeys_at`, in Redis's order and with its texts.
    fn parse(args: &Args<'_>, numkeys_at: usize) -> Result<MultiPop, CmdError> {
        let numkeys = range_long(
            args.get(numkeys_at),
            1,
            i64::MAX,
            Some("ERR numkeys should be greater than 0"),
        )?;
        let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
        let where_at = numkeys_at.saturating_add(numkeys).saturating_add(1);
        if where_at >= args.len() {
            return Err(CmdError::SYNTAX);
        }
        let end = End::parse(args.get(where_at))?;
        let mut count = None;
        let mut i = where_at + 1;
        while i < args.len() {
            if count.is_none() && args.is(i, "count") && i + 1 < args.len() {
                let n = range_long(
                    args.get(i + 1),
                    1,
                    i64::MAX,
                    Some("ERR count should be greater than 0"),
                )?;
                count = Some(usize::try_from(n).unwrap_or(usize::MAX));
                i += 2;
            } else {
                return Err(CmdError::SYNTAX);
            }
        }
        Ok(MultiPop {
            first_key: numkeys_at + 1,
            numkeys,
            end,
            count: count.unwrap_or(1),
        })
    }

    fn keys(&self) -> std::ops::Range<usize> {
        self.first_key..self.first_key + self.numkeys
    }

    /// Pops from the first non-empty list and answers `[key, [elements]]`;
    /// false when every list is empty. A key of another type answers
    /// WRONGTYPE when it comes before any non-empty list (except for a
    /// woken blocked client, which waits on).
    fn serve(&self, ctx: &mut Ctx<'_>, args: &Args<'_>) -> Result<bool, CmdError> {
        let skip_wrong_type = ctx.client.block_retry;
        for i in self.keys() {
            let key = args.get(i);
            let Some(list) = waiting_list(&mut ctx.node.db, key, skip_wrong_type)? else {
                continue;
            };
            let n = self.count.min(list.len());
            encode::array_header(ctx.out, 2);
            encode::bulk(ctx.out, key);
            encode::array_header(ctx.out, n);
            for _ in 0..n {
                if let Some(item) = pop_end(list, self.end) {
                    encode::bulk(ctx.out, &item);
                }
            }
            ctx.node.db.remove_if_empty(key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT n].
fn lmpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let pop = MultiPop::parse(args, 1)?;
    if pop.serve(ctx, args)? {
        Ok(Outcome::Done)
    } else {
        ctx.null_array()
    }
}

// ---- blocking forms -------------------------------------------------------

/// A blocking command's timeout in seconds as Redis reads it: a long
/// double (hex and tiny values included), milliseconds rounded up, 0
/// meaning forever (`None`), and a value too large for Redis's
/// milliseconds counting as negative, as it does there.
pub(super) fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, CmdError> {
    let seconds = LongDouble::parse(arg).ok_or(TIMEOUT_NOT_FLOAT)?;
    let ms = seconds.ceil_millis().unwrap_or(i64::MIN);
    let ms = u64::try_from(ms).map_err(|_| TIMEOUT_NEGATIVE)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// The list a blocking command may take from: `None` when absent or, for
/// a woken client (`skip_wrong_type`), of another type.
fn waiting_list<'d>(
    db: &'d mut Keyspace,
    key: &[u8],
    skip_wrong_type: bool,
) -> Result<Option<&'d mut VecDeque<Bytes>>, CmdError> {
    match list_mut(db, key) {
        Err(_) if skip_wrong_type => Ok(None),
        other => other,
    }
}

/// Nothing to serve: block on `keys` until the timeout, or inside a
/// transaction answer `in_tx_reply` at once.
fn block_on(
    ctx: &mut Ctx<'_>,
    keys: Vec<Bytes>,
    timeout: Option<Duration>,
    in_tx_reply: &'static [u8],
) -> CmdResult {
    if ctx.client.may_not_block() {
        ctx.out.extend_from_slice(in_tx_reply);
        return Ok(Outcome::Done);
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    Ok(Outcome::Block {
        keys,
        deadline,
        timeout_reply: NULL_ARRAY,
    })
}

fn blpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

/// BLPOP/BRPOP key... timeout: `[key, element]` from the first non-empty
/// list, in argument order.
fn blocking_pop(ctx: &mut Ctx<'_>, args: &Args<'_>, end: End) -> CmdResult {
    let last = args.len() - 1;
    let timeout = parse_timeout(args.get(last))?;
    let skip_wrong_type = ctx.client.block_retry;
    for i in 1..last {
        let key = args.get(i);
        let Some(list) = waiting_list(&mut ctx.node.db, key, skip_wrong_type)? else {
            continue;
        };
        let Some(item) = pop_end(list, end) else {
            continue;
        };
        encode::array_header(ctx.out, 2);
        encode::bulk(ctx.out, key);
        encode::bulk(ctx.out, &item);
        ctx.node.db.remove_if_empty(key);
        return Ok(Outcome::Done);
    }
    let keys = (1..last).map(|i| args.bytes(i)).collect();
    block_on(ctx, keys, timeout, NULL_ARRAY)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout.
fn blmove(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let from = End::parse(args.get(3))?;
    let to = End::parse(args.get(4))?;
    let timeout = parse_timeout(args.get(5))?;
    blocking_move(ctx, args, from, to, timeout)
}

/// BRPOPLPUSH source destination timeout.
fn brpoplpush(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let timeout = parse_timeout(args.get(3))?;
    blocking_move(ctx, args, End::Right, End::Left, timeout)
}

/// Moves at once when the source has data, else blocks on the source only.
fn blocking_move(
    ctx: &mut Ctx<'_>,
    args: &Args<'_>,
    from: End,
    to: End,
    timeout: Option<Duration>,
) -> CmdResult {
    let src = args.get(1);
    if waiting_list(&mut ctx.node.db, src, ctx.client.block_retry)?.is_none() {
        return block_on(ctx, vec![args.bytes(1)], timeout, NULL_BULK);
    }
    match move_one(&mut ctx.node.db, args.get(1), &args.bytes(2), from, to)? {
        Some(item) => ctx.bulk(&item),
        None => block_on(ctx, vec![args.bytes(1)], timeout, NULL_BULK),
    }
}

/// BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT n]: the options are
/// checked before the timeout, as Redis does.
fn blmpop(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let pop = MultiPop::parse(args, 2)?;
    let timeout = parse_timeout(args.get(1))?;
    if pop.serve(ctx, args)? {
        return Ok(Outcome::Done);
    }
    let keys = pop.keys().map(|i| args.bytes(i)).collect();
    block_on(ctx, keys, timeout, NULL_ARRAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(normalize_range(5, 0, -1), Some((0, 4)));
        assert_eq!(normalize_range(5, -100, 100), Some((0, 4)));
        assert_eq!(normalize_range(5, 3, 1), None);
        assert_eq!(normalize_range(5, 5, 10), None);
        assert_eq!(normalize_range(5, -2, -1), Some((3, 4)));
        assert_eq!(normalize_range(5, i64::MIN, i64::MAX), Some((0, 4)));
        assert_eq!(normalize_range(0, 0, -1), None);
    }

    #[test]
    fn indexes_follow_redis() {
        assert_eq!(normalize_index(3, -1), Some(2));
        assert_eq!(normalize_index(3, -3), Some(0));
        assert_eq!(normalize_index(3, -4), None);
        assert_eq!(normalize_index(3, 3), None);
        assert_eq!(normalize_index(3, i64::MIN), None);
    }

    #[test]
    fn timeouts_follow_redis() {
        assert_eq!(parse_timeout(b"0"), Ok(None));
        assert_eq!(parse_timeout(b"-0"), Ok(None));
        // -0.1 ms rounds up to 0: forever, as in Redis.
        assert_eq!(parse_timeout(b"-0.0001"), Ok(None));
        assert_eq!(parse_timeout(b"0.0001"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(parse_timeout(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(parse_timeout(b"-1"), Err(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"inf"), Err(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"1e16"), Err(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"x"), Err(TIMEOUT_NOT_FLOAT));
        assert_eq!(parse_timeout(b" 1"), Err(TIMEOUT_NOT_FLOAT));
        assert_eq!(parse_timeout(b"nan"), Err(TIMEOUT_NOT_FLOAT));
        assert_eq!(parse_timeout(b"1e5000"), Err(TIMEOUT_NOT_FLOAT));
        assert_eq!(parse_timeout(b"0x7FFFFFFFFFFFFF"), Err(TIMEOUT_NEGATIVE));
        assert_eq!(parse_timeout(b"1e-400"), Ok(Some(Duration::from_millis(1))));
    }

    #[test]
    fn range_long_texts() {
        assert_eq!(range_long(b"x", 0, 5, None), Err(CmdError::NOT_INTEGER));
        assert_eq!(
            range_long(b"9", 0, 5, None).map_err(|e| e.to_string()),
            Err("ERR value is out of range, value must between 0 and 5".to_string())
        );
        assert_eq!(
            range_long(b"x", 0, 5, Some("ERR mine")),
            Err(CmdError::fixed("ERR mine"))
        );
        assert_eq!(range_long(b"3", 0, 5, None), Ok(3));
    }
}
