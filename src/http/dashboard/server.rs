//! The server page, for server administrators: version, database, implicit authentication,
//! encryption keys, and users with their workspace memberships.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::session::Session;
use super::view::{Named, Page};
use super::{Dashboard, Frame, InWorkspace, PageError, PageResult, render};
use crate::connectors::catalogue::IMPLICIT;

#[derive(Deserialize)]
struct Info {
    version: String,
    database_type: String,
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
pub struct Key {
    id: String,
    active: bool,
    created: String,
    retired: Option<String>,
    values: u64,
    encryptions: u64,
}

#[derive(Deserialize)]
struct User {
    name: String,
    body: UserBody,
}

#[derive(Deserialize)]
struct UserBody {
    active: bool,
    is_admin: bool,
    is_service_account: bool,
}

#[derive(Deserialize)]
struct Member {
    user_name: String,
    role: String,
}

/// A user as the page lists them.
pub struct Account {
    name: String,
    active: bool,
    is_admin: bool,
    is_service_account: bool,
    memberships: Vec<String>,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    frame: Frame,
    server: String,
    api_version: String,
    database: String,
    implicit: String,
    keys: Vec<Key>,
    accounts: Vec<Account>,
}

pub async fn page(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(query): Query<InWorkspace>,
) -> PageResult {
    let (frame, scope) = Frame::load(&dashboard, &session, query.workspace, "server").await?;
    if !scope.caller.is_admin {
        return Err(PageError::refused(
            StatusCode::FORBIDDEN,
            "The server page is for server administrators.",
        ));
    }
    let caller = session.caller();
    let info: Info = dashboard.api.get(caller, "/api/v1/info").await?;
    let keys: Vec<Key> = dashboard.api.get(caller, "/api/v1/keys").await?;
    let users: Page<User> = dashboard
        .api
        .get(
            caller,
            "/api/v1/users?size=100&sort_by=asc:name&hydrate=false",
        )
        .await?;
    let workspaces: Page<Named> = dashboard
        .api
        .get(
            caller,
            "/api/v1/workspaces?size=100&sort_by=asc:name&hydrate=false",
        )
        .await?;
    let mut memberships: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for workspace in &workspaces.items {
        let uri = format!("/api/v1/workspaces/{}/members", workspace.id);
        let members: Vec<Member> = dashboard.api.get(caller, &uri).await?;
        for member in members {
            let held = format!("{} ({})", workspace.name, member.role.to_lowercase());
            memberships.entry(member.user_name).or_default().push(held);
        }
    }
    let catalogue = &dashboard.state.catalogue;
    let implicit = match (
        catalogue.auth_method_enabled(IMPLICIT),
        catalogue.implicit_workspaces(),
    ) {
        (false, _) => "disabled (ZENML_ENABLE_IMPLICIT_AUTH_METHODS is not set to true)".to_owned(),
        (true, None) => "enabled in every workspace".to_owned(),
        (true, Some(only)) => format!("enabled only in: {}", only.join(", ")),
    };
    let page = ServerPage {
        frame,
        server: info.metadata.get("server").cloned().unwrap_or_default(),
        api_version: info.version,
        database: info.database_type,
        implicit,
        keys,
        accounts: users
            .items
            .into_iter()
            .map(|user| Account {
                memberships: memberships.remove(&user.name).unwrap_or_default(),
                name: user.name,
                active: user.body.active,
                is_admin: user.body.is_admin,
                is_service_account: user.body.is_service_account,
            })
            .collect(),
    };
    Ok(render(&page).into_response())
}
