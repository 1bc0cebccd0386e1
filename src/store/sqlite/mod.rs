//! SQLite: the embedded default. Writers take the lock up front (`BEGIN IMMEDIATE`) so that
//! concurrent transactions wait for each other instead of failing on a lock upgrade.

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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Pools of SQLite connections.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// A separate read-only connection for the revocation sync, so that writers queueing for
    /// the write lock can never starve it (a starved sync would fail bearer checks closed).
    reader: SqlitePool,
    /// Write transactions begun (see `Store::write_transactions`).
    pub(super) writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    pub(super) async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        private_database_files(url, options.get_filename())?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Deleted and overwritten content (a mail body erased once sent, a row sealed in
            // place) is zeroed, not left in free pages for a copy of the file to show.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(1))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            pool,
            reader,
            writes: Default::default(),
        })
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.pool.begin_with("begin immediate").await?)
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
            "select {USER_COLUMNS} from users where id = ?"
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
            "select {USER_COLUMNS} from users where email = ?"
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
                name = case when ? then ? else name end,
                phone = case when ? then ? else phone end,
                metadata = coalesce(?, metadata),
                role = coalesce(?, role),
                disabled = coalesce(?, disabled),
                email_verified = coalesce(?, email_verified),
                updated_at = ?
             where id = ?",
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
        let ids: Vec<String> = sqlx::query_scalar(super::UNVERIFIED_BEFORE)
            .bind(true)
            .bind(false)
            .bind(micros(cutoff))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut purged = Vec::with_capacity(ids.len());
        for id in ids {
            let user = user_in(&mut tx, parse_uuid(&id)?).await?;
            sqlx::query("delete from mail_queue where user_id = ? and sent_at is null and failed_at is null")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from users where id = ?")
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
             where (? is null or email like ? escape '\\')
               and (? is null or role = ?)
               and (? is null or email_verified = ?)
               and (? is null or disabled = ?)
               and (? is null or created_at < ? or (created_at = ? and id < ?))
             order by created_at desc, id desc limit ?"
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
            sqlx::query("update users set password_hash = ?, updated_at = ? where id = ?")
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
        let live = sessions::revoke_in(&mut tx, id, Revoke::All, "account_deleted", now).await?;
        // Mail not yet sent goes too; sessions, refresh and mailed tokens go with the user
        // (on delete cascade).
        sqlx::query(
            "delete from mail_queue where user_id = ? and sent_at is null and failed_at is null",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("delete from users where id = ?")
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
             where alg = ? and retired_at is null order by created_at desc, kid",
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
            sqlx::query("update signing_keys set retired_at = ?, updated_at = ? where kid = ? and retired_at is null")
                .bind(micros(now))
                .bind(micros(now))
                .bind(kid)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        sqlx::query("insert into signing_keys (kid, alg, private_der, sealed, public_jwk, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?)")
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
            sqlx::query_scalar("select envelope from events order by seq limit ?")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        envelopes
            .iter()
            .map(|e| serde_json::from_str(e).map_err(|e| StoreError::Other(e.into())))
            .collect()
    }
}

/// Makes the database file owner-only before SQLite opens it: created so when missing, its
/// -wal and -shm then inherit the mode; tightened when an earlier version left them readable.
fn private_database_files(url: &str, path: &std::path::Path) -> Result<(), StoreError> {
    let name = path.to_string_lossy();
    // In-memory databases have no file; a read-only one is never created.
    if name.is_empty()
        || name.starts_with(':')
        || name.starts_with("file:")
        || url.contains("mode=memory")
        || url.contains("mode=ro")
    {
        return Ok(());
    }
    let private = || -> std::io::Result<()> {
        match crate::files::create_private_if_missing(path) {
            // A missing directory: SQLite's own error says it.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            crate::files::tighten(std::path::Path::new(&file), "the database file")?;
        }
        Ok(())
    };
    private().map_err(|e| {
        StoreError::Other(anyhow::Error::new(e).context(format!(
            "cannot make the database file {} owner-only",
            path.display()
        )))
    })
}

/// Writes the events, mail and tokens that come with a change, in its transaction.
async fn write_effects(tx: &mut SqliteConnection, effects: &Effects) -> Result<(), StoreError> {
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

async fn insert_event(tx: &mut SqliteConnection, event: &Event) -> Result<(), StoreError> {
    let at = micros(event.time);
    sqlx::query("insert into events (id, user_id, type, envelope, created_at, updated_at) values (?, ?, ?, ?, ?, ?)")
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

async fn user_in(tx: &mut SqliteConnection, id: Uuid) -> Result<User, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {USER_COLUMNS} from users where id = ?"
    )))
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    Ok(credentials_from_row(&row)?.user)
}

fn credentials_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Credentials, StoreError> {
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
    tx: &mut SqliteConnection,
    keep_admin: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let Some(role) = keep_admin else {
        return Ok(None);
    };
    // SQLite's write lock (`begin immediate`) already serialises every change.
    Ok(Some(count_admins(tx, role).await?))
}

async fn count_admins(tx: &mut SqliteConnection, role: &str) -> Result<i64, StoreError> {
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
    tx: &mut SqliteConnection,
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

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredKey, StoreError> {
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
    tx: &mut SqliteConnection,
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
