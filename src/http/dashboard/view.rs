//! The API's answers as the dashboard reads them, and how they are shown: only the fields a
//! page shows are read, so secret values (which pages never request) could not be shown even
//! if an answer carried them.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct Page<T> {
    pub index: u64,
    pub total_pages: u64,
    pub total: u64,
    pub items: Vec<T>,
}

/// Anything with an id and a name.
#[derive(Debug, Deserialize)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Owned {
    pub user: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub struct Connector {
    pub id: Uuid,
    pub name: String,
    pub body: ConnectorBody,
    pub metadata: Option<ConnectorMetadata>,
    pub resources: Owned,
}

#[derive(Debug, Deserialize)]
pub struct ConnectorBody {
    pub description: String,
    pub connector_type: String,
    pub auth_method: String,
    pub resource_types: Vec<String>,
    pub resource_id: Option<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub shared: bool,
    pub user_id: Option<Uuid>,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Deserialize)]
pub struct ConnectorMetadata {
    /// Non-secret settings only: pages never ask for secret values.
    pub configuration: BTreeMap<String, serde_json::Value>,
    pub labels: BTreeMap<String, String>,
    pub last_verification: Option<Verification>,
}

#[derive(Debug, Deserialize)]
pub struct Verification {
    pub verified_at: String,
    pub error: Option<String>,
    pub resources: BTreeMap<String, usize>,
}

/// ZenML's resources model, as verify answers it.
#[derive(Debug, Deserialize)]
pub struct Reached {
    pub resources: Vec<ReachedType>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ReachedType {
    pub resource_type: String,
    pub resource_ids: Option<Vec<String>>,
    pub error: Option<String>,
}

/// The API's times: ZenML's naive UTC (`2026-11-30T18:09:42.528731`).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// A time as pages show it, to the minute.
pub fn show_time(text: &str) -> String {
    parse_time(text).map_or_else(
        || text.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// How close a connector's credentials are to expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Valid,
    ExpiresSoon,
    Expired,
}

impl Expiry {
    pub fn of(body: &ConnectorBody, now: DateTime<Utc>) -> Expiry {
        let expires_at = body.expires_at.as_deref().and_then(parse_time);
        match expires_at {
            _ if body.expired => Expiry::Expired,
            Some(at) if at - now <= chrono::Duration::hours(24) => Expiry::ExpiresSoon,
            _ => Expiry::Valid,
        }
    }

    /// The CSS class and the words.
    pub fn class(self) -> &'static str {
        match self {
            Expiry::Valid => "ok",
            Expiry::ExpiresSoon => "warn",
            Expiry::Expired => "bad",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Expiry::Valid => "valid",
            Expiry::ExpiresSoon => "expires within 24 h",
            Expiry::Expired => "expired",
        }
    }
}

/// The catalogue's emoji short codes as characters (a dashboard has no emoji font lookup).
pub fn emoji(short_code: Option<&str>) -> &'static str {
    match short_code.map(str::trim) {
        Some(":regional_indicator_a:") => "\u{1F1E6}",
        Some(":package:") => "\u{1F4E6}",
        Some(":cyclone:") => "\u{1F300}",
        Some(":whale:") => "\u{1F433}",
        Some(":key:") => "\u{1F511}",
        Some(":lock:") => "\u{1F512}",
        _ => "\u{1F50C}",
    }
}

/// A value for a URL's query string.
pub fn query_value(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|pair| pair[1..].to_owned())
        .unwrap_or_default()
}

/// `key=value` lines (or commas) as labels or secret values; blank lines are skipped.
pub fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(format!("'{line}' is not of the form key=value")),
        })
        .collect()
}

/// Labels as the form shows them, one `key=value` per line.
pub fn pairs_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_read_from_lines_or_commas() {
        let parsed = parse_pairs("team=ml\n env = prod ,\n\nempty=").unwrap();
        let expected: Vec<(&str, &str)> = vec![("empty", ""), ("env", "prod"), ("team", "ml")];
        let got: Vec<(&str, &str)> = parsed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            parse_pairs("novalue").unwrap_err(),
            "'novalue' is not of the form key=value"
        );
        assert!(parse_pairs("=x").is_err());
    }

    #[test]
    fn expiry_is_valid_soon_or_past() {
        let now = parse_time("2026-12-02T12:00:00").unwrap();
        let body = |expires_at: Option<&str>, expired| ConnectorBody {
            description: String::new(),
            connector_type: "azure".into(),
            auth_method: "access-token".into(),
            resource_types: vec![],
            resource_id: None,
            expires_at: expires_at.map(str::to_owned),
            expired,
            shared: false,
            user_id: None,
            created: String::new(),
            updated: String::new(),
        };
        assert_eq!(Expiry::of(&body(None, false), now), Expiry::Valid);
        assert_eq!(
            Expiry::of(&body(Some("2026-12-05T12:00:00"), false), now),
            Expiry::Valid
        );
        assert_eq!(
            Expiry::of(&body(Some("2026-12-03T11:00:00.5"), false), now),
            Expiry::ExpiresSoon
        );
        assert_eq!(
            Expiry::of(&body(Some("2026-12-02T11:00:00"), true), now),
            Expiry::Expired
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query_value("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
