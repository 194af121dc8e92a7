//! Stacks and stack components, read-only, with links to the connectors they use.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::session::Session;
use super::view::{Named, Owned, Page};
use super::{Dashboard, Frame, InWorkspace, PageResult, render};

#[derive(Deserialize)]
pub struct Component {
    name: String,
    body: ComponentBody,
    metadata: Option<ComponentMetadata>,
    resources: Option<Owned>,
}

#[derive(Deserialize)]
struct ComponentBody {
    #[serde(rename = "type")]
    component_type: String,
    flavor_name: String,
    updated: String,
}

#[derive(Deserialize)]
struct ComponentMetadata {
    /// Only its id and name are read; someone else's private connector is only a name.
    connector: Option<Named>,
    connector_resource_id: Option<String>,
}

impl Component {
    fn connector(&self) -> Option<&Named> {
        self.metadata.as_ref()?.connector.as_ref()
    }

    fn resource_id(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.connector_resource_id.as_deref())
            .unwrap_or("")
    }

    fn owner(&self) -> &str {
        self.resources
            .as_ref()
            .and_then(|r| r.user.as_ref())
            .map_or("", |u| u.name.as_str())
    }
}

#[derive(Template)]
#[template(path = "components.html")]
struct ComponentsPage {
    frame: Frame,
    components: Vec<Component>,
    total: u64,
}

pub async fn components(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(query): Query<InWorkspace>,
) -> PageResult {
    let (frame, _) = Frame::load(&dashboard, &session, query.workspace, "components").await?;
    let uri = frame.api("/api/v1/components?hydrate=true&size=100&sort_by=asc:name");
    let listed: Page<Component> = dashboard.api.get(session.caller(), &uri).await?;
    let page = ComponentsPage {
        frame,
        total: listed.total,
        components: listed.items,
    };
    Ok(render(&page).into_response())
}

#[derive(Deserialize)]
pub struct Stack {
    id: uuid::Uuid,
    name: String,
    body: StackBody,
    metadata: Option<StackMetadata>,
    resources: Owned,
}

#[derive(Deserialize)]
struct StackBody {
    updated: String,
}

#[derive(Deserialize)]
struct StackMetadata {
    description: String,
}

/// A stack with its components, hydrated (a stack lists its components without their links).
pub struct StackRow {
    stack: Stack,
    components: Vec<Component>,
}

impl Stack {
    fn description(&self) -> &str {
        self.metadata
            .as_ref()
            .map_or("", |m| m.description.as_str())
    }

    fn owner(&self) -> &str {
        self.resources.user.as_ref().map_or("", |u| u.name.as_str())
    }
}

#[derive(Template)]
#[template(path = "stacks.html")]
struct StacksPage {
    frame: Frame,
    stacks: Vec<StackRow>,
    total: u64,
}

pub async fn stacks(
    State(dashboard): State<Dashboard>,
    session: Session,
    Query(query): Query<InWorkspace>,
) -> PageResult {
    let (frame, _) = Frame::load(&dashboard, &session, query.workspace, "stacks").await?;
    let uri = frame.api("/api/v1/stacks?hydrate=true&size=100&sort_by=asc:name");
    let listed: Page<Stack> = dashboard.api.get(session.caller(), &uri).await?;
    let mut stacks = Vec::new();
    for stack in listed.items {
        let uri = format!(
            "/api/v1/components?stack_id={}&hydrate=true&size=100",
            stack.id
        );
        let components: Page<Component> = dashboard
            .api
            .get(session.caller(), &frame.api(&uri))
            .await?;
        stacks.push(StackRow {
            stack,
            components: components.items,
        });
    }
    let page = StacksPage {
        frame,
        total: listed.total,
        stacks,
    };
    Ok(render(&page).into_response())
}
