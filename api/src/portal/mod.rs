//! The portal API (`/v1/portal/...`) that client contacts use: invite lookup and
//! acceptance, login and logout, the dashboard, the invoices view and checkouts.

pub(crate) mod access;
pub(crate) mod checkouts;
mod views;
pub mod web;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(access::lookup_invite))
        .routes(routes!(access::accept_invite))
        .routes(routes!(access::login))
        .routes(routes!(access::current_session, access::logout))
        .routes(routes!(access::firm_brand))
        .routes(routes!(access::change_password))
        .routes(routes!(views::dashboard))
        .routes(routes!(views::invoices))
        .routes(routes!(checkouts::create_checkout))
}
