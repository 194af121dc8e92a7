//! `/metrics` in the Prometheus text format, and the middleware that counts every request.
//!
//! Under the main address only server admins, or a caller with the configured bearer token
//! (`--metrics-token`, for a scraper), may read it. With `--metrics-bind` it is served on that
//! address instead, to anyone who can reach it, and not under the main one.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiResult;
use super::extract::bearer_token;
use crate::domain::Caller;
use crate::metrics::Metrics;
use crate::store::Store;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counts the request under its route template (the fallback's under `unmatched`), with its
/// status and latency.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.http.observe(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn render(metrics: &Metrics, store: &Store) -> Response<Body> {
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        metrics.render(&store.pool_readings()),
    )
        .into_response()
}

/// `/metrics` under the main address: the scrape token, or a server admin's credentials.
pub async fn metrics_for_admins(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response<Body>> {
    let (mut parts, _) = request.into_parts();
    let scraper = state.metrics_token.as_deref().is_some_and(|expected| {
        bearer_token(&parts.headers).is_some_and(|given| tokens_match(given, expected))
    });
    if !scraper {
        let caller = Caller::from_request_parts(&mut parts, &state).await?;
        caller.require_server_admin()?;
    }
    Ok(render(&state.metrics, &state.store))
}

/// `/metrics` on the separate `--metrics-bind` address.
pub async fn metrics_open(State(state): State<AppState>) -> Response<Body> {
    render(&state.metrics, &state.store)
}

/// The router for `--metrics-bind`: `/metrics` alone.
pub fn separate_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics_open))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

/// Compares digests, so that response times say nothing about how much of the token matched.
fn tokens_match(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}
