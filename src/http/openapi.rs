//! The OpenAPI document's frame; the paths come from the handlers' annotations.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "connector-hub",
        description = "A multi-tenant server for cloud service connectors and their secrets, \
                       speaking ZenML's REST API. Workspace-scoped operations act in the \
                       workspace named by the `project_name_or_id` (or `workspace`) query \
                       parameter, else in the caller's default workspace; they are also served \
                       under `/api/v1/workspaces/{workspace}/…`. Errors are \
                       `{\"detail\": [\"<ExceptionClass>\", \"<message>\"]}`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "server", description = "Server identity and health"),
        (name = "auth", description = "Logging in and the current user"),
        (name = "users", description = "User accounts (server administrators)"),
        (name = "service accounts", description = "Machine accounts and their API keys"),
        (name = "workspaces", description = "Tenants and their members"),
        (name = "secrets", description = "Encrypted secrets"),
        (name = "service connectors", description = "Connector types and service connectors"),
        (name = "keys", description = "Encryption-key administration"),
        (name = "stacks", description = "The default stack of each workspace, for ZenML clients"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as served at `/openapi.json` and committed as `openapi/openapi.json`.
pub fn document() -> String {
    let (_, spec) = super::api();
    let mut text = spec
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
