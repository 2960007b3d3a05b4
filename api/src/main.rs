use clap::{Parser, Subcommand};
use portico_api::config::ServeConfig;
use portico_api::Application;
use portico_domain::clock::{Clock, SystemClock};
use tracing_subscriber::EnvFilter;

/// Portico: the backend of a billing client portal.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    serve: ServeConfig,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage firms.
    Firm {
        #[command(subcommand)]
        action: FirmAction,
    },
}

#[derive(Debug, Subcommand)]
enum FirmAction {
    /// Registers a firm and prints its first API key.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        logo_url: Option<String>,
        /// IANA time zone: due dates are compared with the firm's "today".
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// BCP 47 language tag the portal formats dates and amounts with.
        #[arg(long, default_value = "en-US")]
        locale: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Firm {
            action:
                FirmAction::Create {
                    name,
                    logo_url,
                    time_zone,
                    locale,
                },
        }) => create_firm(&cli.serve, &name, logo_url.as_deref(), &time_zone, &locale).await,
        None => serve(cli.serve).await,
    }
}

/// The binary's console output: what an operator asked to see.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

async fn create_firm(
    config: &ServeConfig,
    name: &str,
    logo_url: Option<&str>,
    time_zone: &str,
    locale: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let db = portico_projections::Db::connect(&config.database_target()).await?;
    let store = db.event_store().await?;
    let (firm_id, key) = portico_api::firm::register_firm(
        &db,
        store.as_ref(),
        SystemClock.now(),
        name,
        logo_url,
        time_zone,
        locale,
    )
    .await?;
    say(&format!("firm id:  {firm_id}"));
    say(&format!("API key:  {}", key.expose()));
    say("Keep the key: only its hash is stored.");
    Ok(())
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    if config.demo {
        let demo = portico_api::demo::seed(app.state()).await?;
        let url = &app.state().settings.public_url;
        say("");
        say(&format!(
            "Demo firm \"{}\" is ready (firm id {}).",
            portico_api::demo::FIRM_NAME,
            demo.firm_id
        ));
        say(&format!("Firm API key:  {}", demo.api_key));
        say(&format!(
            "Open the portal: the invite link for {} (activate, then pay):",
            demo.invite_email
        ));
        say(&format!("  {}", demo.invite_link));
        say(&format!(
            "Portal login (after activating): {url}/login?firm={}",
            demo.firm_id
        ));
        say(&format!(
            "Portal API:    curl {url}/v1/portal/invites/{}",
            demo.invite_link.rsplit('/').next().unwrap_or_default()
        ));
        say("");
    }
    app.run_until(async {
        // If the signal handler cannot be installed, serve until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}
