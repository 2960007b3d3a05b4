//! Portico's HTTP layer: axum routers over the read models and the command path, and the
//! `portico` binary's startup. Only health and readiness are served so far; the firm,
//! portal and Wallet APIs arrive with the HTTP API issue.

pub mod config;
pub mod startup;

pub use startup::Application;
