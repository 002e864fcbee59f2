//! A sorted set: members by name (for ZSCORE) and by (score, member) order
//! (for ranges and ranks).
//!
//! The order is a list of sorted chunks of at most `CHUNK_MAX` members:
//! inserting and removing cost O(log n + CHUNK_MAX), and finding a rank
//! costs a walk over the chunk lengths (n / CHUNK_MAX steps), so ZRANGE by
//! rank, ZRANK and ZCOUNT stay cheap on big sets without the bookkeeping
//! of a skip list with spans.

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::Bytes;

use super::value::Map;

/// Most members in one chunk; a fuller chunk is split in two.
const CHUNK_MAX: usize = 256;
/// A chunk smaller than this is merged into a neighbour when it fits.
const CHUNK_MIN: usize = CHUNK_MAX / 4;

/// Redis keeps a sorted set of at most this many members, none longer than
/// [`LISTPACK_MAX_VALUE`], in its compact "listpack" encoding (the
/// defaults of `zset-max-listpack-entries` / `-value`).
pub const LISTPACK_MAX_ENTRIES: usize = 128;
pub const LISTPACK_MAX_VALUE: usize = 64;

/// A score that orders like Redis's: by value, never NaN (commands reject
/// NaN before it gets here), and `-0` equal to `0` as C's `<` has it.
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

type Item = (Score, Bytes);

/// Members ordered by score, then by member bytes, as Redis orders them.
#[derive(Debug, Clone)]
pub struct SortedSet {
    scores: Map<Bytes, f64>,
    /// Sorted chunks, none empty; concatenated they are in order.
    chunks: Vec<VecDeque<Item>>,
    /// Whether Redis would hold this set as a listpack. The one visible
    /// difference: a listpack stores scores as text and turns `-0` into
    /// `0`, so ZSCORE answers `0` for a small set and `-0` for a big one.
    compact: bool,
}

impl Default for SortedSet {
    fn default() -> Self {
        SortedSet {
            scores: Map::default(),
            chunks: Vec::new(),
            compact: true,
        }
    }
}

impl SortedSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set in Redis's skip-list encoding, as ZUNIONSTORE and
    /// friends build their result (see [`SortedSet::settle_encoding`]).
    pub fn new_unpacked() -> Self {
        SortedSet {
            compact: false,
            ..Self::default()
        }
    }

    /// Whether Redis would hold this set as a listpack (see `compact`).
    pub fn is_compact(&self) -> bool {
        self.compact
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.scores.contains_key(member)
    }

    /// Sets `member`'s score; returns the previous score, if any.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let old = self.scores.get(&member).copied();
        if self.compact
            && old.is_none()
            && (self.len() + 1 > LISTPACK_MAX_ENTRIES || member.len() > LISTPACK_MAX_VALUE)
        {
            self.compact = false;
        }
        let score = if self.compact && score == 0.0 {
            0.0
        } else {
            score
        };
        if let Some(old) = old {
            self.remove_item(old, &member);
        }
        self.scores.insert(member.clone(), score);
        self.insert_item((Score(score), member));
        old
    }

    /// Removes `member`; returns its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.remove_item(score, member);
        Some(score)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + '_ {
        self.chunks.iter().flatten().map(|(s, m)| (m, s.0))
    }

    /// Members from rank `rank` upwards.
    pub fn iter_from(&self, rank: usize) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let (ci, pos) = self
            .position_of_rank(rank)
            .unwrap_or((self.chunks.len(), 0));
        self.chunks
            .get(ci..)
            .unwrap_or_default()
            .iter()
            .flatten()
            .skip(pos)
            .map(|(s, m)| (m, s.0))
    }

    /// Members from rank `rank` (included) downwards.
    pub fn iter_rev_from(&self, rank: usize) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let (ci, end) = match self.position_of_rank(rank) {
            Some((ci, pos)) => (ci, pos + 1),
            None => (0, 0),
        };
        let head = self
            .chunks
            .get(ci)
            .map(|c| c.range(..end.min(c.len())))
            .into_iter()
            .flatten()
            .rev();
        let rest = self
            .chunks
            .get(..ci)
            .unwrap_or_default()
            .iter()
            .rev()
            .flat_map(|c| c.iter().rev());
        head.chain(rest).map(|(s, m)| (m, s.0))
    }

    /// The member at rank `rank` (0-based, ascending).
    pub fn get(&self, rank: usize) -> Option<(&Bytes, f64)> {
        let (ci, pos) = self.position_of_rank(rank)?;
        self.chunks
            .get(ci)
            .and_then(|c| c.get(pos))
            .map(|(s, m)| (m, s.0))
    }

    /// The 0-based ascending rank of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = Score(self.score(member)?);
        Some(self.rank_by(|s, m| (Score(s), m) < (score, member)))
    }

    /// How many members, from the lowest up, satisfy `before`, which must
    /// hold for a prefix of the order and then never again (a score or lex
    /// bound). With members of mixed scores a lex bound is not such a
    /// predicate; the answer is then some position, as in Redis.
    pub fn rank_by(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let before = |item: &Item| before(item.0.0, &item.1);
        let ci = self
            .chunks
            .partition_point(|c| c.back().is_some_and(&before));
        let pos = self
            .chunks
            .get(ci)
            .map_or(0, |c| c.partition_point(&before));
        self.rank_of_position(ci, pos)
    }

    /// Removes the members of ranks `lo..hi`; returns them in ascending
    /// order.
    pub fn remove_range(&mut self, lo: usize, hi: usize) -> Vec<(Bytes, f64)> {
        let hi = hi.min(self.len());
        let Some((start, mut pos)) = self.position_of_rank(lo).filter(|_| lo < hi) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(hi - lo);
        let mut ci = start;
        let mut remaining = hi - lo;
        while remaining > 0 {
            let Some(chunk) = self.chunks.get_mut(ci) else {
                break;
            };
            let take = chunk.len().saturating_sub(pos).min(remaining);
            out.extend(chunk.drain(pos..pos + take).map(|(s, m)| (m, s.0)));
            remaining -= take;
            if chunk.is_empty() {
                self.chunks.remove(ci);
            } else {
                ci += 1;
            }
            pos = 0;
        }
        for (member, _) in &out {
            self.scores.remove(member);
        }
        self.rebalance(start);
        self.rebalance(start + 1);
        out
    }

    /// Decides the encoding Redis gives a set it builds whole (ZUNIONSTORE
    /// and friends convert their result to a listpack when it is small).
    pub fn settle_encoding(&mut self) {
        self.compact = self.len() <= LISTPACK_MAX_ENTRIES
            && self.scores.keys().all(|m| m.len() <= LISTPACK_MAX_VALUE);
        if !self.compact {
            return;
        }
        for score in self.scores.values_mut() {
            if *score == 0.0 {
                *score = 0.0;
            }
        }
        for item in self.chunks.iter_mut().flatten() {
            if item.0.0 == 0.0 {
                item.0 = Score(0.0);
            }
        }
    }

    fn insert_item(&mut self, item: Item) {
        let ci = self
            .chunks
            .partition_point(|c| c.back().is_some_and(|last| *last < item));
        // Past the last chunk: append to it.
        let ci = ci.min(self.chunks.len().saturating_sub(1));
        let Some(chunk) = self.chunks.get_mut(ci) else {
            self.chunks.push(VecDeque::from([item]));
            return;
        };
        let pos = chunk.partition_point(|e| *e < item);
        chunk.insert(pos, item);
        if chunk.len() > CHUNK_MAX {
            let tail = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(ci + 1, tail);
        }
    }

    fn remove_item(&mut self, score: f64, member: &[u8]) {
        let key = (Score(score), member);
        let before = |item: &Item| (item.0, item.1.as_ref()) < key;
        let ci = self
            .chunks
            .partition_point(|c| c.back().is_some_and(before));
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return;
        };
        let pos = chunk.partition_point(before);
        if chunk.get(pos).is_some_and(|e| (e.0, e.1.as_ref()) == key) {
            chunk.remove(pos);
            self.rebalance(ci);
        }
    }

    /// Drops chunk `ci` if empty, or merges it into a neighbour if small.
    fn rebalance(&mut self, ci: usize) {
        let Some(len) = self.chunks.get(ci).map(VecDeque::len) else {
            return;
        };
        if len == 0 {
            self.chunks.remove(ci);
            return;
        }
        if len >= CHUNK_MIN {
            return;
        }
        let next_len = self.chunks.get(ci + 1).map(VecDeque::len);
        if next_len.is_some_and(|n| n + len <= CHUNK_MAX) {
            let next = self.chunks.remove(ci + 1);
            if let Some(chunk) = self.chunks.get_mut(ci) {
                chunk.extend(next);
            }
            return;
        }
        let prev_fits = ci > 0
            && self
                .chunks
                .get(ci - 1)
                .is_some_and(|p| p.len() + len <= CHUNK_MAX);
        if prev_fits {
            let chunk = self.chunks.remove(ci);
            if let Some(prev) = self.chunks.get_mut(ci - 1) {
                prev.extend(chunk);
            }
        }
    }

    fn rank_of_position(&self, ci: usize, pos: usize) -> usize {
        self.chunks
            .get(..ci)
            .unwrap_or_default()
            .iter()
            .map(VecDeque::len)
            .sum::<usize>()
            + pos
    }

    /// The chunk and offset of rank `rank`, if there is such a rank.
    fn position_of_rank(&self, mut rank: usize) -> Option<(usize, usize)> {
        for (ci, chunk) in self.chunks.iter().enumerate() {
            if rank < chunk.len() {
                return Some((ci, rank));
            }
            rank -= chunk.len();
        }
        None
    }
}

#[cfg(test)]
#[path = "zset_tests.rs"]
mod tests;
