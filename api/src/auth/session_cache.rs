//! Checked session rows kept in memory, so that a portal read whose view is cached makes
//! no query at all.
//!
//! Checking a session is one query, and on SQLite every query is a hand-off to the
//! connection's thread and back: with the dashboard's JSON already cached, that hand-off
//! was most of the difference to a static handler (perf under 64 connections: about a
//! tenth of the time in the SQLite worker threads and the wake-ups around them).
//!
//! A cached row is only as good as the knowledge that nothing changed it, so the cache is
//! used only where this process sees every change:
//! - **the `sessions` table**: on the embedded SQLite default this process is the only
//!   one serving the database (a second server on the file is refused, see
//!   `startup::serve_lock`), and every write to `sessions` goes through `auth::sessions`,
//!   which tells the cache ([`SessionCache::forget`], [`SessionCache::forget_contact`]).
//!   With PostgreSQL, other replicas log people in and out, so the cache is off there;
//! - **the contact's `active` flag** comes from the `contacts` read model: an entry
//!   records the projection progress it was read at and is used only while the progress
//!   stands still (as the view cache does); this process runs the projectors, so it sees
//!   every move.
//!
//! Expiry is still judged on every request, from the cached times and the clock.
//!
//! A row read from the database while a write to `sessions` happens could be the state
//! from before the write; [`SessionCache::put`] keeps it only if no write was told to the
//! cache since the read began (the `writes` counter taken by [`SessionCache::stamp`]), so
//! a logout can never be undone by a request that raced it.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use portico_domain::ids::{ClientId, ContactId, FirmId};

/// Entries kept before the cache is emptied and starts over.
const MAX_ENTRIES: usize = 16_384;

/// A session row as checked: ids parsed, times as instants.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub contact_id: ContactId,
    pub firm_id: FirmId,
    pub client_id: ClientId,
    pub csrf_token: String,
    pub last_seen_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    /// `absolute_expires_at` as stored, for responses.
    pub absolute_expires_text: String,
    /// The contact's `active` flag in the directory (true when it is not there yet).
    pub active: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    progress: i64,
    row: SessionRow,
}

#[derive(Debug, Default)]
struct Inner {
    /// Writes to `sessions` told to the cache so far.
    writes: u64,
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The row of the session whose token hashes to `token_hash`, if it was read at
    /// projection progress `progress`.
    pub fn get(&self, token_hash: &str, progress: i64) -> Option<SessionRow> {
        self.lock()
            .entries
            .get(token_hash)
            .filter(|e| e.progress == progress)
            .map(|e| e.row.clone())
    }

    /// Taken before reading a row from the database, and handed to [`Self::put`].
    pub fn stamp(&self) -> u64 {
        self.lock().writes
    }

    /// Keeps `row`, read at projection progress `progress` after [`Self::stamp`] gave
    /// `stamp`, unless a write was told to the cache since.
    pub fn put(&self, token_hash: &str, stamp: u64, progress: i64, row: SessionRow) {
        let mut inner = self.lock();
        if inner.writes != stamp {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(token_hash) {
            inner.entries.clear();
        }
        inner
            .entries
            .insert(token_hash.to_owned(), Entry { progress, row });
    }

    /// To be called after a write to the session row of `token_hash`.
    pub fn forget(&self, token_hash: &str) {
        let mut inner = self.lock();
        inner.writes += 1;
        inner.entries.remove(token_hash);
    }

    /// To be called after a write to every session of `contact_id`.
    pub fn forget_contact(&self, contact_id: ContactId) {
        let mut inner = self.lock();
        inner.writes += 1;
        inner.entries.retain(|_, e| e.row.contact_id != contact_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(contact_id: ContactId) -> SessionRow {
        let now = Utc::now();
        SessionRow {
            contact_id,
            firm_id: FirmId::new(),
            client_id: ClientId::new(),
            csrf_token: "csrf".to_owned(),
            last_seen_at: now,
            idle_expires_at: now,
            absolute_expires_at: now,
            absolute_expires_text: String::new(),
            active: true,
        }
    }

    #[test]
    fn a_row_read_before_a_write_is_not_kept_after_it() {
        let cache = SessionCache::default();
        let stamp = cache.stamp();
        // A logout lands while the row is being read.
        cache.forget("t");
        cache.put("t", stamp, 7, row(ContactId::new()));
        assert!(cache.get("t", 7).is_none());
    }

    #[test]
    fn an_entry_serves_only_at_the_progress_it_was_read_at() {
        let cache = SessionCache::default();
        cache.put("t", cache.stamp(), 7, row(ContactId::new()));
        assert!(cache.get("t", 7).is_some());
        assert!(cache.get("t", 8).is_none());
    }

    #[test]
    fn ending_a_contacts_sessions_forgets_only_theirs() {
        let cache = SessionCache::default();
        let (a, b) = (ContactId::new(), ContactId::new());
        cache.put("a1", cache.stamp(), 1, row(a));
        cache.put("a2", cache.stamp(), 1, row(a));
        cache.put("b1", cache.stamp(), 1, row(b));
        cache.forget_contact(a);
        assert!(cache.get("a1", 1).is_none());
        assert!(cache.get("a2", 1).is_none());
        assert!(cache.get("b1", 1).is_some());
    }
}
