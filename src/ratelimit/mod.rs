//! Rate limits per client network and per target account (the validated email, whether or not
//! an account has it, so limits reveal nothing). Fixed windows, counted in process or, with
//! `LATCHKEY_REDIS_URL`, in Redis so that every instance shares one budget. Redis away: login
//! and reset fail closed (503), the other actions go on with the in-process counters. Every
//! budget is keyed by a fixed-size hash of its subject, so no request can grow the state by more
//! than one small entry, and the in-process map is bounded.

mod memory;

use crate::clock::Clock;
use crate::domain::Email;
use aws_lc_rs::digest::{SHA256, digest};
use memory::Buckets;
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
    /// A sign-in mail asked for.
    EmailLogin,
    Reset,
    /// A reset code presented (per client network, across accounts).
    ResetCode,
    Confirm,
    /// A second factor or passkey ceremony (answers and options alike).
    Mfa,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Login => "login",
            Action::Refresh => "refresh",
            Action::Resend => "resend",
            Action::Forgot => "forgot",
            Action::EmailLogin => "email_login",
            Action::Reset => "reset",
            Action::ResetCode => "reset_code",
            Action::Confirm => "confirm",
            Action::Mfa => "mfa",
        }
    }

    /// Whether an unknown count must refuse rather than allow (Redis away).
    fn fails_closed(self) -> bool {
        matches!(
            self,
            Action::Login | Action::Reset | Action::ResetCode | Action::Mfa
        )
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
    memory: Arc<Mutex<Buckets>>,
    redis: Option<redis::Client>,
    connection: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    clock: Clock,
}

/// Any Redis call gets this long before the counter counts as unknown.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// A budget's identity: 16 bytes of SHA-256 over the action, the kind of subject and the
/// subject, whatever the subject's size (in Redis, the key; in process, hashed to a slot).
type BudgetKey = [u8; 16];

/// The key every instance derives for one budget (also the Redis key's subject part).
fn budget_key(action: Action, kind: &str, subject: &str) -> BudgetKey {
    let hash = digest(
        &SHA256,
        format!("{}\0{kind}\0{subject}", action.name()).as_bytes(),
    );
    let mut key = [0; 16];
    key.copy_from_slice(&hash.as_ref()[..16]);
    key
}

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
            memory: Arc::new(Mutex::new(Buckets::new())),
            redis,
            connection: Arc::new(tokio::sync::Mutex::new(None)),
            clock,
        }
    }

    /// Counts one `action` from the client network of `ip` (see [`crate::domain::client_network`])
    /// and against `account` (for logins, the account from that network), when it names one;
    /// refuses when a budget is spent. Only a
    /// validated address can name an account: an invalid one touches no account budget.
    pub async fn check(
        &self,
        action: Action,
        ip: Option<&str>,
        account: Option<&Email>,
    ) -> Result<(), LimitError> {
        let network = ip.map(crate::domain::client_network);
        // Logins are budgeted per account *and* network: the password-check accounting already
        // caps an account across networks, and a budget every network shared would let anyone
        // keep the owner out.
        let account_subject = account.map(|email| match (action, &network) {
            (Action::Login, Some(network)) => format!("{email}\0{network}"),
            _ => email.as_str().to_owned(),
        });
        let budgets = [
            (
                self.policies.per_ip.get(&action),
                network
                    .as_deref()
                    .map(|network| budget_key(action, "ip", network)),
            ),
            (
                self.policies.per_account.get(&action),
                account_subject
                    .as_deref()
                    .map(|subject| budget_key(action, "account", subject)),
            ),
        ];
        for (policy, key) in budgets {
            let (Some(policy), Some(key)) = (policy, key) else {
                continue;
            };
            self.count(action, *policy, key).await?;
        }
        Ok(())
    }

    async fn count(
        &self,
        action: Action,
        policy: Policy,
        key: BudgetKey,
    ) -> Result<(), LimitError> {
        let now = self.clock.now();
        let window_ms = policy.window.whole_milliseconds() as i64;
        let now_ms = (now - OffsetDateTime::UNIX_EPOCH).whole_milliseconds() as i64;
        let window_start = now_ms - now_ms.rem_euclid(window_ms);
        let retry_after = u64::try_from((window_start + window_ms - now_ms + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        let until_ms = window_start + window_ms;
        let count = match &self.redis {
            Some(client) => {
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                let redis_key = format!(
                    "latchkey:rl:{}:{}:{hex}:{window_start}",
                    self.namespace,
                    action.name()
                );
                match self.count_in_redis(client, &redis_key, window_ms).await {
                    Some(count) => count,
                    None if action.fails_closed() => {
                        tracing::error!(
                            action = action.name(),
                            "rate-limit store (Redis) unreachable: refusing"
                        );
                        return Err(LimitError::Unavailable);
                    }
                    None => self.count_in_memory(&key, until_ms, now_ms),
                }
            }
            None => self.count_in_memory(&key, until_ms, now_ms),
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

    fn count_in_memory(&self, key: &BudgetKey, until_ms: i64, now_ms: i64) -> u32 {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .count(key, until_ms, now_ms)
    }

    /// How many in-process slots hold a live count (tests check what a request touches).
    pub fn budgets_in_memory(&self) -> usize {
        let now_ms = (self.clock.now() - OffsetDateTime::UNIX_EPOCH).whole_milliseconds() as i64;
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .live(now_ms)
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

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
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
                    .check(Action::Login, None, Some(&email("ada@example.com")))
                    .await
                    .is_ok()
            );
        }
        let Err(LimitError::Limited(limited)) = limiter
            .check(Action::Login, None, Some(&email("ADA@example.com")))
            .await
        else {
            panic!("the third try is refused, whatever the case of the address");
        };
        assert!((1..=60).contains(&limited.retry_after));
        assert!(
            limiter
                .check(Action::Login, None, Some(&email("grace@example.com")))
                .await
                .is_ok(),
            "budgets are per account"
        );
        clock.advance(time::Duration::minutes(1));
        assert!(
            limiter
                .check(Action::Login, None, Some(&email("ada@example.com")))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_flood_of_distinct_subjects_neither_grows_memory_nor_spends_others_budgets() {
        let clock = Clock::manual(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let mut policies = Policies::default();
        let policy = Policy {
            limit: 3,
            window: time::Duration::minutes(1),
        };
        policies.per_ip.insert(Action::Register, policy);
        let limiter = RateLimiter::new(policies, "test", None, clock.clone());
        for n in 0..60_000u32 {
            let ip = format!("10.{}.{}.{}", n >> 16 & 0xff, n >> 8 & 0xff, n & 0xff);
            let _ = limiter.check(Action::Register, Some(&ip), None).await;
        }
        assert!(limiter.budgets_in_memory() <= memory::BUCKETS);
        // A newcomer still has (nearly all of) its own budget: the flood only fills slots.
        let newcomer = Some("192.0.2.1");
        assert!(
            limiter
                .check(Action::Register, newcomer, None)
                .await
                .is_ok()
        );
        for _ in 0..3 {
            let _ = limiter.check(Action::Register, newcomer, None).await;
        }
        assert!(
            matches!(
                limiter.check(Action::Register, newcomer, None).await,
                Err(LimitError::Limited(_))
            ),
            "and its own budget still runs out"
        );
        clock.advance(time::Duration::minutes(1));
        assert_eq!(limiter.budgets_in_memory(), 0, "every window ended");
    }

    #[tokio::test]
    async fn ipv6_clients_of_one_64_share_a_budget_and_mapped_ipv4_is_ipv4() {
        let clock = Clock::manual(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let mut policies = Policies::default();
        let policy = Policy {
            limit: 2,
            window: time::Duration::minutes(1),
        };
        policies.per_ip.insert(Action::Login, policy);
        let limiter = RateLimiter::new(policies, "test", None, clock);
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
            assert!(limiter.check(Action::Login, Some(ip), None).await.is_ok());
        }
        assert!(
            limiter
                .check(Action::Login, Some("2001:db8:1:2:abcd::7"), None)
                .await
                .is_err(),
            "the same /64"
        );
        assert!(
            limiter
                .check(Action::Login, Some("2001:db8:1:3::1"), None)
                .await
                .is_ok(),
            "another /64"
        );
        for ip in ["198.51.100.4", "::ffff:198.51.100.4"] {
            assert!(limiter.check(Action::Login, Some(ip), None).await.is_ok());
        }
        assert!(
            limiter
                .check(Action::Login, Some("::ffff:198.51.100.4"), None)
                .await
                .is_err(),
            "an IPv4-mapped address is its IPv4 address"
        );
    }
}
