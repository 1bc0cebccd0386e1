//! The in-process counters, used without Redis and, for the actions that fail open, while it
//! is away.

use super::BudgetKey;

/// In-process counters: a fixed array, so memory never grows with the traffic. Budgets are
/// spread over it by a hash keyed at random per process (an attacker cannot aim at another
/// budget's slot); two budgets that share a slot only over-count, so a flood of distinct
/// subjects makes no one's budget roomier and leaves the others' slots alone.
pub(super) struct Buckets {
    /// When each slot's window ends (Unix milliseconds).
    until_ms: Vec<i64>,
    /// Each slot's count in that window.
    count: Vec<u32>,
    /// The per-process key of the slot hash.
    hasher: std::hash::RandomState,
}

/// Slots in process: 2^18, 12 bytes each, 3 MiB at most (zeroed pages are mapped only when
/// touched).
pub(super) const BUCKETS: usize = 1 << 18;

impl Buckets {
    /// Every slot empty.
    pub(super) fn new() -> Buckets {
        Buckets {
            until_ms: vec![0; BUCKETS],
            count: vec![0; BUCKETS],
            hasher: std::hash::RandomState::new(),
        }
    }

    fn slot(&self, key: &BudgetKey) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(key) as usize) & (BUCKETS - 1)
    }

    /// Counts one request against `key`'s budget, whose window ends at `until_ms`; gives the
    /// count so far in the window.
    pub(super) fn count(&mut self, key: &BudgetKey, until_ms: i64, now_ms: i64) -> u32 {
        let slot = self.slot(key);
        // A slot whose window ended starts over with this budget's window.
        if self.until_ms[slot] <= now_ms {
            self.until_ms[slot] = until_ms;
            self.count[slot] = 0;
        }
        self.count[slot] = self.count[slot].saturating_add(1);
        self.count[slot]
    }

    /// How many slots hold a count whose window has not ended.
    pub(super) fn live(&self, now_ms: i64) -> usize {
        self.until_ms
            .iter()
            .filter(|until| **until > now_ms)
            .count()
    }
}
