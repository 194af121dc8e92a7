//! The web dashboard: server-rendered pages at `/`, compiled into the binary. Pages are
//! askama templates, checked at compile time and escaped by default; there is no script at
//! all, so the Content-Security-Policy forbids every script. Pages read and write through the
//! JSON API in process ([`api`]), so that the API's rules are the dashboard's rules.

mod api;
mod connectors;
mod register;
mod secrets;
mod server;
mod session;
mod sign_in;
mod stacks;
mod view;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::token_scope;
use crate::domain::Scope;
use crate::store::workspaces;
pub use api::Api;
use api::ApiFailure;
use session::Session;

/// What every dashboard handler reaches.
#[derive(Clone)]
pub struct Dashboard {
    pub state: AppState,
    pub api: Api,
    /// Cookies are marked `Secure` when the server's URL is https.
    pub secure_cookies: bool,
}

pub fn router(state: AppState, api: Router) -> Router {
    let secure_cookies = state
        .server
        .url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let dashboard = Dashboard {
        state,
        api: Api::new(api),
        secure_cookies,
    };
    Router::new()
        .route("/", get(connectors::list))
        .route("/login", get(sign_in::form).post(sign_in::submit))
        .route("/logout", post(sign_in::sign_out))
        .route(
            "/connectors/new",
            get(register::form).post(register::submit),
        )
        .route("/connectors/{id}", get(connectors::detail))
        .route("/connectors/{id}/verify", post(connectors::verify))
        .route("/connectors/{id}/edit", post(connectors::edit))
        .route("/connectors/{id}/delete", post(connectors::delete))
        .route("/secrets", get(secrets::list).post(secrets::create))
        .route("/secrets/{id}/edit", post(secrets::edit))
        .route("/secrets/{id}/delete", post(secrets::delete))
        .route("/stacks", get(stacks::stacks))
        .route("/components", get(stacks::components))
        .route("/server", get(server::page))
        .route("/assets/dashboard.css", get(stylesheet))
        .layer(axum::middleware::map_response(protect))
        .with_state(dashboard)
}

const STYLESHEET: &str = include_str!("assets/dashboard.css");

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

/// No script runs, no page frames ours, no form posts elsewhere, and no URL leaks to other
/// sites. Pages are never cached: they show live state and, signed in, private data.
async fn protect(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    let policy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                  frame-ancestors 'none'; base-uri 'none'";
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a page cannot be shown.
pub enum PageError {
    /// No session, or it has ended: sign in again.
    SignIn,
    /// The API refused, or the form was not one of ours: shown with its status.
    Refused { status: StatusCode, message: String },
}

impl PageError {
    pub fn refused(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError::Refused {
            status,
            message: message.into(),
        }
    }

    /// A form that does not carry this session's CSRF token.
    pub fn forged() -> PageError {
        PageError::refused(
            StatusCode::FORBIDDEN,
            "This form did not come from this dashboard, or your session changed since it was \
             loaded. Reload the page and try again.",
        )
    }
}

impl From<ApiFailure> for PageError {
    fn from(failure: ApiFailure) -> PageError {
        if failure.signed_out {
            return PageError::SignIn;
        }
        PageError::Refused {
            status: failure.status,
            message: failure.message,
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        if let ApiError::Unauthenticated(_) = error {
            return PageError::SignIn;
        }
        let (status, _) = error.status_and_class();
        match status.is_server_error() {
            // The cause is logged; the page says no more than the API would.
            true => PageError::refused(status, "The request could not be completed."),
            false => PageError::refused(status, error.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: StatusCode,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> axum::response::Response {
        match self {
            PageError::SignIn => session::to_sign_in(),
            PageError::Refused { status, message } => {
                let page = ErrorPage {
                    status,
                    message: &message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

pub type PageResult<T = axum::response::Response> = Result<T, PageError>;

/// A template as a page. Templates only fail on a formatting error of our own values.
pub fn render(template: &impl Template) -> Html<String> {
    Html(
        template
            .render()
            .unwrap_or_else(|e| format!("<p>The page could not be rendered: {e}</p>")),
    )
}

/// Back to a page after a form was handled (Post/Redirect/Get).
pub fn see_other(location: &str) -> axum::response::Response {
    Redirect::to(location).into_response()
}

/// The workspace a page shows, from `?workspace=`.
#[derive(Debug, Default, Deserialize)]
pub struct InWorkspace {
    pub workspace: Option<String>,
}

/// What every page's frame shows: who is signed in, the workspace and the switcher, and the
/// token its forms carry.
pub struct Frame {
    pub user_name: String,
    pub is_admin: bool,
    pub workspace: String,
    pub workspaces: Vec<String>,
    pub csrf: String,
    /// Which part of the navigation is current.
    pub section: &'static str,
}

impl Frame {
    /// The caller's scope in the workspace and the frame of a page in it.
    pub async fn load(
        dashboard: &Dashboard,
        session: &Session,
        workspace: Option<String>,
        section: &'static str,
    ) -> PageResult<(Frame, Scope)> {
        let scope = token_scope(&dashboard.state, &session.token, workspace).await?;
        // Where the caller can act: their memberships (a server admin lists every workspace,
        // but acts only in those they belong to).
        let mut conn = dashboard.state.store.conn().await.map_err(ApiError::from)?;
        let member_of = workspaces::list_of_member(&mut conn, scope.caller.user_id)
            .await
            .map_err(ApiError::from)?;
        drop(conn);
        let mut names: Vec<String> = member_of.into_iter().map(|w| w.name).collect();
        names.sort();
        let frame = Frame {
            user_name: scope.caller.name.clone(),
            is_admin: scope.caller.is_admin,
            workspace: scope.workspace_name.clone(),
            workspaces: names,
            csrf: session.csrf(),
            section,
        };
        Ok((frame, scope))
    }

    /// `path` with this frame's workspace in its query.
    pub fn api(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "{path}{separator}workspace={}",
            view::query_value(&self.workspace)
        )
    }
}
