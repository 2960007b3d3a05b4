//! The read models. Each module owns its tables.

mod directory;
mod invoices;
mod payments;
mod projects;

use std::sync::Arc;

pub use directory::Directory;
pub use invoices::Invoices;
pub use payments::Payments;
pub use projects::Projects;

use crate::projector::Projector;

/// Every projector Portico runs, in the order they are caught up.
pub fn all() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(Directory),
        Arc::new(Projects),
        Arc::new(Invoices),
        Arc::new(Payments),
    ]
}

/// A projector by name (for the operator tools).
pub fn by_name(name: &str) -> Option<Arc<dyn Projector>> {
    all().into_iter().find(|p| p.name() == name)
}
