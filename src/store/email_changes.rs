//! Email changes: asked for (recorded by `write_effects`), confirmed from the new address,
//! undone from the old one.

use super::attempts::queue_request_in;
use super::backend::{Tx, sql};
use super::factors::remove_factors_in;
use super::mail::insert_mail;
use super::recovery::{kill_credential_tokens, kill_tokens, lock_token_owner};
use super::sessions::revoke_in;
use super::users::{user_in, write_effects};
use super::{
    Committed, Effects, EmailChangeRecord, NewEmailChange, Revoke, Store, StoreError, TokenPurpose,
    events::insert_event, micros, parse_uuid,
};
use crate::domain::{Email, Event, RevokeReason, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// A recorded change, as its links find it.
struct Change {
    id: String,
    user_id: Uuid,
    old_email: Email,
    new_email: Email,
    session_id: Option<Uuid>,
    created_at: i64,
}

impl Store {
    /// The addresses of the change a live link of `purpose` belongs to. Spends nothing.
    pub async fn email_change_of_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<EmailChangeRecord>, StoreError> {
        let row: Option<(String, String)> = sql("select c.old_email, c.new_email
             from email_tokens t join email_changes c on c.id = t.grp
             where t.token_hash = $1 and t.purpose = $2 and t.used_at is null and t.expires_at > $3")
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(old, new)| EmailChangeRecord {
            old_email: Email::from_trusted(old),
            new_email: Email::from_trusted(new),
        }))
    }

    /// Spends a confirmation link: the account takes the new address (verified), every session
    /// but the one that asked is revoked (reason `email_changed`), every mailed link that went to
    /// the old address dies, and `EMAIL_CHANGED` is written. `None` when the link is not live or
    /// the account's address changed since it was sent; `Conflict` when the new address was
    /// taken meanwhile (nothing is spent then).
    pub async fn confirm_email_change(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(User, Committed)>, StoreError> {
        let mut tx = self.write().await?;
        if !lock_token_owner(&mut tx, token_hash).await? {
            return Ok(None);
        }
        let Some(change) = spend(&mut tx, token_hash, TokenPurpose::EmailChange, now).await? else {
            return Ok(None);
        };
        let user = user_in(&mut tx, change.user_id).await?;
        if user.email != change.old_email {
            return Ok(None);
        }
        ensure_free(&mut tx, &change.new_email, user.id, now).await?;
        set_address(&mut tx, user.id, &change.new_email, false, now).await?;
        sql("update email_changes set confirmed_at = $1 where id = $2")
            .bind(micros(now))
            .bind(&change.id)
            .execute(&mut tx)
            .await?;
        kill_credential_tokens(&mut tx, user.id, now).await?;
        kill_tokens(
            &mut tx,
            user.id,
            &[TokenPurpose::VerifyEmail, TokenPurpose::EmailChange],
            now,
        )
        .await?;
        let keep = change.session_id.map_or(Revoke::All, Revoke::AllBut);
        revoke_in(&mut tx, user.id, keep, RevokeReason::EmailChanged, now).await?;
        let event = Event::email_changed(user.id, &change.old_email, &change.new_email, now);
        insert_event(&mut tx, &event).await?;
        let user = user_in(&mut tx, user.id).await?;
        Ok(Some((user, tx.commit_telling().await?)))
    }

    /// Spends a revert link: the address it was mailed to comes back (verified), the password
    /// and every second factor and passkey are removed, every session is revoked (reason `email_change_reverted`), every other mailed
    /// link of the account dies but the revert links of earlier changes, `EMAIL_CHANGE_REVERTED`
    /// is written, and `effects(user, the address it had)` (the reset mail) with it. `None` when the link is not
    /// live.
    pub async fn revert_email_change(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
        effects: &(dyn Fn(&User, &Email) -> Effects + Sync),
    ) -> Result<Option<(User, Committed)>, StoreError> {
        let mut tx = self.write().await?;
        if !lock_token_owner(&mut tx, token_hash).await? {
            return Ok(None);
        }
        let Some(change) = spend(&mut tx, token_hash, TokenPurpose::EmailRevert, now).await? else {
            return Ok(None);
        };
        let user = user_in(&mut tx, change.user_id).await?;
        if user.email != change.old_email {
            ensure_free(&mut tx, &change.old_email, user.id, now).await?;
        }
        // Whoever asked for the change could sign in: the password they may know goes, and the
        // owner chooses a new one through the reset mailed with this. So do the second factors
        // and passkeys, which that recent sign-in could enrol: the owner enrols theirs again.
        set_address(&mut tx, user.id, &change.old_email, true, now).await?;
        if remove_factors_in(&mut tx, user.id).await? > 0 {
            insert_event(&mut tx, &Event::mfa_disabled(user.id, "all", user.id, now)).await?;
        }
        // The revert links of later changes went to addresses the intruder chose: they must
        // not undo this. Earlier changes' links keep working, so that an intruder's own
        // revert link cannot cancel the owner's.
        sql("update email_tokens set used_at = $1, updated_at = $2
             where user_id = $3 and purpose = $4 and used_at is null
               and grp in (select id from email_changes where user_id = $5 and created_at > $6)")
        .bind(micros(now))
        .bind(micros(now))
        .bind(user.id)
        .bind(TokenPurpose::EmailRevert.as_str())
        .bind(user.id)
        .bind(change.created_at)
        .execute(&mut tx)
        .await?;
        kill_credential_tokens(&mut tx, user.id, now).await?;
        kill_tokens(
            &mut tx,
            user.id,
            &[TokenPurpose::VerifyEmail, TokenPurpose::EmailChange],
            now,
        )
        .await?;
        revoke_in(
            &mut tx,
            user.id,
            Revoke::All,
            RevokeReason::EmailChangeReverted,
            now,
        )
        .await?;
        let had = user.email;
        let event = Event::email_change_reverted(user.id, &change.old_email, &had, now);
        insert_event(&mut tx, &event).await?;
        let user = user_in(&mut tx, user.id).await?;
        write_effects(&mut tx, &effects(&user, &had)).await?;
        Ok(Some((user, tx.commit_telling().await?)))
    }
}

/// Records an asked-for change (its links are written with it) and queues the confirmation
/// mail: the new address must be free, and the change replaces the confirmation link of any
/// earlier one still pending. Earlier revert links stay: they are the owner's way back. In
/// conceal mode a taken address is recorded alike, but its owner gets the queued notice
/// instead of the confirmation (whose link then cannot confirm).
pub(super) async fn record_change(tx: &mut Tx, change: &NewEmailChange) -> Result<(), StoreError> {
    kill_tokens(
        tx,
        change.user_id,
        &[TokenPurpose::EmailChange],
        change.created_at,
    )
    .await?;
    match ensure_free(tx, &change.new_email, change.user_id, change.created_at).await {
        Ok(()) => insert_mail(tx, &change.confirmation).await?,
        Err(StoreError::Conflict) if change.if_taken.is_some() => {
            let notice = change.if_taken.as_ref().expect("checked above");
            let request = super::QueuedRequest {
                subject: &notice.subject,
                purpose: notice.purpose,
                email_sealed: &notice.email_sealed,
            };
            queue_request_in(tx, request, change.created_at).await?;
        }
        Err(error) => return Err(error),
    }
    sql(
        "insert into email_changes (id, user_id, old_email, new_email, session_id, created_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(change.id)
    .bind(change.user_id)
    .bind(change.old_email.as_str())
    .bind(change.new_email.as_str())
    .bind(change.session_id)
    .bind(micros(change.created_at))
    .execute(tx)
    .await?;
    Ok(())
}

/// `Conflict` unless `email` is free for `user_id`: no other account has it, and it is not
/// the vacated address of another account's confirmed change whose revert link still lives.
pub(super) async fn ensure_free(
    tx: &mut Tx,
    email: &Email,
    user_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let holders: Option<i64> = sql("select
            (select count(*) from users where email = $1 and id <> $2)
          + (select count(*) from email_changes c
             where c.old_email = $3 and c.user_id <> $4 and c.confirmed_at is not null
               and exists (select 1 from email_tokens t where t.grp = c.id and t.purpose = $5
                             and t.used_at is null and t.expires_at > $6))")
    .bind(email.as_str())
    .bind(user_id)
    .bind(email.as_str())
    .bind(user_id)
    .bind(TokenPurpose::EmailRevert.as_str())
    .bind(micros(now))
    .fetch_scalar(tx)
    .await?;
    if holders.unwrap_or(0) > 0 {
        return Err(StoreError::Conflict);
    }
    Ok(())
}

/// Gives the account `email`, verified (the link proved the mailbox); `clear_password` also
/// removes its password.
async fn set_address(
    tx: &mut Tx,
    user_id: Uuid,
    email: &Email,
    clear_password: bool,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sql(
        "update users set email = $1, email_verified = $2, updated_at = $3,
            password_hash = case when $4 then null else password_hash end
         where id = $5",
    )
    .bind(email.as_str())
    .bind(true)
    .bind(micros(now))
    .bind(clear_password)
    .bind(user_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Spends a live link of `purpose` that belongs to a change; gives the change.
async fn spend(
    tx: &mut Tx,
    token_hash: &str,
    purpose: TokenPurpose,
    now: OffsetDateTime,
) -> Result<Option<Change>, StoreError> {
    let at = micros(now);
    let group: Option<String> = sql("update email_tokens set used_at = $1, updated_at = $2
         where token_hash = $3 and purpose = $4 and used_at is null and expires_at > $5
         returning grp")
    .bind(at)
    .bind(at)
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(at)
    .fetch_scalar(&mut *tx)
    .await?;
    let Some(group) = group else {
        return Ok(None);
    };
    let row: Option<(String, String, String, Option<String>, i64)> = sql(
        "select user_id, old_email, new_email, session_id, created_at from email_changes
         where id = $1",
    )
    .bind(&group)
    .fetch_optional(tx)
    .await?;
    row.map(|(user_id, old, new, session, created_at)| {
        Ok(Change {
            id: group.clone(),
            user_id: parse_uuid(&user_id)?,
            old_email: Email::from_trusted(old),
            new_email: Email::from_trusted(new),
            session_id: session.as_deref().map(parse_uuid).transpose()?,
            created_at,
        })
    })
    .transpose()
}
