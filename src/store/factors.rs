//! Second factors: TOTP authenticators, recovery codes and WebAuthn credentials, and the
//! re-authentication of a session with them. The ceremonies between two requests are in
//! `challenges`.

use super::backend::{Tx, sql};
use super::users::{lock_user, write_effects};
use super::{
    Committed, Effects, Revoke, Store, StoreError, events::insert_event, from_micros, micros,
    parse_uuid, sessions,
};
use crate::domain::{Assurance, AuthMethod, Event, RevokeReason, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's TOTP authenticator.
#[derive(Debug, Clone)]
pub struct TotpRecord {
    /// The secret, sealed under the secret key.
    pub secret_sealed: Vec<u8>,
    /// A code confirmed it; until then it is pending and opens nothing.
    pub confirmed: bool,
    /// The step of the last code accepted.
    pub last_step: Option<i64>,
}

/// A registered WebAuthn credential.
#[derive(Debug, Clone)]
pub struct CredentialRecord {
    /// latchkey's id for it.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The name its owner gave it.
    pub name: String,
    /// webauthn-rs's record of it (public key, counter, backup flags), JSON.
    pub passkey: String,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed a challenge.
    pub last_used_at: Option<OffsetDateTime>,
}

/// Every factor of one user.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    /// The TOTP authenticator, pending or confirmed.
    pub totp: Option<TotpRecord>,
    /// WebAuthn credentials, oldest first.
    pub credentials: Vec<CredentialRecord>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

impl Factors {
    /// Whether a second factor is enrolled (a pending TOTP secret is not one).
    pub fn any(&self) -> bool {
        self.totp_confirmed() || !self.credentials.is_empty()
    }

    /// Whether a confirmed TOTP authenticator is enrolled.
    pub fn totp_confirmed(&self) -> bool {
        self.totp.as_ref().is_some_and(|totp| totp.confirmed)
    }
}

/// A credential's row: id, user, credential id, name, passkey, created, last used.
type CredentialRow = (String, String, String, String, String, i64, Option<i64>);

const CREDENTIAL_COLUMNS: &str =
    "id, user_id, credential_id, name, passkey, created_at, last_used_at";

fn credential_from_row(
    (id, user_id, credential_id, name, passkey, created_at, last_used_at): CredentialRow,
) -> Result<CredentialRecord, StoreError> {
    Ok(CredentialRecord {
        id: parse_uuid(&id)?,
        user_id: parse_uuid(&user_id)?,
        credential_id,
        name,
        passkey,
        created_at: from_micros(created_at)?,
        last_used_at: last_used_at.map(from_micros).transpose()?,
    })
}

impl Store {
    /// Every factor of `user_id`.
    pub async fn factors(&self, user_id: Uuid) -> Result<Factors, StoreError> {
        let totp: Option<(Vec<u8>, Option<i64>, Option<i64>)> = sql(
            "select secret_sealed, confirmed_at, last_step from totp_factors where user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let rows: Vec<CredentialRow> =
            sql_credentials("where user_id = $1 order by created_at, id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        let left: Option<i64> =
            sql("select count(*) from recovery_codes where user_id = $1 and used_at is null")
                .bind(user_id)
                .fetch_scalar(&self.pool)
                .await?;
        Ok(Factors {
            totp: totp.map(|(secret_sealed, confirmed_at, last_step)| TotpRecord {
                secret_sealed,
                confirmed: confirmed_at.is_some(),
                last_step,
            }),
            credentials: rows
                .into_iter()
                .map(credential_from_row)
                .collect::<Result<_, _>>()?,
            recovery_codes_left: left.unwrap_or(0),
        })
    }

    /// Stores a pending TOTP secret for `user_id`, replacing a pending one; `Conflict` when a
    /// confirmed authenticator is enrolled.
    pub async fn stage_totp(
        &self,
        user_id: Uuid,
        secret_sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let confirmed: Option<Option<i64>> =
            sql("select confirmed_at from totp_factors where user_id = $1")
                .bind(user_id)
                .fetch_scalar(&mut tx)
                .await?;
        if confirmed.flatten().is_some() {
            return Err(StoreError::Conflict);
        }
        sql("delete from totp_factors where user_id = $1")
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        let at = micros(now);
        sql(
            "insert into totp_factors (user_id, secret_sealed, created_at, updated_at)
             values ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(secret_sealed)
        .bind(at)
        .bind(at)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    /// Confirms the pending TOTP secret of `user_id` with a code of `step` (which is spent).
    /// When it is the first factor, `codes` (hashes) become the recovery codes. Gives whether
    /// it was the first; `NotFound` when nothing is pending.
    pub async fn confirm_totp(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        step: i64,
        codes: &[String],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<(bool, Committed), StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let at = micros(now);
        let confirmed = sql(
            "update totp_factors set confirmed_at = $1, last_step = $2, updated_at = $3
             where user_id = $4 and confirmed_at is null",
        )
        .bind(at)
        .bind(step)
        .bind(at)
        .bind(user_id)
        .execute(&mut tx)
        .await?;
        if confirmed == 0 {
            return Err(StoreError::NotFound);
        }
        let first = credential_count(&mut tx, user_id).await? == 0;
        if first {
            insert_codes(&mut tx, user_id, codes, now).await?;
        }
        sessions::prove_in(&mut tx, session_id, user_id, &[AuthMethod::OneTimeCode]).await?;
        write_effects(&mut tx, effects).await?;
        Ok((first, tx.commit_telling().await?))
    }

    /// Spends TOTP step `step` of `user_id`'s confirmed authenticator: true when no code of
    /// that step or a later one was accepted before (a code works once).
    pub async fn spend_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, StoreError> {
        let spent = sql("update totp_factors set last_step = $1
             where user_id = $2 and confirmed_at is not null
               and (last_step is null or last_step < $3)")
        .bind(step)
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(spent == 1)
    }

    /// Spends the recovery code of `user_id` with hash `code_hash` and writes
    /// `RECOVERY_CODE_USED`: false when no such unused code exists.
    pub async fn spend_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let at = micros(now);
        let spent = sql("update recovery_codes set used_at = $1
             where user_id = $2 and code_hash = $3 and used_at is null")
        .bind(at)
        .bind(user_id)
        .bind(code_hash)
        .execute(&mut tx)
        .await?;
        if spent == 0 {
            return Ok(false);
        }
        let left: Option<i64> =
            sql("select count(*) from recovery_codes where user_id = $1 and used_at is null")
                .bind(user_id)
                .fetch_scalar(&mut tx)
                .await?;
        let event = Event::recovery_code_used(user_id, left.unwrap_or(0), now);
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces every recovery code of `user_id` by `codes` (hashes).
    pub async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        codes: &[String],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        insert_codes(&mut tx, user_id, codes, now).await?;
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Removes `user_id`'s TOTP authenticator (and the recovery codes when no factor is left):
    /// `NotFound` when none is confirmed.
    pub async fn remove_totp(
        &self,
        user_id: Uuid,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let removed =
            sql("delete from totp_factors where user_id = $1 and confirmed_at is not null")
                .bind(user_id)
                .execute(&mut tx)
                .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        if credential_count(&mut tx, user_id).await? == 0 {
            delete_codes(&mut tx, user_id).await?;
        }
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Registers a WebAuthn credential. When it is the first factor, `codes` (hashes) become the
    /// recovery codes; gives whether it was. `Conflict` when the credential id is registered
    /// already (to anyone).
    pub async fn insert_credential(
        &self,
        credential: &CredentialRecord,
        session_id: Uuid,
        codes: &[String],
        effects: &Effects,
    ) -> Result<(bool, Committed), StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, credential.user_id).await?;
        let totp: Option<i32> =
            sql("select 1 from totp_factors where user_id = $1 and confirmed_at is not null")
                .bind(credential.user_id)
                .fetch_scalar(&mut tx)
                .await?;
        let first = totp.is_none() && credential_count(&mut tx, credential.user_id).await? == 0;
        let at = micros(credential.created_at);
        sql(
            "insert into webauthn_credentials (id, user_id, credential_id, name, passkey,
                 created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(credential.id)
        .bind(credential.user_id)
        .bind(&credential.credential_id)
        .bind(&credential.name)
        .bind(&credential.passkey)
        .bind(at)
        .bind(at)
        .execute(&mut tx)
        .await?;
        if first {
            insert_codes(&mut tx, credential.user_id, codes, credential.created_at).await?;
        }
        sessions::prove_in(
            &mut tx,
            session_id,
            credential.user_id,
            &[AuthMethod::HardwareKey],
        )
        .await?;
        write_effects(&mut tx, effects).await?;
        Ok((first, tx.commit_telling().await?))
    }

    /// The credential registered under `credential_id` (base64url), whoever's it is.
    pub async fn credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let row: Option<CredentialRow> = sql_credentials("where credential_id = $1")
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(credential_from_row).transpose()
    }

    /// Keeps what a use taught of credential `id` (its counter, backup state) and when.
    pub async fn record_credential_use(
        &self,
        id: Uuid,
        passkey: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let at = micros(now);
        sql(
            "update webauthn_credentials set passkey = $1, last_used_at = $2, updated_at = $3
             where id = $4",
        )
        .bind(passkey)
        .bind(at)
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes credential `id` of `user_id` (and the recovery codes when no factor is left):
    /// `NotFound` when the user has no such credential.
    pub async fn remove_credential(
        &self,
        user_id: Uuid,
        id: Uuid,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let removed = sql("delete from webauthn_credentials where id = $1 and user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut tx)
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        let totp: Option<i32> =
            sql("select 1 from totp_factors where user_id = $1 and confirmed_at is not null")
                .bind(user_id)
                .fetch_scalar(&mut tx)
                .await?;
        if totp.is_none() && credential_count(&mut tx, user_id).await? == 0 {
            delete_codes(&mut tx, user_id).await?;
        }
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Removes every factor of `user_id` and every ceremony under way, and revokes every
    /// session (an admin's reset): `NotFound` when the user does not exist.
    pub async fn clear_factors(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let exists: Option<i32> = sql("select 1 from users where id = $1")
            .bind(user_id)
            .fetch_scalar(&mut tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        remove_factors_in(&mut tx, user_id).await?;
        sessions::revoke_in(&mut tx, user_id, Revoke::All, RevokeReason::MfaReset, now).await?;
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Re-authenticates live session `session_id` of `user_id` at `now` with `methods` (added to
    /// what the session proved when `keep` is set, else instead of it): its refresh tokens so
    /// far are spent (a later use is reuse) and `refresh_token_hash` is the next. Gives the user
    /// and the new assurance; `None` when the session is not live.
    #[allow(clippy::too_many_arguments)]
    pub async fn reauthenticate_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        methods: &[AuthMethod],
        keep: bool,
        refresh_token_hash: &str,
        now: OffsetDateTime,
        refresh_ttl: time::Duration,
    ) -> Result<Option<(User, Assurance)>, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let at = micros(now);
        let live: Option<(String, i64)> = sql(
            "select auth_methods, coalesce(auth_time, created_at) from sessions
             where id = $1 and user_id = $2 and revoked_at is null and expires_at > $3",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(at)
        .fetch_optional(&mut tx)
        .await?;
        let Some((stored, auth_time)) = live else {
            return Ok(None);
        };
        let mut assurance = match keep {
            true => Assurance::from_stored(from_micros(auth_time)?, &stored),
            false => Assurance::of(now, &[]),
        };
        assurance.add(methods);
        assurance.auth_time = now;
        let expires_at = micros(now + refresh_ttl);
        sql(
            "update sessions set auth_time = $1, auth_methods = $2, last_used_at = $3,
                 updated_at = $4, expires_at = $5
             where id = $6",
        )
        .bind(at)
        .bind(assurance.stored_methods())
        .bind(at)
        .bind(at)
        .bind(expires_at)
        .bind(session_id)
        .execute(&mut tx)
        .await?;
        sql(
            "update refresh_tokens set used_at = $1, updated_at = $2, successor_sealed = null
             where session_id = $3 and used_at is null",
        )
        .bind(at)
        .bind(at)
        .bind(session_id)
        .execute(&mut tx)
        .await?;
        sessions::insert_refresh_token(&mut tx, refresh_token_hash, session_id, now, expires_at)
            .await?;
        let user = super::users::user_in(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(Some((user, assurance)))
    }
}

fn sql_credentials<'a>(filter: &str) -> super::backend::Sql<'a> {
    super::backend::sql_owned(format!(
        "select {CREDENTIAL_COLUMNS} from webauthn_credentials {filter}"
    ))
}

async fn credential_count(tx: &mut Tx, user_id: Uuid) -> Result<i64, StoreError> {
    let count: Option<i64> = sql("select count(*) from webauthn_credentials where user_id = $1")
        .bind(user_id)
        .fetch_scalar(&mut *tx)
        .await?;
    Ok(count.unwrap_or(0))
}

async fn delete_codes(tx: &mut Tx, user_id: Uuid) -> Result<(), StoreError> {
    sql("delete from recovery_codes where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Replaces the user's recovery codes by `codes` (hashes).
async fn insert_codes(
    tx: &mut Tx,
    user_id: Uuid,
    codes: &[String],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    delete_codes(tx, user_id).await?;
    for code in codes {
        sql("insert into recovery_codes (user_id, code_hash, created_at) values ($1, $2, $3)")
            .bind(user_id)
            .bind(code)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Removes every factor of `user_id` and every ceremony under way; gives the factors removed
/// (an authenticator app, passkeys, recovery codes).
pub(super) async fn remove_factors_in(tx: &mut Tx, user_id: Uuid) -> Result<u64, StoreError> {
    let mut removed = 0;
    for statement in [
        "delete from totp_factors where user_id = $1",
        "delete from webauthn_credentials where user_id = $1",
        "delete from recovery_codes where user_id = $1",
    ] {
        removed += sql(statement).bind(user_id).execute(&mut *tx).await?;
    }
    sql("delete from mfa_challenges where user_id = $1")
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(removed)
}
