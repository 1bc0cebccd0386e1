//! The application state handed to every handler: cheap handles, no globals.

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::random::CodeKey;
use crate::crypto::{Hasher, Sealer, Tokens};
use crate::mail::Mailer;
use crate::ratelimit::RateLimiter;
use crate::revocations::Revocations;
use crate::store::{Committed, Store};
use crate::templates::Templates;
use std::sync::Arc;

/// Everything a request may need, behind one pointer: axum clones the state for every extractor
/// of every request, and one reference count is cheaper than ten.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles inside [`AppState`].
pub struct Shared {
    /// Validated settings.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// The bounded password-hashing pool.
    pub hasher: Hasher,
    /// Access-token signing and verification.
    pub tokens: Tokens,
    /// ID-token signing (the OpenID Connect provider).
    pub id_tokens: crate::crypto::IdTokens,
    /// Which sessions are revoked (kept in step with the store).
    pub revocations: Revocations,
    /// The mail queue's worker side.
    pub mailer: Mailer,
    /// The mails' and hosted pages' templates.
    pub templates: Arc<Templates>,
    /// Keyed hash of reset codes.
    pub code_key: CodeKey,
    /// Seals secrets at rest: signing keys, queued mail bodies.
    pub sealer: Sealer,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// The WebAuthn relying party; `None` when the public URL cannot be a WebAuthn origin (an
    /// IP address), and passkeys are off.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// The clock.
    pub clock: Clock,
    /// Set when shutdown begins: `/readyz` answers 503 from then on.
    pub draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// Wraps the handles (built by [`crate::startup::build`]).
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Shared {
    /// Tells this process what a committed write did: the sessions it revoked stop
    /// authenticating here at once (other instances hear through the store or Redis), and the
    /// mail workers wake for what it queued.
    pub fn after_commit(&self, committed: Committed) {
        if !committed.revoked.is_empty() {
            self.revocations
                .revoked_here(&committed.revoked, self.clock.now());
        }
        if committed.mail_queued {
            self.mailer.wake();
        }
        if committed.requests_queued {
            self.mailer.wake_requests();
        }
    }
}
