//! The read models on both backends: exactly-once, rebuild, derived status, summaries,
//! tenant scoping. Every case runs on SQLite, and on PostgreSQL when
//! `PORTICO_TEST_POSTGRES_URL` is set; each test has a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use portico_domain::aggregate::Aggregate;
use portico_domain::ids::{ClientId, FirmId};
use portico_domain::invoice::{Invoice, InvoiceStatus as DomainStatus};
use portico_domain::Event;
use portico_projections::dump::{dump_live, fresh_replay, Dump};
use portico_projections::projector::TableSet;
use portico_projections::queries::{self, ClientScope, InvoiceStatus, PaymentsOf};
use portico_projections::rebuild::rebuild;
use portico_projections::runner::{apply_batch, decode_page};
use portico_projections::simulate::Simulation;
use portico_projections::{projectors, Db, Runner};
use portico_store::testing::PgTestDatabase;
use portico_store::EventStore;
use proptest::prelude::*;

struct Env {
    db: Db,
    store: Arc<dyn EventStore>,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<PgTestDatabase>,
}

impl Env {
    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(dir.path().join("rm.db").to_str().unwrap())
            .await
            .unwrap();
        let store = db.event_store().await.unwrap();
        Env {
            db,
            store,
            _sqlite: Some(dir),
            _postgres: None,
        }
    }

    async fn postgres() -> Option<Env> {
        let pg = PgTestDatabase::create().await?;
        let db = Db::connect(&pg.url).await.unwrap();
        let store = db.event_store().await.unwrap();
        Some(Env {
            db,
            store,
            _sqlite: None,
            _postgres: Some(pg),
        })
    }

    fn runner(&self) -> Runner {
        Runner::new(self.db.clone(), self.store.clone(), projectors::all())
    }

    async fn simulate(&self, seed: u64, commands: usize) -> Simulation {
        let mut sim = Simulation::new(seed);
        sim.run(self.store.as_ref(), commands).await.unwrap();
        sim
    }

    /// Runs a simulation, folds it with the runner, and returns every projector's live
    /// tables by name.
    async fn simulated_and_folded(
        &self,
        seed: u64,
        commands: usize,
    ) -> BTreeMap<&'static str, Dump> {
        self.simulate(seed, commands).await;
        let runner = self.runner();
        runner.prepare().await.unwrap();
        runner.catch_up().await.unwrap();
        let mut folded = BTreeMap::new();
        for p in projectors::all() {
            folded.insert(p.name(), dump_live(&self.db, p.as_ref()).await.unwrap());
        }
        folded
    }

    /// Every projector's live tables against a replay of the whole log into a scratch
    /// SQLite database.
    async fn assert_equal_to_fresh_replay(&self) {
        let scratch_dir = tempfile::tempdir().unwrap();
        let scratch = Db::connect(scratch_dir.path().join("scratch.db").to_str().unwrap())
            .await
            .unwrap();
        for p in projectors::all() {
            let live = dump_live(&self.db, p.as_ref()).await.unwrap();
            let fresh = fresh_replay(&scratch, self.store.as_ref(), p.as_ref())
                .await
                .unwrap();
            assert_eq!(
                live,
                fresh,
                "projection {} differs from a fresh replay",
                p.name()
            );
        }
    }
}

macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(&super::Env::sqlite().await).await;
            }
        )+}
        mod postgres {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(env) = super::Env::postgres().await {
                    super::$case(&env).await;
                }
            }
        )+}
    };
}

on_both_backends!(
    rebuilt_from_zero_equals_built_incrementally,
    stopping_between_or_inside_batches_never_double_applies_or_skips,
    a_killed_runner_resumes_from_its_checkpoint,
    an_invoice_turns_past_due_the_day_after_its_due_date_with_no_new_event,
    summary_figures_equal_a_brute_force_recomputation,
    a_query_scoped_to_one_client_never_returns_another_clients_rows,
    a_rebuild_while_queries_run_answers_every_query_and_ends_equal_to_a_fresh_replay,
    a_projector_of_a_new_version_is_rebuilt_when_the_runner_starts,
    a_client_can_wait_for_its_own_write,
    every_kind_of_event_rebuilds_to_what_the_runner_folded,
    a_rebuild_a_unique_index_refuses_fails_and_leaves_the_live_read_models_as_they_were,
);

async fn rebuilt_from_zero_equals_built_incrementally(env: &Env) {
    let runner = env.runner().with_page_size(17);
    runner.prepare().await.unwrap();
    let mut sim = Simulation::new(7);
    // Interleave writing and projecting, so batches end in arbitrary places.
    for _ in 0..6 {
        sim.run(env.store.as_ref(), 40).await.unwrap();
        runner.step().await.unwrap();
    }
    runner.catch_up().await.unwrap();
    let mut incremental = BTreeMap::new();
    for p in projectors::all() {
        incremental.insert(p.name(), dump_live(&env.db, p.as_ref()).await.unwrap());
    }
    for p in projectors::all() {
        let report = rebuild(&env.db, env.store.as_ref(), p.as_ref(), |_| {})
            .await
            .unwrap();
        assert_eq!(report.generation, 1);
        assert_eq!(report.position, env.store.head().await.unwrap());
        let rebuilt = dump_live(&env.db, p.as_ref()).await.unwrap();
        assert_eq!(
            rebuilt,
            incremental[p.name()],
            "{} differs after a rebuild",
            p.name()
        );
    }
    assert!(
        incremental["invoices"]["invoices"].len() > 10,
        "the history is too small to prove anything"
    );
    // A second rebuild swaps in generation 2 without tripping over generation 1's indexes.
    let p = projectors::by_name("invoices").unwrap();
    assert_eq!(
        rebuild(&env.db, env.store.as_ref(), p.as_ref(), |_| {})
            .await
            .unwrap()
            .generation,
        2
    );
    assert_eq!(
        dump_live(&env.db, p.as_ref()).await.unwrap(),
        incremental["invoices"]
    );
}

/// A hand-made history with every event each projector folds, including the rare turns a
/// simulation seldom reaches (a full refund, a revoke of an older invite, a member of an
/// unknown project, events about rows that do not exist): a rebuild (in memory on SQLite)
/// leaves exactly the rows the runner's statements left.
async fn every_kind_of_event_rebuilds_to_what_the_runner_folded(env: &Env) {
    use portico_domain::clock::TimeZone;
    use portico_domain::ids::*;
    use portico_domain::values::{Email, InvoiceNumber, Locale, Name, Url};
    use portico_domain::{Currency, Money};
    use portico_store::{AppendStream, ExpectedVersion, Metadata, NewEvent};

    let runner = env.runner();
    runner.prepare().await.unwrap();
    let name = |s: &str| Name::parse("name", s).unwrap();
    let email = |s: &str| Email::parse(s).unwrap();
    let usd = |minor: i64| Money::from_minor(minor, Currency::parse("USD").unwrap()).unwrap();
    let eur = |minor: i64| Money::from_minor(minor, Currency::parse("EUR").unwrap()).unwrap();
    let (firm, client, project) = (FirmId::new(), ClientId::new(), ProjectId::new());
    let (ann, bob, cy) = (ContactId::new(), ContactId::new(), ContactId::new());
    let (old_invite, new_invite) = (InviteId::new(), InviteId::new());
    let (bob_first, bob_second, cy_invite) = (InviteId::new(), InviteId::new(), InviteId::new());
    let (lead, junior) = (MemberId::new(), MemberId::new());
    let invoices: Vec<InvoiceId> = (0..4).map(|_| InvoiceId::new()).collect();
    let payments: Vec<PaymentId> = (0..5).map(|_| PaymentId::new()).collect();
    let submission = SubmissionId::new();
    let expires = chrono::DateTime::parse_from_rfc3339("2026-12-10T09:30:00.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let issue =
        |invoice: InvoiceId, project_id: ProjectId, n: &str, total: Money| Event::InvoiceIssued {
            firm_id: firm,
            client_id: client,
            project_id,
            invoice_id: invoice,
            number: InvoiceNumber::parse(n).unwrap(),
            issued_on: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            total,
        };
    let pay = |payment: PaymentId, invoice: InvoiceId, amount: Money| Event::PaymentSubmitted {
        firm_id: firm,
        invoice_id: invoice,
        client_id: client,
        payment_id: payment,
        submission_id: submission,
        amount,
        method: "card".to_owned(),
    };
    let history = vec![
        Event::FirmRegistered {
            firm_id: firm,
            name: name("Acme"),
            logo_url: None,
            time_zone: TimeZone::parse("Europe/London").unwrap(),
            locale: Locale::default_locale(),
        },
        Event::FirmProfileUpdated {
            firm_id: firm,
            name: name("Acme & Co"),
            logo_url: Some(Url::parse("logo_url", "https://acme.example/logo.svg").unwrap()),
        },
        Event::FirmProfileUpdated {
            firm_id: FirmId::new(),
            name: name("Nobody"),
            logo_url: None,
        },
        Event::ClientAdded {
            firm_id: firm,
            client_id: client,
            name: name("Client"),
        },
        Event::ContactAdded {
            firm_id: firm,
            client_id: client,
            contact_id: ann,
            name: name("Ann"),
            email: email("ann@client.example"),
        },
        Event::ContactAdded {
            firm_id: firm,
            client_id: client,
            contact_id: bob,
            name: name("Bob"),
            email: email("bob@client.example"),
        },
        Event::InviteSent {
            contact_id: ann,
            invite_id: old_invite,
            expires_at: expires,
        },
        Event::InviteSent {
            contact_id: ann,
            invite_id: new_invite,
            expires_at: expires,
        },
        Event::InviteRevoked {
            contact_id: ann,
            invite_id: old_invite,
        },
        Event::AccountCreated {
            contact_id: ann,
            invite_id: new_invite,
            username: email("ann@client.example"),
        },
        Event::PasswordChanged { contact_id: ann },
        // Revoking an older invite leaves the newer one pending.
        Event::InviteSent {
            contact_id: bob,
            invite_id: bob_first,
            expires_at: expires,
        },
        Event::InviteSent {
            contact_id: bob,
            invite_id: bob_second,
            expires_at: expires,
        },
        Event::InviteRevoked {
            contact_id: bob,
            invite_id: bob_first,
        },
        Event::ContactDeactivated { contact_id: bob },
        Event::ContactAdded {
            firm_id: firm,
            client_id: client,
            contact_id: cy,
            name: name("Cy"),
            email: email("cy@client.example"),
        },
        Event::InviteSent {
            contact_id: cy,
            invite_id: cy_invite,
            expires_at: expires,
        },
        Event::InviteRevoked {
            contact_id: cy,
            invite_id: cy_invite,
        },
        Event::PasswordChanged {
            contact_id: ContactId::new(),
        },
        Event::ProjectCreated {
            firm_id: firm,
            client_id: client,
            project_id: project,
            name: name("Audit 2026"),
        },
        Event::TeamMemberAssigned {
            project_id: project,
            member_id: lead,
            name: name("Lee"),
            role: name("Partner"),
            email: email("lee@firm.example"),
        },
        Event::TeamMemberAssigned {
            project_id: project,
            member_id: junior,
            name: name("Jo"),
            role: name("Associate"),
            email: email("jo@firm.example"),
        },
        Event::TeamMemberAssigned {
            project_id: ProjectId::new(),
            member_id: lead,
            name: name("Lee"),
            role: name("Partner"),
            email: email("lee@firm.example"),
        },
        Event::TeamMemberUnassigned {
            project_id: project,
            member_id: junior,
        },
        issue(invoices[0], project, "INV-1", usd(10_000)),
        issue(invoices[1], project, "INV-2", usd(25_050)),
        // An invoice of a project the invoices projector never saw: an empty project name.
        issue(invoices[2], ProjectId::new(), "INV-3", eur(7_000)),
        issue(invoices[3], project, "INV-4", usd(1_000)),
        Event::InvoiceVoided {
            invoice_id: invoices[3],
            reason: "issued in error".to_owned(),
        },
        pay(payments[0], invoices[0], usd(10_000)),
        pay(payments[1], invoices[1], usd(5_000)),
        pay(payments[2], invoices[1], usd(20_050)),
        pay(payments[3], invoices[2], eur(7_000)),
        Event::PaymentSettled {
            invoice_id: invoices[0],
            payment_id: payments[0],
            amount: usd(10_000),
        },
        Event::PaymentSettled {
            invoice_id: invoices[1],
            payment_id: payments[1],
            amount: usd(5_000),
        },
        Event::PaymentFailed {
            invoice_id: invoices[1],
            payment_id: payments[2],
            amount: usd(20_050),
            reason: "card declined".to_owned(),
        },
        Event::PaymentSettled {
            invoice_id: invoices[2],
            payment_id: payments[3],
            amount: eur(7_000),
        },
        // A partial refund, then the rest: the payment ends refunded.
        Event::PaymentRefunded {
            invoice_id: invoices[0],
            payment_id: payments[0],
            amount: usd(4_000),
        },
        Event::PaymentRefunded {
            invoice_id: invoices[0],
            payment_id: payments[0],
            amount: usd(6_000),
        },
        Event::PaymentRefunded {
            invoice_id: invoices[2],
            payment_id: payments[3],
            amount: eur(100),
        },
        Event::PaymentSettled {
            invoice_id: InvoiceId::new(),
            payment_id: payments[4],
            amount: usd(1),
        },
    ];
    for (i, event) in history.iter().enumerate() {
        let actor = if i % 2 == 0 {
            "firm:test"
        } else {
            "contact:test"
        };
        env.store
            .append(vec![AppendStream {
                stream_id: event.stream_id(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::from_domain(
                    event,
                    Metadata::new(Some(firm), actor),
                )],
            }])
            .await
            .unwrap();
    }
    runner.catch_up().await.unwrap();
    for p in projectors::all() {
        let incremental = dump_live(&env.db, p.as_ref()).await.unwrap();
        assert!(
            incremental.values().any(|rows| !rows.is_empty()),
            "{} folded nothing",
            p.name()
        );
        rebuild(&env.db, env.store.as_ref(), p.as_ref(), |_| {})
            .await
            .unwrap();
        assert_eq!(
            dump_live(&env.db, p.as_ref()).await.unwrap(),
            incremental,
            "{} differs after a rebuild",
            p.name()
        );
    }
    let payments_rows = &dump_live(&env.db, projectors::by_name("payments").unwrap().as_ref())
        .await
        .unwrap()["payments"];
    assert!(
        format!("{payments_rows:?}").contains("refunded"),
        "the history has a fully refunded payment"
    );
}

/// A log the domain would never write (two invoices of one firm with the same number,
/// appended past the domain): rebuilding every projector at once fails with the unique
/// index's error, the live read models stay as they were, the projectors not involved still
/// rebuild afterwards, and the failed generation is cleared by the next rebuild.
async fn a_rebuild_a_unique_index_refuses_fails_and_leaves_the_live_read_models_as_they_were(
    env: &Env,
) {
    use portico_domain::ids::{InvoiceId, ProjectId};
    use portico_domain::values::InvoiceNumber;
    use portico_domain::{Currency, Money};
    use portico_projections::rebuild::rebuild_many;
    use portico_store::{AppendStream, ExpectedVersion, Metadata, NewEvent};

    let before = env.simulated_and_folded(5, 120).await;
    let firm = FirmId::new();
    for _ in 0..2 {
        let event = Event::InvoiceIssued {
            firm_id: firm,
            client_id: ClientId::new(),
            project_id: ProjectId::new(),
            invoice_id: InvoiceId::new(),
            number: InvoiceNumber::parse("INV-TWICE").unwrap(),
            issued_on: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            total: Money::from_minor(100, Currency::parse("USD").unwrap()).unwrap(),
        };
        env.store
            .append(vec![AppendStream {
                stream_id: event.stream_id(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::from_domain(
                    &event,
                    Metadata::new(Some(firm), "firm:test"),
                )],
            }])
            .await
            .unwrap();
    }

    let all = projectors::all();
    let refused = rebuild_many(&env.db, env.store.as_ref(), &all, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.to_lowercase().contains("unique"),
        "the error names the refusing index: {refused}"
    );
    for p in projectors::all() {
        assert_eq!(
            dump_live(&env.db, p.as_ref()).await.unwrap(),
            before[p.name()],
            "{} changed although its rebuild failed",
            p.name()
        );
    }
    // The failed generation's tables stay until the next rebuild of their projector.
    let invoices = projectors::by_name("invoices").unwrap();
    let failed = TableSet::generation(invoices.as_ref(), 1);
    let failed_table = format!("SELECT 1 FROM {}", failed.physical("invoices").unwrap());
    assert!(env.db.execute(&failed_table, &[]).await.is_ok());
    // The database and its connections are still usable: a projector the duplicate does
    // not touch rebuilds, to the rows the runner had folded.
    let projects = projectors::by_name("projects").unwrap();
    rebuild(&env.db, env.store.as_ref(), projects.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        dump_live(&env.db, projects.as_ref()).await.unwrap(),
        before["projects"]
    );
    // The next rebuild of the invoices drops the failed generation's tables first, then
    // fails the same way.
    let again = rebuild(&env.db, env.store.as_ref(), invoices.as_ref(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(again.to_lowercase().contains("unique"), "{again}");
    assert!(
        env.db.execute(&failed_table, &[]).await.is_err(),
        "the first failed generation's tables were dropped"
    );
    assert_eq!(
        dump_live(&env.db, invoices.as_ref()).await.unwrap(),
        before["invoices"]
    );
}

/// PostgreSQL only: the rebuild's second writing connection is a speed-up, not a need. On
/// a pool of one connection that times out at once, every generation is written on the
/// one connection and the rebuild ends equal to what the runner folded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_rebuild_on_a_pool_of_one_connection_writes_everything_on_it() {
    let Some(env) = Env::postgres().await else {
        return;
    };
    let before = env.simulated_and_folded(3, 120).await;
    let url = &env._postgres.as_ref().unwrap().url;
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(20))
        .connect(url)
        .await
        .unwrap();
    let all = projectors::all();
    portico_projections::rebuild::rebuild_many(
        &Db::Postgres(one),
        env.store.as_ref(),
        &all,
        |_| {},
    )
    .await
    .unwrap();
    for p in projectors::all() {
        assert_eq!(
            dump_live(&env.db, p.as_ref()).await.unwrap(),
            before[p.name()],
            "{} differs after a rebuild on one connection",
            p.name()
        );
    }
}

async fn stopping_between_or_inside_batches_never_double_applies_or_skips(env: &Env) {
    env.simulate(11, 250).await;
    let runner = env.runner();
    runner.prepare().await.unwrap();
    let all = decode_page(env.store.read_all(0, 100_000).await.unwrap()).unwrap();
    for p in projectors::all() {
        let mut tables = TableSet::live(p.as_ref());
        let mut at = 0;
        let mut size = 1;
        while at < all.len() {
            let end = (at + size).min(all.len());
            // A crash inside a batch: statements run, then the transaction is lost.
            {
                let mut tx = env.db.begin().await.unwrap();
                let mut stmts = Vec::new();
                p.apply(&all[at].envelope(), &mut stmts);
                for s in &stmts {
                    tx.execute(&tables.render(s.sql), &s.args).await.unwrap();
                }
                drop(tx);
            }
            apply_batch(&env.db, p.as_ref(), p.name(), &mut tables, &all[at..end])
                .await
                .unwrap();
            // The same batch delivered again, and one overlapping it: nothing changes.
            assert_eq!(
                apply_batch(&env.db, p.as_ref(), p.name(), &mut tables, &all[at..end])
                    .await
                    .unwrap(),
                None
            );
            let overlap = at.saturating_sub(3);
            assert_eq!(
                apply_batch(
                    &env.db,
                    p.as_ref(),
                    p.name(),
                    &mut tables,
                    &all[overlap..end]
                )
                .await
                .unwrap(),
                None
            );
            at = end;
            size = size % 7 + 1;
        }
    }
    env.assert_equal_to_fresh_replay().await;
}

async fn a_killed_runner_resumes_from_its_checkpoint(env: &Env) {
    let runner = Arc::new(env.runner().with_page_size(5));
    runner.prepare().await.unwrap();
    let mut sim = Simulation::new(23);
    for round in 0..5u64 {
        sim.run(env.store.as_ref(), 60).await.unwrap();
        let r = runner.clone();
        let task = tokio::spawn(async move { r.run(std::future::pending()).await });
        tokio::time::sleep(Duration::from_millis(5 + round * 3)).await;
        task.abort(); // wherever it is: between batches, or inside one
        let _ = task.await;
    }
    runner.catch_up().await.unwrap();
    env.assert_equal_to_fresh_replay().await;
}

async fn an_invoice_turns_past_due_the_day_after_its_due_date_with_no_new_event(env: &Env) {
    let sim = env.simulate(3, 120).await;
    let runner = env.runner();
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    let head = env.store.head().await.unwrap();
    let mut checked = 0;
    for (firm_id, client_id) in sim.clients() {
        let scope = ClientScope {
            firm_id: *firm_id,
            client_id: *client_id,
        };
        for inv in queries::client_invoices(&env.db, &scope, sim.today())
            .await
            .unwrap()
        {
            if inv.balance_minor == 0 {
                continue;
            }
            let on_due =
                queries::client_invoice(&env.db, &scope, inv.id.parse().unwrap(), inv.due_on)
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(
                on_due.status,
                InvoiceStatus::Open,
                "due today is still open"
            );
            let after = inv.due_on.succ_opt().unwrap();
            let late = queries::client_invoice(&env.db, &scope, inv.id.parse().unwrap(), after)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(late.status, InvoiceStatus::PastDue);
            let summary_on_due = queries::client_summary(&env.db, &scope, inv.due_on)
                .await
                .unwrap();
            let summary_after = queries::client_summary(&env.db, &scope, after)
                .await
                .unwrap();
            assert!(summary_after.overdue_count > 0);
            assert!(summary_after.overdue_count >= summary_on_due.overdue_count);
            checked += 1;
        }
    }
    assert!(checked > 0, "no unpaid invoice in the history");
    assert_eq!(env.store.head().await.unwrap(), head, "no event was needed");
}

/// Folds the log with the domain's own aggregates and compares every figure.
async fn summary_figures_equal_a_brute_force_recomputation(env: &Env) {
    let sim = env.simulate(5, 400).await;
    let runner = env.runner();
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    let events: Vec<Event> = env
        .store
        .read_all(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let mut per_invoice: HashMap<String, Vec<Event>> = HashMap::new();
    for e in &events {
        if e.stream_id().as_str().starts_with("invoice-") {
            per_invoice
                .entry(e.stream_id().to_string())
                .or_default()
                .push(e.clone());
        }
    }
    let invoices: Vec<Invoice> = per_invoice.values().map(Invoice::replay).collect();
    for today in [
        sim.today() - chrono::Duration::days(20),
        sim.today(),
        sim.today() + chrono::Duration::days(30),
    ] {
        for (firm_id, client_id) in sim.clients() {
            let mine: Vec<&Invoice> = invoices
                .iter()
                .filter(|i| {
                    i.issued.as_ref().is_some_and(|x| x.client_id == *client_id) && !i.voided
                })
                .collect();
            let status = |i: &Invoice| i.status(today).unwrap();
            let unpaid: Vec<&&Invoice> = mine
                .iter()
                .filter(|i| matches!(status(i), DomainStatus::Open | DomainStatus::PastDue))
                .collect();
            let mut amounts: BTreeMap<String, i64> = BTreeMap::new();
            for i in &unpaid {
                let b = i.balance().unwrap();
                *amounts.entry(b.currency().code().to_owned()).or_default() += b.minor_units();
            }
            let scope = ClientScope {
                firm_id: *firm_id,
                client_id: *client_id,
            };
            let summary = queries::client_summary(&env.db, &scope, today)
                .await
                .unwrap();
            assert_eq!(summary.total_invoices, mine.len() as i64);
            assert_eq!(summary.unpaid_count, unpaid.len() as i64);
            assert_eq!(
                summary.overdue_count,
                mine.iter()
                    .filter(|i| status(i) == DomainStatus::PastDue)
                    .count() as i64
            );
            let expected: Vec<(String, String)> = amounts
                .iter()
                .map(|(c, m)| {
                    let cur = portico_domain::Currency::parse(c).unwrap();
                    (
                        c.clone(),
                        portico_domain::Money::from_minor(*m, cur)
                            .unwrap()
                            .amount()
                            .to_string(),
                    )
                })
                .collect();
            let got: Vec<(String, String)> = summary
                .unpaid_amount
                .iter()
                .map(|a| (a.currency.clone(), a.amount.clone()))
                .collect();
            assert_eq!(got, expected);
            // And every listed invoice carries the domain's status, balance and pending flag.
            let listed = queries::client_invoices(&env.db, &scope, today)
                .await
                .unwrap();
            assert_eq!(listed.len(), mine.len());
            for view in listed {
                let domain = mine
                    .iter()
                    .find(|i| i.issued.as_ref().unwrap().id.to_string() == view.id)
                    .unwrap();
                let expected_status = match status(domain) {
                    DomainStatus::Open => InvoiceStatus::Open,
                    DomainStatus::PastDue => InvoiceStatus::PastDue,
                    DomainStatus::Paid => InvoiceStatus::Paid,
                    DomainStatus::Void => InvoiceStatus::Void,
                };
                assert_eq!(view.status, expected_status);
                assert_eq!(view.balance, domain.balance().unwrap().amount().to_string());
                assert_eq!(view.payment_pending, !domain.pending().unwrap().is_zero());
            }
        }
    }
}

async fn a_query_scoped_to_one_client_never_returns_another_clients_rows(env: &Env) {
    let sim = env.simulate(9, 400).await;
    let runner = env.runner();
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    let (mut invoices_seen, mut payments_seen, mut members_seen) = (0, 0, 0);
    for (firm_id, client_id) in sim.clients() {
        let scope = ClientScope {
            firm_id: *firm_id,
            client_id: *client_id,
        };
        let own_projects: Vec<String> = queries::client_projects(&env.db, &scope)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        for inv in queries::client_invoices(&env.db, &scope, sim.today())
            .await
            .unwrap()
        {
            assert_eq!(inv.client_id, client_id.to_string());
            assert!(own_projects.contains(&inv.project_id));
            invoices_seen += 1;
        }
        for p in queries::client_payments(&env.db, &scope, PaymentsOf::Client)
            .await
            .unwrap()
        {
            assert_eq!(p.client_id, client_id.to_string());
            payments_seen += 1;
        }
        for m in queries::client_team(&env.db, &scope, None).await.unwrap() {
            assert!(m.project_ids.iter().all(|p| own_projects.contains(p)));
            members_seen += 1;
        }
        // Another client's project as a filter yields nobody.
        for (other_firm, other_client) in sim.clients() {
            if other_client == client_id {
                continue;
            }
            let other = ClientScope {
                firm_id: *other_firm,
                client_id: *other_client,
            };
            for p in queries::client_projects(&env.db, &other).await.unwrap() {
                let filtered = queries::client_team(&env.db, &scope, Some(p.id.parse().unwrap()))
                    .await
                    .unwrap();
                assert!(filtered.is_empty());
            }
            for inv in queries::client_invoices(&env.db, &other, sim.today())
                .await
                .unwrap()
                .iter()
                .take(2)
            {
                let id = inv.id.parse().unwrap();
                assert!(queries::client_invoice(&env.db, &scope, id, sim.today())
                    .await
                    .unwrap()
                    .is_none());
                assert!(
                    queries::client_payments(&env.db, &scope, PaymentsOf::Invoice(id))
                        .await
                        .unwrap()
                        .is_empty()
                );
            }
        }
        // A client id under the wrong firm sees nothing.
        let wrong_firm = ClientScope {
            firm_id: FirmId::new(),
            client_id: *client_id,
        };
        assert!(queries::client_invoices(&env.db, &wrong_firm, sim.today())
            .await
            .unwrap()
            .is_empty());
    }
    assert!(
        invoices_seen > 0 && payments_seen > 0 && members_seen > 0,
        "the history is too thin to prove isolation"
    );
    let stranger = ClientScope {
        firm_id: FirmId::new(),
        client_id: ClientId::new(),
    };
    assert_eq!(
        queries::client_summary(&env.db, &stranger, sim.today())
            .await
            .unwrap()
            .total_invoices,
        0
    );
}

async fn a_rebuild_while_queries_run_answers_every_query_and_ends_equal_to_a_fresh_replay(
    env: &Env,
) {
    let mut sim = env.simulate(13, 300).await;
    let runner = Arc::new(env.runner().with_poll_interval(Duration::from_millis(20)));
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<(FirmId, ClientId)> = sim.clients().to_vec();
    let today: NaiveDate = sim.today();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop, answered, clients) = (
                env.db.clone(),
                stop.clone(),
                answered.clone(),
                clients.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let (firm_id, client_id) = clients[i % clients.len()];
                    let scope = ClientScope { firm_id, client_id };
                    queries::client_invoices(&db, &scope, today)
                        .await
                        .expect("an invoices query failed during the rebuild");
                    queries::client_summary(&db, &scope, today)
                        .await
                        .expect("a summary query failed during the rebuild");
                    queries::client_team(&db, &scope, None)
                        .await
                        .expect("a team query failed during the rebuild");
                    answered.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
            })
        })
        .collect();
    let live = {
        let r = runner.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            r.run(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
        })
    };
    // Writes keep arriving while every projector is rebuilt.
    for p in projectors::all() {
        sim.run(env.store.as_ref(), 30).await.unwrap();
        rebuild(&env.db, env.store.as_ref(), p.as_ref(), |_| {})
            .await
            .unwrap();
    }
    sim.run(env.store.as_ref(), 30).await.unwrap();
    let head = env.store.head().await.unwrap();
    assert!(
        runner.wait_for(head, Duration::from_secs(20)).await,
        "the live runner did not catch up"
    );
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    live.await.unwrap();
    assert!(answered.load(Ordering::SeqCst) > 0);
    env.assert_equal_to_fresh_replay().await;
}

/// Blue/green at startup: tables built by an older projector version are rebuilt.
async fn a_projector_of_a_new_version_is_rebuilt_when_the_runner_starts(env: &Env) {
    env.simulate(17, 80).await;
    let runner = env.runner();
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    env.db
        .execute(
            "UPDATE projections SET version = 0 WHERE name = 'payments'",
            &[],
        )
        .await
        .unwrap();
    env.db.execute("DELETE FROM payments", &[]).await.unwrap(); // what an old version might have left
    runner.prepare().await.unwrap();
    let cp = portico_projections::runner::checkpoint(&env.db, "payments")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cp.version, cp.generation), (1, 1));
    env.assert_equal_to_fresh_replay().await;
}

async fn a_client_can_wait_for_its_own_write(env: &Env) {
    let runner = Arc::new(env.runner().with_poll_interval(Duration::from_secs(30)));
    runner.prepare().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let live = {
        let (r, stop) = (runner.clone(), stop.clone());
        tokio::spawn(async move {
            r.run(async move {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
        })
    };
    let mut sim = Simulation::new(29);
    sim.run(env.store.as_ref(), 50).await.unwrap();
    let head = env.store.head().await.unwrap();
    // The poll interval is 30 s: only the store's commit notification can make this fast.
    assert!(runner.wait_for(head, Duration::from_secs(5)).await);
    assert!(
        !runner
            .wait_for(head + 1_000, Duration::from_millis(50))
            .await,
        "waiting for the future must time out"
    );
    assert!(portico_projections::runner::wait_for_position(
        &env.db,
        runner.projectors(),
        head,
        Duration::from_secs(1)
    )
    .await
    .unwrap());
    stop.store(true, Ordering::SeqCst);
    live.await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    /// Over random histories and random page sizes: incremental equals rebuilt, on SQLite.
    #[test]
    fn any_history_projects_the_same_incrementally_and_from_zero(seed in any::<u64>(), commands in 20usize..200, page in 1u32..60) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let env = Env::sqlite().await;
            let runner = env.runner().with_page_size(page);
            runner.prepare().await.unwrap();
            let mut sim = Simulation::new(seed);
            sim.run(env.store.as_ref(), commands / 2).await.unwrap();
            runner.step().await.unwrap();
            sim.run(env.store.as_ref(), commands / 2).await.unwrap();
            runner.catch_up().await.unwrap();
            for p in projectors::all() {
                let incremental = dump_live(&env.db, p.as_ref()).await.unwrap();
                rebuild(&env.db, env.store.as_ref(), p.as_ref(), |_| {}).await.unwrap();
                assert_eq!(dump_live(&env.db, p.as_ref()).await.unwrap(), incremental, "{}", p.name());
            }
        });
    }
}
