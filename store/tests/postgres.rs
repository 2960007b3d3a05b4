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
    many_streams_are_read_and_appended_at_once,
    a_tailing_reader_sees_every_event_once_in_order,
    subscribers_are_told_of_commits,
    old_schema_versions_are_upcast_on_read,
    invalid_appends_are_refused,
);

/// What the writer's kept connection may leave behind: sessions of the store's database
/// idle inside a transaction, and advisory locks held in it. Both must be zero whenever no
/// append is running.
async fn leftovers(store: &PgEventStore) -> (i64, i64) {
    sqlx::query_as(
        "SELECT \
           (SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND state LIKE 'idle in transaction%'), \
           (SELECT count(*) FROM pg_locks \
             WHERE locktype = 'advisory' \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// The writer keeps its connection from one group to the next and ends each transaction
/// by hand: after an append that commits, one refused as a conflict, and one whose insert
/// fails and is rolled back (a reused event id with other content), no transaction is
/// left open and the append lock is free, and the next append commits for every reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_leaves_no_transaction_or_lock_behind() {
    use contract::{ev, stream, to};
    use portico_store::{EventStore, ExpectedVersion, StoreError};

    let Some(db) = PgTestDatabase::create().await else {
        return;
    };
    let store = PgEventStore::connect(&db.url).await.unwrap();
    let s = stream("kept");
    let first = ev(1);
    store
        .append(vec![to(&s, ExpectedVersion::NoStream, vec![first.clone()])])
        .await
        .unwrap();
    assert_eq!(leftovers(&store).await, (0, 0), "after a commit");

    let conflict = store
        .append(vec![to(&s, ExpectedVersion::NoStream, vec![ev(2)])])
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { .. })),
        "{conflict:?}"
    );
    assert_eq!(leftovers(&store).await, (0, 0), "after a conflict");

    let mut reused = ev(3);
    reused.event_id = first.event_id;
    let refused = store
        .append(vec![to(
            &stream("other"),
            ExpectedVersion::NoStream,
            vec![reused],
        )])
        .await;
    assert!(
        refused.is_err(),
        "a reused event id was stored: {refused:?}"
    );
    assert_eq!(
        leftovers(&store).await,
        (0, 0),
        "after a rolled-back insert"
    );

    store
        .append(vec![to(&s, ExpectedVersion::Exact(0), vec![ev(4)])])
        .await
        .unwrap();
    assert_eq!(leftovers(&store).await, (0, 0), "after the last commit");
    // A fresh connection, not the writer's, sees both committed events.
    let other = PgEventStore::connect(&db.url).await.unwrap();
    let stored = other.read_stream(&s, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 2);
}

/// A kept connection the server closed while it was idle (a restart, an idle timeout, an
/// operator's `pg_terminate_backend`) costs no append: the writer begins again on a
/// connection from the pool. Closing the pool then takes the kept connection back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_the_server_closed_is_replaced() {
    use contract::{ev, stream, to};
    use portico_store::{EventStore, ExpectedVersion};

    let Some(db) = PgTestDatabase::create().await else {
        return;
    };
    let store = PgEventStore::connect(&db.url).await.unwrap();
    let s = stream("killed");
    store
        .append(vec![to(&s, ExpectedVersion::NoStream, vec![ev(1)])])
        .await
        .unwrap();
    // Every other session of the database, the writer's kept one among them.
    let others = "SELECT pid FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let mut admin = store.pool().acquire().await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(&format!(
        "SELECT pg_terminate_backend(pid) FROM ({others}) AS o"
    ))
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    assert!(!killed.is_empty() && killed.iter().all(|k| k.0));
    for _ in 0..100 {
        let left: Vec<(i32,)> = sqlx::query_as(others).fetch_all(&mut *admin).await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(admin);

    store
        .append(vec![to(&s, ExpectedVersion::Exact(0), vec![ev(2)])])
        .await
        .expect("the append after the kill");
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 2);

    // `PgPool::close` waits for every connection lent out, the kept one too: it is handed
    // back when the pool begins closing (without that, this close hung in 4 runs of 6),
    // and nothing is appended after it.
    tokio::time::timeout(std::time::Duration::from_secs(10), store.pool().close())
        .await
        .expect("the pool closed while the writer kept a connection");
    let after = store
        .append(vec![to(&s, ExpectedVersion::Exact(1), vec![ev(3)])])
        .await;
    assert!(after.is_err(), "appended after the pool closed: {after:?}");
}
