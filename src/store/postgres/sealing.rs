//! Sealing on PostgreSQL: the canary row, and finding and replacing what an earlier version left
//! in clear. Each replacement is conditional, so instances starting together seal a row once.

use super::{PostgresStore, key_from_row, micros, parse_uuid};
use crate::store::{ClearMail, StoreError, StoredKey};
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

impl PostgresStore {
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
}
