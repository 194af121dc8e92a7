//! Logging in (`POST /api/v1/login`, OAuth2 form grants) and the current user.

use std::net::IpAddr;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::client_address::ClientAddress;
use super::devices::device_code_hash;
use super::error::{ApiError, ApiResult};
use super::extract::{Form, Json, Query};
use super::users::{HydrateQuery, UserResponse};
use crate::auth::login_limiter::Admission;
use crate::auth::{api_key, password};
use crate::domain::audit::{Actor, AuditEvent, Origin, Outcome, Target, action};
use crate::domain::names::MAX_NAME_LEN;
use crate::domain::{Caller, Password, ShortText};
use crate::metrics::LoginRefusal;
use crate::store::{devices, users};

#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    device_code: Option<String>,
}

/// ZenML's `OAuthTokenResponse`.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: Option<String>,
    csrf_token: Option<String>,
    scope: Option<String>,
    device_id: Option<String>,
    device_metadata: Option<serde_json::Value>,
}

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Who signed in, for the token and the audit log: the account and its sessions' generation.
fn signed_in_as(user: users::UserRow) -> (Actor, i64) {
    let actor = Actor::account(user.id, &user.name, user.is_service_account);
    (actor, user.session_generation)
}

/// The user a device code was approved for. The code is good for one token.
async fn exchange_device_code(
    state: &AppState,
    code: &str,
    client_id: Option<&str>,
) -> ApiResult<(Actor, i64)> {
    let mut conn = state.store.write_conn().await?;
    let device = devices::by_code(&mut conn, &device_code_hash(code))
        .await?
        .ok_or(ApiError::DeviceFlow("invalid_grant"))?;
    // The code is the client's that asked for it, and no one else's.
    if client_id.and_then(|id| uuid::Uuid::parse_str(id).ok()) != Some(device.client_id) {
        return Err(ApiError::DeviceFlow("invalid_client"));
    }
    if device.expires_at <= state.clock.now() {
        devices::delete(&mut conn, device.id).await?;
        return Err(ApiError::DeviceFlow("expired_token"));
    }
    let user_id = device
        .user_id
        .ok_or(ApiError::DeviceFlow("authorization_pending"))?;
    if !devices::delete(&mut conn, device.id).await? {
        // Exchanged by a concurrent poll.
        return Err(ApiError::DeviceFlow("invalid_grant"));
    }
    users::get(&mut conn, user_id)
        .await?
        .filter(|u| u.active)
        .map(signed_in_as)
        .ok_or_else(invalid_credentials)
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthenticated("Authentication error: invalid username or password".into())
}

/// Checks the rate limit, runs the (slow) credential check off the async threads, and records
/// the outcome.
async fn checked<T: Send + 'static>(
    state: &AppState,
    limit_key: &str,
    address: IpAddr,
    check: impl FnOnce() -> Option<T> + Send + 'static,
) -> ApiResult<T> {
    let attempt = match state.logins.check(limit_key, address).await? {
        Admission::Refused(retry_after) => {
            state.metrics.logins.refused(LoginRefusal::rate_limited);
            return Err(ApiError::TooManyRequests {
                message: "Too many failed login attempts; try again later.".into(),
                retry_after,
            });
        }
        Admission::Proceed(delay, attempt) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            attempt
        }
    };
    let outcome = password::off_thread(check)
        .await
        .map_err(ApiError::internal)?;
    match outcome {
        Some(value) => {
            state.logins.succeeded(attempt).await?;
            Ok(value)
        }
        None => {
            state.metrics.logins.refused(LoginRefusal::failed);
            state.logins.failed(attempt);
            Err(invalid_credentials())
        }
    }
}

/// Logs in with the `password` grant (user name and password) or the `zenml-api-key` grant (a
/// service account's API key in `password`) and returns a bearer token.
#[utoipa::path(post, path = "/api/v1/login", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 401), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    origin: Origin,
    Form(form): Form<LoginForm>,
) -> ApiResult<Json<TokenResponse>> {
    let grant = match form.grant_type.as_deref() {
        Some(grant) => grant.to_owned(),
        None if form.username.is_some() => "password".into(),
        None if form.password.is_some() => "zenml-api-key".into(),
        None if form.device_code.is_some() => DEVICE_CODE_GRANT.into(),
        None => "password".into(),
    };
    // Who the attempt claims to be, for the audit log: a name, an API key or a device.
    let claimed = match grant.as_str() {
        "password" => form.username.clone().unwrap_or_default(),
        "zenml-api-key" => api_key::parse(form.password.as_deref().unwrap_or_default())
            .map_or_else(|| "api-key".to_owned(), |(id, _)| format!("api-key:{id}")),
        _ => format!("device:{}", form.client_id.as_deref().unwrap_or_default()),
    };
    let method = match grant.as_str() {
        "password" => "password",
        "zenml-api-key" => "api_key",
        _ => "device",
    };
    let failed = |error: ApiError| {
        let counts = matches!(
            error,
            ApiError::Unauthenticated(_)
                | ApiError::DeviceFlow("invalid_grant" | "invalid_client" | "expired_token")
        );
        if !counts {
            return error;
        }
        let claimed: String = claimed.chars().take(MAX_NAME_LEN).collect();
        let record = AuditEvent::new(
            Actor::anonymous(&claimed),
            action::LOGIN_FAILED,
            Outcome::Denied,
            state.clock.now(),
        )
        .with_details(json!({ "method": method }));
        error.recorded(record)
    };
    let secret = form.password.unwrap_or_default();
    let signed_in = async {
        Ok::<_, ApiError>(match grant.as_str() {
            "password" => {
                let name = form.username.filter(|n| !n.is_empty()).ok_or_else(|| {
                    ApiError::BadRequest("Invalid request: username is required.".into())
                })?;
                // No account has a longer name; refusing early also keeps the failed-login limiter
                // from holding arbitrarily long keys.
                if name.chars().count() > MAX_NAME_LEN {
                    return Err(invalid_credentials());
                }
                let mut conn = state.store.conn().await?;
                let user = users::by_name(&mut conn, &name).await?.filter(|u| u.active);
                drop(conn);
                let hash = user.as_ref().and_then(|u| u.password_hash.clone());
                let id = user.map(signed_in_as);
                let id = checked(&state, &format!("user:{name}"), address, move || {
                    password::verify(hash.as_deref(), &secret)
                        .then_some(id)
                        .flatten()
                })
                .await?;
                (id, None)
            }
            "zenml-api-key" => {
                let (key_id, key_secret) =
                    api_key::parse(&secret).ok_or_else(invalid_credentials)?;
                let mut conn = state.store.conn().await?;
                let key = users::api_key(&mut conn, key_id)
                    .await?
                    .filter(|k| k.active);
                let account = match &key {
                    Some(k) => users::get(&mut conn, k.service_account_id)
                        .await?
                        .filter(|u| u.active),
                    None => None,
                };
                drop(conn);
                let hash = key
                    .as_ref()
                    .filter(|_| account.is_some())
                    .map(|k| k.key_hash.clone());
                let account_id = account.map(signed_in_as);
                let id = checked(&state, &format!("api-key:{key_id}"), address, move || {
                    password::verify(hash.as_deref(), &key_secret)
                        .then_some(account_id)
                        .flatten()
                })
                .await?;
                let mut conn = state.store.write_conn().await?;
                users::touch_api_key(&mut conn, key_id, state.clock.now()).await?;
                (id, Some(key_id))
            }
            DEVICE_CODE_GRANT => {
                let code = form.device_code.ok_or_else(|| {
                    ApiError::BadRequest("Invalid request: device_code is required.".into())
                })?;
                let client_id = form.client_id.as_deref();
                (exchange_device_code(&state, &code, client_id).await?, None)
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid request: unsupported grant type '{other}'."
                )));
            }
        })
    };
    let ((actor, generation), api_key_id) = signed_in.await.map_err(failed)?;
    let user_id = actor.id.expect("an account signed in");
    let actor = Actor {
        api_key_id,
        ..actor
    };
    let record = AuditEvent::new(actor, action::LOGIN, Outcome::Success, state.clock.now())
        .with_status(200)
        .from_origin(&origin)
        .with_details(json!({ "method": method }));
    state.audit.record(&state.store, record).await?;
    let token = state
        .tokens
        .issue(user_id, api_key_id, generation, state.clock.now());
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "bearer",
        expires_in: state.tokens.lifetime().as_secs(),
        refresh_token: None,
        csrf_token: None,
        scope: None,
        device_id: None,
        device_metadata: None,
    }))
}

#[utoipa::path(get, path = "/api/v1/current-user", tag = "auth",
    params(HydrateQuery),
    responses((status = 200, body = UserResponse), (status = 401)),
    security(("bearer" = [])))]
pub async fn current_user(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<HydrateQuery>,
) -> ApiResult<Json<UserResponse>> {
    let mut conn = state.store.conn().await?;
    let user = users::get(&mut conn, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user", caller.user_id))?;
    Ok(Json(UserResponse::render(
        user,
        query.hydrate.unwrap_or(true),
    )))
}

/// Changes to one's own account. A new password needs the old one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CurrentUserUpdate {
    full_name: Option<ShortText>,
    email: Option<ShortText>,
    password: Option<Password>,
    old_password: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/current-user", tag = "auth",
    request_body = CurrentUserUpdate,
    responses((status = 200, body = UserResponse), (status = 401), (status = 403)),
    security(("bearer" = [])))]
pub async fn update_current_user(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    Json(update): Json<CurrentUserUpdate>,
) -> ApiResult<Json<UserResponse>> {
    let mut conn = state.store.conn().await?;
    let mut user = users::get(&mut conn, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user", caller.user_id))?;
    drop(conn);
    let password_changed = update.password.is_some();
    if let Some(new_password) = update.password {
        let stored = user.password_hash.clone();
        let old = update.old_password.unwrap_or_default();
        let ok = password::off_thread(move || password::verify(stored.as_deref(), &old))
            .await
            .map_err(ApiError::internal)?;
        if !ok {
            return Err(ApiError::Forbidden(
                "the old password is not correct".into(),
            ));
        }
        user.password_hash = Some(super::users::hash_password(new_password).await?);
    }
    if let Some(full_name) = update.full_name {
        user.full_name = full_name.into_inner();
    }
    if let Some(email) = update.email {
        user.email = Some(email.into_inner());
    }
    let read_updated = user.touch(state.clock.now());
    let mut tx = state.store.begin().await?;
    users::update(&mut tx, &user, read_updated).await?;
    if password_changed {
        // Whoever knew the old password is signed out everywhere, but for this session.
        let keep = Some(caller.session).filter(|id| !id.is_nil());
        users::end_sessions(&mut tx, user.id, keep).await?;
    }
    let target = Target::new(super::users::account_kind(&user), user.id, &user.name);
    let record = super::audit::by_caller(&state, &caller, &origin, action::USER_UPDATED)
        .on(target)
        .with_details(json!({ "password_changed": password_changed, "own_account": true }));
    crate::store::audit::append(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(Json(UserResponse::render(user, true)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(current_user, update_current_user))
}
