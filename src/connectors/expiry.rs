//! When a connector's credentials count as expired: ZenML's rule, on plain values so that a
//! stored connector and one only proposed are judged alike.

use chrono::{DateTime, Duration, Utc};

/// ZenML's default tolerance: a connector counts as expired this long before `expires_at`.
const DEFAULT_SKEW_SECONDS: i64 = 300;

/// When the connector starts to count as expired: `expires_at` less the skew tolerance
/// (ZenML's default when unset). Create and update bound both; a row stored before they did,
/// whose difference is out of range, counts as expired always.
pub fn expired_after(
    expires_at: Option<DateTime<Utc>>,
    skew_tolerance: Option<i64>,
) -> Option<DateTime<Utc>> {
    let skew = skew_tolerance.unwrap_or(DEFAULT_SKEW_SECONDS);
    expires_at.map(|at| {
        Duration::try_seconds(skew)
            .and_then(|skew| at.checked_sub_signed(skew))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    })
}

pub fn is_expired(
    expires_at: Option<DateTime<Utc>>,
    skew_tolerance: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    expired_after(expires_at, skew_tolerance).is_some_and(|after| after < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn without_an_expiry_time_a_connector_never_expires() {
        assert_eq!(expired_after(None, Some(10)), None);
        assert!(!is_expired(None, None, DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn the_default_tolerance_moves_expiry_five_minutes_earlier() {
        let expires = at("2026-01-01T12:00:00Z");
        assert_eq!(
            expired_after(Some(expires), None),
            Some(at("2026-01-01T11:55:00Z"))
        );
        assert!(!is_expired(Some(expires), None, at("2026-01-01T11:55:00Z")));
        assert!(is_expired(Some(expires), None, at("2026-01-01T11:55:01Z")));
    }

    #[test]
    fn a_given_tolerance_replaces_the_default() {
        let expires = at("2026-01-01T12:00:00Z");
        assert_eq!(expired_after(Some(expires), Some(0)), Some(expires));
        assert!(!is_expired(
            Some(expires),
            Some(0),
            at("2026-01-01T11:59:00Z")
        ));
        // A negative tolerance allows use past `expires_at`.
        assert!(!is_expired(
            Some(expires),
            Some(-60),
            at("2026-01-01T12:00:30Z")
        ));
    }

    #[test]
    fn a_tolerance_out_of_range_counts_as_expired_always() {
        let expires = at("2026-01-01T12:00:00Z");
        assert_eq!(
            expired_after(Some(expires), Some(i64::MAX)),
            Some(DateTime::<Utc>::MIN_UTC)
        );
        assert!(is_expired(
            Some(expires),
            Some(i64::MIN),
            at("2000-01-01T00:00:00Z")
        ));
    }
}
