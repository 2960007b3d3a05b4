//! Portico's read models: projectors that fold `$all` into SQL tables, their checkpoints,
//! the catch-up runner and blue/green rebuild. Built in the read-models issue; this crate
//! holds its place in the dependency order (domain ← store ← projections ← api, replay).

pub use portico_store as store;
