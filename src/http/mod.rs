//! The HTTP layer: thin handlers that parse, authorise (asking `domain`), call `store` and
//! `crypto`, and render ZenML-shaped responses.

pub mod audit;
pub mod auth;
pub mod client_address;
pub mod components;
pub mod connector_types;
pub mod connectors;
pub mod dashboard;
pub mod devices;
pub mod error;
pub mod extract;
pub mod flavors;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod rendered;
mod sealing;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod stack_wizard;
pub mod stacks;
mod time;
pub mod users;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::auth::{LoginLimiter, TokenSigner};
use crate::connectors::Catalogue;
use crate::crypto::Keyring;
use crate::domain::clock::Clock;
use crate::metrics::Metrics;
use crate::stacks::Flavors;
use crate::store::Store;
use client_address::TrustedProxies;
use error::{ApiError, error_body};
use rendered::RenderedPages;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub tokens: Arc<TokenSigner>,
    pub logins: Arc<LoginLimiter>,
    pub catalogue: Arc<Catalogue>,
    pub flavors: Arc<Flavors>,
    pub pages: Arc<RenderedPages>,
    pub clock: Clock,
    pub server: Arc<ServerIdentity>,
    pub audit: Arc<audit::AuditLog>,
    pub metrics: Arc<Metrics>,
    /// `--metrics-token`: lets a scraper read `/metrics` under the main address.
    pub metrics_token: Option<Arc<str>>,
}

/// Facts about this deployment reported by `/api/v1/info`.
#[derive(Debug)]
pub struct ServerIdentity {
    pub id: Uuid,
    pub url: Option<String>,
    pub database_type: &'static str,
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRoute {
    /// Under the main address, to server admins and the scrape token.
    ForAdmins,
    /// On a separate address (`--metrics-bind`), so not under the main one.
    Separate,
    /// Neither served nor counted: the benchmark's baseline for what counting costs.
    Off,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The documented API and its OpenAPI description.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(server::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(workspaces::router())
        .merge(secrets::router())
        .merge(connectors::router())
        .merge(connector_types::router())
        .merge(devices::router())
        .merge(flavors::router())
        .merge(components::router())
        .merge(stacks::router())
        .merge(stack_wizard::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(workspace_router())
        .split_for_parts();
    openapi::add_error_responses(&mut spec);
    (router, spec)
}

/// The operations also served, and documented, under `/api/v1/workspaces/{workspace}/…`.
fn workspace_router() -> OpenApiRouter<AppState> {
    secrets::workspace_router()
        .merge(connectors::workspace_router())
        .merge(components::workspace_router())
        .merge(stacks::workspace_router())
}

/// The paths [`router`] serves besides the API, which the OpenAPI document leaves out. Every
/// other path it serves is an API operation and is documented: the drift test in
/// `tests/api/server.rs` holds [`served_paths`] against the document and this list. Nothing
/// under `/api/` belongs here.
pub const NOT_API: &[&str] = &[
    // The dashboard's HTML pages, the forms they post to, and their stylesheet
    // (`dashboard::router`). They call the API in process.
    "/",
    "/login",
    "/logout",
    "/connectors/new",
    "/connectors/{id}",
    "/connectors/{id}/verify",
    "/connectors/{id}/edit",
    "/connectors/{id}/delete",
    "/secrets",
    "/secrets/{id}/edit",
    "/secrets/{id}/delete",
    "/stacks",
    "/components",
    "/server",
    "/assets/dashboard.css",
    // The HTML page where a person approves a device's login; its API half is
    // `PUT /api/v1/devices/{device_id}/verify`.
    "/devices/verify",
    // Swagger UI, which browses the document.
    "/docs",
    "/docs/",
    "/docs/{*rest}",
    // The document itself.
    "/openapi.json",
    // Prometheus metrics, in its text format rather than the API's JSON, and for operators
    // rather than ZenML clients; served here only without `--metrics-bind`.
    "/metrics",
];

/// Every path `router` serves, as registered (`/api/v1/secrets/{secret_id}`), for the drift
/// test to hold against the document. axum offers no list of a router's routes but its `Debug`
/// output, which names each (`RouteId(3): "/api/v1/info"`); were that to change, the test would
/// find the documented paths not served and fail, not pass.
pub fn served_paths(router: &Router) -> std::collections::BTreeSet<String> {
    let text = format!("{router:?}");
    // The routes proper; the fallback's own paths ("/" among them) follow.
    let routes = text
        .split_once(", fallback_router: ")
        .map_or(text.as_str(), |(routes, _)| routes);
    routes
        .split("): \"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(path, _)| path.to_owned())
        .collect()
}

/// The whole server; `proxies` are those whose `X-Forwarded-For` names the client.
pub fn router(
    state: AppState,
    limits: Limits,
    metrics: MetricsRoute,
    proxies: TrustedProxies,
) -> Router {
    let (api, spec) = api();
    let api = match metrics {
        MetricsRoute::ForAdmins => api.route(
            "/metrics",
            axum::routing::get(self::metrics::metrics_for_admins),
        ),
        MetricsRoute::Separate | MetricsRoute::Off => api,
    };
    let count_requests = (metrics != MetricsRoute::Off).then(|| {
        axum::middleware::from_fn_with_state(state.metrics.clone(), self::metrics::track_requests)
    });
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::write_carried_records,
        ))
        .with_state(state.clone());
    let pages = dashboard::router(state, api.clone());
    let router = api
        .route("/devices/verify", axum::routing::get(devices::verification_page))
        .merge(pages)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(|| async { ApiError::NotFound("Unable to find the requested resource".into()) })
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal("a request handler panicked".into()).into_response()
                }))
                .layer(axum::middleware::map_response(uniform_errors))
                .layer(axum::middleware::from_fn(refuse_oversized_head))
                .layer(axum::middleware::from_fn(refuse_nul_in_uri))
                .layer(axum::middleware::from_fn_with_state(
                    Arc::new(proxies),
                    client_address::resolve,
                ))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
                .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
        );
    // Outermost, so that time-outs and every other answer are counted too.
    match count_requests {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// The longest request target (path and query) served, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses an overlong request target (414) or oversized headers (431) in our error format.
/// The HTTP layer has limits of its own, far higher, past which it answers without a body.
async fn refuse_oversized_head(
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        let message = format!("The request target is longer than {MAX_URI_BYTES} bytes.");
        return (StatusCode::URI_TOO_LONG, error_body("ValueError", &message)).into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        let message = format!("The request's headers are larger than {MAX_HEADER_BYTES} bytes.");
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            error_body("ValueError", &message),
        )
            .into_response();
    }
    next.run(request).await
}

/// A NUL character in a path segment or query parameter names nothing and filters nothing;
/// PostgreSQL cannot even compare text with one. Refused before routing, on every backend alike.
async fn refuse_nul_in_uri(
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Result<Response<Body>, ApiError> {
    let uri = request.uri();
    let encoded_nul = |part: &str| part.as_bytes().windows(3).any(|w| w == b"%00");
    if encoded_nul(uri.path()) || uri.query().is_some_and(encoded_nul) {
        return Err(ApiError::BadRequest(
            "The request's path or query contains a NUL character (%00).".into(),
        ));
    }
    Ok(next.run(request).await)
}

/// Gives error responses produced outside our handlers (unknown methods, time-outs, framework
/// rejections) the same JSON error body as ours.
async fn uniform_errors(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    // Ours already: JSON from the API, HTML from the dashboard.
    let explained = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || explained {
        return response;
    }
    let (class, message) = match status {
        StatusCode::NOT_FOUND => ("KeyError", "Unable to find the requested resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("MethodNotAllowedError", "Method not allowed"),
        StatusCode::REQUEST_TIMEOUT => (
            "TimeoutError",
            "The request took too long and was abandoned",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("ValueError", "The request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("ValueError", "Unsupported content type"),
        s if s.is_server_error() => ("RuntimeError", "An internal error occurred"),
        _ => ("ValueError", ""),
    };
    let (mut parts, body) = response.into_parts();
    // A framework rejection (a path that does not parse, say) explains itself in plain text.
    let explained = match message {
        "" => axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .filter(|text| !text.trim().is_empty())
            .unwrap_or_else(|| "The request is invalid".to_owned()),
        message => message.to_owned(),
    };
    let rebuilt = (status, error_body(class, &explained)).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, rebuilt.into_body())
}
