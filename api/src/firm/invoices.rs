//! Invoices on the firm side: issue, void, offline payments, refunds, listings.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use portico_domain::firm::Firm;
use portico_domain::ids::{ClientId, InvoiceId, PaymentId, ProjectId, SubmissionId};
use portico_domain::invoice::{Invoice, IssueInvoice};
use portico_domain::project::Project;
use portico_domain::streams::StreamId;
use portico_domain::values::InvoiceNumber;
use portico_domain::{Currency, DomainError, Money, Scope};
use portico_projections::queries::{self, InvoiceView, PaymentView};
use serde::Deserialize;

use super::{metadata, Consistency, Created, Written};
use crate::auth::api_keys::FirmAuth;
use crate::commands::run;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewInvoice {
    #[schema(value_type = String)]
    pub client_id: ClientId,
    #[schema(value_type = String)]
    pub project_id: ProjectId,
    /// Unique within the firm.
    pub number: String,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    /// A decimal string at the currency's scale, e.g. `"1250.00"`.
    pub total: String,
}

fn money(amount: &str, currency: &str) -> ApiResult<Money> {
    let currency = Currency::parse(currency).map_err(DomainError::from)?;
    Ok(Money::parse(amount, currency).map_err(DomainError::from)?)
}

#[utoipa::path(post, path = "/v1/firm/invoices", tag = "firm", request_body = NewInvoice,
    responses((status = 201, body = Created), (status = 404), (status = 409), (status = 422)), security(("api_key" = [])))]
pub async fn issue_invoice(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiJson(body): ApiJson<NewInvoice>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let cmd = IssueInvoice {
        invoice_id: InvoiceId::new(),
        client_id: body.client_id,
        project_id: body.project_id,
        number: InvoiceNumber::parse(&body.number).map_err(DomainError::from)?,
        issued_on: body.issued_on,
        due_on: body.due_on,
        total: money(&body.total, &body.currency)?,
    };
    let streams = [
        StreamId::firm(firm.firm_id),
        StreamId::project(body.project_id),
        StreamId::invoice(cmd.invoice_id),
        StreamId::invoice_number(firm.firm_id, &cmd.number),
    ];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Invoice>(&streams[2]).issue(
            &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
            &l.replay::<Project>(&streams[1]),
            cmd.clone(),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: cmd.invoice_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/firm/invoices", tag = "firm", params(Consistency),
    responses((status = 200, body = [InvoiceView])), security(("api_key" = [])))]
pub async fn list_invoices(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<Vec<InvoiceView>>> {
    state.read_after(q.min_position).await?;
    let today = state.today_for(firm.firm_id).await?;
    Ok(ApiJson(
        queries::firm_invoices(&state.db, &firm.scope(), today).await?,
    ))
}

#[utoipa::path(get, path = "/v1/firm/invoices/{invoice_id}", tag = "firm", params(("invoice_id" = String, Path), Consistency),
    responses((status = 200, body = InvoiceView), (status = 404)), security(("api_key" = [])))]
pub async fn get_invoice(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(invoice_id): ApiPath<InvoiceId>,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<InvoiceView>> {
    state.read_after(q.min_position).await?;
    let today = state.today_for(firm.firm_id).await?;
    queries::firm_invoice(&state.db, &firm.scope(), invoice_id, today)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound("invoice"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VoidRequest {
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/firm/invoices/{invoice_id}/void", tag = "firm", request_body = VoidRequest,
    params(("invoice_id" = String, Path)),
    responses((status = 200, body = Written), (status = 404), (status = 409)), security(("api_key" = [])))]
pub async fn void_invoice(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(invoice_id): ApiPath<InvoiceId>,
    ApiJson(body): ApiJson<VoidRequest>,
) -> ApiResult<ApiJson<Written>> {
    let reason = body.reason.trim().chars().take(500).collect::<String>();
    if reason.is_empty() {
        return Err(ApiError::validation("say why the invoice is voided"));
    }
    let streams = [StreamId::invoice(invoice_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Invoice>(&streams[0])
            .void(&Scope::Firm(firm.firm_id), reason.clone())
    })
    .await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OfflinePayment {
    /// A decimal string in the invoice's currency.
    pub amount: String,
    pub currency: String,
}

/// Records money received outside the portal (cheque, wire): settled at once.
#[utoipa::path(post, path = "/v1/firm/invoices/{invoice_id}/payments", tag = "firm", request_body = OfflinePayment,
    params(("invoice_id" = String, Path)),
    responses((status = 201, body = Created), (status = 404), (status = 409), (status = 422)), security(("api_key" = [])))]
pub async fn record_payment(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(invoice_id): ApiPath<InvoiceId>,
    ApiJson(body): ApiJson<OfflinePayment>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let amount = money(&body.amount, &body.currency)?;
    let payment_id = PaymentId::new();
    let submission_id = SubmissionId::new();
    let streams = [StreamId::invoice(invoice_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Invoice>(&streams[0]).record_offline_payment(
            &Scope::Firm(firm.firm_id),
            payment_id,
            submission_id,
            amount,
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: payment_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefundRequest {
    pub amount: String,
    pub currency: String,
}

#[utoipa::path(post, path = "/v1/firm/invoices/{invoice_id}/payments/{payment_id}/refund", tag = "firm",
    request_body = RefundRequest, params(("invoice_id" = String, Path), ("payment_id" = String, Path)),
    responses((status = 200, body = Written), (status = 404), (status = 409), (status = 422)), security(("api_key" = [])))]
pub async fn refund_payment(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath((invoice_id, payment_id)): ApiPath<(InvoiceId, PaymentId)>,
    ApiJson(body): ApiJson<RefundRequest>,
) -> ApiResult<ApiJson<Written>> {
    let amount = money(&body.amount, &body.currency)?;
    let streams = [StreamId::invoice(invoice_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Invoice>(&streams[0])
            .refund(&Scope::Firm(firm.firm_id), payment_id, amount)
    })
    .await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct PaymentsQuery {
    pub invoice_id: Option<String>,
    pub min_position: Option<i64>,
}

#[utoipa::path(get, path = "/v1/firm/payments", tag = "firm", params(PaymentsQuery),
    responses((status = 200, body = [PaymentView])), security(("api_key" = [])))]
pub async fn list_payments(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<PaymentsQuery>,
) -> ApiResult<ApiJson<Vec<PaymentView>>> {
    state.read_after(q.min_position).await?;
    let invoice = q
        .invoice_id
        .as_deref()
        .map(|s| {
            s.parse::<InvoiceId>()
                .map_err(|_| ApiError::NotFound("invoice"))
        })
        .transpose()?;
    Ok(ApiJson(
        queries::firm_payments(&state.db, &firm.scope(), invoice).await?,
    ))
}
