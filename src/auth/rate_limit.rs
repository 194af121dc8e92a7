//! Limits failed logins per user name and per client address over a sliding window. Each
//! server process keeps its own counts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before expired entries are swept, so that guessed user names cannot grow the
/// map without bound.
const SWEEP_ABOVE: usize = 10_000;

pub struct FailedLogins {
    per_user: u32,
    per_address: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailedLogins {
    pub fn new(per_user: u32, per_address: u32, window: Duration) -> Self {
        FailedLogins {
            per_user,
            per_address,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, address: IpAddr) -> [String; 2] {
        [format!("user:{user}"), format!("addr:{address}")]
    }

    /// `Err(retry_after)` when the user or the address has used up its failures.
    pub fn check(&self, user: &str, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        let [user_key, address_key] = Self::keys(user, address);
        let mut wait = Duration::ZERO;
        for (key, limit) in [(user_key, self.per_user), (address_key, self.per_address)] {
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= limit as usize
                    && let Some(oldest) = times.front()
                {
                    wait = wait.max(self.window - now.duration_since(*oldest));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn record_failure(&self, user: &str, address: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        for key in Self::keys(user, address) {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn record_success(&self, user: &str) {
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        failures.remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_locked_after_the_limit_and_others_are_not() {
        let limiter = FailedLogins::new(3, 100, Duration::from_secs(60));
        let address: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check("alice", address).is_ok());
            limiter.record_failure("alice", address);
        }
        let wait = limiter.check("alice", address).unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(limiter.check("bob", address).is_ok());
    }

    #[test]
    fn an_address_is_locked_across_user_names() {
        let limiter = FailedLogins::new(100, 2, Duration::from_secs(60));
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        limiter.record_failure("a", address);
        limiter.record_failure("b", address);
        assert!(limiter.check("c", address).is_err());
        assert!(limiter.check("c", "10.0.0.2".parse().unwrap()).is_ok());
    }
}
