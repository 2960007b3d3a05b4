//! The contact aggregate (`contact-{id}`): a person at a client, their invite and their
//! portal account.
//!
//! Invite rules: only the newest invite works; it expires ([`INVITE_TTL`]); it is used once;
//! revoking it or sending a new one kills the old link. The token that the link carries is
//! never in an event: the credentials table maps its hash to the `invite_id` these events
//! name, so the domain decides on `invite_id` alone.

use chrono::{DateTime, Duration, Utc};

use crate::aggregate::{Aggregate, Scope};
use crate::client::Client;
use crate::error::{DomainError, DomainResult, Entity, InviteProblem};
use crate::events::Event;
use crate::firm::Firm;
use crate::ids::{ClientId, ContactId, FirmId, InviteId};
use crate::values::{Email, Name};

/// How long an invite link works unless the firm says otherwise.
pub const INVITE_TTL: Duration = Duration::days(7);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    Pending,
    Revoked,
    Used,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invite {
    pub id: InviteId,
    pub expires_at: DateTime<Utc>,
    pub state: InviteState,
}

#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub id: Option<ContactId>,
    pub firm_id: Option<FirmId>,
    pub client_id: Option<ClientId>,
    pub name: Option<Name>,
    pub email: Option<Email>,
    /// The newest invite; older ones are dead by construction.
    pub invite: Option<Invite>,
    pub has_account: bool,
    pub deactivated: bool,
}

impl Aggregate for Contact {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::ContactAdded {
                firm_id,
                client_id,
                contact_id,
                name,
                email,
            } => {
                self.id = Some(*contact_id);
                self.firm_id = Some(*firm_id);
                self.client_id = Some(*client_id);
                self.name = Some(name.clone());
                self.email = Some(email.clone());
            }
            Event::InviteSent {
                invite_id,
                expires_at,
                ..
            } => {
                self.invite = Some(Invite {
                    id: *invite_id,
                    expires_at: *expires_at,
                    state: InviteState::Pending,
                });
            }
            Event::InviteRevoked { invite_id, .. } => {
                if let Some(invite) = self.invite.as_mut().filter(|i| i.id == *invite_id) {
                    invite.state = InviteState::Revoked;
                }
            }
            Event::AccountCreated { invite_id, .. } => {
                self.has_account = true;
                if let Some(invite) = self.invite.as_mut().filter(|i| i.id == *invite_id) {
                    invite.state = InviteState::Used;
                }
            }
            Event::ContactDeactivated { .. } => self.deactivated = true,
            _ => {}
        }
    }
}

/// What adding a contact needs: the contact's details and the client it belongs to.
#[derive(Debug, Clone)]
pub struct AddContact {
    pub contact_id: ContactId,
    pub client_id: ClientId,
    pub name: Name,
    pub email: Email,
}

impl Contact {
    /// Adds a contact to one of the firm's clients; the email is reserved in the firm
    /// stream (unique per firm), so the returned events span two streams.
    pub fn add(&self, firm: &Firm, client: &Client, cmd: AddContact) -> DomainResult<Vec<Event>> {
        let firm_id = firm.require()?;
        let client_id = client.require_in(firm_id)?;
        if client_id != cmd.client_id {
            return Err(DomainError::NotFound(Entity::Client));
        }
        if self.id.is_some() {
            return Err(DomainError::AlreadyExists(Entity::Contact));
        }
        let reservation = firm.reserve_email(&cmd.email, cmd.contact_id)?;
        Ok(vec![
            reservation,
            Event::ContactAdded {
                firm_id,
                client_id,
                contact_id: cmd.contact_id,
                name: cmd.name,
                email: cmd.email,
            },
        ])
    }

    fn require_in(&self, scope: &Scope) -> DomainResult<ContactId> {
        match (self.id, self.firm_id) {
            (Some(id), Some(firm_id)) if scope.admits(firm_id, self.client_id) => Ok(id),
            _ => Err(DomainError::NotFound(Entity::Contact)),
        }
    }

    fn require_active_in(&self, scope: &Scope) -> DomainResult<ContactId> {
        let id = self.require_in(scope)?;
        if self.deactivated {
            return Err(DomainError::ContactInactive);
        }
        Ok(id)
    }

    /// Sends (or re-sends) an invite. A new `invite_id` replaces any earlier invite, whose
    /// link stops working.
    pub fn send_invite(
        &self,
        scope: &Scope,
        invite_id: InviteId,
        now: DateTime<Utc>,
    ) -> DomainResult<Vec<Event>> {
        let contact_id = self.require_active_in(scope)?;
        if self.has_account {
            return Err(DomainError::AccountExists);
        }
        Ok(vec![Event::InviteSent {
            contact_id,
            invite_id,
            expires_at: now + INVITE_TTL,
        }])
    }

    pub fn revoke_invite(&self, scope: &Scope) -> DomainResult<Vec<Event>> {
        let contact_id = self.require_in(scope)?;
        match self.invite {
            Some(invite) if invite.state == InviteState::Pending => {
                Ok(vec![Event::InviteRevoked {
                    contact_id,
                    invite_id: invite.id,
                }])
            }
            _ => Err(DomainError::NoOutstandingInvite),
        }
    }

    /// Whether the link for `invite_id` still works at `now`; the portal shows the invite
    /// page only when it does.
    pub fn check_invite(&self, invite_id: InviteId, now: DateTime<Utc>) -> DomainResult<()> {
        if self.id.is_none() {
            return Err(DomainError::NotFound(Entity::Invite));
        }
        let invite = self.invite.ok_or(DomainError::NotFound(Entity::Invite))?;
        if invite.id != invite_id {
            return Err(DomainError::Invite(InviteProblem::Superseded));
        }
        match invite.state {
            InviteState::Revoked => Err(DomainError::Invite(InviteProblem::Revoked)),
            InviteState::Used => Err(DomainError::Invite(InviteProblem::Used)),
            InviteState::Pending if now >= invite.expires_at => {
                Err(DomainError::Invite(InviteProblem::Expired))
            }
            InviteState::Pending if self.deactivated => Err(DomainError::ContactInactive),
            InviteState::Pending => Ok(()),
        }
    }

    /// Accepting an invite creates the account, once; the username is the invited email.
    /// The password itself is the caller's business (hashed in the credentials table).
    pub fn accept_invite(
        &self,
        invite_id: InviteId,
        now: DateTime<Utc>,
    ) -> DomainResult<Vec<Event>> {
        self.check_invite(invite_id, now)?;
        if self.has_account {
            return Err(DomainError::AccountExists);
        }
        let (Some(contact_id), Some(email)) = (self.id, self.email.clone()) else {
            return Err(DomainError::NotFound(Entity::Invite));
        };
        Ok(vec![Event::AccountCreated {
            contact_id,
            invite_id,
            username: email,
        }])
    }

    pub fn change_password(&self, scope: &Scope) -> DomainResult<Vec<Event>> {
        let contact_id = self.require_active_in(scope)?;
        if !self.has_account {
            return Err(DomainError::NoAccount);
        }
        Ok(vec![Event::PasswordChanged { contact_id }])
    }

    pub fn deactivate(&self, scope: &Scope) -> DomainResult<Vec<Event>> {
        let contact_id = self.require_active_in(scope)?;
        Ok(vec![Event::ContactDeactivated { contact_id }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    struct World {
        firm: FirmId,
        client: ClientId,
        contact: ContactId,
        invite: InviteId,
    }

    fn world() -> World {
        World {
            firm: FirmId::new(),
            client: ClientId::new(),
            contact: ContactId::new(),
            invite: InviteId::new(),
        }
    }

    fn added(w: &World) -> Event {
        Event::ContactAdded {
            firm_id: w.firm,
            client_id: w.client,
            contact_id: w.contact,
            name: name("Ann Client"),
            email: email("ann@client.example"),
        }
    }

    fn invited(w: &World, invite: InviteId) -> Event {
        Event::InviteSent {
            contact_id: w.contact,
            invite_id: invite,
            expires_at: t0() + INVITE_TTL,
        }
    }

    #[test]
    fn an_invite_expires_after_seven_days_by_default() {
        let w = world();
        given::<Contact>(&[added(&w)])
            .when(|c| c.send_invite(&Scope::Firm(w.firm), w.invite, t0()))
            .then_events(vec![invited(&w, w.invite)]);
        given::<Contact>(&[added(&w), invited(&w, w.invite)])
            .when(|c| c.accept_invite(w.invite, t0() + INVITE_TTL))
            .then_error(DomainError::Invite(InviteProblem::Expired));
        given::<Contact>(&[added(&w), invited(&w, w.invite)])
            .when(|c| c.accept_invite(w.invite, t0() + INVITE_TTL - Duration::seconds(1)))
            .then_ok();
    }

    #[test]
    fn accepting_creates_the_account_once_with_the_invited_email_as_username() {
        let w = world();
        given::<Contact>(&[added(&w), invited(&w, w.invite)])
            .when(|c| c.accept_invite(w.invite, t0()))
            .then_events(vec![Event::AccountCreated {
                contact_id: w.contact,
                invite_id: w.invite,
                username: email("ann@client.example"),
            }]);
        let accepted = Event::AccountCreated {
            contact_id: w.contact,
            invite_id: w.invite,
            username: email("ann@client.example"),
        };
        // The token is single-use ...
        given::<Contact>(&[added(&w), invited(&w, w.invite), accepted.clone()])
            .when(|c| c.accept_invite(w.invite, t0()))
            .then_error(DomainError::Invite(InviteProblem::Used));
        // ... and no second invite can open a second account.
        given::<Contact>(&[added(&w), invited(&w, w.invite), accepted])
            .when(|c| c.send_invite(&Scope::Firm(w.firm), InviteId::new(), t0()))
            .then_error(DomainError::AccountExists);
    }

    #[test]
    fn a_resent_invite_kills_the_old_link() {
        let w = world();
        let newer = InviteId::new();
        let history = [added(&w), invited(&w, w.invite), invited(&w, newer)];
        given::<Contact>(&history)
            .when(|c| c.accept_invite(w.invite, t0()))
            .then_error(DomainError::Invite(InviteProblem::Superseded));
        given::<Contact>(&history)
            .when(|c| c.accept_invite(newer, t0()))
            .then_ok();
    }

    #[test]
    fn a_revoked_invite_cannot_be_accepted() {
        let w = world();
        let revoked = Event::InviteRevoked {
            contact_id: w.contact,
            invite_id: w.invite,
        };
        given::<Contact>(&[added(&w), invited(&w, w.invite)])
            .when(|c| c.revoke_invite(&Scope::Firm(w.firm)))
            .then_events(vec![revoked.clone()]);
        given::<Contact>(&[added(&w), invited(&w, w.invite), revoked])
            .when(|c| c.accept_invite(w.invite, t0()))
            .then_error(DomainError::Invite(InviteProblem::Revoked));
    }

    #[test]
    fn another_firm_cannot_touch_the_contact() {
        let w = world();
        given::<Contact>(&[added(&w)])
            .when(|c| c.send_invite(&Scope::Firm(FirmId::new()), w.invite, t0()))
            .then_error(DomainError::NotFound(Entity::Contact));
        // A contact of another client of the same firm does not see it either.
        let other_client = Scope::Client {
            firm_id: w.firm,
            client_id: ClientId::new(),
        };
        given::<Contact>(&[added(&w)])
            .when(|c| c.deactivate(&other_client))
            .then_error(DomainError::NotFound(Entity::Contact));
    }

    #[test]
    fn emails_are_unique_per_firm_regardless_of_case() {
        let w = world();
        let firm = Firm::replay(&[
            firm_registered(w.firm),
            Event::ContactEmailReserved {
                firm_id: w.firm,
                email: email("ann@client.example"),
                contact_id: w.contact,
            },
        ]);
        let client = Client::replay(&[Event::ClientAdded {
            firm_id: w.firm,
            client_id: w.client,
            name: name("Client Co"),
        }]);
        let cmd = AddContact {
            contact_id: ContactId::new(),
            client_id: w.client,
            name: name("Ann Again"),
            email: email("ANN@Client.Example"),
        };
        assert_eq!(
            Contact::default().add(&firm, &client, cmd),
            Err(DomainError::DuplicateEmail)
        );
    }

    #[test]
    fn a_contact_is_added_only_to_a_client_of_the_same_firm() {
        let w = world();
        let firm = Firm::replay(&[firm_registered(w.firm)]);
        let foreign_client = Client::replay(&[Event::ClientAdded {
            firm_id: FirmId::new(),
            client_id: w.client,
            name: name("Someone else's client"),
        }]);
        let cmd = AddContact {
            contact_id: w.contact,
            client_id: w.client,
            name: name("Ann"),
            email: email("ann@client.example"),
        };
        assert_eq!(
            Contact::default().add(&firm, &foreign_client, cmd),
            Err(DomainError::NotFound(Entity::Client))
        );
    }

    #[test]
    fn a_deactivated_contact_can_neither_be_invited_nor_accept() {
        let w = world();
        let off = Event::ContactDeactivated {
            contact_id: w.contact,
        };
        given::<Contact>(&[added(&w), invited(&w, w.invite), off.clone()])
            .when(|c| c.accept_invite(w.invite, t0()))
            .then_error(DomainError::ContactInactive);
        given::<Contact>(&[added(&w), off])
            .when(|c| c.send_invite(&Scope::Firm(w.firm), w.invite, t0()))
            .then_error(DomainError::ContactInactive);
    }
}
