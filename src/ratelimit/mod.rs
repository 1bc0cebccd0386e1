//! Rate limits per client address and per target account (the normalised email, whether or not
//! an account has it, so limits reveal nothing). Fixed windows, counted in process or, with
//! `LATCHKEY_REDIS_URL`, in Redis so that every instance shares one budget. Redis away: login
//! and reset fail closed (503), the other actions go on with the in-process counters.

use crate::clock::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Action {
    Register,
    Login,
    Refresh,
    Resend,
    Forgot,
    Reset,
    Confirm,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::Refresh => "refresh",
            Action::Resend => "resend",
            Action::Forgot => "forgot",
            Action::Reset => "reset",
            Action::Confirm => "confirm",
        }
    }

    /// Whether an unknown count must refuse rather than allow (Redis away).
    fn fails_closed(self) -> bool {
        matches!(self, Action::Login | Action::Reset)
    }
}

/// A budget: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window.
    pub window: time::Duration,
}

/// A configured limit: a policy, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Policy>);

impl Limit {
    /// Parses `10/1m`, or `off`.
    pub fn parse(raw: &str) -> Result<Limit, String> {
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(Limit(None));
        }
        Policy::parse(raw).map(|policy| Limit(Some(policy)))
    }
}

impl Policy {
    /// Parses `10/1m` (a count per window, durations as everywhere else).
    pub fn parse(raw: &str) -> Result<Policy, String> {
        let (limit, window) = raw
            .split_once('/')
            .ok_or_else(|| format!("{raw:?} is not a limit like 10/1m"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("{raw:?} is not a limit like 10/1m"))?;
        let window = crate::config::parse_duration(window)?;
        if limit == 0 || window < time::Duration::seconds(1) {
            return Err(format!(
                "{raw:?}: the count must be at least 1 and the window at least 1s"
            ));
        }
        Ok(Policy { limit, window })
    }
}

/// The configured budgets: per client address and per account, for each action.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Per client address.
    pub per_ip: HashMap<Action, Policy>,
    /// Per target account (normalised email).
    pub per_account: HashMap<Action, Policy>,
}

/// A refusal: which budget ran out and when it comes back.
#[derive(Debug, Clone)]
pub struct Limited {
    /// The budget.
    pub policy: Policy,
    /// Seconds until the window ends.
    pub retry_after: u64,
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Over budget.
    #[error("rate limited")]
    Limited(Limited),
    /// The shared counter (Redis) cannot be read, for an action that fails closed.
    #[error("the rate-limit store is unreachable")]
    Unavailable,
}

/// The limiter. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    policies: Arc<Policies>,
    namespace: Arc<str>,
    memory: Arc<Mutex<HashMap<String, (i64, u32)>>>,
    redis: Option<redis::Client>,
    connection: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    clock: Clock,
}

/// Any Redis call gets this long before the counter counts as unknown.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// A limiter with `policies`; counters live in Redis when a client is given. `namespace`
    /// keeps deployments sharing one Redis apart.
    pub fn new(
        policies: Policies,
        namespace: &str,
        redis: Option<redis::Client>,
        clock: Clock,
    ) -> RateLimiter {
        RateLimiter {
            policies: Arc::new(policies),
            namespace: namespace.into(),
            memory: Arc::new(Mutex::new(HashMap::new())),
            redis,
            connection: Arc::new(tokio::sync::Mutex::new(None)),
            clock,
        }
    }

    /// Counts one `action` from `ip` (and against `account`, when it names one); refuses when a
    /// budget is spent.
    pub async fn check(
        &self,
        action: Action,
        ip: Option<&str>,
        account: Option<&str>,
    ) -> Result<(), LimitError> {
        let budgets = [
            (
                self.policies.per_ip.get(&action),
                ip.map(|ip| format!("ip:{ip}")),
            ),
            (
                self.policies.per_account.get(&action),
                account.map(|a| format!("account:{}", crate::domain::Email::normalise_fragment(a))),
            ),
        ];
        for (policy, subject) in budgets {
            let (Some(policy), Some(subject)) = (policy, subject) else {
                continue;
            };
            self.count(action, *policy, &subject).await?;
        }
        Ok(())
    }

    async fn count(&self, action: Action, policy: Policy, subject: &str) -> Result<(), LimitError> {
        let now = self.clock.now();
        let window_ms = policy.window.whole_milliseconds() as i64;
        let now_ms = (now - OffsetDateTime::UNIX_EPOCH).whole_milliseconds() as i64;
        let window_start = now_ms - now_ms.rem_euclid(window_ms);
        let retry_after = u64::try_from((window_start + window_ms - now_ms + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        let key = format!(
            "latchkey:rl:{}:{}:{subject}:{window_start}",
            self.namespace,
            action.name()
        );
        let count = match &self.redis {
            Some(client) => match self.count_in_redis(client, &key, window_ms).await {
                Some(count) => count,
                None if action.fails_closed() => {
                    tracing::error!(
                        action = action.name(),
                        "rate-limit store (Redis) unreachable: refusing"
                    );
                    return Err(LimitError::Unavailable);
                }
                None => self.count_in_memory(&key, window_start),
            },
            None => self.count_in_memory(&key, window_start),
        };
        if count > policy.limit {
            metrics::counter!("latchkey_rate_limited_total", "action" => action.name())
                .increment(1);
            return Err(LimitError::Limited(Limited {
                policy,
                retry_after,
            }));
        }
        Ok(())
    }

    fn count_in_memory(&self, key: &str, window_start: i64) -> u32 {
        let mut counters = self
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Old windows are dropped now and then, so the map stays the size of the live traffic.
        if counters.len() > 100_000 {
            counters.retain(|_, (start, _)| *start >= window_start);
        }
        let entry = counters.entry(key.to_owned()).or_insert((window_start, 0));
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    async fn count_in_redis(
        &self,
        client: &redis::Client,
        key: &str,
        window_ms: i64,
    ) -> Option<u32> {
        let work = async {
            let mut connection = {
                let mut cached = self.connection.lock().await;
                if cached.is_none() {
                    *cached = Some(client.get_multiplexed_async_connection().await.ok()?);
                }
                cached.clone()?
            };
            let counted: Option<i64> = redis::cmd("INCR")
                .arg(key)
                .query_async(&mut connection)
                .await
                .ok();
            let Some(count) = counted else {
                // A broken connection is dropped; the next request opens a new one.
                *self.connection.lock().await = None;
                return None;
            };
            if count == 1 {
                let _: i64 = redis::cmd("PEXPIRE")
                    .arg(key)
                    .arg(window_ms)
                    .query_async(&mut connection)
                    .await
                    .ok()?;
            }
            u32::try_from(count).ok()
        };
        tokio::time::timeout(REDIS_TIMEOUT, work)
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_a_count_per_window_or_off() {
        assert_eq!(
            Limit::parse("10/1m").unwrap().0,
            Some(Policy {
                limit: 10,
                window: time::Duration::minutes(1)
            })
        );
        assert_eq!(Limit::parse("off").unwrap().0, None);
        for bad in ["10", "0/1m", "10/0s", "x/1m", "10/1y"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_budget_refuses_past_its_count_and_comes_back_with_the_next_window() {
        let clock = Clock::manual(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let mut policies = Policies::default();
        policies.per_account.insert(
            Action::Login,
            Policy {
                limit: 2,
                window: time::Duration::minutes(1),
            },
        );
        let limiter = RateLimiter::new(policies, "test", None, clock.clone());
        for _ in 0..2 {
            assert!(
                limiter
                    .check(Action::Login, None, Some("ada@example.com"))
                    .await
                    .is_ok()
            );
        }
        let Err(LimitError::Limited(limited)) = limiter
            .check(Action::Login, None, Some("ADA@example.com"))
            .await
        else {
            panic!("the third try is refused, whatever the case of the address");
        };
        assert!((1..=60).contains(&limited.retry_after));
        assert!(
            limiter
                .check(Action::Login, None, Some("grace@example.com"))
                .await
                .is_ok(),
            "budgets are per account"
        );
        clock.advance(time::Duration::minutes(1));
        assert!(
            limiter
                .check(Action::Login, None, Some("ada@example.com"))
                .await
                .is_ok()
        );
    }
}
