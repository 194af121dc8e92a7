//! The connectors list and a connector's page: verify, edit and delete.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::Payload;
use super::session::Session;
use super::view::{self, Connector, Expiry, Page, Reached};
use super::{Dashboard, Frame, PageError, PageResult, render, see_other};
use crate::connectors::spec::config_fields;
use crate::domain::Scope;
use crate::http::connectors;

const PAGE_SIZE: u64 = 20;

/// The orders the list offers, as the API's `sort_by`, with their names.
const SORTS: &[(&str, &str)] = &[
    ("desc:created", "newest first"),
    ("asc:created", "oldest first"),
    ("asc:name", "name, A to Z"),
    ("desc:name", "name, Z to A"),
    ("desc:updated", "recently changed"),
];

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    workspace: Option<String>,
    name: Option<String>,
    resource_type: Option<String>,
    auth_method: Option<String>,
    label: Option<String>,
    sort: Option<String>,
    page: Option<u64>,
    done: Option<String>,
}

/// A connector as a row of the list.
pub struct Row {
    pub id: Uuid,
    pub name: String,
    pub emoji: &'static str,
    pub connector_type: String,
    pub auth_method: String,
    pub resource_types: Vec<(&'static str, String)>,
    pub resource_id: String,
    pub labels: Vec<String>,
    pub shared: bool,
    pub owner: String,
    pub expiry: Expiry,
    pub verified: Option<Verified>,
}

/// The last verification, as shown.
pub struct Verified {
    pub when: String,
    pub ok: bool,
    pub text: String,
}

impl Verified {
    fn of(last: &view::Verification) -> Verified {
        let reached: usize = last.resources.values().sum();
        Verified {
            when: view::show_time(&last.verified_at),
            ok: last.error.is_none(),
            text: match &last.error {
                Some(error) => error.clone(),
                None => format!("{reached} resource{}", if reached == 1 { "" } else { "s" }),
            },
        }
    }
}

fn row_of(dashboard: &Dashboard, connector: Connector, now: chrono::DateTime<chrono::Utc>) -> Row {
    let spec = dashboard
        .state
        .catalogue
        .get(&connector.body.connector_type)
        .map(|kind| kind.spec());
    let resource_emoji = |resource_type: &str| {
        view::emoji(
            spec.and_then(|s| s.resource_type(resource_type))
                .and_then(|r| r.emoji.as_deref()),
        )
    };
    let metadata = connector.metadata.as_ref();
    Row {
        id: connector.id,
        emoji: view::emoji(spec.and_then(|s| s.emoji.as_deref())),
        resource_types: connector
            .body
            .resource_types
            .iter()
            .map(|t| (resource_emoji(t), t.clone()))
            .collect(),
        resource_id: connector.body.resource_id.clone().unwrap_or_default(),
        labels: metadata
            .map(|m| m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default(),
        shared: connector.body.shared,
        owner: connector
            .resources
            .user
            .as_ref()
            .map_or_else(|| "(deleted)".to_owned(), |u| u.name.clone()),
        expiry: Expiry::of(&connector.body, now),
        verified: metadata
            .and_then(|m| m.last_verification.as_ref())
            .map(Verified::of),
        auth_method: connector.body.auth_method,
        connector_type: connector.body.connector_type,
        name: connector.name,
    }
}

#[derive(Template)]
#[template(path = "connectors.html")]
struct ListPage {
    frame: Frame,
    rows: Vec<Row>,
    query: ListQuery,
    resource_types: Vec<String>,
    auth_methods: Vec<String>,
    sorts: &'static [(&'static str, &'static str)],
    sort: String,
    /// The filters, as a query string to which paging links add `&page=`.
    filters: String,
    index: u64,
    total_pages: u64,
    total: u64,
    notice: Option<&'static str>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "created" => Some("The connector was registered."),
        "saved" => Some("The changes were saved."),
        "deleted" => Some("The connector was deleted."),
        _ => None,
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub async fn list(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let (frame, _) =
        Frame::load(&dashboard, &session, query.workspace.clone(), "connectors").await?;
    let sort = SORTS
        .iter()
        .map(|(key, _)| *key)
        .find(|key| Some(*key) == query.sort.as_deref())
        .unwrap_or(SORTS[0].0)
        .to_owned();
    let mut filters = vec![
        ("workspace", frame.workspace.clone()),
        ("sort", sort.clone()),
    ];
    let mut api = vec![
        ("hydrate", "true".to_owned()),
        ("expand_secrets", "false".to_owned()),
        ("size", PAGE_SIZE.to_string()),
        ("sort_by", sort.clone()),
        ("page", query.page.unwrap_or(1).max(1).to_string()),
    ];
    if let Some(name) = non_empty(&query.name) {
        filters.push(("name", name.to_owned()));
        api.push(("name", format!("contains:{name}")));
    }
    if let Some(resource_type) = non_empty(&query.resource_type) {
        filters.push(("resource_type", resource_type.to_owned()));
        api.push(("resource_type", resource_type.to_owned()));
    }
    if let Some(auth_method) = non_empty(&query.auth_method) {
        filters.push(("auth_method", auth_method.to_owned()));
        api.push(("auth_method", auth_method.to_owned()));
    }
    if let Some(label) = non_empty(&query.label) {
        filters.push(("label", label.to_owned()));
        api.push(("labels_str", label.to_owned()));
    }
    let uri = format!(
        "/api/v1/service_connectors?{}",
        serde_urlencoded::to_string(&api).unwrap_or_default()
    );
    let page: Page<Connector> = dashboard
        .api
        .get(session.caller(), &frame.api(&uri))
        .await?;
    let now = dashboard.state.clock.now();
    let specs: Vec<_> = dashboard.state.catalogue.specs().collect();
    let page = ListPage {
        rows: page
            .items
            .into_iter()
            .map(|c| row_of(&dashboard, c, now))
            .collect(),
        resource_types: specs
            .iter()
            .flat_map(|s| s.resource_types.iter().map(|r| r.resource_type.clone()))
            .collect(),
        auth_methods: specs
            .iter()
            .flat_map(|s| s.auth_methods.iter().map(|m| m.auth_method.clone()))
            .collect(),
        sorts: SORTS,
        sort,
        filters: serde_urlencoded::to_string(&filters).unwrap_or_default(),
        index: page.index,
        total_pages: page.total_pages,
        total: page.total,
        notice: notice(query.done.as_deref()),
        query,
        frame,
    };
    Ok(axum::response::IntoResponse::into_response(render(&page)))
}

/// One setting of a connector as shown: secret ones only as "set".
pub struct Setting {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

/// A component that uses the connector.
#[derive(Deserialize)]
pub struct UsingComponent {
    name: String,
    body: UsingComponentBody,
}

#[derive(Deserialize)]
struct UsingComponentBody {
    #[serde(rename = "type")]
    component_type: String,
    flavor_name: String,
}

#[derive(Template)]
#[template(path = "connector.html")]
struct DetailPage {
    frame: Frame,
    row: Row,
    description: String,
    settings: Vec<Setting>,
    secret_fields: Vec<String>,
    labels_text: String,
    expires_at: String,
    created: String,
    updated: String,
    can_edit: bool,
    components: Vec<UsingComponent>,
    reached: Option<Reached>,
    verify_error: Option<String>,
    problem: Option<String>,
    notice: Option<&'static str>,
}

/// What a connector's page shows besides the connector.
#[derive(Default)]
struct Outcome {
    reached: Option<Reached>,
    verify_error: Option<String>,
    problem: Option<String>,
    notice: Option<&'static str>,
}

fn connector_uri(frame: &Frame, id: Uuid) -> String {
    frame.api(&format!("/api/v1/service_connectors/{id}"))
}

async fn detail_page(
    dashboard: &Dashboard,
    session: &Session,
    (frame, scope): (Frame, Scope),
    id: Uuid,
    outcome: Outcome,
) -> PageResult {
    let uri = format!("{}&expand_secrets=false", connector_uri(&frame, id));
    let connector: Connector = dashboard.api.get(session.caller(), &uri).await?;
    let components = format!("/api/v1/components?connector_id={id}&size=100&hydrate=false");
    let components: Page<UsingComponent> = dashboard
        .api
        .get(session.caller(), &frame.api(&components))
        .await?;
    let spec = dashboard
        .state
        .catalogue
        .get(&connector.body.connector_type)
        .map(|kind| kind.spec());
    let fields = spec
        .and_then(|s| s.auth_method(&connector.body.auth_method))
        .and_then(|m| config_fields(&m.config_schema).ok())
        .unwrap_or_default();
    let metadata = connector.metadata.as_ref();
    let configuration = metadata.map(|m| &m.configuration);
    let mut settings: Vec<Setting> = configuration
        .into_iter()
        .flatten()
        .filter(|(key, _)| !fields.iter().any(|f| f.secret && &f.name == *key))
        .map(|(key, value)| Setting {
            name: key.clone(),
            value: match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            },
            secret: false,
        })
        .collect();
    let secret_fields: Vec<String> = fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name.clone())
        .collect();
    settings.extend(
        fields
            .iter()
            .filter(|f| f.secret && f.required)
            .map(|f| Setting {
                name: f.name.clone(),
                value: String::new(),
                secret: true,
            }),
    );
    let page = DetailPage {
        description: connector.body.description.clone(),
        labels_text: metadata
            .map(|m| view::pairs_text(&m.labels))
            .unwrap_or_default(),
        expires_at: connector
            .body
            .expires_at
            .as_deref()
            .map(view::show_time)
            .unwrap_or_default(),
        created: view::show_time(&connector.body.created),
        updated: view::show_time(&connector.body.updated),
        can_edit: connectors::may_read_secrets(&scope, connector.body.user_id),
        components: components.items,
        row: row_of(dashboard, connector, dashboard.state.clock.now()),
        settings,
        secret_fields,
        reached: outcome.reached,
        verify_error: outcome.verify_error,
        problem: outcome.problem,
        notice: outcome.notice,
        frame,
    };
    Ok(axum::response::IntoResponse::into_response(render(&page)))
}

#[derive(Deserialize)]
pub struct DetailQuery {
    workspace: Option<String>,
    done: Option<String>,
}

pub async fn detail(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Query(query): Query<DetailQuery>,
) -> PageResult {
    let loaded = Frame::load(&dashboard, &session, query.workspace, "connectors").await?;
    let outcome = Outcome {
        notice: notice(query.done.as_deref()),
        ..Outcome::default()
    };
    detail_page(&dashboard, &session, loaded, id, outcome).await
}

/// A form posted from a connector's page.
#[derive(Deserialize)]
pub struct ConnectorForm {
    #[serde(default)]
    csrf: String,
    workspace: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: String,
    shared: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

/// The frame, after checking that the form is this session's.
async fn posted(
    dashboard: &Dashboard,
    session: &Session,
    csrf: &str,
    workspace: Option<String>,
) -> PageResult<(Frame, Scope)> {
    if !session.csrf_matches(csrf) {
        return Err(PageError::forged());
    }
    Frame::load(dashboard, session, workspace, "connectors").await
}

pub async fn verify(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Form(form): Form<ConnectorForm>,
) -> PageResult {
    let loaded = posted(&dashboard, &session, &form.csrf, form.workspace).await?;
    let uri = connector_uri(&loaded.0, id).replacen('?', "/verify?", 1);
    let answer = dashboard
        .api
        .call::<Reached>(session.caller(), Method::PUT, &uri, Payload::None)
        .await;
    let outcome = match answer {
        Ok(reached) => Outcome {
            reached: Some(reached),
            ..Outcome::default()
        },
        Err(failure) if failure.signed_out => return Err(PageError::SignIn),
        Err(failure) => Outcome {
            verify_error: Some(failure.message),
            ..Outcome::default()
        },
    };
    detail_page(&dashboard, &session, loaded, id, outcome).await
}

/// Secret fields are posted as `secret.<name>`; blank ones keep their stored values.
fn new_secret_values(rest: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    rest.iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("secret.")?.to_owned(), value.clone())))
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

pub async fn edit(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Form(form): Form<ConnectorForm>,
) -> PageResult {
    let loaded = posted(&dashboard, &session, &form.csrf, form.workspace).await?;
    let uri = connector_uri(&loaded.0, id);
    let labels = match view::parse_pairs(&form.labels) {
        Ok(labels) => labels,
        Err(problem) => {
            let outcome = Outcome {
                problem: Some(format!("Labels: {problem}.")),
                ..Outcome::default()
            };
            return detail_page(&dashboard, &session, loaded, id, outcome).await;
        }
    };
    let new_secrets = new_secret_values(&form.rest);
    // One read of the stored connector. With new secret values, it includes the stored ones,
    // read here and never sent to the browser: a configuration in an update replaces the
    // stored one whole.
    let expand = !new_secrets.is_empty();
    let current: Value = dashboard
        .api
        .get(session.caller(), &format!("{uri}&expand_secrets={expand}"))
        .await?;
    // An update clears what it leaves out of these two, so they are sent as they are.
    let mut update = json!({
        "description": form.description,
        "labels": labels,
        "shared": form.shared.is_some(),
        "resource_id": current["body"]["resource_id"],
        "expiration_seconds": current["metadata"]["expiration_seconds"],
    });
    if expand {
        let mut configuration = current["metadata"]["configuration"].clone();
        for (key, value) in new_secrets {
            configuration[key] = Value::String(value);
        }
        update["configuration"] = configuration;
    }
    let change = (Method::PUT, Payload::Json(update));
    let then = |workspace: &str| format!("/connectors/{id}?workspace={workspace}&done=saved");
    apply(&dashboard, &session, loaded, id, change, then).await
}

/// Runs a change to the connector and goes on to `then(workspace)`; a refusal is shown on the
/// connector's page.
async fn apply(
    dashboard: &Dashboard,
    session: &Session,
    loaded: (Frame, Scope),
    id: Uuid,
    (method, payload): (Method, Payload),
    then: impl FnOnce(&str) -> String,
) -> PageResult {
    let uri = connector_uri(&loaded.0, id);
    let answer = dashboard
        .api
        .call::<Value>(session.caller(), method, &uri, payload);
    match answer.await {
        Ok(_) => Ok(see_other(&then(&view::query_value(&loaded.0.workspace)))),
        Err(failure) if failure.signed_out => Err(PageError::SignIn),
        Err(failure) if failure.status == StatusCode::NOT_FOUND => Err(failure.into()),
        Err(failure) => {
            let outcome = Outcome {
                problem: Some(failure.message),
                ..Outcome::default()
            };
            detail_page(dashboard, session, loaded, id, outcome).await
        }
    }
}

pub async fn delete(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Form(form): Form<ConnectorForm>,
) -> PageResult {
    let loaded = posted(&dashboard, &session, &form.csrf, form.workspace).await?;
    let change = (Method::DELETE, Payload::None);
    let then = |workspace: &str| format!("/?workspace={workspace}&done=deleted");
    apply(&dashboard, &session, loaded, id, change, then).await
}
