//! The mail queue. A claim is one `update … returning` over rows no other worker holds
//! (`Dialect::skip_locked`), so two workers never take the same mail; a claim that is not
//! settled within its lease is taken again.

use super::backend::{Tx, sql, sql_owned};
use super::users::write_effects;
use super::{
    Committed, Effects, NewMail, QueuedMail, Store, StoreError, StoredBody, from_micros, micros,
    parse_uuid,
};
use time::OffsetDateTime;

/// A claimed mail's row: id, recipient, subject, sealed, text and HTML bodies, tries, queued at.
type ClaimedRow = (
    String,
    String,
    String,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

impl Store {
    /// Queues mail (and its events) that comes with no other change.
    pub async fn queue(&self, effects: &Effects) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Claims up to `limit` due mails for `lease`.
    pub async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let at = micros(now);
        let mut tx = self.write().await?;
        let rows: Vec<ClaimedRow> = sql_owned(format!(
            "update mail_queue set claimed_until = $1, attempts = attempts + 1, updated_at = $2
             where id in (
                 select id from mail_queue
                 where sent_at is null and failed_at is null and next_attempt_at <= $3
                   and (claimed_until is null or claimed_until <= $4)
                 order by created_at limit $5{})
             returning id, recipient, subject, sealed_body, text_body, html_body, attempts, created_at",
            self.dialect.skip_locked
        ))
        .bind(micros(now + lease))
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(limit)
        .fetch_all(&mut tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows
            .into_iter()
            .map(
                |(id, recipient, subject, sealed, text, html, attempts, created_at)| {
                    Ok(QueuedMail {
                        id: parse_uuid(&id)?,
                        recipient,
                        subject,
                        body: stored_body(sealed, text, html),
                        attempts,
                        claimed_until: now + lease,
                        created_at: from_micros(created_at)?,
                    })
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|mail| mail.created_at);
        Ok(claimed)
    }

    /// Marks a claimed mail sent and erases its body.
    pub async fn mail_sent(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // The body may hold a live token: it is not kept once delivered.
        sql(
            "update mail_queue set sent_at = $1, updated_at = $2, claimed_until = null,
                 sealed_body = null, text_body = null, html_body = null, last_error = null
             where id = $3 and claimed_until = $4",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(mail.id)
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Schedules another try of a mail.
    pub async fn mail_retry(
        &self,
        mail: &QueuedMail,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sql(
            "update mail_queue set next_attempt_at = $1, claimed_until = null, last_error = $2,
                 updated_at = $3
             where id = $4 and claimed_until = $5",
        )
        .bind(micros(at))
        .bind(error)
        .bind(micros(at))
        .bind(mail.id)
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a mail up and erases its body.
    pub async fn mail_given_up(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sql(
            "update mail_queue set failed_at = $1, updated_at = $2, claimed_until = null,
                 last_error = $3, sealed_body = null, text_body = null, html_body = null
             where id = $4 and claimed_until = $5",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(error)
        .bind(mail.id)
        .bind(micros(mail.claimed_until))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Queues a mail in the transaction of the change that causes it.
pub(super) async fn insert_mail(tx: &mut Tx, mail: &NewMail) -> Result<(), StoreError> {
    let at = micros(mail.created_at);
    sql(
        "insert into mail_queue (id, user_id, recipient, subject, sealed_body, next_attempt_at,
             created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(mail.id)
    .bind(mail.user_id)
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.sealed_body)
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    tx.after.mail_queued = true;
    Ok(())
}

/// Sealed bodies, or the clear ones an earlier version may have queued since start-up.
fn stored_body(sealed: Option<Vec<u8>>, text: Option<String>, html: Option<String>) -> StoredBody {
    match sealed {
        Some(sealed) => StoredBody::Sealed(sealed),
        None => StoredBody::Clear {
            text: text.unwrap_or_default(),
            html: html.unwrap_or_default(),
        },
    }
}
