//! Signing in and out. The sign-in goes through the API's password login, so the same accounts
//! and the same failed-login limits apply; the token it returns becomes the session cookie.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::api::{Caller, Payload};
use super::session::{self, SESSION_COOKIE, SIGN_IN_COOKIE, Session};
use super::{Dashboard, PageError, PageResult, render, see_other};
use crate::http::client_address::ClientAddress;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    form_token: &'a str,
    user_name: &'a str,
    error: Option<&'a str>,
}

/// The sign-in form lives for an hour.
const SIGN_IN_FORM_SECONDS: u64 = 3600;

/// The sign-in page, with a fresh form token in a cookie and in the form.
fn sign_in_page(
    dashboard: &Dashboard,
    status: StatusCode,
    user_name: &str,
    error: Option<&str>,
) -> Response {
    let form_token = session::random_token();
    let cookie = session::set_cookie(
        SIGN_IN_COOKIE,
        &form_token,
        "/login",
        SIGN_IN_FORM_SECONDS,
        dashboard.secure_cookies,
    );
    let page = SignInPage {
        form_token: &form_token,
        user_name,
        error,
    };
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

pub async fn form(State(dashboard): State<Dashboard>) -> Response {
    sign_in_page(&dashboard, StatusCode::OK, "", None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    form_token: String,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

pub async fn submit(
    State(dashboard): State<Dashboard>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> PageResult {
    let expected = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(expected, &form.form_token) {
        return Err(PageError::forged());
    }
    let caller = Caller {
        token: None,
        address,
    };
    let fields = vec![
        ("grant_type", "password".to_owned()),
        ("username", form.username.clone()),
        ("password", form.password),
    ];
    let answer = dashboard
        .api
        .call::<Token>(caller, Method::POST, "/api/v1/login", Payload::Form(fields))
        .await;
    let token = match answer {
        Ok(token) => token,
        Err(failure) => {
            let page = sign_in_page(
                &dashboard,
                failure.status,
                &form.username,
                Some(&failure.message),
            );
            return Ok(page);
        }
    };
    let secure = dashboard.secure_cookies;
    let session = session::set_cookie(
        SESSION_COOKIE,
        &token.access_token,
        "/",
        token.expires_in,
        secure,
    );
    let used = session::set_cookie(SIGN_IN_COOKIE, "", "/login", 0, secure);
    let mut response = see_other("/");
    response.headers_mut().append(header::SET_COOKIE, session);
    response.headers_mut().append(header::SET_COOKIE, used);
    Ok(response)
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(dashboard): State<Dashboard>,
    session: Session,
    Form(form): Form<SignOutForm>,
) -> PageResult {
    if !session.csrf_matches(&form.csrf) {
        return Err(PageError::forged());
    }
    let gone = session::set_cookie(SESSION_COOKIE, "", "/", 0, dashboard.secure_cookies);
    let mut response = see_other("/login");
    response.headers_mut().append(header::SET_COOKIE, gone);
    Ok(response)
}
