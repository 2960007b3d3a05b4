//! Firm API keys: `Authorization: Bearer <key>`, stored hashed, one firm per key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portico_domain::ids::FirmId;
use portico_domain::secrets::SecretToken;
use portico_projections::queries::FirmScope;
use portico_projections::Db;
use portico_store::hash::format_instant;

use crate::error::ApiError;
use crate::state::AppState;

/// A request authenticated by a firm's API key.
#[derive(Debug, Clone, Copy)]
pub struct FirmAuth {
    pub firm_id: FirmId,
}

impl FirmAuth {
    pub fn scope(&self) -> FirmScope {
        FirmScope {
            firm_id: self.firm_id,
        }
    }

    pub fn actor(&self) -> String {
        format!("firm:{}", self.firm_id)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    firm_id: String,
}

/// Issues a new key for `firm_id` and returns it; only its hash is kept.
pub async fn issue(
    db: &Db,
    firm_id: FirmId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SecretToken, sqlx::Error> {
    let key = super::new_token();
    db.execute(
        "INSERT INTO api_keys (key_hash, firm_id, created_at) VALUES ($1, $2, $3)",
        &[
            key.hash().to_hex().into(),
            firm_id.to_string().into(),
            format_instant(now).into(),
        ],
    )
    .await?;
    Ok(key)
}

impl FromRequestParts<AppState> for FirmAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = super::bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let key = SecretToken::parse(presented).map_err(|_| ApiError::Unauthorized)?;
        let row: Option<KeyRow> = state
            .db
            .fetch_optional(
                "SELECT firm_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                &[key.hash().to_hex().into()],
            )
            .await?;
        let firm_id = row
            .and_then(|r| r.firm_id.parse().ok())
            .ok_or(ApiError::Unauthorized)?;
        Ok(FirmAuth { firm_id })
    }
}
