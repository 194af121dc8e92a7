//! The source of "now". Production reads the system clock; tests move time forward explicitly
//! instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};

#[derive(Clone, Default)]
pub struct Clock {
    /// Seconds added to the system time; only tests change it.
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    /// The current time, truncated to microseconds so that it round-trips through every backend.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now() + Duration::seconds(self.offset_seconds.load(Ordering::Relaxed));
        now.duration_trunc(Duration::microseconds(1)).unwrap_or(now)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }
}
