//! The event store contract, written once and run unchanged against every backend.
//! A backend's test file implements [`Harness`] and invokes [`event_store_contract!`].

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use portico_domain::clock::{Clock, FixedClock, SystemClock};
use portico_domain::streams::StreamId;
use portico_store::hash::ChainProblem;
use portico_store::*;
use serde_json::json;
use uuid::Uuid;

#[async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    type Store: EventStore + Clone;
    /// A new, empty store in a database of its own.
    async fn fresh(&self, clock: Arc<dyn Clock>) -> Self::Store;
    /// Changes one digit of a stored event's payload behind the store's back.
    async fn tamper_data(&self, store: &Self::Store, stream: &StreamId, version: i64);
    /// Deletes a stored event behind the store's back.
    async fn delete_event(&self, store: &Self::Store, stream: &StreamId, version: i64);
}

#[macro_export]
macro_rules! event_store_contract {
    ($harness:expr; $($case:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if let Some(harness) = $harness {
                contract::$case(&harness).await;
            }
        }
    )+};
}

pub fn stream(name: &str) -> StreamId {
    StreamId::from_stored(format!("{name}-{}", Uuid::now_v7()))
}

pub fn meta() -> Metadata {
    Metadata {
        firm_id: None,
        actor: "contract-test".into(),
        correlation_id: Uuid::nil(),
        causation_id: None,
    }
}

pub fn ev(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Tested".into(),
        schema_version: 1,
        data: json!({ "n": n, "note": "payload" }),
        metadata: meta(),
    }
}

pub fn to(stream: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendStream {
    AppendStream {
        stream_id: stream.clone(),
        expected,
        events,
    }
}

/// A stored payload with one digit changed: what an intruder with SQL access might do.
pub fn bump_first_digit(data: &str) -> String {
    let at = data
        .find(|c: char| c.is_ascii_digit())
        .expect("the payload has a digit");
    let mut bytes = data.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    String::from_utf8(bytes).unwrap()
}

async fn fresh<H: Harness>(h: &H) -> H::Store {
    h.fresh(Arc::new(SystemClock)).await
}

async fn all<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(0, 100_000).await.unwrap()
}

pub async fn appends_and_reads_back_a_stream<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let s = stream("invoice");
    let events = vec![ev(1), ev(2), ev(3)];
    let result = store
        .append(vec![to(&s, ExpectedVersion::NoStream, events.clone())])
        .await
        .unwrap();
    let versions: Vec<i64> = result.events.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [0, 1, 2]);
    let positions: Vec<i64> = result.events.iter().map(|e| e.global_position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(store.head().await.unwrap(), result.last_position());

    let read = store.read_stream(&s, 0, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    for (got, sent) in read.iter().zip(&events) {
        assert_eq!(got.event_id, sent.event_id);
        assert_eq!(got.data, sent.data);
        assert_eq!(got.metadata, sent.metadata);
        assert_eq!(got.event_type, "Tested");
    }
    assert_eq!(
        store.read_stream(&s, 1, 1).await.unwrap()[0].stream_version,
        1
    );
    assert!(verify_stream(&store, &s).await.unwrap().is_empty());
}

pub async fn conflicts_are_typed_and_write_nothing<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let s = stream("invoice");
    store
        .append(vec![to(&s, ExpectedVersion::NoStream, vec![ev(1), ev(2)])])
        .await
        .unwrap();

    let cases = [
        (ExpectedVersion::NoStream, Some(1)),
        (ExpectedVersion::Exact(0), Some(1)),
        (ExpectedVersion::Exact(5), Some(1)),
    ];
    for (expected, actual) in cases {
        match store.append(vec![to(&s, expected, vec![ev(9)])]).await {
            Err(StoreError::Conflict {
                stream: got,
                expected: e,
                actual: a,
            }) => {
                assert_eq!((got, e, a), (s.clone(), expected, actual));
            }
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    let missing = stream("invoice");
    match store
        .append(vec![to(&missing, ExpectedVersion::Exact(0), vec![ev(1)])])
        .await
    {
        Err(StoreError::Conflict { actual: None, .. }) => {}
        other => panic!("expected a conflict on a missing stream, got {other:?}"),
    }
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 2);
    assert!(store
        .read_stream(&missing, 0, 100)
        .await
        .unwrap()
        .is_empty());

    store
        .append(vec![to(&s, ExpectedVersion::Exact(1), vec![ev(3)])])
        .await
        .unwrap();
    store
        .append(vec![to(&s, ExpectedVersion::Any, vec![ev(4)])])
        .await
        .unwrap();
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 4);
}

pub async fn identical_reappend_is_idempotent<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let (a, b) = (stream("invoice"), stream("invoice"));
    let append = vec![
        to(&a, ExpectedVersion::NoStream, vec![ev(1), ev(2)]),
        to(&b, ExpectedVersion::NoStream, vec![ev(3)]),
    ];
    let first = store.append(append.clone()).await.unwrap();
    // A retry after a lost response: same ids, same content, now-stale expectations.
    let again = store.append(append).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(all(&store).await.len(), 3);
}

pub async fn reused_event_id_with_other_content_is_refused<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let s = stream("invoice");
    let original = ev(1);
    store
        .append(vec![to(
            &s,
            ExpectedVersion::NoStream,
            vec![original.clone()],
        )])
        .await
        .unwrap();

    let mut changed = original.clone();
    changed.data = json!({ "n": 2 });
    let err = store
        .append(vec![to(&s, ExpectedVersion::Any, vec![changed])])
        .await;
    assert!(
        matches!(err, Err(StoreError::EventIdReused { event_id }) if event_id == original.event_id),
        "{err:?}"
    );
    // The same id on another stream is other content too.
    let elsewhere = store
        .append(vec![to(
            &stream("invoice"),
            ExpectedVersion::Any,
            vec![original.clone()],
        )])
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::EventIdReused { .. })),
        "{elsewhere:?}"
    );
    // A stored id mixed with new events is not a retry.
    let mixed = store
        .append(vec![to(
            &s,
            ExpectedVersion::Any,
            vec![original.clone(), ev(5)],
        )])
        .await;
    assert!(
        matches!(mixed, Err(StoreError::EventIdReused { .. })),
        "{mixed:?}"
    );
    // ... also when the new event comes first and is written before the stored id collides:
    // nothing of the append stays.
    let new_first = store
        .append(vec![
            to(&stream("client"), ExpectedVersion::NoStream, vec![ev(6)]),
            to(&s, ExpectedVersion::Any, vec![original]),
        ])
        .await;
    assert!(
        matches!(new_first, Err(StoreError::EventIdReused { .. })),
        "{new_first:?}"
    );
    assert_eq!(all(&store).await.len(), 1);
}

pub async fn several_streams_are_read_at_once_in_the_order_asked<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let (a, b, missing) = (stream("invoice"), stream("client"), stream("project"));
    store
        .append(vec![
            to(&a, ExpectedVersion::NoStream, vec![ev(1), ev(2)]),
            to(&b, ExpectedVersion::NoStream, vec![ev(3)]),
        ])
        .await
        .unwrap();
    store
        .append(vec![to(&a, ExpectedVersion::Exact(1), vec![ev(4)])])
        .await
        .unwrap();
    let read = store
        .read_streams(&[b.clone(), missing.clone(), a.clone()])
        .await
        .unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].len(), 1);
    assert!(read[1].is_empty());
    assert_eq!(
        read[2].iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(read[2].iter().all(|e| e.stream_id == a));
    assert_eq!(read[2], read_whole_stream(&store, &a).await.unwrap());
}

/// Twelve streams at once: more than the PostgreSQL store sends with a cached plan (see
/// `plan_per_array` in `store/src/postgres.rs`), read and appended again and again,
/// between reads of a few streams, and with a stale version among them.
pub async fn many_streams_are_read_and_appended_at_once<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let streams: Vec<StreamId> = (0..12).map(|_| stream("invoice")).collect();
    let missing = stream("invoice");
    for round in 0..8_i64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round - 1)
        };
        store
            .append(
                streams
                    .iter()
                    .map(|s| to(s, expected, vec![ev(round)]))
                    .collect(),
            )
            .await
            .unwrap();
        let mut asked = streams.clone();
        asked.insert(5, missing.clone());
        let read = store.read_streams(&asked).await.unwrap();
        assert_eq!(read.len(), 13);
        assert!(read[5].is_empty());
        for (s, events) in asked.iter().zip(&read) {
            assert_eq!(*events, read_whole_stream(&store, s).await.unwrap());
        }
        assert!(read
            .iter()
            .enumerate()
            .all(|(i, e)| i == 5 || e.len() == usize::try_from(round + 1).unwrap()));
        let few = store.read_streams(&streams[..2]).await.unwrap();
        assert_eq!(few, read[..2]);
    }
    let mut stale: Vec<AppendStream> = streams
        .iter()
        .map(|s| to(s, ExpectedVersion::Exact(7), vec![ev(100)]))
        .collect();
    stale[9] = to(&streams[9], ExpectedVersion::Exact(6), vec![ev(100)]);
    let err = store.append(stale).await;
    assert!(
        matches!(err, Err(StoreError::Conflict { ref stream, .. }) if *stream == streams[9]),
        "{err:?}"
    );
    assert_eq!(all(&store).await.len(), 96);
}

pub async fn multi_stream_append_is_atomic<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let (a, b, c) = (stream("invoice"), stream("invoice"), stream("firm"));
    store
        .append(vec![to(&b, ExpectedVersion::NoStream, vec![ev(1)])])
        .await
        .unwrap();

    // a is new and fine, b is stale, c is new and fine: nothing may land.
    let err = store
        .append(vec![
            to(&a, ExpectedVersion::NoStream, vec![ev(1)]),
            to(&b, ExpectedVersion::NoStream, vec![ev(2)]),
            to(&c, ExpectedVersion::NoStream, vec![ev(3)]),
        ])
        .await;
    assert!(
        matches!(err, Err(StoreError::Conflict { ref stream, .. }) if *stream == b),
        "{err:?}"
    );
    assert!(store.read_stream(&a, 0, 10).await.unwrap().is_empty());
    assert!(store.read_stream(&c, 0, 10).await.unwrap().is_empty());
    assert_eq!(all(&store).await.len(), 1);

    let ok = store
        .append(vec![
            to(&a, ExpectedVersion::NoStream, vec![ev(1)]),
            to(&b, ExpectedVersion::Exact(0), vec![ev(2)]),
            to(&c, ExpectedVersion::NoStream, vec![ev(3)]),
        ])
        .await
        .unwrap();
    let streams: Vec<&StreamId> = ok.events.iter().map(|e| &e.stream_id).collect();
    assert_eq!(streams, [&a, &b, &c]);
    assert_eq!(all(&store).await.len(), 4);
}

pub async fn all_is_read_in_order_in_pages<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let streams: Vec<StreamId> = (0..5).map(|_| stream("project")).collect();
    let mut sent = Vec::new();
    for round in 0..5 {
        for s in &streams {
            let e = ev(round);
            sent.push(e.event_id);
            store
                .append(vec![to(s, ExpectedVersion::Any, vec![e])])
                .await
                .unwrap();
        }
    }
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().global_position;
        paged.extend(page);
    }
    let ids: Vec<Uuid> = paged.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids, sent,
        "paging must return every event once, in commit order"
    );
    assert!(paged
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert!(store
        .read_all(store.head().await.unwrap(), 10)
        .await
        .unwrap()
        .is_empty());
    // The projectors' read of the same log: the same events, page for page, with the
    // payload as text and `recorded_at` in its canonical form.
    let mut payloads = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all_payloads(after, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        after = last.global_position;
        payloads.extend(page);
    }
    let expected: Vec<StoredPayload> = paged.into_iter().map(StoredPayload::from).collect();
    assert_eq!(payloads, expected);
    for p in &payloads {
        assert_eq!(p.recorded_at.len(), 27, "{}", p.recorded_at);
        let data: serde_json::Value = serde_json::from_str(&p.data).unwrap();
        assert!(data.is_object());
    }
}

pub async fn as_of_reads_stop_at_the_instant<H: Harness>(h: &H) {
    let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let clock = Arc::new(FixedClock::at(t0));
    let store = h.fresh(clock.clone()).await;
    let s = stream("invoice");
    store
        .append(vec![to(&s, ExpectedVersion::Any, vec![ev(1)])])
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    store
        .append(vec![to(&s, ExpectedVersion::Any, vec![ev(2), ev(3)])])
        .await
        .unwrap();
    clock.advance(Duration::hours(1));
    store
        .append(vec![to(&s, ExpectedVersion::Any, vec![ev(4)])])
        .await
        .unwrap();

    let n_at = |events: Vec<RecordedEvent>| {
        events
            .iter()
            .map(|e| e.data["n"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        n_at(
            store
                .read_all_until(t0 - Duration::seconds(1), 0, 100)
                .await
                .unwrap()
        ),
        Vec::<i64>::new()
    );
    assert_eq!(n_at(store.read_all_until(t0, 0, 100).await.unwrap()), [1]);
    assert_eq!(
        n_at(
            store
                .read_all_until(t0 + Duration::minutes(90), 0, 100)
                .await
                .unwrap()
        ),
        [1, 2, 3]
    );
    let first = store
        .read_all_until(t0 + Duration::hours(5), 0, 2)
        .await
        .unwrap();
    assert_eq!(n_at(first.clone()), [1, 2]);
    let rest = store
        .read_all_until(t0 + Duration::hours(5), first[1].global_position, 100)
        .await
        .unwrap();
    assert_eq!(n_at(rest), [3, 4]);
    assert_eq!(
        store.read_stream(&s, 0, 1).await.unwrap()[0].recorded_at,
        t0
    );

    // A clock that steps back never makes recorded_at go backwards in position order.
    clock.set(t0 - Duration::days(1));
    store
        .append(vec![to(&s, ExpectedVersion::Any, vec![ev(5)])])
        .await
        .unwrap();
    let events = all(&store).await;
    assert!(events
        .windows(2)
        .all(|w| w[0].recorded_at <= w[1].recorded_at));
}

pub async fn a_modified_row_breaks_the_chain<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let (s, other) = (stream("invoice"), stream("invoice"));
    store
        .append(vec![to(
            &s,
            ExpectedVersion::NoStream,
            vec![ev(10), ev(11), ev(12), ev(13)],
        )])
        .await
        .unwrap();
    store
        .append(vec![to(
            &other,
            ExpectedVersion::NoStream,
            vec![ev(20), ev(21)],
        )])
        .await
        .unwrap();
    assert!(verify_all(&store).await.unwrap().0.is_empty());

    h.tamper_data(&store, &s, 2).await;
    let problems = verify_stream(&store, &s).await.unwrap();
    assert!(
        matches!(problems.as_slice(), [ChainProblem::HashMismatch { stream, version: 2, .. }] if *stream == s),
        "{problems:?}"
    );
    let (everywhere, checked) = verify_all(&store).await.unwrap();
    assert_eq!(everywhere, problems, "only the altered event is reported");
    assert_eq!(checked, 6);

    h.delete_event(&store, &other, 0).await;
    let problems = verify_stream(&store, &other).await.unwrap();
    assert!(
        problems.iter().any(|p| matches!(
            p,
            ChainProblem::VersionGap {
                expected: 0,
                found: 1,
                ..
            }
        )),
        "{problems:?}"
    );
}

/// Many tasks append to overlapping streams, each with the version it last read. Every
/// success must be stored exactly once, versions must stay contiguous, and every failure
/// must be a typed conflict.
pub async fn concurrent_appends_lose_nothing_and_duplicate_nothing<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let streams: Arc<Vec<StreamId>> = Arc::new((0..4).map(|_| stream("invoice")).collect());
    let mut tasks = Vec::new();
    for task in 0..16usize {
        let store = store.clone();
        let streams = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut conflicts = 0u32;
            for i in 0..12usize {
                // Half the appends span two streams, to exercise multi-stream atomicity.
                let picks: Vec<&StreamId> = if i % 2 == 0 {
                    vec![&streams[(task + i) % 4]]
                } else {
                    vec![&streams[(task + i) % 4], &streams[(task + i + 1) % 4]]
                };
                loop {
                    let mut append = Vec::new();
                    for s in &picks {
                        let last = store
                            .read_stream(s, 0, 10_000)
                            .await
                            .unwrap()
                            .last()
                            .map(|e| e.stream_version);
                        append.push(to(
                            s,
                            ExpectedVersion::from_last_seen(last),
                            vec![ev(i64::try_from(task * 100 + i).unwrap())],
                        ));
                    }
                    let ids: Vec<Uuid> = append.iter().map(|a| a.events[0].event_id).collect();
                    match store.append(append).await {
                        Ok(_) => {
                            acknowledged.extend(ids);
                            break;
                        }
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("an untyped failure under contention: {other:?}"),
                    }
                }
            }
            (acknowledged, conflicts)
        }));
    }
    let mut acknowledged = HashSet::new();
    for t in tasks {
        let (ids, _conflicts) = t.await.unwrap();
        for id in ids {
            assert!(
                acknowledged.insert(id),
                "an event id was acknowledged twice"
            );
        }
    }
    let stored = all(&store).await;
    let stored_ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored.len(), stored_ids.len(), "an event was stored twice");
    assert_eq!(
        stored_ids, acknowledged,
        "stored events and acknowledged appends differ"
    );
    let mut versions: BTreeMap<&StreamId, Vec<i64>> = BTreeMap::new();
    for e in &stored {
        versions
            .entry(&e.stream_id)
            .or_default()
            .push(e.stream_version);
    }
    for (s, v) in versions {
        let expected: Vec<i64> = (0..i64::try_from(v.len()).unwrap()).collect();
        assert_eq!(
            v, expected,
            "versions of {s} are not contiguous in position order"
        );
    }
    assert!(verify_all(&store).await.unwrap().0.is_empty());
}

/// Writers append concurrently while a reader tails `$all` by position, as projectors do.
/// A commit that becomes visible after a higher position was read would be skipped for
/// good; the reader must see every acknowledged event exactly once, in position order.
/// 64 appends at once, a quarter of them claiming one new stream: the store may commit
/// them in groups (SQLite does), but a conflicting append fails alone, every other one
/// commits, and the chains verify.
pub async fn a_failing_append_fails_alone_among_concurrent_ones<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let contested = stream("invoice");
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        let store = store.clone();
        let contested = contested.clone();
        tasks.push(tokio::spawn(async move {
            let claims = i % 4 == 0;
            let target = if claims { contested } else { stream("client") };
            store
                .append(vec![to(&target, ExpectedVersion::NoStream, vec![ev(i)])])
                .await
                .map(|_| claims)
        }));
    }
    let (mut won, mut others, mut conflicts) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => won += 1,
            Ok(false) => others += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, others, conflicts), (1, 48, 15));
    let log = all(&store).await;
    assert_eq!(log.len(), 49);
    let positions: Vec<i64> = log.iter().map(|e| e.global_position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert!(verify_all(&store).await.unwrap().0.is_empty());
}

pub async fn a_tailing_reader_sees_every_event_once_in_order<H: Harness>(h: &H) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 40;
    let store = fresh(h).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = store.read_all(after, 50).await.unwrap();
                for e in &page {
                    seen.push((e.global_position, e.event_id));
                    after = e.global_position;
                }
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the reader never caught up"
                    );
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..APPENDS {
                    // One stream per writer: this test is about $all, not stream conflicts.
                    let s = StreamId::from_stored(format!("tail-{w}"));
                    let e = ev(i64::try_from(w * 1000 + i).unwrap());
                    ids.push(e.event_id);
                    store
                        .append(vec![to(&s, ExpectedVersion::Any, vec![e])])
                        .await
                        .unwrap();
                }
                ids
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "positions out of order"
    );
    let seen_ids: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    let unique: HashSet<Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was delivered twice");
    assert_eq!(
        unique, acknowledged,
        "the reader missed acknowledged events"
    );
}

pub async fn subscribers_are_told_of_commits<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let mut rx = store.subscribe();
    let before = *rx.borrow_and_update();
    let result = store
        .append(vec![to(&stream("firm"), ExpectedVersion::Any, vec![ev(1)])])
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
        .await
        .expect("no notification within 5 s")
        .unwrap();
    let seen = *rx.borrow();
    assert!(seen >= result.last_position() && seen > before);
    // A failed append publishes nothing.
    let _ = store
        .append(vec![to(
            &stream("firm"),
            ExpectedVersion::Exact(3),
            vec![ev(2)],
        )])
        .await;
    assert!(!rx.has_changed().unwrap());
}

pub async fn old_schema_versions_are_upcast_on_read<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let s = stream("firm");
    let firm_id = Uuid::now_v7();
    let v1 = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "FirmRegistered".into(),
        schema_version: 1,
        data: json!({ "firm_id": firm_id, "name": "Old Firm", "logo_url": null }),
        metadata: meta(),
    };
    store
        .append(vec![to(&s, ExpectedVersion::NoStream, vec![v1])])
        .await
        .unwrap();
    let stored = &store.read_stream(&s, 0, 1).await.unwrap()[0];
    assert_eq!(stored.schema_version, 1, "the log keeps what was written");
    match stored.decode().unwrap() {
        portico_domain::Event::FirmRegistered {
            time_zone,
            firm_id: id,
            ..
        } => {
            assert_eq!(time_zone.name(), "UTC");
            assert_eq!(id.as_uuid(), firm_id);
        }
        other => panic!("decoded to {other:?}"),
    }
    let payload = &store.read_all_payloads(0, 1).await.unwrap()[0];
    assert_eq!(payload.schema_version, 1);
    assert_eq!(
        portico_domain::events::decode_json(
            &payload.event_type,
            payload.schema_version,
            &payload.data
        )
        .unwrap(),
        stored.decode().unwrap()
    );
}

pub async fn invalid_appends_are_refused<H: Harness>(h: &H) {
    let store = fresh(h).await;
    let s = stream("firm");
    let e = ev(1);
    let cases = vec![
        vec![],
        vec![to(&s, ExpectedVersion::Any, vec![])],
        vec![
            to(&s, ExpectedVersion::Any, vec![ev(1)]),
            to(&s, ExpectedVersion::Any, vec![ev(2)]),
        ],
        vec![to(&s, ExpectedVersion::Any, vec![e.clone(), e])],
    ];
    for case in cases {
        let r = store.append(case.clone()).await;
        assert!(
            matches!(r, Err(StoreError::InvalidAppend(_))),
            "{case:?} gave {r:?}"
        );
    }
    assert!(all(&store).await.is_empty());
}

/// What the property test does to a store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Append `count` events to streams (indexes into a small set), each with the
    /// expected-version kind 0 = NoStream, 1 = Exact(model), 2 = Exact(model + 1),
    /// 3 = Any.
    Append(Vec<(usize, u8, usize)>),
    /// Re-send the n-th successful append.
    Retry(usize),
}

/// Runs `ops` against a store and against a plain in-memory model; they must agree on
/// every outcome and on the final contents.
pub async fn agrees_with_a_model<S: EventStore>(store: &S, ops: Vec<Op>) {
    let names: Vec<StreamId> = (0..3).map(|_| stream("model")).collect();
    let mut model: Vec<Vec<Uuid>> = vec![Vec::new(); 3];
    let mut successes: Vec<(Vec<AppendStream>, AppendResult)> = Vec::new();
    for op in ops {
        match op {
            Op::Append(parts) => {
                let mut seen = HashSet::new();
                let parts: Vec<_> = parts
                    .into_iter()
                    .filter(|(i, _, _)| seen.insert(*i))
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let append: Vec<AppendStream> = parts
                    .iter()
                    .map(|(i, kind, count)| {
                        let last = i64::try_from(model[*i].len()).unwrap() - 1;
                        let expected = match kind {
                            0 => ExpectedVersion::NoStream,
                            1 if last >= 0 => ExpectedVersion::Exact(last),
                            1 => ExpectedVersion::NoStream,
                            2 => ExpectedVersion::Exact(last + 1),
                            _ => ExpectedVersion::Any,
                        };
                        to(
                            &names[*i],
                            expected,
                            (0..*count).map(|n| ev(i64::try_from(n).unwrap())).collect(),
                        )
                    })
                    .collect();
                let model_ok = parts.iter().zip(&append).all(|((i, _, _), a)| {
                    let actual = (!model[*i].is_empty())
                        .then(|| i64::try_from(model[*i].len()).unwrap() - 1);
                    a.expected.admits(actual)
                });
                let result = store.append(append.clone()).await;
                match (model_ok, result) {
                    (true, Ok(r)) => {
                        for ((i, _, _), a) in parts.iter().zip(&append) {
                            model[*i].extend(a.events.iter().map(|e| e.event_id));
                        }
                        successes.push((append, r));
                    }
                    (false, Err(StoreError::Conflict { .. })) => {}
                    (m, r) => panic!("model said {m}, store said {r:?}"),
                }
            }
            Op::Retry(n) => {
                if successes.is_empty() {
                    continue;
                }
                let (append, first) = successes[n % successes.len()].clone();
                assert_eq!(store.append(append).await.unwrap(), first);
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        let stored: Vec<Uuid> = store
            .read_stream(name, 0, 10_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(stored, model[i]);
    }
}
