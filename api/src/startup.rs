//! Building and running the server. Tests call [`Application::build`] with port 0 and
//! read [`Application::port`].

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use portico_store::sqlite::SqliteEventStore;
use portico_store::EventStore;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::ServeConfig;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn EventStore>,
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = SqliteEventStore::open(&config.database_path()).await?;
        let state = AppState {
            store: Arc::new(store),
        };
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(port = self.port(), "portico listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the event store answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.head().await {
        Ok(head) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "head": head })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "event store not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "store": "unreachable" })),
            )
        }
    }
}
