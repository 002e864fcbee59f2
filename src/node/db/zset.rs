//! A sorted set: members by name (for ZSCORE) and by (score, member) order
//! (for ranges and ranks).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use bytes::Bytes;

use super::value::Map;

/// A score that orders like Redis's: by value, never NaN (commands reject
/// NaN before it gets here).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Members ordered by score, then by member bytes, as Redis orders them.
#[derive(Debug, Clone, Default)]
pub struct SortedSet {
    scores: Map<Bytes, f64>,
    order: BTreeSet<(Score, Bytes)>,
}

impl SortedSet {
    pub fn new() -> Self {
        Self::default()
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

    /// Sets `member`'s score; returns the previous score, if any.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let old = self.scores.insert(member.clone(), score);
        if let Some(old) = old {
            self.order.remove(&(Score(old), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Removes `member`; returns its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (key, score) = self.scores.remove_entry(member)?;
        self.order.remove(&(Score(score), key));
        Some(score)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + '_ {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// The 0-based ascending rank of `member`. O(rank): fine for the sizes
    /// the built-in node serves.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        self.order
            .iter()
            .position(|(s, m)| s.0 == score && m.as_ref() == member)
    }
}
