//! Runtime knobs shared by every listener: injected failures, slow responses and a log of
//! the requests received.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;

/// Which of the fake's services a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    ActiveDirectory,
    ResourceManager,
    ContainerRegistry,
    Kubernetes,
    /// Azurite's blob data plane, seen through the fake's recording proxy.
    BlobStorage,
}

/// How an injected failure answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 1`, as ARM throttling does.
    TooManyRequests,
    /// 429 asking the client to come back after this many seconds.
    TooManyRequestsFor(u64),
    /// 503, as a service having a bad moment.
    ServiceUnavailable,
    /// 307 to this URL, as a moved endpoint would answer.
    RedirectTo(String),
}

/// A request as the fake received it. Printing one (`{:?}`) redacts credentials, so that a
/// failed test's output holds none; the fields keep them, for tests to assert on.
#[derive(Clone)]
pub struct RecordedRequest {
    pub surface: Surface,
    pub method: Method,
    /// Path and query, e.g. `/subscriptions?api-version=2022-12-01`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Form fields and headers whose values are credentials.
const SECRET_FIELDS: [&str; 6] = [
    "client_secret",
    "client_assertion",
    "access_token",
    "refresh_token",
    "password",
    "token",
];

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The value of a query parameter.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.path_and_query.split_once('?')?.1;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
        pairs
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The body as a URL-encoded form (empty if it is not one).
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    /// The credential-bearing `Authorization` scheme (`Bearer`, `Basic`), if any.
    pub fn auth_scheme(&self) -> Option<&str> {
        self.header("authorization")?.split(' ').next()
    }

    /// Whether `secret` appears anywhere in the request: path, headers or body, as sent or
    /// URL-decoded.
    pub fn contains(&self, secret: &str) -> bool {
        let found = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        let decoded = |text: &str| {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).unwrap_or_default();
            pairs
                .iter()
                .any(|(key, value)| key.contains(secret) || value.contains(secret))
        };
        let query = self
            .path_and_query
            .split_once('?')
            .map_or("", |(_, query)| query);
        found(self.path_and_query.as_bytes())
            || decoded(query)
            || self.headers.values().any(|value| found(value.as_bytes()))
            || found(&self.body)
            || std::str::from_utf8(&self.body).is_ok_and(decoded)
    }
}

impl std::fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = (self.headers.iter())
            .map(|(name, value)| match name.as_str() {
                "authorization" => format!(
                    "{name}: {} <redacted>",
                    value.to_str().unwrap_or("").split(' ').next().unwrap_or("")
                ),
                _ => format!("{name}: {}", value.to_str().unwrap_or("<binary>")),
            })
            .collect();
        let form = self.form();
        let body = if form.is_empty() {
            format!("<{} bytes>", self.body.len())
        } else {
            let fields: Vec<String> = (form.iter())
                .map(|(key, value)| match SECRET_FIELDS.contains(&key.as_str()) {
                    true => format!("{key}=<redacted>"),
                    false => format!("{key}={value}"),
                })
                .collect();
            fields.join("&")
        };
        f.debug_struct("RecordedRequest")
            .field("surface", &self.surface)
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

#[derive(Default)]
pub(crate) struct FaultState {
    pending: HashMap<Surface, (Fault, usize)>,
    delays: HashMap<Surface, Duration>,
    pub requests: Vec<RecordedRequest>,
}

impl FaultState {
    pub fn fail_next(&mut self, surface: Surface, count: usize, fault: Fault) {
        self.pending.insert(surface, (fault, count));
    }

    pub fn set_delay(&mut self, surface: Surface, delay: Option<Duration>) {
        match delay {
            Some(delay) => self.delays.insert(surface, delay),
            None => self.delays.remove(&surface),
        };
    }

    /// Records the request, and says how long to hold it and whether to fail it.
    fn admit(&mut self, request: RecordedRequest) -> (Option<Duration>, Option<Fault>) {
        let surface = request.surface;
        self.requests.push(request);
        let fault = match self.pending.get_mut(&surface) {
            Some((fault, remaining)) if *remaining > 0 => {
                *remaining -= 1;
                Some(fault.clone())
            }
            _ => None,
        };
        (self.delays.get(&surface).copied(), fault)
    }
}

/// Puts the knobs in front of a surface's router.
pub(crate) fn guard(router: Router, shared: &Arc<Shared>, surface: Surface) -> Router {
    router.layer(middleware::from_fn_with_state(
        (shared.clone(), surface),
        apply_knobs,
    ))
}

async fn apply_knobs(
    State((shared, surface)): State<(Arc<Shared>, Surface)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // Fakes take small bodies; anything bigger is not a request any client here sends.
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let recorded = RecordedRequest {
        surface,
        method: parts.method.clone(),
        path_and_query: (parts.uri.path_and_query())
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let request = Request::from_parts(parts, Body::from(body));
    let (delay, fault) = shared.state().faults.admit(recorded);
    shared.arrivals.send_modify(|count| *count += 1);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::TooManyRequests) => throttled(1),
        Some(Fault::TooManyRequestsFor(seconds)) => throttled(seconds),
        Some(Fault::RedirectTo(location)) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Some(Fault::ServiceUnavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": {
                "code": "ServiceUnavailable",
                "message": "The service is temporarily unavailable. Please try again later."
            }})),
        )
            .into_response(),
        None => next.run(request).await,
    }
}

/// ARM's throttling answer.
fn throttled(seconds: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        axum::Json(json!({"error": {
            "code": "TooManyRequests",
            "message": format!("The request is being throttled as the limit has been reached for operation type. Please retry after {seconds} seconds.")
        }})),
    )
        .into_response()
}
