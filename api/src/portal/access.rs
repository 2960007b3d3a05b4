//! Invite lookup and acceptance, login, logout, password change.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use portico_domain::contact::Contact;
use portico_domain::error::DomainError;
use portico_domain::firm::Firm;
use portico_domain::ids::{ClientId, ContactId, FirmId, InviteId};
use portico_domain::secrets::SecretToken;
use portico_domain::streams::StreamId;
use portico_domain::values::Locale;
use portico_projections::queries::{self, FirmScope};
use portico_store::hash::format_instant;
use portico_store::Metadata;
use serde::{Deserialize, Serialize};

use crate::auth::sessions::{self, PortalSession, SessionGrant, SessionInfo};
use crate::auth::{login, passwords};
use crate::commands::{load, run};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

#[derive(Debug, sqlx::FromRow)]
struct InviteToken {
    invite_id: String,
    contact_id: String,
    firm_id: String,
}

struct Invitation {
    invite_id: InviteId,
    contact_id: ContactId,
    firm_id: FirmId,
    contact: Contact,
    firm: Firm,
}

/// The invitation a token opens, with the contact's and firm's current state (read from
/// the log, not a read model, so a just-revoked link is refused at once).
async fn invitation(state: &AppState, token: &str) -> ApiResult<Invitation> {
    let token = SecretToken::parse(token).map_err(|_| ApiError::NotFound("invite"))?;
    let row: InviteToken = state
        .db
        .fetch_optional(
            "SELECT invite_id, contact_id, firm_id FROM invite_tokens WHERE token_hash = $1",
            &[token.hash().to_hex().into()],
        )
        .await?
        .ok_or(ApiError::NotFound("invite"))?;
    let bad = || ApiError::Internal("an invite token row holds a malformed id".into());
    let invite_id: InviteId = row.invite_id.parse().map_err(|_| bad())?;
    let contact_id: ContactId = row.contact_id.parse().map_err(|_| bad())?;
    let firm_id: FirmId = row.firm_id.parse().map_err(|_| bad())?;
    Ok(Invitation {
        invite_id,
        contact_id,
        firm_id,
        contact: load(state, &StreamId::contact(contact_id)).await?,
        firm: load(state, &StreamId::firm(firm_id)).await?,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirmBrand {
    pub name: String,
    pub logo_url: Option<String>,
    /// BCP 47 tag to format the firm's dates and amounts with, e.g. `en-US`.
    pub locale: String,
}

impl From<queries::FirmView> for FirmBrand {
    fn from(firm: queries::FirmView) -> Self {
        Self {
            name: firm.name,
            logo_url: firm.logo_url,
            locale: firm.locale,
        }
    }
}

/// The firm's public face for its login page: name, logo and locale.
#[utoipa::path(get, path = "/v1/portal/firms/{firm_id}", tag = "portal", params(("firm_id" = String, Path)),
    responses((status = 200, body = FirmBrand), (status = 404)))]
pub async fn firm_brand(
    State(state): State<AppState>,
    ApiPath(firm_id): ApiPath<FirmId>,
) -> ApiResult<ApiJson<FirmBrand>> {
    let firm = queries::firm(&state.db, &FirmScope { firm_id })
        .await?
        .ok_or(ApiError::NotFound("firm"))?;
    Ok(ApiJson(firm.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteLookup {
    pub firm_id: String,
    pub firm: FirmBrand,
    /// The username to pre-fill (and not let the contact change).
    pub email: String,
    pub name: String,
    pub expires_at: String,
}

/// What the activation page shows. Unknown token: 404; expired, used, revoked or replaced:
/// 410 with a `reason`.
#[utoipa::path(get, path = "/v1/portal/invites/{token}", tag = "portal", params(("token" = String, Path)),
    responses((status = 200, body = InviteLookup), (status = 404), (status = 410)))]
pub async fn lookup_invite(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<ApiJson<InviteLookup>> {
    let inv = invitation(&state, &token).await?;
    inv.contact.check_invite(inv.invite_id, state.clock.now())?;
    if inv.contact.has_account {
        return Err(DomainError::Invite(portico_domain::error::InviteProblem::Used).into());
    }
    Ok(ApiJson(InviteLookup {
        firm_id: inv.firm_id.to_string(),
        firm: FirmBrand {
            name: inv
                .firm
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            logo_url: inv.firm.logo_url.as_ref().map(|u| u.to_string()),
            locale: inv
                .firm
                .locale
                .as_ref()
                .map_or_else(|| Locale::DEFAULT.to_owned(), |l| l.to_string()),
        },
        email: inv
            .contact
            .email
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        name: inv
            .contact
            .name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        expires_at: inv
            .contact
            .invite
            .map(|i| format_instant(i.expires_at))
            .unwrap_or_default(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AcceptInvite {
    pub password: String,
    pub password_confirmation: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    pub session: SessionGrant,
    pub position: i64,
}

fn with_cookie(
    state: &AppState,
    token: &SecretToken,
    body: SessionCreated,
) -> (StatusCode, HeaderMap, ApiJson<SessionCreated>) {
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, sessions::cookie(state, Some(token)));
    (StatusCode::CREATED, headers, ApiJson(body))
}

/// Creates the account (once) with the chosen password and logs the contact in.
#[utoipa::path(post, path = "/v1/portal/invites/{token}/accept", tag = "portal", request_body = AcceptInvite,
    params(("token" = String, Path)),
    responses((status = 201, body = SessionCreated), (status = 404), (status = 410), (status = 422)))]
pub async fn accept_invite(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<AcceptInvite>,
) -> ApiResult<(StatusCode, HeaderMap, ApiJson<SessionCreated>)> {
    let inv = invitation(&state, &token).await?;
    let now = state.clock.now();
    inv.contact.check_invite(inv.invite_id, now)?;
    let email = inv
        .contact
        .email
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    if body.password != body.password_confirmation {
        return Err(ApiError::validation(
            "the password and its confirmation differ",
        ));
    }
    passwords::check_policy(&body.password, &email)?;
    let hash = passwords::hash(body.password).await?;
    let client_id: ClientId = inv.contact.client_id.ok_or(ApiError::NotFound("invite"))?;
    let stream = StreamId::contact(inv.contact_id);
    let meta = Metadata::new(Some(inv.firm_id), format!("contact:{}", inv.contact_id));
    let committed = run(&state, &meta, std::slice::from_ref(&stream), |l| {
        l.replay::<Contact>(&stream)
            .accept_invite(inv.invite_id, now)
    })
    .await?;
    state
        .db
        .execute(
            "INSERT INTO credentials (contact_id, firm_id, password_hash, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (contact_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
            &[
                inv.contact_id.to_string().into(),
                inv.firm_id.to_string().into(),
                hash.into(),
                format_instant(now).into(),
            ],
        )
        .await?;
    let (grant, session_token) =
        sessions::create(&state, inv.contact_id, inv.firm_id, client_id).await?;
    Ok(with_cookie(
        &state,
        &session_token,
        SessionCreated {
            session: grant,
            position: committed.last_position(),
        },
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Login {
    /// The firm whose portal this is (from its invite or login page).
    #[schema(value_type = String)]
    pub firm_id: FirmId,
    pub email: String,
    pub password: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Credential {
    password_hash: String,
}

/// One generic 401 for an unknown email or a wrong password; 429 with `Retry-After` while
/// the email is backing off.
#[utoipa::path(post, path = "/v1/portal/sessions", tag = "portal", request_body = Login,
    responses((status = 201, body = SessionCreated), (status = 401), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<(StatusCode, HeaderMap, ApiJson<SessionCreated>)> {
    let now = state.clock.now();
    let email = body.email.trim().to_lowercase();
    if email.len() > 254 || body.password.chars().count() > passwords::MAX_LEN {
        return Err(ApiError::LoginFailed);
    }
    login::check(&state, body.firm_id, &email, now).await?;
    // The read model finds the contact by email; whether it may log in is decided on the
    // contact's own stream, so an account created or a contact deactivated a moment ago
    // counts at once.
    let mut contact = queries::contact_by_email(
        &state.db,
        &FirmScope {
            firm_id: body.firm_id,
        },
        &email,
    )
    .await?;
    if let Some(c) = &contact {
        let id: ContactId = c
            .contact_id
            .parse()
            .map_err(|_| ApiError::Internal("a contact row holds a malformed id".into()))?;
        let current: Contact = load(&state, &StreamId::contact(id)).await?;
        if !current.has_account || current.deactivated {
            contact = None;
        }
    }
    let stored: Option<Credential> = match &contact {
        Some(c) => {
            state
                .db
                .fetch_optional(
                    "SELECT password_hash FROM credentials WHERE contact_id = $1",
                    &[c.contact_id.clone().into()],
                )
                .await?
        }
        None => None,
    };
    let ok = passwords::verify(body.password, stored.map(|c| c.password_hash)).await?;
    let Some(contact) = contact.filter(|_| ok) else {
        login::record_failure(&state, body.firm_id, &email, now).await?;
        return Err(ApiError::LoginFailed);
    };
    login::clear(&state, body.firm_id, &email).await?;
    let bad = || ApiError::Internal("a contact row holds a malformed id".into());
    let (grant, token) = sessions::create(
        &state,
        contact.contact_id.parse().map_err(|_| bad())?,
        body.firm_id,
        contact.client_id.parse().map_err(|_| bad())?,
    )
    .await?;
    Ok(with_cookie(
        &state,
        &token,
        SessionCreated {
            session: grant,
            position: 0,
        },
    ))
}

/// The session the request carries, with its CSRF token: a page that was reloaded reads it
/// here (another site's page cannot read responses from this origin).
#[utoipa::path(get, path = "/v1/portal/sessions/current", tag = "portal",
    responses((status = 200, body = SessionInfo), (status = 401)), security(("session" = [])))]
pub async fn current_session(
    State(state): State<AppState>,
    session: PortalSession,
) -> ApiResult<ApiJson<SessionInfo>> {
    Ok(ApiJson(sessions::info(&state, &session).await?))
}

#[utoipa::path(delete, path = "/v1/portal/sessions/current", tag = "portal",
    responses((status = 204), (status = 401)), security(("session" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    session: PortalSession,
) -> ApiResult<(StatusCode, HeaderMap)> {
    sessions::end(&state, &session.token_hash).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, sessions::cookie(&state, None));
    Ok((StatusCode::NO_CONTENT, headers))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the password; every session of the contact ends and a new one is handed out.
#[utoipa::path(post, path = "/v1/portal/password", tag = "portal", request_body = PasswordChange,
    responses((status = 201, body = SessionCreated), (status = 401), (status = 422)), security(("session" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    session: PortalSession,
    ApiJson(body): ApiJson<PasswordChange>,
) -> ApiResult<(StatusCode, HeaderMap, ApiJson<SessionCreated>)> {
    let stored: Option<Credential> = state
        .db
        .fetch_optional(
            "SELECT password_hash FROM credentials WHERE contact_id = $1",
            &[session.contact_id.to_string().into()],
        )
        .await?;
    if !passwords::verify(body.current_password, stored.map(|c| c.password_hash)).await? {
        return Err(ApiError::LoginFailed);
    }
    let contact: Contact = load(&state, &StreamId::contact(session.contact_id)).await?;
    let email = contact
        .email
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    passwords::check_policy(&body.new_password, &email)?;
    let hash = passwords::hash(body.new_password).await?;
    let stream = StreamId::contact(session.contact_id);
    let meta = Metadata::new(Some(session.firm_id), session.actor());
    let scope = session.scope();
    let committed = run(&state, &meta, std::slice::from_ref(&stream), |l| {
        l.replay::<Contact>(&stream).change_password(&scope)
    })
    .await?;
    state
        .db
        .execute(
            "UPDATE credentials SET password_hash = $2, updated_at = $3 WHERE contact_id = $1",
            &[
                session.contact_id.to_string().into(),
                hash.into(),
                format_instant(state.clock.now()).into(),
            ],
        )
        .await?;
    sessions::end_all(&state, session.contact_id).await?;
    let (grant, token) = sessions::create(
        &state,
        session.contact_id,
        session.firm_id,
        session.client_id,
    )
    .await?;
    Ok(with_cookie(
        &state,
        &token,
        SessionCreated {
            session: grant,
            position: committed.last_position(),
        },
    ))
}
