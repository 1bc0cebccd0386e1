//! The only place that reads the wall clock; tests swap in a manual clock and move it.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use uuid::timestamp::context::ContextV7;

/// Source of the current time, cheap to clone.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The operating system's clock.
    System,
    /// A clock that only moves when told to (tests).
    Manual(Arc<Mutex<OffsetDateTime>>),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: OffsetDateTime) -> Self {
        Clock::Manual(Arc::new(Mutex::new(truncate(start))))
    }

    /// The current time, truncated to microseconds so it survives a database round trip unchanged.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            #[allow(clippy::disallowed_methods)]
            Clock::System => truncate(OffsetDateTime::now_utc()),
            Clock::Manual(at) => *at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// A new id: a UUIDv7 stamped with this clock's time.
    pub fn new_id(&self) -> Uuid {
        id_at(self.now())
    }

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(at) = self {
            let mut at = at.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *at += by;
        }
    }
}

/// Shared by every clock of the process, so ids made within one millisecond (or by a manual
/// clock that stands still) still sort in the order they were made.
static ID_SEQUENCE: Mutex<AssertUnwindSafe<ContextV7>> =
    Mutex::new(AssertUnwindSafe(ContextV7::new()));

/// A UUIDv7 stamped with `at` (a time read from a [`Clock`]): ids sort as their clock moved,
/// a test's manual clock included, and never repeat.
pub fn id_at(at: OffsetDateTime) -> Uuid {
    let nanos = at.unix_timestamp_nanos().max(0);
    let seconds = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let subsec = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Uuid::new_v7(uuid::Timestamp::from_unix(&ID_SEQUENCE, seconds, subsec))
}

fn truncate(at: OffsetDateTime) -> OffsetDateTime {
    let micros = at.microsecond();
    at.replace_nanosecond(micros * 1_000)
        .unwrap_or(at)
        .to_offset(time::UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_clocks_time_and_stay_ordered_when_it_stands_still() {
        let start = OffsetDateTime::from_unix_timestamp(4_000_000_000).unwrap();
        let clock = Clock::manual(start);
        let ids: Vec<Uuid> = (0..1000).map(|_| clock.new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "made in order, none repeated");
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert_eq!(
            seconds, 4_000_000_000,
            "stamped with the manual clock, not the wall"
        );
        clock.advance(Duration::days(1));
        assert!(clock.new_id() > ids[999]);
    }
}
