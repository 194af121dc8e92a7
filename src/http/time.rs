//! ZenML's wire form of timestamps: naive UTC ISO-8601 with microseconds and no offset.

use chrono::{DateTime, Utc};
use serde::Serializer;

pub fn zenml<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    use chrono::{Datelike, Timelike};
    // Written out directly: chrono's format strings are parsed again on every call.
    serializer.collect_str(&format_args!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.nanosecond() / 1000 % 1_000_000,
    ))
}

/// Reads a timestamp with or without an offset; one without is UTC, as ZenML sends them.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc())
}

pub fn zenml_opt<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => zenml(time, serializer),
        None => serializer.serialize_none(),
    }
}

pub fn deserialize_opt<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = <Option<String> as serde::Deserialize>::deserialize(deserializer)?;
    text.map(|t| {
        parse(&t).ok_or_else(|| serde::de::Error::custom(format!("'{t}' is not a date and time")))
    })
    .transpose()
}
