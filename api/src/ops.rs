//! Operations: health, readiness, Prometheus metrics, projection status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use portico_projections::runner::checkpoints;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Lag (in events) above which the process reports itself not ready.
pub const READY_MAX_LAG: i64 = 1000;

pub async fn healthz() -> impl IntoResponse {
    ApiJson(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: i64,
    /// Events between this projection and the head of the log.
    pub lag: i64,
    pub version: i32,
    pub generation: i64,
    pub updated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub head: i64,
    /// Whether this process runs the projectors.
    pub leader: bool,
    pub projections: Vec<ProjectionStatus>,
}

async fn status(state: &AppState) -> ApiResult<Status> {
    let head = state.store.head().await?;
    let projections = checkpoints(&state.db)
        .await?
        .into_iter()
        .map(|c| ProjectionStatus {
            lag: (head - c.position).max(0),
            name: c.name,
            position: c.position,
            version: c.version,
            generation: c.generation,
            updated_at: c.updated_at,
        })
        .collect();
    Ok(Status {
        head,
        leader: *state.leader.borrow(),
        projections,
    })
}

#[utoipa::path(get, path = "/v1/ops/projections", tag = "ops",
    responses((status = 200, body = Status), (status = 503)))]
pub async fn projections(State(state): State<AppState>) -> ApiResult<ApiJson<Status>> {
    Ok(ApiJson(status(&state).await?))
}

/// Ready when the store answers and every read model exists and is within
/// `READY_MAX_LAG` events of the head.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let s = status(&state).await?;
    let expected = state.runner.projectors();
    let live: Vec<&ProjectionStatus> = s
        .projections
        .iter()
        .filter(|p| expected.iter().any(|e| e.name() == p.name))
        .collect();
    let lag = live.iter().map(|p| p.lag).max().unwrap_or(s.head);
    if live.len() < expected.len() || lag > READY_MAX_LAG {
        return Err(ApiError::Unavailable);
    }
    Ok(ApiJson(
        serde_json::json!({ "status": "ready", "head": s.head, "lag": lag }),
    ))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(s) = status(&state).await {
        state.metrics.head.set(s.head);
        let lag = s
            .projections
            .iter()
            .filter(|p| !p.name.contains('#'))
            .map(|p| p.lag)
            .max()
            .unwrap_or(0);
        state.metrics.lag.set(lag);
    }
    state
        .metrics
        .session_cache(state.sessions.hits(), state.sessions.serving());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The demo firm's logo, so the demo needs nothing from outside.
pub async fn demo_logo() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("demo_logo.svg"),
    )
}
