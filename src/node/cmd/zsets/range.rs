//! Ranges of a sorted set: by rank, by score (`(1.5`, `-inf`, `+inf`) and
//! by member (`[a`, `(a`, `-`, `+`). ZRANGE with its BYSCORE/BYLEX/REV/
//! LIMIT/WITHSCORES options and the older commands that are special cases
//! of it, ZRANGESTORE, ZCOUNT, ZLEXCOUNT and the ZREMRANGEBY commands.

use std::cmp::Ordering;

use bytes::Bytes;

use super::num::parse_bound;
use super::{read_zset, reply_members};
use crate::node::cmd::{Args, CmdError, CmdResult, Ctx, Outcome, parse_i64};
use crate::node::db::{SortedSet, Value};

const NOT_FLOAT_RANGE: CmdError = CmdError::fixed("ERR min or max is not a float");
const NOT_LEX_RANGE: CmdError = CmdError::fixed("ERR min or max not valid string range item");

/// A score interval (`zrangespec`).
struct ScoreRange {
    min: f64,
    max: f64,
    min_excluded: bool,
    max_excluded: bool,
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        let (min, min_excluded) = Self::parse_bound(min).ok_or(NOT_FLOAT_RANGE)?;
        let (max, max_excluded) = Self::parse_bound(max).ok_or(NOT_FLOAT_RANGE)?;
        Ok(ScoreRange {
            min,
            max,
            min_excluded,
            max_excluded,
        })
    }

    fn parse_bound(arg: &[u8]) -> Option<(f64, bool)> {
        match arg.split_first() {
            Some((b'(', rest)) => Some((parse_bound(rest)?, true)),
            _ => Some((parse_bound(arg)?, false)),
        }
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min_excluded {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max_excluded {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

/// One end of a member interval (`-` and `+` are below and above all).
enum LexBound {
    Lowest,
    Highest,
    Included(Bytes),
    Excluded(Bytes),
}

impl LexBound {
    fn parse(arg: &[u8]) -> Option<Self> {
        // C reads the argument as a string: "+" may be followed by a NUL.
        let alone = arg.get(1).is_none_or(|&b| b == 0);
        match arg.split_first() {
            Some((b'+', _)) if alone => Some(LexBound::Highest),
            Some((b'-', _)) if alone => Some(LexBound::Lowest),
            Some((b'(', rest)) => Some(LexBound::Excluded(Bytes::copy_from_slice(rest))),
            Some((b'[', rest)) => Some(LexBound::Included(Bytes::copy_from_slice(rest))),
            _ => None,
        }
    }

    /// How `member` compares with this bound.
    fn compare(&self, member: &[u8]) -> Ordering {
        match self {
            LexBound::Lowest => Ordering::Greater,
            LexBound::Highest => Ordering::Less,
            LexBound::Included(b) | LexBound::Excluded(b) => member.cmp(b),
        }
    }

    fn excluded(&self) -> bool {
        !matches!(self, LexBound::Included(_))
    }
}

/// A member interval (`zlexrangespec`).
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self, CmdError> {
        Ok(LexRange {
            min: LexBound::parse(min).ok_or(NOT_LEX_RANGE)?,
            max: LexBound::parse(max).ok_or(NOT_LEX_RANGE)?,
        })
    }

    fn above_min(&self, member: &[u8]) -> bool {
        match self.min.compare(member) {
            Ordering::Greater => true,
            Ordering::Equal => !self.min.excluded(),
            Ordering::Less => false,
        }
    }

    fn below_max(&self, member: &[u8]) -> bool {
        match self.max.compare(member) {
            Ordering::Less => true,
            Ordering::Equal => !self.max.excluded(),
            Ordering::Greater => false,
        }
    }
}

/// A score or member interval, as ranks.
enum Bounds {
    Score(ScoreRange),
    Lex(LexRange),
}

impl Bounds {
    fn above_min(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Bounds::Score(r) => r.above_min(score),
            Bounds::Lex(r) => r.above_min(member),
        }
    }

    fn below_max(&self, score: f64, member: &[u8]) -> bool {
        match self {
            Bounds::Score(r) => r.below_max(score),
            Bounds::Lex(r) => r.below_max(member),
        }
    }

    /// The ranks `lo..hi` inside the interval (`hi < lo` when empty).
    fn ranks(&self, zset: &SortedSet) -> (usize, usize) {
        let lo = zset.rank_by(|s, m| !self.above_min(s, m));
        let hi = zset.rank_by(|s, m| self.below_max(s, m));
        (lo, hi)
    }
}

/// A rank interval as ZRANGE reads it (negative counts from the end),
/// clamped to the set: None when empty.
fn rank_span(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, end as usize))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// The members a range selects, in reply order.
fn select<'z>(
    zset: &'z SortedSet,
    kind: Kind,
    reverse: bool,
    ranks: (i64, i64),
    bounds: Option<&Bounds>,
    offset: i64,
    limit: i64,
) -> Vec<(&'z Bytes, f64)> {
    match (kind, bounds) {
        (Kind::Score | Kind::Lex, Some(bounds)) => {
            // Redis skips `offset` members unchecked, then takes members
            // while they stay inside; a negative offset skips everything,
            // a negative limit means no limit.
            let Ok(offset) = usize::try_from(offset) else {
                return Vec::new();
            };
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let (lo, hi) = bounds.ranks(zset);
            if reverse {
                let Some(start) = hi.checked_sub(1).and_then(|s| s.checked_sub(offset)) else {
                    return Vec::new();
                };
                zset.iter_rev_from(start)
                    .take_while(|(m, s)| bounds.above_min(*s, m))
                    .take(limit)
                    .collect()
            } else {
                let Some(start) = lo.checked_add(offset).filter(|&s| s < zset.len()) else {
                    return Vec::new();
                };
                zset.iter_from(start)
                    .take_while(|(m, s)| bounds.below_max(*s, m))
                    .take(limit)
                    .collect()
            }
        }
        _ => {
            let Some((start, end)) = rank_span(ranks.0, ranks.1, zset.len()) else {
                return Vec::new();
            };
            let n = end - start + 1;
            if reverse {
                zset.iter_rev_from(zset.len() - 1 - start).take(n).collect()
            } else {
                zset.iter_from(start).take(n).collect()
            }
        }
    }
}

/// Redis's `zrangeGenericCommand`: `<src> <min> <max> [BYSCORE|BYLEX] [REV]
/// [WITHSCORES] [LIMIT offset count]` from `src_at`, for ZRANGE and
/// ZRANGESTORE (`kind`, `dir` Auto) and the older commands (fixed).
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &Args<'_>,
    src_at: usize,
    store: bool,
    mut kind: Kind,
    mut dir: Direction,
) -> CmdResult {
    let (mut withscores, mut offset, mut limit) = (false, 0, -1);
    let mut j = src_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        if !store && args.is(j, "withscores") {
            withscores = true;
        } else if args.is(j, "limit") && left >= 2 {
            offset = parse_i64(args.get(j + 1))?;
            limit = parse_i64(args.get(j + 2))?;
            j += 2;
        } else if dir == Direction::Auto && args.is(j, "rev") {
            dir = Direction::Reverse;
        } else if kind == Kind::Auto && args.is(j, "bylex") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && args.is(j, "byscore") {
            kind = Kind::Score;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let reverse = dir == Direction::Reverse;
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    if limit != -1 && kind == Kind::Rank {
        return Err(CmdError::fixed(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == Kind::Lex {
        return Err(CmdError::fixed(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut min_at, mut max_at) = (src_at + 1, src_at + 2);
    if reverse && kind != Kind::Rank {
        // Given as max, min.
        std::mem::swap(&mut min_at, &mut max_at);
    }
    let (min, max) = (args.get(min_at), args.get(max_at));
    let mut ranks = (0, 0);
    let bounds = match kind {
        Kind::Score => Some(Bounds::Score(ScoreRange::parse(min, max)?)),
        Kind::Lex => Some(Bounds::Lex(LexRange::parse(min, max)?)),
        Kind::Rank | Kind::Auto => {
            ranks = (parse_i64(min)?, parse_i64(max)?);
            None
        }
    };
    let zset = read_zset(ctx.node, args.get(src_at))?;
    let selected = zset.map_or_else(Vec::new, |z| {
        select(z, kind, reverse, ranks, bounds.as_ref(), offset, limit)
    });
    if !store {
        reply_members(ctx.out, selected.into_iter(), withscores);
        return Ok(Outcome::Done);
    }
    // ZRANGESTORE: a new set built member by member, as Redis does.
    let mut result = SortedSet::new();
    for (member, score) in selected {
        result.insert(member.clone(), score);
    }
    store_result(ctx, args.bytes(1), result)
}

/// Stores a computed sorted set at `dst` (deleting `dst` when it is empty)
/// and answers its size.
pub(super) fn store_result(ctx: &mut Ctx<'_>, dst: Bytes, result: SortedSet) -> CmdResult {
    let len = result.len();
    if len == 0 {
        ctx.node.db.remove(&dst);
    } else {
        ctx.node.db.insert(dst, Value::ZSet(result));
    }
    ctx.int(len as i64)
}

pub fn zrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Auto, Direction::Auto)
}

pub fn zrangestore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 2, true, Kind::Auto, Direction::Auto)
}

pub fn zrevrange(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Rank, Direction::Reverse)
}

pub fn zrangebyscore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Score, Direction::Forward)
}

pub fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Score, Direction::Reverse)
}

pub fn zrangebylex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Lex, Direction::Forward)
}

pub fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, false, Kind::Lex, Direction::Reverse)
}

fn count_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, bounds: Bounds) -> CmdResult {
    let count = match read_zset(ctx.node, args.get(1))? {
        Some(zset) => {
            let (lo, hi) = bounds.ranks(zset);
            hi.saturating_sub(lo)
        }
        None => 0,
    };
    ctx.int(count as i64)
}

pub fn zcount(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let bounds = Bounds::Score(ScoreRange::parse(args.get(2), args.get(3))?);
    count_generic(ctx, args, bounds)
}

pub fn zlexcount(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let bounds = Bounds::Lex(LexRange::parse(args.get(2), args.get(3))?);
    count_generic(ctx, args, bounds)
}

/// ZREMRANGEBYRANK (`bounds` None, ranks from the arguments), BYSCORE and
/// BYLEX.
fn zremrange_generic(ctx: &mut Ctx<'_>, args: &Args<'_>, bounds: Option<Bounds>) -> CmdResult {
    let ranks = match bounds {
        None => Some((args.int(2)?, args.int(3)?)),
        Some(_) => None,
    };
    let key = args.get(1);
    let Some(value) = ctx.node.db.get_mut(key) else {
        return ctx.int(0);
    };
    let zset = value.as_zset_mut()?;
    let (lo, hi) = match (&bounds, ranks) {
        (Some(bounds), _) => bounds.ranks(zset),
        (None, Some((start, end))) => match rank_span(start, end, zset.len()) {
            Some((start, end)) => (start, end + 1),
            None => (0, 0),
        },
        (None, None) => (0, 0),
    };
    let removed = if hi > lo {
        zset.remove_range(lo, hi).len()
    } else {
        0
    };
    ctx.node.db.remove_if_empty(key);
    ctx.int(removed as i64)
}

pub fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    zremrange_generic(ctx, args, None)
}

pub fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let bounds = Bounds::Score(ScoreRange::parse(args.get(2), args.get(3))?);
    zremrange_generic(ctx, args, Some(bounds))
}

pub fn zremrangebylex(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let bounds = Bounds::Lex(LexRange::parse(args.get(2), args.get(3))?);
    zremrange_generic(ctx, args, Some(bounds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_spans_follow_redis() {
        assert_eq!(rank_span(0, -1, 3), Some((0, 2)));
        assert_eq!(rank_span(-100, 100, 3), Some((0, 2)));
        assert_eq!(rank_span(2, 1, 3), None);
        assert_eq!(rank_span(3, 5, 3), None);
        assert_eq!(rank_span(-1, -1, 3), Some((2, 2)));
        assert_eq!(rank_span(0, -4, 3), None);
    }

    #[test]
    fn lex_bounds() {
        assert!(LexBound::parse(b"").is_none());
        assert!(LexBound::parse(b"+x").is_none());
        assert!(LexBound::parse(b"a").is_none());
        let r = LexRange::parse(b"(b", b"[d").expect("valid");
        assert!(!r.above_min(b"b") && r.above_min(b"ba"));
        assert!(r.below_max(b"d") && !r.below_max(b"da"));
        let all = LexRange::parse(b"-", b"+").expect("valid");
        assert!(all.above_min(b"") && all.below_max(b"\xff"));
        let none = LexRange::parse(b"+", b"-").expect("valid");
        assert!(!none.above_min(b"x") && !none.below_max(b"x"));
    }

    #[test]
    fn score_bounds() {
        let r = ScoreRange::parse(b"(1", b"+inf").expect("valid");
        assert!(!r.above_min(1.0) && r.above_min(1.5) && r.below_max(f64::INFINITY));
        assert!(ScoreRange::parse(b"(", b"1").is_ok());
        assert!(ScoreRange::parse(b"x", b"1").is_err());
        assert!(ScoreRange::parse(b"1", b"(nan").is_err());
    }
}
