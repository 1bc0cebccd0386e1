//! Password-check accounting and per-address mail throttling (SQL in `store::attempts`).

use super::{SqliteStore, write_effects};
use crate::store::attempts::QUEUE_REQUEST;
use crate::store::attempts::{
    ALL_NETWORKS, ANY_REQUEST, AttemptCounts, AttemptGate, CLAIM_REQUEST, COUNT_ALL, COUNT_NETWORK,
    DONE_REQUEST, FORGET_DAY, FORGET_NETWORK, NEXT_REQUEST, REARM_SUSPENSION_MAIL, TAKE_ROW,
    THROTTLE_SENT, TOUCH_THROTTLE, UNCOUNT_ALL, UNCOUNT_NETWORK, count_all_binds, counts_from,
};
use crate::store::{Effects, MailRequest, QueuedRequest, StoreError, TokenPurpose, micros};
use sqlx::SqliteConnection;
use time::OffsetDateTime;
use uuid::Uuid;

impl SqliteStore {
    pub(in crate::store) async fn begin_password_attempt(
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
                sqlx::query_as(TAKE_ROW)
                    .bind(subject)
                    .bind(row)
                    .bind(at)
                    .bind(at)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await?,
            );
        }
        let counts = counts_from(&rows, now)?;
        let decided = gate(&counts);
        if decided == AttemptGate::Open {
            let (day_ago, at) = count_all_binds(now);
            sqlx::query(COUNT_ALL)
                .bind(day_ago)
                .bind(day_ago)
                .bind(at)
                .bind(at)
                .bind(at)
                .bind(subject)
                .bind(ALL_NETWORKS)
                .execute(&mut *tx)
                .await?;
            sqlx::query(COUNT_NETWORK)
                .bind(at)
                .bind(at)
                .bind(subject)
                .bind(network)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let daily = counts.daily_failures + i64::from(decided == AttemptGate::Open);
        Ok((decided, daily))
    }

    pub(in crate::store) async fn password_attempt_passed(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.take_back(subject, network, now, FORGET_NETWORK).await
    }

    pub(in crate::store) async fn uncount_password_attempt(
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
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn forget_password_attempts(
        &self,
        subject: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(FORGET_DAY)
            .bind(subject)
            .bind(ALL_NETWORKS)
            .execute(&mut *tx)
            .await?;
        sqlx::query(REARM_SUSPENSION_MAIL)
            .bind(subject)
            .bind(crate::store::attempts::SUSPENSION_MAIL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn queue_mail_request(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        email_sealed: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        queue_request_in(
            &mut tx,
            QueuedRequest {
                subject,
                purpose,
                email_sealed,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn claim_mail_request(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<MailRequest>, StoreError> {
        let any: Option<i32> = sqlx::query_scalar(ANY_REQUEST)
            .bind(true)
            .fetch_optional(&self.pool)
            .await?;
        if any.is_none() {
            return Ok(None);
        }
        let mut tx = self.write().await?;
        let claimed: Option<(String, String, Option<Vec<u8>>)> = sqlx::query_as(NEXT_REQUEST)
            .bind(true)
            .bind(micros(now))
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((subject, purpose, _)) = &claimed {
            sqlx::query(CLAIM_REQUEST)
                .bind(micros(now + lease))
                .bind(micros(now))
                .bind(subject)
                .bind(purpose)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed.map(|(subject, purpose, email_sealed)| MailRequest {
            subject,
            purpose,
            email_sealed: email_sealed.unwrap_or_default(),
        }))
    }

    pub(in crate::store) async fn mail_request_done(
        &self,
        request: &MailRequest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(DONE_REQUEST)
            .bind(false)
            .bind(micros(now))
            .bind(&request.subject)
            .bind(&request.purpose)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn send_throttled(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        sent_after: Option<OffsetDateTime>,
        effects: Option<(Uuid, &[TokenPurpose], &Effects)>,
    ) -> Result<bool, StoreError> {
        let at = micros(now);
        let mut tx = self.write().await?;
        let last_sent: Option<i64> = sqlx::query_scalar(TOUCH_THROTTLE)
            .bind(subject)
            .bind(purpose)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
        let due = match (last_sent, sent_after) {
            (Some(last), Some(after)) => last <= micros(after),
            _ => true,
        };
        let Some((user_id, purposes, effects)) = effects.filter(|_| due) else {
            tx.commit().await?;
            return Ok(false);
        };
        super::recovery::kill_tokens(&mut tx, user_id, purposes, now).await?;
        write_effects(&mut tx, effects).await?;
        sqlx::query(THROTTLE_SENT)
            .bind(at)
            .bind(at)
            .bind(subject)
            .bind(purpose)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Takes the attempt back across networks, then applies `to_network` to its network's row: the
/// across-networks row first, as `begin_password_attempt` locks them.
async fn take_back_in(
    tx: &mut SqliteConnection,
    subject: &str,
    network: &str,
    now: OffsetDateTime,
    to_network: &'static str,
) -> Result<(), StoreError> {
    let (day_ago, at) = count_all_binds(now);
    sqlx::query(UNCOUNT_ALL)
        .bind(at)
        .bind(subject)
        .bind(ALL_NETWORKS)
        .bind(day_ago)
        .execute(&mut *tx)
        .await?;
    sqlx::query(to_network)
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
    tx: &mut SqliteConnection,
    subject: &str,
    network: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    take_back_in(tx, subject, network, now, FORGET_NETWORK).await
}

/// Queues (or renews) a mail request inside another transaction.
pub(super) async fn queue_request_in(
    tx: &mut SqliteConnection,
    request: QueuedRequest<'_>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let at = micros(now);
    sqlx::query(QUEUE_REQUEST)
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
    Ok(())
}
