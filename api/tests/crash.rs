//! Crash safety: the real server under 64 concurrent writers (invoices issued, checkouts
//! submitted, payments settled by the sandbox's webhooks) is killed with SIGKILL at random
//! moments and restarted, round after round. After each round, offline, like an auditor:
//! every submission that got a 2xx is in the log with its payments, no invoice is paid
//! beyond its total, no payment belongs to two submissions, the hash chains verify and
//! every read model equals a fresh replay of the log. Then the server must come back and
//! bring its read models up to the head by itself.
//!
//! `PORTICO_CHAOS_ROUNDS` sets the rounds (3 by default, the CI subset; 20 is full mode).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico_store::testing::PgTestDatabase;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{create_firm, portal, read_log, Portal, Server};

const WRITERS: usize = 64;

#[derive(Default)]
struct Ledger {
    /// Invoices whose issue got a 2xx.
    invoices: Vec<String>,
    /// `(payment_id, submission_id, invoice_id)` of submissions that got a 2xx.
    payments: Vec<(String, String, String)>,
    submissions: usize,
    /// Responses by status, for the report.
    statuses: HashMap<u16, usize>,
    /// Requests that got no response (the server was killed under them).
    cut: usize,
}

fn rounds() -> usize {
    std::env::var("PORTICO_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

async fn send(ledger: &Mutex<Ledger>, request: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            *ledger.lock().unwrap().statuses.entry(status).or_default() += 1;
            let body = r.json().await.unwrap_or(Value::Null);
            Some((status, body))
        }
        Err(_) => {
            ledger.lock().unwrap().cut += 1;
            None
        }
    }
}

/// Issues one to three invoices, checks them out and pays them, until the server dies.
async fn writer(
    http: reqwest::Client,
    url: String,
    p: Arc<Portal>,
    tag: String,
    ledger: Arc<Mutex<Ledger>>,
    seed: u64,
) -> Option<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let today = chrono::Utc::now().date_naive();
    let mut seq = 0;
    loop {
        let mut ids = Vec::new();
        let mut position = 0;
        for _ in 0..rng.gen_range(1..=3) {
            seq += 1;
            let body = json!({
                "client_id": p.client_id, "project_id": p.project_id,
                "number": format!("{tag}-{seq}"),
                "issued_on": today.to_string(),
                "due_on": (today + chrono::Duration::days(30)).to_string(),
                "currency": "USD",
                "total": format!("{}.{:02}", rng.gen_range(1..900), rng.gen_range(0..100)),
            });
            let request = http
                .post(format!("{url}/v1/firm/invoices"))
                .bearer_auth(&p.key)
                .json(&body);
            let (status, v) = send(&ledger, request).await?;
            if status == 201 {
                let id = v["id"].as_str().unwrap().to_owned();
                ledger.lock().unwrap().invoices.push(id.clone());
                ids.push(id);
                position = position.max(v["position"].as_i64().unwrap());
            }
        }
        if ids.is_empty() {
            continue;
        }
        let request = http
            .post(format!("{url}/v1/portal/checkouts"))
            .bearer_auth(&p.session)
            .json(&json!({ "invoice_ids": ids, "min_position": position }));
        let (status, checkout) = send(&ledger, request).await?;
        if status != 201 {
            continue;
        }
        let token = match rng.gen_range(0..10) {
            0 => "tok_decline",
            1 | 2 => "tok_settle_later",
            _ => "tok_succeed",
        };
        let request = http
            .post(format!(
                "{url}/v1/wallet/checkouts/{}/submit",
                checkout["id"].as_str().unwrap()
            ))
            .bearer_auth(&p.session)
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&json!({ "payment_method": { "type": "card", "token": token } }));
        let (status, submission) = send(&ledger, request).await?;
        if status == 201 {
            let sid = submission["submission_id"].as_str().unwrap().to_owned();
            let mut l = ledger.lock().unwrap();
            l.submissions += 1;
            for pay in submission["payments"].as_array().unwrap() {
                l.payments.push((
                    pay["payment_id"].as_str().unwrap().to_owned(),
                    sid.clone(),
                    pay["invoice_id"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    rounds: usize,
    acked_submissions: usize,
    acked_payments: usize,
    acked_invoices: usize,
    lost: usize,
    overpaid_invoices: usize,
    double_submitted_payments: usize,
    read_model_differences: usize,
    chain_problems: usize,
    events: usize,
    cut_requests: usize,
    server_errors: usize,
}

/// The offline audit of one round; returns the facts for the next checks.
async fn audit(server: &Server, ledger: &Ledger, totals: &mut Totals) -> support::LogFacts {
    let (db, store) = portico_replay::open(&server.database_target())
        .await
        .unwrap();
    let facts = read_log(store.as_ref()).await;
    let lost_invoices = ledger
        .invoices
        .iter()
        .filter(|i| !facts.invoices.contains_key(*i))
        .count();
    let lost_payments = ledger
        .payments
        .iter()
        .filter(|(pid, sid, iid)| {
            facts
                .payments
                .get(pid)
                .is_none_or(|(s, i, _)| s != sid || i != iid)
        })
        .count();
    let mut paid: HashMap<&str, i64> = HashMap::new();
    for (pid, (_, iid, minor)) in &facts.payments {
        if !facts.failed.contains(pid) {
            *paid.entry(iid.as_str()).or_default() += minor;
        }
    }
    let overpaid = paid
        .iter()
        .filter(|(iid, minor)| facts.invoices.get(**iid).is_none_or(|total| *minor > total))
        .count();
    let report = portico_replay::verify(&db, store.as_ref()).await.unwrap();
    for d in report.rows.iter().take(5) {
        eprintln!(
            "read-model difference {}.{} {}: live {:?} replayed {:?}",
            d.projection, d.table, d.key, d.live, d.replayed
        );
    }
    totals.lost += lost_invoices + lost_payments;
    totals.overpaid_invoices += overpaid;
    totals.double_submitted_payments += facts.payment_in_two_submissions;
    totals.read_model_differences += report.rows.len();
    totals.chain_problems += report.chain.len();
    totals.events = facts.events;
    drop((db, store));
    facts
}

async fn crash_rounds(database_url: Option<&str>, label: &str) {
    let data = tempfile::tempdir().unwrap();
    let key = create_firm(data.path(), database_url, "Chaos LLP");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = Server::start(data.path(), database_url);
    server.ready(&http).await;
    let p = Arc::new(portal(&http, &server, &key, "ann@northwind.example").await);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut totals = Totals::default();
    for round in 0..rounds() {
        server.ready(&http).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    http.clone(),
                    server.url.clone(),
                    p.clone(),
                    format!("R{round}W{w}"),
                    ledger.clone(),
                    rng.gen(),
                ))
            })
            .collect();
        // Load, then SIGKILL at a random moment.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(400..2000))).await;
        server.kill();
        for w in writers {
            w.await.unwrap();
        }

        // It comes back by itself and brings every read model up to the head.
        server.restart();
        server.caught_up(&http).await;
        // Killed again while the sandbox may still be delivering settlements.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        server.kill();

        let snapshot = {
            let l = ledger.lock().unwrap();
            Ledger {
                invoices: l.invoices.clone(),
                payments: l.payments.clone(),
                submissions: l.submissions,
                statuses: l.statuses.clone(),
                cut: l.cut,
            }
        };
        audit(&server, &snapshot, &mut totals).await;
        totals.rounds = round + 1;
        totals.acked_submissions = snapshot.submissions;
        totals.acked_payments = snapshot.payments.len();
        totals.acked_invoices = snapshot.invoices.len();
        totals.cut_requests = snapshot.cut;
        totals.server_errors = snapshot
            .statuses
            .iter()
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum();
        eprintln!("[{label}] after round {}: {totals:?}", round + 1);
        server.restart();
    }
    server.caught_up(&http).await;
    let statuses = ledger.lock().unwrap().statuses.clone();
    eprintln!("[{label}] responses by status: {statuses:?}");
    eprintln!("[{label}] CHAOS RESULT {totals:?}");
    assert!(totals.acked_submissions > 0, "no submission ever succeeded");
    assert_eq!(totals.lost, 0, "acknowledged writes missing from the log");
    assert_eq!(totals.overpaid_invoices, 0);
    assert_eq!(totals.double_submitted_payments, 0);
    assert_eq!(totals.chain_problems, 0);
    assert_eq!(totals.read_model_differences, 0);
    assert_eq!(
        statuses.get(&500).copied().unwrap_or(0),
        0,
        "internal errors under load"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged_on_sqlite() {
    crash_rounds(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged_on_postgres() {
    let Some(pg) = PgTestDatabase::create().await else {
        return;
    };
    crash_rounds(Some(&pg.url), "postgres").await;
}
