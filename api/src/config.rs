//! Configuration from flags and `PORTICO_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PORTICO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for the embedded SQLite database (and, later, the mail outbox).
    #[arg(long, env = "PORTICO_DATA_DIR", default_value = "./portico-data")]
    pub data_dir: PathBuf,
}

impl ServeConfig {
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("portico.db")
    }
}
