//! `Idempotency-Key`: the first request with a key runs; a repeat with the same body gets
//! the same response; a repeat with another body is refused (422); a repeat while the
//! first is still running is told so (409). Failures that may pass on a retry (5xx) are
//! not remembered.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portico_store::hash::format_instant;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";

#[derive(Debug)]
pub enum Begun {
    Fresh,
    Replay(Response),
}

#[derive(Debug, sqlx::FromRow)]
struct Stored {
    request_hash: String,
    status: Option<i64>,
    response: Option<String>,
}

/// The key from the headers: 1 to 255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> ApiResult<String> {
    let key = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::validation("send an Idempotency-Key header (e.g. a UUID) with this request")
        })?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::validation(
            "the Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

pub fn request_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

pub async fn begin(state: &AppState, scope: &str, key: &str, hash: &str) -> ApiResult<Begun> {
    let inserted = state
        .db
        .execute(
            "INSERT INTO idempotency_keys (scope, idem_key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, idem_key) DO NOTHING",
            &[scope.into(), key.into(), hash.into(), format_instant(state.clock.now()).into()],
        )
        .await?;
    if inserted == 1 {
        return Ok(Begun::Fresh);
    }
    let stored: Stored = state
        .db
        .fetch_optional(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
            &[scope.into(), key.into()],
        )
        .await?
        .ok_or(ApiError::IdempotencyInProgress)?;
    if stored.request_hash != hash {
        return Err(ApiError::IdempotencyMismatch);
    }
    match (stored.status, stored.response) {
        (Some(status), Some(body)) => {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let content_type = if status.is_success() {
                "application/json"
            } else {
                "application/problem+json"
            };
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(Begun::Replay(response))
        }
        _ => Err(ApiError::IdempotencyInProgress),
    }
}

/// Remembers the response for replays, or forgets the key when a retry might succeed.
pub async fn finish(
    state: &AppState,
    scope: &str,
    key: &str,
    response: Response,
) -> ApiResult<Response> {
    let status = response.status();
    if status.is_server_error() {
        state
            .db
            .execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
                &[scope.into(), key.into()],
            )
            .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .db
        .execute(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND idem_key = $2",
            &[
                scope.into(),
                key.into(),
                i64::from(status.as_u16()).into(),
                String::from_utf8_lossy(&bytes).into_owned().into(),
            ],
        )
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
