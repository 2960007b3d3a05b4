//! Appends through the real command path (decide + append) against raw inserts of the
//! same rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use portico_domain::client::Client;
use portico_domain::clock::TimeZone;
use portico_domain::firm::Firm;
use portico_domain::ids::{ClientId, FirmId, InvoiceId, PaymentId, ProjectId, SubmissionId};
use portico_domain::invoice::{Invoice, IssueInvoice};
use portico_domain::project::Project;
use portico_domain::streams::StreamId;
use portico_domain::submission::{submit, PaymentLine};
use portico_domain::values::{InvoiceNumber, Locale, Name};
use portico_domain::{Currency, Event, Money, Scope};
use portico_projections::Db;
use portico_store::command::execute;
use portico_store::hash::{canonical_json, format_instant};
use portico_store::{EventStore, Metadata, NewEvent};

use crate::db::{Fresh, Target};
use crate::stats::Samples;

pub struct Figures {
    pub events: u64,
    pub secs: f64,
    pub latency: Samples,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.secs.max(1e-9)
    }

    /// Several runs as one: their events, times and latencies added up.
    pub fn add(&mut self, other: Figures) {
        self.events += other.events;
        self.secs += other.secs;
        self.latency.extend(other.latency);
    }
}

/// The two single-writer figures the sequential target compares, measured in alternating
/// rounds (raw, command path, raw, ...) so that both see the same disk: this machine's
/// fsync time drifts by 2x within a minute, which made a baseline measured once before
/// the command path a coin toss (0.54x and 1.52x in two runs a minute apart).
pub async fn sequential_pair(
    target: &Target,
    raw_events: usize,
    invoices: usize,
    rounds: usize,
) -> anyhow::Result<(Figures, Figures)> {
    let mut raw_total = raw(target, raw_events / rounds, false).await?;
    let mut command_total = command_path(target, invoices / rounds, 1).await?;
    for _ in 1..rounds {
        raw_total.add(raw(target, raw_events / rounds, false).await?);
        command_total.add(command_path(target, invoices / rounds, 1).await?);
    }
    Ok((raw_total, command_total))
}

/// The group-commit target's two figures, measured the same way: the raw all-in-one
/// transaction and the command path with `writers` concurrent writers, full size each
/// round, alternating. Measured once, the all-in-one baseline (3,072 events, one commit)
/// ran at 11,730 and 48,784 events/s in two full runs minutes apart while the command
/// path's 64 writers gave 10,852 and 11,785: the baseline's one fsync decided the ratio.
pub async fn group_pair(
    target: &Target,
    raw_events: usize,
    invoices: usize,
    writers: usize,
    rounds: usize,
) -> anyhow::Result<(Figures, Figures)> {
    let mut raw_total = raw(target, raw_events, true).await?;
    let mut command_total = command_path(target, invoices, writers).await?;
    for _ in 1..rounds {
        raw_total.add(raw(target, raw_events, true).await?);
        command_total.add(command_path(target, invoices, writers).await?);
    }
    Ok((raw_total, command_total))
}

#[allow(clippy::expect_used)] // constant, valid names
fn name(s: &str) -> Name {
    Name::parse("name", s).expect("valid")
}

async fn writer_world(store: &dyn EventStore) -> anyhow::Result<(FirmId, ClientId, ProjectId)> {
    let (firm, client, project) = (FirmId::new(), ClientId::new(), ProjectId::new());
    let meta = Metadata::new(Some(firm), "bench");
    let f = StreamId::firm(firm);
    execute(store, std::slice::from_ref(&f), &meta, |l| {
        l.replay::<Firm>(&f).register(
            firm,
            name("Bench Firm"),
            None,
            TimeZone::UTC,
            Locale::default_locale(),
        )
    })
    .await?;
    let streams = [f.clone(), StreamId::client(client)];
    execute(store, &streams, &meta, |l| {
        l.replay::<Client>(&streams[1])
            .add(&l.replay::<Firm>(&streams[0]), client, name("Client"))
    })
    .await?;
    let streams = [f, StreamId::client(client), StreamId::project(project)];
    execute(store, &streams, &meta, |l| {
        l.replay::<Project>(&streams[2]).create(
            &l.replay::<Firm>(&streams[0]),
            &l.replay::<Client>(&streams[1]),
            project,
            name("Project"),
        )
    })
    .await?;
    Ok((firm, client, project))
}

/// `invoices` invoices over `writers` concurrent writers, each its own firm (one firm's
/// invoice numbers are reserved in its firm stream, so writers of one firm would queue
/// on it). Each invoice: issue (2 events), then a one-invoice submission (1 event).
pub async fn command_path(
    target: &Target,
    invoices: usize,
    writers: usize,
) -> anyhow::Result<Figures> {
    let fresh = established(target).await?;
    let store = fresh.db.event_store().await?;
    let mut worlds = Vec::new();
    for _ in 0..writers {
        worlds.push(writer_world(store.as_ref()).await?);
    }
    let usd = Currency::parse("USD")?;
    let per_writer = invoices.div_ceil(writers);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, (firm, client, project)) in worlds.into_iter().enumerate() {
        let store: Arc<dyn EventStore> = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = Samples::default();
            let meta = Metadata::new(Some(firm), "bench");
            for i in 0..per_writer {
                let invoice_id = InvoiceId::new();
                let cmd = IssueInvoice {
                    invoice_id,
                    client_id: client,
                    project_id: project,
                    number: InvoiceNumber::parse(&format!("B{w}-{i}"))?,
                    issued_on: Utc::now().date_naive(),
                    due_on: Utc::now().date_naive(),
                    total: Money::from_minor(125_000, usd)?,
                };
                let streams = [
                    StreamId::firm(firm),
                    StreamId::project(project),
                    StreamId::invoice(invoice_id),
                    StreamId::invoice_number(firm, &cmd.number),
                ];
                let t = Instant::now();
                execute(store.as_ref(), &streams, &meta, |l| {
                    l.replay::<Invoice>(&streams[2]).issue(
                        &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
                        &l.replay::<Project>(&streams[1]),
                        cmd.clone(),
                    )
                })
                .await?;
                latency.push(t.elapsed());
                let stream = StreamId::invoice(invoice_id);
                let scope = Scope::Client {
                    firm_id: firm,
                    client_id: client,
                };
                let (payment_id, submission_id) = (PaymentId::new(), SubmissionId::new());
                let t = Instant::now();
                execute(store.as_ref(), std::slice::from_ref(&stream), &meta, |l| {
                    let invoice = l.replay::<Invoice>(&stream);
                    let line = PaymentLine {
                        invoice: &invoice,
                        payment_id,
                        amount: cmd.total,
                    };
                    submit(&scope, submission_id, "card", &[line])
                })
                .await?;
                latency.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latency)
        }));
    }
    let mut latency = Samples::default();
    for t in tasks {
        latency.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    fresh.close().await;
    Ok(Figures {
        events: (per_writer * writers * 3) as u64,
        secs,
        latency,
    })
}

/// Rows like the ones the command path writes: a payment event's payload and metadata.
fn sample_rows(n: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let usd = Currency::parse("USD")?;
    (0..n)
        .map(|_| {
            let event = Event::PaymentSubmitted {
                firm_id: FirmId::new(),
                invoice_id: InvoiceId::new(),
                client_id: ClientId::new(),
                payment_id: PaymentId::new(),
                submission_id: SubmissionId::new(),
                amount: Money::from_minor(125_000, usd)?,
                method: "card".into(),
            };
            let new = NewEvent::from_domain(&event, Metadata::new(None, "bench"));
            Ok((
                format!("invoice-{}", uuid::Uuid::now_v7()),
                canonical_json(&new.data),
                canonical_json(&serde_json::to_value(&new.metadata)?),
            ))
        })
        .collect()
}

/// Events already in the log when an append run starts, each in a stream of its own.
pub const ESTABLISHED_EVENTS: i64 = 20_000;

/// A fresh database whose log already holds [`ESTABLISHED_EVENTS`] events: what appends
/// meet in service. On PostgreSQL the table is analyzed too, as autovacuum does in service:
/// on an empty table the generic plans a connection caches for the store's reads by stream
/// (after five runs of a prepared statement) scan the whole table, and they stay until
/// autovacuum first analyzes it, about a minute later: longer than a bench run, so every
/// read of a run scanned the table it was filling. With 1 writer, a command's read took
/// 390-450 µs that way and 240-300 µs with statistics, while the raw inserts, which read
/// nothing, were unchanged. SQLite gets no `ANALYZE`, since Portico never runs one there.
/// Both backends, baselines included, start from the same log.
async fn established(target: &Target) -> anyhow::Result<Fresh> {
    let fresh = Fresh::new(target).await?;
    let (_, data, metadata) = sample_rows(1)?.remove(0);
    let hash = [7u8; 32];
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    match &fresh.db {
        Db::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < $5) \
                 INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
                 SELECT 'established-' || g, 0, lower(hex(randomblob(16))), 'PaymentSubmitted', 1, $1, $2, $3, $4 FROM n",
            )
            .bind(&data)
            .bind(&metadata)
            .bind(format_instant(an_hour_ago))
            .bind(hash.as_slice())
            .bind(ESTABLISHED_EVENTS)
            .execute(pool)
            .await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
                 SELECT 'established-' || g, 0, gen_random_uuid(), 'PaymentSubmitted', 1, $1, $2, $3, $4 \
                 FROM generate_series(1, $5) AS g",
            )
            .bind(&data)
            .bind(&metadata)
            .bind(an_hour_ago)
            .bind(hash.as_slice())
            .bind(ESTABLISHED_EVENTS)
            .execute(pool)
            .await?;
            sqlx::query("ANALYZE events").execute(pool).await?;
        }
    }
    Ok(fresh)
}

/// Raw inserts of the same rows into the events table: one transaction per event, or all
/// in one transaction.
pub async fn raw(target: &Target, events: usize, one_transaction: bool) -> anyhow::Result<Figures> {
    let fresh = established(target).await?;
    let rows = sample_rows(events)?;
    let hash = [7u8; 32];
    let mut latency = Samples::default();
    let started = Instant::now();
    macro_rules! insert {
        ($pool:expr, $begin:expr, $event_id:expr, $recorded:expr) => {{
            if one_transaction {
                let mut tx = $begin?;
                for (stream, data, meta) in &rows {
                    sqlx::query(
                        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
                         VALUES ($1, 0, $2, 'PaymentSubmitted', 1, $3, $4, $5, $6)",
                    )
                    .bind(stream).bind($event_id).bind(data).bind(meta).bind($recorded).bind(hash.as_slice())
                    .execute(&mut *tx).await?;
                }
                tx.commit().await?;
            } else {
                for (stream, data, meta) in &rows {
                    let t = Instant::now();
                    let mut tx = $begin?;
                    sqlx::query(
                        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash) \
                         VALUES ($1, 0, $2, 'PaymentSubmitted', 1, $3, $4, $5, $6)",
                    )
                    .bind(stream).bind($event_id).bind(data).bind(meta).bind($recorded).bind(hash.as_slice())
                    .execute(&mut *tx).await?;
                    tx.commit().await?;
                    latency.push(t.elapsed());
                }
            }
        }};
    }
    match &fresh.db {
        Db::Sqlite(pool) => insert!(
            pool,
            pool.begin_with("BEGIN IMMEDIATE").await,
            uuid::Uuid::now_v7().to_string(),
            format_instant(Utc::now())
        ),
        Db::Postgres(pool) => insert!(pool, pool.begin().await, uuid::Uuid::now_v7(), Utc::now()),
    }
    let secs = started.elapsed().as_secs_f64();
    fresh.close().await;
    Ok(Figures {
        events: events as u64,
        secs,
        latency,
    })
}

/// PostgreSQL only: what the subscriber-safety schemes cost on the write side. `writers`
/// tasks insert single-event transactions (a) plainly, (b) serialized by the advisory lock
/// Portico takes, (c) stamping `pg_current_xact_id()` as the xid8 scheme does.
pub async fn pg_schemes(
    admin: &str,
    events: usize,
    writers: usize,
) -> anyhow::Result<[(String, f64); 3]> {
    let mut out = Vec::new();
    for scheme in [
        "no ordering guarantee",
        "advisory lock (Portico)",
        "xid8 column (Emmett-style)",
    ] {
        let fresh = Fresh::new(&Target::Postgres(admin.to_owned())).await?;
        let Db::Postgres(pool) = &fresh.db else {
            unreachable!()
        };
        sqlx::query("ALTER TABLE events ADD COLUMN tx xid8")
            .execute(pool)
            .await?;
        let rows = Arc::new(sample_rows(events)?);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (pool, rows) = (pool.clone(), rows.clone());
            tasks.push(tokio::spawn(async move {
                for (stream, data, meta) in rows.iter().skip(w).step_by(writers) {
                    let mut tx = pool.begin().await?;
                    if scheme.starts_with("advisory") {
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(portico_store::postgres::APPEND_LOCK)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let tx_expr = if scheme.starts_with("xid8") { "pg_current_xact_id()" } else { "NULL" };
                    sqlx::query(&format!(
                        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at, hash, tx) \
                         VALUES ($1, 0, $2, 'PaymentSubmitted', 1, $3, $4, now(), $5, {tx_expr})"
                    ))
                    .bind(stream)
                    .bind(uuid::Uuid::now_v7())
                    .bind(data)
                    .bind(meta)
                    .bind([7u8; 32].as_slice())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        fresh.close().await;
        out.push((scheme.to_owned(), rate));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut it = out.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok([next(), next(), next()])
}
