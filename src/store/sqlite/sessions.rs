//! Sessions on SQLite: logins, refresh-token rotation with reuse detection, revocation.

use super::{SqliteStore, from_micros, insert_event, micros, parse_uuid, user_in};
use crate::domain::{Event, EventType, User};
use crate::store::{
    NewSession, REVOCATION_LIFETIME, Revocation, Revoke, Rotate, Rotation, SessionRecord,
    StoreError,
};
use serde_json::json;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

impl SqliteStore {
    pub(in crate::store) async fn record_login(
        &self,
        session: &NewSession,
        rehash: Option<&str>,
        event: &Event,
    ) -> Result<User, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(session.created_at);
        let updated = sqlx::query(
            "update users set last_login_at = ?, password_hash = coalesce(?, password_hash),
                 updated_at = case when ? is null then updated_at else ? end
             where id = ?",
        )
        .bind(at)
        .bind(rehash)
        .bind(rehash)
        .bind(at)
        .bind(session.user_id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_session(&mut tx, session).await?;
        insert_event(&mut tx, event).await?;
        let user = user_in(&mut tx, session.user_id).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub(in crate::store) async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "select id, created_at, last_used_at, user_agent, ip from sessions
             where user_id = ? and revoked_at is null and expires_at > ? order by created_at, id",
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
             where r.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(owner) = owner else { return Ok(None) };
        let session_id = parse_uuid(owner.try_get("id")?)?;
        let user_id = parse_uuid(owner.try_get("user_id")?)?;
        let revoked = revoke_in(&mut tx, user_id, Revoke::One(session_id), reason, now).await?;
        tx.commit().await?;
        Ok(revoked.first().copied())
    }

    pub(in crate::store) async fn rotate_refresh_token(
        &self,
        rotate: &Rotate<'_>,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.write().await?;
        let now = micros(rotate.now);
        let found = sqlx::query(
            "select r.session_id, r.used_at, r.expires_at, s.user_id, s.revoked_at
             from refresh_tokens r join sessions s on s.id = r.session_id where r.token_hash = ?",
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
                sqlx::query(
                    "update refresh_tokens set used_at = ?, updated_at = ? where token_hash = ?",
                )
                .bind(now)
                .bind(now)
                .bind(rotate.presented_hash)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into refresh_tokens (token_hash, session_id, created_at, updated_at, expires_at)
                     values (?, ?, ?, ?, ?) on conflict (token_hash) do nothing",
                )
                .bind(rotate.successor_hash)
                .bind(session_id.to_string())
                .bind(now)
                .bind(now)
                .bind(micros(rotate.expires_at))
                .execute(&mut *tx)
                .await?;
                sqlx::query("update sessions set last_used_at = ?, updated_at = ?, expires_at = ? where id = ?")
                    .bind(now)
                    .bind(now)
                    .bind(micros(rotate.expires_at))
                    .bind(session_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Rotation::Rotated {
                    session_id,
                    user: user_in(&mut tx, user_id).await?,
                }
            }
            Some(used_at) if used_at >= micros(rotate.grace_start) => Rotation::Repeated {
                session_id,
                user: user_in(&mut tx, user_id).await?,
            },
            Some(_) => {
                let event = Event::new(
                    EventType::RefreshTokenReused,
                    Some(user_id),
                    rotate.now,
                    json!({"session_id": session_id}),
                );
                insert_event(&mut tx, &event).await?;
                revoke_in(
                    &mut tx,
                    user_id,
                    Revoke::One(session_id),
                    "refresh_token_reused",
                    rotate.now,
                )
                .await?;
                Rotation::Reused { session_id }
            }
        };
        tx.commit().await?;
        Ok(rotation)
    }

    pub(in crate::store) async fn revocations_since(
        &self,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(
            "select session_id, created_at, expires_at from revocations
             where created_at >= ? and expires_at > ? order by created_at",
        )
        .bind(micros(since))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    session_id: parse_uuid(row.try_get("session_id")?)?,
                    created_at: from_micros(row.try_get("created_at")?)?,
                    expires_at: from_micros(row.try_get("expires_at")?)?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn prune(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(now);
        let mut pruned = 0;
        // Revoked sessions go once no access token of theirs can be alive; their refresh tokens
        // go with them (on delete cascade), so a later replay is simply unknown.
        for statement in [
            "delete from refresh_tokens where expires_at <= ?",
            "delete from sessions where expires_at <= ?",
            "delete from sessions where revoked_at is not null and revoked_at <= ? - 86400000000",
            "delete from revocations where expires_at <= ?",
        ] {
            pruned += sqlx::query(statement)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(pruned)
    }

    pub(in crate::store) async fn shared_secret(
        &self,
        name: &str,
        fresh: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "insert into service_secrets (name, value, created_at, updated_at) values (?, ?, ?, ?)
             on conflict (name) do nothing",
        )
        .bind(name)
        .bind(fresh)
        .bind(micros(now))
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        let value = sqlx::query_scalar("select value from service_secrets where name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }
}

/// Starts a session with its first refresh token.
pub(super) async fn insert_session(
    tx: &mut SqliteConnection,
    session: &NewSession,
) -> Result<(), StoreError> {
    let at = micros(session.created_at);
    sqlx::query(
        "insert into sessions (id, user_id, user_agent, ip, created_at, updated_at, last_used_at, expires_at)
         values (?, ?, ?, ?, ?, ?, ?, ?)",
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
         values (?, ?, ?, ?, ?)",
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
    tx: &mut SqliteConnection,
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
    let ids: Vec<String> = sqlx::query_scalar(
        "update sessions set revoked_at = ?, updated_at = ?
         where user_id = ? and revoked_at is null and expires_at > ?
           and (? is null or id = ?) and (? is null or id != ?)
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
             values (?, ?, ?, ?, ?)",
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
