//! Rate limits kept in memory, per node. On the ingress (answered 503 with Retry-After, which
//! Alertmanager retries, rather than 429, which it drops): deliveries per API key and per source
//! address, and refused keys per source address. On the management API (answered 429): requests
//! per user, and failed sign-ins per source address and per user name.

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
        let buckets = self.lock();
        self.wait(self.refill(&buckets, key, Instant::now()))
    }

    /// Counts one event against `key` if it may go on now; else how long until it may.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let mut buckets = self.lock();
        let now = Instant::now();
        let tokens = self.refill(&buckets, key, now);
        self.wait(tokens)?;
        store(&mut buckets, key, tokens - 1.0, now);
        Ok(())
    }

    /// Counts one event (a failure) against `key`.
    pub fn spend(&self, key: &str) {
        let mut buckets = self.lock();
        let now = Instant::now();
        let tokens = self.refill(&buckets, key, now);
        store(&mut buckets, key, (tokens - 1.0).max(0.0), now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (f64, Instant)>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rate(&self) -> f64 {
        self.burst / self.per.as_secs_f64()
    }

    /// Nothing with a token to spend; else how long until there is one.
    fn wait(&self, tokens: f64) -> Result<(), Duration> {
        if tokens >= 1.0 {
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            ((1.0 - tokens) / self.rate()).max(1.0),
        ))
    }

    /// The tokens `key` has now.
    fn refill(&self, buckets: &HashMap<String, (f64, Instant)>, key: &str, now: Instant) -> f64 {
        match buckets.get(key) {
            Some(&(tokens, at)) => {
                (tokens + now.duration_since(at).as_secs_f64() * self.rate()).min(self.burst)
            }
            None => self.burst,
        }
    }
}

fn store(buckets: &mut HashMap<String, (f64, Instant)>, key: &str, tokens: f64, now: Instant) {
    if let Some(bucket) = buckets.get_mut(key) {
        *bucket = (tokens, now);
        return;
    }
    if buckets.len() >= MAX_KEYS {
        buckets.clear();
    }
    buckets.insert(key.to_string(), (tokens, now));
}

pub struct Limits {
    /// Failed webhook keys per source address.
    pub hook_failures: Limiter,
    /// Failed sign-ins per source address, and per user name.
    pub sign_in_failures: Limiter,
    /// Deliveries per API key; `None` when off.
    pub deliveries_per_key: Option<Limiter>,
    /// Deliveries per source address; `None` when off.
    pub deliveries_per_source: Option<Limiter>,
    /// Management API requests per user (token or session); `None` when off.
    pub api_per_user: Option<Limiter>,
}

impl Limits {
    pub fn new(config: &crate::config::RateLimits) -> Limits {
        // A rate of R per second admits bursts of 2R: Alertmanager flushes several groups at
        // once after a restart, and the UI loads a page with a handful of requests.
        let per_second =
            |rate: u32| (rate > 0).then(|| Limiter::new(2 * rate, Duration::from_secs(2)));
        Limits {
            hook_failures: Limiter::new(30, Duration::from_secs(60)),
            sign_in_failures: Limiter::new(10, Duration::from_secs(300)),
            deliveries_per_key: per_second(config.deliveries_per_key),
            deliveries_per_source: per_second(config.deliveries_per_source),
            api_per_user: per_second(config.api_per_user),
        }
    }
}

/// Takes one from `limiter`, if there is one.
pub fn take(limiter: &Option<Limiter>, key: &str) -> Result<(), Duration> {
    limiter.as_ref().map_or(Ok(()), |l| l.take(key))
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

    #[test]
    fn take_admits_the_burst_then_refuses_with_a_wait() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.take("k").is_ok());
        assert!(l.take("k").is_ok());
        assert!(l.take("k").unwrap_err() >= Duration::from_secs(1));
        assert!(l.take("other").is_ok());
    }
}
