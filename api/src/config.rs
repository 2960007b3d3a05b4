//! Configuration from flags and `PORTICO_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PORTICO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for the embedded SQLite database and the mail outbox.
    #[arg(long, env = "PORTICO_DATA_DIR", default_value = "./portico-data")]
    pub data_dir: PathBuf,

    /// A `postgres://` URL to keep events and read models in PostgreSQL instead of SQLite.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// The URL clients reach this server at, for links in emails (default: from --listen).
    #[arg(long, env = "PORTICO_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seed a demo firm with clients, projects, team and invoices, and print an invite link.
    #[arg(long, env = "PORTICO_DEMO")]
    pub demo: bool,

    /// Secret for signing gateway webhooks (default: random at each start).
    #[arg(long, env = "PORTICO_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Mark session cookies `Secure` (set this behind TLS).
    #[arg(long, env = "PORTICO_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// How long the sandbox gateway takes to settle a `tok_settle_later` charge.
    #[arg(long, env = "PORTICO_SANDBOX_SETTLE_DELAY_MS", default_value_t = 3000)]
    pub sandbox_settle_delay_ms: u64,

    /// A session ends after this many idle minutes.
    #[arg(long, env = "PORTICO_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: i64,

    /// A session ends this many hours after login, active or not.
    #[arg(long, env = "PORTICO_SESSION_ABSOLUTE_HOURS", default_value_t = 12)]
    pub session_absolute_hours: i64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PORTICO_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// On PostgreSQL, the longest a checked session is served from memory before it is
    /// read again. Changes made through other replicas end a cached session as soon as
    /// their notice arrives; this bounds how long a connection that died silently (and
    /// so delivers no notices) can leave one standing.
    #[arg(long, env = "PORTICO_SESSION_CACHE_MAX_AGE_MS", default_value_t = 1000)]
    pub session_cache_max_age_ms: u64,
}

impl ServeConfig {
    /// Defaults for tests and embedding: SQLite under `data_dir`, any free port.
    pub fn for_data_dir(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url: None,
            public_url: None,
            demo: false,
            webhook_secret: None,
            secure_cookies: false,
            sandbox_settle_delay_ms: 3000,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            max_body_bytes: 64 * 1024,
            session_cache_max_age_ms: 1000,
        }
    }

    /// What `Db::connect` opens: the PostgreSQL URL, or the SQLite file in the data dir.
    pub fn database_target(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self
                .data_dir
                .join("portico.db")
                .to_string_lossy()
                .into_owned(),
        }
    }
}
