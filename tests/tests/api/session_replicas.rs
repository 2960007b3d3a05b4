//! Several servers on one PostgreSQL database, each keeping checked sessions in memory
//! (`auth::session_cache`): a session ended anywhere must stop working everywhere, and a
//! server that may have missed the news must stop trusting what it kept.
//!
//! The servers here keep a checked session for an hour (`session_cache_max_age_ms`), so
//! only the trigger's notices (or a lost listener) can make them read it again.

use std::time::{Duration, Instant};

use crate::helpers::{json_ok, spawn_with, Backend, TestApp, PASSWORD};
use crate::world::world;

const HOUR_MS: u64 = 3_600_000;

/// Polls `probe` every 20 ms until it holds; fails after 20 s.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dashboard_status(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/portal/dashboard", token)
        .await
        .status()
        .as_u16()
}

/// Waits until `app`'s read models have every event, so that the projection progress
/// its cached entries are keyed to stands still.
async fn caught_up(app: &TestApp) {
    eventually("the read models to catch up", async || {
        app.state.store.head().await.unwrap() == app.state.runner.position()
    })
    .await;
}

/// Waits until `app` answers for `token` from its session cache.
async fn served_from_cache(app: &TestApp, token: &str) {
    eventually("the session to be served from the cache", async || {
        let hits = app.state.sessions.hits();
        dashboard_status(app, token).await == 200 && app.state.sessions.hits() > hits
    })
    .await;
}

/// The leader (which runs the projectors and so may cache) and a second replica.
async fn two_replicas() -> Option<(TestApp, TestApp)> {
    let leader = spawn_with(Backend::Postgres, |c| c.session_cache_max_age_ms = HOUR_MS).await?;
    eventually("the first server to lead", async || {
        *leader.state.leader.borrow()
    })
    .await;
    let other = leader
        .replica(|c| c.session_cache_max_age_ms = HOUR_MS)
        .await;
    Some((leader, other))
}

async fn raw_sql(app: &TestApp, statements: &[&str]) {
    let portico_projections::Db::Postgres(pool) = &app.state.db else {
        panic!("a PostgreSQL test");
    };
    let mut conn = pool.acquire().await.unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
    // Leave nothing set on a connection that goes back to the server's pool.
    sqlx::query("RESET ALL").execute(&mut *conn).await.unwrap();
}

#[tokio::test]
async fn a_logout_through_another_replica_ends_the_session_cached_here() {
    let Some((here, there)) = two_replicas().await else {
        return;
    };
    let w = world(&here, "Acme", "ann@client.example").await;
    let s = here.activate(&w.email).await;
    let other = json_ok(here.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    let other = other["session"]["token"].as_str().unwrap().to_owned();
    served_from_cache(&here, &s.token).await;
    served_from_cache(&here, &other).await;
    let text = here.metrics().await;
    assert!(text.contains("portico_session_cache_serving 1"), "{text}");
    assert!(
        !text.contains("portico_session_cache_hits_total 0"),
        "{text}"
    );

    let out = there.logout(&s.token).await;
    assert_eq!(out.status(), 204);
    eventually("the logout to reach the other replica", async || {
        dashboard_status(&here, &s.token).await == 401
    })
    .await;
    // Only that session: the other one is still served, from the cache.
    served_from_cache(&here, &other).await;

    // A change made by hand is announced too: an operator empties the table.
    raw_sql(&there, &["TRUNCATE sessions"]).await;
    eventually("the truncate to reach the cache", async || {
        dashboard_status(&here, &other).await == 401
    })
    .await;
}

#[tokio::test]
async fn a_lost_listener_connection_empties_the_session_cache() {
    let Some((here, _there)) = two_replicas().await else {
        return;
    };
    let w = world(&here, "Acme", "ann@client.example").await;
    let s = here.activate(&w.email).await;
    caught_up(&here).await;
    served_from_cache(&here, &s.token).await;

    // The session ends without a notice (triggers off for this connection), as if the
    // notice were sent while the listener's connection was down.
    raw_sql(
        &here,
        &[
            "SET session_replication_role = replica",
            "DELETE FROM sessions",
        ],
    )
    .await;
    // What the listener does not hear of, the cache does not know.
    assert_eq!(dashboard_status(&here, &s.token).await, 200);

    raw_sql(
        &here,
        &["SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
           WHERE application_name = 'portico-session-listener' AND datname = current_database()"],
    )
    .await;
    // Operators see the cache stop serving while the listener is away (it waits a second
    // before it connects again), then serve again once the listener is back.
    eventually("the metric to show the cache off", async || {
        here.metrics()
            .await
            .contains("portico_session_cache_serving 0")
    })
    .await;
    eventually("the cache to be emptied", async || {
        dashboard_status(&here, &s.token).await == 401
    })
    .await;
    eventually("the metric to show the cache serving", async || {
        here.metrics()
            .await
            .contains("portico_session_cache_serving 1")
    })
    .await;
    // Listening again, the cache serves again, and what it held before is gone.
    let again = json_ok(here.login(&s.firm_id, &w.email, PASSWORD).await, 201).await;
    served_from_cache(&here, again["session"]["token"].as_str().unwrap()).await;
    assert_eq!(dashboard_status(&here, &s.token).await, 401);
}
