//! Identifier newtypes. Every id is a UUID v7, so ids sort by creation time and index
//! well; the newtypes keep an invoice id from being passed where a client id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUID v7 id.
            #[allow(clippy::new_without_default)] // a random default would surprise a reader
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

id_type!(
    /// A professional-services firm: the outer tenant.
    FirmId,
    /// A client of a firm: the inner tenant that portal contacts belong to.
    ClientId,
    /// A person at a client who is invited to the portal.
    ContactId,
    /// One invitation of a contact; re-sending an invite makes a new one.
    InviteId,
    /// A project (job) the firm runs for a client.
    ProjectId,
    /// A firm staff member on a project team.
    MemberId,
    /// An invoice.
    InvoiceId,
    /// One payment of one invoice: one gateway transaction.
    PaymentId,
    /// One PAY NOW / PAY SELECTED submission, covering one or more payments.
    SubmissionId,
);
