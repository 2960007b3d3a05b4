//! Checkouts: the contact picks unpaid invoices (PAY NOW is a checkout of one); the
//! Wallet page then shows and submits it.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use portico_domain::ids::InvoiceId;
use portico_domain::Currency;
use portico_projections::queries;
use portico_store::hash::format_instant;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::sessions::PortalSession;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

pub const MAX_LINES: usize = 100;
pub const CHECKOUT_TTL: Duration = Duration::hours(1);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewCheckout {
    #[schema(value_type = Vec<String>)]
    pub invoice_ids: Vec<InvoiceId>,
    pub min_position: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckoutLine {
    pub invoice_id: String,
    pub number: String,
    /// What this line pays: the invoice's balance less any payment awaiting settlement.
    pub amount: String,
    pub amount_minor: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckoutView {
    pub id: String,
    pub wallet_url: String,
    pub currency: String,
    pub total: String,
    pub lines: Vec<CheckoutLine>,
    pub expires_at: String,
    /// Set once the checkout was submitted.
    pub submission_id: Option<String>,
}

pub fn amount_text(minor: i64, currency: &str) -> String {
    Currency::parse(currency)
        .and_then(|c| portico_domain::Money::from_minor(minor, c))
        .map(|m| m.amount().to_string())
        .unwrap_or_default()
}

/// Starts paying one or more of the contact's own unpaid invoices, all in one currency.
#[utoipa::path(post, path = "/v1/portal/checkouts", tag = "portal", request_body = NewCheckout,
    responses((status = 201, body = CheckoutView), (status = 404), (status = 409), (status = 422)), security(("session" = [])))]
pub async fn create_checkout(
    State(state): State<AppState>,
    session: PortalSession,
    ApiJson(body): ApiJson<NewCheckout>,
) -> ApiResult<(StatusCode, ApiJson<CheckoutView>)> {
    if body.invoice_ids.is_empty() {
        return Err(ApiError::validation("pick at least one invoice"));
    }
    if body.invoice_ids.len() > MAX_LINES {
        return Err(ApiError::validation(format!(
            "at most {MAX_LINES} invoices in one checkout"
        )));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = body.invoice_ids.iter().find(|i| !seen.insert(**i)) {
        return Err(ApiError::validation(format!(
            "invoice {dup} is listed twice"
        )));
    }
    state.read_after(body.min_position).await?;
    let scope = session.client_scope();
    let today = state.today_for(session.firm_id).await?;
    let mut lines = Vec::new();
    let mut unpayable = Vec::new();
    let mut currency: Option<String> = None;
    for id in &body.invoice_ids {
        let invoice = queries::client_invoice(&state.db, &scope, *id, today)
            .await?
            .ok_or(ApiError::NotFound("invoice"))?;
        let pending_minor = crate::wallet::minor(&invoice.pending, &invoice.currency);
        let available = invoice.balance_minor - pending_minor;
        if available <= 0 {
            let reason = if invoice.balance_minor == 0 {
                "the invoice is already paid"
            } else {
                "a payment for the rest of this invoice is awaiting settlement"
            };
            unpayable.push(json!({ "invoice_id": invoice.id, "reason": reason }));
            continue;
        }
        match &currency {
            Some(c) if *c != invoice.currency => {
                return Err(ApiError::validation(
                    "one checkout pays invoices of one currency",
                ));
            }
            _ => currency = Some(invoice.currency.clone()),
        }
        lines.push(CheckoutLine {
            invoice_id: invoice.id,
            number: invoice.number,
            amount: amount_text(available, &invoice.currency),
            amount_minor: available,
        });
    }
    if !unpayable.is_empty() {
        return Err(ApiError::PaymentConflict {
            invoices: unpayable,
        });
    }
    let currency = currency.unwrap_or_default();
    let total_minor: i64 = lines.iter().map(|l| l.amount_minor).sum();
    let checkout_id = uuid::Uuid::now_v7().to_string();
    let now = state.clock.now();
    let expires_at = format_instant(now + CHECKOUT_TTL);
    state
        .db
        .execute(
            "INSERT INTO checkouts (checkout_id, firm_id, client_id, contact_id, currency, total_minor, lines, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                checkout_id.clone().into(),
                session.firm_id.to_string().into(),
                session.client_id.to_string().into(),
                session.contact_id.to_string().into(),
                currency.clone().into(),
                total_minor.into(),
                serde_json::to_string(&lines).unwrap_or_default().into(),
                format_instant(now).into(),
                expires_at.clone().into(),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CheckoutView {
            wallet_url: format!("{}/wallet/{checkout_id}", state.settings.public_url),
            id: checkout_id,
            total: amount_text(total_minor, &currency),
            currency,
            lines,
            expires_at,
            submission_id: None,
        }),
    ))
}
