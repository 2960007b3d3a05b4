//! The dashboard and the invoices view.

use axum::extract::State;
use portico_domain::ids::ProjectId;
use portico_projections::queries::{
    self, FirmScope, InvoiceStatus, InvoiceView, ProjectView, Summary, TeamMemberView,
};
use serde::{Deserialize, Serialize};

use crate::auth::sessions::PortalSession;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::portal::access::FirmBrand;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DashboardQuery {
    /// Show only this project's team ("All Jobs" when absent).
    pub project_id: Option<String>,
    pub min_position: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub firm: FirmBrand,
    pub projects: Vec<ProjectView>,
    pub selected_project_id: Option<String>,
    pub team: Vec<TeamMemberView>,
    pub unpaid_invoices: Vec<InvoiceView>,
}

/// The project team (all projects, or one) and every unpaid invoice (open or past due).
#[utoipa::path(get, path = "/v1/portal/dashboard", tag = "portal", params(DashboardQuery),
    responses((status = 200, body = Dashboard), (status = 401), (status = 404)), security(("session" = [])))]
pub async fn dashboard(
    State(state): State<AppState>,
    session: PortalSession,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> ApiResult<ApiJson<Dashboard>> {
    state.read_after(q.min_position).await?;
    let scope = session.client_scope();
    let projects = queries::client_projects(&state.db, &scope).await?;
    let selected = match q.project_id.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(raw) => {
            let id: ProjectId = raw.parse().map_err(|_| ApiError::NotFound("project"))?;
            if !projects.iter().any(|p| p.id == raw) {
                return Err(ApiError::NotFound("project"));
            }
            Some(id)
        }
    };
    let firm = queries::firm(
        &state.db,
        &FirmScope {
            firm_id: session.firm_id,
        },
    )
    .await?
    .ok_or(ApiError::NotFound("firm"))?;
    let today = state.today_at(Some(&firm));
    Ok(ApiJson(Dashboard {
        firm: FirmBrand::from(firm),
        team: queries::client_team(&state.db, &scope, selected).await?,
        selected_project_id: selected.map(|p| p.to_string()),
        projects,
        unpaid_invoices: queries::client_unpaid_invoices(&state.db, &scope, today).await?,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct InvoicesQuery {
    /// `open`, `paid` or `past_due`; all when absent.
    pub status: Option<String>,
    pub min_position: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvoicesPage {
    pub invoices: Vec<InvoiceView>,
    /// Always over all of the client's invoices, whatever the filter.
    pub summary: Summary,
}

#[utoipa::path(get, path = "/v1/portal/invoices", tag = "portal", params(InvoicesQuery),
    responses((status = 200, body = InvoicesPage), (status = 401), (status = 422)), security(("session" = [])))]
pub async fn invoices(
    State(state): State<AppState>,
    session: PortalSession,
    ApiQuery(q): ApiQuery<InvoicesQuery>,
) -> ApiResult<ApiJson<InvoicesPage>> {
    let wanted = match q.status.as_deref() {
        None | Some("") => None,
        Some("open") => Some(InvoiceStatus::Open),
        Some("paid") => Some(InvoiceStatus::Paid),
        Some("past_due") => Some(InvoiceStatus::PastDue),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "status must be open, paid or past_due, not `{}`",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    state.read_after(q.min_position).await?;
    let scope = session.client_scope();
    let today = state.today_for(session.firm_id).await?;
    let mut list = queries::client_invoices(&state.db, &scope, today).await?;
    if let Some(status) = wanted {
        list.retain(|i| i.status == status);
    }
    Ok(ApiJson(InvoicesPage {
        invoices: list,
        summary: queries::client_summary(&state.db, &scope, today).await?,
    }))
}
