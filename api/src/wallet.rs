//! The Wallet (`/v1/wallet/...`): the payment page's API. It shows a checkout and submits
//! it: one `PaymentSubmitted` per invoice, appended atomically, then each invoice charged
//! as its own gateway transaction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use portico_domain::ids::{InvoiceId, PaymentId, SubmissionId};
use portico_domain::invoice::Invoice;
use portico_domain::streams::StreamId;
use portico_domain::submission::{submit, PaymentLine};
use portico_domain::{Currency, Money};
use portico_projections::queries::{self, PaymentsOf};
use portico_store::Metadata;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::sessions::PortalSession;
use crate::commands::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::gateway::{Charge, ChargeOutcome, PaymentMethod};
use crate::idempotency::{self, Begun};
use crate::portal::checkouts::{amount_text, CheckoutLine, CheckoutView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_checkout))
        .routes(routes!(submit_checkout))
        .routes(routes!(show_submission))
}

/// Minor units of a decimal amount string in `currency` (0 if it does not parse).
pub fn minor(amount: &str, currency: &str) -> i64 {
    Currency::parse(currency)
        .and_then(|c| Money::parse(amount, c))
        .map_or(0, |m| m.minor_units())
}

#[derive(Debug, sqlx::FromRow)]
struct CheckoutRow {
    checkout_id: String,
    currency: String,
    total_minor: i64,
    lines: String,
    expires_at: String,
    submission_id: Option<String>,
}

async fn load_checkout(
    state: &AppState,
    session: &PortalSession,
    id: &str,
) -> ApiResult<(CheckoutRow, Vec<CheckoutLine>)> {
    let row: CheckoutRow = state
        .db
        .fetch_optional(
            "SELECT checkout_id, currency, total_minor, lines, expires_at, submission_id FROM checkouts \
             WHERE checkout_id = $1 AND firm_id = $2 AND client_id = $3",
            &[id.into(), session.firm_id.to_string().into(), session.client_id.to_string().into()],
        )
        .await?
        .ok_or(ApiError::NotFound("checkout"))?;
    let lines: Vec<CheckoutLine> = serde_json::from_str(&row.lines)
        .map_err(|e| ApiError::Internal(format!("checkout lines: {e}")))?;
    Ok((row, lines))
}

fn view(state: &AppState, row: &CheckoutRow, lines: Vec<CheckoutLine>) -> CheckoutView {
    CheckoutView {
        id: row.checkout_id.clone(),
        wallet_url: format!("{}/wallet/{}", state.settings.public_url, row.checkout_id),
        currency: row.currency.clone(),
        total: amount_text(row.total_minor, &row.currency),
        lines,
        expires_at: row.expires_at.clone(),
        submission_id: row.submission_id.clone(),
    }
}

#[utoipa::path(get, path = "/v1/wallet/checkouts/{checkout_id}", tag = "wallet", params(("checkout_id" = String, Path)),
    responses((status = 200, body = CheckoutView), (status = 404)), security(("session" = [])))]
pub async fn show_checkout(
    State(state): State<AppState>,
    session: PortalSession,
    ApiPath(checkout_id): ApiPath<uuid::Uuid>,
) -> ApiResult<ApiJson<CheckoutView>> {
    let (row, lines) = load_checkout(&state, &session, &checkout_id.to_string()).await?;
    Ok(ApiJson(view(&state, &row, lines)))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct SubmitCheckout {
    pub payment_method: PaymentMethod,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubmittedPayment {
    pub payment_id: String,
    pub invoice_id: String,
    pub amount: String,
    /// `submitted`, `settled` or `failed` (later also `refunded`).
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submission {
    pub submission_id: String,
    pub currency: String,
    pub payments: Vec<SubmittedPayment>,
    /// Pass as `min_position` to see this submission in the read models.
    pub position: i64,
}

/// Pays the checkout: every invoice or none. Send an `Idempotency-Key`: a retry with the same
/// key and body returns the first response; another body with the same key is a 422.
#[utoipa::path(post, path = "/v1/wallet/checkouts/{checkout_id}/submit", tag = "wallet", request_body = SubmitCheckout,
    params(("checkout_id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 201, body = Submission), (status = 404), (status = 409), (status = 422)), security(("session" = [])))]
pub async fn submit_checkout(
    State(state): State<AppState>,
    session: PortalSession,
    ApiPath(checkout_id): ApiPath<uuid::Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let key = idempotency::key(&headers)?;
    let scope = format!("contact:{}", session.contact_id);
    let hash = idempotency::request_hash(&[checkout_id.as_bytes(), &body]);
    if let Begun::Replay(response) = idempotency::begin(&state, &scope, &key, &hash).await? {
        return Ok(response);
    }
    let response = match pay(&state, &session, &checkout_id.to_string(), &headers, &body).await {
        Ok(submission) => (StatusCode::CREATED, ApiJson(submission)).into_response(),
        Err(e) => e.into_response(),
    };
    idempotency::finish(&state, &scope, &key, response).await
}

async fn pay(
    state: &AppState,
    session: &PortalSession,
    checkout_id: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Submission> {
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let request: SubmitCheckout = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::validation(e.to_string())
        } else {
            ApiError::MalformedJson(e.to_string())
        }
    })?;
    let (row, lines) = load_checkout(state, session, checkout_id).await?;
    if row.submission_id.is_some() {
        return Err(ApiError::conflict(
            "checkout-submitted",
            "this checkout was already submitted",
        ));
    }
    let expired = DateTime::parse_from_rfc3339(&row.expires_at)
        .map_or(true, |t| t.with_timezone(&Utc) <= state.clock.now());
    if expired {
        return Err(ApiError::conflict(
            "checkout-expired",
            "this checkout expired; start again from the dashboard",
        ));
    }
    state
        .gateway
        .check_method(&request.payment_method)
        .map_err(ApiError::validation)?;
    let currency = Currency::parse(&row.currency).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut planned = Vec::with_capacity(lines.len());
    for line in &lines {
        let invoice_id: InvoiceId = line
            .invoice_id
            .parse()
            .map_err(|_| ApiError::NotFound("invoice"))?;
        let amount = Money::from_minor(line.amount_minor, currency)
            .map_err(portico_domain::DomainError::from)?;
        planned.push((invoice_id, PaymentId::new(), amount));
    }
    let submission_id = SubmissionId::new();
    let streams: Vec<StreamId> = planned
        .iter()
        .map(|(i, _, _)| StreamId::invoice(*i))
        .collect();
    let scope = session.scope();
    let method = request.payment_method.kind.clone();
    let meta = Metadata::new(Some(session.firm_id), session.actor());
    let committed = run(state, &meta, &streams, |l| {
        let invoices: Vec<Invoice> = streams.iter().map(|s| l.replay::<Invoice>(s)).collect();
        let lines: Vec<PaymentLine> = invoices
            .iter()
            .zip(&planned)
            .map(|(invoice, (_, payment_id, amount))| PaymentLine {
                invoice,
                payment_id: *payment_id,
                amount: *amount,
            })
            .collect();
        submit(&scope, submission_id, &method, &lines)
    })
    .await?;
    state
        .db
        .execute(
            "UPDATE checkouts SET submission_id = $2 WHERE checkout_id = $1 AND submission_id IS NULL",
            &[checkout_id.into(), submission_id.to_string().into()],
        )
        .await?;
    let mut position = committed.last_position();
    let mut payments = Vec::with_capacity(planned.len());
    let charges: Vec<Charge> = planned
        .iter()
        .map(|(invoice_id, payment_id, amount)| Charge {
            payment_id: *payment_id,
            invoice_id: *invoice_id,
            amount: *amount,
            method: request.payment_method.clone(),
        })
        .collect();
    let outcomes = state.gateway.charge_all(&charges).await;
    for ((invoice_id, payment_id, amount), outcome) in planned.into_iter().zip(outcomes) {
        let status = match outcome {
            Ok(ChargeOutcome::Pending { .. }) => "submitted",
            Ok(ChargeOutcome::Declined { reason }) => {
                let stream = StreamId::invoice(invoice_id);
                let failed = run(state, &meta, std::slice::from_ref(&stream), |l| {
                    l.replay::<Invoice>(&stream)
                        .fail(payment_id, reason.clone())
                })
                .await;
                match failed {
                    Ok(failed) => position = position.max(failed.last_position()),
                    // Already recorded as failed (the reconciler abandoned it first).
                    Err(e) if e.status() == StatusCode::CONFLICT => {}
                    Err(e) => return Err(e),
                }
                "failed"
            }
            Err(e) => {
                // Recorded as submitted: the gateway's webhook (or a retry) settles it.
                tracing::warn!(error = %e, %payment_id, "charge not confirmed by the gateway");
                "submitted"
            }
        };
        payments.push(SubmittedPayment {
            payment_id: payment_id.to_string(),
            invoice_id: invoice_id.to_string(),
            amount: amount.amount().to_string(),
            status: status.to_owned(),
        });
    }
    Ok(Submission {
        submission_id: submission_id.to_string(),
        currency: row.currency,
        payments,
        position,
    })
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct SubmissionQuery {
    pub min_position: Option<i64>,
}

/// A submission's payments as they stand: the Wallet result page polls this until each
/// payment is settled or failed.
#[utoipa::path(get, path = "/v1/wallet/submissions/{submission_id}", tag = "wallet",
    params(("submission_id" = String, Path), SubmissionQuery),
    responses((status = 200, body = Submission), (status = 404)), security(("session" = [])))]
pub async fn show_submission(
    State(state): State<AppState>,
    session: PortalSession,
    ApiPath(submission_id): ApiPath<SubmissionId>,
    ApiQuery(q): ApiQuery<SubmissionQuery>,
) -> ApiResult<ApiJson<Submission>> {
    state.read_after(q.min_position).await?;
    let payments = queries::client_payments(
        &state.db,
        &session.client_scope(),
        PaymentsOf::Submission(submission_id),
    )
    .await?;
    let currency = payments
        .first()
        .map(|p| p.currency.clone())
        .ok_or(ApiError::NotFound("submission"))?;
    Ok(ApiJson(Submission {
        submission_id: submission_id.to_string(),
        currency,
        position: q.min_position.unwrap_or(0),
        payments: payments
            .into_iter()
            .map(|p| SubmittedPayment {
                payment_id: p.payment_id,
                invoice_id: p.invoice_id,
                amount: p.amount,
                status: p.status,
            })
            .collect(),
    }))
}
