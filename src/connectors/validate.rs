//! Checking and normalising a connector against its type's spec, as ZenML's server does on
//! create and update: the auth method and resource types must exist, required fields must be
//! present, unknown fields are refused, secret fields are split from the rest, resource ids are
//! made canonical and expiry settings are checked against the auth method's bounds.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use super::ConnectorType;
use super::spec::{ConfigField, FieldType, config_fields};
use crate::domain::secret::SecretValues;
use crate::domain::{DomainError, DomainResult};

pub const MAX_LABELS: usize = 100;
pub const MAX_LABEL_LEN: usize = 255;

/// A connector as a client describes it, before validation.
#[derive(Debug, Clone, Default)]
pub struct ConnectorDraft {
    pub auth_method: String,
    pub resource_types: Vec<String>,
    pub resource_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expires_skew_tolerance: Option<i64>,
    pub expiration_seconds: Option<i64>,
    pub configuration: Map<String, Value>,
}

/// A connector that satisfies its type's spec, with its secret fields apart.
#[derive(Debug, Clone)]
pub struct ValidConnector {
    pub auth_method: String,
    pub resource_types: Vec<String>,
    pub resource_id: Option<String>,
    pub supports_instances: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub expires_skew_tolerance: Option<i64>,
    pub expiration_seconds: Option<i64>,
    /// Non-secret configuration, normalised.
    pub configuration: BTreeMap<String, Value>,
    pub secrets: SecretValues,
}

fn invalid(reason: impl std::fmt::Display) -> DomainError {
    DomainError::Invalid(format!("connector configuration is not valid: {reason}"))
}

/// Coerces a value to the field's type the way ZenML's models do for values typed on a
/// command line (`--key=value` always arrives as a string).
fn normalise(field: &ConfigField, value: Value) -> DomainResult<Value> {
    let wrong = |expected: &str| invalid(format!("attribute '{}' must be {expected}", field.name));
    if field.secret && !value.is_string() {
        return Err(wrong("a string"));
    }
    Ok(match field.field_type {
        FieldType::String => {
            let Value::String(text) = value else {
                return Err(wrong("a string"));
            };
            if field.uuid {
                let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|_| wrong("a UUID"))?;
                Value::String(uuid.hyphenated().to_string())
            } else {
                Value::String(text)
            }
        }
        FieldType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| wrong("a whole number"))?,
            _ => return Err(wrong("a whole number")),
        },
        FieldType::Number => match value {
            Value::Number(n) => Value::Number(n),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| wrong("a number"))?,
            _ => return Err(wrong("a number")),
        },
        FieldType::Boolean => match value {
            Value::Bool(b) => Value::Bool(b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" => Value::Bool(true),
                "false" | "0" | "no" | "n" => Value::Bool(false),
                _ => return Err(wrong("true or false")),
            },
            _ => return Err(wrong("true or false")),
        },
        FieldType::Array => match value {
            Value::Array(items) => Value::Array(items),
            // A JSON list, or else comma-separated values.
            Value::String(s) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Array(items)) => Value::Array(items),
                _ => Value::Array(
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(Value::from)
                        .collect(),
                ),
            },
            _ => return Err(wrong("a list")),
        },
        FieldType::Object => match value {
            Value::Object(map) => Value::Object(map),
            _ => return Err(wrong("an object")),
        },
    })
}

pub fn validate(kind: &dyn ConnectorType, draft: ConnectorDraft) -> DomainResult<ValidConnector> {
    let spec = kind.spec();
    let method = spec.auth_method(&draft.auth_method).ok_or_else(|| {
        let known: Vec<_> = spec
            .auth_methods
            .iter()
            .map(|m| m.auth_method.as_str())
            .collect();
        invalid(format!(
            "the '{}' connector type has no '{}' authentication method (known: {})",
            spec.connector_type,
            draft.auth_method,
            known.join(", ")
        ))
    })?;
    let fields = config_fields(&method.config_schema).map_err(invalid)?;

    let unknown: Vec<_> = draft
        .configuration
        .keys()
        .filter(|key| !fields.iter().any(|f| &f.name == *key))
        .map(|key| format!("'{key}'"))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "unknown attribute(s) {} for the '{}' authentication method",
            unknown.join(", "),
            method.auth_method
        )));
    }

    let mut configuration = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut given = draft.configuration;
    for field in &fields {
        match given.remove(&field.name).filter(|v| !v.is_null()) {
            None if field.required => {
                return Err(invalid(format!(
                    "missing required attribute '{}'",
                    field.name
                )));
            }
            None => {}
            Some(value) => match normalise(field, value)? {
                Value::String(secret) if field.secret => {
                    secrets.insert(field.name.clone(), Some(secret));
                }
                value => {
                    configuration.insert(field.name.clone(), value);
                }
            },
        }
    }
    let secrets = SecretValues::parse(secrets)?;

    // One known resource type makes a single-type connector; none (or several) a multi-type
    // connector for every resource type of the connector type. A type named twice is one.
    let mut seen = std::collections::BTreeSet::new();
    let requested_types: Vec<String> = draft
        .resource_types
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect();
    for requested in &requested_types {
        let resource = spec.resource_type(requested).ok_or_else(|| {
            invalid(format!(
                "the '{}' connector type has no '{requested}' resource type",
                spec.connector_type
            ))
        })?;
        if !resource.auth_methods.contains(&method.auth_method) {
            return Err(invalid(format!(
                "the '{requested}' resource type does not support the '{}' authentication method",
                method.auth_method
            )));
        }
    }
    let (resource_types, resource_id, supports_instances) = match requested_types.as_slice() {
        [single] => {
            let resource = spec.resource_type(single).expect("checked above");
            let resource_id = match draft.resource_id.filter(|id| !id.trim().is_empty()) {
                Some(id) if resource.supports_instances => Some(
                    kind.canonical_resource_id(single, id.trim(), &configuration)
                        .map_err(invalid)?,
                ),
                other => other,
            };
            (
                vec![single.clone()],
                resource_id,
                resource.supports_instances,
            )
        }
        _ => {
            if draft
                .resource_id
                .as_deref()
                .is_some_and(|id| !id.is_empty())
            {
                return Err(invalid(
                    "a resource id needs exactly one resource type; a connector for several \
                     resource types cannot be limited to one resource",
                ));
            }
            let all = spec
                .resource_types
                .iter()
                .filter(|r| r.auth_methods.contains(&method.auth_method))
                .map(|r| r.resource_type.clone())
                .collect();
            (all, None, false)
        }
    };

    let expiration_seconds = match draft.expiration_seconds {
        Some(seconds) if !method.supports_expiration() => {
            return Err(invalid(format!(
                "Expiration time is not supported for this authentication method but a value was \
                 provided: {seconds}"
            )));
        }
        Some(seconds) => {
            if method
                .min_expiration_seconds
                .is_some_and(|min| seconds < min)
                || method
                    .max_expiration_seconds
                    .is_some_and(|max| seconds > max)
                || seconds <= 0
            {
                return Err(invalid(format!(
                    "expiration_seconds must be between {} and {} seconds, not {seconds}",
                    method.min_expiration_seconds.unwrap_or(1),
                    method
                        .max_expiration_seconds
                        .map_or("unlimited".to_owned(), |m| m.to_string())
                )));
            }
            Some(seconds)
        }
        None => method.default_expiration_seconds,
    };
    if draft
        .expires_skew_tolerance
        .is_some_and(|s| !(0..=MAX_SKEW_SECONDS).contains(&s))
    {
        return Err(invalid(format!(
            "expires_skew_tolerance must be between 0 and {MAX_SKEW_SECONDS} seconds"
        )));
    }
    if draft
        .expires_at
        .is_some_and(|at| !(1..=9999).contains(&at.year()))
    {
        return Err(invalid("expires_at must be a date in the years 1 to 9999"));
    }

    let connector = ValidConnector {
        auth_method: method.auth_method.clone(),
        resource_types,
        resource_id,
        supports_instances,
        expires_at: draft.expires_at,
        expires_skew_tolerance: draft.expires_skew_tolerance,
        expiration_seconds,
        configuration,
        secrets,
    };
    kind.check(&connector).map_err(invalid)?;
    Ok(connector)
}

/// The largest skew tolerance: a day. It allows for clocks that are wrong, not for a second
/// expiry date.
const MAX_SKEW_SECONDS: i64 = 86_400;

/// Labels: at most 100, keys of 1 to 255 characters, values of at most 255.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> DomainResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(DomainError::Invalid(format!(
            "a connector has at most {MAX_LABELS} labels"
        )));
    }
    for (key, value) in labels {
        if key.is_empty()
            || key.chars().count() > MAX_LABEL_LEN
            || key.chars().any(char::is_control)
        {
            return Err(DomainError::Invalid(format!(
                "label keys must be 1 to {MAX_LABEL_LEN} characters without control characters"
            )));
        }
        if value.chars().count() > MAX_LABEL_LEN {
            return Err(DomainError::Invalid(format!(
                "label '{key}' is longer than {MAX_LABEL_LEN} characters"
            )));
        }
    }
    Ok(())
}
