//! How aggregates are written: state is folded from events by `apply` (evolve), which never
//! fails and holds no rules; commands are methods that read the state and return the events
//! to append or a [`DomainError`] (decide). Rules live only in the decide methods.

use crate::events::Event;
use crate::ids::{ClientId, FirmId};

pub trait Aggregate: Default {
    /// Folds one event into the state. Events of other aggregates are ignored.
    fn apply(&mut self, event: &Event);

    fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }
}

/// Who is acting, as far as tenancy goes: a firm (through its API key) or a contact of
/// one client of that firm (through a portal session). Every command on an existing
/// entity takes a scope, and an entity outside it is reported as not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Firm(FirmId),
    Client {
        firm_id: FirmId,
        client_id: ClientId,
    },
}

impl Scope {
    pub fn firm_id(&self) -> FirmId {
        match self {
            Scope::Firm(firm_id) | Scope::Client { firm_id, .. } => *firm_id,
        }
    }

    /// Whether an entity owned by `firm_id` (and, when known, `client_id`) is in scope.
    pub fn admits(&self, firm_id: FirmId, client_id: Option<ClientId>) -> bool {
        match self {
            Scope::Firm(f) => *f == firm_id,
            Scope::Client {
                firm_id: f,
                client_id: c,
            } => *f == firm_id && client_id == Some(*c),
        }
    }
}
