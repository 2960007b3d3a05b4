//! Payments stranded between the log and the gateway.
//!
//! A submission appends its `PaymentSubmitted` events first and charges the gateway after.
//! If the process dies in between, the log holds payments as submitted that no gateway
//! ever saw: the invoice shows "payment pending" and cannot be paid again, and no webhook
//! will ever come. The reconciler looks for card payments still submitted after
//! [`STRANDED_AFTER`], asks the gateway to abandon each (it agrees only when it has no
//! charge for it, and then refuses any later one), and records the abandoned ones as
//! failed, which frees their amount. A payment the gateway did charge is left to its
//! webhook.

use std::time::Duration;

use portico_domain::ids::{FirmId, InvoiceId, PaymentId};
use portico_domain::invoice::Invoice;
use portico_domain::streams::StreamId;
use portico_store::hash::format_instant;
use portico_store::Metadata;

use crate::commands::run;
use crate::error::ApiResult;
use crate::state::AppState;

/// How long a payment may stay submitted before it counts as stranded: far longer than a
/// submission takes from its append to its gateway call.
pub const STRANDED_AFTER: chrono::Duration = chrono::Duration::minutes(2);

/// How often the reconciler looks.
pub const EVERY: Duration = Duration::from_secs(30);

pub const REASON: &str = "the charge never reached the payment gateway";

#[derive(Debug, sqlx::FromRow)]
struct Stranded {
    payment_id: String,
    invoice_id: String,
    firm_id: String,
}

/// One pass; returns how many payments it recorded as failed.
pub async fn run_once(state: &AppState) -> ApiResult<usize> {
    let before = format_instant(state.clock.now() - STRANDED_AFTER);
    let stranded: Vec<Stranded> = state
        .db
        .fetch_all(
            "SELECT payment_id, invoice_id, firm_id FROM payments \
             WHERE status = 'submitted' AND method <> 'offline' AND submitted_at < $1 \
             ORDER BY submitted_at LIMIT 100",
            &[before.into()],
        )
        .await?;
    let mut failed = 0;
    for p in stranded {
        let (Ok(payment_id), Ok(invoice_id), Ok(firm_id)) = (
            p.payment_id.parse::<PaymentId>(),
            p.invoice_id.parse::<InvoiceId>(),
            p.firm_id.parse::<FirmId>(),
        ) else {
            continue;
        };
        match state.gateway.abandon(payment_id, invoice_id).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, %payment_id, "cannot ask the gateway about a stranded payment");
                continue;
            }
        }
        let stream = StreamId::invoice(invoice_id);
        let meta = Metadata::new(Some(firm_id), "reconciler");
        let recorded = run(state, &meta, std::slice::from_ref(&stream), |l| {
            l.replay::<Invoice>(&stream)
                .fail(payment_id, REASON.to_owned())
        })
        .await;
        match recorded {
            Ok(_) => {
                tracing::info!(%payment_id, "stranded payment recorded as failed");
                failed += 1;
            }
            // Settled or failed meanwhile: nothing to do.
            Err(e) if e.status() == axum::http::StatusCode::CONFLICT => {}
            Err(e) => return Err(e),
        }
    }
    Ok(failed)
}

/// Runs [`run_once`] every [`EVERY`] until `shutdown` resolves.
pub async fn run_every(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        if let Err(e) = run_once(&state).await {
            tracing::warn!(error = %e, "reconciling stranded payments failed; will retry");
        }
    }
}
