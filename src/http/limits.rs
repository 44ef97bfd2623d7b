//! Rate limits kept in memory, per node: failed webhook keys per source address (answered 503
//! with Retry-After, which Alertmanager retries, rather than 429, which it drops), and failed
//! sign-ins per source address and per user name (answered 429).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `burst` events at once and `burst` more every `per`, per key.
pub struct Limiter {
    burst: f64,
    per: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Beyond this many keys the oldest state is dropped: an attacker rotating addresses must not
/// grow memory without bound.
const MAX_KEYS: usize = 100_000;

impl Limiter {
    pub fn new(burst: u32, per: Duration) -> Limiter {
        Limiter {
            burst: burst as f64,
            per,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may go on now; when not, how long until it may.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rate = self.burst / self.per.as_secs_f64();
        let tokens = self.refill(&buckets, key, now, rate);
        if tokens >= 1.0 {
            return Ok(());
        }
        Err(Duration::from_secs_f64(((1.0 - tokens) / rate).max(1.0)))
    }

    /// Counts one event (a failure) against `key`.
    pub fn spend(&self, key: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rate = self.burst / self.per.as_secs_f64();
        let tokens = self.refill(&buckets, key, now, rate);
        if buckets.len() > MAX_KEYS {
            buckets.clear();
        }
        buckets.insert(key.to_string(), ((tokens - 1.0).max(0.0), now));
    }

    fn refill(
        &self,
        buckets: &HashMap<String, (f64, Instant)>,
        key: &str,
        now: Instant,
        rate: f64,
    ) -> f64 {
        match buckets.get(key) {
            Some(&(tokens, at)) => {
                (tokens + now.duration_since(at).as_secs_f64() * rate).min(self.burst)
            }
            None => self.burst,
        }
    }
}

pub struct Limits {
    /// Failed webhook keys per source address.
    pub hook_failures: Limiter,
    /// Failed sign-ins per source address, and per user name.
    pub sign_in_failures: Limiter,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            hook_failures: Limiter::new(30, Duration::from_secs(60)),
            sign_in_failures: Limiter::new(10, Duration::from_secs(300)),
        }
    }
}

pub fn source_key(what: &str, ip: Option<IpAddr>) -> String {
    match ip {
        Some(ip) => format!("{what}:{ip}"),
        None => format!("{what}:unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_burst_and_others_are_not() {
        let l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
            l.spend("a");
        }
        let wait = l.check("a").unwrap_err();
        assert!(wait >= Duration::from_secs(1));
        assert!(l.check("b").is_ok());
    }
}
