//! The failed-login limit kept in PostgreSQL, so that replicas together allow exactly the
//! configured number of failures rather than that many each. Checking and reserving are one
//! step: under the locks of the attempt's user name and address, the failures are counted and,
//! when the attempt may go ahead, a pending failure is written; concurrent attempts see it, so
//! they cannot all slip in under the limit while their credentials are being checked. A success
//! takes the pending failure back; a failure, or a request that never finishes, leaves it.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::rate_limit::{Count, LoginLimits, Verdict, address_key, pair_key, user_key, verdict};
use crate::store::{Store, StoreResult, login_failures};

/// How often a process deletes the failures that have left the window.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How long past the window a failure is kept before it is swept, so that a sweep and a
/// success's clearing never delete the same row (and never wait for each other).
const SWEEP_MARGIN: Duration = Duration::from_secs(60);

pub struct SharedFailedLogins {
    store: Store,
    limits: LoginLimits,
    /// When this process last swept, if it has.
    swept: Mutex<Option<Instant>>,
}

/// An attempt's three keys: the user name from the address, the address, the user name.
fn keys(user: &str, address: IpAddr) -> [String; 3] {
    [
        pair_key(user, address),
        address_key(address),
        user_key(user),
    ]
}

impl SharedFailedLogins {
    pub fn new(store: Store, limits: LoginLimits) -> Self {
        SharedFailedLogins {
            store,
            limits,
            swept: Mutex::new(None),
        }
    }

    /// What an attempt to log in as `user` from `address` may do now; when it may go ahead, it
    /// holds a pending failure under `attempt`.
    pub async fn check(&self, user: &str, address: IpAddr, attempt: Uuid) -> StoreResult<Verdict> {
        self.sweep_now_and_then().await;
        let keys = keys(user, address);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let window = self.limits.window;
        let mut tx = self.store.begin().await?;
        // The user name's lock and the address's: every attempt that shares a count with this
        // one shares one of them.
        login_failures::lock(&mut tx, &keys[1..]).await?;
        let counted = login_failures::count(&mut tx, keys, window.as_secs_f64()).await?;
        let count_of = |key: &str| {
            let Some(row) = counted.iter().find(|row| row.limit_key == key) else {
                return Count::default();
            };
            let frees_in = row.oldest.map_or(Duration::ZERO, |oldest| {
                let age = (row.now - oldest).to_std().unwrap_or_default();
                window.saturating_sub(age)
            });
            Count {
                failures: usize::try_from(row.failures).unwrap_or(usize::MAX),
                frees_in,
            }
        };
        let verdict = verdict(
            &self.limits,
            count_of(keys[0]),
            count_of(keys[1]),
            count_of(keys[2]),
        );
        if let (Verdict::Proceed(_), Some(counted)) = (verdict, counted.first()) {
            login_failures::insert(&mut tx, attempt, keys, counted.now).await?;
        }
        tx.commit().await?;
        Ok(verdict)
    }

    /// A successful login takes back its pending failure and clears the failures of that user
    /// from that address (not the address's, nor the user's elsewhere).
    pub async fn record_success(
        &self,
        user: &str,
        address: IpAddr,
        attempt: Uuid,
    ) -> StoreResult<()> {
        let keys = keys(user, address);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let mut conn = self.store.write_conn().await?;
        let window = self.limits.window.as_secs_f64();
        login_failures::forget(&mut conn, attempt, keys, keys[0], window).await
    }

    /// Deletes the failures that have left the window, at most once per [`SWEEP_EVERY`] in
    /// this process. A failed sweep is only logged: the next one deletes them.
    async fn sweep_now_and_then(&self) {
        {
            let mut swept = self.swept.lock().expect("not poisoned");
            if swept.is_some_and(|at| at.elapsed() < SWEEP_EVERY) {
                return;
            }
            *swept = Some(Instant::now());
        }
        let older_than = (self.limits.window + SWEEP_MARGIN).as_secs_f64();
        let swept = async {
            let mut conn = self.store.write_conn().await?;
            login_failures::sweep(&mut conn, older_than).await
        };
        if let Err(error) = swept.await {
            tracing::warn!(%error, "old failed logins could not be deleted yet");
        }
    }
}
