//! Extractors: the caller from the bearer token, the workspace a request acts in, and JSON,
//! query and form extractors that reject bad input in our error format.

use axum::extract::{FromRequest, FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use crate::domain::{Caller, Scope};
use crate::store::{users, workspaces};

/// `axum::Json` with rejections in our error format.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with rejections in our error format. Parameter structs refuse
/// unknown fields, so a misspelt parameter is an error rather than silently ignored.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::Form` with rejections in our error format.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct Form<T>(pub T);

fn unauthenticated(reason: &str) -> ApiError {
    ApiError::Unauthenticated(format!("Authentication error: {reason}"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| unauthenticated("not authenticated"))?;
        let claims = state
            .tokens
            .verify(token.trim(), state.clock.now())
            .map_err(|e| unauthenticated(&e.to_string()))?;
        let mut conn = state.store.conn().await?;
        let user = users::get(&mut conn, claims.sub)
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| unauthenticated("the account no longer exists or is inactive"))?;
        if let Some(key_id) = claims.api_key_id {
            let key = users::api_key(&mut conn, key_id).await?;
            if !key.is_some_and(|k| k.active && k.service_account_id == user.id) {
                return Err(unauthenticated("the API key was deleted or deactivated"));
            }
        }
        let caller = Caller {
            user_id: user.id,
            name: user.name,
            is_admin: user.is_admin,
            default_workspace_id: user.default_workspace_id,
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The workspace named by the `{workspace}` path segment, else by the `project_name_or_id` or
/// `workspace` query parameter, else the caller's default workspace.
fn workspace_reference(parts: &Parts, path: &RawPathParams) -> Option<String> {
    if let Some((_, value)) = path.iter().find(|(key, _)| *key == "workspace") {
        return Some(value.to_owned());
    }
    let query = parts.uri.query()?;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == "project_name_or_id" || key == "workspace")
        .map(|(_, value)| value)
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let path = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut conn = state.store.conn().await?;
        let membership = match workspace_reference(parts, &path) {
            Some(reference) => workspaces::membership(&mut conn, caller.user_id, &reference)
                .await?
                .ok_or_else(|| ApiError::not_found("workspace", &reference))?,
            None => {
                let id: Uuid = caller.default_workspace_id.ok_or_else(|| {
                    ApiError::BadRequest(
                        "no workspace was named and the caller has no default workspace".into(),
                    )
                })?;
                workspaces::membership_by_id(&mut conn, caller.user_id, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("workspace", id))?
            }
        };
        Ok(Scope {
            workspace_id: membership.workspace_id,
            role: membership.role(),
            workspace_name: membership.workspace_name,
            caller,
        })
    }
}
