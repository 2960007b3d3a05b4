//! Portico's read models.
//!
//! - [`projector`]: what a projector is — a pure function from an event to SQL statements
//!   over tables it owns — and [`projectors`], the four Portico runs: `directory` (firms,
//!   clients, contacts), `projects` (projects and teams), `invoices` (invoices and the
//!   per-client summary), `payments`.
//! - [`runner`]: exactly-once batches (tables and checkpoint in one transaction), the
//!   catch-up/live runner, and waiting for a position so a client reads its own write.
//! - [`rebuild`]: blue/green rebuild beside the live tables, swapped in one transaction.
//! - [`queries`]: tenant-scoped reads, with status derived from an injected "today".
//! - [`memory`]: projectors' folds kept in memory, which rebuilds use.
//! - [`sqlite_writer`]: a SQLite rebuild read, folded in memory and written on threads of
//!   its own; [`pg_writer`]: a PostgreSQL rebuild folded in memory and written with `COPY`.
//! - [`db`]: one SQL text for SQLite and PostgreSQL.
//! - [`simulate`]: histories generated through the domain, for tests and benchmarks.

pub mod db;
pub mod dump;
pub mod memory;
pub mod pg_writer;
pub mod projector;
pub mod projectors;
pub mod queries;
pub mod rebuild;
pub mod runner;
pub mod simulate;
pub mod sqlite_writer;

pub use db::Db;
pub use runner::{ProjectionError, ProjectionResult, Runner};
