//! Sealing's store operations: the canary row, finding and replacing what an earlier version
//! left in clear (each replacement is conditional, so instances starting together seal a row
//! once), and re-sealing everything under a new secret key in one transaction.

use super::backend::sql;
use super::keys::{KeyRow, key_from_row};
use super::{
    ClearMail, Reseal, Resealed, SealedRow, Store, StoreError, StoredKey, micros, parse_uuid,
};
use time::OffsetDateTime;
use uuid::Uuid;

const SEALED_CANARY: &str = "select canary from sealing where id = 1";
const RESEAL_CANARY: &str = "update sealing set canary = $1, updated_at = $2 where id = 1";
const SEALED_SIGNING_KEYS: &str =
    "select kid, private_der from signing_keys where sealed = $1 order by kid";
const RESEAL_SIGNING_KEY: &str =
    "update signing_keys set private_der = $1, updated_at = $2 where kid = $3";
const SEALED_MAILS_AFTER: &str = "select id, sealed_body from mail_queue
    where sealed_body is not null and id > $1 order by id limit $2";
const RESEAL_MAIL: &str = "update mail_queue set sealed_body = $1, updated_at = $2 where id = $3";
const SEALED_TOTP_AFTER: &str = "select user_id, secret_sealed from totp_factors
    where user_id > $1 order by user_id limit $2";
const RESEAL_TOTP: &str =
    "update totp_factors set secret_sealed = $1, updated_at = $2 where user_id = $3";
/// Queued mails (and TOTP secrets) re-sealed per read, so that a long queue is not read at once., so that a long queue is not read at once.
const RESEAL_BATCH: i64 = 100;

impl Store {
    /// The sealing canary, once the first start has written it.
    pub async fn sealing_canary(&self) -> Result<Option<Vec<u8>>, StoreError> {
        sql(SEALED_CANARY).fetch_scalar(&self.pool).await
    }

    /// Writes the sealing canary unless one is there already (the first writer wins).
    pub async fn insert_sealing_canary(
        &self,
        canary: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sql(
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

    /// Up to `limit` signing keys (of any alg, retired too) whose private half is in clear.
    pub async fn clear_signing_keys(&self, limit: i64) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sql(
            "select kid, alg, private_der, sealed, public_jwk, created_at from signing_keys
             where sealed = $1 order by kid limit $2",
        )
        .bind(false)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_from_row).collect()
    }

    /// Replaces a clear private key by its sealed form, unless another process sealed it first.
    pub async fn seal_signing_key(
        &self,
        kid: &str,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sql(
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

    /// Up to `limit` queued mails whose bodies are in clear.
    pub async fn clear_mails(&self, limit: i64) -> Result<Vec<ClearMail>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sql("select id, text_body, html_body from mail_queue
             where sealed_body is null and (text_body is not null or html_body is not null)
             order by id limit $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(id, text, html)| {
                Ok(ClearMail {
                    id: parse_uuid(&id)?,
                    text: text.unwrap_or_default(),
                    html: html.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Replaces a mail's clear bodies by their sealed form, unless it was sealed meanwhile.
    pub async fn seal_mail(
        &self,
        id: Uuid,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sql(
            "update mail_queue set sealed_body = $1, text_body = null, html_body = null,
                 updated_at = $2
             where id = $3 and sealed_body is null",
        )
        .bind(sealed)
        .bind(micros(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces every sealed value (the canary first, then every signing key's private half and
    /// every queued mail's bodies) by what `reseal` makes of it, in one transaction that keeps
    /// other writers out; when `reseal` refuses a value (`None`), nothing changes.
    pub async fn reseal_all(
        &self,
        reseal: &Reseal<'_>,
        now: OffsetDateTime,
    ) -> Result<Resealed, StoreError> {
        let mut tx = self.write().await?;
        // No other writer until commit (SQLite's `begin immediate`; on PostgreSQL a table lock
        // that lets readers go on), so every row read here is re-sealed and none is written
        // meanwhile under the old key.
        tx.lock(tx.dialect.lock_sealed, None).await?;
        let at = micros(now);
        // Returning before commit rolls the transaction back: a refused value changes nothing.
        let canary: Vec<u8> = sql(SEALED_CANARY)
            .fetch_scalar(&mut tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let Some(canary) = reseal(&SealedRow::Canary, &canary) else {
            return Ok(Resealed::Refused(SealedRow::Canary));
        };
        sql(RESEAL_CANARY)
            .bind(&canary)
            .bind(at)
            .execute(&mut tx)
            .await?;
        let keys: Vec<(String, Vec<u8>)> = sql(SEALED_SIGNING_KEYS)
            .bind(true)
            .fetch_all(&mut tx)
            .await?;
        let signing_keys = keys.len() as u64;
        for (kid, sealed) in keys {
            let row = SealedRow::SigningKey(kid.clone());
            let Some(resealed) = reseal(&row, &sealed) else {
                return Ok(Resealed::Refused(row));
            };
            sql(RESEAL_SIGNING_KEY)
                .bind(&resealed)
                .bind(at)
                .bind(kid)
                .execute(&mut tx)
                .await?;
        }
        let mut mails = 0;
        let mut totp_secrets = 0;
        for (select, update, counted) in [
            (SEALED_MAILS_AFTER, RESEAL_MAIL, &mut mails),
            (SEALED_TOTP_AFTER, RESEAL_TOTP, &mut totp_secrets),
        ] {
            let mut after = String::new();
            loop {
                let page: Vec<(String, Vec<u8>)> = sql(select)
                    .bind(&after)
                    .bind(RESEAL_BATCH)
                    .fetch_all(&mut tx)
                    .await?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = last.clone();
                for (id, sealed) in page {
                    let id_parsed = parse_uuid(&id)?;
                    let row = if select == SEALED_MAILS_AFTER {
                        SealedRow::Mail(id_parsed)
                    } else {
                        SealedRow::TotpSecret(id_parsed)
                    };
                    let Some(resealed) = reseal(&row, &sealed) else {
                        return Ok(Resealed::Refused(row));
                    };
                    sql(update)
                        .bind(&resealed)
                        .bind(at)
                        .bind(id)
                        .execute(&mut tx)
                        .await?;
                    *counted += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(Resealed::Done {
            signing_keys,
            mails,
            totp_secrets,
        })
    }
}
