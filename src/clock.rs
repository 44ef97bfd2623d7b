//! The engine's clock: the system time, plus an offset that tests move forward, so that a
//! five-minute wait or a backoff is tested without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        crate::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (not the system's) forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(+{}ms)", self.offset_ms.load(Ordering::Relaxed))
    }
}
