//! Fixed-rate sending: request `i` is due at `i / rate` seconds after the start.
//!
//! The schedule does not move when the server is slow (an open loop): a request that leaves
//! late because every connection was busy is timed from when it was due, so a stall shows in
//! the latency instead of silently lowering the rate (coordinated omission).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    rate_per_sec: f64,
}

impl Pacer {
    /// `rate_per_sec` must be positive and finite.
    pub fn new(rate_per_sec: f64) -> Option<Pacer> {
        (rate_per_sec.is_finite() && rate_per_sec > 0.0).then_some(Pacer { rate_per_sec })
    }

    /// When request `i` is due, counted from the start of the run.
    pub fn due(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate_per_sec)
    }

    /// How long to wait before sending request `i` when `elapsed` has passed since the start;
    /// zero when it is already due or late (a late request goes at once, nothing is skipped).
    pub fn wait_before(&self, i: u64, elapsed: Duration) -> Duration {
        self.due(i).saturating_sub(elapsed)
    }

    /// How many requests fit in `duration` at this rate (at least one).
    pub fn count_within(&self, duration: Duration) -> u64 {
        ((duration.as_secs_f64() * self.rate_per_sec).floor() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spread_evenly_from_time_zero() {
        let p = Pacer::new(1000.0).unwrap();
        assert_eq!(p.due(0), Duration::ZERO);
        assert_eq!(p.due(1), Duration::from_millis(1));
        assert_eq!(p.due(1500), Duration::from_millis(1500));
        let p = Pacer::new(4.0).unwrap();
        assert_eq!(p.due(3), Duration::from_millis(750));
    }

    #[test]
    fn waits_only_for_requests_not_yet_due() {
        let p = Pacer::new(100.0).unwrap();
        // Request 5 is due at 50 ms.
        assert_eq!(
            p.wait_before(5, Duration::from_millis(20)),
            Duration::from_millis(30)
        );
        assert_eq!(p.wait_before(5, Duration::from_millis(50)), Duration::ZERO);
        // Behind schedule: send at once, keep the original due time for the latency.
        assert_eq!(p.wait_before(5, Duration::from_secs(3)), Duration::ZERO);
    }

    #[test]
    fn count_within_a_duration_follows_the_rate() {
        let p = Pacer::new(1000.0).unwrap();
        assert_eq!(p.count_within(Duration::from_secs(15)), 15_000);
        assert_eq!(
            Pacer::new(0.5)
                .unwrap()
                .count_within(Duration::from_secs(1)),
            1
        );
    }

    #[test]
    fn rejects_rates_that_cannot_pace() {
        assert!(Pacer::new(0.0).is_none());
        assert!(Pacer::new(-3.0).is_none());
        assert!(Pacer::new(f64::INFINITY).is_none());
        assert!(Pacer::new(f64::NAN).is_none());
    }
}
