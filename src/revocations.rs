//! Which sessions are revoked, held in memory on every instance so that a bearer check costs a
//! hash lookup. Revocations are written to the store with the change that causes them; a sync
//! loop reads the new ones (by log position) every 250 ms, so a revocation on any instance
//! reaches all within a second. A view that has not synced for two seconds (eight missed syncs)
//! fails closed. With Redis configured, revocations are also announced on a Redis channel and
//! heard by every instance at once; while Redis cannot be reached, bearer checks fail closed too.

use crate::clock::Clock;
use crate::store::{REVOCATION_LIFETIME, Store, StoreError};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

/// How often the view reads new revocations.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// The Redis channel revocations are announced on.
const CHANNEL: &str = "latchkey:revocations";
/// How long any Redis call may take before Redis counts as away (it fails fast, and closed).
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
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
    /// False while a configured Redis cannot be reached.
    signal_ok: AtomicBool,
    /// Where revocations made here go to be announced on Redis, when it is configured.
    announce: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Vec<Uuid>>>>,
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
                signal_ok: AtomicBool::new(true),
                announce: std::sync::Mutex::new(None),
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
        if self.inner.started.elapsed().saturating_sub(synced_at) > STALE_AFTER
            || !self.signal_healthy()
        {
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

    /// Records revocations made by this instance at once, without waiting for the next sync,
    /// and announces them on Redis when it is configured.
    pub fn revoked_here(&self, session_ids: &[Uuid], now: OffsetDateTime) {
        self.remember(session_ids, now + REVOCATION_LIFETIME);
        if session_ids.is_empty() {
            return;
        }
        let announce = self
            .inner
            .announce
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(announce) = announce.as_ref() {
            let _ = announce.send(session_ids.to_vec());
        }
    }

    fn remember(&self, session_ids: &[Uuid], until: OffsetDateTime) {
        let mut revoked = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for session_id in session_ids {
            revoked.insert(*session_id, until);
        }
    }

    /// False while a configured Redis cannot be reached (bearer checks then fail closed).
    pub fn signal_healthy(&self) -> bool {
        self.inner.signal_ok.load(Ordering::Relaxed)
    }

    /// Announces and hears revocations on Redis until the task is dropped, reconnecting with
    /// backoff; the view fails closed whenever Redis is away.
    pub fn spawn_redis(&self, url: String, clock: Clock) -> tokio::task::JoinHandle<()> {
        let revocations = self.clone();
        let (announce, mut announced) = tokio::sync::mpsc::unbounded_channel();
        *self
            .inner
            .announce
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(announce);
        self.inner.signal_ok.store(false, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let error = match redis::Client::open(url.as_str()) {
                    Ok(client) => revocations.listen(&client, &mut announced, &clock).await,
                    Err(error) => anyhow::Error::from(error),
                };
                if revocations.inner.signal_ok.swap(false, Ordering::Relaxed) {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "Redis unreachable: bearer checks fail closed until it is back"
                    );
                    backoff = Duration::from_millis(200);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }

    /// One Redis connection's life: subscribe, then hear, announce and ping until something
    /// fails; gives what failed.
    async fn listen(
        &self,
        client: &redis::Client,
        announced: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Uuid>>,
        clock: &Clock,
    ) -> anyhow::Error {
        let late =
            |what: &str| anyhow::anyhow!("Redis did not answer {what} within {REDIS_TIMEOUT:?}");
        let Ok(Ok(mut pubsub)) =
            tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await
        else {
            return late("a subscription");
        };
        if !matches!(
            tokio::time::timeout(REDIS_TIMEOUT, pubsub.subscribe(CHANNEL)).await,
            Ok(Ok(()))
        ) {
            return late("SUBSCRIBE");
        }
        let Ok(Ok(mut connection)) =
            tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection()).await
        else {
            return late("a connection");
        };
        if !self.inner.signal_ok.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis revocation signal connected");
        }
        let mut messages = pubsub.on_message();
        let mut ping = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return anyhow::anyhow!("the Redis subscription closed") };
                    let payload: String = message.get_payload().unwrap_or_default();
                    let ids: Vec<Uuid> = payload.split(',').filter_map(|id| Uuid::parse_str(id).ok()).collect();
                    self.remember(&ids, clock.now() + REVOCATION_LIFETIME);
                }
                Some(ids) = announced.recv() => {
                    let payload = ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(CHANNEL).arg(payload);
                    let publish = command.query_async::<i64>(&mut connection);
                    if !matches!(tokio::time::timeout(REDIS_TIMEOUT, publish).await, Ok(Ok(_))) {
                        return late("PUBLISH");
                    }
                }
                _ = ping.tick() => {
                    let command = redis::cmd("PING");
                    let pong = command.query_async::<String>(&mut connection);
                    if !matches!(tokio::time::timeout(REDIS_TIMEOUT, pong).await, Ok(Ok(_))) {
                        return late("PING");
                    }
                }
            }
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
