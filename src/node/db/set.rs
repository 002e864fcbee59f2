//! A set of members with O(1) insert, remove, membership and random pick:
//! the members in a vector plus their positions in a hash map. SPOP and
//! SRANDMEMBER need a uniformly random member, which a plain hash set cannot
//! give without walking it.

use bytes::Bytes;
use rand::Rng;

use super::value::Map;

/// The value of a Redis set. Iteration order is unspecified (as in Redis).
#[derive(Debug, Clone, Default)]
pub struct MemberSet {
    members: Vec<Bytes>,
    /// Position of each member in `members`.
    index: Map<Bytes, usize>,
}

impl MemberSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        MemberSet {
            members: Vec::with_capacity(capacity),
            index: Map::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.index.contains_key(member)
    }

    /// Adds `member`; true if it was not there.
    pub fn insert(&mut self, member: Bytes) -> bool {
        if self.index.contains_key(&member) {
            return false;
        }
        self.index.insert(member.clone(), self.members.len());
        self.members.push(member);
        true
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.index.remove(member) {
            Some(pos) => {
                self.take_at(pos);
                true
            }
            None => false,
        }
    }

    /// Removes the member at `pos` (already gone from `index`), moving the
    /// last member into its place.
    fn take_at(&mut self, pos: usize) -> Option<Bytes> {
        if pos >= self.members.len() {
            return None;
        }
        let taken = self.members.swap_remove(pos);
        if let Some(moved) = self.members.get(pos) {
            if let Some(slot) = self.index.get_mut(moved) {
                *slot = pos;
            }
        }
        Some(taken)
    }

    /// The members, in no particular order.
    pub fn iter(&self) -> std::slice::Iter<'_, Bytes> {
        self.members.iter()
    }

    /// The member at position `pos` of the iteration order (SSCAN's
    /// cursor walks these positions).
    pub fn get_index(&self, pos: usize) -> Option<&Bytes> {
        self.members.get(pos)
    }

    /// A uniformly random member.
    pub fn random(&self, rng: &mut impl Rng) -> Option<&Bytes> {
        if self.members.is_empty() {
            return None;
        }
        self.members.get(rng.random_range(0..self.members.len()))
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, rng: &mut impl Rng) -> Option<Bytes> {
        if self.members.is_empty() {
            return None;
        }
        let pos = rng.random_range(0..self.members.len());
        let member = self.members.get(pos)?.clone();
        self.index.remove(&member);
        self.take_at(pos)
    }

    /// Keeps only the members `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&Bytes) -> bool) {
        self.members.retain(|m| keep(m));
        self.reindex();
    }

    pub fn clear(&mut self) {
        self.members.clear();
        self.index.clear();
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (pos, member) in self.members.iter().enumerate() {
            self.index.insert(member.clone(), pos);
        }
    }
}

impl PartialEq for MemberSet {
    /// Equal as sets: the same members, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(m))
    }
}

impl Eq for MemberSet {}

impl FromIterator<Bytes> for MemberSet {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut set = MemberSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Bytes> for MemberSet {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for member in iter {
            self.insert(member);
        }
    }
}

impl<'a> IntoIterator for &'a MemberSet {
    type Item = &'a Bytes;
    type IntoIter = std::slice::Iter<'a, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

impl IntoIterator for MemberSet {
    type Item = Bytes;
    type IntoIter = std::vec::IntoIter<Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn insert_remove_and_positions_stay_consistent() {
        let mut set = MemberSet::new();
        for i in 0..100 {
            assert!(set.insert(b(&i.to_string())));
        }
        assert!(!set.insert(b("7")));
        for i in (0..100).step_by(3) {
            assert!(set.remove(i.to_string().as_bytes()));
        }
        assert!(!set.remove(b"0"));
        assert_eq!(set.len(), 66);
        for (pos, member) in set.iter().enumerate() {
            assert_eq!(set.index.get(member), Some(&pos));
        }
        for i in 0..100 {
            assert_eq!(set.contains(i.to_string().as_bytes()), i % 3 != 0);
        }
    }

    #[test]
    fn pop_random_empties_the_set_once_per_member() {
        let mut rng = rand::rng();
        let mut set: MemberSet = (0..50).map(|i| b(&i.to_string())).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(m) = set.pop_random(&mut rng) {
            assert!(seen.insert(m));
            assert_eq!(set.index.len(), set.members.len());
        }
        assert_eq!(seen.len(), 50);
        assert!(set.random(&mut rng).is_none());
    }

    #[test]
    fn equality_ignores_order() {
        let a: MemberSet = ["x", "y", "z"].iter().map(|s| b(s)).collect();
        let c: MemberSet = ["z", "x", "y"].iter().map(|s| b(s)).collect();
        assert_eq!(a, c);
        let mut d = c.clone();
        d.retain(|m| m.as_ref() != b"y");
        assert_ne!(a, d);
        assert_eq!(d.len(), 2);
        assert!(d.contains(b"z") && d.contains(b"x"));
    }
}
