//! Secrets: names, visibility, owners and dates. Values can be set and replaced but are never
//! shown: pages do not ask the API for them.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::Payload;
use super::session::Session;
use super::view::{self, Owned, Page};
use super::{Dashboard, Frame, PageError, PageResult, render, see_other};
use crate::domain::Scope;

#[derive(Deserialize)]
pub struct Secret {
    id: Uuid,
    name: String,
    body: SecretBody,
    resources: Owned,
}

#[derive(Deserialize)]
struct SecretBody {
    private: bool,
    created: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    frame: Frame,
    secrets: Vec<Secret>,
    index: u64,
    total_pages: u64,
    problem: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    workspace: Option<String>,
    page: Option<u64>,
    done: Option<String>,
}

async fn show(
    dashboard: &Dashboard,
    session: &Session,
    frame: Frame,
    page: u64,
    problem: Option<String>,
    notice: Option<&'static str>,
) -> PageResult {
    let uri = format!("/api/v1/secrets?hydrate=false&sort_by=asc:name&size=50&page={page}");
    let listed: Page<Secret> = dashboard
        .api
        .get(session.caller(), &frame.api(&uri))
        .await?;
    let page = SecretsPage {
        frame,
        secrets: listed.items,
        index: listed.index,
        total_pages: listed.total_pages,
        problem,
        notice,
    };
    Ok(render(&page).into_response())
}

pub async fn list(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> PageResult {
    let (frame, _) = Frame::load(&dashboard, &session, query.workspace, "secrets").await?;
    let notice = match query.done.as_deref() {
        Some("created") => Some("The secret was created."),
        Some("saved") => Some("The secret was updated."),
        Some("deleted") => Some("The secret was deleted."),
        _ => None,
    };
    show(
        &dashboard,
        &session,
        frame,
        query.page.unwrap_or(1).max(1),
        None,
        notice,
    )
    .await
}

#[derive(Deserialize)]
pub struct SecretForm {
    #[serde(default)]
    csrf: String,
    workspace: Option<String>,
    #[serde(default)]
    name: String,
    private: Option<String>,
    #[serde(default)]
    values: String,
}

async fn posted(
    dashboard: &Dashboard,
    session: &Session,
    form: &SecretForm,
) -> PageResult<(Frame, Scope)> {
    if !session.csrf_matches(&form.csrf) {
        return Err(PageError::forged());
    }
    Frame::load(dashboard, session, form.workspace.clone(), "secrets").await
}

/// What a secrets form asks of the API.
struct Change {
    method: Method,
    uri: String,
    payload: Payload,
    /// The notice the list shows afterwards.
    done: &'static str,
}

/// Checks a posted form and its values, runs the change it asks for, and goes back to the
/// list: with a notice on success, with the refusal otherwise.
async fn change(
    dashboard: &Dashboard,
    session: &Session,
    form: SecretForm,
    change: impl FnOnce(&SecretForm, BTreeMap<String, String>) -> Change,
) -> PageResult {
    let (frame, _) = posted(dashboard, session, &form).await?;
    let values = match view::parse_pairs(&form.values) {
        Ok(values) => values,
        Err(problem) => {
            let problem = Some(format!("Values: {problem}."));
            return show(dashboard, session, frame, 1, problem, None).await;
        }
    };
    let Change {
        method,
        uri,
        payload,
        done,
    } = change(&form, values);
    let uri = frame.api(&uri);
    let answer = dashboard
        .api
        .call::<Value>(session.caller(), method, &uri, payload);
    match answer.await {
        Ok(_) => {
            let workspace = view::query_value(&frame.workspace);
            Ok(see_other(&format!(
                "/secrets?workspace={workspace}&done={done}"
            )))
        }
        Err(failure) if failure.signed_out => Err(PageError::SignIn),
        Err(failure) => show(dashboard, session, frame, 1, Some(failure.message), None).await,
    }
}

pub async fn create(
    State(dashboard): State<Dashboard>,
    session: Session,
    Form(form): Form<SecretForm>,
) -> PageResult {
    change(&dashboard, &session, form, |form, values| Change {
        method: Method::POST,
        uri: "/api/v1/secrets".into(),
        payload: Payload::Json(json!({
            "name": form.name.trim(), "private": form.private.is_some(), "values": values,
        })),
        done: "created",
    })
    .await
}

pub async fn edit(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Form(form): Form<SecretForm>,
) -> PageResult {
    change(&dashboard, &session, form, |form, values| {
        // New values are merged into the stored ones; the others stay as they are.
        let mut body = json!({ "private": form.private.is_some() });
        if !values.is_empty() {
            body["values"] = json!(values);
        }
        Change {
            method: Method::PUT,
            uri: format!("/api/v1/secrets/{id}?patch_values=true"),
            payload: Payload::Json(body),
            done: "saved",
        }
    })
    .await
}

pub async fn delete(
    State(dashboard): State<Dashboard>,
    session: Session,
    Path(id): Path<Uuid>,
    Form(form): Form<SecretForm>,
) -> PageResult {
    change(&dashboard, &session, form, |_, _| Change {
        method: Method::DELETE,
        uri: format!("/api/v1/secrets/{id}"),
        payload: Payload::None,
        done: "deleted",
    })
    .await
}
