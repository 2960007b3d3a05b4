//! Firm profile, clients, contacts and invites, projects and teams.

use axum::extract::State;
use axum::http::StatusCode;
use portico_domain::client::Client;
use portico_domain::contact::{AddContact, Contact};
use portico_domain::firm::Firm;
use portico_domain::ids::{ClientId, ContactId, InviteId, MemberId, ProjectId};
use portico_domain::project::{Project, TeamMember};
use portico_domain::secrets::SecretToken;
use portico_domain::streams::StreamId;
use portico_domain::values::{Email, Name, Url};
use portico_domain::DomainError;
use portico_projections::queries::{
    self, ClientView, ContactView, FirmProjectView, FirmView, ProjectMemberView,
};
use portico_store::hash::format_instant;
use serde::{Deserialize, Serialize};

use super::{metadata, Consistency, Created, Written};
use crate::auth::api_keys::FirmAuth;
use crate::commands::{load, run};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::mailer::OutgoingEmail;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/firm/profile", tag = "firm", params(Consistency),
    responses((status = 200, body = FirmView), (status = 401)), security(("api_key" = [])))]
pub async fn get_profile(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<FirmView>> {
    state.read_after(q.min_position).await?;
    let view = queries::firm(&state.db, &firm.scope())
        .await?
        .ok_or(ApiError::NotFound("firm"))?;
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ProfileUpdate {
    pub name: String,
    /// Absolute http(s) URL of the logo shown on the portal; `null` removes it.
    pub logo_url: Option<String>,
}

#[utoipa::path(patch, path = "/v1/firm/profile", tag = "firm", request_body = ProfileUpdate,
    responses((status = 200, body = Written), (status = 422)), security(("api_key" = [])))]
pub async fn update_profile(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> ApiResult<ApiJson<Written>> {
    let name = Name::parse("name", &body.name).map_err(DomainError::from)?;
    let logo = body
        .logo_url
        .as_deref()
        .map(|u| Url::parse("logo_url", u))
        .transpose()
        .map_err(DomainError::from)?;
    let stream = StreamId::firm(firm.firm_id);
    let committed = run(
        &state,
        &metadata(&firm),
        std::slice::from_ref(&stream),
        |l| {
            l.replay::<Firm>(&stream)
                .update_profile(firm.firm_id, name.clone(), logo.clone())
        },
    )
    .await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewClient {
    pub name: String,
}

#[utoipa::path(post, path = "/v1/firm/clients", tag = "firm", request_body = NewClient,
    responses((status = 201, body = Created), (status = 422)), security(("api_key" = [])))]
pub async fn create_client(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiJson(body): ApiJson<NewClient>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let name = Name::parse("name", &body.name).map_err(DomainError::from)?;
    let client_id = ClientId::new();
    let streams = [StreamId::firm(firm.firm_id), StreamId::client(client_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Client>(&streams[1])
            .add(&l.replay::<Firm>(&streams[0]), client_id, name.clone())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: client_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/firm/clients", tag = "firm", params(Consistency),
    responses((status = 200, body = [ClientView])), security(("api_key" = [])))]
pub async fn list_clients(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<Vec<ClientView>>> {
    state.read_after(q.min_position).await?;
    Ok(ApiJson(
        queries::firm_clients(&state.db, &firm.scope()).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewContact {
    pub name: String,
    /// The contact's login name once they accept the invite; unique per firm.
    pub email: String,
}

#[utoipa::path(post, path = "/v1/firm/clients/{client_id}/contacts", tag = "firm", request_body = NewContact,
    params(("client_id" = String, Path)),
    responses((status = 201, body = Created), (status = 404), (status = 409), (status = 422)), security(("api_key" = [])))]
pub async fn add_contact(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(client_id): ApiPath<ClientId>,
    ApiJson(body): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let cmd = AddContact {
        contact_id: ContactId::new(),
        client_id,
        name: Name::parse("name", &body.name).map_err(DomainError::from)?,
        email: Email::parse(&body.email).map_err(DomainError::from)?,
    };
    let streams = [
        StreamId::firm(firm.firm_id),
        StreamId::client(client_id),
        StreamId::contact(cmd.contact_id),
        StreamId::contact_email(firm.firm_id, &cmd.email),
    ];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Contact>(&streams[2]).add(
            &l.replay_all::<Firm>(&[&streams[0], &streams[3]]),
            &l.replay::<Client>(&streams[1]),
            cmd.clone(),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: cmd.contact_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/firm/contacts", tag = "firm", params(Consistency),
    responses((status = 200, body = [ContactView])), security(("api_key" = [])))]
pub async fn list_contacts(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<Vec<ContactView>>> {
    state.read_after(q.min_position).await?;
    Ok(ApiJson(
        queries::firm_contacts(&state.db, &firm.scope()).await?,
    ))
}

#[utoipa::path(get, path = "/v1/firm/contacts/{contact_id}", tag = "firm", params(("contact_id" = String, Path), Consistency),
    responses((status = 200, body = ContactView), (status = 404)), security(("api_key" = [])))]
pub async fn get_contact(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(contact_id): ApiPath<ContactId>,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<ContactView>> {
    state.read_after(q.min_position).await?;
    queries::firm_contact(&state.db, &firm.scope(), contact_id)
        .await?
        .map(ApiJson)
        .ok_or(ApiError::NotFound("contact"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteSent {
    pub invite_id: String,
    pub expires_at: String,
    pub position: i64,
}

/// Sends the invite email, or sends a new one: the previous link stops working. The link
/// goes only to the contact, by email; it is never in a response or an event.
#[utoipa::path(post, path = "/v1/firm/contacts/{contact_id}/invite", tag = "firm", params(("contact_id" = String, Path)),
    responses((status = 201, body = InviteSent), (status = 404), (status = 409)), security(("api_key" = [])))]
pub async fn send_invite(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(contact_id): ApiPath<ContactId>,
) -> ApiResult<(StatusCode, ApiJson<InviteSent>)> {
    let (sent, _token) = invite(&state, &firm, contact_id).await?;
    Ok((StatusCode::CREATED, ApiJson(sent)))
}

/// Sends (or re-sends) an invite and emails its link; returns the token for the demo,
/// which prints it.
pub async fn invite(
    state: &AppState,
    firm: &FirmAuth,
    contact_id: ContactId,
) -> ApiResult<(InviteSent, SecretToken)> {
    let invite_id = InviteId::new();
    let token = crate::auth::new_token();
    let now = state.clock.now();
    state
        .db
        .execute(
            "INSERT INTO invite_tokens (token_hash, invite_id, contact_id, firm_id, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                token.hash().to_hex().into(),
                invite_id.to_string().into(),
                contact_id.to_string().into(),
                firm.firm_id.to_string().into(),
                format_instant(now).into(),
            ],
        )
        .await?;
    let streams = [StreamId::contact(contact_id)];
    let result = run(state, &metadata(firm), &streams, |l| {
        l.replay::<Contact>(&streams[0]).send_invite(
            &portico_domain::Scope::Firm(firm.firm_id),
            invite_id,
            now,
        )
    })
    .await;
    let committed = match result {
        Ok(c) => c,
        Err(e) => {
            // Nothing was sent: the token must not outlive the refusal.
            state
                .db
                .execute(
                    "DELETE FROM invite_tokens WHERE invite_id = $1",
                    &[invite_id.to_string().into()],
                )
                .await?;
            return Err(e);
        }
    };
    let expires_at = committed
        .events
        .iter()
        .find_map(|e| match e {
            portico_domain::Event::InviteSent { expires_at, .. } => Some(*expires_at),
            _ => None,
        })
        .unwrap_or(now);
    let firm_state: Firm = load(state, &StreamId::firm(firm.firm_id)).await?;
    let contact: Contact = load(state, &StreamId::contact(contact_id)).await?;
    let firm_name = firm_state
        .name
        .as_ref()
        .map_or("Your accountant", |n| n.as_str())
        .to_owned();
    let link = format!("{}/invite/{}", state.settings.public_url, token.expose());
    let logo = firm_state
        .logo_url
        .as_ref()
        .map(|u| format!("\n{firm_name}'s logo: {u}\n"))
        .unwrap_or_default();
    state
        .mailer
        .send(OutgoingEmail {
            to: contact.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
            subject: format!("{firm_name} invites you to its client portal"),
            text: format!(
                "Hello {},\n\n{firm_name} has invited you to its client portal, where you can see and pay your invoices.\n{logo}\n\
                 Create your password here (the link works once, until {}):\n{link}\n",
                contact.name.as_ref().map_or("", |n| n.as_str()),
                format_instant(expires_at),
            ),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("writing the invite email: {e}")))?;
    Ok((
        InviteSent {
            invite_id: invite_id.to_string(),
            expires_at: format_instant(expires_at),
            position: committed.last_position(),
        },
        token,
    ))
}

#[utoipa::path(delete, path = "/v1/firm/contacts/{contact_id}/invite", tag = "firm", params(("contact_id" = String, Path)),
    responses((status = 200, body = Written), (status = 404), (status = 409)), security(("api_key" = [])))]
pub async fn revoke_invite(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(contact_id): ApiPath<ContactId>,
) -> ApiResult<ApiJson<Written>> {
    let streams = [StreamId::contact(contact_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Contact>(&streams[0])
            .revoke_invite(&portico_domain::Scope::Firm(firm.firm_id))
    })
    .await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}

/// Ends the contact's access: no new invite, no login, and every session ends now.
#[utoipa::path(post, path = "/v1/firm/contacts/{contact_id}/deactivate", tag = "firm", params(("contact_id" = String, Path)),
    responses((status = 200, body = Written), (status = 404), (status = 409)), security(("api_key" = [])))]
pub async fn deactivate_contact(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(contact_id): ApiPath<ContactId>,
) -> ApiResult<ApiJson<Written>> {
    let streams = [StreamId::contact(contact_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Contact>(&streams[0])
            .deactivate(&portico_domain::Scope::Firm(firm.firm_id))
    })
    .await?;
    crate::auth::sessions::end_all(&state, contact_id).await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewProject {
    #[schema(value_type = String)]
    pub client_id: ClientId,
    pub name: String,
}

#[utoipa::path(post, path = "/v1/firm/projects", tag = "firm", request_body = NewProject,
    responses((status = 201, body = Created), (status = 404), (status = 422)), security(("api_key" = [])))]
pub async fn create_project(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiJson(body): ApiJson<NewProject>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let name = Name::parse("name", &body.name).map_err(DomainError::from)?;
    let project_id = ProjectId::new();
    let streams = [
        StreamId::firm(firm.firm_id),
        StreamId::client(body.client_id),
        StreamId::project(project_id),
    ];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Project>(&streams[2]).create(
            &l.replay::<Firm>(&streams[0]),
            &l.replay::<Client>(&streams[1]),
            project_id,
            name.clone(),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: project_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/firm/projects", tag = "firm", params(Consistency),
    responses((status = 200, body = [FirmProjectView])), security(("api_key" = [])))]
pub async fn list_projects(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<Vec<FirmProjectView>>> {
    state.read_after(q.min_position).await?;
    Ok(ApiJson(
        queries::firm_projects(&state.db, &firm.scope()).await?,
    ))
}

#[utoipa::path(get, path = "/v1/firm/projects/{project_id}/team", tag = "firm", params(("project_id" = String, Path), Consistency),
    responses((status = 200, body = [ProjectMemberView]), (status = 404)), security(("api_key" = [])))]
pub async fn list_team(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(project_id): ApiPath<ProjectId>,
    ApiQuery(q): ApiQuery<Consistency>,
) -> ApiResult<ApiJson<Vec<ProjectMemberView>>> {
    state.read_after(q.min_position).await?;
    let known = queries::firm_projects(&state.db, &firm.scope())
        .await?
        .iter()
        .any(|p| p.id == project_id.to_string());
    if !known {
        return Err(ApiError::NotFound("project"));
    }
    Ok(ApiJson(
        queries::firm_project_team(&state.db, &firm.scope(), project_id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewMember {
    /// Reuse a member's id to put the same person on several projects.
    #[schema(value_type = Option<String>)]
    pub member_id: Option<MemberId>,
    pub name: String,
    pub role: String,
    pub email: String,
}

#[utoipa::path(post, path = "/v1/firm/projects/{project_id}/team", tag = "firm", request_body = NewMember,
    params(("project_id" = String, Path)),
    responses((status = 201, body = Created), (status = 404), (status = 409), (status = 422)), security(("api_key" = [])))]
pub async fn assign_member(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath(project_id): ApiPath<ProjectId>,
    ApiJson(body): ApiJson<NewMember>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let member = TeamMember {
        name: Name::parse("name", &body.name).map_err(DomainError::from)?,
        role: Name::parse("role", &body.role).map_err(DomainError::from)?,
        email: Email::parse(&body.email).map_err(DomainError::from)?,
    };
    let member_id = body.member_id.unwrap_or_else(MemberId::new);
    let streams = [StreamId::project(project_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Project>(&streams[0]).assign(
            &portico_domain::Scope::Firm(firm.firm_id),
            member_id,
            member.clone(),
        )
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(Created {
            id: member_id.to_string(),
            position: committed.last_position(),
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/firm/projects/{project_id}/team/{member_id}", tag = "firm",
    params(("project_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 200, body = Written), (status = 404)), security(("api_key" = [])))]
pub async fn unassign_member(
    State(state): State<AppState>,
    firm: FirmAuth,
    ApiPath((project_id, member_id)): ApiPath<(ProjectId, MemberId)>,
) -> ApiResult<ApiJson<Written>> {
    let streams = [StreamId::project(project_id)];
    let committed = run(&state, &metadata(&firm), &streams, |l| {
        l.replay::<Project>(&streams[0])
            .unassign(&portico_domain::Scope::Firm(firm.firm_id), member_id)
    })
    .await?;
    Ok(ApiJson(Written {
        position: committed.last_position(),
    }))
}
