//! Local stand-ins for cloud services the server talks to, for tests that cannot reach them.
//!
//! They follow the services' documented wire formats, so code tested against them should work
//! against the real thing.

pub mod azure;
pub mod docker_daemon;
pub mod registry_handshake;
pub mod tls;
