//! A token bucket: `rate` tokens a second, at most `rate * burst` saved.

use std::time::Instant;

#[derive(Debug, Default)]
pub struct TokenBucket {
    /// Tokens left and when they were counted (None: full, never used).
    state: Option<(f64, Instant)>,
}

impl TokenBucket {
    /// Take one token at `now`; false when there is none. `qps` <= 0 is
    /// unlimited.
    pub fn take(&mut self, qps: i32, burst: f32, now: Instant) -> bool {
        if qps <= 0 {
            return true;
        }
        let rate = qps as f64;
        let cap = (rate * (burst.max(1.0) as f64)).max(1.0);
        let (tokens, last) = self.state.unwrap_or((cap, now));
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * rate).min(cap);
        let (left, ok) = if tokens >= 1.0 {
            (tokens - 1.0, true)
        } else {
            (tokens, false)
        };
        self.state = Some((left, now));
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::default();
        let t0 = Instant::now();
        let ok = (0..100).filter(|_| b.take(20, 1.5, t0)).count();
        assert_eq!(ok, 30, "burst capacity is qps * burst");
        let t1 = t0 + Duration::from_millis(250);
        let ok = (0..100).filter(|_| b.take(20, 1.5, t1)).count();
        assert_eq!(ok, 5, "refilled at 20/s");
        assert!(b.take(0, 1.0, t1), "0 is unlimited");
        let mut small = TokenBucket::default();
        assert!(small.take(1, 0.1, t0), "capacity is at least one token");
        assert!(!small.take(1, 0.1, t0));
    }
}
