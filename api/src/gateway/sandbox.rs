//! The built-in sandbox gateway. It behaves as a real one would: it accepts a charge,
//! keeps it in its own ledger (`sandbox_charges`), and reports the outcome by POSTing a
//! signed webhook to Portico's webhook endpoint, retrying until it is acknowledged.
//!
//! Test tokens: `tok_succeed` (settles at once), `tok_decline` (fails at once),
//! `tok_settle_later` (settles after the configured delay).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portico_domain::clock::Clock;
use portico_projections::db::Arg;
use portico_projections::Db;
use portico_store::hash::format_instant;
use tokio::sync::Notify;

use super::{Charge, ChargeOutcome, GatewayError, PaymentGateway, PaymentMethod};
use crate::webhooks::{sign, WebhookEvent, SIGNATURE_HEADER};

pub const TOKENS: &[&str] = &["tok_succeed", "tok_decline", "tok_settle_later"];

#[derive(Debug, Clone)]
pub struct SandboxGateway {
    db: Db,
    webhook_url: String,
    secret: Arc<Vec<u8>>,
    settle_delay: Duration,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    http: reqwest::Client,
}

#[derive(Debug, sqlx::FromRow)]
struct Existing {
    reference: String,
    outcome: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Due {
    reference: String,
    payment_id: String,
    invoice_id: String,
    outcome: String,
    attempts: i64,
}

impl SandboxGateway {
    pub fn new(
        db: Db,
        webhook_url: String,
        secret: Vec<u8>,
        settle_delay: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            webhook_url,
            secret: Arc::new(secret),
            settle_delay,
            clock,
            wake: Arc::new(Notify::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Delivers owed webhooks until `shutdown` resolves.
    pub async fn run_deliveries(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e, "sandbox webhook delivery failed; will retry");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn deliver_due(&self) -> Result<(), sqlx::Error> {
        let now = format_instant(self.clock.now());
        let due: Vec<Due> = self
            .db
            .fetch_all(
                "SELECT reference, payment_id, invoice_id, outcome, attempts FROM sandbox_charges \
                 WHERE delivered_at IS NULL AND deliver_after <= $1 ORDER BY deliver_after LIMIT 50",
                &[now.clone().into()],
            )
            .await?;
        for charge in due {
            let event = WebhookEvent {
                kind: format!("charge.{}", charge.outcome),
                reference: charge.reference.clone(),
                payment_id: charge.payment_id,
                invoice_id: charge.invoice_id,
                reason: (charge.outcome == "failed").then(|| "card declined (sandbox)".to_owned()),
            };
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let signature = sign(&self.secret, self.clock.now().timestamp(), &body);
            let sent = self
                .http
                .post(&self.webhook_url)
                .header(SIGNATURE_HEADER, signature)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.db
                        .execute(
                            "UPDATE sandbox_charges SET delivered_at = $2, attempts = attempts + 1 WHERE reference = $1",
                            &[charge.reference.into(), format_instant(self.clock.now()).into()],
                        )
                        .await?;
                }
                other => {
                    let status = other
                        .map(|r| r.status().to_string())
                        .unwrap_or_else(|e| e.to_string());
                    tracing::warn!(%status, reference = %charge.reference, "webhook not acknowledged; retrying later");
                    let wait = chrono::Duration::seconds(1 << charge.attempts.clamp(0, 6));
                    self.db
                        .execute(
                            "UPDATE sandbox_charges SET attempts = attempts + 1, deliver_after = $2 WHERE reference = $1",
                            &[charge.reference.into(), format_instant(self.clock.now() + wait).into()],
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn check_method(&self, method: &PaymentMethod) -> Result<(), String> {
        if method.kind != "card" {
            return Err(format!(
                "the sandbox takes payment method type `card`, not `{}`",
                method.kind
            ));
        }
        if !TOKENS.contains(&method.token.as_str()) {
            return Err(format!(
                "the sandbox takes the test tokens {}",
                TOKENS.join(", ")
            ));
        }
        Ok(())
    }

    async fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, GatewayError> {
        self.charge_all(std::slice::from_ref(charge))
            .await
            .pop()
            .unwrap_or_else(|| Err(GatewayError::Unavailable("no outcome".into())))
    }

    async fn abandon(
        &self,
        payment_id: portico_domain::ids::PaymentId,
        invoice_id: portico_domain::ids::InvoiceId,
    ) -> Result<bool, GatewayError> {
        let now = format_instant(self.clock.now());
        let claimed = self
            .db
            .execute(
                "INSERT INTO sandbox_charges (reference, payment_id, invoice_id, outcome, deliver_after, delivered_at, attempts) \
                 VALUES ($1, $2, $3, 'abandoned', $4, $4, 0) ON CONFLICT (payment_id) DO NOTHING",
                &[
                    format!("sbx_void_{}", uuid::Uuid::now_v7().simple()).into(),
                    payment_id.to_string().into(),
                    invoice_id.to_string().into(),
                    now.into(),
                ],
            )
            .await
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        Ok(claimed == 1)
    }

    /// One ledger transaction for the submission; each charge keeps its own reference and
    /// its own webhook, as separate gateway transactions do.
    async fn charge_all(&self, charges: &[Charge]) -> Vec<Result<ChargeOutcome, GatewayError>> {
        let unavailable = |e: &dyn std::fmt::Display| {
            charges
                .iter()
                .map(|_| Err(GatewayError::Unavailable(e.to_string())))
                .collect()
        };
        let mut tx = match self.db.begin().await {
            Ok(tx) => tx,
            Err(e) => return unavailable(&e),
        };
        // The ledger rows, then one multi-row INSERT per 1,000 of them: a statement per
        // charge was a round trip each, most of a 100-invoice submission's time.
        let rows: Vec<[String; 5]> = charges
            .iter()
            .map(|charge| {
                let (outcome, delay) = match charge.method.token.as_str() {
                    "tok_succeed" => ("succeeded", Duration::ZERO),
                    "tok_settle_later" => ("succeeded", self.settle_delay),
                    _ => ("failed", Duration::ZERO),
                };
                let deliver_after =
                    self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
                [
                    format!("sbx_{}", uuid::Uuid::now_v7().simple()),
                    charge.payment_id.to_string(),
                    charge.invoice_id.to_string(),
                    outcome.to_owned(),
                    format_instant(deliver_after),
                ]
            })
            .collect();
        let mut inserted = std::collections::HashSet::new();
        for chunk in rows.chunks(1000) {
            let mut sql = String::from(
                "INSERT INTO sandbox_charges \
                 (reference, payment_id, invoice_id, outcome, deliver_after, attempts) VALUES ",
            );
            let mut args = Vec::with_capacity(chunk.len() * 5);
            for (i, row) in chunk.iter().enumerate() {
                let n = i * 5;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, 0)",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                ));
                args.extend(row.iter().map(|v| Arg::from(v.as_str())));
            }
            sql.push_str(" ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id");
            match tx.fetch_all::<(String,)>(&sql, &args).await {
                Ok(returned) => inserted.extend(returned.into_iter().map(|(p,)| p)),
                Err(e) => return unavailable(&e),
            }
        }
        let mut references = Vec::with_capacity(charges.len());
        for [reference, payment_id, ..] in rows {
            if inserted.contains(&payment_id) {
                references.push(Ok(reference));
                continue;
            }
            // Charged before (idempotent), or abandoned: the ledger row says which.
            let existing: Result<Option<Existing>, _> = tx
                .fetch_optional(
                    "SELECT reference, outcome FROM sandbox_charges WHERE payment_id = $1",
                    &[payment_id.into()],
                )
                .await;
            match existing {
                Ok(Some(e)) if e.outcome == "abandoned" => {
                    references.push(Err(
                        "the payment was abandoned before it was charged".to_owned()
                    ));
                }
                Ok(Some(e)) => references.push(Ok(e.reference)),
                Ok(None) => references.push(Ok(reference)),
                Err(e) => return unavailable(&e),
            }
        }
        if let Err(e) = tx.commit().await {
            return unavailable(&e);
        }
        self.wake.notify_one();
        references
            .into_iter()
            .map(|r| match r {
                Ok(reference) => Ok(ChargeOutcome::Pending { reference }),
                Err(reason) => Ok(ChargeOutcome::Declined { reason }),
            })
            .collect()
    }
}
