//! Limits failed logins over a sliding window, in three counts: one user name from one client
//! address, one address across user names, and one user name across all addresses. The first
//! two refuse (429); the last, a ceiling against guessing from many addresses, refuses only the
//! addresses that have failed for that user and slows the others down, so that nobody can lock
//! an account by failing on purpose, and the right password from an address that has not failed
//! is never refused. [`FailedLogins`] keeps the counts in this process (SQLite, one process);
//! `shared_limit` keeps them in PostgreSQL, for every process on the database.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before expired entries are swept, so that guessed user names cannot grow the
/// map without bound.
const SWEEP_ABOVE: usize = 10_000;

/// How much an attempt over the per-user ceiling waits, per failure over it, and at most.
const SLOWDOWN_STEP: Duration = Duration::from_millis(100);
const MAX_SLOWDOWN: Duration = Duration::from_secs(5);

/// The limits, each a number of failures within the window.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// One user name from one client address.
    pub per_user_and_address: u32,
    /// One client address, across user names.
    pub per_address: u32,
    /// One user name, across all addresses.
    pub per_user: u32,
    pub window: Duration,
}

/// What a login attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting this long.
    Proceed(Duration),
    /// Refused; worth trying again after this long.
    Refused(Duration),
}

/// The failures of one count within the window, and when the oldest of them leaves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count {
    pub failures: usize,
    pub frees_in: Duration,
}

/// What an attempt may do, given its three counts: the one rule both limiters apply.
pub fn verdict(limits: &LoginLimits, pair: Count, from_address: Count, for_user: Count) -> Verdict {
    let over = |count: Count, limit: u32| count.failures >= limit as usize;
    if over(pair, limits.per_user_and_address) {
        return Verdict::Refused(pair.frees_in);
    }
    if over(from_address, limits.per_address) {
        return Verdict::Refused(from_address.frees_in);
    }
    if over(for_user, limits.per_user) {
        if pair.failures > 0 {
            return Verdict::Refused(for_user.frees_in.max(pair.frees_in));
        }
        let excess = (for_user.failures + 1 - limits.per_user as usize) as u32;
        return Verdict::Proceed(SLOWDOWN_STEP.saturating_mul(excess).min(MAX_SLOWDOWN));
    }
    Verdict::Proceed(Duration::ZERO)
}

/// The counts of one process.
pub struct FailedLogins {
    limits: LoginLimits,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

pub(crate) fn user_key(user: &str) -> String {
    format!("user:{user}")
}

pub(crate) fn address_key(address: IpAddr) -> String {
    format!("addr:{address}")
}

pub(crate) fn pair_key(user: &str, address: IpAddr) -> String {
    format!("pair:{address}:{user}")
}

impl FailedLogins {
    pub fn new(limits: LoginLimits) -> Self {
        FailedLogins {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// What an attempt to log in as `user` from `address` may do now.
    pub fn check(&self, user: &str, address: IpAddr) -> Verdict {
        let now = Instant::now();
        let window = self.limits.window;
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        let mut count = |key: &str| match failures.get_mut(key) {
            Some(times) => {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                let frees_in = times
                    .front()
                    .map_or(Duration::ZERO, |t| window - now.duration_since(*t));
                Count {
                    failures: times.len(),
                    frees_in,
                }
            }
            None => Count::default(),
        };
        let pair = count(&pair_key(user, address));
        let from_address = count(&address_key(address));
        let for_user = count(&user_key(user));
        verdict(&self.limits, pair, from_address, for_user)
    }

    pub fn record_failure(&self, user: &str, address: IpAddr) {
        let now = Instant::now();
        let window = self.limits.window;
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for key in [
            user_key(user),
            address_key(address),
            pair_key(user, address),
        ] {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears the failures of that user from that address (not the
    /// address's, nor the user's elsewhere).
    pub fn record_success(&self, user: &str, address: IpAddr) {
        let mut failures = self.failures.lock().expect("rate limiter poisoned");
        failures.remove(&pair_key(user, address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_pair: u32, per_address: u32, per_user: u32) -> FailedLogins {
        FailedLogins::new(LoginLimits {
            per_user_and_address: per_pair,
            per_address,
            per_user,
            window: Duration::from_secs(60),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn failures_from_one_address_do_not_lock_the_user_out_elsewhere() {
        let limiter = limits(3, 100, 100);
        for _ in 0..3 {
            assert_eq!(
                limiter.check("alice", ip("10.0.0.1")),
                Verdict::Proceed(Duration::ZERO)
            );
            limiter.record_failure("alice", ip("10.0.0.1"));
        }
        let Verdict::Refused(wait) = limiter.check("alice", ip("10.0.0.1")) else {
            panic!("the address that failed is refused")
        };
        assert!(wait > Duration::from_secs(50));
        assert_eq!(
            limiter.check("alice", ip("10.0.0.2")),
            Verdict::Proceed(Duration::ZERO)
        );
        assert_eq!(
            limiter.check("bob", ip("10.0.0.1")),
            Verdict::Proceed(Duration::ZERO)
        );
    }

    #[test]
    fn an_address_is_limited_across_user_names() {
        let limiter = limits(100, 2, 100);
        limiter.record_failure("a", ip("10.0.0.1"));
        limiter.record_failure("b", ip("10.0.0.1"));
        assert!(matches!(
            limiter.check("c", ip("10.0.0.1")),
            Verdict::Refused(_)
        ));
        assert_eq!(
            limiter.check("c", ip("10.0.0.2")),
            Verdict::Proceed(Duration::ZERO)
        );
    }

    #[test]
    fn over_the_user_ceiling_failed_addresses_wait_and_clean_ones_are_slowed() {
        let limiter = limits(5, 100, 4);
        for address in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"] {
            limiter.record_failure("alice", ip(address));
        }
        assert!(matches!(
            limiter.check("alice", ip("10.0.0.1")),
            Verdict::Refused(_)
        ));
        let Verdict::Proceed(delay) = limiter.check("alice", ip("10.0.0.9")) else {
            panic!("a clean address may still try")
        };
        assert!(delay > Duration::ZERO && delay <= MAX_SLOWDOWN);
        assert_eq!(
            limiter.check("bob", ip("10.0.0.1")),
            Verdict::Proceed(Duration::ZERO)
        );
    }
}
