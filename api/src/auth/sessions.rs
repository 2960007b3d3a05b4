//! Portal sessions: an opaque random token, stored hashed, carried in an HttpOnly cookie
//! (browsers) or as a bearer token (API clients). Sessions expire after an idle period and
//! at an absolute limit, and a new token is minted at every login and password change,
//! so a token obtained before login is worthless after it.
//!
//! Writes authenticated by the cookie must also carry the session's `X-CSRF-Token`, which
//! the login response hands to the page; another site can make the browser send the
//! cookie but cannot read the token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use chrono::{DateTime, Utc};
use portico_domain::ids::{ClientId, ContactId, FirmId};
use portico_domain::secrets::SecretToken;
use portico_domain::Scope;
use portico_projections::queries::ClientScope;
use portico_store::hash::format_instant;
use serde::Serialize;

use crate::auth::session_cache::SessionRow;
use crate::auth::{bearer, new_token, same_secret};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const COOKIE: &str = "portico_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a login hands back: the token (also set as a cookie) and the CSRF token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionGrant {
    /// Bearer token for API clients. Browsers use the HttpOnly cookie instead.
    pub token: String,
    /// Send as `X-CSRF-Token` on writes authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at: String,
    pub contact_id: String,
    pub firm_id: String,
    pub client_id: String,
}

pub async fn create(
    state: &AppState,
    contact_id: ContactId,
    firm_id: FirmId,
    client_id: ClientId,
) -> ApiResult<(SessionGrant, SecretToken)> {
    let token = new_token();
    let csrf = new_token().expose();
    let now = state.clock.now();
    let absolute = now + state.settings.session_absolute;
    let idle = (now + state.settings.session_idle).min(absolute);
    state
        .db
        .execute(
            "INSERT INTO sessions (token_hash, contact_id, firm_id, client_id, csrf_token, created_at, \
             last_seen_at, idle_expires_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
            &[
                token.hash().to_hex().into(),
                contact_id.to_string().into(),
                firm_id.to_string().into(),
                client_id.to_string().into(),
                csrf.clone().into(),
                format_instant(now).into(),
                format_instant(idle).into(),
                format_instant(absolute).into(),
            ],
        )
        .await?;
    Ok((
        SessionGrant {
            token: token.expose(),
            csrf_token: csrf,
            expires_at: format_instant(absolute),
            contact_id: contact_id.to_string(),
            firm_id: firm_id.to_string(),
            client_id: client_id.to_string(),
        },
        token,
    ))
}

/// The current session as the page sees it (never the session token itself).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Send as `X-CSRF-Token` on writes authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at: String,
    pub contact_id: String,
    pub firm_id: String,
    pub client_id: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, sqlx::FromRow)]
struct ContactRow {
    name: String,
    email: String,
}

pub async fn info(state: &AppState, session: &PortalSession) -> ApiResult<SessionInfo> {
    let contact: Option<ContactRow> = state
        .db
        .fetch_optional(
            "SELECT name, email FROM contacts WHERE contact_id = $1",
            &[session.contact_id.to_string().into()],
        )
        .await?;
    let contact = contact.unwrap_or(ContactRow {
        name: String::new(),
        email: String::new(),
    });
    Ok(SessionInfo {
        csrf_token: session.csrf_token.clone(),
        expires_at: session.expires_at.clone(),
        contact_id: session.contact_id.to_string(),
        firm_id: session.firm_id.to_string(),
        client_id: session.client_id.to_string(),
        name: contact.name,
        email: contact.email,
    })
}

/// Ends every session of a contact (password change, deactivation).
pub async fn end_all(state: &AppState, contact_id: ContactId) -> ApiResult<()> {
    state
        .db
        .execute(
            "DELETE FROM sessions WHERE contact_id = $1",
            &[contact_id.to_string().into()],
        )
        .await?;
    state.sessions.forget_contact(contact_id);
    Ok(())
}

/// Ends the session whose token hashes to `token_hash` (logout, expiry).
pub async fn end(state: &AppState, token_hash: &str) -> ApiResult<()> {
    state
        .db
        .execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[token_hash.into()],
        )
        .await?;
    state.sessions.forget(token_hash);
    Ok(())
}

/// `Set-Cookie` for a new session, or (with `None`) one that clears it.
pub fn cookie(state: &AppState, token: Option<&SecretToken>) -> HeaderValue {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let value = match token {
        Some(t) => format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            t.expose(),
            state.settings.session_absolute.num_seconds()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    // Built from hex and fixed ASCII only.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request authenticated by a portal session.
#[derive(Debug, Clone)]
pub struct PortalSession {
    pub contact_id: ContactId,
    pub firm_id: FirmId,
    pub client_id: ClientId,
    pub token_hash: String,
    /// The session's CSRF token and absolute expiry, as read when it was checked.
    pub csrf_token: String,
    pub expires_at: String,
}

impl PortalSession {
    pub fn client_scope(&self) -> ClientScope {
        ClientScope {
            firm_id: self.firm_id,
            client_id: self.client_id,
        }
    }

    pub fn scope(&self) -> Scope {
        Scope::Client {
            firm_id: self.firm_id,
            client_id: self.client_id,
        }
    }

    pub fn actor(&self) -> String {
        format!("contact:{}", self.contact_id)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct StoredSession {
    contact_id: String,
    firm_id: String,
    client_id: String,
    csrf_token: String,
    last_seen_at: String,
    idle_expires_at: String,
    absolute_expires_at: String,
    /// The contact's `active` flag in the directory (1 when it is not there yet).
    active: i64,
}

impl StoredSession {
    /// `None` when a stored time does not parse (the session is then refused).
    fn checked(self) -> ApiResult<Option<SessionRow>> {
        let (Some(last_seen_at), Some(idle_expires_at), Some(absolute_expires_at)) = (
            instant(&self.last_seen_at),
            instant(&self.idle_expires_at),
            instant(&self.absolute_expires_at),
        ) else {
            return Ok(None);
        };
        let parse_err = || ApiError::Internal("a session row holds a malformed id".into());
        Ok(Some(SessionRow {
            contact_id: self.contact_id.parse().map_err(|_| parse_err())?,
            firm_id: self.firm_id.parse().map_err(|_| parse_err())?,
            client_id: self.client_id.parse().map_err(|_| parse_err())?,
            csrf_token: self.csrf_token,
            last_seen_at,
            idle_expires_at,
            absolute_expires_at,
            absolute_expires_text: self.absolute_expires_at,
            active: self.active != 0,
        }))
    }
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The session row of `token_hash`: from the cache where it may serve (see
/// `session_cache`), else from the database. `None`: no such session, or a malformed one.
async fn session_row(state: &AppState, token_hash: &str) -> ApiResult<Option<SessionRow>> {
    let cacheable = *state.leader.borrow();
    let progress = state.runner.position();
    if cacheable {
        if let Some(row) = state.sessions.get(token_hash, progress) {
            return Ok(Some(row));
        }
    }
    let stamp = cacheable.then(|| state.sessions.stamp());
    let stored: Option<StoredSession> = state
        .db
        .fetch_optional(
            "SELECT s.contact_id, s.firm_id, s.client_id, s.csrf_token, s.last_seen_at, \
             s.idle_expires_at, s.absolute_expires_at, COALESCE(c.active, 1) AS active \
             FROM sessions s LEFT JOIN contacts c ON c.contact_id = s.contact_id \
             WHERE s.token_hash = $1",
            &[token_hash.into()],
        )
        .await?;
    let Some(row) = stored.map(StoredSession::checked).transpose()?.flatten() else {
        return Ok(None);
    };
    if let Some(stamp) = stamp {
        state.sessions.put(token_hash, stamp, progress, row.clone());
    }
    Ok(Some(row))
}

fn cookie_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

impl FromRequestParts<AppState> for PortalSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (presented, via_cookie) = match bearer(&parts.headers) {
            Some(t) => (t.to_owned(), false),
            None => (cookie_token(parts).ok_or(ApiError::Unauthorized)?, true),
        };
        let token = SecretToken::parse(&presented).map_err(|_| ApiError::Unauthorized)?;
        let hash = token.hash().to_hex();
        let row = session_row(state, &hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let now = state.clock.now();
        if now >= row.idle_expires_at || now >= row.absolute_expires_at {
            end(state, &hash).await?;
            return Err(ApiError::Unauthorized);
        }
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie && !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same_secret(sent, &row.csrf_token) {
                return Err(ApiError::Csrf);
            }
        }
        if !row.active {
            return Err(ApiError::Unauthorized);
        }
        // Slide the idle window, at most once a minute per session.
        if now - row.last_seen_at > chrono::Duration::seconds(60) {
            let next_idle = (now + state.settings.session_idle).min(row.absolute_expires_at);
            state
                .db
                .execute(
                    "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE token_hash = $1",
                    &[hash.clone().into(), format_instant(now).into(), format_instant(next_idle).into()],
                )
                .await?;
            state.sessions.forget(&hash);
        }
        Ok(PortalSession {
            contact_id: row.contact_id,
            firm_id: row.firm_id,
            client_id: row.client_id,
            token_hash: hash,
            csrf_token: row.csrf_token,
            expires_at: row.absolute_expires_text,
        })
    }
}
