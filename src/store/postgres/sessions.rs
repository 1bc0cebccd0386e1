//! Sessions on PostgreSQL: logins, refresh-token rotation with reuse detection, revocation.

use super::{PostgresStore, from_micros, insert_event, lock_user, micros, parse_uuid, user_in};
use crate::domain::{Event, EventType, User};
use crate::store::{
    LoginExpects, NewSession, REVOCATION_LIFETIME, Revocation, Revoke, Rotate, Rotation,
    SessionRecord, StoreError,
};
use serde_json::json;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

impl PostgresStore {
    pub(in crate::store) async fn record_login(
        &self,
        session: &NewSession,
        expected: &LoginExpects<'_>,
        rehash: Option<&str>,
        event: &Event,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(session.created_at);
        let updated = sqlx::query(
            "update users set last_login_at = $1, password_hash = coalesce($2, password_hash),
                 updated_at = case when $3 is null then updated_at else $4 end
             where id = $5 and password_hash = $6 and role = $7 and disabled = $8 and email_verified = $9",
        )
        .bind(at)
        .bind(rehash)
        .bind(rehash)
        .bind(at)
        .bind(session.user_id.to_string())
        .bind(expected.password_hash)
        .bind(expected.role)
        .bind(false)
        .bind(expected.email_verified)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        if let Some((subject, network)) = expected.attempt {
            super::attempts::settle(&mut tx, subject, network, session.created_at).await?;
        }
        insert_session(&mut tx, session).await?;
        insert_event(&mut tx, event).await?;
        let user = user_in(&mut tx, session.user_id).await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    pub(in crate::store) async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "select id, created_at, last_used_at, user_agent, ip from sessions
             where user_id = $1 and revoked_at is null and expires_at > $2 order by created_at, id",
        )
        .bind(user_id.to_string())
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionRecord {
                    id: parse_uuid(row.try_get("id")?)?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    last_used_at: from_micros(row.try_get("last_used_at")?)?,
                    user_agent: row.try_get("user_agent")?,
                    ip: row.try_get("ip")?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn revoke_sessions(
        &self,
        user_id: Uuid,
        which: Revoke,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let revoked = revoke_in(&mut tx, user_id, which, reason, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    pub(in crate::store) async fn revoke_session_of_token(
        &self,
        token_hash: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let owner = sqlx::query(
            "select s.id, s.user_id from refresh_tokens r join sessions s on s.id = r.session_id
             where r.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner else { return Ok(None) };
        let session_id = parse_uuid(owner.try_get("id")?)?;
        let user_id = parse_uuid(owner.try_get("user_id")?)?;
        lock_user(&mut tx, user_id).await?;
        let revoked = revoke_in(&mut tx, user_id, Revoke::One(session_id), reason, now).await?;
        tx.commit().await?;
        Ok(revoked.first().copied())
    }

    pub(in crate::store) async fn rotate_refresh_token(
        &self,
        rotate: &Rotate<'_>,
    ) -> Result<Rotation, StoreError> {
        // Unknown tokens (guesses, junk) are answered from a plain read, without the write lock.
        let known: Option<bool> =
            sqlx::query_scalar("select true from refresh_tokens where token_hash = $1")
                .bind(rotate.presented_hash)
                .fetch_optional(&self.pool)
                .await?;
        if known.is_none() {
            return Ok(Rotation::Invalid);
        }
        let mut tx = self.write().await?;
        // User first (the lock order of every write path), then the token and its session.
        let owner: Option<String> = sqlx::query_scalar(
            "select s.user_id from refresh_tokens r join sessions s on s.id = r.session_id where r.token_hash = $1",
        )
        .bind(rotate.presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner else {
            return Ok(Rotation::Invalid);
        };
        lock_user(&mut tx, parse_uuid(&owner)?).await?;
        let now_at = rotate.clock.now();
        let now = micros(now_at);
        let grace_start = micros(now_at - rotate.grace);
        let found = sqlx::query(
            "select r.session_id, r.used_at, r.expires_at, r.successor_sealed, s.user_id, s.revoked_at
             from refresh_tokens r join sessions s on s.id = r.session_id where r.token_hash = $1
             for update of r, s",
        )
        .bind(rotate.presented_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else {
            return Ok(Rotation::Invalid);
        };
        let session_id = parse_uuid(found.try_get("session_id")?)?;
        let user_id = parse_uuid(found.try_get("user_id")?)?;
        let used_at: Option<i64> = found.try_get("used_at")?;
        let revoked = found.try_get::<Option<i64>, _>("revoked_at")?.is_some();
        if revoked || found.try_get::<i64, _>("expires_at")? <= now {
            return Ok(Rotation::Invalid);
        }
        let rotation = match used_at {
            None => {
                let expires_at = micros(now_at + rotate.ttl);
                sqlx::query(
                    "update refresh_tokens set used_at = $1, updated_at = $2, successor_sealed = $3
                     where token_hash = $4",
                )
                .bind(now)
                .bind(now)
                .bind(rotate.successor_sealed)
                .bind(rotate.presented_hash)
                .execute(&mut *tx)
                .await?;
                // Sealed successors older than the grace window are erased: past it, the
                // predecessor is worth nothing but a reuse alarm.
                sqlx::query(
                    "update refresh_tokens set successor_sealed = null
                     where session_id = $1 and successor_sealed is not null and used_at < $2",
                )
                .bind(session_id.to_string())
                .bind(grace_start)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into refresh_tokens (token_hash, session_id, created_at, updated_at, expires_at)
                     values ($1, $2, $3, $4, $5)",
                )
                .bind(rotate.successor_hash)
                .bind(session_id.to_string())
                .bind(now)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("update sessions set last_used_at = $1, updated_at = $2, expires_at = $3 where id = $4")
                    .bind(now)
                    .bind(now)
                    .bind(expires_at)
                    .bind(session_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Rotation::Rotated {
                    session_id,
                    user: user_in(&mut tx, user_id).await?,
                }
            }
            Some(used_at) if used_at >= grace_start => {
                let Some(successor_sealed) =
                    found.try_get::<Option<Vec<u8>>, _>("successor_sealed")?
                else {
                    return Ok(Rotation::Invalid);
                };
                Rotation::Repeated {
                    session_id,
                    user: user_in(&mut tx, user_id).await?,
                    successor_sealed,
                }
            }
            Some(_) => {
                let event = Event::new(
                    EventType::RefreshTokenReused,
                    Some(user_id),
                    now_at,
                    json!({"session_id": session_id}),
                );
                insert_event(&mut tx, &event).await?;
                revoke_in(
                    &mut tx,
                    user_id,
                    Revoke::One(session_id),
                    "refresh_token_reused",
                    now_at,
                )
                .await?;
                Rotation::Reused { session_id }
            }
        };
        tx.commit().await?;
        Ok(rotation)
    }

    pub(in crate::store) async fn revocations_after(
        &self,
        after: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<Revocation>, StoreError> {
        // On SQLite `seq` is assigned under the single write lock, so it follows commit order:
        // a row with a lower seq can never appear after one with a higher seq was read.
        let rows = sqlx::query(
            "select seq, session_id, expires_at from revocations
             where seq > $1 and expires_at > $2 order by seq",
        )
        .bind(after)
        .bind(micros(now))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    seq: row.try_get("seq")?,
                    session_id: parse_uuid(row.try_get("session_id")?)?,
                    expires_at: from_micros(row.try_get("expires_at")?)?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn prune(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<u64, StoreError> {
        const BATCH: u64 = 500;
        let at = micros(now);
        let day = 86_400_000_000_i64;
        // Small batches, each its own transaction, so pruning never holds the write lock long.
        // Spent refresh tokens stay until they expire: reuse detection needs them.
        let week = 7 * day;
        let statements: [(&str, i64); 9] = [
            ("update refresh_tokens set successor_sealed = null where token_hash in
                (select token_hash from refresh_tokens where successor_sealed is not null and used_at < $1 limit 500)",
             micros(now - grace)),
            ("delete from refresh_tokens where token_hash in
                (select token_hash from refresh_tokens where expires_at <= $1 limit 500)", at),
            ("delete from sessions where id in
                (select id from sessions where expires_at <= $1 limit 500)", at),
            ("delete from sessions where id in
                (select id from sessions where revoked_at <= $1 limit 500)", at - day),
            ("delete from revocations where seq in
                (select seq from revocations where expires_at <= $1 limit 500)", at),
            ("delete from email_tokens where token_hash in
                (select token_hash from email_tokens where expires_at <= $1 limit 500)", at),
            // Delivered or abandoned mail (bodies already erased) is kept a week for inquiries.
            ("delete from mail_queue where id in
                (select id from mail_queue where (sent_at is not null or failed_at is not null) and updated_at <= $1 limit 500)", at - week),
            // Failure counts and mail throttles outlive their longest window (a day) by a day.
            ("delete from password_attempts where (subject, network) in
                (select subject, network from password_attempts where updated_at <= $1 limit 500)", at - 2 * day),
            ("delete from mail_throttle where (subject, purpose) in
                (select subject, purpose from mail_throttle where updated_at <= $1 limit 500)", at - 2 * day),
        ];
        let mut pruned = 0;
        for (statement, bound) in statements {
            loop {
                let mut tx = self.write().await?;
                let rows = sqlx::query(statement)
                    .bind(bound)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                pruned += rows;
                if rows < BATCH {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}
/// Starts a session with its first refresh token.
pub(super) async fn insert_session(
    tx: &mut PgConnection,
    session: &NewSession,
) -> Result<(), StoreError> {
    let at = micros(session.created_at);
    sqlx::query(
        "insert into sessions (id, user_id, user_agent, ip, created_at, updated_at, last_used_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(session.id.to_string())
    .bind(session.user_id.to_string())
    .bind(session.user_agent.as_deref())
    .bind(session.ip.as_deref())
    .bind(at)
    .bind(at)
    .bind(at)
    .bind(micros(session.expires_at))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into refresh_tokens (token_hash, session_id, created_at, updated_at, expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(&session.refresh_token_hash)
    .bind(session.id.to_string())
    .bind(at)
    .bind(at)
    .bind(micros(session.expires_at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Revokes live sessions of `user_id` inside a transaction: marks them, records a revocation
/// for every instance to pick up, and writes a `SESSION_REVOKED` event each.
pub(super) async fn revoke_in(
    tx: &mut PgConnection,
    user_id: Uuid,
    which: Revoke,
    reason: &str,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    let (only, except) = match which {
        Revoke::All => (None, None),
        Revoke::AllBut(keep) => (None, Some(keep.to_string())),
        Revoke::One(id) => (Some(id.to_string()), None),
    };
    let at = micros(now);
    // Revocations are numbered by a sequence; holding this lock until commit makes commit
    // order follow that numbering, so a reader never sees a later number before an earlier one.
    sqlx::query("select pg_advisory_xact_lock(7150517)")
        .execute(&mut *tx)
        .await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "update sessions set revoked_at = $1, updated_at = $2
         where user_id = $3 and revoked_at is null and expires_at > $4
           and ($5 is null or id = $6) and ($7 is null or id != $8)
         returning id",
    )
    .bind(at)
    .bind(at)
    .bind(user_id.to_string())
    .bind(at)
    .bind(&only)
    .bind(&only)
    .bind(&except)
    .bind(&except)
    .fetch_all(&mut *tx)
    .await?;
    let ids = ids
        .iter()
        .map(|id| parse_uuid(id))
        .collect::<Result<Vec<_>, _>>()?;
    for session_id in &ids {
        sqlx::query(
            "insert into revocations (session_id, user_id, created_at, updated_at, expires_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(session_id.to_string())
        .bind(user_id.to_string())
        .bind(at)
        .bind(at)
        .bind(micros(now + REVOCATION_LIFETIME))
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut *tx,
            &Event::session_revoked(user_id, *session_id, reason, now),
        )
        .await?;
    }
    Ok(ids)
}
