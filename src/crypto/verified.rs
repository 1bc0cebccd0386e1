//! Tokens whose signature and claims were already checked, so a gateway asking about the same
//! token on every request pays for the signature once, not each time. The memory is a budget
//! in bytes (`LATCHKEY_VERIFY_CACHE_MB`), not a count: a gateway in front of many users keeps
//! as many of their tokens as fit, and the eviction (quick_cache's CLOCK-Pro / S3-FIFO-like
//! policy) keeps the ones asked about again over those seen once.

use super::jwt::AccessClaims;
use aws_lc_rs::digest::{SHA256, digest};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::sync::Arc;

/// What an entry is estimated to weigh beyond its strings: the key, the two shared pointers
/// and their counts, the claims themselves, and the cache's own bookkeeping (21 bytes).
const ENTRY_OVERHEAD: u64 = 32 + 2 * 16 + 2 * 16 + size_of::<AccessClaims>() as u64 + 21;

/// A typical entry, for sizing the table up front.
const TYPICAL_ENTRY: u64 = 640;

/// The key id and claims of a verified token, by the token's SHA-256 (the token itself is not
/// kept).
type Entry = (Arc<str>, Arc<AccessClaims>);

/// Verified tokens by SHA-256, with the key that verified each, so a token stops being accepted
/// from the cache when its key leaves the key ring.
pub(crate) struct VerifiedTokens {
    entries: Cache<[u8; 32], Entry, EntryWeight>,
}

impl VerifiedTokens {
    /// A cache of at most `budget_bytes` (estimated from what each entry holds).
    pub(crate) fn with_budget(budget_bytes: u64) -> VerifiedTokens {
        let items = usize::try_from(budget_bytes / TYPICAL_ENTRY).unwrap_or(usize::MAX).max(1);
        VerifiedTokens {
            entries: Cache::with_weighter(items, budget_bytes.max(1), EntryWeight),
        }
    }

    /// The key that verified `token` and its claims, if it was verified before.
    pub(crate) fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(&fingerprint(token))
    }

    /// Remembers that `token` verified with key `kid` and carries `claims`.
    pub(crate) fn insert(&self, token: &str, kid: &str, claims: &Arc<AccessClaims>) {
        self.entries
            .insert(fingerprint(token), (Arc::from(kid), Arc::clone(claims)));
    }

    /// How many tokens are remembered, and their estimated bytes.
    pub(crate) fn usage(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}

/// An entry's estimated bytes: its fixed part and every string it owns.
#[derive(Clone)]
struct EntryWeight;

impl Weighter<[u8; 32], Entry> for EntryWeight {
    fn weight(&self, _key: &[u8; 32], (kid, claims): &Entry) -> u64 {
        let strings = [
            claims.iss.len(),
            claims.sub.len(),
            claims.jti.len(),
            claims.sid.len(),
            claims.email.len(),
            claims.role.len(),
            claims.aud.as_ref().map_or(0, String::len),
            claims.name.as_ref().map_or(0, String::len),
            claims.acr.as_ref().map_or(0, String::len),
            claims.client_id.as_ref().map_or(0, String::len),
            claims.scope.as_ref().map_or(0, String::len),
            claims
                .amr
                .as_ref()
                .map_or(0, |amr| amr.iter().map(|m| m.len() + 24).sum()),
            kid.len(),
        ];
        ENTRY_OVERHEAD + strings.iter().sum::<usize>() as u64
    }
}

fn fingerprint(token: &str) -> [u8; 32] {
    let mut key = [0_u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            iss: "http://issuer.test".into(),
            sub: sub.into(),
            aud: None,
            iat: 0,
            nbf: None,
            exp: Some(1),
            jti: "0190a7d2-0000-7000-8000-000000000000".into(),
            sid: "0190a7d2-0000-7000-8000-000000000001".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            role: "user".into(),
            name: None,
            auth_time: Some(0),
            amr: Some(vec!["pwd".into()]),
            acr: Some("aal1".into()),
            client_id: None,
            scope: None,
        })
    }

    #[test]
    fn the_budget_bounds_the_memory_and_a_scan_does_not_flush_the_busy_tokens() {
        let budget = 64 * 1024;
        let cache = VerifiedTokens::with_budget(budget);
        let busy: Vec<String> = (0..50).map(|i| format!("busy-{i}")).collect();
        // A gateway's users come back: each busy token is checked again and again.
        for _ in 0..3 {
            for token in &busy {
                if cache.get(token).is_none() {
                    cache.insert(token, "k1", &claims(token));
                }
            }
        }
        // Then a burst of one-off tokens, far more than fit (a scan, or an attacker's junk
        // that verified).
        for i in 0..10_000 {
            cache.insert(&format!("once-{i}"), "k1", &claims(&i.to_string()));
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes} bytes");
        assert!(entries > 50 && entries < 1000, "{entries} entries");
        let kept = busy.iter().filter(|t| cache.get(t).is_some()).count();
        // An LRU would have kept none of them.
        assert!(kept >= 45, "{kept} of 50 busy tokens survived the scan");
    }
}
