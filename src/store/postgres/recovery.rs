//! Mailed tokens on PostgreSQL: email confirmation and password reset.

use super::sessions::revoke_in;
use super::{
    PostgresStore, USER_COLUMNS, credentials_from_row, insert_event, lock_user, micros, parse_uuid,
    user_in, write_effects,
};
use crate::domain::{Event, EventType, User};
use crate::store::{
    CodeCheck, Effects, MAX_CODE_FAILURES, MAX_CODE_FAILURES_PER_HOUR, NewEmailToken, Revoke,
    StoreError, TokenPurpose,
};
use serde_json::json;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

impl PostgresStore {
    pub(in crate::store) async fn replace_email_tokens(
        &self,
        user_id: Uuid,
        purposes: &[TokenPurpose],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        kill_tokens(&mut tx, user_id, purposes, now).await?;
        write_effects(&mut tx, effects).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn email_token_owner(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {USER_COLUMNS} from users where id = (
                 select user_id from email_tokens
                 where token_hash = $1 and purpose = $2 and used_at is null and expires_at > $3)"
        )))
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| credentials_from_row(&row).map(|c| c.user))
            .transpose()
    }

    pub(in crate::store) async fn confirm_email(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.write().await?;
        let owner: Option<String> =
            sqlx::query_scalar("select user_id from email_tokens where token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(owner) = owner else { return Ok(None) };
        lock_user(&mut tx, parse_uuid(&owner)?).await?;
        let Some(user_id) = spend(&mut tx, token_hash, TokenPurpose::VerifyEmail, now).await?
        else {
            return Ok(None);
        };
        // Every other confirmation link of the user is spent too: the address is proven.
        sqlx::query("update email_tokens set used_at = $1, updated_at = $2 where user_id = $3 and purpose = $4 and used_at is null")
            .bind(micros(now))
            .bind(micros(now))
            .bind(user_id.to_string())
            .bind(TokenPurpose::VerifyEmail.as_str())
            .execute(&mut *tx)
            .await?;
        let changed = sqlx::query("update users set email_verified = true, updated_at = $1 where id = $2 and email_verified = false")
            .bind(micros(now))
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let user = user_in(&mut tx, user_id).await?;
        if changed > 0 {
            let event = Event::new(
                EventType::EmailVerified,
                Some(user_id),
                now,
                json!({"email": user.email.as_str()}),
            );
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(Some(user))
    }

    pub(in crate::store) async fn check_reset_code(
        &self,
        user_id: Uuid,
        code_hash: &(dyn Fn(&str) -> String + Sync),
        now: OffsetDateTime,
    ) -> Result<CodeCheck, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        // Wrong tries count per code and per user across codes, so asking for new codes again
        // and again does not buy unlimited guesses.
        let recent_failures: i64 = sqlx::query_scalar(
            "select coalesce(sum(failed_attempts), 0)::bigint from email_tokens
             where user_id = $1 and purpose = $2 and created_at > $3",
        )
        .bind(user_id.to_string())
        .bind(TokenPurpose::ResetCode.as_str())
        .bind(micros(now - time::Duration::hours(1)))
        .fetch_one(&mut *tx)
        .await?;
        let live = sqlx::query(
            "select token_hash, grp from email_tokens
             where user_id = $1 and purpose = $2 and used_at is null and expires_at > $3 and failed_attempts < $4
             order by created_at desc limit 1",
        )
        .bind(user_id.to_string())
        .bind(TokenPurpose::ResetCode.as_str())
        .bind(micros(now))
        .bind(MAX_CODE_FAILURES)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(live) = live.filter(|_| recent_failures < MAX_CODE_FAILURES_PER_HOUR) else {
            return Ok(CodeCheck::NoLiveCode);
        };
        let stored: String = live.try_get("token_hash")?;
        let presented = code_hash(live.try_get::<&str, _>("grp")?);
        // Constant-time comparison: the hashes are keyed, but leak nothing by timing either way.
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            stored.as_bytes(),
            presented.as_bytes(),
        )
        .is_ok()
        {
            return Ok(CodeCheck::Matches(stored));
        }
        sqlx::query("update email_tokens set failed_attempts = failed_attempts + 1, updated_at = $1 where token_hash = $2")
            .bind(micros(now))
            .bind(&stored)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CodeCheck::Wrong)
    }

    pub(in crate::store) async fn reset_password(
        &self,
        token_hash: &str,
        hash: &str,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut tx = self.write().await?;
        let owner: Option<String> =
            sqlx::query_scalar("select user_id from email_tokens where token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(owner) = owner else { return Ok(None) };
        lock_user(&mut tx, parse_uuid(&owner)?).await?;
        let at = micros(now);
        let spent = sqlx::query(
            "update email_tokens set used_at = $1, updated_at = $2
             where token_hash = $3 and purpose in ($4, $5) and used_at is null and expires_at > $6 and failed_attempts < $7
             returning user_id",
        )
        .bind(at)
        .bind(at)
        .bind(token_hash)
        .bind(TokenPurpose::ResetLink.as_str())
        .bind(TokenPurpose::ResetCode.as_str())
        .bind(at)
        .bind(MAX_CODE_FAILURES)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(spent) = spent else { return Ok(None) };
        let user_id = parse_uuid(spent.try_get("user_id")?)?;
        // A reset ends every outstanding reset link and code of the user: this request's other
        // half, and any earlier request's link (new requests replace only the code).
        kill_reset_tokens(&mut tx, user_id, now).await?;
        sqlx::query(
            "update users set password_hash = $1, email_verified = true, updated_at = $2 where id = $3",
        )
        .bind(hash)
        .bind(at)
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        let revoked = revoke_in(&mut tx, user_id, Revoke::All, "password_reset", now).await?;
        write_effects(&mut tx, effects).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }
}

/// Spends a live token of `purpose`; gives its user.
async fn spend(
    tx: &mut PgConnection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, StoreError> {
    let at = micros(now);
    let user_id: Option<String> = sqlx::query_scalar(
        "update email_tokens set used_at = $1, updated_at = $2
         where token_hash = $3 and purpose = $4 and used_at is null and expires_at > $5
         returning user_id",
    )
    .bind(at)
    .bind(at)
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    user_id.as_deref().map(parse_uuid).transpose()
}

pub(super) async fn insert_token(
    tx: &mut PgConnection,
    token: &NewEmailToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into email_tokens (token_hash, user_id, purpose, grp, created_at, updated_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.token_hash)
    .bind(token.user_id.to_string())
    .bind(token.purpose.as_str())
    .bind(token.group.to_string())
    .bind(micros(token.created_at))
    .bind(micros(token.created_at))
    .bind(micros(token.expires_at))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Spends every live reset link and code of a user (a password change or a disable).
pub(super) async fn kill_reset_tokens(
    tx: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("update email_tokens set used_at = $1, updated_at = $2 where user_id = $3 and purpose in ($4, $5) and used_at is null")
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_id.to_string())
        .bind(TokenPurpose::ResetLink.as_str())
        .bind(TokenPurpose::ResetCode.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Spends the user's live tokens of `purposes` (a new mail replaces the earlier one).
pub(super) async fn kill_tokens(
    tx: &mut PgConnection,
    user_id: Uuid,
    purposes: &[TokenPurpose],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    lock_user(&mut *tx, user_id).await?;
    for purpose in purposes {
        sqlx::query(
            "update email_tokens set used_at = $1, updated_at = $2
             where user_id = $3 and purpose = $4 and used_at is null",
        )
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_id.to_string())
        .bind(purpose.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
