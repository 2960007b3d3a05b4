//! Fuzzing the request bodies: every operation of `/openapi.json` that takes a body gets
//! arbitrary JSON, near-valid bodies (one field replaced or removed) and raw bytes, with
//! valid credentials and the caller's own ids in the path so the input reaches the
//! handlers. Every answer must be below 500, and every error problem+json.
//!
//! `PORTICO_FUZZ_CASES` / 100 bodies per operation (200 by default).

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use crate::helpers::{json_ok, TestApp, WEBHOOK_SECRET};
use crate::world::world;

fn bodies_per_operation() -> usize {
    std::env::var("PORTICO_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .map_or(200, |c| (c / 100).max(10))
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::String),
        "[-]?[0-9]{1,22}(\\.[0-9]{0,8})?".prop_map(Value::String),
        Just(Value::String("01900000-0000-7000-8000-000000000001".into())),
        Just(Value::String("9999-12-31".into())),
        Just(Value::String("x".repeat(5000))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

/// A valid body of each operation, to mutate one field at a time.
fn valid_body(method: &str, template: &str, ids: &HashMap<&str, String>) -> Value {
    let today = chrono::Utc::now().date_naive().to_string();
    match (method, template) {
        ("post", "/v1/firm/clients") => json!({ "name": "Fuzz Client" }),
        ("post", "/v1/firm/clients/{client_id}/contacts") => {
            json!({ "name": "Fuzz", "email": "fuzz@client.example" })
        }
        ("post", "/v1/firm/invoices") => json!({
            "client_id": ids["client_id"], "project_id": ids["project_id"], "number": "FZ-1",
            "issued_on": today, "due_on": today, "currency": "USD", "total": "10.00" }),
        ("post", "/v1/firm/invoices/{invoice_id}/payments")
        | ("post", "/v1/firm/invoices/{invoice_id}/payments/{payment_id}/refund") => {
            json!({ "amount": "1.00", "currency": "USD" })
        }
        ("post", "/v1/firm/invoices/{invoice_id}/void") => json!({ "reason": "fuzz" }),
        ("post", "/v1/firm/projects") => {
            json!({ "client_id": ids["client_id"], "name": "Fuzz Project" })
        }
        ("post", "/v1/firm/projects/{project_id}/team") => {
            json!({ "name": "Fuzz", "role": "Role", "email": "m@firm.example" })
        }
        ("patch", "/v1/firm/profile") => {
            json!({ "name": "Acme", "logo_url": "https://cdn.example.com/l.png" })
        }
        ("post", "/v1/portal/checkouts") => json!({ "invoice_ids": [ids["invoice_id"]] }),
        ("post", "/v1/portal/invites/{token}/accept") => {
            json!({ "password": "a long enough pass phrase", "password_confirmation": "a long enough pass phrase" })
        }
        ("post", "/v1/portal/password") => {
            json!({ "current_password": "wrong password here", "new_password": "another long phrase" })
        }
        ("post", "/v1/portal/sessions") => {
            json!({ "firm_id": ids["firm_id"], "email": "ann@client.example", "password": "wrong password" })
        }
        ("post", "/v1/wallet/checkouts/{checkout_id}/submit") => {
            json!({ "payment_method": { "type": "card", "token": "tok_decline" } })
        }
        ("post", "/v1/webhooks/sandbox") => json!({
            "id": "evt_1", "type": "charge.settled", "payment_id": ids["invoice_id"],
            "invoice_id": ids["invoice_id"], "reference": "ref" }),
        _ => json!({}),
    }
}

fn bodies(valid: &Value, n: usize, runner: &mut TestRunner) -> Vec<Body> {
    let mut out = Vec::with_capacity(n);
    let keys: Vec<String> = valid
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for i in 0..n {
        let arbitrary = json().new_tree(runner).unwrap().current();
        out.push(match i % 4 {
            0 => Body::Json(arbitrary),
            1 | 2 if !keys.is_empty() => {
                let mut body = valid.clone();
                let key = &keys[i % keys.len()];
                if i % 3 == 0 {
                    body.as_object_mut().unwrap().remove(key);
                } else {
                    body[key.as_str()] = arbitrary;
                }
                Body::Json(body)
            }
            _ => Body::Raw(
                prop::collection::vec(any::<u8>(), 0..64)
                    .new_tree(runner)
                    .unwrap()
                    .current(),
            ),
        });
    }
    out
}

async fn request_bodies_never_cause_a_server_error(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let token = app.invite_token_for(&w.email);
    let s = app.activate(&w.email).await;
    let checkout = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &s.token,
            json!({ "invoice_ids": [w.invoices["INV-5"]], "min_position": w.position }),
        )
        .await,
        201,
    )
    .await;
    let contacts = json_ok(app.get("/v1/firm/contacts", &w.firm.key).await, 200).await;
    let ids: HashMap<&str, String> = [
        ("client_id", w.client.clone()),
        (
            "contact_id",
            contacts[0]["contact_id"].as_str().unwrap().to_owned(),
        ),
        ("invoice_id", w.invoices["INV-1"].clone()),
        ("payment_id", uuid::Uuid::now_v7().to_string()),
        ("project_id", w.projects[0].clone()),
        ("member_id", w.members[0].clone()),
        ("checkout_id", checkout["id"].as_str().unwrap().to_owned()),
        ("submission_id", uuid::Uuid::now_v7().to_string()),
        ("firm_id", s.firm_id.clone()),
        ("token", token),
    ]
    .into_iter()
    .collect();

    let document = json_ok(
        app.http.get(app.url("/openapi.json")).send().await.unwrap(),
        200,
    )
    .await;
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let per_operation = bodies_per_operation();
    let mut executed = 0;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let mut path = template.clone();
            for (name, id) in &ids {
                path = path.replace(&format!("{{{name}}}"), id);
            }
            let valid = valid_body(method, template, &ids);
            for body in bodies(&valid, per_operation, &mut runner) {
                let mut req = app
                    .http
                    .request(method.to_uppercase().parse().unwrap(), app.url(&path))
                    .header("idempotency-key", uuid::Uuid::now_v7().to_string());
                req = if template.starts_with("/v1/firm/") {
                    req.bearer_auth(&w.firm.key)
                } else if template.starts_with("/v1/portal/password")
                    || template.starts_with("/v1/portal/checkouts")
                    || template.starts_with("/v1/wallet/")
                {
                    req.bearer_auth(&s.token)
                } else {
                    req
                };
                let bytes = match &body {
                    Body::Json(v) => serde_json::to_vec(v).unwrap(),
                    Body::Raw(b) => b.clone(),
                };
                if template == "/v1/webhooks/sandbox" {
                    let signature = portico_api::webhooks::sign(
                        WEBHOOK_SECRET.as_bytes(),
                        app.clock_now().timestamp(),
                        &bytes,
                    );
                    req = req.header("portico-signature", signature);
                }
                let response = req
                    .header("content-type", "application/json")
                    .body(bytes.clone())
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                executed += 1;
                *statuses.entry(status).or_default() += 1;
                assert!(
                    status < 500,
                    "{method} {template} answered {status} to {}",
                    String::from_utf8_lossy(&bytes)
                );
                if status >= 400 {
                    assert_eq!(
                        content_type, "application/problem+json",
                        "{method} {template} {status}"
                    );
                }
            }
        }
    }
    eprintln!(
        "FUZZ RESULT request bodies: {executed} requests, 0 server errors, by status {statuses:?}"
    );
    assert!(executed > 0);
}

crate::on_both_backends!(request_bodies_never_cause_a_server_error);
