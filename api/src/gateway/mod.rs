//! Payment gateways. Each invoice of a submission is charged as its own transaction; the
//! gateway answers at once (accepted, or declined outright) and reports the final outcome
//! later through a signed webhook, which is what appends `PaymentSettled` or
//! `PaymentFailed`.

pub mod sandbox;

use async_trait::async_trait;
use portico_domain::ids::{InvoiceId, PaymentId};
use portico_domain::Money;
use serde::Deserialize;

/// How the contact pays: a method type and the gateway's token for it (never a card
/// number).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentMethod {
    /// `card`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A gateway token; the sandbox takes `tok_succeed`, `tok_decline`, `tok_settle_later`.
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Charge {
    pub payment_id: PaymentId,
    pub invoice_id: InvoiceId,
    pub amount: Money,
    pub method: PaymentMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Accepted; the outcome comes by webhook.
    Pending { reference: String },
    /// Refused outright.
    Declined { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// Path segment of its webhook (`/v1/webhooks/{name}`) and part of its actor name.
    fn name(&self) -> &'static str;
    /// Refuses a method the gateway cannot charge, before anything is recorded.
    fn check_method(&self, method: &PaymentMethod) -> Result<(), String>;
    /// Charges one payment; idempotent per `payment_id`.
    async fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, GatewayError>;

    /// For a payment the log holds as submitted but the gateway may never have been asked
    /// to charge (the process died between the two): `true` when the gateway has no charge
    /// for it and will refuse one from now on, so it can be recorded as failed; `false`
    /// when a charge exists (its webhook will tell the outcome). A gateway that cannot
    /// promise that answers `false`, and the payment waits for a person.
    async fn abandon(
        &self,
        _payment_id: PaymentId,
        _invoice_id: InvoiceId,
    ) -> Result<bool, GatewayError> {
        Ok(false)
    }

    /// Charges the payments of one submission, each its own gateway transaction, with an
    /// outcome each in the same order. A gateway that can take them in one request
    /// overrides this; by default they are charged one by one.
    async fn charge_all(&self, charges: &[Charge]) -> Vec<Result<ChargeOutcome, GatewayError>> {
        let mut outcomes = Vec::with_capacity(charges.len());
        for charge in charges {
            outcomes.push(self.charge(charge).await);
        }
        outcomes
    }
}
