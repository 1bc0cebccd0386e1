//! Which sessions are revoked, held in memory on every instance so that a bearer check costs a
//! hash lookup. Revocations are written to the store with the change that causes them; a sync
//! loop reads the new ones (by log position) every 250 ms, so a revocation on any instance
//! reaches all within a second. A view that has not synced for two seconds (eight missed syncs) fails closed.

use crate::clock::Clock;
use crate::store::{REVOCATION_LIFETIME, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// How often the view reads new revocations.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// A view older than this is not trusted: tokens are refused until it syncs again.
const STALE_AFTER: Duration = Duration::from_secs(2);

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
    /// The highest log position read so far.
    watermark: AtomicI64,
    /// When the last sync succeeded, in milliseconds since `started`.
    synced_at_ms: AtomicU64,
    started: Instant,
}

impl Revocations {
    /// Loads every revocation still in force.
    pub async fn load(store: &Store, now: OffsetDateTime) -> Result<Revocations, StoreError> {
        let revocations = Revocations {
            inner: Arc::new(Inner {
                revoked: RwLock::new(HashMap::new()),
                watermark: AtomicI64::new(0),
                synced_at_ms: AtomicU64::new(0),
                started: Instant::now(),
            }),
        };
        revocations.sync(store, now).await?;
        Ok(revocations)
    }

    /// Whether `session_id` may still be used.
    pub fn status(&self, session_id: Uuid) -> SessionStatus {
        let synced_at = Duration::from_millis(self.inner.synced_at_ms.load(Ordering::Relaxed));
        if self.inner.started.elapsed().saturating_sub(synced_at) > STALE_AFTER {
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
        let fresh = store
            .revocations_after(self.inner.watermark.load(Ordering::Relaxed), now)
            .await?;
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
        if let Some(newest) = fresh.iter().map(|r| r.seq).max() {
            self.inner.watermark.fetch_max(newest, Ordering::Relaxed);
        }
        let elapsed = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.inner.synced_at_ms.store(elapsed, Ordering::Relaxed);
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
