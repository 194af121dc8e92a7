//! The OpenAPI document's frame; the paths come from the handlers' annotations.

use utoipa::openapi::content::{Content, ContentBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ArrayBuilder, Object, ObjectBuilder, Ref, RefOr, Required, Response, Type};
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
        (name = "audit", description = "The tamper-evident audit log (administrators)"),
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

/// The statuses every operation may answer with an error, whatever it does: a malformed
/// request, one too slow, too long or with too many headers, a parameter of the wrong type, or
/// a database that cannot be reached.
const EVERY_OPERATION: &[(&str, &str)] = &[
    ("400", "The request is not valid"),
    ("408", "The request took too long"),
    ("414", "The request target is too long"),
    (
        "422",
        "A parameter or the body does not have the expected form",
    ),
    ("431", "The request's headers are too large"),
    (
        "503",
        "The database cannot be reached at the moment; try again",
    ),
];
/// What operations that need a bearer token may answer besides.
const AUTHENTICATED: &[(&str, &str)] = &[
    (
        "401",
        "The token is missing, invalid or expired, or its session has ended",
    ),
    ("403", "The caller may not do this"),
    (
        "404",
        "Something the request names does not exist for the caller",
    ),
];
/// What operations that take a body may answer besides.
const WITH_A_BODY: &[(&str, &str)] = &[
    (
        "409",
        "A name is taken, or the record changed at the same time",
    ),
    ("413", "The body is too large"),
];

/// Documents the errors each operation may answer, all in our error format, beside those its
/// annotation names; an error response it names without a body gets the error body.
pub fn add_error_responses(spec: &mut utoipa::openapi::OpenApi) {
    let components = spec.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("ErrorBody".into(), error_body_schema());
    for item in spec.paths.paths.values_mut() {
        for operation in operations(item) {
            let mut statuses: Vec<(&str, &str)> = EVERY_OPERATION.to_vec();
            if operation.security.is_some() {
                statuses.extend(AUTHENTICATED);
            }
            if operation.request_body.is_some() {
                statuses.extend(WITH_A_BODY);
            }
            let responses = &mut operation.responses.responses;
            for (status, description) in statuses {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(Response::new(description)));
            }
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response)
                    && response.content.is_empty()
                {
                    response
                        .content
                        .insert("application/json".into(), RefOr::T(error_content()));
                }
            }
        }
    }
}

/// `{"detail": ["<ExceptionClass>", "<message>"]}`, or `{"error": "<code>"}` for the OAuth
/// device flow's answers.
fn error_body_schema() -> RefOr<utoipa::openapi::Schema> {
    let detail = ArrayBuilder::new()
        .items(Object::with_type(Type::String))
        .min_items(Some(2))
        .max_items(Some(2));
    ObjectBuilder::new()
        .property("detail", detail)
        .property("error", Object::with_type(Type::String))
        .description(Some(
            "An error: `detail` names ZenML's exception class and gives the message; the \
             device flow answers `error` with an OAuth error code instead.",
        ))
        .into()
}

fn error_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build()
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
                operations(&mut item).for_each(in_a_workspace);
                (format!("/api/v1/workspaces/{{workspace}}{rest}"), item)
            })
        })
        .collect();
    spec.paths.paths.extend(twins);
}

/// The operations of a path, of the methods this API serves.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
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
