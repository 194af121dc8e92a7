//! connector-hub: a multi-tenant server for cloud service connectors that speaks ZenML's REST
//! API. Layers, outermost first: `http` (handlers) → `domain`, `connectors` and `stacks`
//! (rules), `crypto` (encryption at rest) → `store` (SQLite or PostgreSQL).

pub mod app;
pub mod auth;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod stacks;
pub mod store;

/// Selects the process-wide TLS crypto provider. Several dependencies enable different rustls
/// back ends, so rustls cannot pick one itself; call this once before any TLS is used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
