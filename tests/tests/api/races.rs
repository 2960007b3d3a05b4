//! Races: 1,000 bulk submissions with random overlaps over 20 invoices, all at once. Every
//! response is 201 or 409; no invoice is paid beyond its total; every payment in the log
//! belongs to exactly one submission, and that submission was answered 201.

use std::collections::{HashMap, HashSet};

use portico_domain::Event;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{json_ok, TestApp};
use crate::world::{created, world};

const SUBMISSIONS: usize = 1000;
const INVOICES: usize = 20;

async fn a_thousand_overlapping_bulk_submissions_never_overpay(app: TestApp) {
    let w = world(&app, "Acme", "ann@client.example").await;
    let s = app.activate(&w.email).await;
    let today = app.clock_now().date_naive();
    let mut invoices = Vec::new();
    let mut position = 0;
    for n in 0..INVOICES {
        let (id, pos) = created(
            &app,
            &w.firm.key,
            "/v1/firm/invoices",
            json!({ "client_id": w.client, "project_id": w.projects[0], "number": format!("RACE-{n}"),
                    "issued_on": today.to_string(), "due_on": today.to_string(),
                    "currency": "USD", "total": format!("{}.25", 10 + n) }),
        )
        .await;
        invoices.push(id);
        position = pos;
    }

    // Every checkout is made before anyone pays, so each offers its invoices' whole balance.
    let mut rng = StdRng::seed_from_u64(7);
    let mut checkouts = Vec::new();
    for _ in 0..SUBMISSIONS {
        let k = rng.gen_range(1..=4);
        let picked: Vec<&String> = invoices.choose_multiple(&mut rng, k).collect();
        let c = json_ok(
            app.post(
                "/v1/portal/checkouts",
                &s.token,
                json!({ "invoice_ids": picked, "min_position": position }),
            )
            .await,
            201,
        )
        .await;
        checkouts.push(c["id"].as_str().unwrap().to_owned());
    }

    let tasks: Vec<_> = checkouts
        .into_iter()
        .enumerate()
        .map(|(i, checkout)| {
            let http = app.http.clone();
            let url = app.url(&format!("/v1/wallet/checkouts/{checkout}/submit"));
            let token = s.token.clone();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", format!("race-{i}"))
                    .json(&json!({ "payment_method": { "type": "card", "token": "tok_settle_later" } }))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            let sid = body["submission_id"].as_str().unwrap();
            for p in body["payments"].as_array().unwrap() {
                acknowledged.insert(p["payment_id"].as_str().unwrap().to_owned(), sid.to_owned());
            }
        }
    }
    eprintln!("race responses by status: {statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.get(&201).copied().unwrap_or(0) > 0);

    // The log: each payment once, in a submission that was answered 201; no overpayment.
    let store = app.state.store.clone();
    let mut after = 0;
    let mut totals: HashMap<String, i64> = HashMap::new();
    let mut paid: HashMap<String, i64> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let batch = store.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.global_position;
        for e in &batch {
            match e.decode().unwrap() {
                Event::InvoiceIssued {
                    invoice_id, total, ..
                } => {
                    totals.insert(invoice_id.to_string(), total.minor_units());
                }
                Event::PaymentSubmitted {
                    payment_id,
                    submission_id,
                    invoice_id,
                    amount,
                    method,
                    ..
                } if method == "card" => {
                    let pid = payment_id.to_string();
                    assert!(seen.insert(pid.clone()), "payment {pid} appended twice");
                    assert_eq!(
                        acknowledged.get(&pid),
                        Some(&submission_id.to_string()),
                        "payment {pid} belongs to no acknowledged submission"
                    );
                    *paid.entry(invoice_id.to_string()).or_default() += amount.minor_units();
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        seen.len(),
        acknowledged.len(),
        "an acknowledged payment is missing"
    );
    for (invoice, minor) in &paid {
        assert!(
            *minor <= totals[invoice],
            "invoice {invoice} overpaid: {minor} of {}",
            totals[invoice]
        );
    }
    // Every racing invoice was paid, exactly once.
    for id in &invoices {
        assert_eq!(paid.get(id), totals.get(id), "invoice {id}");
    }
}

crate::on_both_backends!(a_thousand_overlapping_bulk_submissions_never_overpay);
