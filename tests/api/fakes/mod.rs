//! Local stand-ins for cloud services the server talks to, for tests that cannot reach them.
//!
//! They follow the services' documented wire formats, so code tested against them should work
//! against the real thing.

// The fakes' API is broader than what the tests use so far; the connector engine tests will
// use the rest.
#![allow(dead_code)]

pub mod azure;
pub mod tls;
