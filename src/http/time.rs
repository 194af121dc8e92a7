//! ZenML's wire form of timestamps: naive UTC ISO-8601 with microseconds and no offset.

use chrono::{DateTime, Utc};
use serde::Serializer;

/// A timestamp in the OpenAPI document, as ZenML sends them: naive UTC with microseconds,
/// `2025-07-01T10:00:00.123456`. Requests may also give an offset (`Z`, `+02:00`).
pub struct Timestamp;

/// What [`Timestamp`] looks like; ranges of each part are checked when one is read.
const TIMESTAMP_PATTERN: &str =
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$";

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(TIMESTAMP_PATTERN))
            .description(Some(
                "UTC time without an offset, as ZenML writes it (an offset is accepted in \
                 requests)",
            ))
            .examples(["2025-07-01T10:00:00.123456"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

pub fn zenml<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match ZenmlTime::new(time) {
        Some(text) => serializer.serialize_str(text.as_str()),
        None => serializer.collect_str(&time.format("%Y-%m-%dT%H:%M:%S%.6f")),
    }
}

/// A timestamp in ZenML's form, written digit by digit: a page of connectors carries about 80
/// of them, and going through `core::fmt` for each was 7% of a list request's time.
struct ZenmlTime([u8; 26]);

impl ZenmlTime {
    /// `None` for years outside 0..=9999, which need more (or signed) digits.
    fn new(time: &DateTime<Utc>) -> Option<ZenmlTime> {
        use chrono::{Datelike, Timelike};
        let year = u32::try_from(time.year()).ok().filter(|y| *y <= 9999)?;
        let mut text = *b"0000-00-00T00:00:00.000000";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, time.month());
        put(8, 2, time.day());
        put(11, 2, time.hour());
        put(14, 2, time.minute());
        // A leap second (nanoseconds past 1e9) stays within its second, as chrono's %S does.
        put(17, 2, time.second());
        put(20, 6, time.nanosecond() / 1000 % 1_000_000);
        Some(ZenmlTime(text))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("only ASCII digits and separators")
    }
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    fn zenml(time: DateTime<Utc>) -> String {
        let mut out = Vec::new();
        super::zenml(&time, &mut serde_json::Serializer::new(&mut out)).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn timestamps_are_naive_utc_with_microseconds() {
        let cases = [
            (
                Utc.with_ymd_and_hms(2026, 11, 28, 17, 39, 38).unwrap(),
                0,
                "2026-11-28T17:39:38.000000",
            ),
            (
                Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
                1_000,
                "1970-01-01T00:00:00.000001",
            ),
            (
                Utc.with_ymd_and_hms(999, 12, 31, 23, 59, 59).unwrap(),
                999_999_999,
                "0999-12-31T23:59:59.999999",
            ),
            (
                Utc.with_ymd_and_hms(9999, 6, 5, 4, 3, 2).unwrap(),
                120_450_000,
                "9999-06-05T04:03:02.120450",
            ),
        ];
        for (time, nanos, expected) in cases {
            let time = time + chrono::Duration::nanoseconds(nanos);
            assert_eq!(zenml(time), expected);
            assert_eq!(
                super::parse(expected),
                Some(time - chrono::Duration::nanoseconds(nanos % 1000))
            );
        }
        // Years that need more digits take chrono's own formatting.
        let far = Utc.with_ymd_and_hms(12345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(zenml(far), "+12345-01-02T03:04:05.000000");
    }
}
