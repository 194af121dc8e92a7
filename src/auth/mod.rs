//! Authentication: password hashing, API keys, signed access tokens and the failed-login limit.

pub mod api_key;
pub mod login_limiter;
pub mod password;
pub mod rate_limit;
pub mod shared_limit;
pub mod token;

pub use login_limiter::LoginLimiter;
pub use rate_limit::{FailedLogins, LoginLimits};
pub use token::{Claims, TokenSigner};
