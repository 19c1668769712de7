//! A set of sequences stored as inclusive ranges, for deleted sequences.
//!
//! Deletes cluster (purges, acked work-queue prefixes), so ranges keep memory and the
//! `deletes.dat` file small where a per-sequence set would not.

use std::collections::BTreeMap;

/// Sorted, non-overlapping, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end (inclusive).
    ranges: BTreeMap<u64, u64>,
    /// Total sequences held.
    len: u64,
}

impl RangeSet {
    /// Builds a set from sorted, non-overlapping ranges (as `deletes.dat` holds them).
    pub fn from_ranges(ranges: &[(u64, u64)]) -> Self {
        let mut s = RangeSet::default();
        for &(lo, hi) in ranges {
            if lo <= hi && !s.contains(lo) && !s.contains(hi) {
                s.ranges.insert(lo, hi);
                s.len += hi - lo + 1;
            }
        }
        s
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, hi)| *hi >= seq)
    }

    /// Adds `seq`; returns false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        let below = self
            .ranges
            .range(..seq)
            .next_back()
            .map(|(lo, hi)| (*lo, *hi));
        let above = seq
            .checked_add(1)
            .and_then(|n| self.ranges.get(&n).map(|hi| (n, *hi)));
        match (below, above) {
            (Some((lo, hi)), Some((alo, ahi))) if hi + 1 == seq => {
                self.ranges.remove(&alo);
                self.ranges.insert(lo, ahi);
            }
            (Some((lo, hi)), _) if hi + 1 == seq => {
                self.ranges.insert(lo, seq);
            }
            (_, Some((alo, ahi))) => {
                self.ranges.remove(&alo);
                self.ranges.insert(seq, ahi);
            }
            _ => {
                self.ranges.insert(seq, seq);
            }
        }
        self.len += 1;
        true
    }

    /// Adds `lo..=hi`, which lies above every sequence in the set (sequences skipped at the
    /// end of a log).
    pub fn push_range(&mut self, lo: u64, hi: u64) {
        debug_assert!(lo <= hi);
        debug_assert!(self.ranges.iter().next_back().is_none_or(|(_, h)| *h < lo));
        match self.ranges.iter_mut().next_back() {
            Some((_, h)) if *h + 1 == lo => *h = hi,
            _ => {
                self.ranges.insert(lo, hi);
            }
        }
        self.len += hi - lo + 1;
    }

    /// Removes every sequence below `floor`.
    pub fn remove_below(&mut self, floor: u64) {
        while let Some((&lo, &hi)) = self.ranges.iter().next() {
            if lo >= floor {
                break;
            }
            self.ranges.remove(&lo);
            if hi >= floor {
                self.ranges.insert(floor, hi);
                self.len -= floor - lo;
            } else {
                self.len -= hi - lo + 1;
            }
        }
    }

    /// Removes every sequence in `[lo, hi]`.
    pub fn remove_range(&mut self, lo: u64, hi: u64) {
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=hi)
            .filter(|(_, e)| **e >= lo)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            self.len -= e - s + 1;
            if s < lo {
                self.ranges.insert(s, lo - 1);
                self.len += lo - s;
            }
            if e > hi {
                self.ranges.insert(hi + 1, e);
                self.len += e - hi;
            }
        }
    }

    /// How many sequences of `[lo, hi]` the set holds.
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.ranges
            .range(..=hi)
            .rev()
            .take_while(|(_, e)| **e >= lo)
            .map(|(s, e)| (*e).min(hi) - (*s).max(lo) + 1)
            .sum()
    }

    /// Number of sequences held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(lo, hi)| (*lo, *hi))
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_neighbouring_ranges() {
        let mut s = RangeSet::default();
        for seq in [5, 7, 6, 1, 2] {
            assert!(s.insert(seq));
        }
        assert!(!s.insert(6));
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(1, 2), (5, 7)]);
        assert_eq!(s.len(), 5);
        assert!(s.contains(6) && !s.contains(3) && !s.contains(8));
    }

    #[test]
    fn removals_split_ranges_and_keep_the_count() {
        let mut s = RangeSet::from_ranges(&[(1, 10), (20, 25)]);
        s.remove_below(4);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(4, 10), (20, 25)]);
        s.remove_range(6, 21);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(4, 5), (22, 25)]);
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn count_in_agrees_with_membership() {
        let s = RangeSet::from_ranges(&[(3, 5), (8, 8), (10, 14)]);
        for lo in 0..17 {
            for hi in 0..17 {
                let naive = (lo..=hi).filter(|q| s.contains(*q)).count() as u64;
                assert_eq!(s.count_in(lo, hi), naive, "[{lo}, {hi}]");
            }
        }
    }
}
