//! The mail queue on PostgreSQL. A claim skips the rows other workers hold
//! (`for update skip locked`), so two workers never take the same mail; a claim that is not
//! settled within its lease is taken again.

use super::{PostgresStore, from_micros, micros, parse_uuid, write_effects};
use crate::store::{Effects, NewMail, QueuedMail, StoreError, StoredBody};
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

impl PostgresStore {
    pub(in crate::store) async fn queue(&self, effects: &Effects) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        write_effects(&mut tx, effects).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let at = micros(now);
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "update mail_queue set claimed_until = $1, attempts = attempts + 1, updated_at = $2
             where id in (
                 select id from mail_queue
                 where sent_at is null and failed_at is null and next_attempt_at <= $3
                   and (claimed_until is null or claimed_until <= $4)
                 order by created_at limit $5 for update skip locked)
             returning id, recipient, subject, sealed_body, text_body, html_body, attempts, created_at",
        )
        .bind(micros(now + lease))
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(QueuedMail {
                    id: parse_uuid(row.try_get("id")?)?,
                    recipient: row.try_get("recipient")?,
                    subject: row.try_get("subject")?,
                    body: stored_body(row)?,
                    attempts: row.try_get("attempts")?,
                    claimed_until: now + lease,
                    created_at: from_micros(row.try_get("created_at")?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|mail| mail.created_at);
        Ok(claimed)
    }

    pub(in crate::store) async fn mail_sent(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // The body may hold a live token: it is not kept once delivered.
        sqlx::query(
            "update mail_queue set sent_at = $1, updated_at = $2, claimed_until = null,
                 sealed_body = null, text_body = null, html_body = null, last_error = null
             where id = $3 and claimed_until = $4",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(mail.id.to_string())
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn mail_retry(
        &self,
        mail: &QueuedMail,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update mail_queue set next_attempt_at = $1, claimed_until = null, last_error = $2, updated_at = $3
             where id = $4 and claimed_until = $5",
        )
        .bind(micros(at))
        .bind(error)
        .bind(micros(at))
        .bind(mail.id.to_string())
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn mail_given_up(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update mail_queue set failed_at = $1, updated_at = $2, claimed_until = null, last_error = $3,
                 sealed_body = null, text_body = null, html_body = null
             where id = $4 and claimed_until = $5",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(error)
        .bind(mail.id.to_string())
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

pub(super) async fn insert_mail(tx: &mut PgConnection, mail: &NewMail) -> Result<(), StoreError> {
    let at = micros(mail.created_at);
    sqlx::query(
        "insert into mail_queue (id, user_id, recipient, subject, sealed_body, next_attempt_at, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(mail.id.to_string())
    .bind(mail.user_id.map(|id| id.to_string()))
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.sealed_body)
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sealed bodies, or the clear ones an earlier version may have queued since start-up.
fn stored_body(row: &sqlx::postgres::PgRow) -> Result<StoredBody, StoreError> {
    if let Some(sealed) = row.try_get::<Option<Vec<u8>>, _>("sealed_body")? {
        return Ok(StoredBody::Sealed(sealed));
    }
    Ok(StoredBody::Clear {
        text: row
            .try_get::<Option<String>, _>("text_body")?
            .unwrap_or_default(),
        html: row
            .try_get::<Option<String>, _>("html_body")?
            .unwrap_or_default(),
    })
}
