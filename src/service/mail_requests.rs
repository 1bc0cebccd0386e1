//! Mail requests: what an answer that must not reveal whether an account exists queues instead
//! of looking the account up, and the worker that works them off after the answer, mailing
//! only addresses with an account.

use super::Fault;
use super::recovery::{RESET_TTL, link, mail, verification_effects};
use crate::crypto::random;
use crate::domain::{Email, Event, User};
use crate::state::AppState;
use crate::store::{Committed, Effects, NewEmailToken, TokenPurpose};
use crate::templates::Mail;
use time::Duration;

/// The queued request kinds.
pub(crate) const FORGOT_PASSWORD: &str = "forgot_password";
pub(crate) const RESEND_CONFIRMATION: &str = "resend_confirmation";
/// Password sign-in was suspended for the day: the owner gets a way in, once a day.
pub(crate) const LOGIN_SUSPENDED: &str = "login_suspended";
/// A sign-in link and code asked for (`POST /auth/email-login`).
pub(crate) const EMAIL_LOGIN: &str = "email_login";
/// Someone tried to register (in conceal mode) an address that has an account: its owner is
/// told, at most once an hour.
pub(crate) const REGISTRATION_ATTEMPT: &str = "registration_attempt";
/// A registration (in conceal mode) that created its account: nothing to mail; the row is
/// written only so that both registrations cost the same writes.
pub(crate) const REGISTERED: &str = "registered";

/// Queues a request for a typed address; one that cannot be an address is dropped.
pub(crate) async fn queue_typed(app: &AppState, email: &str, purpose: &str) -> Result<(), Fault> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    queue_request(app, &email, purpose).await
}

/// The keyed hash under which `email`'s requests are queued, and the address sealed for a
/// request of `purpose`.
pub(crate) fn seal_request(app: &AppState, email: &Email, purpose: &str) -> (String, Vec<u8>) {
    let subject = app.code_key.subject(email);
    let sealed = app.sealer.seal(
        email.as_str().as_bytes(),
        &request_binding(&subject, purpose),
    );
    (subject, sealed)
}

/// Queues a mail request for `email`: one upsert, the same whether or not it has an account.
pub(crate) async fn queue_request(
    app: &AppState,
    email: &Email,
    purpose: &str,
) -> Result<(), Fault> {
    let (subject, sealed) = seal_request(app, email, purpose);
    let committed = app
        .store
        .queue_mail_request(&subject, purpose, app.clock.now(), &sealed)
        .await?;
    app.after_commit(committed);
    Ok(())
}

/// How long a worker holds a mail request: far longer than looking an account up and queuing
/// its mail takes.
const REQUEST_LEASE: Duration = Duration::minutes(1);

/// What a queued request's sealed address is bound to, so it cannot be moved to another row.
fn request_binding(subject: &str, purpose: &str) -> String {
    format!("mail_request:{subject}:{purpose}")
}

/// Works off the queued mail requests, after their answers: an address with an account gets
/// its reset or confirmation mail (a new request cancels the earlier link and code); any other
/// gets nothing. Gives how many requests were taken.
pub async fn process_mail_requests(app: &AppState) -> Result<usize, Fault> {
    let mut taken = 0;
    while let Some(request) = app
        .store
        .claim_mail_request(app.clock.now(), REQUEST_LEASE)
        .await?
    {
        taken += 1;
        let binding = request_binding(&request.subject, &request.purpose);
        let opened = app
            .sealer
            .open(&request.email_sealed, &binding)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(email) = opened.map(Email::from_trusted) else {
            tracing::warn!(
                purpose = request.purpose,
                "a queued mail request cannot be opened; dropped"
            );
            app.store
                .mail_request_done(&request, app.clock.now())
                .await?;
            continue;
        };
        let user = app
            .store
            .credentials_by_email(&email)
            .await?
            .map(|c| c.user);
        let committed = match request.purpose.as_str() {
            FORGOT_PASSWORD => send_reset(app, &email, user.as_ref(), ResetMail::Requested).await?,
            RESEND_CONFIRMATION => send_confirmation(app, &email, user.as_ref()).await?,
            LOGIN_SUSPENDED => {
                send_reset(app, &email, user.as_ref(), ResetMail::LoginSuspended).await?
            }
            REGISTRATION_ATTEMPT => send_registration_notice(app, &email, user.as_ref()).await?,
            EMAIL_LOGIN => super::email_login::send(app, user.as_ref()).await?,
            REGISTERED => Committed::default(),
            other => {
                tracing::warn!(purpose = other, "unknown queued mail request; dropped");
                Committed::default()
            }
        };
        // Done only once its mail is queued: a worker that dies before leaves the request to
        // the next one when the claim runs out (at least once, never lost).
        app.store
            .mail_request_done(&request, app.clock.now())
            .await?;
        app.after_commit(committed);
    }
    Ok(taken)
}

/// Tells `owner` that someone tried to register their address: at most once an hour per
/// address, so that the notice cannot flood the owner's mailbox.
async fn send_registration_notice(
    app: &AppState,
    email: &Email,
    owner: Option<&User>,
) -> Result<Committed, Fault> {
    let Some(owner) = owner else {
        return Ok(Committed::default());
    };
    let now = app.clock.now();
    let effects = Effects {
        mails: vec![mail(app, owner, Mail::RegistrationAttempt, now)],
        ..Effects::default()
    };
    Ok(app
        .store
        .send_throttled(
            &app.code_key.subject(email),
            REGISTRATION_ATTEMPT,
            now,
            Some(now - Duration::hours(1)),
            Some((owner.id, &[][..], &effects)),
        )
        .await?)
}

/// A new confirmation mail for `user`, when it is the (still unverified) account of `email`.
async fn send_confirmation(
    app: &AppState,
    email: &Email,
    user: Option<&User>,
) -> Result<Committed, Fault> {
    let Some(user) = user.filter(|user| !user.email_verified) else {
        return Ok(Committed::default());
    };
    let now = app.clock.now();
    let (token, mail) = verification_effects(app, user, now);
    let effects = Effects {
        events: Vec::new(),
        mails: vec![mail],
        tokens: vec![token],
        email_change: None,
    };
    Ok(app
        .store
        .send_throttled(
            &app.code_key.subject(email),
            RESEND_CONFIRMATION,
            now,
            None,
            Some((user.id, &[][..], &effects)),
        )
        .await?)
}

/// A new reset link and code for `user`, live for an hour: the link's token, the code, and
/// their rows (stored as hashes, in one group: using one spends the other).
pub(crate) fn reset_tokens(
    app: &AppState,
    user: &User,
    now: time::OffsetDateTime,
) -> (String, String, Vec<NewEmailToken>) {
    let (token, code, group) = (random::token(), random::code(), crate::clock::id_at(now));
    let issued = |token_hash: String, purpose| NewEmailToken {
        token_hash,
        user_id: user.id,
        purpose,
        group,
        created_at: now,
        expires_at: now + RESET_TTL,
    };
    let rows = vec![
        issued(random::token_hash(&token), TokenPurpose::ResetLink),
        issued(
            app.code_key.hash(user.id, &group.to_string(), &code),
            TokenPurpose::ResetCode,
        ),
    ];
    (token, code, rows)
}

/// Why a reset mail goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetMail {
    /// Someone asked (forgot-password).
    Requested,
    /// The account reached the day's cap of failed password checks: the link and code work
    /// despite the suspension of password sign-in. At most one such mail a day.
    LoginSuspended,
}

/// Records the request for a reset mail to `email` and, when `user` is its account, writes a
/// new link and code (cancelling earlier ones), the mail and `PASSWORD_RESET_REQUESTED` in the
/// same transaction. Gives whether a mail was queued.
pub(crate) async fn send_reset(
    app: &AppState,
    email: &Email,
    user: Option<&User>,
    why: ResetMail,
) -> Result<Committed, Fault> {
    let now = app.clock.now();
    let effects = user.map(|user| {
        let (token, code, mut tokens) = reset_tokens(app, user, now);
        let suspended = matches!(why, ResetMail::LoginSuspended);
        // Password sign-in is suspended, not the account: with sign-in by email on, the notice
        // also carries a link that signs the owner in without a password (and its own group,
        // so that spending one link leaves the other).
        let sign_in =
            (suspended && app.config.mail.email_login && user.email_verified).then(|| {
                let sign_in = random::token();
                tokens.push(NewEmailToken {
                    token_hash: random::token_hash(&sign_in),
                    user_id: user.id,
                    purpose: TokenPurpose::LoginLink,
                    group: crate::clock::id_at(now),
                    created_at: now,
                    expires_at: now + app.config.mail.email_login_ttl,
                });
                link(app, "email-login", &sign_in)
            });
        let template = Mail::Reset {
            link: &link(app, "reset-password", &token),
            code: &code,
            suspended,
            sign_in_link: sign_in.as_deref(),
        };
        Effects {
            events: vec![Event::password_reset_requested(user, now)],
            mails: vec![mail(app, user, template, now)],
            tokens,
            email_change: None,
        }
    });
    let (purpose, sent_after) = match why {
        ResetMail::Requested => (FORGOT_PASSWORD, None),
        ResetMail::LoginSuspended => (LOGIN_SUSPENDED, Some(now - Duration::days(1))),
    };
    let owner = user.zip(effects.as_ref());
    Ok(app
        .store
        .send_throttled(
            &app.code_key.subject(email),
            purpose,
            now,
            sent_after,
            owner.map(|(user, effects)| {
                // Only the code is replaced: six digits are guessable, so one lives at a time;
                // an earlier link stays good, so that a request made by someone else cannot
                // cancel the owner's (a reset then ends them all).
                (user.id, &[TokenPurpose::ResetCode][..], effects)
            }),
        )
        .await?)
}
