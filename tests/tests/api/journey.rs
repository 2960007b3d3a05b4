//! The whole client-portal journey, as DESIGN.md tells it, over real HTTP.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{json_ok, Session, TestApp};
use crate::world::world;

crate::on_both_backends!(the_whole_journey_works);

fn numbers(invoices: &Value) -> Vec<String> {
    let mut n: Vec<String> = invoices
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

async fn pay(
    app: &TestApp,
    s: &Session,
    invoice_ids: &[&String],
    token: &str,
    position: i64,
) -> Value {
    let checkout = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": invoice_ids, "min_position": position }),
        )
        .await,
        201,
    )
    .await;
    let r = app
        .http
        .post(app.url(&format!(
            "/v1/wallet/checkouts/{}/submit",
            checkout["id"].as_str().unwrap()
        )))
        .bearer_auth(&s.token)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&json!({ "payment_method": { "type": "card", "token": token } }))
        .send()
        .await
        .unwrap();
    json_ok(r, 201).await
}

async fn the_whole_journey_works(app: TestApp) {
    let w = world(&app, "Harbor & Vale", "ann@northwind.example").await;

    // The invite link shows the firm's name and logo and the email to pre-fill.
    let token = app.invite_token_for(&w.email);
    let invite = json_ok(
        app.request(
            Method::GET,
            &format!("/v1/portal/invites/{token}"),
            None,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(invite["firm"]["name"], "Harbor & Vale");
    assert_eq!(
        invite["firm"]["logo_url"],
        "https://cdn.example.com/logo.png"
    );
    assert_eq!(invite["email"], w.email);

    // Accept: account and session.
    let s = app.activate(&w.email).await;

    // Dashboard: the whole team and only unpaid invoices.
    let dash = json_ok(
        app.get(
            &format!("/v1/portal/dashboard?min_position={}", w.position),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(dash["firm"]["name"], "Harbor & Vale");
    assert_eq!(dash["projects"].as_array().unwrap().len(), 2);
    let team: Vec<&str> = dash["team"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(team.len(), 3, "{team:?}");
    assert_eq!(
        numbers(&dash["unpaid_invoices"]),
        ["INV-1", "INV-2", "INV-3", "INV-5"]
    );
    let inv2 = dash["unpaid_invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "INV-2")
        .unwrap();
    assert_eq!(inv2["status"], "past_due");
    assert_eq!(inv2["balance"], "200.00");
    assert_eq!(inv2["payment_pending"], false);
    for field in [
        "id",
        "number",
        "project_id",
        "project_name",
        "issued_on",
        "due_on",
        "currency",
        "total",
        "balance",
        "status",
        "payment_pending",
    ] {
        assert!(inv2.get(field).is_some(), "invoice shape lacks {field}");
    }

    // Filter the team by project.
    let second = &w.projects[1];
    let filtered = json_ok(
        app.get(
            &format!("/v1/portal/dashboard?project_id={second}"),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    let mut names: Vec<&str> = filtered["team"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Lena Kim", "Priya Shah"]);
    assert_eq!(filtered["selected_project_id"], second.as_str());

    // PAY NOW on one invoice: the sandbox settles it through its webhook.
    let one = pay(&app, &s, &[&w.invoices["INV-1"]], "tok_succeed", w.position).await;
    assert_eq!(one["payments"][0]["status"], "submitted");
    let settled = app
        .settled_submission(&s, one["submission_id"].as_str().unwrap())
        .await;
    assert_eq!(settled["payments"][0]["status"], "settled");

    // PAY SELECTED on three: one submission, three payments, each its own transaction.
    // The gateway (this test, signing as the sandbox would) settles two and declines one.
    let bulk = pay(
        &app,
        &s,
        &[
            &w.invoices["INV-2"],
            &w.invoices["INV-3"],
            &w.invoices["INV-5"],
        ],
        "tok_settle_later",
        0,
    )
    .await;
    let payments = bulk["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 3);
    assert!(payments.iter().all(|p| p["status"] == "submitted"));
    let mut last = bulk["position"].as_i64().unwrap();
    for p in payments {
        let declined = p["invoice_id"] == w.invoices["INV-5"].as_str();
        let event = json!({
            "type": if declined { "charge.failed" } else { "charge.succeeded" },
            "reference": "sbx_test",
            "payment_id": p["payment_id"], "invoice_id": p["invoice_id"],
            "reason": if declined { json!("card declined") } else { Value::Null },
        });
        let ack = json_ok(app.webhook(event.clone()).await, 200).await;
        last = last.max(ack["position"].as_i64().unwrap());
        // A gateway retries deliveries: the repeat is acknowledged, nothing changes.
        assert_eq!(
            json_ok(app.webhook(event).await, 200).await["status"],
            "duplicate"
        );
    }
    let result = app
        .settled_submission(&s, bulk["submission_id"].as_str().unwrap())
        .await;
    let statuses: Vec<(&str, &str)> = result["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["invoice_id"].as_str().unwrap(),
                p["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses.iter().filter(|(_, s)| *s == "settled").count(), 2);
    assert!(statuses.contains(&(w.invoices["INV-5"].as_str(), "failed")));

    // The invoices view: statuses and the summary.
    let view = json_ok(
        app.get(
            &format!("/v1/portal/invoices?min_position={last}"),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    let status_of = |n: &str| {
        view["invoices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["number"] == n)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status_of("INV-1"), "paid");
    assert_eq!(status_of("INV-2"), "paid");
    assert_eq!(status_of("INV-3"), "paid");
    assert_eq!(status_of("INV-4"), "paid");
    assert_eq!(status_of("INV-5"), "open");
    assert_eq!(
        view["summary"],
        json!({ "total_invoices": 5, "unpaid_count": 1, "overdue_count": 0,
                "unpaid_amount": [ { "currency": "USD", "amount": "75.00" } ] })
    );
    let open = json_ok(
        app.get("/v1/portal/invoices?status=open", &s.token).await,
        200,
    )
    .await;
    assert_eq!(numbers(&open["invoices"]), ["INV-5"]);
    assert_eq!(
        open["summary"]["total_invoices"], 5,
        "the summary covers every invoice"
    );

    // The declined invoice can be paid again; the dashboard shows it unpaid, not pending.
    let dash = json_ok(app.get("/v1/portal/dashboard", &s.token).await, 200).await;
    assert_eq!(numbers(&dash["unpaid_invoices"]), ["INV-5"]);
    assert_eq!(dash["unpaid_invoices"][0]["payment_pending"], false);

    // Logout ends the session.
    let out = app.logout(&s.token).await;
    assert_eq!(out.status(), 204);
    assert_eq!(
        app.get("/v1/portal/dashboard", &s.token).await.status(),
        401
    );
}
