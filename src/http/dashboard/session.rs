//! Dashboard sessions. The session cookie holds the same signed access token the API hands
//! out, so a session lives exactly as long as a token does and ends whenever tokens end: at
//! expiry, on a password change, a deactivation or an admin's "sign out everywhere". Forms
//! carry a CSRF token derived from the session's token, which a page from another site cannot
//! know.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::RngCore;
use sha2::{Digest, Sha256};

use super::Dashboard;
use super::api::Caller;
use crate::http::client_address::ClientAddress;

pub const SESSION_COOKIE: &str = "connector_hub_session";
/// Ties the sign-in form to the browser that loaded it (login CSRF).
pub const SIGN_IN_COOKIE: &str = "connector_hub_sign_in";

/// The value of the cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure when the server's URL is
/// https. `max_age` 0 removes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).expect("cookie values are base64 or JWTs")
}

/// A random token for the sign-in form.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in browser.
pub struct Session {
    pub token: String,
    pub address: IpAddr,
}

impl Session {
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            token: Some(&self.token),
            address: self.address,
        }
    }

    /// The token every form of this session carries.
    pub fn csrf(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"connector-hub dashboard form\0")
            .chain_update(self.token.as_bytes())
            .finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }

    pub fn csrf_matches(&self, submitted: &str) -> bool {
        same_token(&self.csrf(), submitted)
    }
}

/// Where a browser without a session goes.
pub fn to_sign_in() -> Response {
    Redirect::to("/login").into_response()
}

impl FromRequestParts<Dashboard> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &Dashboard) -> Result<Self, Response> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_sign_in)?;
        let address = parts
            .extensions
            .get::<ClientAddress>()
            .map(|ClientAddress(address)| *address)
            .ok_or_else(to_sign_in)?;
        Ok(Session {
            token: token.to_owned(),
            address,
        })
    }
}
