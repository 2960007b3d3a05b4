//! The command path (load → decide → append → retry) on real SQLite, with real domain
//! commands: uniqueness across streams, racing bulk payments, bounded retries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use chrono::NaiveDate;
use portico_domain::clock::TimeZone;
use portico_domain::error::{DomainError, PaymentProblem};
use portico_domain::firm::Firm;
use portico_domain::ids::*;
use portico_domain::invoice::{Invoice, IssueInvoice};
use portico_domain::project::Project;
use portico_domain::streams::StreamId;
use portico_domain::submission::{submit, PaymentLine};
use portico_domain::values::{InvoiceNumber, Name};
use portico_domain::{Currency, Event, Money, Scope};
use portico_store::command::{execute, CommandError, MAX_ATTEMPTS};
use portico_store::sqlite::SqliteEventStore;
use portico_store::{
    read_whole_stream, AppendStream, EventStore, ExpectedVersion, Metadata, NewEvent,
};

struct World {
    _dir: tempfile::TempDir,
    store: SqliteEventStore,
    firm: FirmId,
    client: ClientId,
    project: ProjectId,
}

fn usd(s: &str) -> Money {
    Money::parse(s, Currency::parse("USD").unwrap()).unwrap()
}

fn meta(firm: FirmId) -> Metadata {
    Metadata::new(Some(firm), format!("firm:{firm}"))
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(&dir.path().join("p.db"))
        .await
        .unwrap();
    let (firm, client, project) = (FirmId::new(), ClientId::new(), ProjectId::new());
    let name = |s| Name::parse("name", s).unwrap();
    let setup = [
        Event::FirmRegistered {
            firm_id: firm,
            name: name("Acme"),
            logo_url: None,
            time_zone: TimeZone::UTC,
            locale: portico_domain::values::Locale::default_locale(),
        },
        Event::ClientAdded {
            firm_id: firm,
            client_id: client,
            name: name("Client Co"),
        },
        Event::ProjectCreated {
            firm_id: firm,
            client_id: client,
            project_id: project,
            name: name("Audit"),
        },
    ];
    for e in &setup {
        store
            .append(vec![AppendStream {
                stream_id: e.stream_id(),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent::from_domain(e, meta(firm))],
            }])
            .await
            .unwrap();
    }
    World {
        _dir: dir,
        store,
        firm,
        client,
        project,
    }
}

async fn issue(w: &World, number: &str, total: &str) -> Result<InvoiceId, CommandError> {
    let invoice_id = InvoiceId::new();
    let cmd = IssueInvoice {
        invoice_id,
        client_id: w.client,
        project_id: w.project,
        number: InvoiceNumber::parse(number).unwrap(),
        issued_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        due_on: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        total: usd(total),
    };
    let streams = [
        StreamId::firm(w.firm),
        StreamId::project(w.project),
        StreamId::invoice(invoice_id),
        StreamId::invoice_number(w.firm, &cmd.number),
    ];
    execute(&w.store, &streams, &meta(w.firm), |l| {
        l.replay::<Invoice>(&streams[2]).issue(
            &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
            &l.replay::<Project>(&streams[1]),
            cmd.clone(),
        )
    })
    .await?;
    Ok(invoice_id)
}

/// Pays each invoice the amount the checkout showed (its total here).
async fn pay(w: &World, invoices: &[(InvoiceId, &str)]) -> Result<i64, CommandError> {
    let streams: Vec<StreamId> = invoices
        .iter()
        .map(|(i, _)| StreamId::invoice(*i))
        .collect();
    let scope = Scope::Client {
        firm_id: w.firm,
        client_id: w.client,
    };
    let submission = SubmissionId::new();
    let committed = execute(&w.store, &streams, &meta(w.firm), |l| {
        let states: Vec<Invoice> = streams.iter().map(|s| l.replay::<Invoice>(s)).collect();
        let lines: Vec<PaymentLine> = states
            .iter()
            .zip(invoices)
            .map(|(inv, (_, amount))| PaymentLine {
                invoice: inv,
                payment_id: PaymentId::new(),
                amount: usd(amount),
            })
            .collect();
        submit(&scope, submission, "card", &lines)
    })
    .await?;
    Ok(committed.last_position())
}

async fn invoice_state(w: &World, id: InvoiceId) -> Invoice {
    let events: Vec<Event> = read_whole_stream(&w.store, &StreamId::invoice(id))
        .await
        .unwrap()
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    portico_domain::Aggregate::replay(&events)
}

#[tokio::test]
async fn issuing_writes_the_invoice_and_its_number_reservation_together() {
    let w = world().await;
    let firm_before = read_whole_stream(&w.store, &StreamId::firm(w.firm))
        .await
        .unwrap();
    let id = issue(&w, "INV-1", "100.00").await.unwrap();
    let number = portico_domain::values::InvoiceNumber::parse("INV-1").unwrap();
    let reservation = read_whole_stream(&w.store, &StreamId::invoice_number(w.firm, &number))
        .await
        .unwrap();
    let invoice_stream = read_whole_stream(&w.store, &StreamId::invoice(id))
        .await
        .unwrap();
    assert_eq!(reservation.len(), 1);
    assert_eq!(reservation[0].event_type, "InvoiceNumberReserved");
    assert_eq!(invoice_stream.len(), 1);
    assert_eq!(
        reservation[0].global_position + 1,
        invoice_stream[0].global_position,
        "one append"
    );
    assert_eq!(
        read_whole_stream(&w.store, &StreamId::firm(w.firm))
            .await
            .unwrap()
            .len(),
        firm_before.len(),
        "the firm stream is only read"
    );
    assert!(matches!(
        issue(&w, "INV-1", "5.00").await,
        Err(CommandError::Domain(DomainError::DuplicateInvoiceNumber(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_invoices_with_one_number_yield_exactly_one_invoice() {
    let w = Arc::new(world().await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move { issue(&w, "INV-RACE", "10.00").await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(CommandError::Domain(DomainError::DuplicateInvoiceNumber(_))) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_submissions_racing_for_an_invoice_never_pay_it_twice() {
    let w = Arc::new(world().await);
    // Several rounds, so that both orders and true interleavings (a conflict, then a
    // fresh decision) occur.
    for round in 0..10 {
        let shared = issue(&w, &format!("INV-S{round}"), "100.00").await.unwrap();
        let a_only = issue(&w, &format!("INV-A{round}"), "50.00").await.unwrap();
        let b_only = issue(&w, &format!("INV-B{round}"), "70.00").await.unwrap();
        let (wa, wb) = (w.clone(), w.clone());
        let a =
            tokio::spawn(async move { pay(&wa, &[(a_only, "50.00"), (shared, "100.00")]).await });
        let b =
            tokio::spawn(async move { pay(&wb, &[(shared, "100.00"), (b_only, "70.00")]).await });
        let results = [a.await.unwrap(), b.await.unwrap()];
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        match loser {
            CommandError::Domain(DomainError::SubmissionRejected(rejections)) => {
                assert_eq!(rejections.len(), 1);
                assert_eq!(rejections[0].invoice_id, shared);
                assert!(matches!(
                    rejections[0].problem,
                    PaymentProblem::ExceedsBalance { .. }
                ));
            }
            other => panic!("the loser should be told which invoice is at stake, got {other:?}"),
        }
        let shared_state = invoice_state(&w, shared).await;
        assert_eq!(shared_state.payments.len(), 1);
        assert_eq!(shared_state.pending(), Some(usd("100.00")));
        // The loser's other invoice was not touched either: all or nothing.
        let untouched = if results[0].is_ok() { b_only } else { a_only };
        assert!(invoice_state(&w, untouched).await.payments.is_empty());
    }
}

/// The real store, with another writer that always gets to the stream first: every
/// append it is asked for is preceded by an interloping append to the same streams.
#[derive(Debug, Clone)]
struct Contended(SqliteEventStore);

#[async_trait::async_trait]
impl EventStore for Contended {
    async fn append(
        &self,
        streams: Vec<AppendStream>,
    ) -> portico_store::StoreResult<portico_store::AppendResult> {
        for s in &streams {
            let mut e = s.events[0].clone();
            e.event_id = uuid::Uuid::now_v7();
            self.0
                .append(vec![AppendStream {
                    stream_id: s.stream_id.clone(),
                    expected: ExpectedVersion::Any,
                    events: vec![e],
                }])
                .await?;
        }
        self.0.append(streams).await
    }
    async fn read_stream(
        &self,
        s: &StreamId,
        from: i64,
        limit: u32,
    ) -> portico_store::StoreResult<Vec<portico_store::RecordedEvent>> {
        self.0.read_stream(s, from, limit).await
    }
    async fn read_all(
        &self,
        after: i64,
        limit: u32,
    ) -> portico_store::StoreResult<Vec<portico_store::RecordedEvent>> {
        self.0.read_all(after, limit).await
    }
    async fn read_all_until(
        &self,
        until: chrono::DateTime<chrono::Utc>,
        after: i64,
        limit: u32,
    ) -> portico_store::StoreResult<Vec<portico_store::RecordedEvent>> {
        self.0.read_all_until(until, after, limit).await
    }
    async fn head(&self) -> portico_store::StoreResult<i64> {
        self.0.head().await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.0.subscribe()
    }
}

#[tokio::test]
async fn a_command_that_keeps_conflicting_gives_up_after_a_bounded_number_of_attempts() {
    let w = world().await;
    let stream = StreamId::client(w.client);
    let contended = Contended(w.store.clone());
    let decisions = std::sync::atomic::AtomicU32::new(0);
    let result = execute(
        &contended,
        std::slice::from_ref(&stream),
        &meta(w.firm),
        |_| {
            decisions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![Event::ClientAdded {
                firm_id: w.firm,
                client_id: w.client,
                name: Name::parse("name", "Renamed").unwrap(),
            }])
        },
    )
    .await;
    assert!(
        matches!(result, Err(CommandError::Conflict { ref stream, attempts: MAX_ATTEMPTS }) if *stream == StreamId::client(w.client)),
        "{result:?}"
    );
    assert_eq!(
        decisions.load(std::sync::atomic::Ordering::SeqCst),
        MAX_ATTEMPTS
    );
    // Only the interloper's events landed: one per attempt, after the original.
    let stored = read_whole_stream(&w.store, &stream).await.unwrap();
    assert_eq!(stored.len(), 1 + MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_command_that_decides_nothing_appends_nothing() {
    let w = world().await;
    let head = w.store.head().await.unwrap();
    let committed = execute(&w.store, &[StreamId::firm(w.firm)], &meta(w.firm), |_| {
        Ok(vec![])
    })
    .await
    .unwrap();
    assert_eq!(committed.last_position(), 0);
    assert_eq!(w.store.head().await.unwrap(), head);
}
