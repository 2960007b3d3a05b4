//! Read-model queries. Every query that returns tenant data takes the tenant scope as a
//! parameter and puts it in its `WHERE` clause: a [`ClientScope`] for portal reads, a
//! [`FirmScope`] for the firm API. There is no unscoped variant to call by mistake.
//!
//! Status is derived here from `today` (the firm's date, from an injected clock):
//! `paid` when the balance is 0, `past_due` when today is after the due date, else `open`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use portico_domain::ids::{ClientId, ContactId, FirmId, InvoiceId, ProjectId, SubmissionId};
use portico_domain::{Currency, Money};
use serde::Serialize;

use crate::db::{Arg, Db};
use crate::runner::{text, ProjectionResult};

/// A portal contact's tenant: one client of one firm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientScope {
    pub firm_id: FirmId,
    pub client_id: ClientId,
}

/// A firm's tenant, for the firm API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmScope {
    pub firm_id: FirmId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Open,
    Paid,
    PastDue,
    /// Only firm views list void invoices.
    Void,
}

/// The invoice shape portal frontends rely on (DESIGN.md), plus a few fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InvoiceView {
    pub id: String,
    pub number: String,
    pub client_id: String,
    pub project_id: String,
    pub project_name: String,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub currency: String,
    pub total: String,
    pub balance: String,
    /// Awaiting settlement: shown beside the status.
    pub pending: String,
    pub status: InvoiceStatus,
    pub payment_pending: bool,
    #[serde(skip)]
    pub balance_minor: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct InvoiceRow {
    invoice_id: String,
    client_id: String,
    project_id: String,
    project_name: String,
    number: String,
    currency: String,
    total_minor: i64,
    settled_minor: i64,
    pending_minor: i64,
    issued_on: String,
    due_on: String,
    voided: i64,
}

const INVOICE_COLUMNS: &str = "invoice_id, client_id, project_id, project_name, number, currency, \
    total_minor, settled_minor, pending_minor, issued_on, due_on, voided";

fn amount(minor: i64, currency: &str) -> String {
    Currency::parse(currency)
        .and_then(|c| Money::from_minor(minor.max(0), c))
        .map(|m| m.amount().to_string())
        .unwrap_or_else(|_| minor.to_string())
}

fn date(s: &str) -> NaiveDate {
    // Written by the projector from a NaiveDate; a malformed value would be a bug there.
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

impl InvoiceRow {
    fn view(self, today: NaiveDate) -> InvoiceView {
        let balance = self.total_minor - self.settled_minor;
        let due_on = date(&self.due_on);
        let status = if self.voided != 0 {
            InvoiceStatus::Void
        } else if balance <= 0 {
            InvoiceStatus::Paid
        } else if today > due_on {
            InvoiceStatus::PastDue
        } else {
            InvoiceStatus::Open
        };
        InvoiceView {
            total: amount(self.total_minor, &self.currency),
            balance: amount(balance, &self.currency),
            pending: amount(self.pending_minor, &self.currency),
            payment_pending: self.pending_minor > 0,
            balance_minor: balance.max(0),
            id: self.invoice_id,
            number: self.number,
            client_id: self.client_id,
            project_id: self.project_id,
            project_name: self.project_name,
            issued_on: date(&self.issued_on),
            due_on,
            currency: self.currency,
            status,
        }
    }
}

/// Every invoice of the client that is not void, oldest due date first.
pub async fn client_invoices(
    db: &Db,
    scope: &ClientScope,
    today: NaiveDate,
) -> ProjectionResult<Vec<InvoiceView>> {
    let rows: Vec<InvoiceRow> = db
        .fetch_all(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE firm_id = $1 AND client_id = $2 AND voided = 0 \
                 ORDER BY due_on, number"
            ),
            &[text(scope.firm_id), text(scope.client_id)],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.view(today)).collect())
}

/// The client's invoices that are open or past due (a balance is left).
pub async fn client_unpaid_invoices(
    db: &Db,
    scope: &ClientScope,
    today: NaiveDate,
) -> ProjectionResult<Vec<InvoiceView>> {
    let mut invoices = client_invoices(db, scope, today).await?;
    invoices.retain(|i| matches!(i.status, InvoiceStatus::Open | InvoiceStatus::PastDue));
    Ok(invoices)
}

/// One invoice, if it exists in `scope`.
pub async fn client_invoice(
    db: &Db,
    scope: &ClientScope,
    invoice_id: InvoiceId,
    today: NaiveDate,
) -> ProjectionResult<Option<InvoiceView>> {
    let row: Option<InvoiceRow> = db
        .fetch_optional(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE firm_id = $1 AND client_id = $2 AND invoice_id = $3 \
                 AND voided = 0"
            ),
            &[text(scope.firm_id), text(scope.client_id), text(invoice_id)],
        )
        .await?;
    Ok(row.map(|r| r.view(today)))
}

/// Every invoice of the firm, void ones included.
pub async fn firm_invoices(
    db: &Db,
    scope: &FirmScope,
    today: NaiveDate,
) -> ProjectionResult<Vec<InvoiceView>> {
    let rows: Vec<InvoiceRow> = db
        .fetch_all(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE firm_id = $1 ORDER BY due_on, number"
            ),
            &[text(scope.firm_id)],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.view(today)).collect())
}

pub async fn firm_invoice(
    db: &Db,
    scope: &FirmScope,
    invoice_id: InvoiceId,
    today: NaiveDate,
) -> ProjectionResult<Option<InvoiceView>> {
    let row: Option<InvoiceRow> = db
        .fetch_optional(
            &format!(
                "SELECT {INVOICE_COLUMNS} FROM invoices WHERE firm_id = $1 AND invoice_id = $2"
            ),
            &[text(scope.firm_id), text(invoice_id)],
        )
        .await?;
    Ok(row.map(|r| r.view(today)))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CurrencyAmount {
    pub currency: String,
    pub amount: String,
}

/// The summary shape portal frontends rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub total_invoices: i64,
    pub unpaid_count: i64,
    pub overdue_count: i64,
    pub unpaid_amount: Vec<CurrencyAmount>,
}

#[derive(Debug, sqlx::FromRow)]
struct SummaryRow {
    currency: String,
    total_invoices: i64,
    unpaid_count: i64,
    unpaid_minor: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct Count {
    n: i64,
}

/// Totals from the `client_summary` read model; the overdue count depends on today, so it
/// is counted from the invoices at query time.
pub async fn client_summary(
    db: &Db,
    scope: &ClientScope,
    today: NaiveDate,
) -> ProjectionResult<Summary> {
    let rows: Vec<SummaryRow> = db
        .fetch_all(
            "SELECT currency, total_invoices, unpaid_count, unpaid_minor FROM client_summary \
             WHERE firm_id = $1 AND client_id = $2 ORDER BY currency",
            &[text(scope.firm_id), text(scope.client_id)],
        )
        .await?;
    let overdue: Option<Count> = db
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM invoices WHERE firm_id = $1 AND client_id = $2 AND voided = 0 \
             AND total_minor > settled_minor AND due_on < $3",
            &[text(scope.firm_id), text(scope.client_id), Arg::Text(today.to_string())],
        )
        .await?;
    Ok(Summary {
        total_invoices: rows.iter().map(|r| r.total_invoices).sum(),
        unpaid_count: rows.iter().map(|r| r.unpaid_count).sum(),
        overdue_count: overdue.map_or(0, |c| c.n),
        unpaid_amount: rows
            .iter()
            .filter(|r| r.unpaid_minor > 0)
            .map(|r| CurrencyAmount {
                currency: r.currency.clone(),
                amount: amount(r.unpaid_minor, &r.currency),
            })
            .collect(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProjectView {
    #[sqlx(rename = "project_id")]
    pub id: String,
    pub name: String,
}

pub async fn client_projects(db: &Db, scope: &ClientScope) -> ProjectionResult<Vec<ProjectView>> {
    Ok(db
        .fetch_all(
            "SELECT project_id, name FROM projects WHERE firm_id = $1 AND client_id = $2 ORDER BY name, project_id",
            &[text(scope.firm_id), text(scope.client_id)],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TeamMemberView {
    pub member_id: String,
    pub name: String,
    pub role: String,
    pub email: String,
    pub project_ids: Vec<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct TeamRow {
    project_id: String,
    member_id: String,
    name: String,
    role: String,
    email: String,
}

/// The client's project team: everyone on any of its projects ("All Jobs"), or on one.
/// A member on several projects appears once, with every project id.
pub async fn client_team(
    db: &Db,
    scope: &ClientScope,
    project: Option<ProjectId>,
) -> ProjectionResult<Vec<TeamMemberView>> {
    let mut args = vec![text(scope.firm_id), text(scope.client_id)];
    let mut sql = "SELECT project_id, member_id, name, role, email FROM project_team \
                   WHERE firm_id = $1 AND client_id = $2"
        .to_owned();
    if let Some(p) = project {
        sql.push_str(" AND project_id = $3");
        args.push(text(p));
    }
    sql.push_str(" ORDER BY assigned_at, project_id, member_id");
    let rows: Vec<TeamRow> = db.fetch_all(&sql, &args).await?;
    let mut members: BTreeMap<String, (usize, TeamMemberView)> = BTreeMap::new();
    for (order, r) in rows.into_iter().enumerate() {
        let entry = members.entry(r.member_id.clone()).or_insert_with(|| {
            (
                order,
                TeamMemberView {
                    member_id: r.member_id,
                    name: r.name,
                    role: r.role,
                    email: r.email,
                    project_ids: Vec::new(),
                },
            )
        });
        entry.1.project_ids.push(r.project_id);
    }
    let mut list: Vec<(usize, TeamMemberView)> = members.into_values().collect();
    list.sort_by_key(|(order, _)| *order);
    Ok(list.into_iter().map(|(_, m)| m).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FirmView {
    #[sqlx(rename = "firm_id")]
    pub id: String,
    pub name: String,
    pub logo_url: Option<String>,
    pub time_zone: String,
    /// BCP 47 tag the portal formats dates and amounts with.
    pub locale: String,
}

/// The firm's public profile (name, logo): shown on its invite and login pages.
pub async fn firm(db: &Db, scope: &FirmScope) -> ProjectionResult<Option<FirmView>> {
    Ok(db
        .fetch_optional(
            "SELECT firm_id, name, logo_url, time_zone, locale FROM firms WHERE firm_id = $1",
            &[text(scope.firm_id)],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ContactView {
    pub contact_id: String,
    pub firm_id: String,
    pub client_id: String,
    pub name: String,
    pub email: String,
    pub invite_id: Option<String>,
    pub invite_expires_at: Option<String>,
    /// `none`, `pending`, `revoked` or `used`.
    pub invite_state: String,
    pub has_account: i64,
    pub active: i64,
}

const CONTACT_COLUMNS: &str =
    "contact_id, firm_id, client_id, name, email, invite_id, invite_expires_at, \
    invite_state, has_account, active";

pub async fn firm_contact(
    db: &Db,
    scope: &FirmScope,
    contact_id: ContactId,
) -> ProjectionResult<Option<ContactView>> {
    Ok(db
        .fetch_optional(
            &format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE firm_id = $1 AND contact_id = $2"
            ),
            &[text(scope.firm_id), text(contact_id)],
        )
        .await?)
}

/// The contact who logs in with `email` at `scope`'s firm.
pub async fn contact_by_email(
    db: &Db,
    scope: &FirmScope,
    email: &str,
) -> ProjectionResult<Option<ContactView>> {
    Ok(db
        .fetch_optional(
            &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE firm_id = $1 AND email = $2"),
            &[text(scope.firm_id), Arg::Text(email.to_lowercase())],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub payment_id: String,
    pub invoice_id: String,
    pub client_id: String,
    pub submission_id: String,
    pub currency: String,
    pub amount: String,
    pub refunded: String,
    pub method: String,
    /// `submitted`, `settled`, `failed` or `refunded`.
    pub status: String,
    pub submitted_at: String,
    pub settled_at: Option<String>,
    pub failed_at: Option<String>,
    pub failure_reason: Option<String>,
    pub refunded_at: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct PaymentRow {
    payment_id: String,
    invoice_id: String,
    client_id: String,
    submission_id: String,
    currency: String,
    amount_minor: i64,
    refunded_minor: i64,
    method: String,
    status: String,
    submitted_at: String,
    settled_at: Option<String>,
    failed_at: Option<String>,
    failure_reason: Option<String>,
    refunded_at: Option<String>,
}

impl From<PaymentRow> for PaymentView {
    fn from(r: PaymentRow) -> Self {
        PaymentView {
            amount: amount(r.amount_minor, &r.currency),
            refunded: amount(r.refunded_minor, &r.currency),
            payment_id: r.payment_id,
            invoice_id: r.invoice_id,
            client_id: r.client_id,
            submission_id: r.submission_id,
            currency: r.currency,
            method: r.method,
            status: r.status,
            submitted_at: r.submitted_at,
            settled_at: r.settled_at,
            failed_at: r.failed_at,
            failure_reason: r.failure_reason,
            refunded_at: r.refunded_at,
        }
    }
}

/// Which payments to list.
#[derive(Debug, Clone, Copy)]
pub enum PaymentsOf {
    Invoice(InvoiceId),
    Submission(SubmissionId),
    Client,
}

const PAYMENT_COLUMNS: &str = "payment_id, invoice_id, client_id, submission_id, currency, amount_minor, \
    refunded_minor, method, status, submitted_at, settled_at, failed_at, failure_reason, refunded_at";

/// Payments of the client, of one of its invoices, or of one of its submissions.
pub async fn client_payments(
    db: &Db,
    scope: &ClientScope,
    of: PaymentsOf,
) -> ProjectionResult<Vec<PaymentView>> {
    let (filter, extra) = match of {
        PaymentsOf::Invoice(id) => (" AND invoice_id = $3", Some(text(id))),
        PaymentsOf::Submission(id) => (" AND submission_id = $3", Some(text(id))),
        PaymentsOf::Client => ("", None),
    };
    let mut args = vec![text(scope.firm_id), text(scope.client_id)];
    args.extend(extra);
    let rows: Vec<PaymentRow> = db
        .fetch_all(
            &format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments WHERE firm_id = $1 AND client_id = $2{filter} \
                 ORDER BY submitted_at, payment_id"
            ),
            &args,
        )
        .await?;
    Ok(rows.into_iter().map(PaymentView::from).collect())
}

/// Payments of the firm, optionally of one invoice.
pub async fn firm_payments(
    db: &Db,
    scope: &FirmScope,
    invoice: Option<InvoiceId>,
) -> ProjectionResult<Vec<PaymentView>> {
    let mut args = vec![text(scope.firm_id)];
    let filter = match invoice {
        Some(id) => {
            args.push(text(id));
            " AND invoice_id = $2"
        }
        None => "",
    };
    let rows: Vec<PaymentRow> = db
        .fetch_all(
            &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE firm_id = $1{filter} ORDER BY submitted_at, payment_id"),
            &args,
        )
        .await?;
    Ok(rows.into_iter().map(PaymentView::from).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ClientView {
    #[sqlx(rename = "client_id")]
    pub id: String,
    pub name: String,
}

pub async fn firm_clients(db: &Db, scope: &FirmScope) -> ProjectionResult<Vec<ClientView>> {
    Ok(db
        .fetch_all(
            "SELECT client_id, name FROM clients WHERE firm_id = $1 ORDER BY name, client_id",
            &[text(scope.firm_id)],
        )
        .await?)
}

pub async fn firm_client(
    db: &Db,
    scope: &FirmScope,
    client_id: ClientId,
) -> ProjectionResult<Option<ClientView>> {
    Ok(db
        .fetch_optional(
            "SELECT client_id, name FROM clients WHERE firm_id = $1 AND client_id = $2",
            &[text(scope.firm_id), text(client_id)],
        )
        .await?)
}

pub async fn firm_contacts(db: &Db, scope: &FirmScope) -> ProjectionResult<Vec<ContactView>> {
    Ok(db
        .fetch_all(
            &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE firm_id = $1 ORDER BY name, contact_id"),
            &[text(scope.firm_id)],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FirmProjectView {
    #[sqlx(rename = "project_id")]
    pub id: String,
    pub client_id: String,
    pub name: String,
}

pub async fn firm_projects(db: &Db, scope: &FirmScope) -> ProjectionResult<Vec<FirmProjectView>> {
    Ok(db
        .fetch_all(
            "SELECT project_id, client_id, name FROM projects WHERE firm_id = $1 ORDER BY name, project_id",
            &[text(scope.firm_id)],
        )
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProjectMemberView {
    pub member_id: String,
    pub name: String,
    pub role: String,
    pub email: String,
}

/// A project's team, if the project is the firm's.
pub async fn firm_project_team(
    db: &Db,
    scope: &FirmScope,
    project_id: ProjectId,
) -> ProjectionResult<Vec<ProjectMemberView>> {
    Ok(db
        .fetch_all(
            "SELECT member_id, name, role, email FROM project_team WHERE firm_id = $1 AND project_id = $2 \
             ORDER BY assigned_at, member_id",
            &[text(scope.firm_id), text(project_id)],
        )
        .await?)
}
