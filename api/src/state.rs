//! The state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use portico_domain::clock::{Clock, TimeZone};
use portico_domain::ids::FirmId;
use portico_projections::queries::{self, FirmScope, FirmView};
use portico_projections::runner::wait_for_position;
use portico_projections::{Db, Runner};
use portico_store::EventStore;
use tokio::sync::watch;

use crate::error::{ApiError, ApiResult};
use crate::gateway::PaymentGateway;
use crate::mailer::Mailer;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    pub secure_cookies: bool,
    pub webhook_secret: Vec<u8>,
    pub session_idle: chrono::Duration,
    pub session_absolute: chrono::Duration,
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub runner: Arc<Runner>,
    /// Whether this process runs the projectors (PostgreSQL elects one leader).
    pub leader: watch::Receiver<bool>,
    pub mailer: Arc<dyn Mailer>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub views: Arc<crate::views_cache::ViewCache>,
    /// Checked sessions (`auth::session_cache`).
    pub sessions: Arc<crate::auth::session_cache::SessionCache>,
}

/// The longest a read waits for the read models to reach a `min_position`.
pub const MAX_READ_WAIT: Duration = Duration::from_secs(5);

impl AppState {
    /// "Today" in the firm's time zone, from the injected clock.
    pub async fn today_for(&self, firm_id: FirmId) -> ApiResult<NaiveDate> {
        Ok(self.clock.today_in(self.zone_for(firm_id).await?))
    }

    /// The firm's time zone (UTC when the firm is unknown).
    pub async fn zone_for(&self, firm_id: FirmId) -> ApiResult<TimeZone> {
        let firm = queries::firm(&self.db, &FirmScope { firm_id }).await?;
        Ok(zone_of(firm.as_ref()))
    }
}

/// The time zone of a firm already looked up (UTC when it is unknown).
pub fn zone_of(firm: Option<&FirmView>) -> TimeZone {
    firm.and_then(|f| TimeZone::parse(&f.time_zone).ok())
        .unwrap_or(TimeZone::UTC)
}

impl AppState {
    /// Waits (bounded) until the read models include `position`, so a client that just
    /// wrote sees its write. 503 when they do not catch up in time.
    pub async fn read_after(&self, position: Option<i64>) -> ApiResult<()> {
        let Some(position) = position.filter(|p| *p > 0) else {
            return Ok(());
        };
        let caught_up = if *self.leader.borrow() {
            self.runner.wait_for(position, MAX_READ_WAIT).await
        } else {
            wait_for_position(&self.db, self.runner.projectors(), position, MAX_READ_WAIT).await?
        };
        if caught_up {
            Ok(())
        } else {
            Err(ApiError::Unavailable)
        }
    }
}
