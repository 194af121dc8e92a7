//! The dashboard reads and writes through the JSON API, in process: every rule the API applies
//! (tenancy, ownership, validation, the implicit-auth policy, limits) applies to the dashboard
//! unchanged, because there is only one implementation of it.

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::http::client_address::ClientAddress;

/// The largest API answer the dashboard reads (a page of 100 hydrated connectors is ~200 kB).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The API router, called without a network hop.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// The API's refusal: its status and the message of its error body.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
    /// The session is not (or no longer) valid: a 401 with a challenge. A cloud's refusal of a
    /// connector's credentials is a 401 without one.
    pub signed_out: bool,
}

impl ApiFailure {
    fn internal(message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            signed_out: false,
        }
    }
}

/// Who calls: the session's bearer token (none for the sign-in) and the browser's address, by
/// which failed sign-ins are counted.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub token: Option<&'a str>,
    pub address: IpAddr,
}

/// A request body.
pub enum Payload {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        caller: Caller<'_>,
        uri: &str,
    ) -> Result<T, ApiFailure> {
        self.call(caller, Method::GET, uri, Payload::None).await
    }

    /// Calls the API; the answer parsed as `T` (use `Value` where it does not matter).
    pub async fn call<T: DeserializeOwned>(
        &self,
        caller: Caller<'_>,
        method: Method,
        uri: &str,
        payload: Payload,
    ) -> Result<T, ApiFailure> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = caller.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match payload {
            Payload::None => Body::empty(),
            Payload::Json(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            Payload::Form(fields) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let encoded = serde_urlencoded::to_string(&fields)
                    .map_err(|e| ApiFailure::internal(e.to_string()))?;
                Body::from(encoded)
            }
        };
        let mut request = request
            .body(body)
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        request
            .extensions_mut()
            .insert(ClientAddress(caller.address));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let signed_out = status == StatusCode::UNAUTHORIZED
            && response.headers().contains_key(header::WWW_AUTHENTICATE);
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        if !status.is_success() {
            return Err(ApiFailure {
                status,
                message: error_message(&bytes),
                signed_out,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiFailure::internal(e.to_string()))
    }
}

/// The message of an error body, `{"detail": ["<class>", "<message>"]}` (or a device-flow
/// `{"error": …}`).
fn error_message(bytes: &[u8]) -> String {
    let body: Value = serde_json::from_slice(bytes).unwrap_or_default();
    match &body["detail"] {
        Value::Array(parts) => parts.last().and_then(Value::as_str),
        Value::String(text) => Some(text.as_str()),
        _ => body["error"].as_str(),
    }
    .unwrap_or("The request failed")
    .to_owned()
}
