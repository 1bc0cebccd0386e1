//! PostgreSQL: for several instances on one database. The same operations as on SQLite, with
//! row locks where SQLite relies on its single writer: `for update` on a refresh token being
//! rotated, `skip locked` on mail claims, and an advisory lock that keeps the revocation log in
//! commit order.

mod attempts;
mod events;
mod mail;
mod recovery;
mod sealing;
mod sessions;

use super::{
    Credentials, Effects, NewUser, Revoke, StoreError, StoredKey, USER_COLUMNS, UserChange,
    UserFilter, from_micros, micros, parse_uuid,
};
use crate::domain::{Email, Event, Metadata, Name, Phone, Role, User};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Pools of PostgreSQL connections.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// A separate connection for the revocation sync, so that a pool busy with writers can
    /// never starve it (a starved sync would fail bearer checks closed).
    reader: PgPool,
    /// Write transactions begun (see `Store::write_transactions`).
    pub(super) writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl PostgresStore {
    pub(super) async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        // Lazy pools: the process starts (and answers /healthz, and 503 elsewhere) while the
        // database is down, and recovers on its own when it is back.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options.clone());
        let reader = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options);
        Ok(PostgresStore {
            pool,
            reader,
            writes: Default::default(),
        })
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
                other => StoreError::Other(other.into()),
            })
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.pool.begin().await?)
    }

    pub(super) async fn insert_user(
        &self,
        new: &NewUser,
        session: Option<&super::NewSession>,
        effects: &Effects,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_user_row(&mut tx, new, "").await?;
        if let Some(session) = session {
            sessions::insert_session(&mut tx, session).await?;
        }
        write_effects(&mut tx, effects).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn insert_user_or_queue(
        &self,
        new: &NewUser,
        effects: &Effects,
        if_created: super::QueuedRequest<'_>,
        if_taken: super::QueuedRequest<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let created = insert_user_row(&mut tx, new, " on conflict (email) do nothing").await? == 1;
        if created {
            write_effects(&mut tx, effects).await?;
        }
        let request = if created { if_created } else { if_taken };
        attempts::queue_request_in(&mut tx, request, new.user.created_at).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(super) async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.credentials(id).await?.map(|c| c.user))
    }

    pub(super) async fn credentials(&self, id: Uuid) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| credentials_from_row(&row)).transpose()
    }

    pub(super) async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where email = $1"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| credentials_from_row(&row)).transpose()
    }

    pub(super) async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn update_user(
        &self,
        id: Uuid,
        change: &UserChange,
        revoke: Option<&str>,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<(User, Vec<Uuid>), StoreError> {
        let mut tx = self.write().await?;
        let admins_before = lock_admins(&mut tx, keep_admin).await?;
        let metadata = change
            .metadata
            .as_ref()
            .map(|m| serde_json::to_string(m.as_map()))
            .transpose()
            .map_err(anyhow::Error::from)?;
        // Each field is set only when the change names it; `case`/`coalesce` keep the others.
        let updated = sqlx::query(
            "update users set
                name = case when $1 then $2 else name end,
                phone = case when $3 then $4 else phone end,
                metadata = coalesce($5, metadata),
                role = coalesce($6, role),
                disabled = coalesce($7, disabled),
                email_verified = coalesce($8, email_verified),
                updated_at = $9
             where id = $10",
        )
        .bind(change.name.is_some())
        .bind(
            change
                .name
                .as_ref()
                .and_then(|n| n.as_ref().map(Name::as_str)),
        )
        .bind(change.phone.is_some())
        .bind(
            change
                .phone
                .as_ref()
                .and_then(|p| p.as_ref().map(Phone::as_str)),
        )
        .bind(metadata)
        .bind(change.role.as_ref().map(|r| r.as_str().to_owned()))
        .bind(change.disabled)
        .bind(change.email_verified)
        .bind(micros(now))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if change.disabled == Some(true) {
            recovery::kill_reset_tokens(&mut tx, id, now).await?;
        }
        let revoked = match revoke {
            Some(reason) => sessions::revoke_in(&mut tx, id, Revoke::All, reason, now).await?,
            None => Vec::new(),
        };
        write_effects(&mut tx, effects).await?;
        let user = user_in(&mut tx, id).await?;
        check_admins_left(&mut tx, keep_admin, admins_before).await?;
        tx.commit().await?;
        Ok((user, revoked))
    }

    pub(super) async fn purge_unverified(
        &self,
        cutoff: OffsetDateTime,
        limit: i64,
        event: &(dyn Fn(&User) -> Event + Sync),
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "{} for update skip locked",
            super::UNVERIFIED_BEFORE
        )))
        .bind(true)
        .bind(false)
        .bind(micros(cutoff))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = Vec::with_capacity(ids.len());
        for id in ids {
            let user = user_in(&mut tx, parse_uuid(&id)?).await?;
            sqlx::query("delete from mail_queue where user_id = $1 and sent_at is null and failed_at is null")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from users where id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            insert_event(&mut tx, &event(&user)).await?;
            purged.push(user.id);
        }
        tx.commit().await?;
        Ok(purged)
    }

    pub(super) async fn list_users(
        &self,
        filter: &UserFilter,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
        let (after_at, after_id) = filter.after.map_or((None, None), |(at, id)| {
            (Some(micros(at)), Some(id.to_string()))
        });
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users
             where ($1 is null or email like $2 escape '\\')
               and ($3 is null or role = $4)
               and ($5 is null or email_verified = $6)
               and ($7 is null or disabled = $8)
               and ($9 is null or created_at < $10 or (created_at = $11 and id < $12))
             order by created_at desc, id desc limit $13"
        )))
        .bind(filter.email_like.as_deref())
        .bind(filter.email_like.as_deref())
        .bind(filter.role.as_deref())
        .bind(filter.role.as_deref())
        .bind(filter.verified)
        .bind(filter.verified)
        .bind(filter.disabled)
        .bind(filter.disabled)
        .bind(after_at)
        .bind(after_at)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| credentials_from_row(row).map(|c| c.user))
            .collect()
    }

    pub(super) async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        keep: Option<Uuid>,
        reason: &str,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(now);
        let updated =
            sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
                .bind(hash)
                .bind(at)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        recovery::kill_reset_tokens(&mut tx, id, now).await?;
        write_effects(&mut tx, effects).await?;
        let which = keep.map_or(Revoke::All, Revoke::AllBut);
        let revoked = sessions::revoke_in(&mut tx, id, which, reason, now).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    pub(super) async fn delete_user(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let admins_before = lock_admins(&mut tx, keep_admin).await?;
        lock_user(&mut tx, id).await?;
        let live = sessions::revoke_in(&mut tx, id, Revoke::All, "account_deleted", now).await?;
        // Mail not yet sent goes too; sessions, refresh and mailed tokens go with the user
        // (on delete cascade).
        sqlx::query(
            "delete from mail_queue where user_id = $1 and sent_at is null and failed_at is null",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("delete from users where id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        write_effects(&mut tx, effects).await?;
        check_admins_left(&mut tx, keep_admin, admins_before).await?;
        tx.commit().await?;
        Ok(live)
    }

    pub(super) async fn signing_keys(&self, alg: &str) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "select kid, alg, private_der, sealed, public_jwk, created_at from signing_keys
             where alg = $1 and retired_at is null order by created_at desc, kid",
        )
        .bind(alg)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub(super) async fn retire_signing_keys(
        &self,
        kids: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        for kid in kids {
            sqlx::query("update signing_keys set retired_at = $1, updated_at = $2 where kid = $3 and retired_at is null")
                .bind(micros(now))
                .bind(micros(now))
                .bind(kid)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query("insert into signing_keys (kid, alg, private_der, sealed, public_jwk, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7)")
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

    pub(super) async fn events(&self, limit: i64) -> Result<Vec<serde_json::Value>, StoreError> {
        let envelopes: Vec<String> =
            sqlx::query_scalar("select envelope from events order by seq limit $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        envelopes
            .iter()
            .map(|e| serde_json::from_str(e).map_err(|e| StoreError::Other(e.into())))
            .collect()
    }
}

/// Locks a user's row for the rest of the transaction. Every write path that touches a user's
/// sessions or tokens takes this first, so they all lock in one order (user, then the rest) and
/// cannot deadlock one another; it also serialises per-user checks such as counting wrong codes.
async fn lock_user(tx: &mut PgConnection, user_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("select id from users where id = $1 for update")
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Writes the events, mail and tokens that come with a change, in its transaction.
async fn write_effects(tx: &mut PgConnection, effects: &Effects) -> Result<(), StoreError> {
    for event in &effects.events {
        insert_event(&mut *tx, event).await?;
    }
    for mail in &effects.mails {
        mail::insert_mail(&mut *tx, mail).await?;
    }
    for token in &effects.tokens {
        recovery::insert_token(&mut *tx, token).await?;
    }
    Ok(())
}

async fn insert_event(tx: &mut PgConnection, event: &Event) -> Result<(), StoreError> {
    // Events of one user are numbered (seq) in commit order, so the relay publishes them in
    // order: a second writer for the same user waits here until the first commits.
    if let Some(user_id) = event.user_id {
        sqlx::query("select pg_advisory_xact_lock(hashtext($1))")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let at = micros(event.time);
    sqlx::query("insert into events (id, user_id, type, envelope, created_at, updated_at) values ($1, $2, $3, $4, $5, $6)")
        .bind(event.id.to_string())
        .bind(event.user_id.map(|id| id.to_string()))
        .bind(event.kind.as_str())
        .bind(event.envelope().to_string())
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn user_in(tx: &mut PgConnection, id: Uuid) -> Result<User, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {USER_COLUMNS} from users where id = $1"
    )))
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    Ok(credentials_from_row(&row)?.user)
}

fn credentials_from_row(row: &sqlx::postgres::PgRow) -> Result<Credentials, StoreError> {
    let metadata: String = row.try_get("metadata")?;
    let user = User {
        id: parse_uuid(row.try_get("id")?)?,
        email: Email::from_trusted(row.try_get("email")?),
        email_verified: row.try_get("email_verified")?,
        name: row
            .try_get::<Option<String>, _>("name")?
            .map(Name::from_trusted),
        phone: row
            .try_get::<Option<String>, _>("phone")?
            .map(Phone::from_trusted),
        role: Role::from_trusted(row.try_get("role")?),
        disabled: row.try_get("disabled")?,
        metadata: Metadata::from_trusted(
            serde_json::from_str(&metadata).map_err(anyhow::Error::from)?,
        ),
        created_at: from_micros(row.try_get("created_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        last_login_at: row
            .try_get::<Option<i64>, _>("last_login_at")?
            .map(from_micros)
            .transpose()?,
    };
    Ok(Credentials {
        user,
        password_hash: row.try_get("password_hash")?,
        self_registered: row.try_get("self_registered")?,
    })
}

/// Serialises changes that could remove the last admin, and counts the enabled, verified
/// admins before the change.
async fn lock_admins(
    tx: &mut PgConnection,
    keep_admin: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let Some(role) = keep_admin else {
        return Ok(None);
    };
    // Two admins demoting each other at once must not both succeed: lock every admin row
    // first, so the second change sees the first and counts what it left.
    sqlx::query("select id from users where role = $1 for update")
        .bind(role)
        .execute(&mut *tx)
        .await?;
    Ok(Some(count_admins(tx, role).await?))
}

async fn count_admins(tx: &mut PgConnection, role: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(super::COUNT_ADMINS)
        .bind(role)
        .bind(false)
        .bind(true)
        .fetch_one(&mut *tx)
        .await?)
}

/// `LastAdmin` (rolling the change back) when the change took the last enabled, verified admin
/// away (a service that had none before is no worse for it).
async fn check_admins_left(
    tx: &mut PgConnection,
    keep_admin: Option<&str>,
    before: Option<i64>,
) -> Result<(), StoreError> {
    let (Some(role), Some(before)) = (keep_admin, before) else {
        return Ok(());
    };
    if before > 0 && count_admins(tx, role).await? == 0 {
        return Err(StoreError::LastAdmin);
    }
    Ok(())
}

fn key_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_der: row.try_get("private_der")?,
        sealed: row.try_get("sealed")?,
        public_jwk: serde_json::from_str(row.try_get::<&str, _>("public_jwk")?)
            .map_err(anyhow::Error::from)?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

/// Inserts a user's row (`conflict` may add an `on conflict` clause); gives the rows inserted.
async fn insert_user_row(
    tx: &mut PgConnection,
    new: &NewUser,
    conflict: &str,
) -> Result<u64, StoreError> {
    let user = &new.user;
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{}{conflict}",
        super::INSERT_USER
    )))
    .bind(user.id.to_string())
    .bind(user.email.as_str())
    .bind(user.email_verified)
    .bind(new.password_hash.as_deref())
    .bind(user.name.as_ref().map(Name::as_str))
    .bind(user.phone.as_ref().map(Phone::as_str))
    .bind(user.role.as_str())
    .bind(user.disabled)
    .bind(serde_json::to_string(user.metadata.as_map()).map_err(anyhow::Error::from)?)
    .bind(micros(user.created_at))
    .bind(micros(user.updated_at))
    .bind(user.last_login_at.map(micros))
    .bind(new.self_registered)
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected())
}
