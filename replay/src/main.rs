//! `portico-replay`: the auditors' and operators' tool. So far: `verify` (every stream's
//! hash chain and version sequence) and `export` (NDJSON of the log with envelopes).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use portico_store::sqlite::SqliteEventStore;
use portico_store::{verify_all, EventStore};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(version, about = "Replay, verify and export Portico's event log")]
struct Cli {
    /// The SQLite database file (the server's `<data-dir>/portico.db`).
    #[arg(long, env = "PORTICO_DATABASE")]
    database: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks every stream's hash chain and version sequence; exits 1 on any problem.
    Verify,
    /// Writes events as NDJSON, one envelope per line, in position order.
    Export {
        /// Only events after this global position.
        #[arg(long, default_value_t = 0)]
        since: i64,
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

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !cli.database.is_file() {
        bail!("no database at {}", cli.database.display());
    }
    let store = SqliteEventStore::open(&cli.database)
        .await
        .with_context(|| format!("opening {}", cli.database.display()))?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Verify => {
            let (problems, checked) = verify_all(&store).await?;
            for p in &problems {
                writeln!(out, "BROKEN {p}")?;
            }
            writeln!(
                out,
                "checked {checked} events: {} problem(s)",
                problems.len()
            )?;
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
}
