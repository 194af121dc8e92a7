//! The one HTTP client the engine calls Azure with: connect and total timeouts, the configured
//! extra CA, and bounded retries on throttling and server errors that honour `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, RetryOptions, Transport};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::connectors::engine::with_causes;
use crate::metrics::{AzureCalls, AzureService};

/// Timeouts and retry bounds for calls to Azure.
#[derive(Debug, Clone, Copy)]
pub struct OutboundLimits {
    pub connect_timeout: Duration,
    /// For one attempt, from sending the request to the end of the response body.
    pub request_timeout: Duration,
    /// Retries after the first attempt, on 429 and 5xx answers or transport errors.
    pub max_retries: u32,
    /// The longest `Retry-After` the engine waits for; longer ones end the call.
    pub max_retry_wait: Duration,
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    limits: OutboundLimits,
    calls: AzureCalls,
}

/// A call that failed: the transport error, or Azure's answer after the last retry.
#[derive(Debug)]
pub enum CallError {
    Transport(String),
    Status { status: StatusCode, body: String },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(message) => f.write_str(message),
            CallError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl Outbound {
    pub fn new(
        extra_roots_pem: Option<&[u8]>,
        limits: OutboundLimits,
        calls: AzureCalls,
    ) -> Result<Outbound, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.request_timeout)
            // Redirects could lead a credential-bearing request to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("connector-hub/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_roots_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the Azure CA certificate is not valid PEM: {e}"))?;
            if roots.is_empty() {
                return Err("the Azure CA certificate file holds no certificate".into());
            }
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Azure: {e}"))?;
        Ok(Outbound {
            client,
            limits,
            calls,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn limits(&self) -> OutboundLimits {
        self.limits
    }

    /// Runs `call` to `service`, counted for `/metrics` with its outcome and latency.
    pub async fn timed<T, E>(
        &self,
        service: AzureService,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.calls.timed(service, call).await
    }

    /// Options for the Azure SDK's clients: this transport, and retries as bounded as ours.
    pub fn sdk_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.client.clone()))),
            retry: RetryOptions::fixed(azure_core::http::FixedRetryOptions {
                delay: azure_core::time::Duration::milliseconds(200),
                max_retries: self.limits.max_retries,
                max_total_elapsed: azure_core::time::Duration::try_from(
                    self.limits.max_retry_wait * (self.limits.max_retries + 1),
                )
                .unwrap_or(azure_core::time::Duration::seconds(30)),
            }),
            ..ClientOptions::default()
        }
    }

    /// Sends the request `build` makes, retrying on 429, 5xx and transport errors. Success is
    /// any 2xx answer; anything else is a [`CallError`].
    pub async fn send(
        &self,
        service: AzureService,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, CallError> {
        self.timed(service, self.send_with_retries(build)).await
    }

    async fn send_with_retries(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, CallError> {
        let limits = self.limits;
        let mut attempt = 0;
        loop {
            let retries_left = attempt < limits.max_retries;
            let wait = match build(&self.client).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response)
                    if retries_left
                        && retryable(response.status())
                        && retry_after(&response) <= limits.max_retry_wait =>
                {
                    retry_after(&response)
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    return Err(CallError::Status { status, body });
                }
                Err(error) if retries_left && !error.is_builder() => Duration::from_millis(200),
                Err(error) => return Err(CallError::Transport(describe(&error))),
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// How long Azure asks us to wait (seconds), or a short default.
fn retry_after(response: &Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_millis(500), Duration::from_secs)
}

/// A transport error with its causes, which reqwest keeps in the source chain.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = with_causes(error);
    if message.contains("operation timed out") || message.contains("timed out") {
        message.push_str(" (Azure did not answer in time)");
    }
    message
}
