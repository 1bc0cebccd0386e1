//! Mailed tokens: email confirmation and password reset by link or code.

use super::backend::{Tx, sql, sql_owned};
use super::sessions::revoke_in;
use super::users::{UserRow, lock_user, select_users, user_in, write_effects};
use super::{
    CodeCheck, Committed, Effects, NewEmailToken, Revoke, Store, StoreError, TokenPurpose,
    events::insert_event, micros, parse_uuid,
};
use crate::domain::{Event, RevokeReason, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// A reset code dies at its fifth wrong try.
const MAX_CODE_FAILURES: i64 = 5;
/// Wrong codes a user may present within an hour, across all codes sent.
const MAX_CODE_FAILURES_PER_HOUR: i64 = 10;

const OWNER_OF_TOKEN: &str = "select user_id from email_tokens where token_hash = $1";

impl Store {
    /// Kills the user's live tokens of `purposes`, then stores `effects` (new tokens, mail, events).
    pub async fn replace_email_tokens(
        &self,
        user_id: Uuid,
        purposes: &[TokenPurpose],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        kill_tokens(&mut tx, user_id, purposes, now).await?;
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// The user a live token of `purpose` belongs to, without spending it.
    pub async fn email_token_owner(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sql_owned(select_users(
            "where id = (select user_id from email_tokens
                 where token_hash = $1 and purpose = $2 and used_at is null and expires_at > $3)",
        ))
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(UserRow::user).transpose()
    }

    /// Spends a verification token and marks the email verified, with `EMAIL_VERIFIED`.
    pub async fn confirm_email(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.write().await?;
        if !lock_token_owner(&mut tx, token_hash).await? {
            return Ok(None);
        }
        let Some(user_id) = spend(&mut tx, token_hash, TokenPurpose::VerifyEmail, now).await?
        else {
            return Ok(None);
        };
        // Every other confirmation link of the user is spent too: the address is proven.
        sql("update email_tokens set used_at = $1, updated_at = $2
             where user_id = $3 and purpose = $4 and used_at is null")
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_id)
        .bind(TokenPurpose::VerifyEmail.as_str())
        .execute(&mut tx)
        .await?;
        let changed = sql("update users set email_verified = $1, updated_at = $2
             where id = $3 and email_verified = $4")
        .bind(true)
        .bind(micros(now))
        .bind(user_id)
        .bind(false)
        .execute(&mut tx)
        .await?;
        let user = user_in(&mut tx, user_id).await?;
        if changed > 0 {
            insert_event(
                &mut tx,
                &Event::email_verified(user_id, &user.email, None, now),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Some(user))
    }

    /// Checks a mailed code of `user_id` (`purpose`: a reset or a sign-in code): `code_hash`
    /// gives the keyed hash of the presented code for a group. Counts a wrong try; past the
    /// per-user cap of wrong tries in the last hour, no code is live.
    pub async fn check_code(
        &self,
        user_id: Uuid,
        purpose: TokenPurpose,
        code_hash: &(dyn Fn(&str) -> String + Sync),
        now: OffsetDateTime,
    ) -> Result<CodeCheck, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        // Wrong tries count per code and per user across codes, so asking for new codes again
        // and again does not buy unlimited guesses.
        // Reset and sign-in codes share the cap: two kinds of code must not double the guesses.
        let recent_failures: i64 = sql(
            "select cast(coalesce(sum(failed_attempts), 0) as bigint) from email_tokens
             where user_id = $1 and purpose in ($2, $3) and created_at > $4",
        )
        .bind(user_id)
        .bind(TokenPurpose::ResetCode.as_str())
        .bind(TokenPurpose::LoginCode.as_str())
        .bind(micros(now - time::Duration::hours(1)))
        .fetch_scalar(&mut tx)
        .await?
        .unwrap_or(0);
        let live: Option<(String, String)> = sql("select token_hash, grp from email_tokens
             where user_id = $1 and purpose = $2 and used_at is null and expires_at > $3
               and failed_attempts < $4
             order by created_at desc limit 1")
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(micros(now))
        .bind(MAX_CODE_FAILURES)
        .fetch_optional(&mut tx)
        .await?;
        let Some((stored, group)) = live.filter(|_| recent_failures < MAX_CODE_FAILURES_PER_HOUR)
        else {
            // The work of a wrong code (a keyed hash, an update that here finds no row, a
            // commit): else the answer's timing would tell whether the address has a live code,
            // and so, after a forgot-password, whether it has an account.
            let presented = code_hash("");
            count_wrong_try(&mut tx, &presented, now).await?;
            tx.commit().await?;
            return Ok(CodeCheck::NoLiveCode);
        };
        let presented = code_hash(&group);
        // Constant-time comparison: the hashes are keyed, but leak nothing by timing either way.
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            stored.as_bytes(),
            presented.as_bytes(),
        )
        .is_ok()
        {
            return Ok(CodeCheck::Matches(stored));
        }
        count_wrong_try(&mut tx, &stored, now).await?;
        tx.commit().await?;
        Ok(CodeCheck::Wrong)
    }

    /// Spends a live sign-in link or code and the rest of its group (the other half); gives
    /// the user, `None` when the token is no longer live.
    pub async fn spend_login_token(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        if !lock_token_owner(&mut tx, token_hash).await? {
            return Ok(None);
        }
        let at = micros(now);
        let spent: Option<(String, String)> =
            sql("update email_tokens set used_at = $1, updated_at = $2
             where token_hash = $3 and purpose in ($4, $5) and used_at is null and expires_at > $6
               and failed_attempts < $7
             returning user_id, grp")
            .bind(at)
            .bind(at)
            .bind(token_hash)
            .bind(TokenPurpose::LoginLink.as_str())
            .bind(TokenPurpose::LoginCode.as_str())
            .bind(at)
            .bind(MAX_CODE_FAILURES)
            .fetch_optional(&mut tx)
            .await?;
        let Some((user_id, group)) = spent else {
            return Ok(None);
        };
        sql("update email_tokens set used_at = $1, updated_at = $2
             where grp = $3 and purpose in ($4, $5) and used_at is null")
        .bind(at)
        .bind(at)
        .bind(group)
        .bind(TokenPurpose::LoginLink.as_str())
        .bind(TokenPurpose::LoginCode.as_str())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(Some(parse_uuid(&user_id)?))
    }

    /// Spends a live token of one of `purposes` (a reset link or code, or an invitation),
    /// kills every other reset link and code of its user, sets the new password hash, marks the
    /// email verified and revokes every session (`SESSION_REVOKED`, reason `password_reset`),
    /// with `effects`. `None` when the token is no longer live.
    pub async fn set_password_by_token(
        &self,
        token_hash: &str,
        purposes: [TokenPurpose; 2],
        hash: &str,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Option<Committed>, StoreError> {
        let mut tx = self.write().await?;
        if !lock_token_owner(&mut tx, token_hash).await? {
            return Ok(None);
        }
        let at = micros(now);
        let spent: Option<String> = sql("update email_tokens set used_at = $1, updated_at = $2
             where token_hash = $3 and purpose in ($4, $5) and used_at is null and expires_at > $6
               and failed_attempts < $7
             returning user_id")
        .bind(at)
        .bind(at)
        .bind(token_hash)
        .bind(purposes[0].as_str())
        .bind(purposes[1].as_str())
        .bind(at)
        .bind(MAX_CODE_FAILURES)
        .fetch_scalar(&mut tx)
        .await?;
        let Some(user_id) = spent else {
            return Ok(None);
        };
        let user_id = parse_uuid(&user_id)?;
        // A reset ends every outstanding reset link and code of the user: this request's other
        // half, and any earlier request's link (new requests replace only the code).
        kill_credential_tokens(&mut tx, user_id, now).await?;
        sql(
            "update users set password_hash = $1, email_verified = $2, updated_at = $3
             where id = $4",
        )
        .bind(hash)
        .bind(true)
        .bind(at)
        .bind(user_id)
        .execute(&mut tx)
        .await?;
        revoke_in(
            &mut tx,
            user_id,
            Revoke::All,
            RevokeReason::PasswordReset,
            now,
        )
        .await?;
        write_effects(&mut tx, effects).await?;
        Ok(Some(tx.commit_telling().await?))
    }
}

/// Locks the user a mailed token belongs to, where the backend locks rows (the lock order of
/// every write path: the user first). False when such a backend finds no token.
pub(super) async fn lock_token_owner(tx: &mut Tx, token_hash: &str) -> Result<bool, StoreError> {
    if tx.dialect.lock_user.is_none() {
        return Ok(true);
    }
    let owner: Option<String> = sql(OWNER_OF_TOKEN)
        .bind(token_hash)
        .fetch_scalar(&mut *tx)
        .await?;
    let Some(owner) = owner else {
        return Ok(false);
    };
    lock_user(tx, parse_uuid(&owner)?).await?;
    Ok(true)
}

/// Counts a wrong try against the code stored as `token_hash`.
async fn count_wrong_try(
    tx: &mut Tx,
    token_hash: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sql(
        "update email_tokens set failed_attempts = failed_attempts + 1, updated_at = $1
         where token_hash = $2",
    )
    .bind(micros(now))
    .bind(token_hash)
    .execute(tx)
    .await?;
    Ok(())
}

/// Spends a live token of `purpose`; gives its user.
async fn spend(
    tx: &mut Tx,
    token_hash: &str,
    purpose: TokenPurpose,
    now: OffsetDateTime,
) -> Result<Option<Uuid>, StoreError> {
    let at = micros(now);
    let user_id: Option<String> = sql("update email_tokens set used_at = $1, updated_at = $2
         where token_hash = $3 and purpose = $4 and used_at is null and expires_at > $5
         returning user_id")
    .bind(at)
    .bind(at)
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(at)
    .fetch_scalar(tx)
    .await?;
    user_id.as_deref().map(parse_uuid).transpose()
}

/// Stores a mailed token (as its hash).
pub(super) async fn insert_token(tx: &mut Tx, token: &NewEmailToken) -> Result<(), StoreError> {
    sql("insert into email_tokens (token_hash, user_id, purpose, grp, created_at, updated_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)")
    .bind(&token.token_hash)
    .bind(token.user_id)
    .bind(token.purpose.as_str())
    .bind(token.group)
    .bind(micros(token.created_at))
    .bind(micros(token.created_at))
    .bind(micros(token.expires_at))
    .execute(tx)
    .await?;
    Ok(())
}

/// Spends every live mailed token that could set a password or open a session — reset links
/// and codes, sign-in links and codes, invitations — of a user whose password was set, who was
/// disabled, or whose address stopped counting as verified: none may outlive that change.
pub(super) async fn kill_credential_tokens(
    tx: &mut Tx,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sql("update email_tokens set used_at = $1, updated_at = $2
         where user_id = $3 and purpose in ($4, $5, $6, $7, $8) and used_at is null")
    .bind(micros(now))
    .bind(micros(now))
    .bind(user_id)
    .bind(TokenPurpose::ResetLink.as_str())
    .bind(TokenPurpose::ResetCode.as_str())
    .bind(TokenPurpose::LoginLink.as_str())
    .bind(TokenPurpose::LoginCode.as_str())
    .bind(TokenPurpose::Invitation.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// Spends the user's live tokens of `purposes` (a new mail replaces the earlier one).
pub(super) async fn kill_tokens(
    tx: &mut Tx,
    user_id: Uuid,
    purposes: &[TokenPurpose],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    lock_user(tx, user_id).await?;
    for purpose in purposes {
        sql("update email_tokens set used_at = $1, updated_at = $2
             where user_id = $3 and purpose = $4 and used_at is null")
        .bind(micros(now))
        .bind(micros(now))
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
