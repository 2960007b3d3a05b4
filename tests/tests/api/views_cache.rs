//! The rendered-view cache never serves a view the read models or the calendar have moved
//! past.

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{json_ok, TestApp, PASSWORD};
use crate::world::{created, world};

async fn unpaid_numbers(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let d = json_ok(
        app.get(&format!("/v1/portal/dashboard{query}"), token)
            .await,
        200,
    )
    .await;
    d["unpaid_invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_cached_view_follows_new_events_and_the_turning_day(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let before = unpaid_numbers(&app, &s.token, &format!("?min_position={}", w.position)).await;
    assert_eq!(
        unpaid_numbers(&app, &s.token, "").await,
        before,
        "a repeat read"
    );

    // A new invoice: visible with its position at once, and without it once projected.
    let today = app.clock_now().date_naive();
    let (_, position) = created(
        &app,
        &w.firm.key,
        "/v1/firm/invoices",
        json!({ "client_id": w.client, "project_id": w.projects[0], "number": "INV-NEW",
                "issued_on": today.to_string(), "due_on": (today + Duration::days(3)).to_string(),
                "currency": "USD", "total": "9.00" }),
    )
    .await;
    let after = unpaid_numbers(&app, &s.token, &format!("?min_position={position}")).await;
    assert!(after.contains(&"INV-NEW".to_owned()), "{after:?}");
    assert!(unpaid_numbers(&app, &s.token, "")
        .await
        .contains(&"INV-NEW".to_owned()));

    // No event, but the day turns: INV-1 (due in 20 days) becomes past due.
    let status_of = |page: &Value, number: &str| {
        page["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["number"] == number)
            .unwrap()["status"]
            .clone()
    };
    let page = json_ok(app.get("/v1/portal/invoices", &s.token).await, 200).await;
    assert_eq!(status_of(&page, "INV-1"), "open");
    app.clock.advance(Duration::days(21));
    // (Three weeks on, the session has expired: log in again.)
    let login = json_ok(app.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    let token = login["session"]["token"].as_str().unwrap();
    let page = json_ok(app.get("/v1/portal/invoices", token).await, 200).await;
    assert_eq!(status_of(&page, "INV-1"), "past_due");
}

/// On SQLite a checked session is kept in memory (`auth::session_cache`): a logout must
/// end it at once even though no event moves the read models, and only it.
async fn a_session_checked_before_ends_at_logout_and_only_that_one(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let other = json_ok(app.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    let other = other["session"]["token"].as_str().unwrap().to_owned();
    for token in [&s.token, &other, &s.token, &other] {
        assert_eq!(app.get("/v1/portal/dashboard", token).await.status(), 200);
    }
    let out = app.logout(&s.token).await;
    assert_eq!(out.status(), 204);
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/portal/dashboard", &s.token).await.status(),
            401
        );
        assert_eq!(app.get("/v1/portal/dashboard", &other).await.status(), 200);
    }
}

crate::on_both_backends!(
    a_cached_view_follows_new_events_and_the_turning_day,
    a_session_checked_before_ends_at_logout_and_only_that_one,
);
