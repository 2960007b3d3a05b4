//! Stream names: `firm-{id}`, `client-{id}`, `contact-{id}`, `project-{id}`, `invoice-{id}`,
//! and one reservation stream per firm-unique key: `reserved-invoice-number-{firm}-{hash}`
//! and `reserved-contact-email-{firm}-{hash}` (the first 128 bits of the key's SHA-256, so
//! the name carries neither the number's odd characters nor the email in clear).
//!
//! A key is claimed by the first event of its stream, appended with "no stream yet" in the
//! same atomic append as the entity: two racing claims of one key conflict and exactly one
//! wins, while claims of different keys never touch the same stream. (Before these streams
//! existed, reservations were appended to the firm stream, which made every invoice issue
//! of a firm contend for one stream; those older reservations are still folded from there.)

use std::fmt;

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::ids::{ClientId, ContactId, FirmId, InvoiceId, ProjectId};
use crate::values::{Email, InvoiceNumber};

fn key_hash(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

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
    /// Where a firm's invoice number is claimed.
    pub fn invoice_number(firm: FirmId, number: &InvoiceNumber) -> Self {
        Self(format!(
            "reserved-invoice-number-{firm}-{}",
            key_hash(number.as_str())
        ))
    }
    /// Where a firm's contact email is claimed.
    pub fn contact_email(firm: FirmId, email: &Email) -> Self {
        Self(format!(
            "reserved-contact-email-{firm}-{}",
            key_hash(email.as_str())
        ))
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
