//! A fresh database per workload: a SQLite file in a temporary folder, or a PostgreSQL
//! database created on the given server and dropped afterwards.

use portico_projections::Db;
use sqlx::{Connection, PgConnection};

pub enum Target {
    Sqlite,
    Postgres(String),
}

pub struct Fresh {
    pub db: Db,
    /// What `Db::connect` takes: the SQLite file's path or the PostgreSQL database's URL.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl Fresh {
    pub async fn new(target: &Target) -> anyhow::Result<Fresh> {
        match target {
            Target::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = dir.path().join("bench.db").to_string_lossy().into_owned();
                Ok(Fresh {
                    db: Db::connect(&url).await?,
                    url,
                    _dir: Some(dir),
                    drop_pg: None,
                })
            }
            Target::Postgres(admin) => {
                let name = format!("portico_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = PgConnection::connect(admin).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                Ok(Fresh {
                    db: Db::connect(&url).await?,
                    url,
                    _dir: None,
                    drop_pg: Some((admin.clone(), name)),
                })
            }
        }
    }

    pub async fn close(self) {
        match &self.db {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
        if let Some((admin, name)) = &self.drop_pg {
            if let Ok(mut conn) = PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}
