//! Extractors: the caller from the bearer token, the workspace a request acts in, and JSON,
//! query and form extractors that reject bad input in our error format.

use axum::extract::{FromRequest, FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::auth::Claims;
use crate::domain::{Caller, Role, Scope};
use crate::store::{Conn, users, workspaces};

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

/// The claims of the request's bearer token, checked against the server clock.
fn bearer_claims(parts: &Parts, state: &AppState) -> Result<Claims, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| unauthenticated("not authenticated"))?;
    state
        .tokens
        .verify(token.trim(), state.clock.now())
        .map_err(|e| unauthenticated(&e.to_string()))
}

fn account_gone() -> ApiError {
    unauthenticated("the account no longer exists or is inactive")
}

/// A token obtained with an API key is valid only while that key is.
async fn check_api_key(conn: &mut Conn, claims: &Claims) -> Result<(), ApiError> {
    if let Some(key_id) = claims.api_key_id {
        let key = users::api_key(conn, key_id).await?;
        if !key.is_some_and(|k| k.active && k.service_account_id == claims.sub) {
            return Err(unauthenticated("the API key was deleted or deactivated"));
        }
    }
    Ok(())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer_claims(parts, state)?;
        let mut conn = state.store.conn().await?;
        let user = users::get(&mut conn, claims.sub)
            .await?
            .filter(|u| u.active)
            .ok_or_else(account_gone)?;
        check_api_key(&mut conn, &claims).await?;
        Ok(Caller {
            user_id: user.id,
            name: user.name,
            is_admin: user.is_admin,
            default_workspace_id: user.default_workspace_id,
        })
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

/// Reads the caller and their membership of the workspace the request names, on `conn`.
async fn scope_of(
    parts: &mut Parts,
    state: &AppState,
    claims: &Claims,
    conn: &mut Conn,
) -> Result<Scope, ApiError> {
    let path = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let reference = workspace_reference(parts, &path);
    let found = workspaces::caller_in_workspace(conn, claims.sub, reference.as_deref())
        .await?
        .filter(|c| c.active)
        .ok_or_else(account_gone)?;
    check_api_key(conn, claims).await?;
    let (Some(workspace_id), Some(workspace_name), Some(role)) = (
        found.workspace_id,
        found.workspace_name,
        found.role.as_deref().and_then(Role::parse),
    ) else {
        return Err(match reference {
            Some(reference) => ApiError::not_found("workspace", reference),
            None => ApiError::BadRequest(
                "no workspace was named and the caller belongs to no default workspace".into(),
            ),
        });
    };
    Ok(Scope {
        workspace_id,
        workspace_name,
        role,
        caller: Caller {
            user_id: found.user_id,
            name: found.user_name,
            is_admin: found.is_admin,
            default_workspace_id: found.default_workspace_id,
        },
    })
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    /// One query reads the caller and their membership of the workspace; the connection goes
    /// back to the pool at once.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        ScopedRead::from_request_parts(parts, state)
            .await
            .map(|read| read.scope)
    }
}

/// A [`Scope`] with the connection it was read on, for read handlers: their query runs on it
/// rather than on a second pooled connection, which saves the round trip sqlx makes to check
/// each connection it takes back. Handlers drop `conn` as soon as their reads are done.
pub struct ScopedRead {
    pub scope: Scope,
    pub conn: Conn,
}

impl FromRequestParts<AppState> for ScopedRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer_claims(parts, state)?;
        let mut conn = state.store.conn().await?;
        let scope = scope_of(parts, state, &claims, &mut conn).await?;
        Ok(ScopedRead { scope, conn })
    }
}
