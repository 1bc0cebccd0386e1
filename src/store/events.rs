//! The outbox: events written with their change, published in order under the relay's lease,
//! and pruned after their retention.

use super::backend::{Tx, sql};
use super::{OutboxEvent, Store, StoreError, micros};
use crate::domain::Event;
use time::OffsetDateTime;

/// Events deleted per statement.
const PRUNE_BATCH: u64 = 500;

impl Store {
    /// Appends an event that comes with no other change (e.g. a failed login).
    pub async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await
    }

    /// Takes or renews the lease `name` for `holder` until `until`; false while another holds it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let taken: Option<String> = sql(
            "insert into leases (name, holder, until_at, created_at, updated_at)
             values ($1, $2, $3, $4, $5)
             on conflict (name) do update set holder = excluded.holder,
                 until_at = excluded.until_at, updated_at = excluded.updated_at
             where leases.until_at < $6 or leases.holder = $7
             returning holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .bind(micros(now))
        .bind(micros(now))
        .bind(holder)
        .fetch_scalar(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Events not yet published, in outbox order.
    pub async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows: Vec<(i64, String, String, String)> = sql(
            "select seq, id, type, envelope from events where published_at is null
             order by seq limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, id, kind, envelope)| OutboxEvent {
                seq,
                id,
                kind,
                envelope,
            })
            .collect())
    }

    /// Marks an event published.
    pub async fn mark_published(&self, seq: i64, now: OffsetDateTime) -> Result<(), StoreError> {
        sql("update events set published_at = $1, updated_at = $2 where seq = $3")
            .bind(micros(now))
            .bind(micros(now))
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes events older than `before`: published ones always, unpublished ones too when no
    /// relay will ever publish them (no NATS configured).
    pub async fn prune_events(
        &self,
        before: OffsetDateTime,
        unpublished_too: bool,
    ) -> Result<u64, StoreError> {
        let mut pruned = 0;
        loop {
            let rows = sql("delete from events where seq in (select seq from events
                 where created_at <= $1 and (published_at is not null or $2) limit 500)")
            .bind(micros(before))
            .bind(unpublished_too)
            .execute(&self.pool)
            .await?;
            pruned += rows;
            if rows < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }

    /// The outbox, oldest first (tests and the relay read it).
    pub async fn events(&self, limit: i64) -> Result<Vec<serde_json::Value>, StoreError> {
        let envelopes: Vec<String> = sql("select envelope from events order by seq limit $1")
            .bind(limit)
            .fetch_column(&self.pool)
            .await?;
        envelopes
            .iter()
            .map(|e| serde_json::from_str(e).map_err(|e| StoreError::Other(e.into())))
            .collect()
    }
}

/// Writes an event to the outbox in the transaction of its change.
pub(super) async fn insert_event(tx: &mut Tx, event: &Event) -> Result<(), StoreError> {
    if let Some(user_id) = event.user_id {
        tx.lock(tx.dialect.order_user_events, Some(user_id.into()))
            .await?;
    }
    let at = micros(event.time);
    sql(
        "insert into events (id, user_id, type, envelope, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(event.user_id)
    .bind(event.kind.as_str())
    .bind(event.envelope().to_string())
    .bind(at)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}
