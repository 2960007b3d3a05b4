//! Wallet submissions: idempotency, races, declines.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_ok, Session, TestApp};
use crate::world::world;

/// Opens a checkout once the read models hold `position` (the world's last write), so a
/// projector that lags behind the login cannot turn an issued invoice into a 404.
async fn checkout(app: &TestApp, s: &Session, position: i64, ids: &[&String]) -> String {
    let c = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": ids, "min_position": position }),
        )
        .await,
        201,
    )
    .await;
    c["id"].as_str().unwrap().to_owned()
}

async fn submit(
    app: &TestApp,
    s: &Session,
    checkout: &str,
    key: &str,
    token: &str,
) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/v1/wallet/checkouts/{checkout}/submit")))
        .bearer_auth(&s.token)
        .header("idempotency-key", key)
        .json(&json!({ "payment_method": { "type": "card", "token": token } }))
        .send()
        .await
        .unwrap()
}

async fn a_checkout_lists_each_invoice_at_its_balance_and_totals_them(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let c = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [w.invoices["INV-1"], w.invoices["INV-2"]], "min_position": w.position }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(c["currency"], "USD");
    assert_eq!(c["total"], "300.00");
    assert_eq!(c["lines"].as_array().unwrap().len(), 2);
    assert!(c["wallet_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/wallet/{}", c["id"].as_str().unwrap())));
    let shown = json_ok(
        app.get(
            &format!("/v1/wallet/checkouts/{}", c["id"].as_str().unwrap()),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(shown["total"], "300.00");
    // A paid invoice cannot be checked out.
    let paid = app
        .post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [w.invoices["INV-4"]] }),
        )
        .await;
    let body = assert_problem(paid, 409, "payment-conflict").await;
    assert_eq!(
        body["invoices"][0]["invoice_id"],
        w.invoices["INV-4"].as_str()
    );
}

async fn the_same_key_and_body_replay_the_response_and_another_body_is_refused(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let c = checkout(&app, &s, w.position, &[&w.invoices["INV-1"]]).await;
    let key = uuid::Uuid::now_v7().to_string();
    let first = submit(&app, &s, &c, &key, "tok_settle_later").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = submit(&app, &s, &c, &key, "tok_settle_later").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_problem(
        submit(&app, &s, &c, &key, "tok_succeed").await,
        422,
        "idempotency-key-reused",
    )
    .await;
    // A new key on a submitted checkout does not pay twice.
    let other = submit(&app, &s, &c, "another-key", "tok_settle_later").await;
    assert_problem(other, 409, "conflict").await;
    let payments = json_ok(
        app.get(
            &format!(
                "/v1/firm/payments?invoice_id={}&min_position={}",
                w.invoices["INV-1"], first["position"]
            ),
            &w.firm.key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(payments.as_array().unwrap().len(), 1);
    // Without a key the Wallet refuses to charge.
    let r = app
        .http
        .post(app.url(&format!("/v1/wallet/checkouts/{c}/submit")))
        .bearer_auth(&s.token)
        .json(&json!({ "payment_method": { "type": "card", "token": "tok_succeed" } }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "validation").await;
}

async fn two_concurrent_submissions_sharing_an_invoice_exactly_one_wins(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let (a, shared, b) = (
        &w.invoices["INV-1"],
        &w.invoices["INV-2"],
        &w.invoices["INV-3"],
    );
    let first = checkout(&app, &s, w.position, &[a, shared]).await;
    let second = checkout(&app, &s, w.position, &[shared, b]).await;
    let (r1, r2) = tokio::join!(
        submit(&app, &s, &first, "k1", "tok_settle_later"),
        submit(&app, &s, &second, "k2", "tok_settle_later")
    );
    let codes = [r1.status().as_u16(), r2.status().as_u16()];
    assert!(codes.contains(&201) && codes.contains(&409), "{codes:?}");
    let (winner, loser) = if codes[0] == 409 { (r2, r1) } else { (r1, r2) };
    let won: serde_json::Value = winner.json().await.unwrap();
    let problem = assert_problem(loser, 409, "payment-conflict").await;
    let at_stake: Vec<&str> = problem["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invoice_id"].as_str().unwrap())
        .collect();
    assert_eq!(at_stake, [shared.as_str()]);
    let inv = json_ok(
        app.get(
            &format!(
                "/v1/firm/invoices/{shared}?min_position={}",
                won["position"]
            ),
            &w.firm.key,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        inv["pending"], "200.00",
        "the shared invoice is being paid once, not twice"
    );
    // The loser's other invoice was left alone.
    let untouched = if codes[0] == 409 { a } else { b };
    let inv = json_ok(
        app.get(&format!("/v1/firm/invoices/{untouched}"), &w.firm.key)
            .await,
        200,
    )
    .await;
    assert_eq!(inv["payment_pending"], false);
}

async fn a_declined_card_is_reported_per_invoice_and_the_invoice_stays_unpaid(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let c = checkout(
        &app,
        &s,
        w.position,
        &[&w.invoices["INV-3"], &w.invoices["INV-5"]],
    )
    .await;
    let sub = json_ok(submit(&app, &s, &c, "k", "tok_decline").await, 201).await;
    let done = app
        .settled_submission(&s, sub["submission_id"].as_str().unwrap())
        .await;
    assert!(done["payments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "failed"));
    let view = json_ok(
        app.get("/v1/portal/invoices?status=open", &s.token).await,
        200,
    )
    .await;
    let open: Vec<&str> = view["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    assert!(open.contains(&"INV-3") && open.contains(&"INV-5"));
    // An unknown test token is refused before anything is recorded.
    let c2 = checkout(&app, &s, w.position, &[&w.invoices["INV-3"]]).await;
    assert_problem(
        submit(&app, &s, &c2, "k2", "tok_nope").await,
        422,
        "validation",
    )
    .await;
}

async fn a_pending_payment_shows_beside_the_status_and_blocks_a_second_checkout(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let c = checkout(&app, &s, w.position, &[&w.invoices["INV-2"]]).await;
    let sub = json_ok(submit(&app, &s, &c, "k", "tok_settle_later").await, 201).await;
    let dash = json_ok(
        app.get(
            &format!("/v1/portal/dashboard?min_position={}", sub["position"]),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    let inv = dash["unpaid_invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "INV-2")
        .unwrap();
    assert_eq!(inv["status"], "past_due");
    assert_eq!(inv["payment_pending"], true);
    let again = app
        .post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [w.invoices["INV-2"]] }),
        )
        .await;
    assert_problem(again, 409, "payment-conflict").await;
}

async fn webhooks_without_a_valid_signature_are_refused(app: TestApp) {
    let r = app
        .http
        .post(app.url("/v1/webhooks/sandbox"))
        .header("portico-signature", "t=1,v1=00")
        .json(&json!({ "type": "charge.succeeded", "reference": "x", "payment_id": "y", "invoice_id": "z" }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}

/// A process that dies between a submission's append and its gateway call leaves payments
/// the gateway never saw. The reconciler abandons them at the gateway and records them as
/// failed, so the invoice can be paid again; a payment the gateway did take is left alone,
/// and a late charge of an abandoned one is refused.
async fn a_payment_stranded_before_its_charge_is_failed_by_the_reconciler(app: TestApp) {
    use portico_api::gateway::Charge;
    use portico_domain::ids::{InvoiceId, PaymentId, SubmissionId};
    use portico_domain::invoice::Invoice;
    use portico_domain::streams::StreamId;
    use portico_domain::submission::{submit as decide, PaymentLine};
    use portico_domain::{Currency, Money, Scope};

    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;

    // INV-3 is charged normally (tok_settle_later: pending for an hour in tests).
    let charged = checkout(&app, &s, w.position, &[&w.invoices["INV-3"]]).await;
    let charged = json_ok(
        submit(&app, &s, &charged, "charged", "tok_settle_later").await,
        201,
    )
    .await;

    // INV-1: the append happened, the process died before the charge.
    let invoice_id: InvoiceId = w.invoices["INV-1"].parse().unwrap();
    let firm_id = s.firm_id.parse().unwrap();
    let client_id = w.client.parse().unwrap();
    let (payment_id, submission_id) = (PaymentId::new(), SubmissionId::new());
    let amount = Money::parse("100.00", Currency::parse("USD").unwrap()).unwrap();
    let stream = StreamId::invoice(invoice_id);
    let meta = portico_store::Metadata::new(Some(firm_id), "contact:test");
    let committed = portico_store::command::execute(
        app.state.store.as_ref(),
        std::slice::from_ref(&stream),
        &meta,
        |l| {
            let invoice = l.replay::<Invoice>(&stream);
            decide(
                &Scope::Client { firm_id, client_id },
                submission_id,
                "card",
                &[PaymentLine {
                    invoice: &invoice,
                    payment_id,
                    amount,
                }],
            )
        },
    )
    .await
    .unwrap();
    let position = committed.last_position();
    let blocked = app
        .post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [w.invoices["INV-1"]], "min_position": position }),
        )
        .await;
    assert_problem(blocked, 409, "payment-conflict").await;

    // Too young to count as stranded: left alone.
    assert_eq!(
        portico_api::reconcile::run_once(&app.state).await.unwrap(),
        0
    );
    app.clock
        .advance(portico_api::reconcile::STRANDED_AFTER + chrono::Duration::seconds(1));
    assert_eq!(
        portico_api::reconcile::run_once(&app.state).await.unwrap(),
        1
    );
    assert_eq!(
        portico_api::reconcile::run_once(&app.state).await.unwrap(),
        0,
        "once is enough"
    );

    let head = app.state.store.head().await.unwrap();
    let stranded = json_ok(
        app.get(
            &format!("/v1/wallet/submissions/{submission_id}?min_position={head}"),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(stranded["payments"][0]["status"], "failed");
    let still = json_ok(
        app.get(
            &format!(
                "/v1/wallet/submissions/{}",
                charged["submission_id"].as_str().unwrap()
            ),
            &s.token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(still["payments"][0]["status"], "submitted");
    // INV-1 can be paid again.
    checkout(&app, &s, w.position, &[&w.invoices["INV-1"]]).await;
    // A late charge of the abandoned payment is refused by the gateway.
    let late = app
        .state
        .gateway
        .charge_all(&[Charge {
            payment_id,
            invoice_id,
            amount,
            method: portico_api::gateway::PaymentMethod {
                kind: "card".into(),
                token: "tok_succeed".into(),
            },
        }])
        .await;
    assert!(
        matches!(
            &late[0],
            Ok(portico_api::gateway::ChargeOutcome::Declined { .. })
        ),
        "{late:?}"
    );
}

crate::on_both_backends!(
    a_payment_stranded_before_its_charge_is_failed_by_the_reconciler,
    a_checkout_lists_each_invoice_at_its_balance_and_totals_them,
    the_same_key_and_body_replay_the_response_and_another_body_is_refused,
    two_concurrent_submissions_sharing_an_invoice_exactly_one_wins,
    a_declined_card_is_reported_per_invoice_and_the_invoice_stays_unpaid,
    a_pending_payment_shows_beside_the_status_and_blocks_a_second_checkout,
    webhooks_without_a_valid_signature_are_refused,
);
