//! The event store contract on the SQLite backend, plus what only SQLite has to prove.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod contract;

use std::sync::Arc;

use async_trait::async_trait;
use contract::Harness;
use portico_domain::clock::{Clock, SystemClock};
use portico_domain::streams::StreamId;
use portico_store::sqlite::SqliteEventStore;
use portico_store::{EventStore, ExpectedVersion};
use proptest::prelude::*;
use tempfile::TempDir;

/// Each test gets its own directory and database file.
struct Sqlite {
    dir: TempDir,
}

fn sqlite() -> Option<Sqlite> {
    Some(Sqlite {
        dir: tempfile::tempdir().unwrap(),
    })
}

#[async_trait]
impl Harness for Sqlite {
    type Store = SqliteEventStore;

    async fn fresh(&self, clock: Arc<dyn Clock>) -> SqliteEventStore {
        let path = self.dir.path().join(format!("{}.db", uuid::Uuid::now_v7()));
        SqliteEventStore::open(&path)
            .await
            .unwrap()
            .with_clock(clock)
    }

    async fn tamper_data(&self, store: &SqliteEventStore, stream: &StreamId, version: i64) {
        let data: String = sqlx::query_scalar(
            "SELECT data FROM events WHERE stream_id = $1 AND stream_version = $2",
        )
        .bind(stream.as_str())
        .bind(version)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let at = data
            .find(|c: char| c.is_ascii_digit())
            .expect("the payload has a digit");
        let mut bytes = data.into_bytes();
        bytes[at] = if bytes[at] == b'9' {
            b'8'
        } else {
            bytes[at] + 1
        };
        sqlx::query("UPDATE events SET data = $1 WHERE stream_id = $2 AND stream_version = $3")
            .bind(String::from_utf8(bytes).unwrap())
            .bind(stream.as_str())
            .bind(version)
            .execute(store.pool())
            .await
            .unwrap();
    }

    async fn delete_event(&self, store: &SqliteEventStore, stream: &StreamId, version: i64) {
        sqlx::query("DELETE FROM events WHERE stream_id = $1 AND stream_version = $2")
            .bind(stream.as_str())
            .bind(version)
            .execute(store.pool())
            .await
            .unwrap();
    }
}

event_store_contract!(sqlite();
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
    many_streams_are_read_and_appended_at_once,
    a_tailing_reader_sees_every_event_once_in_order,
    subscribers_are_told_of_commits,
    old_schema_versions_are_upcast_on_read,
    invalid_appends_are_refused,
);

fn op() -> impl Strategy<Value = contract::Op> {
    prop_oneof![
        4 => prop::collection::vec((0usize..3, 0u8..4, 1usize..4), 1..3).prop_map(contract::Op::Append),
        1 => (0usize..10).prop_map(contract::Op::Retry),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn the_sqlite_store_agrees_with_a_model(ops in prop::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let h = sqlite().unwrap();
            let store = h.fresh(Arc::new(SystemClock)).await;
            contract::agrees_with_a_model(&store, ops).await;
        });
    }
}

#[tokio::test]
async fn the_database_runs_in_wal_mode_with_full_sync() {
    let h = sqlite().unwrap();
    let store = h.fresh(Arc::new(SystemClock)).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous must be FULL (2)");
}

#[tokio::test]
async fn acknowledged_events_are_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let s = contract::stream("invoice");
    let written = {
        let store = SqliteEventStore::open(&path).await.unwrap();
        let r = store
            .append(vec![contract::to(
                &s,
                ExpectedVersion::NoStream,
                vec![contract::ev(1), contract::ev(2)],
            )])
            .await
            .unwrap();
        store.pool().close().await;
        r
    };
    let reopened = SqliteEventStore::open(&path).await.unwrap();
    assert_eq!(reopened.head().await.unwrap(), written.last_position());
    assert_eq!(*reopened.subscribe().borrow(), written.last_position());
    assert_eq!(reopened.read_stream(&s, 0, 10).await.unwrap().len(), 2);
    assert!(portico_store::verify_stream(&reopened, &s)
        .await
        .unwrap()
        .is_empty());
}
