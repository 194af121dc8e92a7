//! The failed-login limiter a server uses, chosen at start-up by its database: counts in this
//! process on SQLite, counts in the database on PostgreSQL, where several processes share it.

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

use super::rate_limit::{FailedLogins, Verdict};
use super::shared_limit::SharedFailedLogins;
use crate::store::StoreResult;

pub enum LoginLimiter {
    Local(FailedLogins),
    Shared(SharedFailedLogins),
}

/// A login attempt the limiter let through, to be settled once its credentials are checked.
/// On the shared limiter it counts as a failure until it succeeds, so an attempt dropped
/// unsettled (a request cancelled mid-check) stays a failure.
#[must_use = "an attempt is settled as a success or a failure"]
pub struct Attempt {
    user: String,
    address: IpAddr,
    /// Names the shared limiter's pending failure.
    id: Uuid,
}

/// What a login attempt may do.
pub enum Admission {
    /// Go ahead, after waiting this long.
    Proceed(Duration, Attempt),
    /// Refused; worth trying again after this long.
    Refused(Duration),
}

impl LoginLimiter {
    /// What an attempt to log in as `user` from `address` may do now.
    pub async fn check(&self, user: &str, address: IpAddr) -> StoreResult<Admission> {
        let id = Uuid::new_v4();
        let verdict = match self {
            LoginLimiter::Local(local) => local.check(user, address),
            LoginLimiter::Shared(shared) => shared.check(user, address, id).await?,
        };
        Ok(match verdict {
            Verdict::Refused(retry_after) => Admission::Refused(retry_after),
            Verdict::Proceed(delay) => Admission::Proceed(
                delay,
                Attempt {
                    user: user.to_owned(),
                    address,
                    id,
                },
            ),
        })
    }

    pub async fn succeeded(&self, attempt: Attempt) -> StoreResult<()> {
        match self {
            LoginLimiter::Local(local) => {
                local.record_success(&attempt.user, attempt.address);
                Ok(())
            }
            LoginLimiter::Shared(shared) => {
                shared
                    .record_success(&attempt.user, attempt.address, attempt.id)
                    .await
            }
        }
    }

    pub fn failed(&self, attempt: Attempt) {
        match self {
            LoginLimiter::Local(local) => local.record_failure(&attempt.user, attempt.address),
            // Its pending failure stays.
            LoginLimiter::Shared(_) => {}
        }
    }
}
