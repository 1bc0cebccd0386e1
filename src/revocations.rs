//! Which sessions are revoked, held in memory on every instance so that a bearer check costs a
//! hash lookup. Revocations are written to the store with the change that causes them; a sync
//! loop reads new ones every 250 ms, so a revocation on any instance reaches all within a
//! second. A view that has not synced for too long fails closed.

use crate::clock::Clock;
use crate::store::{REVOCATION_LIFETIME, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// How often the view reads new revocations.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// A view older than this is not trusted: tokens are refused until it syncs again.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// Rows are read again this far behind the newest seen, so a row committed late by a slower
/// writer is not missed.
const OVERLAP: time::Duration = time::Duration::seconds(10);

/// The answer for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Not revoked, as far as a fresh view knows.
    Live,
    /// Revoked.
    Revoked,
    /// The view is stale: the revocation source cannot be read.
    Unknown,
}

/// The in-memory view of revoked sessions. Cheap to clone.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    revoked: RwLock<HashMap<Uuid, OffsetDateTime>>,
    watermark: Mutex<OffsetDateTime>,
    synced_at: Mutex<Instant>,
}

impl Revocations {
    /// Loads every revocation still in force.
    pub async fn load(store: &Store, now: OffsetDateTime) -> Result<Revocations, StoreError> {
        let revocations = Revocations {
            inner: Arc::new(Inner {
                revoked: RwLock::new(HashMap::new()),
                watermark: Mutex::new(OffsetDateTime::UNIX_EPOCH + OVERLAP),
                synced_at: Mutex::new(Instant::now()),
            }),
        };
        revocations.sync(store, now).await?;
        Ok(revocations)
    }

    /// Whether `session_id` may still be used.
    pub fn status(&self, session_id: Uuid) -> SessionStatus {
        if lock(&self.inner.synced_at).elapsed() > STALE_AFTER {
            return SessionStatus::Unknown;
        }
        let revoked = self
            .inner
            .revoked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if revoked.contains_key(&session_id) {
            SessionStatus::Revoked
        } else {
            SessionStatus::Live
        }
    }

    /// Records revocations made by this instance at once, without waiting for the next sync.
    pub fn revoked_here(&self, session_ids: &[Uuid], now: OffsetDateTime) {
        let mut revoked = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for session_id in session_ids {
            revoked.insert(*session_id, now + REVOCATION_LIFETIME);
        }
    }

    /// Reads revocations written since the last sync and forgets expired ones.
    pub async fn sync(&self, store: &Store, now: OffsetDateTime) -> Result<(), StoreError> {
        let since = *lock(&self.inner.watermark) - OVERLAP;
        let fresh = store.revocations_since(since, now).await?;
        {
            let mut revoked = self
                .inner
                .revoked
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            revoked.retain(|_, expires_at| *expires_at > now);
            for revocation in &fresh {
                revoked.insert(revocation.session_id, revocation.expires_at);
            }
        }
        if let Some(newest) = fresh.iter().map(|r| r.created_at).max() {
            let mut watermark = lock(&self.inner.watermark);
            *watermark = (*watermark).max(newest);
        }
        *lock(&self.inner.synced_at) = Instant::now();
        Ok(())
    }

    /// Keeps the view in step with the store until the task is dropped.
    pub fn spawn_sync(&self, store: Store, clock: Clock) -> tokio::task::JoinHandle<()> {
        let revocations = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(SYNC_INTERVAL).await;
                match revocations.sync(&store, clock.now()).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("revocation sync recovered");
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::error!(%error, "revocation sync failing: bearer tokens are refused until it recovers");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
