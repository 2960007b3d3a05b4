//! The auditor's tool against what the portal really showed, and the operator's rebuild
//! under live traffic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use portico_domain::ids::ClientId;
use portico_projections::projectors;
use portico_replay::HistoryOf;
use serde_json::{json, Value};

use crate::helpers::{json_ok, Session, TestApp};
use crate::world::world;

async fn pay(app: &TestApp, s: &Session, invoice: &str, after: i64) -> Value {
    let c = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [invoice], "min_position": after }),
        )
        .await,
        201,
    )
    .await;
    let r = app
        .http
        .post(app.url(&format!(
            "/v1/wallet/checkouts/{}/submit",
            c["id"].as_str().unwrap()
        )))
        .bearer_auth(&s.token)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&json!({ "payment_method": { "type": "card", "token": "tok_succeed" } }))
        .send()
        .await
        .unwrap();
    let sub = json_ok(r, 201).await;
    app.settled_submission(s, sub["submission_id"].as_str().unwrap())
        .await;
    sub
}

async fn state_as_of_equals_what_the_api_showed_then_and_history_stops_there(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    pay(&app, &s, &w.invoices["INV-1"], w.position).await;
    let head = app.state.store.head().await.unwrap();
    let shown_then = json_ok(
        app.get(
            &format!("/v1/portal/invoices?min_position={head}"),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    let instant = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    pay(&app, &s, &w.invoices["INV-2"], 0).await;

    let client: ClientId = w.client.parse().unwrap();
    let replayed = portico_replay::state_as_of(app.state.store.as_ref(), client, instant)
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&replayed.invoices).unwrap(),
        shown_then["invoices"]
    );
    assert_eq!(
        serde_json::to_value(&replayed.summary).unwrap(),
        shown_then["summary"]
    );
    let now = portico_replay::state_as_of(app.state.store.as_ref(), client, Utc::now())
        .await
        .unwrap();
    assert_ne!(
        serde_json::to_value(&now.summary).unwrap(),
        shown_then["summary"],
        "the second payment shows now"
    );

    let history = portico_replay::history(
        app.state.store.as_ref(),
        &HistoryOf::Client(client),
        Some(instant),
    )
    .await
    .unwrap();
    let paid: Vec<(&str, &str)> = history
        .iter()
        .filter(|r| r.payment_id.is_some())
        .map(|r| (r.invoice_number.as_str(), r.change.as_str()))
        .collect();
    // INV-4 was paid offline when the world was set up; INV-2's payment came after.
    assert_eq!(
        paid,
        [
            ("INV-4", "submitted"),
            ("INV-4", "submitted → settled"),
            ("INV-1", "submitted"),
            ("INV-1", "submitted → settled")
        ]
    );
    let settled = history
        .iter()
        .find(|r| r.invoice_number == "INV-1" && r.change == "submitted → settled")
        .unwrap();
    assert_eq!(settled.balance, "0.00");
    assert_eq!(settled.actor, "gateway:sandbox");
    let all = portico_replay::history(app.state.store.as_ref(), &HistoryOf::Client(client), None)
        .await
        .unwrap();
    assert!(all
        .iter()
        .any(|r| r.invoice_number == "INV-2" && r.change == "submitted → settled"));
}

async fn a_rebuild_while_the_api_serves_reads_fails_no_read_and_ends_equal_to_a_fresh_replay(
    app: TestApp,
) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (app, stop, served, token) =
                (app.clone(), stop.clone(), served.clone(), s.token.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    for path in ["/v1/portal/invoices", "/v1/portal/dashboard"] {
                        let r = app.get(path, &token).await;
                        assert_eq!(r.status(), 200, "{path} failed during the rebuild");
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let reports = portico_replay::rebuild(
        &app.state.db,
        app.state.store.as_ref(),
        &projectors::all(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(reports.len(), 4);
    pay(&app, &s, &w.invoices["INV-3"], 0).await;
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    assert!(served.load(Ordering::SeqCst) > 0);
    let head = app.state.store.head().await.unwrap();
    assert!(
        app.state
            .runner
            .wait_for(head, std::time::Duration::from_secs(10))
            .await
    );
    let report = portico_replay::verify(&app.state.db, app.state.store.as_ref())
        .await
        .unwrap();
    assert!(report.ok(), "{:?} {:?}", report.chain, report.rows);
}

crate::on_both_backends!(
    state_as_of_equals_what_the_api_showed_then_and_history_stops_there,
    a_rebuild_while_the_api_serves_reads_fails_no_read_and_ends_equal_to_a_fresh_replay,
);
