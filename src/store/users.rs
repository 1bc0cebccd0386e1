//! Accounts: creating, reading, changing and deleting users, and the rule that the last
//! enabled, verified admin stays.

use super::backend::{Tx, sql, sql_owned};
use super::{
    Committed, Credentials, Effects, NewSession, NewUser, QueuedRequest, Revoke, Store, StoreError,
    UserChange, attempts, events, from_micros, micros, parse_uuid, recovery, sessions,
};
use crate::domain::{Email, Event, Locale, Metadata, Name, Phone, RevokeReason, Role, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// The columns every user query selects, as [`UserRow`] reads them.
const USER_COLUMNS: &str = "id, email, email_verified, password_hash, name, phone, role, disabled, metadata, created_at, updated_at, last_login_at, self_registered, locale";

/// A new user's row (an `on conflict` clause may follow).
const INSERT_USER: &str = "insert into users (id, email, email_verified, password_hash, name, phone, role, disabled, metadata, created_at, updated_at, last_login_at, self_registered, locale)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Self-registered accounts still unverified and never logged in (verification may have been
/// off once) created before a time, oldest first.
const UNVERIFIED_BEFORE: &str = "select id from users
    where self_registered = $1 and email_verified = $2 and created_at < $3
    and last_login_at is null
    order by created_at limit $4";

/// The admins who keep the service administrable: enabled and verified.
const COUNT_ADMINS: &str =
    "select count(*) from users where role = $1 and disabled = $2 and email_verified = $3";

/// Unsent mail of a user goes with the user; sessions, refresh and mailed tokens go by
/// `on delete cascade`.
const DELETE_UNSENT_MAIL: &str =
    "delete from mail_queue where user_id = $1 and sent_at is null and failed_at is null";

/// A user's row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    email: String,
    email_verified: bool,
    password_hash: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    role: String,
    disabled: bool,
    metadata: String,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
    self_registered: bool,
    locale: Option<String>,
}

impl UserRow {
    pub(super) fn credentials(self) -> Result<Credentials, StoreError> {
        let user = User {
            id: parse_uuid(&self.id)?,
            email: Email::from_trusted(self.email),
            email_verified: self.email_verified,
            name: self.name.map(Name::from_trusted),
            phone: self.phone.map(Phone::from_trusted),
            role: Role::from_trusted(self.role),
            disabled: self.disabled,
            metadata: Metadata::from_trusted(
                serde_json::from_str(&self.metadata).map_err(anyhow::Error::from)?,
            ),
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            last_login_at: self.last_login_at.map(from_micros).transpose()?,
            locale: self.locale.map(Locale::from_trusted),
        };
        Ok(Credentials {
            user,
            password_hash: self.password_hash,
            self_registered: self.self_registered,
        })
    }

    pub(super) fn user(self) -> Result<User, StoreError> {
        Ok(self.credentials()?.user)
    }
}

/// Selects users' rows: `select <columns> from users <rest>`.
pub(super) fn select_users(rest: &str) -> String {
    format!("select {USER_COLUMNS} from users {rest}")
}

impl Store {
    /// Creates a user with its events and, optionally, its first session.
    pub async fn insert_user(
        &self,
        new: &NewUser,
        session: Option<&NewSession>,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        insert_user_row(&mut tx, new, "").await?;
        if let Some(session) = session {
            sessions::insert_session(&mut tx, session).await?;
        }
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Registration in conceal mode: creates the user (with its effects) unless the address is
    /// taken, and queues `if_created` or `if_taken` in the same transaction, so that a taken
    /// and a free address cost one committed write transaction alike.
    pub async fn insert_user_or_queue(
        &self,
        new: &NewUser,
        effects: &Effects,
        if_created: QueuedRequest<'_>,
        if_taken: QueuedRequest<'_>,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let created = insert_user_row(&mut tx, new, " on conflict (email) do nothing").await? == 1;
        if created {
            write_effects(&mut tx, effects).await?;
        }
        let request = if created { if_created } else { if_taken };
        attempts::queue_request_in(&mut tx, request, new.user.created_at).await?;
        tx.commit_telling().await
    }

    /// The password hash of a user.
    pub async fn credentials(&self, id: Uuid) -> Result<Option<Credentials>, StoreError> {
        let row: Option<UserRow> = sql_owned(select_users("where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRow::credentials).transpose()
    }

    /// The user with this id.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.credentials(id).await?.map(|c| c.user))
    }

    /// The user with this email, with its password hash.
    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError> {
        let row: Option<UserRow> = sql_owned(select_users("where email = $1"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(UserRow::credentials).transpose()
    }

    /// Applies a change of user fields with its effects, revoking every session (with
    /// `revoke` as the reason) when asked; `NotFound` when the user is gone. With `keep_admin`
    /// (the admin role), `LastAdmin` when no enabled, verified admin would be left.
    pub async fn update_user(
        &self,
        id: Uuid,
        change: &UserChange,
        revoke: Option<RevokeReason>,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<(User, Committed), StoreError> {
        let mut tx = self.write().await?;
        let admins_before = lock_admins(&mut tx, keep_admin).await?;
        let metadata = change
            .metadata
            .as_ref()
            .map(|m| serde_json::to_string(m.as_map()))
            .transpose()
            .map_err(anyhow::Error::from)?;
        // Each field is set only when the change names it; `case`/`coalesce` keep the others.
        let updated = sql("update users set
                name = case when $1 then $2 else name end,
                phone = case when $3 then $4 else phone end,
                metadata = coalesce($5, metadata),
                role = coalesce($6, role),
                disabled = coalesce($7, disabled),
                email_verified = coalesce($8, email_verified),
                updated_at = $9,
                locale = case when $11 then $12 else locale end
             where id = $10")
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
        .bind(change.role.as_ref().map(Role::as_str))
        .bind(change.disabled)
        .bind(change.email_verified)
        .bind(micros(now))
        .bind(id)
        .bind(change.locale.is_some())
        .bind(
            change
                .locale
                .as_ref()
                .and_then(|l| l.as_ref().map(Locale::as_str)),
        )
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        if change.disabled == Some(true) || change.email_verified == Some(false) {
            recovery::kill_credential_tokens(&mut tx, id, now).await?;
        }
        if let Some(reason) = revoke {
            sessions::revoke_in(&mut tx, id, Revoke::All, reason, now).await?;
        }
        write_effects(&mut tx, effects).await?;
        let user = user_in(&mut tx, id).await?;
        check_admins_left(&mut tx, keep_admin, admins_before).await?;
        Ok((user, tx.commit_telling().await?))
    }

    /// Deletes up to `limit` self-registered accounts still unverified and created before
    /// `cutoff`, with their pending mail, writing `event(user)` for each; gives their ids.
    pub async fn purge_unverified(
        &self,
        cutoff: OffsetDateTime,
        limit: i64,
        event: &(dyn Fn(&User) -> Event + Sync),
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let ids: Vec<String> =
            sql_owned(format!("{UNVERIFIED_BEFORE}{}", self.dialect.skip_locked))
                .bind(true)
                .bind(false)
                .bind(micros(cutoff))
                .bind(limit)
                .fetch_column(&mut tx)
                .await?;
        let mut purged = Vec::with_capacity(ids.len());
        for id in ids {
            let user = user_in(&mut tx, parse_uuid(&id)?).await?;
            sql(DELETE_UNSENT_MAIL).bind(&id).execute(&mut tx).await?;
            sql("delete from users where id = $1")
                .bind(&id)
                .execute(&mut tx)
                .await?;
            events::insert_event(&mut tx, &event(&user)).await?;
            purged.push(user.id);
        }
        tx.commit().await?;
        Ok(purged)
    }

    /// Stores a new password hash and revokes every session but `keep`, writing `events` and a
    /// `SESSION_REVOKED` (with `reason`) per revoked session.
    pub async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        keep: Option<Uuid>,
        reason: RevokeReason,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let updated = sql("update users set password_hash = $1, updated_at = $2 where id = $3")
            .bind(hash)
            .bind(micros(now))
            .bind(id)
            .execute(&mut tx)
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        recovery::kill_credential_tokens(&mut tx, id, now).await?;
        write_effects(&mut tx, effects).await?;
        let which = keep.map_or(Revoke::All, Revoke::AllBut);
        sessions::revoke_in(&mut tx, id, which, reason, now).await?;
        tx.commit_telling().await
    }

    /// Deletes a user and everything of theirs (sessions, tokens), writing `events` and a
    /// `SESSION_REVOKED` per live session.
    /// With `keep_admin` (the admin role), `LastAdmin` when no enabled, verified admin would
    /// be left.
    pub async fn delete_user(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let admins_before = lock_admins(&mut tx, keep_admin).await?;
        lock_user(&mut tx, id).await?;
        sessions::revoke_in(&mut tx, id, Revoke::All, RevokeReason::AccountDeleted, now).await?;
        sql(DELETE_UNSENT_MAIL).bind(id).execute(&mut tx).await?;
        let deleted = sql("delete from users where id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        write_effects(&mut tx, effects).await?;
        check_admins_left(&mut tx, keep_admin, admins_before).await?;
        tx.commit_telling().await
    }
}

/// Writes the events, mail and tokens that come with a change, in its transaction.
pub(super) async fn write_effects(tx: &mut Tx, effects: &Effects) -> Result<(), StoreError> {
    if let Some(change) = &effects.email_change {
        super::email_changes::record_change(tx, change).await?;
    }
    for event in &effects.events {
        events::insert_event(tx, event).await?;
    }
    for mail in &effects.mails {
        super::mail::insert_mail(tx, mail).await?;
    }
    for token in &effects.tokens {
        recovery::insert_token(tx, token).await?;
    }
    Ok(())
}

/// The user, as the transaction sees it.
pub(super) async fn user_in(tx: &mut Tx, id: Uuid) -> Result<User, StoreError> {
    let row: UserRow = sql_owned(select_users("where id = $1"))
        .bind(id)
        .fetch_one(tx)
        .await?;
    row.user()
}

/// Locks a user's row for the rest of the transaction (on backends with row locks). Every write
/// path that touches a user's sessions or tokens takes this first, so they all lock in one order
/// (user, then the rest) and cannot deadlock one another; it also serialises per-user checks
/// such as counting wrong codes.
pub(super) async fn lock_user(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    tx.lock(tx.dialect.lock_user, Some(id.into())).await
}

/// Serialises changes that could remove the last admin, and counts the enabled, verified
/// admins before the change.
async fn lock_admins(tx: &mut Tx, keep_admin: Option<&str>) -> Result<Option<i64>, StoreError> {
    let Some(role) = keep_admin else {
        return Ok(None);
    };
    tx.lock(tx.dialect.lock_role, Some(role.into())).await?;
    Ok(Some(count_admins(tx, role).await?))
}

async fn count_admins(tx: &mut Tx, role: &str) -> Result<i64, StoreError> {
    sql(COUNT_ADMINS)
        .bind(role)
        .bind(false)
        .bind(true)
        .fetch_scalar(tx)
        .await?
        .ok_or(StoreError::NotFound)
}

/// `LastAdmin` (rolling the change back) when the change took the last enabled, verified admin
/// away (a service that had none before is no worse for it).
async fn check_admins_left(
    tx: &mut Tx,
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

/// Inserts a user's row (`conflict` may add an `on conflict` clause); gives the rows inserted.
async fn insert_user_row(tx: &mut Tx, new: &NewUser, conflict: &str) -> Result<u64, StoreError> {
    let user = &new.user;
    // The vacated address of another account's change stays its owner's while the change
    // can be undone; `conflict` (conceal mode) says to count it as taken without failing.
    match super::email_changes::ensure_free(tx, &user.email, user.id, user.created_at).await {
        Err(StoreError::Conflict) if !conflict.is_empty() => return Ok(0),
        checked => checked?,
    }
    sql_owned(format!("{INSERT_USER}{conflict}"))
        .bind(user.id)
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
        .bind(user.locale.as_ref().map(Locale::as_str))
        .execute(tx)
        .await
}
