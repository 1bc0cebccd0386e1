//! Sessions: logins, refresh-token rotation with reuse detection, revocation, pruning.

use super::backend::{Dialect, Tx, sql};
use super::users::{lock_user, user_in};
use super::{
    Committed, LoginExpects, NewSession, REVOCATION_LIFETIME, Revocation, Revoke, Rotate, Rotation,
    SessionRecord, Store, StoreError, attempts, events::insert_event, from_micros, micros,
    parse_uuid,
};
use crate::domain::{Assurance, AuthMethod, Event, RevokeReason, User};
use time::OffsetDateTime;
use uuid::Uuid;

const INSERT_REFRESH_TOKEN: &str =
    "insert into refresh_tokens (token_hash, session_id, created_at, updated_at, expires_at)
     values ($1, $2, $3, $4, $5)";

/// The session a refresh token (spent or not) belongs to, and its user.
const SESSION_OF_TOKEN: &str = "select s.id, s.user_id from refresh_tokens r
    join sessions s on s.id = r.session_id where r.token_hash = $1";

/// A live session's row: id, created at, last used at, user agent, address.
type SessionRow = (String, i64, i64, Option<String>, Option<String>);

/// Rows pruned per statement and transaction, so that pruning never holds the write lock long.
const PRUNE_BATCH: u64 = 500;

impl Store {
    /// Starts a session for a successful login: session, refresh token, `last_login_at`, event;
    /// also stores a re-hashed password when one is given. Only while the account is as the
    /// password check found it (same hash and role, enabled): a change that raced the check
    /// wins, and `None` says so (or that the user is gone).
    pub async fn record_login(
        &self,
        session: &NewSession,
        expected: &LoginExpects<'_>,
        rehash: Option<&str>,
        event: &Event,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(session.created_at);
        let updated = sql(
            "update users set last_login_at = $1, password_hash = coalesce($2, password_hash),
                 updated_at = case when $3 is null then updated_at else $4 end
             where id = $5 and password_hash is not distinct from $6 and role = $7 and disabled = $8 and email_verified = $9",
        )
        .bind(at)
        .bind(rehash)
        .bind(rehash)
        .bind(at)
        .bind(session.user_id)
        .bind(expected.password_hash)
        .bind(expected.role)
        .bind(false)
        .bind(expected.email_verified)
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            return Ok(None);
        }
        if let Some((subject, network)) = expected.attempt {
            attempts::settle(&mut tx, subject, network, session.created_at).await?;
        }
        insert_session(&mut tx, session).await?;
        insert_event(&mut tx, event).await?;
        let user = user_in(&mut tx, session.user_id).await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// How and when the holder of session `session_id` of `user_id` authenticated, as the
    /// session records it now (a factor enrolled since its access token was issued counts).
    pub async fn session_assurance(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<Option<Assurance>, StoreError> {
        let stored: Option<(Option<i64>, String)> =
            sql("select auth_time, auth_methods from sessions
             where id = $1 and user_id = $2 and revoked_at is null")
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        stored
            .map(|(auth_time, methods)| {
                Ok(Assurance::from_stored(
                    from_micros(auth_time.unwrap_or_default())?,
                    &methods,
                ))
            })
            .transpose()
    }

    /// The live sessions of a user, oldest first.
    pub async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let rows: Vec<SessionRow> = sql(
            "select id, created_at, last_used_at, user_agent, ip from sessions
             where user_id = $1 and revoked_at is null and expires_at > $2 order by created_at, id",
        )
        .bind(user_id)
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, created_at, last_used_at, user_agent, ip)| {
                Ok(SessionRecord {
                    id: parse_uuid(&id)?,
                    created_at: from_micros(created_at)?,
                    last_used_at: from_micros(last_used_at)?,
                    user_agent,
                    ip,
                })
            })
            .collect()
    }

    /// Revokes live sessions of a user with `SESSION_REVOKED` events (`reason`) and revocation
    /// rows.
    pub async fn revoke_sessions(
        &self,
        user_id: Uuid,
        which: Revoke,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        revoke_in(&mut tx, user_id, which, reason, now).await?;
        tx.commit_telling().await
    }

    /// Revokes the session a refresh token (spent or not) belongs to, if any.
    pub async fn revoke_session_of_token(
        &self,
        token_hash: &str,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let owner: Option<(String, String)> = sql(SESSION_OF_TOKEN)
            .bind(token_hash)
            .fetch_optional(&mut tx)
            .await?;
        let Some((session_id, user_id)) = owner else {
            return Ok(Committed::default());
        };
        let (session_id, user_id) = (parse_uuid(&session_id)?, parse_uuid(&user_id)?);
        lock_user(&mut tx, user_id).await?;
        revoke_in(&mut tx, user_id, Revoke::One(session_id), reason, now).await?;
        tx.commit_telling().await
    }

    /// Exchanges a refresh token for its successor, detecting reuse, in one transaction.
    pub async fn rotate_refresh_token(&self, rotate: &Rotate<'_>) -> Result<Rotation, StoreError> {
        // Unknown tokens (guesses, junk) are answered from a plain read, without the write lock.
        // A token of another client's session (or of an OAuth grant at latchkey's own refresh,
        // or the reverse) is refused before anything is written: it is not this caller's.
        let known: Option<(Option<String>,)> = sql(
            "select s.client_id from refresh_tokens r join sessions s on s.id = r.session_id
             where r.token_hash = $1",
        )
        .bind(rotate.presented_hash)
        .fetch_optional(&self.pool)
        .await?;
        match known {
            Some((client_id,)) if client_id.as_deref() == rotate.client_id => {}
            _ => return Ok(Rotation::Invalid),
        }
        let mut tx = self.write().await?;
        // User first (the lock order of every write path), then the token and its session.
        if self.dialect.lock_user.is_some() {
            let owner: Option<(String, String)> = sql(SESSION_OF_TOKEN)
                .bind(rotate.presented_hash)
                .fetch_optional(&mut tx)
                .await?;
            let Some((_, owner)) = owner else {
                return Ok(Rotation::Invalid);
            };
            lock_user(&mut tx, parse_uuid(&owner)?).await?;
        }
        let now_at = rotate.clock.now();
        let now = micros(now_at);
        let grace_start = micros(now_at - rotate.grace);
        type Found = (
            String,
            Option<i64>,
            i64,
            Option<Vec<u8>>,
            String,
            Option<i64>,
        );
        let found: Option<Found> = sql_lock_rotation(self.dialect)
            .bind(rotate.presented_hash)
            .fetch_optional(&mut tx)
            .await?;
        let Some((session_id, used_at, expires_at, successor_sealed, user_id, revoked_at)) = found
        else {
            return Ok(Rotation::Invalid);
        };
        let session_id = parse_uuid(&session_id)?;
        let user_id = parse_uuid(&user_id)?;
        if revoked_at.is_some() || expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        let rotation = match used_at {
            None => {
                let expires_at = micros(now_at + rotate.ttl);
                sql(
                    "update refresh_tokens set used_at = $1, updated_at = $2, successor_sealed = $3
                     where token_hash = $4",
                )
                .bind(now)
                .bind(now)
                .bind(rotate.successor_sealed)
                .bind(rotate.presented_hash)
                .execute(&mut tx)
                .await?;
                // Sealed successors older than the grace window are erased: past it, the
                // predecessor is worth nothing but a reuse alarm.
                sql("update refresh_tokens set successor_sealed = null
                     where session_id = $1 and successor_sealed is not null and used_at < $2")
                .bind(session_id)
                .bind(grace_start)
                .execute(&mut tx)
                .await?;
                sql(INSERT_REFRESH_TOKEN)
                    .bind(rotate.successor_hash)
                    .bind(session_id)
                    .bind(now)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut tx)
                    .await?;
                sql(
                    "update sessions set last_used_at = $1, updated_at = $2, expires_at = $3
                     where id = $4",
                )
                .bind(now)
                .bind(now)
                .bind(expires_at)
                .bind(session_id)
                .execute(&mut tx)
                .await?;
                Rotation::Rotated {
                    session_id,
                    user: user_in(&mut tx, user_id).await?,
                    assurance: assurance_in(&mut tx, session_id).await?,
                }
            }
            Some(used_at) if used_at >= grace_start => {
                let Some(successor_sealed) = successor_sealed else {
                    return Ok(Rotation::Invalid);
                };
                Rotation::Repeated {
                    session_id,
                    user: user_in(&mut tx, user_id).await?,
                    assurance: assurance_in(&mut tx, session_id).await?,
                    successor_sealed,
                }
            }
            Some(_) => {
                insert_event(
                    &mut tx,
                    &Event::refresh_token_reused(user_id, session_id, now_at),
                )
                .await?;
                revoke_in(
                    &mut tx,
                    user_id,
                    Revoke::One(session_id),
                    RevokeReason::RefreshTokenReused,
                    now_at,
                )
                .await?;
                // The revocation is all this transaction tells, and it tells it once committed.
                Rotation::Reused {
                    session_id,
                    after: std::mem::take(&mut tx.after),
                }
            }
        };
        tx.commit().await?;
        Ok(rotation)
    }

    /// Revocations after position `after` of the log, not yet expired at `now`, in log order.
    pub async fn revocations_after(
        &self,
        after: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<Revocation>, StoreError> {
        // `seq` follows commit order on both backends (see `Dialect::order_revocations`): a row
        // with a lower seq can never appear after one with a higher seq was read.
        let rows: Vec<(i64, String, i64)> =
            sql("select seq, session_id, expires_at from revocations
             where seq > $1 and expires_at > $2 order by seq")
            .bind(after)
            .bind(micros(now))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter()
            .map(|(seq, session_id, expires_at)| {
                Ok(Revocation {
                    seq,
                    session_id: parse_uuid(&session_id)?,
                    expires_at: from_micros(expires_at)?,
                })
            })
            .collect()
    }

    /// Deletes expired sessions, refresh tokens and revocations, and erases sealed successors
    /// older than the grace window, in small batches; gives how many rows went.
    pub async fn prune(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<u64, StoreError> {
        let at = micros(now);
        let day = 86_400_000_000_i64;
        let week = 7 * day;
        // Spent refresh tokens stay until they expire: reuse detection needs them.
        let statements: [(&'static str, i64); 12] = [
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
            // An email change goes a day after the last of its links.
            ("delete from email_changes where id in
                (select id from email_changes c where created_at <= $1
                   and not exists (select 1 from email_tokens t where t.grp = c.id) limit 500)", at - day),
            // A spent code is kept a day past its expiry, so a late replay still revokes.
            ("delete from oauth_codes where code_hash in
                (select code_hash from oauth_codes where expires_at <= $1 limit 500)", at - day),
            ("delete from mfa_challenges where key_hash in
                (select key_hash from mfa_challenges where expires_at <= $1 limit 500)", at),
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
                let rows = sql(statement).bind(bound).execute(&mut tx).await?;
                tx.commit().await?;
                pruned += rows;
                if rows < PRUNE_BATCH {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}

/// The refresh token being rotated and its session, locked where the backend locks rows.
fn sql_lock_rotation<'a>(dialect: &Dialect) -> super::backend::Sql<'a> {
    super::backend::sql_owned(format!(
        "select r.session_id, r.used_at, r.expires_at, r.successor_sealed, s.user_id, s.revoked_at
         from refresh_tokens r join sessions s on s.id = r.session_id where r.token_hash = $1{}",
        dialect.lock_rotation
    ))
}

/// Starts a session with its first refresh token.
pub(super) async fn insert_session(tx: &mut Tx, session: &NewSession) -> Result<(), StoreError> {
    let at = micros(session.created_at);
    let grant = session.grant.as_ref();
    sql("insert into sessions (id, user_id, user_agent, ip, created_at, updated_at, last_used_at, expires_at,
             auth_time, auth_methods, client_id, scope, resource)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
    .bind(session.id)
    .bind(session.user_id)
    .bind(session.user_agent.as_deref())
    .bind(session.ip.as_deref())
    .bind(at)
    .bind(at)
    .bind(at)
    .bind(micros(session.expires_at))
    .bind(micros(session.assurance.auth_time))
    .bind(session.assurance.stored_methods())
    .bind(grant.map(|g| g.client_id.as_str()))
    .bind(grant.map(|g| g.scope.as_str()))
    .bind(grant.and_then(|g| g.resource.as_deref()))
    .execute(&mut *tx)
    .await?;
    insert_refresh_token(
        tx,
        &session.refresh_token_hash,
        session.id,
        session.created_at,
        micros(session.expires_at),
    )
    .await
}

/// Adds the next refresh token of a session.
pub(super) async fn insert_refresh_token(
    tx: &mut Tx,
    token_hash: &str,
    session_id: Uuid,
    now: OffsetDateTime,
    expires_at: i64,
) -> Result<(), StoreError> {
    let at = micros(now);
    sql(INSERT_REFRESH_TOKEN)
        .bind(token_hash)
        .bind(session_id)
        .bind(at)
        .bind(at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// How and when the holder of session `id` authenticated, as the transaction sees it.
async fn assurance_in(tx: &mut Tx, id: Uuid) -> Result<Assurance, StoreError> {
    let (auth_time, methods): (Option<i64>, String) =
        sql("select auth_time, auth_methods from sessions where id = $1")
            .bind(id)
            .fetch_one(tx)
            .await?;
    Ok(Assurance::from_stored(
        from_micros(auth_time.unwrap_or_default())?,
        &methods,
    ))
}

/// Adds `methods`, just proven by the holder of session `id` of `user_id` (a factor it
/// enrolled), to what the session proved, inside a transaction; its `auth_time` stays.
pub(super) async fn prove_in(
    tx: &mut Tx,
    id: Uuid,
    user_id: Uuid,
    methods: &[AuthMethod],
) -> Result<(), StoreError> {
    let stored: Option<(Option<i64>, String)> =
        sql("select auth_time, auth_methods from sessions where id = $1 and user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((auth_time, stored)) = stored else {
        return Ok(());
    };
    let mut assurance =
        Assurance::from_stored(from_micros(auth_time.unwrap_or_default())?, &stored);
    assurance.add(methods);
    sql("update sessions set auth_methods = $1 where id = $2 and user_id = $3")
        .bind(assurance.stored_methods())
        .bind(id)
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Revokes live sessions of `user_id` inside a transaction: marks them, records a revocation
/// for every instance to pick up, and writes a `SESSION_REVOKED` event each.
pub(super) async fn revoke_in(
    tx: &mut Tx,
    user_id: Uuid,
    which: Revoke,
    reason: RevokeReason,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    let (only, except) = match which {
        Revoke::All => (None, None),
        Revoke::AllBut(keep) => (None, Some(keep)),
        Revoke::One(id) => (Some(id), None),
    };
    let at = micros(now);
    tx.lock(tx.dialect.order_revocations, None).await?;
    let ids: Vec<String> = sql("update sessions set revoked_at = $1, updated_at = $2
         where user_id = $3 and revoked_at is null and expires_at > $4
           and ($5 is null or id = $6) and ($7 is null or id != $8)
         returning id")
    .bind(at)
    .bind(at)
    .bind(user_id)
    .bind(at)
    .bind(only)
    .bind(only)
    .bind(except)
    .bind(except)
    .fetch_column(&mut *tx)
    .await?;
    let ids = ids
        .iter()
        .map(|id| parse_uuid(id))
        .collect::<Result<Vec<_>, _>>()?;
    for session_id in &ids {
        sql(
            "insert into revocations (session_id, user_id, created_at, updated_at, expires_at)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(*session_id)
        .bind(user_id)
        .bind(at)
        .bind(at)
        .bind(micros(now + REVOCATION_LIFETIME))
        .execute(&mut *tx)
        .await?;
        insert_event(
            tx,
            &Event::session_revoked(user_id, *session_id, reason, now),
        )
        .await?;
    }
    tx.after.revoked.extend_from_slice(&ids);
    Ok(ids)
}
