//! A set of hash slots as a bitmap: what one master serves, what a gossip
//! message claims. Comparing two claims is a 2 KB compare, as Redis does
//! with `memcmp` on `myslots`.

use std::fmt::Write as _;

use crate::cluster::SLOT_COUNT;

const WORDS: usize = SLOT_COUNT / 64;

/// Bytes of a bitmap on the wire (Redis's `myslots`: bit `slot % 8` of
/// byte `slot / 8`).
pub const BITMAP_BYTES: usize = SLOT_COUNT / 8;

#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(Box<[u64; WORDS]>);

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap(Box::new([0; WORDS]))
    }
}

impl std::fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotBitmap[{}]", self.ranges_text())
    }
}

impl SlotBitmap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, slot: u16) -> bool {
        let slot = usize::from(slot);
        self.0
            .get(slot / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Sets `slot`; true if it was not set.
    pub fn insert(&mut self, slot: u16) -> bool {
        let slot = usize::from(slot);
        match self.0.get_mut(slot / 64) {
            Some(w) => {
                let bit = 1 << (slot % 64);
                let was = *w & bit != 0;
                *w |= bit;
                !was
            }
            None => false,
        }
    }

    /// Clears `slot`; true if it was set.
    pub fn remove(&mut self, slot: u16) -> bool {
        let slot = usize::from(slot);
        match self.0.get_mut(slot / 64) {
            Some(w) => {
                let bit = 1 << (slot % 64);
                let was = *w & bit != 0;
                *w &= !bit;
                was
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.0.fill(0);
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// True when every slot is set.
    pub fn is_full(&self) -> bool {
        self.0.iter().all(|&w| w == u64::MAX)
    }

    /// Adds every slot of `other`.
    pub fn union_with(&mut self, other: &SlotBitmap) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The set slots, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut w = word;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some((i * 64 + bit) as u16)
            })
        })
    }

    /// The set slots as inclusive ranges, ascending.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for slot in self.iter() {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => out.push((slot, slot)),
            }
        }
        out
    }

    /// `0-5460 5462` as CLUSTER NODES writes slots.
    pub fn ranges_text(&self) -> String {
        let mut text = String::new();
        for (start, end) in self.ranges() {
            if !text.is_empty() {
                text.push(' ');
            }
            if start == end {
                let _ = write!(text, "{start}");
            } else {
                let _ = write!(text, "{start}-{end}");
            }
        }
        text
    }

    /// The wire form: bit `slot % 8` of byte `slot / 8`.
    pub fn to_bytes(&self) -> [u8; BITMAP_BYTES] {
        let mut out = [0u8; BITMAP_BYTES];
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Reads the wire form; `None` unless exactly [`BITMAP_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<SlotBitmap> {
        if bytes.len() != BITMAP_BYTES {
            return None;
        }
        let mut map = SlotBitmap::new();
        for (word, chunk) in map.0.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        Some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_count_and_ranges() {
        let mut m = SlotBitmap::new();
        assert!(m.is_empty());
        for s in (0..=5460).chain([5462, 16383]) {
            assert!(m.insert(s));
        }
        assert!(!m.insert(0));
        assert_eq!(m.count(), 5463);
        assert_eq!(m.ranges_text(), "0-5460 5462 16383");
        assert!(m.remove(5462));
        assert!(!m.remove(5462));
        assert!(!m.contains(5462) && m.contains(16383));
        assert_eq!(m.ranges(), vec![(0, 5460), (16383, 16383)]);
    }

    #[test]
    fn wire_form_round_trips_in_redis_bit_order() {
        let mut m = SlotBitmap::new();
        m.insert(0);
        m.insert(9);
        m.insert(16383);
        let bytes = m.to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 2);
        assert_eq!(bytes[BITMAP_BYTES - 1], 0x80);
        assert_eq!(SlotBitmap::from_bytes(&bytes), Some(m));
        assert_eq!(SlotBitmap::from_bytes(&bytes[1..]), None);
    }

    #[test]
    fn full_and_union() {
        let mut a = SlotBitmap::new();
        let mut b = SlotBitmap::new();
        for s in 0..8192 {
            a.insert(s);
        }
        for s in 8192..16384u16 {
            b.insert(s);
        }
        assert!(!a.is_full());
        a.union_with(&b);
        assert!(a.is_full());
        assert_eq!(a.count(), SLOT_COUNT);
    }
}
