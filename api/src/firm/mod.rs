//! The firm API (`/v1/firm/...`), authenticated by the firm's API key: profile and logo,
//! clients, contacts and their invites, projects and teams, invoices, offline payments,
//! refunds, and listings of all of these.

mod invoices;
pub(crate) mod people;

use portico_store::Metadata;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::api_keys::FirmAuth;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(people::get_profile, people::update_profile))
        .routes(routes!(people::create_client, people::list_clients))
        .routes(routes!(people::add_contact))
        .routes(routes!(people::list_contacts))
        .routes(routes!(people::get_contact))
        .routes(routes!(people::send_invite, people::revoke_invite))
        .routes(routes!(people::deactivate_contact))
        .routes(routes!(people::create_project, people::list_projects))
        .routes(routes!(people::list_team, people::assign_member))
        .routes(routes!(people::unassign_member))
        .routes(routes!(invoices::issue_invoice, invoices::list_invoices))
        .routes(routes!(invoices::get_invoice))
        .routes(routes!(invoices::void_invoice))
        .routes(routes!(invoices::record_payment))
        .routes(routes!(invoices::refund_payment))
        .routes(routes!(invoices::list_payments))
}

fn metadata(firm: &FirmAuth) -> Metadata {
    Metadata::new(Some(firm.firm_id), firm.actor())
}

/// What a command that created something answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub id: String,
    /// Pass as `min_position` to a read to see this write.
    pub position: i64,
}

/// What a command answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Written {
    pub position: i64,
}

/// Read-your-writes: wait (up to 5 s) for the read models to reach this position.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct Consistency {
    pub min_position: Option<i64>,
}

/// Registers a firm and issues its first API key (`portico firm create`, the demo).
pub async fn register_firm(
    db: &portico_projections::Db,
    store: &dyn portico_store::EventStore,
    now: chrono::DateTime<chrono::Utc>,
    name: &str,
    logo_url: Option<&str>,
    time_zone: &str,
    locale: &str,
) -> anyhow::Result<(
    portico_domain::ids::FirmId,
    portico_domain::secrets::SecretToken,
)> {
    use portico_domain::values::{Locale, Name, Url};
    let name = Name::parse("name", name)?;
    let logo = logo_url.map(|u| Url::parse("logo_url", u)).transpose()?;
    let zone = portico_domain::clock::TimeZone::parse(time_zone)?;
    let locale = Locale::parse(locale)?;
    let firm_id = portico_domain::ids::FirmId::new();
    let stream = portico_domain::streams::StreamId::firm(firm_id);
    let meta = Metadata::new(Some(firm_id), "operator");
    portico_store::command::execute(store, std::slice::from_ref(&stream), &meta, |l| {
        l.replay::<portico_domain::firm::Firm>(&stream).register(
            firm_id,
            name.clone(),
            logo.clone(),
            zone,
            locale.clone(),
        )
    })
    .await?;
    let key = crate::auth::api_keys::issue(db, firm_id, now).await?;
    Ok((firm_id, key))
}
