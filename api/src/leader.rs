//! Who runs the projectors. On SQLite there is one process, so it does. On PostgreSQL many
//! API processes may share the database: the one holding a session-level advisory lock
//! runs them; the others only serve, and take over when the leader's connection (and so
//! its lock) goes away.

use std::sync::Arc;
use std::time::Duration;

use portico_projections::{Db, Runner};
use sqlx::Connection;
use tokio::sync::watch;

/// The advisory lock key for the projector leader.
pub const LEADER_LOCK: i64 = 0x0070_6f72_7469_6c64;

/// Resolves once `shutdown` turns true.
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

pub fn spawn(
    db: Db,
    runner: Arc<Runner>,
    shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(async move {
        match &db {
            Db::Sqlite(_) => lead_sqlite(&runner, &tx, shutdown).await,
            Db::Postgres(pool) => lead_postgres(pool, &runner, &tx, shutdown).await,
        }
    });
    (rx, handle)
}

async fn prepare(runner: &Runner, shutdown: &watch::Receiver<bool>) -> bool {
    loop {
        match runner.prepare().await {
            Ok(()) => return true,
            Err(e) => tracing::error!(error = %e, "preparing projections failed; retrying"),
        }
        if *shutdown.borrow() {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn lead_sqlite(
    runner: &Runner,
    leader: &watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) {
    if !prepare(runner, &shutdown).await {
        return;
    }
    leader.send_replace(true);
    runner.run(stopped(shutdown)).await;
}

async fn lead_postgres(
    pool: &sqlx::PgPool,
    runner: &Runner,
    leader: &watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let attempt = async {
            let mut conn = pool.acquire().await?.detach();
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>((got, conn))
        };
        match attempt.await {
            Ok((true, mut conn)) => {
                tracing::info!("this process now runs the projectors");
                if !prepare(runner, &shutdown).await {
                    return;
                }
                leader.send_replace(true);
                let lost = async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if conn.ping().await.is_err() {
                            tracing::warn!("lost the projector leader lock's connection");
                            return;
                        }
                    }
                };
                let shut = stopped(shutdown.clone());
                runner
                    .run(async {
                        tokio::select! {
                            () = lost => {}
                            () = shut => {}
                        }
                    })
                    .await;
                leader.send_replace(false);
                // Dropping the connection ends its session and releases the lock.
            }
            Ok((false, _)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reach PostgreSQL for the leader lock"),
        }
        tokio::select! {
            () = stopped(shutdown.clone()) => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
