//! Two `portico` processes on one PostgreSQL database: exactly one runs the projectors
//! (advisory lock), both serve, and when the leader dies the other takes over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

mod support;

use portico_store::testing::PgTestDatabase;
use serde_json::{json, Value};
use support::{create_firm, Server};

async fn leader_flag(http: &reqwest::Client, p: &Server) -> Option<bool> {
    let r = http
        .get(format!("{}/v1/ops/projections", p.url))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["leader"].as_bool()
}

async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_leads_the_projectors_and_another_takes_over_when_it_dies() {
    let Some(pg) = PgTestDatabase::create().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let key = create_firm(data.path(), Some(&pg.url), "Acme LLP");

    let http = reqwest::Client::new();
    let mut a = Some(Server::start(&data.path().join("a"), Some(&pg.url)));
    let b = Server::start(&data.path().join("b"), Some(&pg.url));
    let flags = until("both processes to answer with one leader", async || {
        let fa = leader_flag(&http, a.as_ref().unwrap()).await?;
        let fb = leader_flag(&http, &b).await?;
        (fa != fb).then_some((fa, fb))
    })
    .await;
    let (leader, follower) = if flags.0 {
        (a.take().unwrap(), b)
    } else {
        (b, a.take().unwrap())
    };

    // A write through the follower is projected by the leader and readable through the follower.
    let listed = add_client_and_list(&http, &follower, &key, "First Client").await;
    assert_eq!(listed[0]["name"], "First Client");

    // The leader dies; the follower takes the lock and carries on projecting.
    drop(leader);
    until("the follower to take over", async || {
        leader_flag(&http, &follower).await.filter(|l| *l)
    })
    .await;
    let listed = add_client_and_list(&http, &follower, &key, "Second Client").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// Adds a client through `p`, then lists clients through `p` once the read models have it.
async fn add_client_and_list(http: &reqwest::Client, p: &Server, key: &str, name: &str) -> Value {
    let created: Value = http
        .post(format!("{}/v1/firm/clients", p.url))
        .bearer_auth(key)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.get(format!(
        "{}/v1/firm/clients?min_position={}",
        p.url, created["position"]
    ))
    .bearer_auth(key)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}
