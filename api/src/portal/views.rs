//! The dashboard and the invoices view.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use portico_domain::clock::TimeZone;
use portico_domain::ids::ProjectId;
use portico_projections::queries::{
    self, FirmScope, InvoiceStatus, InvoiceView, ProjectView, Summary, TeamMemberView,
};
use serde::{Deserialize, Serialize};

use crate::auth::sessions::PortalSession;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::portal::access::FirmBrand;
use crate::state::AppState;
use crate::views_cache::CachedView;

/// The view under `key` if the read models have not moved and the firm's day has not
/// turned since it was rendered; otherwise `render` it (returning its JSON and the firm's
/// time zone) and keep it, when this process runs the projectors.
async fn cached<F, Fut>(state: &AppState, key: String, render: F) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ApiResult<(Vec<u8>, TimeZone)>>,
{
    let cacheable = *state.leader.borrow();
    let progress = state.runner.position();
    if cacheable {
        if let Some(hit) = state.views.get(&key) {
            if hit.progress == progress && state.clock.today_in(hit.zone) == hit.today {
                return Ok(json_response(hit.json));
            }
        }
    }
    let (json, zone) = render().await?;
    let json = Bytes::from(json);
    if cacheable {
        state.views.put(
            key,
            CachedView {
                progress,
                zone,
                today: state.clock.today_in(zone),
                json: json.clone(),
            },
        );
    }
    Ok(json_response(json))
}

fn json_response(json: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

fn to_json<T: Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))
}

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
) -> ApiResult<Response> {
    state.read_after(q.min_position).await?;
    let key = format!(
        "dashboard/{}/{}/{}",
        session.firm_id,
        session.client_id,
        q.project_id.as_deref().unwrap_or_default()
    );
    cached(&state, key, || render_dashboard(&state, &session, q)).await
}

async fn render_dashboard(
    state: &AppState,
    session: &PortalSession,
    q: DashboardQuery,
) -> ApiResult<(Vec<u8>, TimeZone)> {
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
    let zone = crate::state::zone_of(Some(&firm));
    let today = state.clock.today_in(zone);
    let view = Dashboard {
        firm: FirmBrand::from(firm),
        team: queries::client_team(&state.db, &scope, selected).await?,
        selected_project_id: selected.map(|p| p.to_string()),
        projects,
        unpaid_invoices: queries::client_unpaid_invoices(&state.db, &scope, today).await?,
    };
    Ok((to_json(&view)?, zone))
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
) -> ApiResult<Response> {
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
    let key = format!(
        "invoices/{}/{}/{}",
        session.firm_id,
        session.client_id,
        q.status.as_deref().unwrap_or_default()
    );
    cached(&state, key, || async {
        let scope = session.client_scope();
        let zone = state.zone_for(session.firm_id).await?;
        let today = state.clock.today_in(zone);
        let mut list = queries::client_invoices(&state.db, &scope, today).await?;
        if let Some(status) = wanted {
            list.retain(|i| i.status == status);
        }
        let page = InvoicesPage {
            invoices: list,
            summary: queries::client_summary(&state.db, &scope, today).await?,
        };
        Ok((to_json(&page)?, zone))
    })
    .await
}
