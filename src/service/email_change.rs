//! Email change with double confirmation: the new address gets a link that confirms the
//! change, the old one a notice with a link that undoes it (`LATCHKEY_EMAIL_REVERT_TTL`,
//! default 7 days). Nothing changes until the new address confirms; undoing brings the old
//! address back, signs every device out, removes the password, second factors and passkeys and
//! mails a reset, so that an intruder who moved the account to their own address loses it
//! again.

use super::mail_requests::{REGISTRATION_ATTEMPT, reset_tokens, seal_request};
use super::mfa::{self, MfaError};
use super::recovery::{VERIFY_TTL, link, mail};
use super::{Fault, Principal};
use crate::crypto::random;
use crate::domain::{Email, Event, User, ValidationErrors};
use crate::state::AppState;
use crate::store::{
    ConcealedRequest, Effects, EmailChangeRecord, NewEmailChange, NewEmailToken, StoreError,
    TokenPurpose,
};
use crate::templates::Mail;
use time::OffsetDateTime;
use uuid::Uuid;

/// Why an email change was not asked for, confirmed or undone.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// The new address is another account's (or reserved for one while its change can be
    /// undone).
    #[error("email taken")]
    EmailTaken,
    /// The link is unknown, expired, used, or the account's address changed since.
    #[error("invalid token")]
    InvalidToken,
    /// The address is malformed or already the account's.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The caller's authentication is too old for this.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// The caller's account is gone.
    #[error("account gone")]
    Gone,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

super::faults_into!(EmailChangeError);

/// The caller asks to move their account to `new_email` (needs a recent authentication). In
/// conceal mode a taken address costs the same writes and mails the caller's address the same
/// notice as a free one; its owner gets a notice (at most one an hour) instead of a
/// confirmation link.
pub async fn request(
    app: &AppState,
    principal: &Principal,
    new_email: &str,
) -> Result<(), EmailChangeError> {
    mfa::require_recent(app, principal).map_err(|error| match error {
        MfaError::Fault(fault) => EmailChangeError::Fault(fault),
        _ => EmailChangeError::ReauthenticationRequired,
    })?;
    let mut errors = ValidationErrors::default();
    let new_email = errors.take("new_email", Email::parse(new_email));
    let new_email = errors.and(new_email)?;
    let user = app
        .store
        .user(principal.user_id)
        .await?
        .ok_or(EmailChangeError::Gone)?;
    let asked = Asked {
        session: Some(principal.session_id),
        by: None,
        conceal: app.config.conceal_existing_accounts,
    };
    write_request(app, &user, new_email, asked).await
}

/// An admin's change of `user`'s address: the same mails as the user's own request, and no
/// session survives the confirmation.
pub(crate) fn admin_request_effects(
    app: &AppState,
    user: &User,
    new_email: Email,
    by: Uuid,
    now: OffsetDateTime,
) -> Effects {
    request_effects(
        app,
        user,
        new_email,
        Asked {
            session: None,
            by: Some(by),
            conceal: false,
        },
        now,
    )
}

/// Who asked for a change.
#[derive(Debug, Clone, Copy)]
struct Asked {
    /// The user's session that asked; it survives the confirmation.
    session: Option<Uuid>,
    /// The admin who asked.
    by: Option<Uuid>,
    /// Conceal mode, for a user's own request: a taken address must look like a free one.
    conceal: bool,
}

async fn write_request(
    app: &AppState,
    user: &User,
    new_email: Email,
    asked: Asked,
) -> Result<(), EmailChangeError> {
    if new_email == user.email {
        return Err(ValidationErrors::one("new_email", "is already the account's address").into());
    }
    let now = app.clock.now();
    let effects = request_effects(app, user, new_email, asked, now);
    match app
        .store
        .replace_email_tokens(user.id, &[], now, &effects)
        .await
    {
        Ok(committed) => {
            app.after_commit(committed);
            Ok(())
        }
        Err(StoreError::Conflict) => Err(EmailChangeError::EmailTaken),
        Err(error) => Err(error.into()),
    }
}

/// The change's record, its two links (one group, the change's id) and their mails, and
/// `EMAIL_CHANGE_REQUESTED`. An address never verified gets no revert link: it was never
/// shown to be the owner's, so it is neither mailed one nor kept reserved.
fn request_effects(
    app: &AppState,
    user: &User,
    new_email: Email,
    asked: Asked,
    now: OffsetDateTime,
) -> Effects {
    let id = crate::clock::id_at(now);
    let issued = |token: &str, purpose, expires_at| NewEmailToken {
        token_hash: random::token_hash(token),
        user_id: user.id,
        purpose,
        group: id,
        created_at: now,
        expires_at,
    };
    let (confirm, revert) = (random::token(), random::token());
    // The confirmation goes to the new address, in the account's language.
    let moved = User {
        email: new_email.clone(),
        ..user.clone()
    };
    let confirm_mail = Mail::EmailChangeConfirm {
        link: &link(app, "confirm-email-change", &confirm),
        email: new_email.as_str(),
    };
    let revert_ttl = app.config.mail.email_revert_ttl;
    let notice = Mail::EmailChangeNotice {
        link: &link(app, "revert-email-change", &revert),
        new_email: new_email.as_str(),
        days: revert_ttl.whole_days(),
        by_admin: asked.by.is_some(),
    };
    let mut tokens = vec![issued(
        &confirm,
        TokenPurpose::EmailChange,
        now + VERIFY_TTL,
    )];
    let mut mails = Vec::new();
    if user.email_verified {
        tokens.push(issued(&revert, TokenPurpose::EmailRevert, now + revert_ttl));
        mails.push(mail(app, user, notice, now));
    }
    let if_taken = asked.conceal.then(|| {
        let (subject, email_sealed) = seal_request(app, &new_email, REGISTRATION_ATTEMPT);
        ConcealedRequest {
            subject,
            purpose: REGISTRATION_ATTEMPT,
            email_sealed,
        }
    });
    let confirmation = mail(app, &moved, confirm_mail, now);
    Effects {
        events: vec![Event::email_change_requested(
            user.id,
            &user.email,
            &new_email,
            asked.by,
            now,
        )],
        mails,
        tokens,
        email_change: Some(NewEmailChange {
            id,
            user_id: user.id,
            old_email: user.email.clone(),
            new_email,
            session_id: asked.session,
            created_at: now,
            confirmation,
            if_taken,
        }),
    }
}

/// Which of a change's two mailed links.
#[derive(Debug, Clone, Copy)]
pub enum ChangeLink {
    /// The confirmation, mailed to the new address.
    Confirm,
    /// The undo, mailed to the old address.
    Revert,
}

/// The addresses a live link of `kind` names, for its page. Spends nothing.
pub async fn addresses_of_link(
    app: &AppState,
    token: &str,
    kind: ChangeLink,
) -> Result<Option<EmailChangeRecord>, Fault> {
    let purpose = match kind {
        ChangeLink::Confirm => TokenPurpose::EmailChange,
        ChangeLink::Revert => TokenPurpose::EmailRevert,
    };
    Ok(app
        .store
        .email_change_of_token(&random::token_hash(token), purpose, app.clock.now())
        .await?)
}

/// Confirms a change with the link mailed to the new address: the account takes it, verified,
/// and every session but the one that asked is revoked.
pub async fn confirm(app: &AppState, token: &str) -> Result<User, EmailChangeError> {
    let confirmed = app
        .store
        .confirm_email_change(&random::token_hash(token), app.clock.now())
        .await;
    let (user, committed) = match confirmed {
        Err(StoreError::Conflict) => return Err(EmailChangeError::EmailTaken),
        confirmed => confirmed?.ok_or(EmailChangeError::InvalidToken)?,
    };
    app.after_commit(committed);
    Ok(user)
}

/// Undoes a change with the link mailed to the old address: it is the account's again,
/// every session is revoked, the password, second factors and passkeys removed, and a reset
/// link and code mailed to it (which is also the notice of the undoing).
pub async fn revert(app: &AppState, token: &str) -> Result<User, EmailChangeError> {
    let now = app.clock.now();
    let effects = |user: &User, had: &Email| {
        let (token, code, tokens) = reset_tokens(app, user, now);
        let reverted = Mail::EmailChangeReverted {
            link: &link(app, "reset-password", &token),
            code: &code,
            reverted_email: had.as_str(),
        };
        Effects {
            events: vec![Event::password_reset_requested(user, now)],
            mails: vec![mail(app, user, reverted, now)],
            tokens,
            email_change: None,
        }
    };
    let reverted = app
        .store
        .revert_email_change(&random::token_hash(token), now, &effects)
        .await;
    let (user, committed) = match reverted {
        // The old address is reserved while the link lives, so another account cannot hold
        // it; should one all the same, the link cannot do its work.
        Err(StoreError::Conflict) => return Err(EmailChangeError::InvalidToken),
        reverted => reverted?.ok_or(EmailChangeError::InvalidToken)?,
    };
    app.after_commit(committed);
    Ok(user)
}
