//! Checking a component's configuration against its flavor's JSON schema, as ZenML's client
//! does before it sends one: no unknown attributes, every required one, and each value of its
//! declared type. The schemas are pydantic's output, which uses a known handful of keywords
//! (`properties`, `required`, `type`, `anyOf`, `$ref` into `$defs`, `enum`, `items`,
//! `additionalProperties`, `minimum`, `exclusiveMinimum`); anything else in a schema constrains
//! nothing here.
//!
//! Fields marked `sensitive` must hold a secret reference (`{{secret_name.key}}`): the server
//! never stores a secret value in the clear, and a component's configuration is not encrypted.

use serde_json::{Map, Value};

use crate::domain::{DomainError, DomainResult};

/// How deep `$ref`s and nested values are followed; pydantic's schemas are far shallower, and
/// a recursive `$ref` stops here.
const MAX_DEPTH: usize = 32;

/// Whether `value` is a reference to a secret's key, `{{name.key}}`.
pub fn is_secret_reference(value: &str) -> bool {
    value
        .trim()
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .and_then(|inner| inner.trim().split_once('.'))
        .is_some_and(|(name, key)| !name.trim().is_empty() && !key.trim().is_empty())
}

/// Checks `configuration` against `schema`. `what` names the flavor in errors
/// (`the azure artifact_store`).
pub fn check(schema: &Value, configuration: &Map<String, Value>, what: &str) -> DomainResult<()> {
    let invalid = |reason: String| {
        DomainError::Invalid(format!("invalid configuration for {what}: {reason}"))
    };
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    let unknown: Vec<&str> = configuration
        .keys()
        .filter(|key| !properties.contains_key(*key))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(invalid(format!(
            "unknown attributes {}; the known ones are {}",
            quoted(&unknown),
            if known.is_empty() {
                "none".to_owned()
            } else {
                quoted(&known)
            }
        )));
    }
    let missing: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| !configuration.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "missing required attributes {}",
            quoted(&missing)
        )));
    }
    let defs = &schema["$defs"];
    for (name, value) in configuration {
        let property = &properties[name];
        if property["sensitive"] == Value::Bool(true)
            && value
                .as_str()
                .is_some_and(|text| !is_secret_reference(text))
        {
            return Err(invalid(format!(
                "attribute '{name}' is sensitive: store its value in a secret and refer to it \
                 as {{{{secret_name.key}}}}, since a configuration is stored in the clear"
            )));
        }
        fits(property, value, defs, 0)
            .map_err(|expected| invalid(format!("attribute '{name}' must be {expected}")))?;
    }
    Ok(())
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `value` fits `schema`; if not, what was expected, in words.
fn fits(schema: &Value, value: &Value, defs: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let target = reference
            .strip_prefix("#/$defs/")
            .map(|name| &defs[name])
            .filter(|target| !target.is_null());
        return match target {
            Some(target) => fits(target, value, defs, depth + 1),
            None => Ok(()),
        };
    }
    if let Some(branches) = schema["anyOf"].as_array() {
        // What each branch expected, when none fits.
        let mut expected = Vec::with_capacity(branches.len());
        for branch in branches {
            match fits(branch, value, defs, depth + 1) {
                Ok(()) => return Ok(()),
                Err(what) => expected.push(what),
            }
        }
        return Err(expected.join(" or "));
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let names: Vec<String> = options.iter().map(Value::to_string).collect();
        return Err(format!("one of {}", names.join(", ")));
    }
    match schema["type"].as_str() {
        None => Ok(()),
        Some("null") => value.is_null().then_some(()).ok_or_else(|| "null".into()),
        Some("boolean") => value
            .is_boolean()
            .then_some(())
            .ok_or_else(|| "true or false".into()),
        Some("string") => value
            .is_string()
            .then_some(())
            .ok_or_else(|| "a string".into()),
        Some("integer") => match value.as_i64() {
            Some(number) => bounded(schema, number as f64, "a whole number"),
            None => Err("a whole number".into()),
        },
        Some("number") => match value.as_f64() {
            Some(number) => bounded(schema, number, "a number"),
            None => Err("a number".into()),
        },
        Some("array") => {
            let items = value.as_array().ok_or("a list")?;
            for item in items {
                fits(&schema["items"], item, defs, depth + 1)
                    .map_err(|expected| format!("a list of which each item is {expected}"))?;
            }
            Ok(())
        }
        Some("object") => {
            let fields = value.as_object().ok_or("an object")?;
            for (key, field) in fields {
                let declared = &schema["properties"][key];
                let field_schema = if declared.is_null() {
                    &schema["additionalProperties"]
                } else {
                    declared
                };
                if field_schema.is_object() {
                    fits(field_schema, field, defs, depth + 1)
                        .map_err(|expected| format!("an object whose '{key}' is {expected}"))?;
                }
            }
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

fn bounded(schema: &Value, number: f64, what: &str) -> Result<(), String> {
    if let Some(minimum) = schema["minimum"].as_f64()
        && number < minimum
    {
        return Err(format!("{what} of at least {minimum}"));
    }
    if let Some(minimum) = schema["exclusiveMinimum"].as_f64()
        && number <= minimum
    {
        return Err(format!("{what} greater than {minimum}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "properties": {
                "path": {"type": "string"},
                "synchronous": {"type": "boolean", "default": true},
                "max_parallelism": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]},
                "reasons": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
                "pod_settings": {"anyOf": [{"$ref": "#/$defs/Pod"}, {"type": "null"}]},
                "mode": {"enum": ["A", "B"]},
                "password": {"anyOf": [{"type": "string"}, {"type": "null"}], "sensitive": true},
            },
            "required": ["path"],
            "$defs": {"Pod": {"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}}},
        })
    }

    fn check_one(configuration: Value) -> DomainResult<()> {
        check(
            &schema(),
            configuration.as_object().unwrap(),
            "the test orchestrator",
        )
    }

    #[test]
    fn values_of_their_declared_types_pass() {
        check_one(json!({
            "path": "az://data",
            "synchronous": false,
            "max_parallelism": 3,
            "reasons": ["ErrImagePull"],
            "pod_settings": {"labels": {"team": "ml"}},
            "mode": "B",
            "password": "{{registry.password}}",
        }))
        .unwrap();
        check_one(json!({"path": "/tmp", "max_parallelism": null, "pod_settings": null})).unwrap();
    }

    #[test]
    fn unknown_missing_and_mistyped_attributes_are_named() {
        let error = |value| match check_one(value) {
            Err(DomainError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let unknown = error(json!({"path": "x", "colour": "red", "size": 1}));
        assert!(
            unknown.contains("unknown attributes 'colour', 'size'"),
            "{unknown}"
        );
        assert!(error(json!({})).contains("missing required attributes 'path'"));
        let mistyped = error(json!({"path": "x", "synchronous": "yes"}));
        assert!(
            mistyped.contains("attribute 'synchronous' must be true or false"),
            "{mistyped}"
        );
        assert!(error(json!({"path": "x", "max_parallelism": 0})).contains("greater than 0"));
        assert!(error(json!({"path": "x", "reasons": [1]})).contains("'reasons'"));
        assert!(error(json!({"path": "x", "mode": "C"})).contains("one of \"A\", \"B\""));
        let nested = error(json!({"path": "x", "pod_settings": {"labels": {"team": 1}}}));
        assert!(nested.contains("'pod_settings'"), "{nested}");
    }

    #[test]
    fn sensitive_attributes_take_only_secret_references() {
        let plain = check_one(json!({"path": "x", "password": "hunter2"})).unwrap_err();
        assert!(plain.to_string().contains("sensitive"), "{plain}");
        assert!(is_secret_reference("{{ registry.password }}"));
        assert!(!is_secret_reference("{{registry}}"));
        assert!(!is_secret_reference("registry.password"));
    }
}
