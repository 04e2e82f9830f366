//! The statement-latency histograms `/metrics` renders itself: a tenant's
//! own (plain counts, under its latency lock), and the shared `_other` and
//! all-tenants ones (atomics). Each keeps one count per bucket, the last
//! one past the largest bound, so a scrape derives the cumulative buckets
//! and the count from the same numbers and `+Inf` always equals `_count`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Statement latency histogram bounds, in seconds.
pub const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `BOUNDS` as `le` label values (as Prometheus clients print them).
pub const LE: [&str; 14] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10",
];
/// Buckets kept: one per bound and one past the last.
pub const SLOTS: usize = BOUNDS.len() + 1;
/// Series one histogram renders: a bucket per bound, `+Inf`, `_sum`, `_count`.
pub const SERIES: usize = BOUNDS.len() + 3;

/// The bucket an observation falls in.
fn slot_of(secs: f64) -> usize {
    BOUNDS
        .iter()
        .position(|b| secs <= *b)
        .unwrap_or(BOUNDS.len())
}

/// A histogram's numbers (non-cumulative counts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub buckets: [u64; SLOTS],
    pub sum: f64,
}

impl Counts {
    pub fn observe(&mut self, secs: f64) {
        self.buckets[slot_of(secs)] += 1;
        self.sum += secs;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// A histogram shared by many sessions: lock-free.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; SLOTS],
    /// The sum's f64 bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    pub fn observe(&self, secs: f64) {
        self.buckets[slot_of(secs)].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + secs).to_bits())
            });
    }

    pub fn load(&self) -> Counts {
        Counts {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_labels_are_the_bounds() {
        for (b, le) in BOUNDS.iter().zip(LE) {
            assert_eq!(b.to_string(), le);
        }
    }

    #[test]
    fn observations_land_in_one_bucket_and_the_sum() {
        let h = AtomicHistogram::default();
        h.observe(0.0005); // on a bound: that bucket (le is <=)
        h.observe(0.003);
        h.observe(60.0); // past the last bound
        let c = h.load();
        assert_eq!(c.buckets[0], 1);
        assert_eq!(c.buckets[3], 1);
        assert_eq!(c.buckets[SLOTS - 1], 1);
        assert_eq!(c.count(), 3);
        assert!((c.sum - 60.0035).abs() < 1e-9);
        let mut own = Counts::default();
        for s in [0.0005, 0.003, 60.0] {
            own.observe(s);
        }
        assert_eq!(own.buckets, c.buckets);
    }
}
