//! Stream names: `firm-{id}`, `client-{id}`, `contact-{id}`, `project-{id}`, `invoice-{id}`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, ContactId, FirmId, InvoiceId, ProjectId};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    pub fn firm(id: FirmId) -> Self {
        Self(format!("firm-{id}"))
    }
    pub fn client(id: ClientId) -> Self {
        Self(format!("client-{id}"))
    }
    pub fn contact(id: ContactId) -> Self {
        Self(format!("contact-{id}"))
    }
    pub fn project(id: ProjectId) -> Self {
        Self(format!("project-{id}"))
    }
    pub fn invoice(id: InvoiceId) -> Self {
        Self(format!("invoice-{id}"))
    }

    /// A stream name read back from storage. Not validated: the store holds what was
    /// written, and the contract suite writes arbitrary names.
    pub fn from_stored(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
