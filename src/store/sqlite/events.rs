//! The outbox on SQLite: events in order, the relay's lease, retention.

use super::{SqliteStore, micros};
use crate::store::{OutboxEvent, StoreError};
use sqlx::Row;
use time::OffsetDateTime;

impl SqliteStore {
    pub(in crate::store) async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let taken: Option<String> = sqlx::query_scalar(
            "insert into leases (name, holder, until_at, created_at, updated_at) values (?, ?, ?, ?, ?)
             on conflict (name) do update set holder = excluded.holder, until_at = excluded.until_at,
                 updated_at = excluded.updated_at
             where leases.until_at < ? or leases.holder = ?
             returning holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .bind(micros(now))
        .bind(micros(now))
        .bind(holder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    pub(in crate::store) async fn unpublished_events(
        &self,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows = sqlx::query("select seq, id, type, envelope from events where published_at is null order by seq limit ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxEvent {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    envelope: row.try_get("envelope")?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn mark_published(
        &self,
        seq: i64,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("update events set published_at = ?, updated_at = ? where seq = ?")
            .bind(micros(now))
            .bind(micros(now))
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn prune_events(
        &self,
        before: OffsetDateTime,
        unpublished_too: bool,
    ) -> Result<u64, StoreError> {
        let mut pruned = 0;
        loop {
            let rows = sqlx::query(
                "delete from events where seq in (select seq from events
                 where created_at <= ? and (published_at is not null or ?) limit 500)",
            )
            .bind(micros(before))
            .bind(unpublished_too)
            .execute(&self.pool)
            .await?
            .rows_affected();
            pruned += rows;
            if rows < 500 {
                return Ok(pruned);
            }
        }
    }
}
