//! Mail-based flows: email confirmation, resending it, and password reset by link or code.
//! Answers that must not reveal whether an account exists do the same store work either way and
//! queue any mail before answering.

use super::attempts::{PasswordCheck, check_password, settle};
use super::mail_requests;
use super::{ClientInfo, Fault, faults_into};
use crate::crypto::random;
use crate::domain::{Email, Event, User, ValidationErrors};
use crate::mail::MailBody;
use crate::state::AppState;
use crate::store::{CodeCheck, Effects, NewEmailToken, NewMail, TokenPurpose};
use crate::templates::{Language, Mail};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a confirmation link works.
pub(crate) const VERIFY_TTL: Duration = Duration::hours(24);
/// How long a reset link and code work.
pub(crate) const RESET_TTL: Duration = Duration::hours(1);

/// How a token-spending request can fail.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Unknown, expired, used, or (codes) dead after five wrong tries.
    #[error("invalid token")]
    InvalidToken,
    /// The confirmation needs the account's password, and it is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The new password breaks the policy.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(RecoveryError);

/// What proves the mailbox: a reset's or a sign-in's mailed link or code.
#[derive(Debug, Clone)]
pub enum MailedProof {
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
    linked_mail(
        user,
        TokenPurpose::VerifyEmail,
        now + VERIFY_TTL,
        now,
        |token| {
            let link = link(app, "confirm-email", token);
            mail(app, user, Mail::Verification { link: &link }, now)
        },
    )
}

/// A mailed link's token of `purpose` for `user` (stored as its hash, live until
/// `expires_at`) and the mail `make_mail` writes around the token.
pub(crate) fn linked_mail(
    user: &User,
    purpose: TokenPurpose,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    make_mail: impl FnOnce(&str) -> NewMail,
) -> (NewEmailToken, NewMail) {
    let token = random::token();
    let stored = NewEmailToken {
        token_hash: random::token_hash(&token),
        user_id: user.id,
        purpose,
        group: crate::clock::id_at(now),
        created_at: now,
        expires_at,
    };
    (stored, make_mail(&token))
}

/// The mail `template` to `user`, in the user's language, its bodies sealed for the queue.
pub(crate) fn mail(
    app: &AppState,
    user: &User,
    template: Mail<'_>,
    now: OffsetDateTime,
) -> NewMail {
    let rendered = app.templates.mail(language_of(user), template);
    let id = crate::clock::id_at(now);
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

/// The language `user`'s mails are written in: the account's tag when a shipped language
/// answers it, else English.
pub(crate) fn language_of(user: &User) -> Language {
    user.locale
        .as_ref()
        .and_then(|locale| Language::of_tag(locale.as_str()))
        .unwrap_or(Language::English)
}

/// The link to the hosted page `page` for `token`: built only from the configured public URL,
/// never from anything in a request.
pub(crate) fn link(app: &AppState, page: &str, token: &str) -> String {
    format!("{}/{page}?token={token}", app.config.server.public_url)
}

/// Spends a confirmation token; the account's email is verified. The first confirmation of a
/// self-registered account also needs its password: the link proves control of the mailbox,
/// not authorship of the account, so a victim clicking a confirmation mail for an account an
/// attacker registered with the victim's address ("pre-hijacking") confirms nothing. The
/// password goes through the login's failure accounting.
pub async fn confirm_email(
    app: &AppState,
    token: &str,
    password: Option<&str>,
    client: &ClientInfo,
) -> Result<User, RecoveryError> {
    let token_hash = random::token_hash(token);
    let owner = app
        .store
        .email_token_owner(&token_hash, TokenPurpose::VerifyEmail, app.clock.now())
        .await?
        .ok_or(RecoveryError::InvalidToken)?;
    let credentials = app
        .store
        .credentials(owner.id)
        .await?
        .ok_or(RecoveryError::InvalidToken)?;
    if credentials.self_registered && !credentials.user.email_verified {
        let Some(password) = password else {
            return Err(
                ValidationErrors::one("password", "is required to confirm this account").into(),
            );
        };
        let check = check_password(
            app,
            Some(&credentials.user.email),
            Some(&credentials.user),
            credentials.password_hash.as_deref(),
            password,
            client,
            true,
        )
        .await?;
        let PasswordCheck::Matches { attempt, .. } = check else {
            return Err(RecoveryError::InvalidCredentials);
        };
        settle(app, attempt.as_ref()).await?;
    }
    let user = app
        .store
        .confirm_email(&token_hash, app.clock.now())
        .await?;
    user.ok_or(RecoveryError::InvalidToken)
}

/// Whether confirming with this token needs the account's password (a self-registered account
/// not yet verified); false for a token that does not work, which the confirmation then says.
/// Spends nothing.
pub async fn confirmation_needs_password(app: &AppState, token: &str) -> Result<bool, Fault> {
    let owner = app
        .store
        .email_token_owner(
            &random::token_hash(token),
            TokenPurpose::VerifyEmail,
            app.clock.now(),
        )
        .await?;
    let Some(owner) = owner else {
        return Ok(false);
    };
    let credentials = app.store.credentials(owner.id).await?;
    Ok(credentials.is_some_and(|c| c.self_registered && !c.user.email_verified))
}

/// Asks for a new confirmation mail to `email`; only an existing, unverified account gets
/// one. See [`forgot_password`] for why the answer never looks the account up.
pub async fn resend_confirmation(app: &AppState, email: &str) -> Result<(), Fault> {
    mail_requests::queue_typed(app, email, mail_requests::RESEND_CONFIRMATION).await
}

/// Asks for a reset link and code for `email`; only an existing account gets them. The answer
/// does the same database work for every address, in one transaction: it queues the request
/// (the address sealed) under the address's keyed hash, and the account is looked up and
/// mailed after the answer, by [`mail_requests::process_mail_requests`]. So neither the answer's timing nor
/// any counter tells whether the address has an account. The request is in the database before
/// the answer, so it is not lost if the process stops.
pub async fn forgot_password(app: &AppState, email: &str) -> Result<(), Fault> {
    mail_requests::queue_typed(app, email, mail_requests::FORGOT_PASSWORD).await
}

/// Checks a mailed code (`purpose`: a reset or a sign-in code) for the address as typed: the
/// owner and the hash of the live code it matches, or `None` (a wrong try counted). An unknown
/// address is checked against a user that cannot exist, so it does the same work as a known one
/// and tells nothing by its timing; anything but six digits cannot be the code but still counts.
pub(crate) async fn check_mailed_code(
    app: &AppState,
    email: &str,
    code: &str,
    purpose: TokenPurpose,
) -> Result<Option<(User, String)>, Fault> {
    let user = match Email::parse(email) {
        Ok(email) => app
            .store
            .credentials_by_email(&email)
            .await?
            .map(|c| c.user),
        Err(_) => None,
    };
    let code = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        code
    } else {
        ""
    };
    let user_id = user.as_ref().map_or(Uuid::nil(), |u| u.id);
    let hash = |group: &str| app.code_key.hash(user_id, group, code);
    let check = app
        .store
        .check_code(user_id, purpose, &hash, app.clock.now())
        .await?;
    Ok(match (check, user) {
        (CodeCheck::Matches(token_hash), Some(user)) => Some((user, token_hash)),
        _ => None,
    })
}

/// Sets a new password with a mailed link or code: every session ends, the email counts as
/// verified, `PASSWORD_RESET` is written and the "password changed" notice mailed.
pub async fn reset_password(
    app: &AppState,
    proof: MailedProof,
    new_password: &str,
) -> Result<(), RecoveryError> {
    let now = app.clock.now();
    let (user, token_hash) = match proof {
        MailedProof::Link(token) => {
            let token_hash = random::token_hash(&token);
            let user = app
                .store
                .email_token_owner(&token_hash, TokenPurpose::ResetLink, now)
                .await?;
            (user.ok_or(RecoveryError::InvalidToken)?, token_hash)
        }
        MailedProof::Code { email, code } => {
            check_mailed_code(app, &email, &code, TokenPurpose::ResetCode)
                .await?
                .ok_or(RecoveryError::InvalidToken)?
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
        events: vec![Event::password_reset(&user, now)],
        mails: vec![mail(app, &user, Mail::PasswordChanged, now)],
        ..Effects::default()
    };
    let committed = app
        .store
        .set_password_by_token(
            &token_hash,
            [TokenPurpose::ResetLink, TokenPurpose::ResetCode],
            &hash,
            now,
            &effects,
        )
        .await?
        .ok_or(RecoveryError::InvalidToken)?;
    app.after_commit(committed);
    // A reset by mail proves the mailbox: slow-down and suspension of password sign-in end.
    app.store
        .forget_password_attempts(&app.code_key.subject(&user.email))
        .await?;
    Ok(())
}
