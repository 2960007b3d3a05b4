//! Malformed JSON, wrong types, bad amounts, huge bodies, unknown routes: a precise 4xx
//! problem every time, never a 5xx.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, TestApp};
use crate::world::world;

async fn bad_input_gets_a_precise_problem_and_never_a_server_error(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let key = &w.firm.key;
    let invoice = |total: serde_json::Value, number: &str| {
        json!({ "client_id": w.client, "project_id": w.projects[0], "number": number,
                "issued_on": "2026-01-01", "due_on": "2026-02-01", "currency": "USD", "total": total })
    };

    let raw = |body: &'static str, content_type: &'static str| {
        app.http
            .post(app.url("/v1/firm/clients"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        raw("{\"name\": ", "application/json").await.unwrap(),
        400,
        "malformed-json",
    )
    .await;
    assert_problem(
        raw("{\"name\": 42}", "application/json").await.unwrap(),
        422,
        "validation",
    )
    .await;
    assert_problem(
        raw("name=x", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    assert_problem(
        app.post("/v1/firm/clients", key, json!({ "name": "   " }))
            .await,
        422,
        "validation",
    )
    .await;

    for (total, why) in [
        (json!("-5.00"), "negative"),
        (json!("10.001"), "over-scale"),
        (json!("1e3"), "exponent"),
        (json!("99999999999999999999999"), "overflow"),
        (json!(10.5), "a number, not a string"),
        (json!("0.00"), "zero"),
    ] {
        let r = app
            .post(
                "/v1/firm/invoices",
                key,
                invoice(total, &format!("BAD-{why}")),
            )
            .await;
        assert_problem(r, 422, "validation").await;
    }
    let mut unknown_currency = invoice(json!("10.00"), "BAD-cur");
    unknown_currency["currency"] = json!("XYZ");
    assert_problem(
        app.post("/v1/firm/invoices", key, unknown_currency).await,
        422,
        "validation",
    )
    .await;
    let mut bad_date = invoice(json!("10.00"), "BAD-date");
    bad_date["due_on"] = json!("2026-13-45");
    assert_problem(
        app.post("/v1/firm/invoices", key, bad_date).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.post("/v1/firm/invoices", key, invoice(json!("10.00"), "INV-1"))
            .await,
        409,
        "conflict",
    )
    .await;

    let huge = json!({ "name": "x".repeat(200_000) });
    assert_problem(
        app.post("/v1/firm/clients", key, huge).await,
        413,
        "payload-too-large",
    )
    .await;

    assert_problem(
        app.get("/v1/firm/invoices/not-a-uuid", key).await,
        404,
        "not-found",
    )
    .await;
    assert_problem(app.get("/v1/nowhere", key).await, 404, "not-found").await;
    assert_problem(
        app.request(Method::PUT, "/v1/firm/clients", Some(key), None)
            .await,
        405,
        "method-not-allowed",
    )
    .await;
    assert_problem(
        app.get("/v1/firm/payments?min_position=abc", key).await,
        422,
        "validation",
    )
    .await;

    let s = app.activate(&w.email).await;
    assert_problem(
        app.get("/v1/portal/invoices?status=late", &s.token).await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [] }),
        )
        .await,
        422,
        "validation",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": ["nope"] }),
        )
        .await,
        422,
        "validation",
    )
    .await;
    let dup = json!({ "invoice_ids": [w.invoices["INV-1"], w.invoices["INV-1"]] });
    assert_problem(
        app.post("/v1/portal/checkouts", &s.token, dup).await,
        422,
        "validation",
    )
    .await;
}

crate::on_both_backends!(bad_input_gets_a_precise_problem_and_never_a_server_error,);
