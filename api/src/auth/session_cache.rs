//! Checked session rows kept in memory, so that a portal read whose view is cached makes
//! no query at all.
//!
//! Checking a session is one query, and on SQLite every query is a hand-off to the
//! connection's thread and back: with the dashboard's JSON already cached, that hand-off
//! was most of the difference to a static handler (perf under 64 connections: about a
//! tenth of the time in the SQLite worker threads and the wake-ups around them).
//!
//! A cached row is only as good as the knowledge that nothing changed it:
//! - **the `sessions` table**: on the embedded SQLite default this process is the only
//!   one serving the database (a second server on the file is refused, see
//!   `startup::serve_lock`), and every write to `sessions` goes through `auth::sessions`,
//!   which tells the cache ([`SessionCache::forget`], [`SessionCache::forget_contact`]).
//!   With PostgreSQL, other replicas log people in and out, so every change to a session
//!   row is announced by a trigger (`migrations/postgres/0004_session_notices.sql`) and
//!   [`listen`] forgets the row when the notice arrives. The cache serves only while that
//!   listener is connected: it is emptied when the connection is made and again when it
//!   is lost (notices sent meanwhile are gone), and a row read before either is not kept.
//!   A connection that dies without a sign delivers nothing; so that it cannot keep a
//!   logged-out session alive for long, a row is served at most
//!   `--session-cache-max-age-ms` after it was read (1 s by default) on PostgreSQL;
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
//! a logout can never be undone by a request that raced it. On PostgreSQL a logout made
//! through another replica reaches this one when its notice does (PostgreSQL sends it as
//! the logout commits): a request that arrives here before the notice is still served.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use portico_domain::ids::{ClientId, ContactId, FirmId};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

/// Entries kept before the cache is emptied and starts over.
const MAX_ENTRIES: usize = 16_384;

/// The PostgreSQL channel the `sessions` trigger announces changes on.
pub const CHANNEL: &str = "portico_sessions";

/// The notice payload that stands for every row (the table was truncated).
const EVERY_ROW: &str = "*";

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
    read_at: Instant,
    row: SessionRow,
}

/// How the cache learns of writes to `sessions` made elsewhere.
#[derive(Debug)]
enum Writers {
    /// Only this process writes them (SQLite).
    ThisProcess,
    /// Other processes too; their writes arrive as notices, while `listening`.
    Notified { listening: bool, max_age: Duration },
}

#[derive(Debug)]
struct Inner {
    writers: Writers,
    /// Writes to `sessions` told to the cache so far.
    writes: u64,
    entries: HashMap<String, Entry>,
}

impl Inner {
    fn serving(&self) -> bool {
        match self.writers {
            Writers::ThisProcess => true,
            Writers::Notified { listening, .. } => listening,
        }
    }

    fn fresh(&self, entry: &Entry, now: Instant) -> bool {
        match self.writers {
            Writers::ThisProcess => true,
            Writers::Notified { max_age, .. } => now.duration_since(entry.read_at) < max_age,
        }
    }

    fn forget_all(&mut self) {
        self.writes += 1;
        self.entries.clear();
    }
}

/// What [`SessionCache::stamp`] hands to [`SessionCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    writes: u64,
    at: Instant,
}

#[derive(Debug)]
pub struct SessionCache {
    inner: Mutex<Inner>,
    hits: AtomicU64,
}

impl Default for SessionCache {
    /// For a process that makes every write to `sessions` itself.
    fn default() -> Self {
        Self::with(Writers::ThisProcess)
    }
}

impl SessionCache {
    fn with(writers: Writers) -> Self {
        Self {
            inner: Mutex::new(Inner {
                writers,
                writes: 0,
                entries: HashMap::new(),
            }),
            hits: AtomicU64::new(0),
        }
    }

    /// For a process that shares `sessions` with others and hears of their writes through
    /// [`listen`]; it serves nothing until the listener is connected, and no row for
    /// longer than `max_age`.
    pub fn notified(max_age: Duration) -> Self {
        Self::with(Writers::Notified {
            listening: false,
            max_age,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The row of the session whose token hashes to `token_hash`, if it was read at
    /// projection progress `progress` and may still serve.
    pub fn get(&self, token_hash: &str, progress: i64) -> Option<SessionRow> {
        let now = Instant::now();
        let inner = self.lock();
        if !inner.serving() {
            return None;
        }
        let row = inner
            .entries
            .get(token_hash)
            .filter(|e| e.progress == progress && inner.fresh(e, now))
            .map(|e| e.row.clone());
        if row.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        row
    }

    /// Whether the cache may serve now (on PostgreSQL: while its listener is connected).
    pub fn serving(&self) -> bool {
        self.lock().serving()
    }

    /// Requests answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Taken before reading a row from the database, and handed to [`Self::put`].
    pub fn stamp(&self) -> Stamp {
        let writes = self.lock().writes;
        Stamp {
            writes,
            at: Instant::now(),
        }
    }

    /// Keeps `row`, read at projection progress `progress` after [`Self::stamp`] gave
    /// `stamp`, unless a write was told to the cache since (or the cache is not serving).
    pub fn put(&self, token_hash: &str, stamp: Stamp, progress: i64, row: SessionRow) {
        let mut inner = self.lock();
        if inner.writes != stamp.writes || !inner.serving() {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(token_hash) {
            inner.entries.clear();
        }
        inner.entries.insert(
            token_hash.to_owned(),
            Entry {
                progress,
                read_at: stamp.at,
                row,
            },
        );
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

    /// A notice from the `sessions` trigger: one row's token hash, or every row.
    fn heard(&self, payload: &str) {
        if payload == EVERY_ROW {
            self.lock().forget_all();
        } else {
            self.forget(payload);
        }
    }

    /// The listener is connected (`true`) or lost (`false`): either way what the cache
    /// holds may have missed notices, so it starts over.
    fn listening(&self, now_listening: bool) {
        let mut inner = self.lock();
        inner.forget_all();
        if let Writers::Notified { listening, .. } = &mut inner.writers {
            *listening = now_listening;
        }
    }
}

/// Listens to the `sessions` trigger's notices on a connection of its own (named
/// `portico-session-listener` in `pg_stat_activity`) and tells `cache`, until `stop`
/// resolves. A lost connection is made again after a second.
pub async fn listen(pool: &PgPool, cache: &SessionCache, stop: impl Future<Output = ()>) {
    let options = (*pool.connect_options())
        .clone()
        .application_name("portico-session-listener");
    // A pool of its own, so that the listener never holds one of the request pool's
    // connections, and never comes back into it with LISTEN still on.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    let mut stop = std::pin::pin!(stop);
    'connect: loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let next = tokio::select! {
            () = &mut stop => break 'connect,
            next = connected => next,
        };
        match next {
            Ok(mut listener) => {
                cache.listening(true);
                loop {
                    let next = tokio::select! {
                        () = &mut stop => {
                            cache.listening(false);
                            break 'connect;
                        }
                        next = listener.try_recv() => next,
                    };
                    match next {
                        Ok(Some(notice)) => cache.heard(notice.payload()),
                        Ok(None) => {
                            tracing::warn!("lost the session listener's connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the session listener failed");
                            break;
                        }
                    }
                }
                cache.listening(false);
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for session changes"),
        }
        tokio::select! {
            () = &mut stop => break 'connect,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    own.close().await;
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

    #[test]
    fn a_notified_cache_serves_only_while_its_listener_is_connected() {
        let cache = SessionCache::notified(Duration::from_secs(3600));
        cache.put("t", cache.stamp(), 1, row(ContactId::new()));
        assert!(cache.get("t", 1).is_none(), "kept before listening");

        cache.listening(true);
        let stamp = cache.stamp();
        cache.put("t", stamp, 1, row(ContactId::new()));
        assert!(cache.get("t", 1).is_some());

        // Read while connected, kept after the connection was lost: refused.
        let stamp = cache.stamp();
        cache.listening(false);
        cache.put("u", stamp, 1, row(ContactId::new()));
        assert!(cache.get("t", 1).is_none());
        cache.listening(true);
        assert!(cache.get("t", 1).is_none(), "survived a lost connection");
        assert!(cache.get("u", 1).is_none());
    }

    #[test]
    fn a_notice_forgets_its_row_and_a_truncate_every_row() {
        let cache = SessionCache::notified(Duration::from_secs(3600));
        cache.listening(true);
        for t in ["a", "b", "c"] {
            cache.put(t, cache.stamp(), 1, row(ContactId::new()));
        }
        let stamp = cache.stamp();
        cache.heard("a");
        assert!(cache.get("a", 1).is_none());
        assert!(cache.get("b", 1).is_some());
        // A row read while the notice arrived is not kept.
        cache.put("a", stamp, 1, row(ContactId::new()));
        assert!(cache.get("a", 1).is_none());
        cache.heard(EVERY_ROW);
        assert!(cache.get("b", 1).is_none());
        assert!(cache.get("c", 1).is_none());
    }

    #[test]
    fn a_notified_row_serves_for_max_age_from_the_start_of_its_read() {
        let cache = SessionCache::notified(Duration::from_secs(1));
        cache.listening(true);
        let mut stamp = cache.stamp();
        cache.put("t", stamp, 1, row(ContactId::new()));
        assert!(cache.get("t", 1).is_some());
        stamp.at = Instant::now() - Duration::from_secs(2);
        cache.put("t", stamp, 1, row(ContactId::new()));
        assert!(cache.get("t", 1).is_none());
        // Rows this process wrote alone never age out.
        let sole = SessionCache::default();
        let mut stamp = sole.stamp();
        stamp.at = Instant::now() - Duration::from_secs(2);
        sole.put("t", stamp, 1, row(ContactId::new()));
        assert!(sole.get("t", 1).is_some());
    }
}
