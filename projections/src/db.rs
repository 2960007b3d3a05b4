//! One handle on the read-model database, SQLite or PostgreSQL, and the small amount of
//! glue that lets one SQL text serve both: `$n` placeholders (SQLite accepts them), and
//! arguments limited to integers and text (ids, dates and instants are stored as text in
//! sortable ISO forms, amounts as integer minor units).

use std::path::Path;
use std::sync::Arc;

use portico_store::postgres::PgEventStore;
use portico_store::sqlite::SqliteEventStore;
use portico_store::{EventStore, StoreError};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, PgPool, SqlitePool};

#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A statement argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Arg {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(i64::from(v))
    }
}

/// Binds `args` onto a query of either backend.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::OptText(s) => q.bind(s.as_deref()),
            };
        }
        q
    }};
}

impl Db {
    /// Opens the database named by `target` and migrates it: a `postgres://` URL, or a
    /// SQLite file path (optionally `sqlite://path`).
    pub async fn connect(target: &str) -> Result<Db, StoreError> {
        if target.starts_with("postgres://") || target.starts_with("postgresql://") {
            Ok(Db::Postgres(
                portico_store::postgres::open_pool(target).await?,
            ))
        } else {
            let path = target.strip_prefix("sqlite://").unwrap_or(target);
            Ok(Db::Sqlite(
                portico_store::sqlite::open_pool(Path::new(path)).await?,
            ))
        }
    }

    /// The event store on the same database.
    pub async fn event_store(&self) -> Result<Arc<dyn EventStore>, StoreError> {
        Ok(match self {
            Db::Sqlite(pool) => Arc::new(SqliteEventStore::from_pool(pool.clone()).await?),
            Db::Postgres(pool) => Arc::new(PgEventStore::from_pool(pool.clone()).await?),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs a query and maps each row with `FromRow`.
    pub async fn fetch_all<R>(&self, sql: &str, args: &[Arg]) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        match self {
            Db::Sqlite(pool) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(pool)
                    .await
            }
            Db::Postgres(pool) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(pool)
                    .await
            }
        }
    }

    pub async fn fetch_optional<R>(&self, sql: &str, args: &[Arg]) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        match self {
            Db::Sqlite(pool) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(pool)
                    .await
            }
            Db::Postgres(pool) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(pool)
                    .await
            }
        }
    }

    pub async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => bind_args!(sqlx::query(sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
            Db::Postgres(pool) => bind_args!(sqlx::query(sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Opens a write transaction. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`), so the checkpoint it reads cannot change under it.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }
}

/// A write transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub async fn fetch_optional<R>(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        match self {
            Tx::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
    }

    pub async fn fetch_all<R>(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<R>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        match self {
            Tx::Sqlite(tx) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                bind_args!(sqlx::query_as::<_, R>(sql), args)
                    .fetch_all(&mut **tx)
                    .await
            }
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }
}

impl Db {
    /// Rows of text columns (the query casts what it selects to text); for dumps and
    /// comparisons, where one shape must serve every table.
    pub async fn fetch_text_rows(
        &self,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    (0..columns)
                        .map(|i| r.try_get::<Option<String>, _>(i))
                        .collect()
                })
                .collect::<Result<_, _>>()?,
            Db::Postgres(pool) => sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    (0..columns)
                        .map(|i| r.try_get::<Option<String>, _>(i))
                        .collect()
                })
                .collect::<Result<_, _>>()?,
        })
    }
}
