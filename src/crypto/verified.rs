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

/// What an entry weighs in the cache's table: the key, the two shared pointers and the cache's
/// own bookkeeping (21 bytes).
const SLOT: u64 = 32 + 2 * 16 + 21;

/// A typical entry, for sizing the table up front.
const TYPICAL_ENTRY: u64 = 900;

/// The memory an allocation of `len` bytes takes from the allocator: a header, rounded up to
/// 16 bytes, at least 32 (glibc's smallest chunk).
fn allocated(len: usize) -> u64 {
    match len {
        0 => 0,
        len => ((len as u64 + 8).div_ceil(16) * 16).max(32),
    }
}

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
        let items = usize::try_from(budget_bytes / TYPICAL_ENTRY)
            .unwrap_or(usize::MAX)
            .max(1);
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
        let optional = |s: &Option<String>| s.as_ref().map_or(0, |s| allocated(s.len()));
        let amr = claims.amr.as_ref().map_or(0, |amr| {
            allocated(amr.len() * size_of::<String>())
                + amr.iter().map(|m| allocated(m.len())).sum::<u64>()
        });
        SLOT + allocated(size_of::<AccessClaims>() + 16)
            + allocated(kid.len() + 16)
            + [
                &claims.iss,
                &claims.sub,
                &claims.jti,
                &claims.sid,
                &claims.email,
                &claims.role,
            ]
            .iter()
            .map(|s| allocated(s.len()))
            .sum::<u64>()
            + [
                &claims.aud,
                &claims.name,
                &claims.acr,
                &claims.client_id,
                &claims.scope,
            ]
            .iter()
            .map(|s| optional(s))
            .sum::<u64>()
            + amr
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

    #[test]
    fn a_typical_entry_is_counted_near_what_it_takes() {
        let weight = EntryWeight.weight(
            &[0; 32],
            &(
                Arc::from("k".repeat(43).as_str()),
                claims("0190a7d2-0000-7000-8000-000000000002"),
            ),
        );
        assert!((700..=1100).contains(&weight), "{weight}");
    }
}
