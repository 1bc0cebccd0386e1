//! Mail-based flows: email confirmation, resending it, and password reset by link or code.
//! Answers that must not reveal whether an account exists do the same store work either way and
//! queue any mail before answering.

use super::{Fault, faults_into};
use crate::crypto::random;
use crate::domain::{Email, Event, EventType, User, ValidationErrors};
use crate::mail::MailBody;
use crate::mail::templates::{self, Branding, Rendered};
use crate::state::AppState;
use crate::store::{CodeCheck, Effects, NewEmailToken, NewMail, TokenPurpose};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a confirmation link works.
const VERIFY_TTL: Duration = Duration::hours(24);
/// How long a reset link and code work.
const RESET_TTL: Duration = Duration::hours(1);

/// How a token-spending request can fail.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Unknown, expired, used, or (codes) dead after five wrong tries.
    #[error("invalid token")]
    InvalidToken,
    /// The new password breaks the policy.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(RecoveryError);

/// What proves the right to reset a password.
#[derive(Debug, Clone)]
pub enum ResetProof {
    /// The token from the mailed link.
    Link(String),
    /// The account's email and the mailed 6-digit code.
    Code {
        /// The email, as typed.
        email: String,
        /// The code.
        code: String,
    },
}

/// A verification token and its mail for `user`, to write with whatever change prompts them.
pub(crate) fn verification_effects(
    app: &AppState,
    user: &User,
    now: OffsetDateTime,
) -> (NewEmailToken, NewMail) {
    let token = random::token();
    let stored = NewEmailToken {
        token_hash: random::token_hash(&token),
        user_id: user.id,
        purpose: TokenPurpose::VerifyEmail,
        group: Uuid::now_v7(),
        created_at: now,
        expires_at: now + VERIFY_TTL,
    };
    (
        stored,
        mail(
            app,
            user,
            templates::verification(&branding(app), &token),
            now,
        ),
    )
}

/// A mail to `user` from a rendered template, its bodies sealed for the queue.
pub(crate) fn mail(
    app: &AppState,
    user: &User,
    rendered: Rendered,
    now: OffsetDateTime,
) -> NewMail {
    let id = Uuid::now_v7();
    let body = MailBody {
        text: rendered.text,
        html: rendered.html,
    };
    NewMail {
        id,
        user_id: Some(user.id),
        recipient: user.email.as_str().to_owned(),
        subject: rendered.subject,
        sealed_body: body.seal(&app.sealer, id),
        created_at: now,
    }
}

/// The product name and public URL, as templates need them.
pub(crate) fn branding(app: &AppState) -> Branding<'_> {
    Branding {
        product: &app.config.product_name,
        public_url: &app.config.public_url,
    }
}

/// Spends a confirmation token; the account's email is verified.
pub async fn confirm_email(app: &AppState, token: &str) -> Result<User, RecoveryError> {
    let user = app
        .store
        .confirm_email(&random::token_hash(token), app.clock.now())
        .await?;
    user.ok_or(RecoveryError::InvalidToken)
}

/// Sends a new confirmation mail if `email` belongs to an unverified account. The
/// caller answers the same whatever the case: the mail is queued in the database before it does,
/// so it is not lost if the process stops.
pub async fn resend_confirmation(app: &AppState, email: &str) -> Result<(), Fault> {
    match Email::parse(email) {
        Ok(email) => send_confirmation(app, &email).await,
        Err(_) => Ok(()),
    }
}

async fn send_confirmation(app: &AppState, email: &Email) -> Result<(), Fault> {
    let Some(credentials) = app.store.credentials_by_email(email).await? else {
        return Ok(());
    };
    let user = credentials.user;
    if user.email_verified {
        return Ok(());
    }
    let now = app.clock.now();
    let (token, mail) = verification_effects(app, &user, now);
    let effects = Effects {
        events: Vec::new(),
        mails: vec![mail],
        tokens: vec![token],
    };
    app.store
        .replace_email_tokens(user.id, &[], now, &effects)
        .await?;
    app.mailer.wake();
    Ok(())
}

/// Sends a reset link and code if `email` belongs to an account; the caller answers the
/// same whatever the case. A new request cancels the earlier link and code.
pub async fn forgot_password(app: &AppState, email: &str) -> Result<(), Fault> {
    match Email::parse(email) {
        Ok(email) => send_reset(app, &email).await,
        Err(_) => Ok(()),
    }
}

async fn send_reset(app: &AppState, email: &Email) -> Result<(), Fault> {
    let Some(credentials) = app.store.credentials_by_email(email).await? else {
        return Ok(());
    };
    let user = credentials.user;
    let now = app.clock.now();
    let (token, code, group) = (random::token(), random::code(), Uuid::now_v7());
    let issued = |token_hash: String, purpose| NewEmailToken {
        token_hash,
        user_id: user.id,
        purpose,
        group,
        created_at: now,
        expires_at: now + RESET_TTL,
    };
    let effects = Effects {
        events: vec![Event::new(
            EventType::PasswordResetRequested,
            Some(user.id),
            now,
            json!({"email": user.email.as_str()}),
        )],
        mails: vec![mail(
            app,
            &user,
            templates::reset(&branding(app), &token, &code),
            now,
        )],
        tokens: vec![
            issued(random::token_hash(&token), TokenPurpose::ResetLink),
            issued(
                app.code_key.hash(user.id, &group.to_string(), &code),
                TokenPurpose::ResetCode,
            ),
        ],
    };
    app.store
        .replace_email_tokens(
            user.id,
            &[TokenPurpose::ResetLink, TokenPurpose::ResetCode],
            now,
            &effects,
        )
        .await?;
    app.mailer.wake();
    Ok(())
}

/// Sets a new password with a mailed link or code: every session ends, the email counts as
/// verified, `PASSWORD_RESET` is written and the "password changed" notice mailed.
pub async fn reset_password(
    app: &AppState,
    proof: ResetProof,
    new_password: &str,
) -> Result<(), RecoveryError> {
    let now = app.clock.now();
    let (user, token_hash) = match proof {
        ResetProof::Link(token) => {
            let token_hash = random::token_hash(&token);
            let user = app
                .store
                .email_token_owner(&token_hash, TokenPurpose::ResetLink, now)
                .await?;
            (user.ok_or(RecoveryError::InvalidToken)?, token_hash)
        }
        ResetProof::Code { email, code } => {
            let user = match Email::parse(&email) {
                Ok(email) => app
                    .store
                    .credentials_by_email(&email)
                    .await?
                    .map(|c| c.user),
                Err(_) => None,
            };
            // Anything but six digits cannot be the code, but still counts as a wrong try.
            let code = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                code
            } else {
                String::new()
            };
            // An unknown address is checked against a user that cannot exist, so it does the same
            // work as a known one and tells nothing by its timing.
            let user_id = user.as_ref().map_or(Uuid::nil(), |u| u.id);
            let hash = |group: &str| app.code_key.hash(user_id, group, &code);
            match (app.store.check_reset_code(user_id, &hash, now).await?, user) {
                (CodeCheck::Matches(token_hash), Some(user)) => (user, token_hash),
                _ => return Err(RecoveryError::InvalidToken),
            }
        }
    };
    let mut errors = ValidationErrors::default();
    let password = errors.take(
        "new_password",
        app.config
            .password_policy
            .parse(new_password, Some(&user.email)),
    );
    errors.into_result()?;
    let hash = app.hasher.hash(&password.expect("validated above")).await?;
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::new(
            EventType::PasswordReset,
            Some(user.id),
            now,
            json!({"email": user.email.as_str()}),
        )],
        mails: vec![mail(
            app,
            &user,
            templates::password_changed(&branding(app)),
            now,
        )],
        tokens: Vec::new(),
    };
    let revoked = app
        .store
        .reset_password(&token_hash, &hash, now, &effects)
        .await?;
    let revoked = revoked.ok_or(RecoveryError::InvalidToken)?;
    app.revocations.revoked_here(&revoked, now);
    app.mailer.wake();
    Ok(())
}
