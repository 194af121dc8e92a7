//! The connector type catalogue's data model, in ZenML's shapes (`ServiceConnectorTypeModel`,
//! `ResourceTypeModel`, `AuthenticationMethodModel`), and what we derive from each auth method's
//! JSON schema: its fields, their types, and which are secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectorTypeSpec {
    pub name: String,
    pub connector_type: String,
    pub description: String,
    pub resource_types: Vec<ResourceTypeSpec>,
    pub auth_methods: Vec<AuthMethodSpec>,
    pub supports_auto_configuration: bool,
    pub logo_url: Option<String>,
    pub emoji: Option<String>,
    pub docs_url: Option<String>,
    pub sdk_docs_url: Option<String>,
    /// Always false here: the type is implemented by this server, not by the client.
    #[serde(default)]
    pub local: bool,
    #[serde(default = "yes")]
    pub remote: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceTypeSpec {
    pub name: String,
    pub resource_type: String,
    pub description: String,
    pub auth_methods: Vec<String>,
    pub supports_instances: bool,
    pub logo_url: Option<String>,
    pub emoji: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthMethodSpec {
    pub name: String,
    pub auth_method: String,
    pub description: String,
    /// The JSON schema of the configuration; secret fields are
    /// `{"type": "string", "format": "password", "writeOnly": true}`.
    #[schema(value_type = Object)]
    pub config_schema: serde_json::Value,
    pub min_expiration_seconds: Option<i64>,
    pub max_expiration_seconds: Option<i64>,
    pub default_expiration_seconds: Option<i64>,
    /// Ours: whether this server accepts the method (`implicit` only when the administrator
    /// enabled it).
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl AuthMethodSpec {
    /// Whether the method issues credentials that expire, and so takes `expiration_seconds`.
    pub fn supports_expiration(&self) -> bool {
        self.min_expiration_seconds.is_some()
            || self.max_expiration_seconds.is_some()
            || self.default_expiration_seconds.is_some()
    }
}

impl ConnectorTypeSpec {
    pub fn auth_method(&self, name: &str) -> Option<&AuthMethodSpec> {
        self.auth_methods.iter().find(|m| m.auth_method == name)
    }

    pub fn resource_type(&self, name: &str) -> Option<&ResourceTypeSpec> {
        self.resource_types.iter().find(|r| r.resource_type == name)
    }
}

/// The JSON type of a configuration field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

/// One configuration field of an auth method, read from its JSON schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigField {
    pub name: String,
    pub field_type: FieldType,
    /// `format: uuid`: the value is checked and normalised as a UUID.
    pub uuid: bool,
    pub secret: bool,
    pub required: bool,
}

/// Reads the fields of an auth method's schema. An optional field's schema is
/// `{"anyOf": [<the type>, {"type": "null"}]}`; more than one non-null branch is refused, as
/// ZenML refuses it.
pub fn config_fields(schema: &serde_json::Value) -> Result<Vec<ConfigField>, String> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Ok(Vec::new());
    };
    properties
        .iter()
        .map(|(name, property)| {
            let branch = match property["anyOf"].as_array() {
                Some(branches) => {
                    let typed: Vec<_> = branches.iter().filter(|b| b["type"] != "null").collect();
                    match typed.as_slice() {
                        [only] => *only,
                        _ => return Err(format!("field '{name}' has more than one type")),
                    }
                }
                None => property,
            };
            let field_type = match branch["type"].as_str() {
                Some("string") | None => FieldType::String,
                Some("integer") => FieldType::Integer,
                Some("number") => FieldType::Number,
                Some("boolean") => FieldType::Boolean,
                Some("array") => FieldType::Array,
                Some("object") => FieldType::Object,
                Some(other) => return Err(format!("field '{name}' has unknown type '{other}'")),
            };
            Ok(ConfigField {
                name: name.clone(),
                field_type,
                uuid: branch["format"] == "uuid",
                secret: branch["format"] == "password",
                required: required.contains(&name.as_str()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_are_read_with_their_secrecy_and_optionality() {
        let schema = json!({
            "properties": {
                "client_secret": {"type": "string", "format": "password", "writeOnly": true},
                "tenant_id": {"type": "string", "format": "uuid"},
                "resource_group": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
                "scopes": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
            },
            "required": ["client_secret", "tenant_id"],
        });
        let fields = config_fields(&schema).unwrap();
        let field = |n: &str| fields.iter().find(|f| f.name == n).unwrap().clone();
        assert!(field("client_secret").secret && field("client_secret").required);
        assert!(field("tenant_id").uuid && !field("tenant_id").secret);
        assert!(!field("resource_group").required);
        assert_eq!(field("scopes").field_type, FieldType::Array);
    }

    #[test]
    fn ambiguous_field_types_are_refused() {
        let schema =
            json!({"properties": {"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}});
        assert!(config_fields(&schema).is_err());
    }
}
