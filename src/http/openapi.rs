//! The OpenAPI document's frame; the paths come from the handlers' annotations.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Object, RefOr, Required, Type};
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
        (name = "flavors", description = "Stack component flavors and component types"),
        (name = "stack components", description = "Stack components and their links to connectors"),
        (name = "stacks", description = "Stacks of components, and full-stack registration"),
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

/// Documents the workspace-scoped form, `/api/v1/workspaces/{workspace}/…`, of every path under
/// `/api/v1` that starts with one of `prefixes`: the same operations, with the workspace in the
/// path instead of the query.
pub fn add_workspace_forms(spec: &mut utoipa::openapi::OpenApi, prefixes: &[&str]) {
    let twins: Vec<(String, utoipa::openapi::PathItem)> = spec
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| {
            let rest = path.strip_prefix("/api/v1")?;
            prefixes.iter().any(|p| rest.starts_with(p)).then(|| {
                let mut item = item.clone();
                for operation in [
                    &mut item.get,
                    &mut item.put,
                    &mut item.post,
                    &mut item.delete,
                ]
                .into_iter()
                .flatten()
                {
                    in_a_workspace(operation);
                }
                (format!("/api/v1/workspaces/{{workspace}}{rest}"), item)
            })
        })
        .collect();
    spec.paths.paths.extend(twins);
}

fn in_a_workspace(operation: &mut Operation) {
    operation.operation_id = operation
        .operation_id
        .as_ref()
        .map(|id| format!("{id}_in_workspace"));
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    parameters.retain(|parameter| match parameter {
        RefOr::T(Parameter {
            name,
            parameter_in: ParameterIn::Query,
            ..
        }) => name != "project_name_or_id" && name != "workspace",
        _ => true,
    });
    let workspace = ParameterBuilder::new()
        .name("workspace")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The workspace's name or id"))
        .schema(Some(RefOr::<utoipa::openapi::Schema>::T(
            Object::with_type(Type::String).into(),
        )))
        .build();
    parameters.insert(0, RefOr::T(workspace));
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
