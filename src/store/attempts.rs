//! Password-check accounting and per-address mail throttling: the SQL both backends run, and
//! the pure reading of its rows. Every statement is written once, with `$N` placeholders.

use super::{StoreError, from_micros, micros};
use time::OffsetDateTime;

/// The network name of the row that counts a subject's failures across all networks.
pub(super) const ALL_NETWORKS: &str = "*";

/// The mail-request kind of the suspension mail (`service::recovery::LOGIN_SUSPENDED`).
pub(super) const SUSPENSION_MAIL: &str = "login_suspended";

/// The daily window of the across-networks count.
pub(super) const DAY: time::Duration = time::Duration::days(1);

/// One subject's password-check counters, as they stood before the attempt being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptCounts {
    /// Failures from this client network since its last success.
    pub network_failures: i64,
    /// When the last of them was.
    pub network_last_failed_at: Option<OffsetDateTime>,
    /// Failures from every network in the current day.
    pub daily_failures: i64,
}

/// Whether a password check may run, decided in the transaction that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptGate {
    /// It runs, and is counted as a failure until it succeeds.
    Open,
    /// This network must wait (slow-down): the check answers like a wrong password.
    Throttled,
    /// The subject reached the daily cap: password-only login is suspended.
    Suspended,
}

/// One counter row, created when missing, as it stands (on PostgreSQL the upsert also locks
/// it). Both rows are taken in one order everywhere — the across-networks row first — so that
/// two checks cannot deadlock.
pub(super) const TAKE_ROW: &str = "insert into password_attempts
    (subject, network, failures, window_start, created_at, updated_at)
    values ($1, $2, 0, $3, $4, $5)
    on conflict (subject, network) do update set updated_at = password_attempts.updated_at
    returning network, failures, window_start, last_failed_at";

/// Counts one failure across networks, starting a new day's window when the last one ended.
pub(super) const COUNT_ALL: &str = "update password_attempts set
    failures = case when window_start <= $1 then 1 else failures + 1 end,
    window_start = case when window_start <= $2 then $3 else window_start end,
    last_failed_at = $4, updated_at = $5
    where subject = $6 and network = $7";

pub(super) const COUNT_NETWORK: &str = "update password_attempts set
    failures = failures + 1, last_failed_at = $1, updated_at = $2
    where subject = $3 and network = $4";

/// A success (or a check that never ran) takes back the failure its attempt was counted as,
/// across networks ...
pub(super) const UNCOUNT_ALL: &str = "update password_attempts set
    failures = case when failures > 0 then failures - 1 else 0 end, updated_at = $1
    where subject = $2 and network = $3 and window_start > $4";

/// ... and from its network.
pub(super) const UNCOUNT_NETWORK: &str = "update password_attempts set
    failures = case when failures > 0 then failures - 1 else 0 end, updated_at = $1
    where subject = $2 and network = $3";

/// A success forgets the network's failures (same parameters as `UNCOUNT_NETWORK`).
pub(super) const FORGET_NETWORK: &str = "update password_attempts set
    failures = 0, last_failed_at = null, updated_at = $1
    where subject = $2 and network = $3";

/// A reset by mail ends the day's count (and so a suspension); the networks that guessed stay
/// slowed down.
pub(super) const FORGET_DAY: &str =
    "delete from password_attempts where subject = $1 and network = $2";

/// ... and lets the next suspension mail go out at once.
pub(super) const REARM_SUSPENSION_MAIL: &str =
    "delete from mail_throttle where subject = $1 and purpose = $2";

/// Queues a request for mail to one address, to be looked at after the answer.
pub(super) const QUEUE_REQUEST: &str = "insert into mail_throttle
    (subject, purpose, last_requested_at, pending, email_sealed, created_at, updated_at)
    values ($1, $2, $3, $4, $5, $6, $7)
    on conflict (subject, purpose) do update set
    last_requested_at = $8, pending = $9, email_sealed = $10, updated_at = $11";

/// Whether any request is queued: a plain read, so that an idle worker's poll takes no write
/// lock.
pub(super) const ANY_REQUEST: &str = "select 1 from mail_throttle where pending = $1 limit 1";

/// The oldest queued request no worker holds (the backend appends its row lock).
pub(super) const NEXT_REQUEST: &str =
    "select subject, purpose, email_sealed, last_requested_at from mail_throttle
    where pending = $1 and (claimed_until is null or claimed_until <= $2)
    order by last_requested_at limit 1";

/// Holds a request for one worker until the claim runs out.
pub(super) const CLAIM_REQUEST: &str =
    "update mail_throttle set claimed_until = $1, updated_at = $2
    where subject = $3 and purpose = $4";

/// A request worked off: its sealed address goes.
pub(super) const DONE_REQUEST: &str = "update mail_throttle set pending = $1, email_sealed = null,
    claimed_until = null, updated_at = $2 where subject = $3 and purpose = $4";

/// Records a request for mail to one address; gives when that kind of mail was last sent.
pub(super) const TOUCH_THROTTLE: &str = "insert into mail_throttle
    (subject, purpose, last_requested_at, created_at, updated_at) values ($1, $2, $3, $4, $5)
    on conflict (subject, purpose) do update set last_requested_at = $6, updated_at = $7
    returning last_sent_at";

pub(super) const THROTTLE_SENT: &str = "update mail_throttle set last_sent_at = $1, updated_at = $2
    where subject = $3 and purpose = $4";

/// The counters before this attempt, from the rows `TAKE_ROW` gave.
pub(super) fn counts_from(
    rows: &[(String, i64, i64, Option<i64>)],
    now: OffsetDateTime,
) -> Result<AttemptCounts, StoreError> {
    let day_ago = micros(now - DAY);
    let mut counts = AttemptCounts::default();
    for (network, failures, window_start, last_failed_at) in rows {
        if network == ALL_NETWORKS {
            counts.daily_failures = if *window_start <= day_ago {
                0
            } else {
                *failures
            };
        } else {
            counts.network_failures = *failures;
            counts.network_last_failed_at = last_failed_at.map(from_micros).transpose()?;
        }
    }
    Ok(counts)
}

/// Binds shared by both backends' `COUNT_ALL`.
pub(super) fn count_all_binds(now: OffsetDateTime) -> (i64, i64) {
    (micros(now - DAY), micros(now))
}
