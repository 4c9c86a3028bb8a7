//! A bounded set of byte intervals: which parts of a message have been received (RFC 4975
//! §7.3.1 "virtual buffer ... keeping track of which bytes have been received and which are
//! missing") or acknowledged by success reports (§7.3.2).

/// Sorted, non-overlapping, non-adjacent half-open intervals `[start, end)` of 0-based offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, end)`, merging with overlapping or adjacent intervals.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First interval whose end reaches `start` (could merge), by binary search.
        let i = self.ranges.partition_point(|&(_, e)| e < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, std::iter::once((s, e)));
    }

    /// Number of disjoint intervals (a measure of fragmentation, used to bound memory).
    pub fn interval_count(&self) -> usize {
        self.ranges.len()
    }

    /// Total number of bytes covered.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// True when `[0, len)` is entirely covered (always true for `len == 0`).
    pub fn covers_prefix(&self, len: u64) -> bool {
        len == 0 || matches!(self.ranges.first(), Some(&(0, e)) if e >= len)
    }

    /// The highest covered offset (exclusive), 0 when empty.
    pub fn max_end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }

    /// The intervals, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlaps_and_adjacent() {
        let mut r = RangeSet::new();
        r.insert(10, 20);
        r.insert(30, 40);
        assert_eq!(r.interval_count(), 2);
        r.insert(20, 30); // adjacent on both sides
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        r.insert(0, 5);
        r.insert(3, 12);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(0, 40)]);
        assert!(r.covers_prefix(40));
        assert!(!r.covers_prefix(41));
        r.insert(50, 50); // empty: ignored
        assert_eq!(r.covered(), 40);
        r.insert(45, 60);
        r.insert(1, 2); // inside
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(0, 40), (45, 60)]);
        assert_eq!(r.max_end(), 60);
    }

    #[test]
    fn empty_prefix_is_covered() {
        let r = RangeSet::new();
        assert!(r.covers_prefix(0));
        assert!(!r.covers_prefix(1));
    }
}
