//! Another client's (or firm's) ids answer 404, for reads and writes alike.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, json_ok, TestApp};
use crate::world::world;

async fn a_contact_gets_404_for_every_object_of_another_client(app: TestApp) {
    let mine = world(&app, "Acme", "ann@client.example").await;
    let theirs = world(&app, "Other Firm", "bob@elsewhere.example").await;
    let me = app.activate(&mine.email).await;
    let them = app.activate(&theirs.email).await;

    let their_checkout = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &them.token,
            json!({ "invoice_ids": [theirs.invoices["INV-1"]], "min_position": theirs.position }),
        )
        .await,
        201,
    )
    .await;
    let their_checkout = their_checkout["id"].as_str().unwrap();
    let sub = app
        .http
        .post(app.url(&format!("/v1/wallet/checkouts/{their_checkout}/submit")))
        .bearer_auth(&them.token)
        .header("idempotency-key", "k")
        .json(&json!({ "payment_method": { "type": "card", "token": "tok_settle_later" } }))
        .send()
        .await
        .unwrap();
    let sub = json_ok(sub, 201).await;

    let reads = [
        format!(
            "/v1/portal/dashboard?project_id={}&min_position={}",
            theirs.projects[0], mine.position
        ),
        format!("/v1/wallet/checkouts/{their_checkout}"),
        format!(
            "/v1/wallet/submissions/{}",
            sub["submission_id"].as_str().unwrap()
        ),
    ];
    for path in &reads {
        let body = assert_problem(app.get(path, &me.token).await, 404, "not-found").await;
        assert!(
            !body.to_string().contains(&theirs.client),
            "a 404 leaked the other client's id"
        );
    }
    let writes = [
        (
            "/v1/portal/checkouts".to_owned(),
            json!({ "invoice_ids": [theirs.invoices["INV-2"]] }),
        ),
        (
            "/v1/portal/checkouts".to_owned(),
            json!({ "invoice_ids": [mine.invoices["INV-1"], theirs.invoices["INV-2"]] }),
        ),
    ];
    for (path, body) in writes {
        assert_problem(app.post(&path, &me.token, body).await, 404, "not-found").await;
    }
    let r = app
        .http
        .post(app.url(&format!("/v1/wallet/checkouts/{their_checkout}/submit")))
        .bearer_auth(&me.token)
        .header("idempotency-key", "mine")
        .json(&json!({ "payment_method": { "type": "card", "token": "tok_succeed" } }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not-found").await;

    // My own lists never hold their rows.
    let view = json_ok(app.get("/v1/portal/invoices", &me.token).await, 200).await;
    assert!(view["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["client_id"] == mine.client.as_str()));
}

async fn a_firm_gets_404_for_every_object_of_another_firm(app: TestApp) {
    let mine = world(&app, "Acme", "ann@client.example").await;
    let theirs = world(&app, "Other Firm", "bob@elsewhere.example").await;
    let key = &mine.firm.key;
    let inv = &theirs.invoices["INV-1"];
    assert_problem(
        app.get(
            &format!("/v1/firm/invoices/{inv}?min_position={}", theirs.position),
            key,
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/v1/firm/invoices/{inv}/void"),
            key,
            json!({ "reason": "x" }),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/v1/firm/invoices/{inv}/payments"),
            key,
            json!({ "amount": "1.00", "currency": "USD" }),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/v1/firm/clients/{}/contacts", theirs.client),
            key,
            json!({ "name": "X", "email": "x@y.example" }),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/firm/projects",
            key,
            json!({ "client_id": theirs.client, "name": "P" }),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.get(
            &format!("/v1/firm/projects/{}/team", theirs.projects[0]),
            key,
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.request(
            Method::DELETE,
            &format!(
                "/v1/firm/projects/{}/team/{}",
                theirs.projects[0], theirs.members[0]
            ),
            Some(key),
            None,
        )
        .await,
        404,
        "not-found",
    )
    .await;
    assert_problem(
        app.post(
            "/v1/firm/invoices",
            key,
            json!({ "client_id": theirs.client, "project_id": theirs.projects[0], "number": "X-1",
                    "issued_on": "2026-01-01", "due_on": "2026-02-01", "currency": "USD", "total": "10.00" }),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    let list = json_ok(app.get("/v1/firm/invoices", key).await, 200).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["client_id"] == mine.client.as_str()));
    // No key, or a wrong one: 401.
    assert_problem(
        app.request(Method::GET, "/v1/firm/invoices", None, None)
            .await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.get("/v1/firm/invoices", &"0".repeat(64)).await,
        401,
        "unauthorized",
    )
    .await;
}

crate::on_both_backends!(
    a_contact_gets_404_for_every_object_of_another_client,
    a_firm_gets_404_for_every_object_of_another_firm,
);
