//! `portico-replay`: what auditors and operators run against Portico's database (a SQLite
//! file or a PostgreSQL URL).
//!
//! Auditors: [`history`] (payment events with running balances, as of any instant),
//! [`state_as_of`] (what the portal showed a client at an instant, replayed into a scratch
//! database, never read from the live tables), [`verify`] (hash chains, versions, and
//! every live read model against a fresh replay), and `export` (NDJSON).
//! Operators: [`status`] and [`rebuild`].

pub mod output;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use portico_domain::clock::TimeZone;
use portico_domain::ids::{ClientId, FirmId, InvoiceId, PaymentId, SubmissionId};
use portico_domain::invoice::Invoice;
use portico_domain::{Aggregate, Event};
use portico_projections::dump::{dump_live, fresh_replay_upto, Dump};
use portico_projections::projector::{Projector, TableSet};
use portico_projections::queries::{self, ClientScope, InvoiceView, Summary};
use portico_projections::runner::{apply_batch, checkpoints, decode_page, ensure_live, Decoded};
use portico_projections::{projectors, Db};
use portico_store::hash::{format_instant, ChainProblem};
use portico_store::{verify_all, EventStore};
use serde::Serialize;

/// Opens the database named by `target` without creating one by mistake.
pub async fn open(target: &str) -> anyhow::Result<(Db, Arc<dyn EventStore>)> {
    let is_pg = target.starts_with("postgres://") || target.starts_with("postgresql://");
    if !is_pg {
        let path = target.strip_prefix("sqlite://").unwrap_or(target);
        if !Path::new(path).is_file() {
            bail!("no database at {path} (give the server's <data-dir>/portico.db or a postgres:// URL)");
        }
    }
    let db = Db::connect(target)
        .await
        .with_context(|| format!("cannot open {}", redact(target)))?;
    let store = db.event_store().await?;
    Ok((db, store))
}

/// A URL without its password, for messages.
pub fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &target[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &target[..scheme + 3], &target[at..]),
                None => target.to_owned(),
            }
        }
        _ => target.to_owned(),
    }
}

/// Refuses instants in the future: the log cannot say what will have happened.
pub fn check_instant(at: DateTime<Utc>) -> anyhow::Result<()> {
    if at > Utc::now() {
        bail!("{} is in the future", format_instant(at));
    }
    Ok(())
}

/// Every event up to `until` (or all), decoded, in position order.
pub async fn log_until(
    store: &dyn EventStore,
    until: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<Decoded>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = match until {
            Some(t) => store.read_all_until(t, after, 5000).await?,
            None => store.read_all(after, 5000).await?,
        };
        let Some(last) = page.last().map(|e| e.global_position) else {
            break;
        };
        after = last;
        out.extend(decode_page(page)?);
    }
    Ok(out)
}

/// Which payments `history` shows.
#[derive(Debug, Clone)]
pub enum HistoryOf {
    Invoice {
        number: String,
        firm: Option<FirmId>,
    },
    Client(ClientId),
    Submission(SubmissionId),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub position: i64,
    pub recorded_at: String,
    pub invoice_number: String,
    pub invoice_id: String,
    pub event: String,
    pub payment_id: Option<String>,
    pub amount: Option<String>,
    pub currency: String,
    /// `issued`, `submitted`, `submitted → settled`, ...
    pub change: String,
    pub actor: String,
    /// Owed after this event.
    pub balance: String,
    /// Awaiting settlement after this event.
    pub pending: String,
}

fn invoice_of(event: &Event) -> Option<InvoiceId> {
    match event {
        Event::InvoiceIssued { invoice_id, .. }
        | Event::InvoiceVoided { invoice_id, .. }
        | Event::PaymentSubmitted { invoice_id, .. }
        | Event::PaymentSettled { invoice_id, .. }
        | Event::PaymentFailed { invoice_id, .. }
        | Event::PaymentRefunded { invoice_id, .. } => Some(*invoice_id),
        _ => None,
    }
}

/// Payment history with running balances, as the log stood at `as_of` (or now).
pub async fn history(
    store: &dyn EventStore,
    of: &HistoryOf,
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<Vec<HistoryRow>> {
    if let Some(t) = as_of {
        check_instant(t)?;
    }
    let log = log_until(store, as_of).await?;
    // Which invoices, and (for a submission) which payments.
    let mut wanted: Vec<InvoiceId> = Vec::new();
    let mut payments_of_submission: Vec<PaymentId> = Vec::new();
    let mut firms_with_number: Vec<FirmId> = Vec::new();
    for d in &log {
        match (&d.event, of) {
            (
                Event::InvoiceIssued {
                    invoice_id,
                    number,
                    firm_id,
                    ..
                },
                HistoryOf::Invoice { number: n, firm },
            ) if number.as_str() == n && firm.is_none_or(|f| f == *firm_id) => {
                wanted.push(*invoice_id);
                firms_with_number.push(*firm_id);
            }
            (
                Event::InvoiceIssued {
                    invoice_id,
                    client_id,
                    ..
                },
                HistoryOf::Client(c),
            ) if client_id == c => {
                wanted.push(*invoice_id);
            }
            (
                Event::PaymentSubmitted {
                    invoice_id,
                    payment_id,
                    submission_id,
                    ..
                },
                HistoryOf::Submission(s),
            ) if submission_id == s => {
                if !wanted.contains(invoice_id) {
                    wanted.push(*invoice_id);
                }
                payments_of_submission.push(*payment_id);
            }
            _ => {}
        }
    }
    if firms_with_number.len() > 1 {
        bail!(
            "invoice number is used by {} firms; add --firm with one of: {}",
            firms_with_number.len(),
            firms_with_number
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if wanted.is_empty() {
        match of {
            HistoryOf::Invoice { number, .. } => {
                bail!("no invoice numbered {number}{}", as_of_note(as_of))
            }
            HistoryOf::Client(c) => bail!("client {c} has no invoices{}", as_of_note(as_of)),
            HistoryOf::Submission(s) => bail!("no submission {s}{}", as_of_note(as_of)),
        }
    }
    let mut states: HashMap<InvoiceId, Vec<Event>> = HashMap::new();
    let mut rows = Vec::new();
    for d in &log {
        let Some(invoice_id) = invoice_of(&d.event).filter(|i| wanted.contains(i)) else {
            continue;
        };
        let before = Invoice::replay(states.get(&invoice_id).map_or(&[][..], |v| v.as_slice()));
        states.entry(invoice_id).or_default().push(d.event.clone());
        let after = Invoice::replay(&states[&invoice_id]);
        let Some(issued) = &after.issued else {
            continue;
        };
        let status_of = |inv: &Invoice, p: &PaymentId| {
            inv.payments
                .get(p)
                .map(|x| format!("{:?}", x.status).to_lowercase())
        };
        let (payment_id, amount, change) = match &d.event {
            Event::InvoiceIssued { total, .. } => {
                (None, Some(total.amount().to_string()), "issued".to_owned())
            }
            Event::InvoiceVoided { reason, .. } => (None, None, format!("voided ({reason})")),
            Event::PaymentSubmitted {
                payment_id, amount, ..
            }
            | Event::PaymentSettled {
                payment_id, amount, ..
            }
            | Event::PaymentFailed {
                payment_id, amount, ..
            } => {
                let from = status_of(&before, payment_id);
                let to = status_of(&after, payment_id).unwrap_or_default();
                let change = from.map_or(to.clone(), |f| format!("{f} → {to}"));
                (Some(*payment_id), Some(amount.amount().to_string()), change)
            }
            Event::PaymentRefunded {
                payment_id, amount, ..
            } => (
                Some(*payment_id),
                Some(amount.amount().to_string()),
                "refunded".to_owned(),
            ),
            _ => continue,
        };
        if matches!(of, HistoryOf::Submission(_))
            && payment_id.is_none_or(|p| !payments_of_submission.contains(&p))
        {
            continue;
        }
        rows.push(HistoryRow {
            position: d.position,
            recorded_at: d.recorded_at.clone(),
            invoice_number: issued.number.to_string(),
            invoice_id: invoice_id.to_string(),
            event: d.event.event_type().to_owned(),
            payment_id: payment_id.map(|p| p.to_string()),
            amount,
            currency: issued.total.currency().to_string(),
            change,
            actor: d.metadata.actor.clone(),
            balance: after
                .balance()
                .map(|b| b.amount().to_string())
                .unwrap_or_default(),
            pending: after
                .pending()
                .map(|b| b.amount().to_string())
                .unwrap_or_default(),
        });
    }
    Ok(rows)
}

fn as_of_note(as_of: Option<DateTime<Utc>>) -> String {
    as_of
        .map(|t| format!(" as of {}", format_instant(t)))
        .unwrap_or_default()
}

/// What the portal showed a client at an instant.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientState {
    pub as_of: String,
    /// The firm's date at that instant, which decides "past due".
    pub today: String,
    pub invoices: Vec<InvoiceView>,
    pub summary: Summary,
}

/// Replays the log up to `as_of` into a scratch database and reads the client's invoices
/// and summary from it, with "today" as the firm's date at that instant.
pub async fn state_as_of(
    store: &dyn EventStore,
    client_id: ClientId,
    as_of: DateTime<Utc>,
) -> anyhow::Result<ClientState> {
    check_instant(as_of)?;
    let log = log_until(store, Some(as_of)).await?;
    let (mut firm_id, mut zone) = (None, TimeZone::UTC);
    for d in &log {
        if let Event::ClientAdded {
            client_id: c,
            firm_id: f,
            ..
        } = &d.event
        {
            if *c == client_id {
                firm_id = Some(*f);
            }
        }
    }
    let Some(firm_id) = firm_id else {
        bail!("no client {client_id}{}", as_of_note(Some(as_of)));
    };
    for d in &log {
        if let Event::FirmRegistered {
            firm_id: f,
            time_zone,
            ..
        } = &d.event
        {
            if *f == firm_id {
                zone = *time_zone;
            }
        }
    }
    let scratch_dir = tempfile::tempdir()?;
    let scratch = Db::connect(&scratch_dir.path().join("as-of.db").to_string_lossy()).await?;
    for p in projectors::all() {
        ensure_live(&scratch, p.as_ref()).await?;
        let mut tables = TableSet::live(p.as_ref());
        for chunk in log.chunks(2000) {
            apply_batch(&scratch, p.as_ref(), p.name(), &mut tables, chunk).await?;
        }
    }
    let today = zone.date_of(as_of);
    let scope = ClientScope { firm_id, client_id };
    Ok(ClientState {
        as_of: format_instant(as_of),
        today: today.to_string(),
        invoices: queries::client_invoices(&scratch, &scope, today).await?,
        summary: queries::client_summary(&scratch, &scope, today).await?,
    })
}

/// One difference between a live read model and a fresh replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDifference {
    pub projection: String,
    pub table: String,
    pub key: String,
    pub live: Option<Vec<Option<String>>>,
    pub replayed: Option<Vec<Option<String>>>,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub events: u64,
    pub chain: Vec<ChainProblem>,
    pub rows: Vec<RowDifference>,
    /// Projections that were behind the log when checked (not a fault, but said).
    pub lagging: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.chain.is_empty() && self.rows.is_empty()
    }
}

fn differences(projector: &dyn Projector, live: &Dump, fresh: &Dump) -> Vec<RowDifference> {
    let mut out = Vec::new();
    for t in projector.tables() {
        let index =
            |rows: Option<&Vec<Vec<Option<String>>>>| -> BTreeMap<String, Vec<Option<String>>> {
                rows.into_iter()
                    .flatten()
                    .map(|r| {
                        let key = t
                            .key
                            .iter()
                            .map(|k| {
                                let i = t.columns.iter().position(|c| c == k).unwrap_or(0);
                                r.get(i).cloned().flatten().unwrap_or_default()
                            })
                            .collect::<Vec<_>>()
                            .join("/");
                        (key, r.clone())
                    })
                    .collect()
            };
        let (l, f) = (index(live.get(t.name)), index(fresh.get(t.name)));
        for key in l
            .keys()
            .chain(f.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if l.get(key) != f.get(key) {
                out.push(RowDifference {
                    projection: projector.name().to_owned(),
                    table: t.name.to_owned(),
                    key: key.clone(),
                    live: l.get(key).cloned(),
                    replayed: f.get(key).cloned(),
                });
            }
        }
    }
    out
}

/// Hash chains and versions of every stream, then every live read model against a fresh
/// replay of the log up to the position it has applied.
pub async fn verify(db: &Db, store: &dyn EventStore) -> anyhow::Result<VerifyReport> {
    let (chain, events) = verify_all(store).await?;
    let mut report = VerifyReport {
        events,
        chain,
        ..VerifyReport::default()
    };
    let head = store.head().await?;
    let positions: HashMap<String, i64> = checkpoints(db)
        .await?
        .into_iter()
        .map(|c| (c.name, c.position))
        .collect();
    for p in projectors::all() {
        let Some(&position) = positions.get(p.name()) else {
            continue;
        };
        if position < head {
            report
                .lagging
                .push(format!("{} is at {position} of {head}", p.name()));
        }
        let scratch_dir = tempfile::tempdir()?;
        let scratch = Db::connect(&scratch_dir.path().join("verify.db").to_string_lossy()).await?;
        let fresh = fresh_replay_upto(&scratch, store, p.as_ref(), position).await?;
        let live = dump_live(db, p.as_ref()).await?;
        report.rows.extend(differences(p.as_ref(), &live, &fresh));
    }
    Ok(report)
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub projection: String,
    pub position: i64,
    pub lag: i64,
    pub version: i32,
    pub generation: i64,
    pub updated_at: String,
}

pub async fn status(db: &Db, store: &dyn EventStore) -> anyhow::Result<(i64, Vec<StatusRow>)> {
    let head = store.head().await?;
    let rows = checkpoints(db)
        .await?
        .into_iter()
        .map(|c| StatusRow {
            lag: (head - c.position).max(0),
            projection: c.name,
            position: c.position,
            version: c.version,
            generation: c.generation,
            updated_at: c.updated_at,
        })
        .collect();
    Ok((head, rows))
}

/// Blue/green rebuild of the named projections in one pass over the log, reporting
/// progress.
pub async fn rebuild(
    db: &Db,
    store: &dyn EventStore,
    which: &[Arc<dyn Projector>],
    on_progress: impl FnMut(portico_projections::rebuild::RebuildProgress),
) -> anyhow::Result<Vec<(String, portico_projections::rebuild::RebuildReport)>> {
    let reports = portico_projections::rebuild::rebuild_many(db, store, which, on_progress).await?;
    Ok(which
        .iter()
        .map(|p| p.name().to_owned())
        .zip(reports)
        .collect())
}
