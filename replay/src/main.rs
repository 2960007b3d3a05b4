//! `portico-replay`: see the crate documentation and the README's walkthroughs.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use portico_domain::ids::{ClientId, FirmId, SubmissionId};
use portico_projections::projectors;
use portico_replay::output::{write_rows, Format};
use portico_replay::{HistoryOf, StatusRow};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Replay, audit, verify, export and rebuild Portico's event log"
)]
struct Cli {
    /// The database: the server's `<data-dir>/portico.db`, or a `postgres://` URL.
    #[arg(long, env = "PORTICO_DATABASE")]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Payment events with amount, status change, actor, time and running balance.
    History {
        /// An invoice number (add --firm if several firms use it).
        #[arg(long, group = "of")]
        invoice: Option<String>,
        #[arg(long, requires = "invoice")]
        firm: Option<FirmId>,
        #[arg(long, group = "of")]
        client: Option<ClientId>,
        #[arg(long, group = "of")]
        submission: Option<SubmissionId>,
        /// The log as it stood at this instant (RFC 3339, e.g. 2026-03-01T12:00:00Z).
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A client's invoices, statuses and summary exactly as the portal showed them then.
    State {
        #[arg(long)]
        client: ClientId,
        #[arg(long)]
        as_of: DateTime<Utc>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Hash chains, contiguous versions, and every read model against a fresh replay.
    /// Exits 1 on any difference.
    Verify,
    /// NDJSON of events with their envelopes, in position order.
    Export {
        /// Only events after this global position.
        #[arg(long, default_value_t = 0)]
        since: i64,
    },
    /// Each projection's checkpoint, lag behind the head and last update.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Blue/green rebuild: new tables from position 0 beside the live ones, then a swap.
    Rebuild {
        #[arg(long, group = "which")]
        projection: Option<String>,
        #[arg(long, group = "which")]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portico-replay: {e:#}");
            ExitCode::from(2)
        }
    }
}

const HISTORY_COLUMNS: &[&str] = &[
    "recorded_at",
    "invoice_number",
    "event",
    "payment_id",
    "amount",
    "currency",
    "change",
    "actor",
    "balance",
    "pending",
    "position",
    "invoice_id",
];
const INVOICE_COLUMNS: &[&str] = &[
    "number",
    "status",
    "payment_pending",
    "currency",
    "total",
    "balance",
    "due_on",
    "project_name",
    "id",
];
const STATUS_COLUMNS: &[&str] = &[
    "projection",
    "position",
    "lag",
    "version",
    "generation",
    "updated_at",
];

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (db, store) = portico_replay::open(&cli.database).await?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::History {
            invoice,
            firm,
            client,
            submission,
            as_of,
            format,
        } => {
            let of = match (invoice, client, submission) {
                (Some(number), _, _) => HistoryOf::Invoice { number, firm },
                (_, Some(c), _) => HistoryOf::Client(c),
                (_, _, Some(s)) => HistoryOf::Submission(s),
                _ => bail!("say whose history: --invoice, --client or --submission"),
            };
            let rows = portico_replay::history(store.as_ref(), &of, as_of).await?;
            write_rows(&mut out, format, HISTORY_COLUMNS, &rows)?;
        }
        Command::State {
            client,
            as_of,
            format,
        } => {
            let state = portico_replay::state_as_of(store.as_ref(), client, as_of).await?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&state)?)?,
                other => {
                    writeln!(
                        out,
                        "as of {} (the firm's date: {})",
                        state.as_of, state.today
                    )?;
                    write_rows(&mut out, other, INVOICE_COLUMNS, &state.invoices)?;
                    let s = &state.summary;
                    let unpaid: Vec<String> = s
                        .unpaid_amount
                        .iter()
                        .map(|a| format!("{} {}", a.amount, a.currency))
                        .collect();
                    writeln!(
                        out,
                        "total invoices {}, unpaid {}, overdue {}, unpaid amount {}",
                        s.total_invoices,
                        s.unpaid_count,
                        s.overdue_count,
                        if unpaid.is_empty() {
                            "0".to_owned()
                        } else {
                            unpaid.join(" + ")
                        }
                    )?;
                }
            }
        }
        Command::Verify => {
            let report = portico_replay::verify(&db, store.as_ref()).await?;
            for p in &report.chain {
                writeln!(out, "BROKEN CHAIN  {p}")?;
            }
            for d in &report.rows {
                writeln!(
                    out,
                    "READ MODEL    {}.{} row {}: live {} / replayed {}",
                    d.projection,
                    d.table,
                    d.key,
                    json!(d.live),
                    json!(d.replayed)
                )?;
            }
            for l in &report.lagging {
                writeln!(out, "note: {l}; compared up to its position")?;
            }
            writeln!(
                out,
                "checked {} events and {} projections: {} chain problem(s), {} read-model difference(s)",
                report.events,
                projectors::all().len(),
                report.chain.len(),
                report.rows.len()
            )?;
            return Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Export { since } => {
            let mut after = since;
            loop {
                let page = store.read_all(after, 5000).await?;
                for e in &page {
                    let line = json!({
                        "global_position": e.global_position,
                        "stream_id": e.stream_id,
                        "stream_version": e.stream_version,
                        "event_id": e.event_id,
                        "event_type": e.event_type,
                        "schema_version": e.schema_version,
                        "data": e.data,
                        "metadata": e.metadata,
                        "recorded_at": portico_store::hash::format_instant(e.recorded_at),
                        "hash": hex::encode(e.hash),
                    });
                    writeln!(out, "{line}")?;
                    after = e.global_position;
                }
                if page.len() < 5000 {
                    break;
                }
            }
        }
        Command::Status { format } => {
            let (head, rows): (i64, Vec<StatusRow>) =
                portico_replay::status(&db, store.as_ref()).await?;
            if format == Format::Table {
                writeln!(out, "head of the log: {head}")?;
            }
            write_rows(&mut out, format, STATUS_COLUMNS, &rows)?;
        }
        Command::Rebuild { projection, all } => {
            let which = match (projection, all) {
                (Some(name), _) => vec![projectors::by_name(&name).with_context(|| {
                    let names: Vec<&str> = projectors::all().iter().map(|p| p.name()).collect();
                    format!("no projection `{name}`; there are: {}", names.join(", "))
                })?],
                (None, true) => projectors::all(),
                (None, false) => bail!("say what to rebuild: --projection NAME or --all"),
            };
            rebuild(&db, store.as_ref(), &which, &mut out).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(
    db: &portico_projections::Db,
    store: &dyn portico_store::EventStore,
    which: &[std::sync::Arc<dyn portico_projections::projector::Projector>],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(0);
    if terminal {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} events  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last_line = Instant::now();
    let label = if which.len() == 1 {
        which[0].name().to_owned()
    } else {
        "all".to_owned()
    };
    bar.set_prefix(label.clone());
    let reports = portico_replay::rebuild(db, store, which, |p| {
        let name = &label;
        bar.set_length(u64::try_from(p.head).unwrap_or(0));
        bar.set_position(u64::try_from(p.position).unwrap_or(0));
        if !terminal && last_line.elapsed().as_secs() >= 2 {
            let rate = p.events as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "rebuild {name}: {} of {} ({rate:.0} events/s)",
                p.position, p.head
            );
            last_line = Instant::now();
        }
    })
    .await?;
    bar.finish_and_clear();
    for (name, r) in reports {
        writeln!(
            out,
            "rebuilt {name}: generation {}, {} events, now at position {}",
            r.generation, r.events, r.position
        )?;
    }
    writeln!(out, "took {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(())
}
