//! Prometheus metrics: request counts and latencies per route, appends, conflicts,
//! projector lag, the session cache. Each application has its own registry (tests run
//! many in one process).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    appends: IntCounter,
    conflicts: IntCounter,
    pub head: IntGauge,
    pub lag: IntGauge,
    session_cache_hits: IntCounter,
    session_cache_serving: IntGauge,
}

impl Metrics {
    /// Metric definitions are constants; registering them in a fresh registry cannot fail.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portico_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "portico_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let appends = IntCounter::new(
            "portico_events_appended_total",
            "Events appended by commands",
        )
        .expect("valid metric");
        let conflicts = IntCounter::new(
            "portico_command_conflicts_total",
            "Commands refused for a concurrency conflict or a payment race",
        )
        .expect("valid metric");
        let head = IntGauge::new("portico_event_store_head", "Position of the last event")
            .expect("valid metric");
        let lag = IntGauge::new(
            "portico_projection_lag_events",
            "Events the slowest projector is behind",
        )
        .expect("valid metric");
        let session_cache_hits = IntCounter::new(
            "portico_session_cache_hits_total",
            "Session checks answered from memory",
        )
        .expect("valid metric");
        let session_cache_serving = IntGauge::new(
            "portico_session_cache_serving",
            "1 while checked sessions may be served from memory (on PostgreSQL: while the \
             session listener is connected)",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(appends.clone()),
            Box::new(conflicts.clone()),
            Box::new(head.clone()),
            Box::new(lag.clone()),
            Box::new(session_cache_hits.clone()),
            Box::new(session_cache_serving.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            appends,
            conflicts,
            head,
            lag,
            session_cache_hits,
            session_cache_serving,
        }
    }

    /// Takes the session cache's figures: its hits so far and whether it may serve.
    pub fn session_cache(&self, hits: u64, serving: bool) {
        self.session_cache_hits
            .inc_by(hits.saturating_sub(self.session_cache_hits.get()));
        self.session_cache_serving.set(i64::from(serving));
    }

    pub fn appended(&self, events: usize) {
        self.appends.inc_by(events as u64);
    }

    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec only fails on invalid metric data.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every request under its route template (never the raw path, which
/// may carry ids or tokens).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics
        .requests
        .with_label_values(&[&method, &route, &status])
        .inc();
    metrics
        .latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}
