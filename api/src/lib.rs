//! Portico's HTTP layer (axum) and the `portico` binary's startup.
//!
//! - [`firm`]: the firm API, authenticated by API key ([`auth::api_keys`]).
//! - [`portal`]: invites, login, dashboard, invoices, checkouts, for client contacts with a
//!   session ([`auth::sessions`]).
//! - [`wallet`]: the payment page's API: show and submit a checkout (with
//!   [`idempotency`]), follow a submission.
//! - [`gateway`] and [`webhooks`]: charging each invoice as its own transaction, and
//!   outcomes coming back through signed webhooks.
//! - [`ops`]: health, readiness, metrics, projection status; `/openapi.json` is generated
//!   from the handlers' annotations.
//! - [`startup`]: builds everything; [`leader`] decides which process runs the projectors.
//!
//! Errors are RFC 9457 problems ([`error`]); request bodies, paths and queries go through
//! the [`extract`] wrappers so even malformed input gets that shape.

pub mod auth;
pub mod commands;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod firm;
pub mod gateway;
pub mod idempotency;
pub mod leader;
pub mod mailer;
pub mod metrics;
pub mod ops;
pub mod portal;
pub mod reconcile;
pub mod startup;
pub mod state;
pub mod views_cache;
pub mod wallet;
pub mod webhooks;

pub use startup::Application;
