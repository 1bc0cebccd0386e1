//! The only place that reads the wall clock; tests swap in a manual clock and move it.

use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

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

    /// Moves a manual clock forward; a no-op on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(at) = self {
            let mut at = at.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *at += by;
        }
    }
}

fn truncate(at: OffsetDateTime) -> OffsetDateTime {
    let micros = at.microsecond();
    at.replace_nanosecond(micros * 1_000)
        .unwrap_or(at)
        .to_offset(time::UtcOffset::UTC)
}
