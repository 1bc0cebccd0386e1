//! Invitations: an admin creates an account without a password, and a mailed link
//! (`LATCHKEY_INVITATION_TTL`, default 7 days) lets its owner choose one. Accepting verifies
//! the address (the link proves the mailbox) and signs the new user in.

use super::accounts::{NewAccount, Origin, RegisterError, Registered, register};
use super::mfa::{self, MfaError};
use super::recovery::{link, linked_mail, mail};
use super::{ClientInfo, Fault, TokenPair};
use crate::crypto::random;
use crate::domain::{Assurance, Event, Role, User, ValidationErrors};
use crate::state::AppState;
use crate::store::{Effects, NewEmailToken, NewMail, TokenPurpose};
use crate::templates::Mail;
use time::OffsetDateTime;
use uuid::Uuid;

/// Why an invitation was not made or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// The address has an account already.
    #[error("email taken")]
    EmailTaken,
    /// The link is unknown, expired or used.
    #[error("invalid token")]
    InvalidToken,
    /// The chosen password is refused by the policy.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// An admin disabled the account before it was accepted.
    #[error("account disabled")]
    AccountDisabled,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

super::faults_into!(InvitationError);

/// Creates the invited account (`account` carries no password) with `role`, its link and
/// mail and `USER_REGISTERED` and `USER_INVITED`, in one transaction.
pub async fn invite(
    app: &AppState,
    by: Uuid,
    account: NewAccount,
    role: Role,
) -> Result<User, InvitationError> {
    let account = NewAccount {
        password: None,
        ..account
    };
    match register(app, account, Origin::Invitation { by, role }).await {
        Ok(Registered::Created(user)) => Ok(user),
        Ok(Registered::LoggedIn(pair)) => Ok(pair.user),
        Err(RegisterError::EmailTaken) => Err(InvitationError::EmailTaken),
        Err(RegisterError::Fault(fault)) => Err(fault.into()),
    }
}

/// The invitation link's token, stored as its hash, and its mail.
pub(crate) fn invitation_effects(
    app: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> (NewEmailToken, NewMail) {
    let expires_at = now + app.config.mail.invitation_ttl;
    linked_mail(user, TokenPurpose::Invitation, expires_at, now, |token| {
        let link = link(app, "accept-invitation", token);
        let days = app.config.mail.invitation_ttl.whole_days().max(1);
        mail(app, user, Mail::Invitation { link: &link, days }, now)
    })
}

/// Accepts an invitation: the password (judged by the policy) is set, the address verified,
/// the link spent and `INVITATION_ACCEPTED` written. A refused password spends nothing.
pub async fn accept(app: &AppState, token: &str, password: &str) -> Result<User, InvitationError> {
    let token_hash = random::token_hash(token);
    let now = app.clock.now();
    let owner = app
        .store
        .email_token_owner(&token_hash, TokenPurpose::Invitation, now)
        .await?
        .ok_or(InvitationError::InvalidToken)?;
    let credentials = app
        .store
        .credentials(owner.id)
        .await?
        .ok_or(InvitationError::InvalidToken)?;
    // An account already in use (a password set, the address verified by a reset) is no
    // longer the invitation's to give: the link must not replace its password.
    if credentials.password_hash.is_some() || credentials.user.email_verified {
        return Err(InvitationError::InvalidToken);
    }
    if credentials.user.disabled {
        return Err(InvitationError::AccountDisabled);
    }
    let user = credentials.user;
    let password = app
        .config
        .password_policy
        .parse(password, Some(&user.email))?;
    let hash = app.hasher.hash(&password).await?;
    let now = app.clock.now();
    let effects = Effects {
        events: vec![
            Event::invitation_accepted(&user, now),
            Event::email_verified(user.id, &user.email, None, now),
        ],
        ..Effects::default()
    };
    let committed = app
        .store
        .set_password_by_token(
            &token_hash,
            [TokenPurpose::Invitation, TokenPurpose::Invitation],
            &hash,
            now,
            &effects,
        )
        .await?
        .ok_or(InvitationError::InvalidToken)?;
    app.after_commit(committed);
    Ok(user)
}

/// [`accept`], then the new user's first session.
pub async fn accept_and_sign_in(
    app: &AppState,
    token: &str,
    password: &str,
    client: ClientInfo,
) -> Result<TokenPair, InvitationError> {
    let user = accept(app, token, password).await?;
    let credentials = app
        .store
        .credentials(user.id)
        .await?
        .ok_or(InvitationError::InvalidToken)?;
    if credentials.user.disabled {
        return Err(InvitationError::AccountDisabled);
    }
    mfa::open_session(
        app,
        credentials.user,
        credentials.password_hash.as_deref(),
        client,
        Assurance::password(app.clock.now()),
    )
    .await
    .map_err(|error| match error {
        MfaError::AccountDisabled => InvitationError::AccountDisabled,
        MfaError::Fault(fault) => InvitationError::Fault(fault),
        _ => InvitationError::InvalidToken,
    })
}
