//! Building and running the server. Tests call [`Application::build`] with port 0 and
//! read [`Application::port`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use portico_domain::clock::{Clock, SystemClock};
use portico_projections::{projectors, Db, Runner};
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::session_cache::{self, SessionCache};
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::gateway::sandbox::SandboxGateway;
use crate::mailer::OutboxMailer;
use crate::metrics::Metrics;
use crate::state::{AppState, Settings};
use crate::{firm, leader, ops, portal, wallet, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Portico", version = "1", description = "Billing client portal backend: firm API, portal API, Wallet, webhooks."),
    modifiers(&Security),
    tags(
        (name = "firm", description = "For firms, with their API key"),
        (name = "portal", description = "For client contacts, with their session"),
        (name = "wallet", description = "The payment page"),
        (name = "webhooks", description = "Payment gateway callbacks"),
        (name = "ops", description = "Operations"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A firm API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A portal session token (browsers: the portico_session cookie plus X-CSRF-Token)"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_problem_responses(api_routes().split_for_parts().1)
}

/// Documents the problem+json answers every operation can give besides its own: 400
/// (malformed JSON or parameters), 404, 422, 503 and 500 everywhere; 413 and 415 with a
/// body; 401 with credentials, and 403 (CSRF) with a session. Error responses that were
/// listed without a body get the `Problem` schema.
fn with_problem_responses(document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use serde_json::{json, Value};
    let Ok(mut doc) = serde_json::to_value(&document) else {
        return document;
    };
    let problem = json!({
        "type": "object",
        "description": "RFC 9457 problem details; `type` is stable, see the README for the list.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": { "type": "string" },
            "title": { "type": "string" },
            "status": { "type": "integer" },
            "detail": { "type": "string" },
        },
        "additionalProperties": true,
    });
    doc["components"]["schemas"]["Problem"] = problem;
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" } } },
        })
    };
    let Some(paths) = doc["paths"].as_object_mut() else {
        return document;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let has_body = operation.get("requestBody").is_some();
            let schemes: Vec<String> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|o| o.keys().cloned())
                .collect();
            let mut codes = vec![
                (
                    "400",
                    "Malformed request: JSON or a parameter that does not parse",
                ),
                ("404", "Not found (also another tenant's ids)"),
                ("422", "Invalid input"),
                ("500", "Internal error; details only in the server log"),
                (
                    "503",
                    "Temporarily unavailable; retry after `Retry-After` seconds",
                ),
            ];
            if has_body {
                codes.push(("413", "Body too large"));
                codes.push(("415", "Body not sent as application/json"));
            }
            if !schemes.is_empty() {
                codes.push(("401", "Missing, unknown or expired credentials"));
            }
            if schemes.iter().any(|s| s == "session") {
                codes.push(("403", "Cookie-authenticated write without its X-CSRF-Token"));
            }
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            for (code, description) in codes {
                responses.entry(code).or_insert_with(|| answer(description));
            }
            for (code, response) in responses.iter_mut() {
                if code.starts_with('4') || code.starts_with('5') {
                    if let Some(r) = response.as_object_mut() {
                        if !r.contains_key("content") {
                            let described = r
                                .get("description")
                                .and_then(Value::as_str)
                                .filter(|d| !d.is_empty())
                                .unwrap_or("Error")
                                .to_owned();
                            *response = answer(&described);
                        }
                    }
                }
            }
        }
    }
    serde_json::from_value(doc).unwrap_or(document)
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(firm::router())
        .merge(portal::router())
        .merge(wallet::router())
        .routes(routes!(webhooks::sandbox))
        .routes(routes!(ops::projections))
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// On a SQLite file, held while this process serves it (see [`serve_lock`]).
    _serve_lock: Option<std::fs::File>,
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// On SQLite one process serves a database (DESIGN.md: the embedded default is one
/// process): it runs the projectors, and its caches of views and sessions trust that it
/// sees every write (`auth::session_cache`). A second server on the same file would
/// break that (a logout there would not end the session here), so it is refused: each
/// server holds an exclusive lock on `{database}.serve-lock` beside the file while it
/// runs, which the system drops when the process ends, however it ends. The command-line
/// tools (`firm create`, `portico-replay`) take no such lock and may run beside it.
fn serve_lock(db: &Db) -> anyhow::Result<Option<std::fs::File>> {
    let Db::Sqlite(pool) = db else {
        return Ok(None);
    };
    let options = pool.connect_options();
    let path = options.get_filename();
    if !path.is_file() {
        // An in-memory database: no other process can reach it.
        return Ok(None);
    }
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".serve-lock");
    let lock_path = path.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "{} is already served by another Portico process (it holds {}); on SQLite one \
             process serves a database; use PostgreSQL to run several",
            path.display(),
            lock_path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::anyhow!("cannot lock {}: {e}", lock_path.display()))
        }
    }
}

impl Application {
    pub async fn build(config: &ServeConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: &ServeConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let db = Db::connect(&config.database_target()).await?;
        let serve_lock = serve_lock(&db)?;
        let store = db.event_store().await?;
        let listener = TcpListener::bind(config.listen).await?;
        let own = reachable(listener.local_addr()?);
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{own}"))
            .trim_end_matches('/')
            .to_owned();
        let webhook_secret = match &config.webhook_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                let mut bytes = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                bytes
            }
        };
        let settings = Settings {
            public_url,
            secure_cookies: config.secure_cookies,
            webhook_secret: webhook_secret.clone(),
            session_idle: chrono::Duration::minutes(config.session_idle_minutes.max(1)),
            session_absolute: chrono::Duration::hours(config.session_absolute_hours.max(1)),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let runner = Arc::new(Runner::new(db.clone(), store.clone(), projectors::all()));
        let (leader, leader_task) = leader::spawn(db.clone(), runner.clone(), shutdown_rx.clone());
        let sandbox = Arc::new(SandboxGateway::new(
            db.clone(),
            format!("http://{own}/v1/webhooks/sandbox"),
            webhook_secret,
            Duration::from_millis(config.sandbox_settle_delay_ms),
            clock.clone(),
        ));
        let deliveries = {
            let sandbox = sandbox.clone();
            let stop = shutdown_rx.clone();
            tokio::spawn(async move { sandbox.run_deliveries(leader::stopped(stop)).await })
        };
        let (sessions, session_listener) = match &db {
            Db::Sqlite(_) => (Arc::default(), None),
            Db::Postgres(pool) => {
                let cache = Arc::new(SessionCache::notified(Duration::from_millis(
                    config.session_cache_max_age_ms,
                )));
                let (pool, listening, stop) = (pool.clone(), cache.clone(), shutdown_rx.clone());
                let task = tokio::spawn(async move {
                    session_cache::listen(&pool, &listening, leader::stopped(stop)).await;
                });
                (cache, Some(task))
            }
        };
        let state = AppState {
            db,
            store,
            clock,
            runner,
            leader,
            mailer: Arc::new(OutboxMailer::new(config.data_dir.join("outbox"))),
            gateway: sandbox,
            metrics: Arc::new(Metrics::new()),
            settings: Arc::new(settings),
            views: Arc::default(),
            sessions,
        };
        let router = router(state.clone(), config.max_body_bytes);
        let reconciler = {
            let state = state.clone();
            let stop = shutdown_rx.clone();
            tokio::spawn(crate::reconcile::run_every(state, leader::stopped(stop)))
        };
        Ok(Self {
            listener,
            router,
            state,
            shutdown,
            background: [leader_task, deliveries, reconciler]
                .into_iter()
                .chain(session_listener)
                .collect(),
            _serve_lock: serve_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight and stops the
    /// projector runner, the gateway's webhook deliveries, the stranded-payment reconciler
    /// and (on PostgreSQL) the session listener.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(port = self.port(), url = %self.state.settings.public_url, "portico listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        self.shutdown.send_replace(true);
        for task in self.background {
            let _ = task.await;
        }
        served
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed here", request.method()))
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let (api, document) = api_routes().split_for_parts();
    let document = Arc::new(with_problem_responses(document));
    api.route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/demo/logo.svg", get(ops::demo_logo))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .merge(crate::portal::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(
            // The span names the route template, never the raw path: paths can carry tokens.
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", |p| p.as_str());
                tracing::info_span!("request", method = %request.method(), route = %route)
            }),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}
