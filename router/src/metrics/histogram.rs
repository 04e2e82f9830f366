//! The statement-latency histograms: a tenant's own and the shared
//! `_other` and all-tenants ones that `/metrics` renders (`AtomicHistogram`),
//! and a tenant's recent window (`Window`: the same buckets per 10-second
//! slice of the last minute) that its JSON percentiles are estimated from
//! (`quantile`). All lock-free. Each keeps one count per bucket, the last
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

    /// Back to zero (a series that starts again).
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.sum.store(0, Ordering::Relaxed);
    }
}

/// The `q` quantile (0 to 1) of non-cumulative bucket counts, as
/// Prometheus' `histogram_quantile` estimates it: the bucket holding the
/// rank, and a linear interpolation inside it (from 0 in the first). It is
/// an estimate: the true value lies in the same bucket, so the error is at
/// most that bucket's width. Past the largest bound the bucket ends at
/// `largest` (the largest value observed, when known and larger; else the
/// bound itself). None without observations.
pub fn quantile(buckets: &[u64; SLOTS], q: f64, largest: Option<f64>) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let last = BOUNDS[BOUNDS.len() - 1];
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let upper = match BOUNDS.get(i) {
                Some(&b) => b,
                None => largest.filter(|l| *l > last).unwrap_or(last),
            };
            let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    Some(last)
}

/// Length of one slice of a `Window`, in ms.
pub const SLICE_MS: u64 = 10_000;
/// Slices a `Window` keeps: the current one and the five before, so a
/// window covers the last 50 to 60 seconds.
pub const SLICES: usize = 6;

/// Bucket counts per slice of recent time. Each counter carries the slice
/// it counts (high 32 bits: slice number + 1; low 32 bits: the count), so
/// a slice is reused without a reset pass and without a lock: the first
/// observation of a new slice replaces what an old one left.
#[derive(Debug, Default)]
pub struct Window {
    slices: [[AtomicU64; SLOTS]; SLICES],
    /// Per slice, tagged the same way: the largest observation, in ms
    /// (what the last bucket reaches up to).
    largest: [AtomicU64; SLICES],
}

fn slice_tag(now_ms: u64) -> u64 {
    (now_ms / SLICE_MS + 1) & 0xFFFF_FFFF
}

impl Window {
    /// One observation at `now_ms` (the router's clock, `tenant::now_ms`).
    pub fn observe(&self, now_ms: u64, secs: f64) {
        let tag = slice_tag(now_ms);
        let index = ((now_ms / SLICE_MS) % SLICES as u64) as usize;
        if secs > BOUNDS[BOUNDS.len() - 1] {
            let ms = ((secs * 1000.0).ceil() as u64).min(0xFFFF_FFFF);
            let _ = self.largest[index].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v >> 32 != tag || v & 0xFFFF_FFFF < ms).then_some(tag << 32 | ms)
            });
        }
        let slice = &self.slices[index];
        let _ = slice[slot_of(secs)].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(if v >> 32 != tag {
                tag << 32 | 1
            } else if v & 0xFFFF_FFFF == 0xFFFF_FFFF {
                v
            } else {
                v + 1
            })
        });
    }

    /// The largest observation past the last bound in the slices still in
    /// the window at `now_ms`, in seconds (None: none).
    pub fn largest(&self, now_ms: u64) -> Option<f64> {
        let now = slice_tag(now_ms);
        self.largest
            .iter()
            .map(|m| m.load(Ordering::Relaxed))
            .filter(|v| {
                let tag = v >> 32;
                tag != 0 && tag <= now && now - tag < SLICES as u64
            })
            .map(|v| v & 0xFFFF_FFFF)
            .max()
            .map(|ms| ms as f64 / 1000.0)
    }

    /// The bucket counts of the slices still in the window at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> [u64; SLOTS] {
        let now = slice_tag(now_ms);
        let mut out = [0u64; SLOTS];
        for slice in &self.slices {
            for (o, b) in out.iter_mut().zip(slice) {
                let v = b.load(Ordering::Relaxed);
                let tag = v >> 32;
                if tag != 0 && tag <= now && now - tag < SLICES as u64 {
                    *o += v & 0xFFFF_FFFF;
                }
            }
        }
        out
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

    fn counts(observed: &[f64]) -> [u64; SLOTS] {
        let mut c = Counts::default();
        for s in observed {
            c.observe(*s);
        }
        c.buckets
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        assert_eq!(quantile(&[0; SLOTS], 0.5, None), None);
        // One 2 ms statement: in (1 ms, 2.5 ms], halfway for the median.
        let one = counts(&[0.002]);
        assert_eq!(quantile(&one, 0.5, None), Some(0.00175));
        assert_eq!(quantile(&one, 1.0, None), Some(0.0025));
        // 100 statements of 1..=100 ms: each estimate is in the bucket of
        // the true value, so within that bucket's width of it.
        let ms: Vec<f64> = (1..=100).map(|i| f64::from(i) / 1000.0).collect();
        let c = counts(&ms);
        for (q, truth) in [(0.5, 0.050), (0.95, 0.095), (0.99, 0.099)] {
            let est = quantile(&c, q, None).expect("observations");
            let b = slot_of(truth);
            let lower = if b == 0 { 0.0 } else { BOUNDS[b - 1] };
            assert!(est > lower && est <= BOUNDS[b], "q{q}: {est} for {truth}");
        }
        // 106 fast and 4 slow: p99 is in the slow ones' bucket.
        let mut mixed = vec![0.001; 106];
        mixed.extend([0.3; 4]);
        let p99 = quantile(&counts(&mixed), 0.99, None).expect("observations");
        assert!(p99 > 0.25 && p99 <= 0.5, "{p99}");
        // Past the largest bound: up to the largest value observed, or the
        // bound when that is not known.
        let slow = counts(&[60.0; 10]);
        assert_eq!(quantile(&slow, 0.5, None), Some(10.0));
        assert_eq!(quantile(&slow, 1.0, Some(60.0)), Some(60.0));
        let p99 = quantile(&slow, 0.99, Some(60.0)).expect("observations");
        assert!(p99 > 30.0 && p99 < 60.0, "{p99}");
    }

    #[test]
    fn a_window_keeps_the_last_minute() {
        let w = Window::default();
        let total = |now| w.counts(now).iter().sum::<u64>();
        w.observe(1_000, 0.001);
        w.observe(5_000, 0.002);
        w.observe(15_000, 0.3);
        assert_eq!(total(15_000), 3);
        assert_eq!(w.counts(15_000)[slot_of(0.3)], 1);
        // 1 s and 5 s fall in slice 0, out of the window from slice 6 on.
        assert_eq!(total(59_999), 3);
        assert_eq!(total(60_000), 1);
        assert_eq!(total(70_000), 0);
        // Slice 0's place reused by slice 6: its old counts are gone, the
        // new one counted (with 15 s, still in the window).
        w.observe(61_000, 0.001);
        assert_eq!(total(61_000), 2);
        assert_eq!(w.counts(61_000)[slot_of(0.001)], 1);
    }

    #[test]
    fn a_window_knows_its_slowest_statement_past_the_last_bound() {
        let w = Window::default();
        w.observe(1_000, 5.0);
        assert_eq!(w.largest(1_000), None, "within the bounds");
        w.observe(2_000, 42.0);
        w.observe(12_000, 30.0);
        assert_eq!(w.largest(12_000), Some(42.0));
        // Slice 0 leaves the window: the slower one with it.
        assert_eq!(w.largest(60_000), Some(30.0));
        assert_eq!(w.largest(80_000), None);
    }
}
