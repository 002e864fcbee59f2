//! ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD (Redis's
//! `zunionInterDiffGenericCommand`). Inputs may be sorted sets or plain
//! sets (whose members score 1).

use bytes::Bytes;

use super::range::store_result;
use super::reply_members;
use crate::node::cmd::sets::{positive_long, read_value};
use crate::node::cmd::{Args, CmdError, CmdResult, Ctx, Outcome, parse_i64};
use crate::node::db::{Map, SortedSet, Value};

use super::num::parse_double;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// `zunionInterAggregate`: a SUM of +inf and -inf is 0.
    fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

/// One input: its key (to spot the same key given twice), value and weight.
struct Source<'a> {
    key: &'a [u8],
    value: Option<&'a Value>,
    weight: f64,
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self.value {
            Some(Value::ZSet(z)) => z.len(),
            Some(Value::Set(s)) => s.len(),
            _ => 0,
        }
    }

    /// Members with their unweighted scores.
    fn members(&self) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        match self.value {
            Some(Value::ZSet(z)) => Box::new(z.iter()),
            Some(Value::Set(s)) => Box::new(s.iter().map(|m| (m, 1.0))),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self.value {
            Some(Value::ZSet(z)) => z.score(member),
            Some(Value::Set(s)) => s.contains(member).then_some(1.0),
            _ => None,
        }
    }
}

/// The parsed command: its sources and options.
struct Request<'a> {
    sources: Vec<Source<'a>>,
    aggregate: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Parses `numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX]
/// [WITHSCORES] [LIMIT n]` from `numkeys_at`, checking the keys' types first
/// as Redis does.
fn parse<'a>(
    ctx: &'a mut Ctx<'_>,
    args: &'a Args<'_>,
    numkeys_at: usize,
    op: Op,
    store: bool,
    cardinality_only: bool,
) -> Result<Request<'a>, CmdError> {
    let setnum = parse_i64(args.get(numkeys_at))?;
    if setnum < 1 {
        return Err(CmdError::new(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.spec.name
        )));
    }
    let first = numkeys_at + 1;
    let setnum = usize::try_from(setnum)
        .ok()
        .filter(|&n| n <= args.len() - first)
        .ok_or(CmdError::SYNTAX)?;
    let keys = first..first + setnum;
    for i in keys.clone() {
        if let Some(value) = read_value(ctx.node, args.get(i)) {
            if !matches!(value, Value::ZSet(_) | Value::Set(_)) {
                return Err(CmdError::WRONGTYPE);
            }
        }
    }
    let mut weights = vec![1.0; setnum];
    let mut aggregate = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0;
    let mut j = first + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        if op != Op::Diff && !cardinality_only && remaining > setnum && args.is(j, "weights") {
            for (n, weight) in weights.iter_mut().enumerate() {
                *weight = parse_double(args.get(j + 1 + n))
                    .ok_or(CmdError::fixed("ERR weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !cardinality_only && remaining >= 2 && args.is(j, "aggregate") {
            aggregate = if args.is(j + 1, "sum") {
                Aggregate::Sum
            } else if args.is(j + 1, "min") {
                Aggregate::Min
            } else if args.is(j + 1, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::SYNTAX);
            };
            j += 2;
        } else if !store && !cardinality_only && args.is(j, "withscores") {
            withscores = true;
            j += 1;
        } else if cardinality_only && remaining >= 2 && args.is(j, "limit") {
            limit = positive_long(args.get(j + 1), Some("ERR LIMIT can't be negative"))? as usize;
            j += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let db = &ctx.node.db;
    let sources = keys
        .zip(weights)
        .map(|(i, weight)| {
            let key = args.get(i);
            Source {
                key,
                value: db.peek(key),
                weight,
            }
        })
        .collect();
    Ok(Request {
        sources,
        aggregate,
        withscores,
        limit,
    })
}

/// The result of `op` as an unsorted list; ZINTERCARD's count stops at
/// `limit` (0: none).
fn compute(req: &mut Request<'_>, op: Op, cardinality_only: bool) -> Vec<(Bytes, f64)> {
    let mut out = Vec::new();
    if op != Op::Diff {
        // Smallest first (a stable sort, as glibc's qsort is a merge sort).
        req.sources.sort_by_key(Source::len);
    }
    let Some((first, others)) = req.sources.split_first() else {
        return out;
    };
    match op {
        Op::Inter => {
            if first.len() == 0 {
                return out;
            }
            for (member, raw) in first.members() {
                let mut score = first.weight * raw;
                if score.is_nan() {
                    score = 0.0;
                }
                let mut in_all = true;
                for other in others {
                    let value = if other.key == first.key {
                        raw * other.weight
                    } else if let Some(s) = other.score(member) {
                        s * other.weight
                    } else {
                        in_all = false;
                        break;
                    };
                    req.aggregate.apply(&mut score, value);
                }
                if in_all {
                    out.push((member.clone(), score));
                    if cardinality_only && req.limit > 0 && out.len() >= req.limit {
                        break;
                    }
                }
            }
        }
        Op::Union => {
            let mut acc: Map<Bytes, f64> = Map::default();
            let mut order = Vec::new();
            for source in &req.sources {
                for (member, raw) in source.members() {
                    let mut score = source.weight * raw;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(member) {
                        Some(target) => req.aggregate.apply(target, score),
                        None => {
                            acc.insert(member.clone(), score);
                            order.push(member.clone());
                        }
                    }
                }
            }
            out = order
                .into_iter()
                .map(|m| {
                    let score = acc.get(&m).copied().unwrap_or(0.0);
                    (m, score)
                })
                .collect();
        }
        Op::Diff => {
            if others
                .iter()
                .any(|o| o.key == first.key && first.value.is_some())
            {
                return out;
            }
            for (member, score) in first.members() {
                if others.iter().all(|o| o.score(member).is_none()) {
                    out.push((member.clone(), score));
                }
            }
        }
    }
    out
}

/// Builds the result as Redis does: a skip list (so `-0` survives in the
/// reply) that a STORE then turns into a listpack when small.
fn build(members: Vec<(Bytes, f64)>) -> SortedSet {
    let mut result = SortedSet::new_unpacked();
    for (member, score) in members {
        result.insert(member, score);
    }
    result
}

fn generic(ctx: &mut Ctx<'_>, args: &Args<'_>, op: Op, store: bool) -> CmdResult {
    let numkeys_at = if store { 2 } else { 1 };
    let mut req = parse(ctx, args, numkeys_at, op, store, false)?;
    let withscores = req.withscores;
    let result = build(compute(&mut req, op, false));
    drop(req);
    if store {
        let mut result = result;
        result.settle_encoding();
        return store_result(ctx, args.bytes(1), result);
    }
    reply_members(
        ctx.out,
        result.iter().collect::<Vec<_>>().into_iter(),
        withscores,
    );
    Ok(Outcome::Done)
}

pub fn zunion(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Union, false)
}

pub fn zinter(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Inter, false)
}

pub fn zdiff(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Diff, false)
}

pub fn zunionstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Union, true)
}

pub fn zinterstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Inter, true)
}

pub fn zdiffstore(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    generic(ctx, args, Op::Diff, true)
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let mut req = parse(ctx, args, 1, Op::Inter, false, true)?;
    let count = compute(&mut req, Op::Inter, true).len();
    drop(req);
    ctx.int(count as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::db::MemberSet;

    #[test]
    fn aggregates_follow_redis() {
        let mut t = f64::INFINITY;
        Aggregate::Sum.apply(&mut t, f64::NEG_INFINITY);
        assert_eq!(t, 0.0);
        let mut t = 1.0;
        Aggregate::Min.apply(&mut t, f64::NAN);
        assert_eq!(t, 1.0);
        Aggregate::Max.apply(&mut t, 3.0);
        assert_eq!(t, 3.0);
    }

    #[test]
    fn sets_count_as_score_one() {
        let set: MemberSet = [Bytes::from("a")].into_iter().collect();
        let value = Value::Set(set);
        let source = Source {
            key: b"k",
            value: Some(&value),
            weight: 2.0,
        };
        assert_eq!(source.score(b"a"), Some(1.0));
        assert_eq!(source.len(), 1);
        assert_eq!(source.members().count(), 1);
    }
}
