//! The client aggregate (`client-{id}`): a company the firm bills. Portal contacts belong
//! to exactly one client, which is their tenant.

use crate::aggregate::Aggregate;
use crate::error::{DomainError, DomainResult, Entity};
use crate::events::Event;
use crate::firm::Firm;
use crate::ids::{ClientId, FirmId};
use crate::values::Name;

#[derive(Debug, Clone, Default)]
pub struct Client {
    pub id: Option<ClientId>,
    pub firm_id: Option<FirmId>,
    pub name: Option<Name>,
}

impl Aggregate for Client {
    fn apply(&mut self, event: &Event) {
        if let Event::ClientAdded {
            firm_id,
            client_id,
            name,
        } = event
        {
            self.id = Some(*client_id);
            self.firm_id = Some(*firm_id);
            self.name = Some(name.clone());
        }
    }
}

impl Client {
    pub fn add(&self, firm: &Firm, client_id: ClientId, name: Name) -> DomainResult<Vec<Event>> {
        let firm_id = firm.require()?;
        if self.id.is_some() {
            return Err(DomainError::AlreadyExists(Entity::Client));
        }
        Ok(vec![Event::ClientAdded {
            firm_id,
            client_id,
            name,
        }])
    }

    /// The client's id when it exists and belongs to `firm_id`; otherwise not found.
    pub fn require_in(&self, firm_id: FirmId) -> DomainResult<ClientId> {
        match (self.id, self.firm_id) {
            (Some(id), Some(f)) if f == firm_id => Ok(id),
            _ => Err(DomainError::NotFound(Entity::Client)),
        }
    }
}
