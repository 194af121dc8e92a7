//! Extractors: the caller from the bearer token, the workspace a request acts in, and JSON,
//! query and form extractors that reject bad input in our error format.

use axum::extract::{FromRequest, FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::ApiError;
use crate::auth::Claims;
use crate::domain::{Caller, Role, Scope};
use crate::store::Conn;
use crate::store::workspaces::{self, CallerInWorkspace, CallerKey, Session};

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

/// The workspace a request acts in, as query parameters: the [`Scope`] extractor reads them, and
/// handlers declare them to accept and document them (unknown parameters are refused).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct WorkspaceQuery {
    /// The workspace to act in (default: the caller's default workspace).
    project_name_or_id: Option<String>,
    /// The same as `project_name_or_id`.
    workspace: Option<String>,
}

/// The query parameters of a read of one record: `hydrate`, and the workspace (as in
/// [`WorkspaceQuery`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Include `metadata` (default true).
    #[serde(default, deserialize_with = "super::page::optional_bool")]
    pub hydrate: Option<bool>,
    /// The workspace to act in (default: the caller's default workspace).
    #[allow(dead_code)]
    project_name_or_id: Option<String>,
    /// The same as `project_name_or_id`.
    #[allow(dead_code)]
    workspace: Option<String>,
}

fn unauthenticated(reason: &str) -> ApiError {
    ApiError::Unauthenticated(format!("Authentication error: {reason}"))
}

/// The bearer token the request's `Authorization` header carries.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The claims of the request's bearer token, checked against the server clock.
fn bearer_claims(parts: &Parts, state: &AppState) -> Result<Claims, ApiError> {
    let token = bearer_token(&parts.headers).ok_or_else(|| unauthenticated("not authenticated"))?;
    state
        .tokens
        .verify(token, state.clock.now())
        .map_err(|e| unauthenticated(&e.to_string()))
}

fn account_gone() -> ApiError {
    unauthenticated("the account no longer exists or is inactive")
}

/// The caller's row, if their account is active and the API key their token was issued for (if
/// any) still is.
fn authenticated(
    found: Option<CallerInWorkspace>,
    key: &CallerKey,
) -> Result<CallerInWorkspace, ApiError> {
    let found = found.filter(|c| c.active).ok_or_else(account_gone)?;
    if !found.api_key_valid(key) {
        return Err(unauthenticated("the API key was deleted or deactivated"));
    }
    if !found.session_live(key) {
        return Err(unauthenticated(
            "the session has ended (the password was changed, the account deactivated, or its \
             sessions ended); log in again",
        ));
    }
    Ok(found)
}

fn caller_of(found: &CallerInWorkspace, key: &CallerKey) -> Caller {
    Caller {
        user_id: found.user_id,
        name: found.user_name.clone(),
        is_admin: found.is_admin,
        is_service_account: found.is_service_account,
        created: found.created,
        updated: found.updated,
        default_workspace_id: found.default_workspace_id,
        api_key_id: key.api_key_id.filter(|_| found.signed_in_with_api_key()),
        session: key.session.id,
    }
}

fn session_of(claims: &Claims) -> Session {
    Session {
        id: claims.jti,
        generation: claims.generation,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// Reads the caller with the query workspace-scoped requests use (its workspace columns go
    /// unused), so that one place decides whether an account and its API key are valid.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer_claims(parts, state)?;
        let key = CallerKey {
            user_id: claims.sub,
            workspace: None,
            api_key_id: claims.api_key_id,
            session: session_of(&claims),
        };
        let mut conn = state.store.conn().await?;
        let found = workspaces::caller_in_workspace(&mut conn, &key).await?;
        drop(conn);
        Ok(caller_of(&authenticated(found, &key)?, &key))
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

/// Who a workspace-scoped request claims to come from (its verified token) and which workspace
/// it names, before either is read.
pub struct CallerClaim {
    claims: Claims,
    workspace: Option<String>,
}

impl CallerClaim {
    pub fn key(&self) -> CallerKey<'_> {
        CallerKey {
            user_id: self.claims.sub,
            workspace: self.workspace.as_deref(),
            api_key_id: self.claims.api_key_id,
            session: session_of(&self.claims),
        }
    }

    /// The scope the request acts in, from the caller row read for [`CallerClaim::key`].
    pub fn scope(&self, found: Option<CallerInWorkspace>) -> Result<Scope, ApiError> {
        let found = authenticated(found, &self.key())?;
        let caller = caller_of(&found, &self.key());
        let (Some(workspace_id), Some(workspace_name), Some(role)) = (
            found.workspace_id,
            found.workspace_name,
            found.role.as_deref().and_then(Role::parse),
        ) else {
            return Err(match &self.workspace {
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
            caller,
        })
    }

    /// As [`CallerClaim::scope`], for a caller row read together with something else.
    pub fn scope_and<T>(
        &self,
        found: Option<(CallerInWorkspace, T)>,
    ) -> Result<(Scope, T), ApiError> {
        let Some((caller, with)) = found else {
            return Err(account_gone());
        };
        Ok((self.scope(Some(caller))?, with))
    }
}

/// The scope a bearer token acts in within `workspace` (the caller's default if `None`), read
/// and checked as for an API request: for the dashboard, whose sessions hold such tokens.
pub async fn token_scope(
    state: &AppState,
    token: &str,
    workspace: Option<String>,
) -> Result<Scope, ApiError> {
    let claims = state
        .tokens
        .verify(token, state.clock.now())
        .map_err(|e| unauthenticated(&e.to_string()))?;
    let claim = CallerClaim { claims, workspace };
    let mut conn = state.store.conn().await?;
    let found = workspaces::caller_in_workspace(&mut conn, &claim.key()).await?;
    drop(conn);
    claim.scope(found)
}

/// A [`CallerClaim`] with a pooled connection, for handlers that read the caller in the same
/// query as their data: on SQLite every query is two thread switches, so an authorised read of
/// one record takes one query instead of two.
pub struct ClaimedRead {
    pub claim: CallerClaim,
    pub conn: Conn,
}

impl FromRequestParts<AppState> for ClaimedRead {
    type Rejection = ApiError;

    /// The token is checked before a connection is taken.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = bearer_claims(parts, state)?;
        let path = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let workspace = workspace_reference(parts, &path);
        let conn = state.store.conn().await?;
        Ok(ClaimedRead {
            claim: CallerClaim { claims, workspace },
            conn,
        })
    }
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
/// rather than on a second pooled connection. Handlers drop `conn` as soon as their reads are
/// done.
pub struct ScopedRead {
    pub scope: Scope,
    pub conn: Conn,
}

impl FromRequestParts<AppState> for ScopedRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ClaimedRead { claim, mut conn } = ClaimedRead::from_request_parts(parts, state).await?;
        let found = workspaces::caller_in_workspace(&mut conn, &claim.key()).await?;
        let scope = claim.scope(found)?;
        Ok(ScopedRead { scope, conn })
    }
}
