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

/// Every firm, portal and wallet path of `/openapi.json` that takes an id, asked by one
/// tenant with another firm's ids: 404, nothing of the other tenant in the body, and not
/// one event appended. A new id-taking path fails this test until it gets a case here.
async fn every_path_that_takes_an_id_answers_404_for_another_tenants_id(app: TestApp) {
    let mine = world(&app, "Acme", "ann@client.example").await;
    let theirs = world(&app, "Victim Holdings", "victor@victim.example").await;
    let me = app.activate(&mine.email).await;
    let them = app.activate(&theirs.email).await;
    let checkout = json_ok(
        app.post(
            "/v1/portal/checkouts",
            &them.token,
            json!({ "invoice_ids": [theirs.invoices["INV-1"]], "min_position": theirs.position }),
        )
        .await,
        201,
    )
    .await;
    let checkout_id = checkout["id"].as_str().unwrap().to_owned();
    let submitted = app
        .http
        .post(app.url(&format!("/v1/wallet/checkouts/{checkout_id}/submit")))
        .bearer_auth(&them.token)
        .header("idempotency-key", "victim")
        .json(&json!({ "payment_method": { "type": "card", "token": "tok_settle_later" } }))
        .send()
        .await
        .unwrap();
    let submitted = json_ok(submitted, 201).await;
    let their_contact = json_ok(app.get("/v1/firm/contacts", &theirs.firm.key).await, 200).await[0]
        ["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids: std::collections::HashMap<&str, String> = [
        ("client_id", theirs.client.clone()),
        ("contact_id", their_contact),
        ("invoice_id", theirs.invoices["INV-1"].clone()),
        (
            "payment_id",
            submitted["payments"][0]["payment_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
        ("project_id", theirs.projects[0].clone()),
        ("member_id", theirs.members[0].clone()),
        ("checkout_id", checkout_id),
        (
            "submission_id",
            submitted["submission_id"].as_str().unwrap().to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    // Public by design, and why: a firm's login page shows its name and logo to anyone
    // holding the link; an invite token is itself the credential for its invitation.
    let public = ["firm_id", "token"];
    let body_for = |method: &str, template: &str| -> Option<serde_json::Value> {
        Some(match (method, template) {
            ("get" | "delete", _) => return None,
            ("post", "/v1/firm/clients/{client_id}/contacts") => {
                json!({ "name": "Eve", "email": "eve@attacker.example" })
            }
            ("post", "/v1/firm/contacts/{contact_id}/deactivate")
            | ("post", "/v1/firm/contacts/{contact_id}/invite") => json!({}),
            ("post", "/v1/firm/invoices/{invoice_id}/payments")
            | ("post", "/v1/firm/invoices/{invoice_id}/payments/{payment_id}/refund") => {
                json!({ "amount": "1.00", "currency": "USD" })
            }
            ("post", "/v1/firm/invoices/{invoice_id}/void") => json!({ "reason": "mine now" }),
            ("post", "/v1/firm/projects/{project_id}/team") => {
                json!({ "name": "Eve", "role": "Spy", "email": "eve@attacker.example" })
            }
            ("post", "/v1/wallet/checkouts/{checkout_id}/submit") => {
                json!({ "payment_method": { "type": "card", "token": "tok_succeed" } })
            }
            other => panic!("{other:?} takes an id but has no tenancy case: add one"),
        })
    };
    let leaks = [
        "Victim Holdings",
        "victor@victim.example",
        &theirs.client,
        &theirs.invoices["INV-1"],
    ];

    let document = json_ok(
        app.http.get(app.url("/openapi.json")).send().await.unwrap(),
        200,
    )
    .await;
    let head_before = app.state.store.head().await.unwrap();
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        let params: Vec<&str> = template
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        if params.is_empty() || params.iter().any(|p| public.contains(p)) {
            continue;
        }
        for method in operations.as_object().unwrap().keys() {
            let mut path = template.clone();
            for p in &params {
                let id = ids
                    .get(p)
                    .unwrap_or_else(|| panic!("no other-tenant value for {{{p}}} in {template}"));
                path = path.replace(&format!("{{{p}}}"), id);
            }
            let credential = if template.starts_with("/v1/firm/") {
                &mine.firm.key
            } else {
                &me.token
            };
            let mut request = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&path))
                .bearer_auth(credential)
                .header("idempotency-key", format!("attack-{checked}"));
            if let Some(body) = body_for(method, template) {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(status, 404, "{method} {template}: {text}");
            for secret in leaks {
                assert!(
                    !text.contains(secret),
                    "{method} {template} leaks {secret}: {text}"
                );
            }
            checked += 1;
        }
    }
    eprintln!(
        "TENANCY RESULT {checked} id-taking operations asked with another firm's ids: \
         all 404, 0 leaks, 0 events appended"
    );
    assert!(
        checked >= 15,
        "only {checked} id-taking operations were found"
    );
    assert_eq!(
        app.state.store.head().await.unwrap(),
        head_before,
        "a refused request appended events"
    );
}

crate::on_both_backends!(
    every_path_that_takes_an_id_answers_404_for_another_tenants_id,
    a_contact_gets_404_for_every_object_of_another_client,
    a_firm_gets_404_for_every_object_of_another_firm,
);
