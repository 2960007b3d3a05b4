//! Rendered portal views, kept while the read models have not moved.
//!
//! The dashboard and invoices view of a client change only when an event is projected (or
//! the firm's day turns). The cache keeps each view's JSON with the projection progress it
//! was read at (the lowest checkpoint, published by this process's runner) and the day it
//! was computed for; a request at the same progress and day gets the same bytes without a
//! query. Only a process that runs the projectors caches: it learns of every change at
//! once, where a PostgreSQL follower would not. The session is still checked on every
//! request, before the cache is asked.
//!
//! Read-your-writes is unchanged: a request with `min_position` waits until the progress
//! reaches it, which is a new progress value and so a fresh read.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use chrono::NaiveDate;
use portico_domain::clock::TimeZone;

/// Entries kept before the cache is emptied and starts over (a few MB at most).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone)]
pub struct CachedView {
    pub progress: i64,
    pub zone: TimeZone,
    pub today: NaiveDate,
    pub json: Bytes,
}

#[derive(Debug, Default)]
pub struct ViewCache {
    entries: Mutex<HashMap<String, CachedView>>,
}

impl ViewCache {
    pub fn get(&self, key: &str) -> Option<CachedView> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: String, view: CachedView) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, view);
    }
}
