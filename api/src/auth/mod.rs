//! Authentication: firm API keys, portal sessions, passwords, login backoff. Every
//! secret is random, shown once, and stored only as a hash.

pub mod api_keys;
pub mod login;
pub mod passwords;
pub mod session_cache;
pub mod sessions;

use portico_domain::secrets::{SecretToken, TOKEN_BYTES};
use rand::RngCore;

/// A fresh 256-bit token from the OS random number generator.
pub fn new_token() -> SecretToken {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretToken::from_random_bytes(bytes)
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Constant-time equality for short secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
