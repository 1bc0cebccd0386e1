//! Logging in and proving who is calling: sessions, token pairs, bearer-token checks.

use super::{ClientInfo, Fault, Principal, TokenPair, faults_into};
use crate::crypto::{AccessClaims, random};
use crate::domain::password::Candidate;
use crate::domain::{Email, Event, LoginFailure, RevokeReason, User};
use crate::revocations::SessionStatus;
use crate::state::AppState;
use crate::store::{
    AttemptCounts, AttemptGate, LoginExpects, NewSession, Revoke, Rotate, Rotation, SessionRecord,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// How a login can fail.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email or wrong password: indistinguishable by design.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Correct password, but the email is not verified yet.
    #[error("email not verified")]
    EmailNotVerified,
    /// Correct password, but an admin disabled the account.
    #[error("account disabled")]
    AccountDisabled,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// Why a bearer token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, forged, expired or revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// How a refresh can fail.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked, or reused after the grace window.
    #[error("invalid refresh token")]
    Invalid,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// How revoking one of one's sessions can fail.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No live session of the caller has this id.
    #[error("no such session")]
    NotFound,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(LoginError, AuthError, RefreshError, SessionError);

/// Checks an email and password and, when they are right and the account may log in, starts a
/// session. Unknown emails are verified against the dummy hash, so they cost exactly what a
/// wrong password costs; disabled/unverified are told only after a correct password.
pub async fn login(
    app: &AppState,
    email: &str,
    password: &str,
    client: ClientInfo,
) -> Result<TokenPair, LoginError> {
    let email = Email::parse(email).ok();
    let credentials = match &email {
        Some(email) => app.store.credentials_by_email(email).await?,
        None => None,
    };
    let user_id = credentials.as_ref().map(|c| c.user.id);
    let stored_hash = credentials.as_ref().and_then(|c| c.password_hash.clone());
    // In conceal mode "register, then log in" must not tell whether the address was free: an
    // unverified account's right password answers, and counts, like a wrong one.
    let opens = !(app.config.conceal_existing_accounts
        && app.config.require_email_verification
        && credentials.as_ref().is_some_and(|c| !c.user.email_verified));
    let check = check_password(
        app,
        email.as_ref(),
        credentials.as_ref().map(|c| &c.user),
        stored_hash.as_deref(),
        password,
        &client,
        opens,
    )
    .await?;
    let (credentials, candidate, needs_rehash, attempt) = match (check, credentials) {
        (
            PasswordCheck::Matches {
                candidate,
                needs_rehash,
                attempt,
            },
            Some(credentials),
        ) => (credentials, candidate, needs_rehash, attempt),
        (failed, _) => {
            let reason = match failed {
                PasswordCheck::Throttled => LoginFailure::Throttled,
                PasswordCheck::Suspended => LoginFailure::Suspended,
                _ if user_id.is_some() => LoginFailure::InvalidPassword,
                _ => LoginFailure::UnknownEmail,
            };
            record_failure(app, user_id, email.as_ref(), reason).await?;
            return Err(LoginError::InvalidCredentials);
        }
    };
    let user = credentials.user;
    if user.disabled {
        settle(app, attempt.as_ref()).await?;
        record_failure(
            app,
            Some(user.id),
            Some(&user.email),
            LoginFailure::AccountDisabled,
        )
        .await?;
        return Err(LoginError::AccountDisabled);
    }
    if app.config.require_email_verification && !user.email_verified {
        // (In conceal mode `attempt` is `None`: the right password stays counted.)
        settle(app, attempt.as_ref()).await?;
        record_failure(
            app,
            Some(user.id),
            Some(&user.email),
            LoginFailure::EmailNotVerified,
        )
        .await?;
        // In conceal mode "register, then log in" must not tell whether the address was
        // free: an unverified account with the right password answers like a wrong one.
        if app.config.conceal_existing_accounts {
            return Err(LoginError::InvalidCredentials);
        }
        return Err(LoginError::EmailNotVerified);
    }
    // Upgrade an outdated hash while the plain password is at hand; if the pool is busy,
    // the next login will do it.
    let rehash = match needs_rehash {
        true => app.hasher.rehash(&candidate).await.ok(),
        false => None,
    };
    let now = app.clock.now();
    let (session, refresh_token) = new_session(app, user.id, client, now);
    let event = login_event(&user, &session, now);
    let verified_hash = stored_hash.unwrap_or_default();
    let expected = LoginExpects {
        password_hash: &verified_hash,
        role: user.role.as_str(),
        email_verified: user.email_verified,
        // Settled in the session's transaction: one commit fewer per login.
        attempt: attempt
            .as_ref()
            .map(|a| (a.subject.as_str(), a.network.as_str())),
    };
    let recorded = app
        .store
        .record_login(&session, &expected, rehash.as_deref(), &event)
        .await?;
    // The password, role or verification changed, or the account was disabled or deleted,
    // while we were checking the password: the check no longer opens a session.
    let Some(user) = recorded else {
        return Err(match app.store.user(user.id).await? {
            Some(now) if now.disabled => LoginError::AccountDisabled,
            _ => LoginError::InvalidCredentials,
        });
    };
    Ok(token_pair(app, user, session.id, refresh_token, now)?)
}

/// The outcome of one password check.
pub(crate) enum PasswordCheck {
    /// The password is right.
    Matches {
        /// The password, normalised, for a re-hash.
        candidate: Candidate,
        /// The stored hash has outdated parameters.
        needs_rehash: bool,
        /// The attempt, still counted as a failure until the caller settles it (a login, in
        /// the transaction that opens the session; the others with [`settle`]).
        attempt: Option<Attempt>,
    },
    /// Wrong password, unknown account, or a password that cannot be right.
    Wrong,
    /// This client network must wait before its next try.
    Throttled,
    /// The account reached the day's cap of failures: no password opens it today.
    Suspended,
}

/// Every password check (login, change, deletion, confirmation) goes through here: the attempt
/// is counted for the address and the client network before the hash is checked, so parallel
/// guesses get no more tries than sequential ones; a network past its free failures waits, and
/// only it; an address past the day's cap across networks is suspended from password sign-in
/// and its owner mailed a reset link (through the queued requests, so that every address costs
/// the same writes). Refused attempts cost the same hashing work and answer like a wrong
/// password. `email` names the counters (an invalid address has none: it can match no account),
/// `owner` is the account, if any; `opens` is false when even the right password must count as
/// a failure (in conceal mode, an unverified account's).
pub(crate) async fn check_password(
    app: &AppState,
    email: Option<&Email>,
    owner: Option<&User>,
    stored_hash: Option<&str>,
    password: &str,
    client: &ClientInfo,
    opens: bool,
) -> Result<PasswordCheck, Fault> {
    // A password longer than any valid one cannot match: refused before any work, alike for
    // every address.
    let Some(candidate) = Candidate::new(password) else {
        return Ok(PasswordCheck::Wrong);
    };
    let network = client
        .ip
        .as_deref()
        .map_or_else(|| "unknown".to_owned(), crate::domain::client_network);
    let subject = email.map(|email| app.code_key.subject(email));
    let now = app.clock.now();
    let (gate, daily_failures) = match &subject {
        Some(subject) => {
            app.store
                .begin_password_attempt(subject, &network, now, &|counts| gate(counts, now))
                .await?
        }
        None => (AttemptGate::Open, 0),
    };
    let verified = match app.hasher.verify(&candidate, stored_hash).await {
        Ok(verified) => verified,
        Err(error) => {
            // Not checked (the hashing queue is full): it must not count against the owner.
            if let (Some(subject), AttemptGate::Open) = (&subject, gate) {
                app.store
                    .uncount_password_attempt(subject, &network, app.clock.now())
                    .await?;
            }
            return Err(error.into());
        }
    };
    let suspended = match gate {
        AttemptGate::Throttled => return Ok(PasswordCheck::Throttled),
        AttemptGate::Suspended => true,
        AttemptGate::Open if verified.matches && opens && owner.is_some() => {
            return Ok(PasswordCheck::Matches {
                candidate,
                needs_rehash: verified.needs_rehash,
                attempt: subject.map(|subject| Attempt { subject, network }),
            });
        }
        AttemptGate::Open => daily_failures >= MAX_DAILY_FAILURES,
    };
    if suspended && let Some(email) = email {
        // Queued alike for every address; the owner, if any, gets at most one such mail a day.
        super::recovery::queue_request(app, email, super::recovery::LOGIN_SUSPENDED).await?;
    }
    Ok(match gate {
        AttemptGate::Suspended => PasswordCheck::Suspended,
        // The right password that must not open (conceal mode): it stays counted.
        _ if verified.matches && owner.is_some() => PasswordCheck::Matches {
            candidate,
            needs_rehash: verified.needs_rehash,
            attempt: None,
        },
        _ => PasswordCheck::Wrong,
    })
}

/// A counted password check that turned out right: whose counters, from which network.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    subject: String,
    network: String,
}

/// A right password no longer counts as a failure, and its network's failures are forgotten.
pub(crate) async fn settle(app: &AppState, attempt: Option<&Attempt>) -> Result<(), Fault> {
    if let Some(attempt) = attempt {
        app.store
            .password_attempt_passed(&attempt.subject, &attempt.network, app.clock.now())
            .await?;
    }
    Ok(())
}

/// Whether a password check may run, from the counters before it.
fn gate(counts: &AttemptCounts, now: OffsetDateTime) -> AttemptGate {
    if counts.daily_failures >= MAX_DAILY_FAILURES {
        AttemptGate::Suspended
    } else if is_throttled(counts.network_failures, counts.network_last_failed_at, now) {
        AttemptGate::Throttled
    } else {
        AttemptGate::Open
    }
}

/// `USER_LOGIN` for a new session of `user`.
pub(crate) fn login_event(user: &User, session: &NewSession, now: OffsetDateTime) -> Event {
    Event::user_login(
        user,
        session.id,
        session.ip.as_deref(),
        session.user_agent.as_deref(),
        now,
    )
}

/// Checks a bearer token and names its holder: a valid signature and claims, and a session
/// that has not been revoked (on any instance).
pub async fn authenticate(app: &AppState, token: &str) -> Result<Principal, AuthError> {
    let claims = app.tokens.verify(token, app.clock.now()).map_err(|error| {
        tracing::debug!(%error, "bearer token refused");
        AuthError::Unauthorized
    })?;
    let (Ok(user_id), Ok(session_id)) =
        (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid))
    else {
        return Err(AuthError::Unauthorized);
    };
    match app.revocations.status(session_id) {
        SessionStatus::Live => Ok(Principal {
            user_id,
            session_id,
            claims,
        }),
        SessionStatus::Revoked => Err(AuthError::Unauthorized),
        // Fail closed: better refuse a good token for a moment than accept a revoked one.
        SessionStatus::Unknown => Err(AuthError::Fault(Fault::Unavailable(anyhow::anyhow!(
            "the revocation view is stale"
        )))),
    }
}

/// Exchanges a refresh token for a new pair. A repeat within the grace window gets the same
/// successor again; a repeat after it revokes the whole session.
pub async fn refresh(app: &AppState, refresh_token: &str) -> Result<TokenPair, RefreshError> {
    let successor = random::token();
    let presented_hash = random::token_hash(refresh_token);
    let successor_hash = random::token_hash(&successor);
    let successor_sealed = random::seal(&successor, refresh_token);
    let rotate = Rotate {
        presented_hash: &presented_hash,
        successor_hash: &successor_hash,
        successor_sealed: &successor_sealed,
        ttl: app.config.tokens.refresh_ttl,
        grace: app.config.tokens.reuse_grace,
        clock: &app.clock,
    };
    let (session_id, user, successor) = match app.store.rotate_refresh_token(&rotate).await? {
        Rotation::Rotated { session_id, user } => (session_id, user, successor),
        Rotation::Repeated {
            session_id,
            user,
            successor_sealed,
        } => {
            let earlier =
                random::unseal(&successor_sealed, refresh_token).ok_or(RefreshError::Invalid)?;
            (session_id, user, earlier)
        }
        Rotation::Reused { session_id, after } => {
            metrics::counter!("latchkey_refresh_token_reuse_total").increment(1);
            tracing::warn!(%session_id, "refresh token reused after its grace window: session revoked");
            app.after_commit(after);
            return Err(RefreshError::Invalid);
        }
        Rotation::Invalid => return Err(RefreshError::Invalid),
    };
    if user.disabled {
        return Err(RefreshError::Invalid);
    }
    Ok(token_pair(
        app,
        user,
        session_id,
        successor,
        app.clock.now(),
    )?)
}

/// Ends the session a refresh token belongs to; unknown tokens are fine.
pub async fn logout(app: &AppState, refresh_token: &str) -> Result<(), Fault> {
    let hash = random::token_hash(refresh_token);
    let committed = app
        .store
        .revoke_session_of_token(&hash, RevokeReason::Logout, app.clock.now())
        .await?;
    app.after_commit(committed);
    Ok(())
}

/// The caller's live sessions.
pub async fn list(app: &AppState, principal: &Principal) -> Result<Vec<SessionRecord>, Fault> {
    Ok(app
        .store
        .live_sessions(principal.user_id, app.clock.now())
        .await?)
}

/// Revokes sessions of the caller: one (404 when it is not a live session of theirs) or all.
pub async fn revoke(
    app: &AppState,
    principal: &Principal,
    which: Revoke,
) -> Result<(), SessionError> {
    let now = app.clock.now();
    let committed = app
        .store
        .revoke_sessions(principal.user_id, which, RevokeReason::RevokedByUser, now)
        .await?;
    let none_revoked = committed.revoked.is_empty();
    app.after_commit(committed);
    if matches!(which, Revoke::One(_)) && none_revoked {
        return Err(SessionError::NotFound);
    }
    Ok(())
}

/// A new session for `user_id` and its first refresh token (returned in the clear, stored hashed).
pub fn new_session(
    app: &AppState,
    user_id: Uuid,
    client: ClientInfo,
    now: OffsetDateTime,
) -> (NewSession, String) {
    let refresh_token = random::token();
    let session = NewSession {
        id: crate::clock::id_at(now),
        user_id,
        refresh_token_hash: random::token_hash(&refresh_token),
        user_agent: client.user_agent,
        ip: client.ip,
        created_at: now,
        expires_at: now + app.config.tokens.refresh_ttl,
    };
    (session, refresh_token)
}

/// Signs an access token for `user` in session `session_id` and pairs it with `refresh_token`.
pub(crate) fn token_pair(
    app: &AppState,
    user: User,
    session_id: Uuid,
    refresh_token: String,
    now: OffsetDateTime,
) -> Result<TokenPair, Fault> {
    let claims = AccessClaims {
        iss: String::new(),
        sub: user.id.to_string(),
        aud: None,
        iat: 0,
        nbf: None,
        exp: None,
        jti: String::new(),
        sid: session_id.to_string(),
        email: user.email.as_str().to_owned(),
        email_verified: user.email_verified,
        role: user.role.as_str().to_owned(),
        name: user.name.as_ref().map(|n| n.as_str().to_owned()),
    };
    let access_token = app.tokens.issue(claims, now)?;
    Ok(TokenPair {
        access_token,
        expires_in: app.config.tokens.access_ttl.whole_seconds(),
        refresh_token,
        user,
    })
}

async fn record_failure(
    app: &AppState,
    user_id: Option<Uuid>,
    email: Option<&Email>,
    reason: LoginFailure,
) -> Result<(), Fault> {
    let event = Event::login_failed(user_id, email, reason, app.clock.now());
    Ok(app.store.append_event(&event).await?)
}

/// Failed password checks a client network may make for one account before it slows down.
const FREE_FAILURES: i64 = 10;
/// The longest wait between two tries once a network is slowed down.
const MAX_DELAY_SECONDS: i64 = 3_600;
/// NIST 800-63B's cap, per account and day across all networks: then password sign-in is
/// suspended for the rest of the day and the owner is mailed a reset link that works anyway.
pub const MAX_DAILY_FAILURES: i64 = 100;

/// Whether a network with `failures` failures for an account, the last at `last`, must wait:
/// from the tenth failure, 1 s, then doubling, at most an hour.
fn is_throttled(
    failures: i64,
    last: Option<time::OffsetDateTime>,
    now: time::OffsetDateTime,
) -> bool {
    if failures < FREE_FAILURES {
        return false;
    }
    let exponent = u32::try_from(failures - FREE_FAILURES)
        .unwrap_or(u32::MAX)
        .min(12);
    let delay = time::Duration::seconds((1_i64 << exponent).min(MAX_DELAY_SECONDS));
    last.is_some_and(|last| now < last + delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{Duration, OffsetDateTime};

    #[test]
    fn the_delay_grows_from_the_tenth_failure_and_is_capped() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert!(!is_throttled(9, Some(now), now), "nine failures are free");
        assert!(is_throttled(
            10,
            Some(now),
            now + Duration::milliseconds(900)
        ));
        assert!(!is_throttled(10, Some(now), now + Duration::seconds(1)));
        assert!(is_throttled(13, Some(now), now + Duration::seconds(7)));
        assert!(!is_throttled(13, Some(now), now + Duration::seconds(8)));
        assert!(
            !is_throttled(60, Some(now), now + Duration::hours(1)),
            "capped at an hour"
        );
    }
}
