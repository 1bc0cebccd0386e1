//! Signing keys: published, used, retired; their private halves sealed (see `service::keys`).

use super::backend::sql;
use super::{Store, StoreError, StoredKey, from_micros, micros};
use time::OffsetDateTime;

/// A signing key's row: kid, alg, private DER, sealed, public JWK, created at.
pub(super) type KeyRow = (String, String, Vec<u8>, bool, String, i64);

/// The key a row holds.
pub(super) fn key_from_row(
    (kid, alg, private_der, sealed, public_jwk, created_at): KeyRow,
) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid,
        alg,
        private_der,
        sealed,
        public_jwk: serde_json::from_str(&public_jwk).map_err(anyhow::Error::from)?,
        created_at: from_micros(created_at)?,
    })
}

impl Store {
    /// Signing keys of `alg` not yet retired, newest first.
    pub async fn signing_keys(&self, alg: &str) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sql(
            "select kid, alg, private_der, sealed, public_jwk, created_at from signing_keys
             where alg = $1 and retired_at is null order by created_at desc, kid",
        )
        .bind(alg)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_from_row).collect()
    }

    /// Marks keys retired: no token they signed can still be alive.
    pub async fn retire_signing_keys(
        &self,
        kids: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for kid in kids {
            sql("update signing_keys set retired_at = $1, updated_at = $2
                 where kid = $3 and retired_at is null")
            .bind(micros(now))
            .bind(micros(now))
            .bind(kid)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Stores a new signing key, its private half sealed.
    pub async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sql(
            "insert into signing_keys (kid, alg, private_der, sealed, public_jwk, created_at,
                 updated_at)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(key.sealed)
        .bind(key.public_jwk.to_string())
        .bind(micros(key.created_at))
        .bind(micros(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
