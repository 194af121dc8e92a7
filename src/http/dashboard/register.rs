//! Registering a connector: a form built from the type catalogue's JSON schemas, which can
//! verify the configuration before it is saved.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::Payload;
use super::session::Session;
use super::view::{self, Reached};
use super::{Dashboard, Frame, PageError, PageResult, render, see_other};
use crate::connectors::catalogue::IMPLICIT;
use crate::connectors::spec::{AuthMethodSpec, ConnectorTypeSpec, FieldType, config_fields};
use crate::domain::Scope;

/// One configuration field of the chosen auth method, as an input.
pub struct Field {
    pub name: String,
    pub title: String,
    pub description: String,
    /// The input's type: text, password, number or checkbox.
    pub input: &'static str,
    pub required: bool,
    /// What was entered, for a form shown again; never a secret's.
    pub value: String,
}

fn fields_of(method: &AuthMethodSpec, entered: &BTreeMap<String, String>) -> Vec<Field> {
    let properties = &method.config_schema["properties"];
    config_fields(&method.config_schema)
        .unwrap_or_default()
        .into_iter()
        .map(|field| {
            let property = &properties[&field.name];
            let input = match field.field_type {
                _ if field.secret => "password",
                FieldType::Boolean => "checkbox",
                FieldType::Integer | FieldType::Number => "number",
                _ => "text",
            };
            Field {
                title: property["title"].as_str().unwrap_or(&field.name).to_owned(),
                description: property["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                value: match field.secret {
                    true => String::new(),
                    false => entered
                        .get(&format!("config.{}", field.name))
                        .cloned()
                        .unwrap_or_default(),
                },
                input,
                required: field.required,
                name: field.name,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    frame: Frame,
    types: Vec<ConnectorTypeSpec>,
    spec: Option<&'a ConnectorTypeSpec>,
    method: Option<&'a AuthMethodSpec>,
    /// Why this method cannot be used here, naming the setting that allows it.
    refused: Option<String>,
    fields: Vec<Field>,
    entered: BTreeMap<String, String>,
    reached: Option<Reached>,
    problem: Option<String>,
}

impl RegisterPage<'_> {
    fn entered(&self, name: &str) -> &str {
        self.entered.get(name).map_or("", String::as_str)
    }

    fn checked(&self, name: &str) -> bool {
        self.entered.contains_key(name)
    }
}

/// Why `method` cannot be used in the scope's workspace, if it cannot.
fn refusal(dashboard: &Dashboard, scope: &Scope, method: &str) -> Option<String> {
    let catalogue = &dashboard.state.catalogue;
    if catalogue.auth_method_allowed_in(method, scope.workspace_id, &scope.workspace_name) {
        return None;
    }
    Some(match catalogue.auth_method_enabled(method) {
        true => format!(
            "Implicit authentication is enabled on this server only in some workspaces, and \
             '{}' is not one of them (see --implicit-auth-workspaces).",
            scope.workspace_name
        ),
        false => format!(
            "Implicit authentication ('{IMPLICIT}') is disabled on this server. An administrator \
             can enable it by setting ZENML_ENABLE_IMPLICIT_AUTH_METHODS=true."
        ),
    })
}

/// The fields of a posted form that it shows again: never a secret, nor the CSRF token.
fn shown_again(
    mut entered: BTreeMap<String, String>,
    method: Option<&AuthMethodSpec>,
) -> BTreeMap<String, String> {
    const PLAIN: &[&str] = &[
        "name",
        "description",
        "resource_type",
        "resource_id",
        "labels",
        "shared",
        "expiration_seconds",
        "expires_at",
    ];
    let fields = method
        .and_then(|m| config_fields(&m.config_schema).ok())
        .unwrap_or_default();
    entered.retain(|key, _| {
        PLAIN.contains(&key.as_str())
            || fields
                .iter()
                .any(|f| !f.secret && key.strip_prefix("config.") == Some(f.name.as_str()))
    });
    entered
}

#[derive(Deserialize)]
pub struct Choice {
    workspace: Option<String>,
    connector_type: Option<String>,
    auth_method: Option<String>,
}

async fn show(
    dashboard: &Dashboard,
    (frame, scope): (Frame, Scope),
    connector_type: Option<&str>,
    auth_method: Option<&str>,
    entered: BTreeMap<String, String>,
    reached: Option<Reached>,
    problem: Option<String>,
) -> PageResult {
    let types: Vec<ConnectorTypeSpec> = dashboard.state.catalogue.specs().collect();
    let spec = match connector_type {
        Some(name) => types.iter().find(|t| t.connector_type == name),
        None => types.first(),
    };
    let method = spec.and_then(|s| auth_method.and_then(|m| s.auth_method(m)));
    let entered = shown_again(entered, method);
    let page = RegisterPage {
        refused: method.and_then(|m| refusal(dashboard, &scope, &m.auth_method)),
        fields: method.map(|m| fields_of(m, &entered)).unwrap_or_default(),
        frame,
        spec,
        method,
        entered,
        reached,
        problem,
        types: types.clone(),
    };
    Ok(render(&page).into_response())
}

pub async fn form(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(choice): Query<Choice>,
) -> PageResult {
    let loaded = Frame::load(&dashboard, &session, choice.workspace, "register").await?;
    let (kind, method) = (
        choice.connector_type.as_deref(),
        choice.auth_method.as_deref(),
    );
    show(
        &dashboard,
        loaded,
        kind,
        method,
        BTreeMap::new(),
        None,
        None,
    )
    .await
}

/// The API's connector request from the form's fields.
fn request_of(
    method: &AuthMethodSpec,
    spec: &ConnectorTypeSpec,
    form: &BTreeMap<String, String>,
) -> Result<Value, String> {
    let text = |name: &str| form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut configuration = Map::new();
    for field in config_fields(&method.config_schema)? {
        let entered = form.get(&format!("config.{}", field.name));
        let value = match (field.field_type, entered.map(String::as_str)) {
            (FieldType::Boolean, entered) => Value::Bool(entered.is_some()),
            (_, None | Some("")) => continue,
            (FieldType::Integer | FieldType::Number, Some(number)) => {
                let parsed: serde_json::Number = number
                    .trim()
                    .parse()
                    .map_err(|_| format!("{} must be a number", field.name))?;
                Value::Number(parsed)
            }
            (_, Some(entered)) => Value::String(entered.to_owned()),
        };
        configuration.insert(field.name, value);
    }
    let resource_types: Vec<&str> = match text("resource_type") {
        Some(one) => vec![one],
        None => spec
            .resource_types
            .iter()
            .filter(|r| r.auth_methods.contains(&method.auth_method))
            .map(|r| r.resource_type.as_str())
            .collect(),
    };
    let labels = view::parse_pairs(form.get("labels").map_or("", String::as_str))
        .map_err(|problem| format!("Labels: {problem}"))?;
    let expiration_seconds = match text("expiration_seconds") {
        Some(seconds) => Some(
            seconds
                .parse::<i64>()
                .map_err(|_| "The expiration must be a whole number of seconds".to_owned())?,
        ),
        None => None,
    };
    Ok(json!({
        "name": text("name").unwrap_or_default(),
        "description": text("description").unwrap_or_default(),
        "connector_type": spec.connector_type,
        "auth_method": method.auth_method,
        "resource_types": resource_types,
        "resource_id": text("resource_id"),
        "configuration": configuration,
        "labels": labels,
        "shared": form.contains_key("shared"),
        "expiration_seconds": expiration_seconds,
        "expires_at": text("expires_at"),
    }))
}

#[derive(Deserialize)]
struct Created {
    id: uuid::Uuid,
}

pub async fn submit(
    State(dashboard): State<Dashboard>,
    session: Session,
    Form(form): Form<BTreeMap<String, String>>,
) -> PageResult {
    if !session.csrf_matches(form.get("csrf").map_or("", String::as_str)) {
        return Err(PageError::forged());
    }
    let workspace = form.get("workspace").cloned();
    let loaded = Frame::load(&dashboard, &session, workspace, "register").await?;
    let types: Vec<ConnectorTypeSpec> = dashboard.state.catalogue.specs().collect();
    let kind = form.get("connector_type").cloned();
    let auth_method = form.get("auth_method").cloned();
    let (kind, auth_method) = (kind.as_deref(), auth_method.as_deref());
    let spec = types
        .iter()
        .find(|t| Some(t.connector_type.as_str()) == kind);
    let chosen = spec.and_then(|s| Some((s, s.auth_method(auth_method?)?)));
    let request = chosen
        .ok_or_else(|| "Choose an authentication method.".to_owned())
        .and_then(|(spec, method)| request_of(method, spec, &form));
    let verify_only = form.get("action").is_some_and(|a| a == "verify");
    let uri = match verify_only {
        true => loaded.0.api("/api/v1/service_connectors/verify"),
        false => loaded.0.api("/api/v1/service_connectors"),
    };
    let workspace = view::query_value(&loaded.0.workspace);
    // The form again, as it was filled in (but for its secrets).
    let again = |reached, problem| {
        show(
            &dashboard,
            loaded,
            kind,
            auth_method,
            form,
            reached,
            problem,
        )
    };
    let request = match request {
        Ok(request) => request,
        Err(problem) => return again(None, Some(problem)).await,
    };
    let answer = dashboard
        .api
        .call::<Value>(session.caller(), Method::POST, &uri, Payload::Json(request))
        .await;
    match answer {
        Err(failure) if failure.signed_out => Err(PageError::SignIn),
        Err(failure) => again(None, Some(failure.message)).await,
        Ok(answer) if verify_only => again(serde_json::from_value(answer).ok(), None).await,
        Ok(created) => {
            let id = serde_json::from_value::<Created>(created)
                .map_err(|e| {
                    PageError::refused(axum::http::StatusCode::BAD_GATEWAY, e.to_string())
                })?
                .id;
            Ok(see_other(&format!(
                "/connectors/{id}?workspace={workspace}&done=created"
            )))
        }
    }
}
