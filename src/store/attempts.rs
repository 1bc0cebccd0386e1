//! Password-check accounting and per-address mail throttling: the SQL both backends run, and
//! the pure reading of its rows. Every statement is written once, with `$N` placeholders.

use super::backend::{Tx, sql, sql_owned};
use super::users::write_effects;
use super::{
    Committed, Effects, MailRequest, QueuedRequest, Store, StoreError, TokenPurpose, from_micros,
    micros, recovery,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// The network name of the row that counts a subject's failures across all networks.
const ALL_NETWORKS: &str = "*";

/// The mail-request kind of the suspension mail (`service::mail_requests::LOGIN_SUSPENDED`).
const SUSPENSION_MAIL: &str = "login_suspended";

/// The daily window of the across-networks count.
const DAY: time::Duration = time::Duration::days(1);

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
const TAKE_ROW: &str = "insert into password_attempts
    (subject, network, failures, window_start, created_at, updated_at)
    values ($1, $2, 0, $3, $4, $5)
    on conflict (subject, network) do update set updated_at = password_attempts.updated_at
    returning network, failures, window_start, last_failed_at";

/// Counts one failure across networks, starting a new day's window when the last one ended.
const COUNT_ALL: &str = "update password_attempts set
    failures = case when window_start <= $1 then 1 else failures + 1 end,
    window_start = case when window_start <= $2 then $3 else window_start end,
    last_failed_at = $4, updated_at = $5
    where subject = $6 and network = $7";

const COUNT_NETWORK: &str = "update password_attempts set
    failures = failures + 1, last_failed_at = $1, updated_at = $2
    where subject = $3 and network = $4";

/// A success (or a check that never ran) takes back the failure its attempt was counted as,
/// across networks ...
const UNCOUNT_ALL: &str = "update password_attempts set
    failures = case when failures > 0 then failures - 1 else 0 end, updated_at = $1
    where subject = $2 and network = $3 and window_start > $4";

/// ... and from its network.
const UNCOUNT_NETWORK: &str = "update password_attempts set
    failures = case when failures > 0 then failures - 1 else 0 end, updated_at = $1
    where subject = $2 and network = $3";

/// A success forgets the network's failures (same parameters as `UNCOUNT_NETWORK`).
const FORGET_NETWORK: &str = "update password_attempts set
    failures = 0, last_failed_at = null, updated_at = $1
    where subject = $2 and network = $3";

/// A reset by mail ends the day's count (and so a suspension); the networks that guessed stay
/// slowed down.
const FORGET_DAY: &str = "delete from password_attempts where subject = $1 and network = $2";

/// ... and lets the next suspension mail go out at once.
const REARM_SUSPENSION_MAIL: &str = "delete from mail_throttle where subject = $1 and purpose = $2";

/// Queues a request for mail to one address, to be looked at after the answer.
const QUEUE_REQUEST: &str = "insert into mail_throttle
    (subject, purpose, last_requested_at, pending, email_sealed, created_at, updated_at)
    values ($1, $2, $3, $4, $5, $6, $7)
    on conflict (subject, purpose) do update set
    last_requested_at = $8, pending = $9, email_sealed = $10, updated_at = $11";

/// Whether any request is queued: a plain read, so that an idle worker's poll takes no write
/// lock.
const ANY_REQUEST: &str = "select 1 from mail_throttle where pending = $1 limit 1";

/// The oldest queued request no worker holds (the backend appends its row lock).
const NEXT_REQUEST: &str =
    "select subject, purpose, email_sealed, last_requested_at from mail_throttle
    where pending = $1 and (claimed_until is null or claimed_until <= $2)
    order by last_requested_at limit 1";

/// Holds a request for one worker until the claim runs out.
const CLAIM_REQUEST: &str = "update mail_throttle set claimed_until = $1, updated_at = $2
    where subject = $3 and purpose = $4";

/// A request worked off: its sealed address goes.
const DONE_REQUEST: &str = "update mail_throttle set pending = $1, email_sealed = null,
    claimed_until = null, updated_at = $2 where subject = $3 and purpose = $4";

/// Records a request for mail to one address; gives when that kind of mail was last sent.
const TOUCH_THROTTLE: &str = "insert into mail_throttle
    (subject, purpose, last_requested_at, created_at, updated_at) values ($1, $2, $3, $4, $5)
    on conflict (subject, purpose) do update set last_requested_at = $6, updated_at = $7
    returning last_sent_at";

const THROTTLE_SENT: &str = "update mail_throttle set last_sent_at = $1, updated_at = $2
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

impl Store {
    /// Starts a password check of `subject` from `network`: `gate` decides, from the counters
    /// as they stand, whether it may run; when it may, it is counted as a failure at once (a
    /// success takes that back), so parallel guesses get no more tries than sequential ones.
    /// Gives the decision and the day's failures across networks, this attempt included.
    pub async fn begin_password_attempt(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
        gate: &(dyn Fn(&AttemptCounts) -> AttemptGate + Sync),
    ) -> Result<(AttemptGate, i64), StoreError> {
        let at = micros(now);
        let mut tx = self.write().await?;
        let mut rows: Vec<(String, i64, i64, Option<i64>)> = Vec::with_capacity(2);
        for row in [ALL_NETWORKS, network] {
            rows.push(
                sql(TAKE_ROW)
                    .bind(subject)
                    .bind(row)
                    .bind(at)
                    .bind(at)
                    .bind(at)
                    .fetch_one(&mut tx)
                    .await?,
            );
        }
        let counts = counts_from(&rows, now)?;
        let decided = gate(&counts);
        if decided == AttemptGate::Open {
            let (day_ago, at) = count_all_binds(now);
            sql(COUNT_ALL)
                .bind(day_ago)
                .bind(day_ago)
                .bind(at)
                .bind(at)
                .bind(at)
                .bind(subject)
                .bind(ALL_NETWORKS)
                .execute(&mut tx)
                .await?;
            sql(COUNT_NETWORK)
                .bind(at)
                .bind(at)
                .bind(subject)
                .bind(network)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        let daily = counts.daily_failures + i64::from(decided == AttemptGate::Open);
        Ok((decided, daily))
    }

    /// A password check of `subject` from `network` succeeded: that network's failures are
    /// forgotten and the attempt no longer counts towards the daily cap.
    pub async fn password_attempt_passed(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.take_back(subject, network, now, FORGET_NETWORK).await
    }

    /// Takes back the failure a password check was counted as, when the check never ran.
    pub async fn uncount_password_attempt(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.take_back(subject, network, now, UNCOUNT_NETWORK).await
    }

    /// Takes the attempt back across networks, then applies `to_network` (forget or uncount)
    /// to its network's row, in a transaction of its own.
    async fn take_back(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
        to_network: &'static str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        take_back_in(&mut tx, subject, network, now, to_network).await?;
        tx.commit().await
    }

    /// A password reset by mail: the day's failures of `subject` are forgotten (a suspension
    /// ends) and the next suspension, if any, is mailed at once. Networks stay slowed down.
    pub async fn forget_password_attempts(&self, subject: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sql(FORGET_DAY)
            .bind(subject)
            .bind(ALL_NETWORKS)
            .execute(&mut tx)
            .await?;
        sql(REARM_SUSPENSION_MAIL)
            .bind(subject)
            .bind(SUSPENSION_MAIL)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    /// Queues a request for `purpose` mail to the address behind `subject`, the address
    /// sealed: one upsert, the same whether or not the address has an account.
    pub async fn queue_mail_request(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        email_sealed: &[u8],
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let request = QueuedRequest {
            subject,
            purpose,
            email_sealed,
        };
        queue_request_in(&mut tx, request, now).await?;
        tx.commit_telling().await
    }

    /// Claims the oldest queued mail request no worker holds, until `now + lease` (no other
    /// worker gets it meanwhile; if this one dies, the next takes it then).
    pub async fn claim_mail_request(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<MailRequest>, StoreError> {
        let any: Option<i32> = sql(ANY_REQUEST).bind(true).fetch_scalar(&self.pool).await?;
        if any.is_none() {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let claimed: Option<(String, String, Option<Vec<u8>>, i64)> =
            sql_owned(format!("{NEXT_REQUEST}{}", self.dialect.skip_locked))
                .bind(true)
                .bind(micros(now))
                .fetch_optional(&mut tx)
                .await?;
        if let Some((subject, purpose, _, _)) = &claimed {
            sql(CLAIM_REQUEST)
                .bind(micros(now + lease))
                .bind(micros(now))
                .bind(subject)
                .bind(purpose)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(
            claimed.map(|(subject, purpose, email_sealed, _)| MailRequest {
                subject,
                purpose,
                email_sealed: email_sealed.unwrap_or_default(),
            }),
        )
    }

    /// Marks a claimed mail request worked off.
    pub async fn mail_request_done(
        &self,
        request: &MailRequest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sql(DONE_REQUEST)
            .bind(false)
            .bind(micros(now))
            .bind(&request.subject)
            .bind(&request.purpose)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    /// In one transaction: records `purpose` mail to the address behind `subject`, then, when
    /// `effects` gives mail and no such mail was sent since `sent_after`, writes them and marks
    /// the mail sent. What it tells says whether mail was written.
    pub async fn send_throttled(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        sent_after: Option<OffsetDateTime>,
        effects: Option<(Uuid, &[TokenPurpose], &Effects)>,
    ) -> Result<Committed, StoreError> {
        let at = micros(now);
        let mut tx = self.write().await?;
        let (last_sent,): (Option<i64>,) = sql(TOUCH_THROTTLE)
            .bind(subject)
            .bind(purpose)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .fetch_one(&mut tx)
            .await?;
        let due = match (last_sent, sent_after) {
            (Some(last), Some(after)) => last <= micros(after),
            _ => true,
        };
        let Some((user_id, purposes, effects)) = effects.filter(|_| due) else {
            return tx.commit_telling().await;
        };
        recovery::kill_tokens(&mut tx, user_id, purposes, now).await?;
        write_effects(&mut tx, effects).await?;
        sql(THROTTLE_SENT)
            .bind(at)
            .bind(at)
            .bind(subject)
            .bind(purpose)
            .execute(&mut tx)
            .await?;
        tx.commit_telling().await
    }
}

/// Takes the attempt back across networks, then applies `to_network` to its network's row: the
/// across-networks row first, as `begin_password_attempt` locks them.
async fn take_back_in(
    tx: &mut Tx,
    subject: &str,
    network: &str,
    now: OffsetDateTime,
    to_network: &'static str,
) -> Result<(), StoreError> {
    let (day_ago, at) = count_all_binds(now);
    sql(UNCOUNT_ALL)
        .bind(at)
        .bind(subject)
        .bind(ALL_NETWORKS)
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
    sql(to_network)
        .bind(at)
        .bind(subject)
        .bind(network)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Settles a right password inside another transaction (a login's): see
/// `Store::password_attempt_passed`.
pub(super) async fn settle(
    tx: &mut Tx,
    subject: &str,
    network: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    take_back_in(tx, subject, network, now, FORGET_NETWORK).await
}

/// Queues (or renews) a mail request inside another transaction.
pub(super) async fn queue_request_in(
    tx: &mut Tx,
    request: QueuedRequest<'_>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let at = micros(now);
    sql(QUEUE_REQUEST)
        .bind(request.subject)
        .bind(request.purpose)
        .bind(at)
        .bind(true)
        .bind(request.email_sealed)
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(true)
        .bind(request.email_sealed)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.after.requests_queued = true;
    Ok(())
}
