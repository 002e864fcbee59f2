//! The chunked sorted set against a plain sorted vector, through enough
//! operations to split and merge chunks many times.

use rand::{Rng, SeedableRng};

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The model: every (score, member) pair, sorted.
fn model_of(set: &SortedSet) -> Vec<(f64, Bytes)> {
    let mut v: Vec<(f64, Bytes)> = set.scores.iter().map(|(m, s)| (*s, m.clone())).collect();
    v.sort_by(|a, b| Score(a.0).cmp(&Score(b.0)).then_with(|| a.1.cmp(&b.1)));
    v
}

fn check(set: &SortedSet) {
    let expected = model_of(set);
    let got: Vec<(f64, Bytes)> = set.iter().map(|(m, s)| (s, m.clone())).collect();
    assert_eq!(got, expected);
    assert!(
        set.chunks
            .iter()
            .all(|c| !c.is_empty() && c.len() <= CHUNK_MAX)
    );
    for (rank, (_, member)) in expected.iter().enumerate() {
        assert_eq!(set.rank(member), Some(rank));
        assert_eq!(set.get(rank).map(|(m, _)| m.clone()), Some(member.clone()));
    }
}

#[test]
fn random_operations_keep_order_ranks_and_scores() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut set = SortedSet::new();
    for round in 0..6000 {
        let member = b(&format!("m{}", rng.random_range(0..1500)));
        match rng.random_range(0..10) {
            0..=5 => {
                let score = f64::from(rng.random_range(-50..50)) / 2.0;
                set.insert(member, score);
            }
            6..=7 => {
                set.remove(&member);
            }
            8 => {
                let lo = rng.random_range(0..=set.len());
                let hi = (lo + rng.random_range(0..40)).min(set.len());
                let before = model_of(&set);
                let removed = set.remove_range(lo, hi);
                let expected: Vec<(Bytes, f64)> = before
                    .get(lo..hi)
                    .unwrap_or_default()
                    .iter()
                    .map(|(s, m)| (m.clone(), *s))
                    .collect();
                assert_eq!(removed, expected);
            }
            _ => {
                let start = rng.random_range(0..=set.len());
                let all = model_of(&set);
                let fwd: Vec<Bytes> = set.iter_from(start).map(|(m, _)| m.clone()).collect();
                let want: Vec<Bytes> = all
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .map(|(_, m)| m.clone())
                    .collect();
                assert_eq!(fwd, want);
                if start < set.len() {
                    let rev: Vec<Bytes> =
                        set.iter_rev_from(start).map(|(m, _)| m.clone()).collect();
                    let want: Vec<Bytes> =
                        all[..=start].iter().rev().map(|(_, m)| m.clone()).collect();
                    assert_eq!(rev, want);
                }
            }
        }
        if round % 500 == 0 {
            check(&set);
        }
    }
    check(&set);
}

#[test]
fn bounds_count_by_score() {
    let mut set = SortedSet::new();
    for i in 0..1000 {
        set.insert(b(&format!("{i:04}")), f64::from(i % 100));
    }
    // Scores >= 10 start after the 10 scores below it, 10 members each.
    assert_eq!(set.rank_by(|s, _| s < 10.0), 100);
    assert_eq!(set.rank_by(|s, _| s <= 10.0), 110);
    assert_eq!(set.rank_by(|_, _| true), 1000);
    assert_eq!(set.rank_by(|_, _| false), 0);
}

#[test]
fn negative_zero_is_zero_in_order_and_kept_only_when_big() {
    let mut small = SortedSet::new();
    small.insert(b("a"), -0.0);
    assert!(small.score(b"a").is_some_and(|s| s.is_sign_positive()));
    let mut big = SortedSet::new();
    for i in 0..=LISTPACK_MAX_ENTRIES {
        big.insert(b(&i.to_string()), 1.0);
    }
    big.insert(b("z"), -0.0);
    big.insert(b("y"), 0.0);
    assert!(big.score(b"z").is_some_and(|s| s.is_sign_negative()));
    // -0 and 0 tie on score, so the member decides: y before z.
    assert_eq!(big.rank(b"y"), Some(0));
    assert_eq!(big.rank(b"z"), Some(1));
    assert_eq!(big.remove(b"z"), Some(-0.0));
    // A long member also leaves the compact encoding.
    let mut long = SortedSet::new();
    long.insert(Bytes::from(vec![b'x'; LISTPACK_MAX_VALUE + 1]), -0.0);
    assert!(long.iter().all(|(_, s)| s.is_sign_negative()));
    long.settle_encoding();
    assert!(long.iter().all(|(_, s)| s.is_sign_negative()));
    let mut built = SortedSet::new();
    built.compact = false;
    built.insert(b("a"), -0.0);
    built.settle_encoding();
    assert!(built.score(b"a").is_some_and(|s| s.is_sign_positive()));
}

#[test]
fn growing_and_draining_keeps_chunks_bounded() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut set = SortedSet::new();
    let n = 20_000;
    for i in 0..n {
        set.insert(b(&format!("k{i}")), f64::from(rng.random_range(0..1000)));
    }
    check(&set);
    let chunks_full = set.chunks.len();
    assert!(chunks_full <= 2 * n / CHUNK_MAX + 1, "{chunks_full} chunks");
    // Remove three quarters in random order: small chunks merge back.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    for &i in order.iter().take(n * 3 / 4) {
        assert!(set.remove(format!("k{i}").as_bytes()).is_some());
    }
    check(&set);
    assert!(set.chunks.len() <= chunks_full);
    // Pops from both ends empty it.
    while !set.is_empty() {
        let low = set.remove_range(0, 7);
        let len = set.len();
        let high = set.remove_range(len.saturating_sub(5), len);
        assert!(!low.is_empty() || !high.is_empty());
    }
    assert!(set.chunks.is_empty());
}
