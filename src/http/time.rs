//! ZenML's wire form of timestamps: naive UTC ISO-8601 with microseconds and no offset.

use chrono::{DateTime, Utc};
use serde::Serializer;

const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

pub fn zenml<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&time.format(FORMAT))
}
