//! Portico's domain: what a billing client portal is allowed to do, with no I/O.
//!
//! - [`money`], [`ids`], [`values`], [`clock`], [`secrets`]: the vocabulary. Money is an
//!   exact decimal in an ISO 4217 currency at that currency's scale; time is injected.
//! - [`events`]: every change, as stored forever, with schema versions and upcasting.
//! - Aggregates, one per stream kind: [`firm`], [`client`], [`contact`], [`project`],
//!   [`invoice`]. Each folds events in `apply` (evolve) and decides commands in its
//!   methods, returning events or a [`error::DomainError`].
//! - [`submission`]: the bulk-payment decision that spans several invoice streams.
//!
//! The store crate appends what these functions decide; nothing here knows about SQL,
//! tokio or HTTP.

pub mod aggregate;
pub mod client;
pub mod clock;
pub mod contact;
pub mod error;
pub mod events;
pub mod firm;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod project;
pub mod secrets;
pub mod streams;
pub mod submission;
pub mod values;

#[cfg(test)]
mod invoice_tests;
#[cfg(test)]
mod testing;

pub use aggregate::{Aggregate, Scope};
pub use error::{DomainError, DomainResult};
pub use events::Event;
pub use money::{Currency, Money};
