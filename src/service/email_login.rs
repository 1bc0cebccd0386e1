//! Sign-in by email: a mailed link and 6-digit code (`LATCHKEY_EMAIL_LOGIN_TTL`, 5 wrong tries
//! per code), asked for with the same answer and the same database work whether or not the
//! address has an account. Spending either opens a session whose only method is `email`; an
//! account with a second factor still has to give it.

use super::mail_requests::{self, EMAIL_LOGIN};
use super::mfa::{self, MfaError};
use super::recovery::{MailedProof, check_mailed_code, link, mail};
use super::{ClientInfo, Fault, TokenPair};
use crate::crypto::random;
use crate::domain::{Assurance, AuthMethod, Event, User};
use crate::state::AppState;
use crate::store::{Committed, Effects, NewEmailToken, TokenPurpose};
use crate::templates::Mail;

/// Why a sign-in by email did not open a session.
#[derive(Debug, thiserror::Error)]
pub enum EmailLoginError {
    /// `LATCHKEY_EMAIL_LOGIN=false`.
    #[error("sign-in by email is off")]
    Off,
    /// The link or code is unknown, expired, used or out of tries.
    #[error("invalid token")]
    InvalidToken,
    /// An admin disabled the account after the mail went out.
    #[error("account disabled")]
    AccountDisabled,
    /// The account has a second factor: no session until it is given.
    #[error("second factor required")]
    MfaRequired(mfa::SecondStep),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

super::faults_into!(EmailLoginError);

/// Asks for a sign-in mail to `email`: the request is queued under the address's keyed hash,
/// and the account is looked up after the answer (see [`mail_requests::process_mail_requests`]).
pub async fn request(app: &AppState, email: &str) -> Result<(), EmailLoginError> {
    if !app.config.mail.email_login {
        return Err(EmailLoginError::Off);
    }
    Ok(mail_requests::queue_typed(app, email, EMAIL_LOGIN).await?)
}

/// Mails a new sign-in link and code to `user`. A new request cancels earlier codes but not
/// earlier links, so that nobody can cancel the owner's link by asking again. Only an enabled,
/// verified account gets one: an unverified address may have been registered by someone else
/// with a password they know, and a link must not make that account theirs to keep.
pub(crate) async fn send(app: &AppState, user: Option<&User>) -> Result<Committed, Fault> {
    let Some(user) = user.filter(|user| user.email_verified && !user.disabled) else {
        return Ok(Committed::default());
    };
    let now = app.clock.now();
    let (token, code, group) = (random::token(), random::code(), crate::clock::id_at(now));
    let issued = |token_hash: String, purpose| NewEmailToken {
        token_hash,
        user_id: user.id,
        purpose,
        group,
        created_at: now,
        expires_at: now + app.config.mail.email_login_ttl,
    };
    let template = Mail::EmailLogin {
        link: &link(app, "email-login", &token),
        code: &code,
        minutes: app.config.mail.email_login_ttl.whole_minutes(),
    };
    let effects = Effects {
        mails: vec![mail(app, user, template, now)],
        tokens: vec![
            issued(random::token_hash(&token), TokenPurpose::LoginLink),
            issued(
                app.code_key.hash(user.id, &group.to_string(), &code),
                TokenPurpose::LoginCode,
            ),
        ],
        ..Effects::default()
    };
    Ok(app
        .store
        .replace_email_tokens(user.id, &[TokenPurpose::LoginCode], now, &effects)
        .await?)
}

/// The address a live sign-in link signs in, for its page to show before the button (so that
/// nobody signs in to an account mailed by someone else unawares). Spends nothing.
pub async fn link_address(app: &AppState, token: &str) -> Result<Option<String>, EmailLoginError> {
    if !app.config.mail.email_login {
        return Err(EmailLoginError::Off);
    }
    let owner = app
        .store
        .email_token_owner(
            &random::token_hash(token),
            TokenPurpose::LoginLink,
            app.clock.now(),
        )
        .await?;
    Ok(owner.map(|user| user.email.as_str().to_owned()))
}

/// Spends a mailed link or code and opens a session (`amr: ["email"]`, `aal1`), or asks for
/// the account's second factor.
pub async fn verify(
    app: &AppState,
    proof: MailedProof,
    client: ClientInfo,
) -> Result<TokenPair, EmailLoginError> {
    if !app.config.mail.email_login {
        return Err(EmailLoginError::Off);
    }
    let now = app.clock.now();
    let token_hash = match proof {
        MailedProof::Link(token) => random::token_hash(&token),
        MailedProof::Code { email, code } => {
            check_mailed_code(app, &email, &code, TokenPurpose::LoginCode)
                .await?
                .ok_or(EmailLoginError::InvalidToken)?
                .1
        }
    };
    let user_id = app
        .store
        .spend_login_token(&token_hash, now)
        .await?
        .ok_or(EmailLoginError::InvalidToken)?;
    let credentials = app
        .store
        .credentials(user_id)
        .await?
        .ok_or(EmailLoginError::InvalidToken)?;
    let user = credentials.user;
    // Verification withdrawn since the mail went out: the account may no longer be its owner's.
    if !user.email_verified {
        return Err(EmailLoginError::InvalidToken);
    }
    if user.disabled {
        let event = Event::login_failed(
            Some(user.id),
            Some(&user.email),
            crate::domain::LoginFailure::AccountDisabled,
            now,
        );
        app.store.append_event(&event).await?;
        return Err(EmailLoginError::AccountDisabled);
    }
    let password_hash = credentials.password_hash.as_deref();
    let assurance = Assurance::of(now, &[AuthMethod::Email]);
    let factors = app.store.factors(user.id).await?;
    if factors.any() {
        let step = mfa::begin_second_step(
            app,
            &user,
            password_hash.unwrap_or_default(),
            &factors,
            client,
            assurance,
        )
        .await?;
        return Err(EmailLoginError::MfaRequired(step));
    }
    mfa::open_session(app, user, password_hash, client, assurance)
        .await
        .map_err(|error| match error {
            MfaError::AccountDisabled => EmailLoginError::AccountDisabled,
            MfaError::Fault(fault) => EmailLoginError::Fault(fault),
            // The account changed between the spend and the session: the proof is gone.
            _ => EmailLoginError::InvalidToken,
        })
}
