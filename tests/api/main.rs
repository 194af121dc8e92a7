//! Black-box tests of the HTTP API, each run on SQLite and on PostgreSQL.

mod audit;
mod auth;
mod azure;
mod azure_failures;
mod browser;
mod cluster_tokens;
mod components;
mod connectors;
mod dashboard;
mod docker_login;
mod encryption;
mod errors;
mod fakes;
mod fuzzing;
mod hardening;
mod harness;
mod keys;
mod login_limits;
mod process;
mod secrets;
mod server;
mod stacks;
mod users;
mod workspaces;
mod zenml_cli;
mod zenml_stacks;
