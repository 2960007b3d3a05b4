//! The project aggregate (`project-{id}`): a job the firm runs for one client, and its
//! team. The dashboard lists the team of all of a client's projects ("All Jobs") or one.

use std::collections::BTreeMap;

use crate::aggregate::{Aggregate, Scope};
use crate::client::Client;
use crate::error::{DomainError, DomainResult, Entity};
use crate::events::Event;
use crate::firm::Firm;
use crate::ids::{ClientId, FirmId, MemberId, ProjectId};
use crate::values::{Email, Name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    pub name: Name,
    pub role: Name,
    pub email: Email,
}

#[derive(Debug, Clone, Default)]
pub struct Project {
    pub id: Option<ProjectId>,
    pub firm_id: Option<FirmId>,
    pub client_id: Option<ClientId>,
    pub name: Option<Name>,
    pub team: BTreeMap<MemberId, TeamMember>,
}

impl Aggregate for Project {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::ProjectCreated {
                firm_id,
                client_id,
                project_id,
                name,
            } => {
                self.id = Some(*project_id);
                self.firm_id = Some(*firm_id);
                self.client_id = Some(*client_id);
                self.name = Some(name.clone());
            }
            Event::TeamMemberAssigned {
                member_id,
                name,
                role,
                email,
                ..
            } => {
                self.team.insert(
                    *member_id,
                    TeamMember {
                        name: name.clone(),
                        role: role.clone(),
                        email: email.clone(),
                    },
                );
            }
            Event::TeamMemberUnassigned { member_id, .. } => {
                self.team.remove(member_id);
            }
            _ => {}
        }
    }
}

impl Project {
    pub fn create(
        &self,
        firm: &Firm,
        client: &Client,
        project_id: ProjectId,
        name: Name,
    ) -> DomainResult<Vec<Event>> {
        let firm_id = firm.require()?;
        let client_id = client.require_in(firm_id)?;
        if self.id.is_some() {
            return Err(DomainError::AlreadyExists(Entity::Project));
        }
        Ok(vec![Event::ProjectCreated {
            firm_id,
            client_id,
            project_id,
            name,
        }])
    }

    /// The project's id when it is visible in `scope`.
    pub fn require_in(&self, scope: &Scope) -> DomainResult<ProjectId> {
        match (self.id, self.firm_id) {
            (Some(id), Some(firm_id)) if scope.admits(firm_id, self.client_id) => Ok(id),
            _ => Err(DomainError::NotFound(Entity::Project)),
        }
    }

    pub fn assign(
        &self,
        scope: &Scope,
        member_id: MemberId,
        member: TeamMember,
    ) -> DomainResult<Vec<Event>> {
        let project_id = self.require_in(scope)?;
        if self.team.contains_key(&member_id) {
            return Err(DomainError::AlreadyAssigned);
        }
        Ok(vec![Event::TeamMemberAssigned {
            project_id,
            member_id,
            name: member.name,
            role: member.role,
            email: member.email,
        }])
    }

    pub fn unassign(&self, scope: &Scope, member_id: MemberId) -> DomainResult<Vec<Event>> {
        let project_id = self.require_in(scope)?;
        if !self.team.contains_key(&member_id) {
            return Err(DomainError::NotFound(Entity::TeamMember));
        }
        Ok(vec![Event::TeamMemberUnassigned {
            project_id,
            member_id,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn created(firm: FirmId, client: ClientId, project: ProjectId) -> Event {
        Event::ProjectCreated {
            firm_id: firm,
            client_id: client,
            project_id: project,
            name: name("Audit 2026"),
        }
    }

    fn member() -> TeamMember {
        TeamMember {
            name: name("Pat Partner"),
            role: name("Engagement Partner"),
            email: email("pat@firm.example"),
        }
    }

    #[test]
    fn members_are_assigned_once_and_unassigned_by_id() {
        let (f, c, p, m) = (
            FirmId::new(),
            ClientId::new(),
            ProjectId::new(),
            MemberId::new(),
        );
        let assigned = Event::TeamMemberAssigned {
            project_id: p,
            member_id: m,
            name: name("Pat Partner"),
            role: name("Engagement Partner"),
            email: email("pat@firm.example"),
        };
        given::<Project>(&[created(f, c, p)])
            .when(|proj| proj.assign(&Scope::Firm(f), m, member()))
            .then_events(vec![assigned.clone()]);
        given::<Project>(&[created(f, c, p), assigned.clone()])
            .when(|proj| proj.assign(&Scope::Firm(f), m, member()))
            .then_error(DomainError::AlreadyAssigned);
        given::<Project>(&[created(f, c, p), assigned])
            .when(|proj| proj.unassign(&Scope::Firm(f), m))
            .then_events(vec![Event::TeamMemberUnassigned {
                project_id: p,
                member_id: m,
            }]);
        given::<Project>(&[created(f, c, p)])
            .when(|proj| proj.unassign(&Scope::Firm(f), m))
            .then_error(DomainError::NotFound(Entity::TeamMember));
    }

    #[test]
    fn another_firm_cannot_change_the_team() {
        let (f, c, p) = (FirmId::new(), ClientId::new(), ProjectId::new());
        given::<Project>(&[created(f, c, p)])
            .when(|proj| proj.assign(&Scope::Firm(FirmId::new()), MemberId::new(), member()))
            .then_error(DomainError::NotFound(Entity::Project));
    }
}
