use crate::helpers::{json_ok, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn a_fresh_server_is_healthy_and_ready() {
    let app = spawn_app().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = json_ok(app.http.get(app.url("/readyz")).send().await.unwrap(), 200).await;
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn the_openapi_document_is_generated_from_the_routes() {
    let app = spawn_app().await;
    let doc = json_ok(
        app.http.get(app.url("/openapi.json")).send().await.unwrap(),
        200,
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/firm/invoices",
        "/v1/portal/invites/{token}",
        "/v1/portal/dashboard",
        "/v1/portal/invoices",
        "/v1/portal/checkouts",
        "/v1/wallet/checkouts/{checkout_id}/submit",
        "/v1/webhooks/sandbox",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is missing from /openapi.json"
        );
    }
    assert!(doc["components"]["schemas"].get("InvoiceView").is_some());
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_projection_lag() {
    let app = spawn_app().await;
    app.http.get(app.url("/healthz")).send().await.unwrap();
    app.http
        .get(app.url("/v1/firm/invoices"))
        .send()
        .await
        .unwrap();
    let text = app.metrics().await;
    assert!(text.contains("portico_http_requests_total{method=\"GET\",route=\"/v1/firm/invoices\",status=\"401\"} 1"), "{text}");
    assert!(text.contains("portico_projection_lag_events"));
    assert!(text.contains("portico_http_request_duration_seconds_bucket"));
    // The embedded default sees every session write: its session cache always serves.
    assert!(text.contains("portico_session_cache_serving 1"), "{text}");
    assert!(
        text.contains("portico_session_cache_hits_total 0"),
        "{text}"
    );
    // Ready means the read models answer; the runner flags leadership a moment after it
    // prepared them, so a loaded machine may see `leader: false` at first.
    let mut status = Value::Null;
    for _ in 0..200 {
        status = json_ok(
            app.http
                .get(app.url("/v1/ops/projections"))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        if status["leader"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status["projections"].as_array().unwrap().len(), 4);
    assert_eq!(status["leader"], true, "{status}");
}

/// On SQLite one process serves a database (its session cache trusts that it sees every
/// logout): a second server on the same file is refused with a reason, and the file is
/// free again once the first one is gone.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused() {
    use portico_api::config::ServeConfig;
    use portico_api::startup::Application;
    let data = tempfile::tempdir().unwrap();
    let config = ServeConfig::for_data_dir(data.path().to_path_buf());
    let first = Application::build(&config).await.unwrap();
    let refused = Application::build(&config).await.unwrap_err().to_string();
    assert!(
        refused.contains("already served by another Portico process"),
        "{refused}"
    );
    drop(first);
    Application::build(&config).await.unwrap();
}
