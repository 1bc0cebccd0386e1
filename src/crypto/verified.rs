//! Tokens whose signature and claims were already checked, so a gateway asking about the same
//! token on every request pays for the signature once, not each time.

use super::jwt::AccessClaims;
use aws_lc_rs::digest::{SHA256, digest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At most this many tokens are remembered. When full, expired ones are dropped first; only if
/// that frees nothing does the memory start over (the busy tokens are back after one more
/// verification each).
const CAPACITY: usize = 8192;

/// The key id and claims of each verified token, by the token's SHA-256.
type Entries = HashMap<[u8; 32], (Arc<str>, Arc<AccessClaims>)>;

/// Verified tokens by SHA-256 (the tokens themselves are not kept), with the key that verified
/// each, so a token stops being accepted from the cache when its key leaves the key ring.
#[derive(Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<Entries>,
}

impl VerifiedTokens {
    /// The key that verified `token` and its claims, if it was verified before.
    pub(crate) fn get(&self, token: &str) -> Option<(Arc<str>, Arc<AccessClaims>)> {
        let key = fingerprint(token);
        self.lock().get(&key).cloned()
    }

    /// Remembers that `token` verified with key `kid` and carries `claims`; `now` is a Unix time.
    pub(crate) fn insert(&self, token: &str, kid: &str, claims: &Arc<AccessClaims>, now: i64) {
        let key = fingerprint(token);
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, kept)| kept.exp.is_some_and(|exp| exp >= now));
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (Arc::from(kid), Arc::clone(claims)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    let mut key = [0_u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}
