//! Runtime knobs shared by every listener: injected failures, slow responses and a log of
//! the requests received.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
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
}

/// How an injected failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 1`, as ARM throttling does.
    TooManyRequests,
    /// 503, as a service having a bad moment.
    ServiceUnavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub surface: Surface,
    pub method: Method,
    /// Path and query, e.g. `/subscriptions?api-version=2022-12-01`.
    pub path_and_query: String,
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
                Some(*fault)
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
    let recorded = RecordedRequest {
        surface,
        method: request.method().clone(),
        path_and_query: request
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    let (delay, fault) = shared.state().faults.admit(recorded);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::TooManyRequests) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({"error": {
                "code": "TooManyRequests",
                "message": "The request is being throttled as the limit has been reached for operation type. Please retry after 1 seconds."
            }})),
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
