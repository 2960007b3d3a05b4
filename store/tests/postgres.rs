//! The event store contract on PostgreSQL, unchanged. Each store gets a database of its
//! own; without `PORTICO_TEST_POSTGRES_URL` these tests skip (or fail, under `CI`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod contract;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use contract::Harness;
use portico_domain::clock::Clock;
use portico_domain::streams::StreamId;
use portico_store::postgres::PgEventStore;
use portico_store::testing::PgTestDatabase;

struct Postgres {
    databases: Mutex<Vec<PgTestDatabase>>,
}

fn postgres() -> Option<Postgres> {
    let configured = std::env::var_os(portico_store::testing::POSTGRES_URL_VAR).is_some();
    if !configured {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but PORTICO_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipping: PORTICO_TEST_POSTGRES_URL is not set");
        return None;
    }
    Some(Postgres {
        databases: Mutex::new(Vec::new()),
    })
}

#[async_trait]
impl Harness for Postgres {
    type Store = PgEventStore;

    async fn fresh(&self, clock: Arc<dyn Clock>) -> PgEventStore {
        let db = PgTestDatabase::create().await.expect("configured above");
        let store = PgEventStore::connect(&db.url)
            .await
            .unwrap()
            .with_clock(clock);
        self.databases.lock().unwrap().push(db);
        store
    }

    async fn tamper_data(&self, store: &PgEventStore, stream: &StreamId, version: i64) {
        let data: String = sqlx::query_scalar(
            "SELECT data FROM events WHERE stream_id = $1 AND stream_version = $2",
        )
        .bind(stream.as_str())
        .bind(version)
        .fetch_one(store.pool())
        .await
        .unwrap();
        sqlx::query("UPDATE events SET data = $1 WHERE stream_id = $2 AND stream_version = $3")
            .bind(contract::bump_first_digit(&data))
            .bind(stream.as_str())
            .bind(version)
            .execute(store.pool())
            .await
            .unwrap();
    }

    async fn delete_event(&self, store: &PgEventStore, stream: &StreamId, version: i64) {
        sqlx::query("DELETE FROM events WHERE stream_id = $1 AND stream_version = $2")
            .bind(stream.as_str())
            .bind(version)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

event_store_contract!(postgres();
    appends_and_reads_back_a_stream,
    conflicts_are_typed_and_write_nothing,
    identical_reappend_is_idempotent,
    reused_event_id_with_other_content_is_refused,
    multi_stream_append_is_atomic,
    all_is_read_in_order_in_pages,
    as_of_reads_stop_at_the_instant,
    a_modified_row_breaks_the_chain,
    concurrent_appends_lose_nothing_and_duplicate_nothing,
    a_failing_append_fails_alone_among_concurrent_ones,
    several_streams_are_read_at_once_in_the_order_asked,
    a_tailing_reader_sees_every_event_once_in_order,
    subscribers_are_told_of_commits,
    old_schema_versions_are_upcast_on_read,
    invalid_appends_are_refused,
);
