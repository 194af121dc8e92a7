//! The OpenAPI document's frame; the paths come from the handlers' annotations.

use utoipa::openapi::content::{Content, ContentBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem, Paths};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ArrayBuilder, Object, ObjectBuilder, Ref, RefOr, Required, Response, Type};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::UtoipaMethodRouter;

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

/// Operations from `routes!` moved to their workspace-scoped form: served and documented at
/// `/api/v1/workspaces/{workspace}/…` instead of `/api/v1/…`, with the workspace in the path
/// instead of the query and `_in_workspace` after each operation id. The route and its
/// description come from the same value, so the form served is the form documented.
pub fn workspace_form<S>(routes: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
    relocate(
        routes,
        |own| own.to_owned(),
        |id| format!("{id}_in_workspace"),
    )
}

/// Like [`workspace_form`], but at `/api/v1/workspaces/{workspace}{path}` rather than under the
/// operation's own path (an older path ZenML clients call), as the one operation `operation_id`.
pub fn workspace_alias<S>(
    path: &str,
    operation_id: &str,
    routes: UtoipaMethodRouter<S>,
) -> UtoipaMethodRouter<S> {
    assert_eq!(routes.1.paths.len(), 1, "an alias names one path");
    relocate(routes, |_| path.to_owned(), |_| operation_id.to_owned())
}

fn relocate<S>(
    (schemas, paths, router): UtoipaMethodRouter<S>,
    path: impl Fn(&str) -> String,
    operation_id: impl Fn(&str) -> String,
) -> UtoipaMethodRouter<S> {
    let mut moved = Paths::new();
    for (own, mut item) in paths.paths {
        let own = own
            .strip_prefix("/api/v1")
            .expect("workspace-scoped operations are under /api/v1");
        operations(&mut item).for_each(|operation| in_a_workspace(operation, &operation_id));
        let scoped = format!("/api/v1/workspaces/{{workspace}}{}", path(own));
        moved.paths.insert(scoped, item);
    }
    (schemas, moved, router)
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

fn in_a_workspace(operation: &mut Operation, operation_id: impl Fn(&str) -> String) {
    operation.operation_id = operation.operation_id.as_deref().map(operation_id);
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
