//! `portico-bench`: Portico's speed measured against the limits of the machine it runs on,
//! in one run. Every figure is reported beside a raw baseline measured in the same run, and
//! as a ratio to it, since absolute times vary between machines. Targets are goals the
//! table reports against; nothing here asserts.

mod append;
mod db;
mod http;
mod rebuild;
mod stats;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};

use portico_projections::Db;

use crate::db::Target;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks Portico against raw baselines measured in the same run")]
struct Cli {
    /// Small sizes, under a minute: a smoke test, not figures to quote.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also run every workload on this PostgreSQL server (an admin URL; a database is
    /// created and dropped per workload).
    #[arg(long)]
    postgres: Option<String>,
    /// Run only these workloads (append, rebuild, http, bulk).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Keep the rebuild workload's generated log in this SQLite file and reuse it on later
    /// runs (it is generated there when missing or short). Each run rebuilds a copy.
    #[arg(long)]
    rebuild_log: Option<std::path::PathBuf>,
    /// Internal: the measured half of the rebuild workload, in its own process, on this
    /// database (a SQLite file or a PostgreSQL URL).
    #[arg(long, hide = true)]
    rebuild_child: Option<String>,
}

struct Sizes {
    invoices: usize,
    raw_events: usize,
    rebuild_events: i64,
    http_secs: u64,
    bulk_reps: usize,
}

/// One line of the report.
fn row(
    workload: &str,
    measure: &str,
    value: f64,
    baseline: Option<f64>,
    target: &str,
    met: Option<bool>,
) -> Value {
    json!({
        "workload": workload, "measure": measure, "value": value,
        "baseline": baseline, "ratio": baseline.map(|b| value / b.max(1e-9)),
        "target": target, "met": met,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Quiet unless asked: `RUST_LOG=portico_projections=debug` shows the rebuild's phases.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    if let Some(path) = &cli.rebuild_child {
        return match rebuild::measure(path).await {
            Ok(f) => {
                // The parent reads this line.
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", serde_json::to_string(&f).unwrap_or_default());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rebuild child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn wanted(cli: &Cli, name: &str) -> bool {
    cli.only.is_empty() || cli.only.iter().any(|o| o == name)
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let sizes = if cli.quick {
        Sizes {
            invoices: 128,
            raw_events: 384,
            rebuild_events: 20_000,
            http_secs: 2,
            bulk_reps: 3,
        }
    } else {
        Sizes {
            invoices: 1024,
            raw_events: 3072,
            rebuild_events: 1_000_000,
            http_secs: 10,
            bulk_reps: 20,
        }
    };
    let mut rows = Vec::new();
    let mut targets = vec![("sqlite", Target::Sqlite)];
    if let Some(url) = &cli.postgres {
        targets.push(("postgres", Target::Postgres(url.clone())));
    }

    if wanted(cli, "append") {
        for (backend, target) in &targets {
            eprintln!("append on {backend} ...");
            let (per_event, sequential) =
                append::sequential_pair(target, sizes.raw_events, sizes.invoices, 4).await?;
            let mut sequential = Some(sequential);
            let (one_tx, group) =
                append::group_pair(target, sizes.raw_events, sizes.invoices, 64, 4).await?;
            let mut group = Some(group);
            rows.push(row(
                &format!("append/{backend}"),
                "raw insert, one transaction per event, alternating with 1 writer (events/s)",
                per_event.rate(),
                None,
                "",
                None,
            ));
            rows.push(row(
                &format!("append/{backend}"),
                "raw insert, all in one transaction, alternating with 64 writers (events/s)",
                one_tx.rate(),
                None,
                "",
                None,
            ));
            for writers in [1usize, 16, 64] {
                let measured = match writers {
                    1 => sequential.take(),
                    64 => group.take(),
                    _ => None,
                };
                let f = match measured {
                    Some(f) => f,
                    None => append::command_path(target, sizes.invoices, writers).await?,
                };
                let name = format!("append/{backend}/{writers} writer(s)");
                rows.push(row(
                    &name,
                    "command path (events/s)",
                    f.rate(),
                    Some(per_event.rate()),
                    if writers == 1 {
                        ">= 0.8 x one-per-event"
                    } else {
                        ""
                    },
                    (writers == 1).then(|| f.rate() >= 0.8 * per_event.rate()),
                ));
                rows.push(row(
                    &name,
                    "command path vs all-in-one (events/s)",
                    f.rate(),
                    Some(one_tx.rate()),
                    if writers == 64 {
                        ">= 0.25 x all-in-one"
                    } else {
                        ""
                    },
                    (writers == 64).then(|| f.rate() >= 0.25 * one_tx.rate()),
                ));
                rows.push(row(
                    &name,
                    "commit latency p50 (ms)",
                    f.latency.ms(0.5),
                    None,
                    "",
                    None,
                ));
                rows.push(row(
                    &name,
                    "commit latency p99 (ms)",
                    f.latency.ms(0.99),
                    None,
                    "",
                    None,
                ));
            }
        }
        if let Some(url) = &cli.postgres {
            eprintln!("postgres ordering schemes ...");
            let schemes = append::pg_schemes(url, sizes.raw_events, 16).await?;
            let plain = schemes[0].1;
            for (scheme, rate) in schemes {
                rows.push(row(
                    "append/postgres/16 raw writers",
                    &format!("{scheme} (events/s)"),
                    rate,
                    Some(plain),
                    "",
                    None,
                ));
            }
        }
    }

    if wanted(cli, "rebuild") {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("rebuild.db");
        match &cli.rebuild_log {
            Some(log) => {
                rebuild::generate(log, sizes.rebuild_events).await?;
                rebuild::copy_log(log, &path).await?;
            }
            None => {
                rebuild::generate(&path, sizes.rebuild_events).await?;
            }
        }
        for (backend, target) in &targets {
            let figures = match target {
                Target::Sqlite => rebuild_in_child(&path.to_string_lossy())?,
                Target::Postgres(_) => {
                    let fresh = db::Fresh::new(target).await?;
                    let outcome = async {
                        let Db::Postgres(pool) = &fresh.db else {
                            anyhow::bail!("a PostgreSQL target opened another database")
                        };
                        eprintln!("rebuild: copying the log into PostgreSQL ...");
                        rebuild::copy_to_postgres(&path, pool).await?;
                        rebuild_in_child(&fresh.url)
                    }
                    .await;
                    fresh.close().await;
                    outcome?
                }
            };
            rebuild_rows(backend, &figures, &mut rows);
        }
    }

    if wanted(cli, "http") || wanted(cli, "bulk") {
        for (backend, target) in &targets {
            match target {
                Target::Sqlite => portal_workloads(cli, &sizes, backend, None, &mut rows).await?,
                Target::Postgres(_) => {
                    let fresh = db::Fresh::new(target).await?;
                    let url = fresh.url.clone();
                    let outcome =
                        portal_workloads(cli, &sizes, backend, Some(url), &mut rows).await;
                    fresh.close().await;
                    outcome?;
                }
            }
        }
    }

    print_report(cli.json, &rows)
}

/// Runs the measured half of the rebuild workload on `database` in a child process, so
/// its peak memory is its own.
fn rebuild_in_child(database: &str) -> anyhow::Result<rebuild::Figures> {
    eprintln!("rebuild: measuring in a child process ...");
    // The child's stderr (its errors, and its tracing with RUST_LOG) goes to ours.
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--rebuild-child")
        .arg(database)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the rebuild child failed ({}); its errors are above",
        out.status
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn rebuild_rows(backend: &str, f: &rebuild::Figures, rows: &mut Vec<Value>) {
    let name = format!("rebuild/{backend}");
    let rate = f.events as f64 / f.rebuild_secs;
    let scan = f.events as f64 / f.scan_secs;
    rows.push(row(
        &name,
        &format!("raw scan + JSON decode of {} events (events/s)", f.events),
        scan,
        None,
        "",
        None,
    ));
    rows.push(row(
        &name,
        "rebuild of all read models (events/s)",
        rate,
        Some(scan),
        ">= 0.3 x scan",
        Some(rate >= 0.3 * scan),
    ));
    if let Some(rss) = f.peak_rss_mib {
        rows.push(row(
            &name,
            "peak RSS of the rebuilding process (MiB)",
            rss,
            None,
            "< 300 MiB at 1M events",
            Some(rss < 300.0),
        ));
    }
}

/// The HTTP and bulk-pay workloads against a Portico server on `database_url` (the
/// embedded SQLite default when `None`).
async fn portal_workloads(
    cli: &Cli,
    sizes: &Sizes,
    backend: &str,
    database_url: Option<String>,
    rows: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let portal = http::Portal::start(database_url.clone(), 40).await?;
    let (_, position) = portal.issue(1).await?;
    portal.wait_for(position).await?;
    // On PostgreSQL, statistics as autovacuum leaves them in service (see
    // `append::established`): without them the cached generic plans of a fresh database
    // scanned whole tables: a submission of 100 invoices read its streams in 2.8 ms and
    // wrote its ledger rows in 2.1 ms, against 1.5 ms and 0.6 ms with statistics.
    if let Some(url) = &database_url {
        if let Db::Postgres(pool) = Db::connect(url).await? {
            sqlx::query("ANALYZE").execute(&pool).await?;
            pool.close().await;
        }
    }
    if wanted(cli, "http") {
        for endpoint in ["/v1/portal/dashboard", "/v1/portal/invoices"] {
            eprintln!("http {endpoint} on {backend} ...");
            let url = format!("{}{endpoint}", portal.base);
            let body = portal
                .http
                .get(&url)
                .bearer_auth(&portal.session)
                .send()
                .await?
                .bytes()
                .await?
                .to_vec();
            let size = body.len();
            let baseline_url = http::static_server(body).await?;
            let duration = Duration::from_secs(sizes.http_secs);
            let (base, real) =
                http::alternating(&baseline_url, &url, &portal.session, duration, 4).await?;
            let name = format!("http/{backend}{endpoint} ({size} B)");
            rows.push(row(
                &name,
                "static handler, 64 connections, alternating (req/s)",
                base.rate(),
                None,
                "",
                None,
            ));
            // The latencies of a handler that does nothing, for the p99 target.
            for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
                rows.push(row(
                    &name,
                    &format!("static handler {label} (ms)"),
                    base.latency.ms(q),
                    None,
                    "",
                    None,
                ));
            }
            rows.push(row(
                &name,
                "Portico, 64 connections (req/s)",
                real.rate(),
                Some(base.rate()),
                ">= 0.3 x static",
                Some(real.rate() >= 0.3 * base.rate()),
            ));
            rows.push(row(
                &name,
                "Portico p50 (ms)",
                real.latency.ms(0.5),
                None,
                "",
                None,
            ));
            rows.push(row(
                &name,
                "Portico p99 (ms)",
                real.latency.ms(0.99),
                None,
                "< 5 ms",
                Some(real.latency.ms(0.99) < 5.0),
            ));
            rows.push(row(
                &name,
                "Portico p99.9 (ms)",
                real.latency.ms(0.999),
                None,
                "",
                None,
            ));
        }
    }
    if wanted(cli, "bulk") {
        for k in [1usize, 10, 100] {
            eprintln!("bulk pay of {k} on {backend} ...");
            let mut latency = stats::Samples::default();
            for _ in 0..sizes.bulk_reps {
                let (ids, position) = portal.issue(k).await?;
                latency.push(portal.pay(&ids, position).await?);
            }
            let name = format!("bulk pay/{backend}/{k} invoice(s)");
            rows.push(row(
                &name,
                "submit p50 (ms)",
                latency.ms(0.5),
                None,
                if k == 100 { "< 20 ms" } else { "" },
                (k == 100).then(|| latency.ms(0.5) < 20.0),
            ));
            rows.push(row(
                &name,
                "submit p99 (ms)",
                latency.ms(0.99),
                None,
                "",
                None,
            ));
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // the report is the program's output
fn print_report(as_json: bool, rows: &[Value]) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!("| workload | measure | value | baseline | ratio | target | met |");
    println!("|---|---|---:|---:|---:|---|---|");
    for r in rows {
        let num = |v: &Value| {
            v.as_f64()
                .map(|x| {
                    if x >= 100.0 {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.2}")
                    }
                })
                .unwrap_or_default()
        };
        let met = match r["met"].as_bool() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r["workload"].as_str().unwrap_or_default(),
            r["measure"].as_str().unwrap_or_default(),
            num(&r["value"]),
            num(&r["baseline"]),
            r["ratio"]
                .as_f64()
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_default(),
            r["target"].as_str().unwrap_or_default(),
            met
        );
    }
    Ok(())
}
