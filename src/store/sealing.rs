//! Sealing's store operations, written once for both backends: the canary row, finding and
//! replacing what an earlier version left in clear (each replacement is conditional, so
//! instances starting together seal a row once), and re-sealing everything under a new secret
//! key in one transaction.

/// The operations for one backend: `$store`, with `$reseal_lock` (a statement, or `None`) run
/// first in the re-sealing transaction to keep other writers out. Each backend invokes it once.
macro_rules! backend_operations {
    ($store:ident, $reseal_lock:expr) => {
use super::{key_from_row, micros, parse_uuid};
use $crate::store::{
    ClearMail, RESEAL_BATCH, RESEAL_CANARY, RESEAL_MAIL, RESEAL_SIGNING_KEY, Reseal, Resealed,
    SEALED_CANARY, SEALED_MAILS_AFTER, SEALED_SIGNING_KEYS, SealedRow, StoreError, StoredKey,
};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

impl $store {
    pub(in crate::store) async fn sealing_canary(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("select canary from sealing where id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(in crate::store) async fn insert_sealing_canary(
        &self,
        canary: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into sealing (id, canary, created_at, updated_at) values (1, $1, $2, $3)
             on conflict (id) do nothing",
        )
        .bind(canary)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn clear_signing_keys(
        &self,
        limit: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "select kid, alg, private_der, sealed, public_jwk, created_at from signing_keys
             where sealed = $1 order by kid limit $2",
        )
        .bind(false)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub(in crate::store) async fn seal_signing_key(
        &self,
        kid: &str,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update signing_keys set private_der = $1, sealed = $2, updated_at = $3
             where kid = $4 and sealed = $5",
        )
        .bind(sealed)
        .bind(true)
        .bind(micros(now))
        .bind(kid)
        .bind(false)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn clear_mails(
        &self,
        limit: i64,
    ) -> Result<Vec<ClearMail>, StoreError> {
        let rows = sqlx::query(
            "select id, text_body, html_body from mail_queue
             where sealed_body is null and (text_body is not null or html_body is not null)
             order by id limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ClearMail {
                    id: parse_uuid(row.try_get("id")?)?,
                    text: row
                        .try_get::<Option<String>, _>("text_body")?
                        .unwrap_or_default(),
                    html: row
                        .try_get::<Option<String>, _>("html_body")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    pub(in crate::store) async fn seal_mail(
        &self,
        id: Uuid,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update mail_queue set sealed_body = $1, text_body = null, html_body = null, updated_at = $2
             where id = $3 and sealed_body is null",
        )
        .bind(sealed)
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn reseal_all(
        &self,
        reseal: &Reseal<'_>,
        now: OffsetDateTime,
    ) -> Result<Resealed, StoreError> {
        let mut tx = self.write().await?;
        // No other writer until commit (SQLite's `begin immediate`; on PostgreSQL a table lock
        // that lets readers go on), so every row read here is re-sealed and none is written
        // meanwhile under the old key.
        if let Some(lock) = $reseal_lock {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let at = micros(now);
        // Returning before commit rolls the transaction back: a refused value changes nothing.
        let canary: Vec<u8> = sqlx::query_scalar(SEALED_CANARY)
            .fetch_one(&mut *tx)
            .await?;
        let Some(canary) = reseal(&SealedRow::Canary, &canary) else {
            return Ok(Resealed::Refused(SealedRow::Canary));
        };
        sqlx::query(RESEAL_CANARY)
            .bind(canary)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let keys: Vec<(String, Vec<u8>)> = sqlx::query_as(SEALED_SIGNING_KEYS)
            .bind(true)
            .fetch_all(&mut *tx)
            .await?;
        let signing_keys = keys.len() as u64;
        for (kid, sealed) in keys {
            let row = SealedRow::SigningKey(kid.clone());
            let Some(resealed) = reseal(&row, &sealed) else {
                return Ok(Resealed::Refused(row));
            };
            sqlx::query(RESEAL_SIGNING_KEY)
                .bind(resealed)
                .bind(at)
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        let (mut mails, mut after) = (0, String::new());
        loop {
            let page: Vec<(String, Vec<u8>)> = sqlx::query_as(SEALED_MAILS_AFTER)
                .bind(&after)
                .bind(RESEAL_BATCH)
                .fetch_all(&mut *tx)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = last.clone();
            for (id, sealed) in page {
                let row = SealedRow::Mail(parse_uuid(&id)?);
                let Some(resealed) = reseal(&row, &sealed) else {
                    return Ok(Resealed::Refused(row));
                };
                sqlx::query(RESEAL_MAIL)
                    .bind(resealed)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                mails += 1;
            }
        }
        tx.commit().await?;
        Ok(Resealed::Done {
            signing_keys,
            mails,
        })
    }
}
    };
}
pub(super) use backend_operations;
