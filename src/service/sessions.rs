//! Logging in and proving who is calling: sessions, token pairs, bearer-token checks.

use super::attempts::{Attempt, PasswordCheck, check_password, settle};
use super::{
    Caller, ClientInfo, Fault, Outage, Principal, ServicePrincipal, TokenPair, faults_into,
};
use crate::crypto::{AccessClaims, random};
use crate::domain::{Assurance, Email, Event, LoginFailure, RevokeReason, User};
use crate::revocations::SessionStatus;
use crate::state::AppState;
use crate::store::{LoginExpects, NewSession, Revoke, Rotate, Rotation, SessionRecord};
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
    /// Correct password of an account with a second factor: no session until it is given.
    #[error("second factor required")]
    MfaRequired(super::mfa::SecondStep),
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
    app.hasher.has_room()?;
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
    let factors = app.store.factors(user.id).await?;
    if factors.any() {
        // The password was right: it no longer counts as a failure, but the network's earlier
        // failures (wrong codes among them) stay until the second factor passes.
        super::attempts::uncount(app, attempt.as_ref()).await?;
        let step = super::mfa::begin_second_step(
            app,
            &user,
            stored_hash.as_deref().unwrap_or_default(),
            &factors,
            client,
            Assurance::password(app.clock.now()),
        )
        .await?;
        return Err(LoginError::MfaRequired(step));
    }
    // Upgrade an outdated hash while the plain password is at hand; if the pool is busy,
    // the next login will do it.
    let rehash = match needs_rehash {
        true => app.hasher.rehash(&candidate).await.ok(),
        false => None,
    };
    let now = app.clock.now();
    let (session, refresh_token) = new_session(app, user.id, client, Assurance::password(now), now);
    let event = login_event(&user, &session, now);
    let verified_hash = stored_hash.unwrap_or_default();
    let expected = LoginExpects {
        password_hash: Some(&verified_hash),
        role: user.role.as_str(),
        email_verified: user.email_verified,
        // Settled in the session's transaction: one commit fewer per login.
        attempt: attempt.as_ref().map(Attempt::counters),
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
    Ok(token_pair(
        app,
        user,
        session.id,
        &session.assurance,
        refresh_token,
        now,
    )?)
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
/// that has not been revoked (on any instance). A client's own token (no user) is refused.
pub async fn authenticate(app: &AppState, token: &str) -> Result<Principal, AuthError> {
    match authenticate_caller(app, token).await? {
        Caller::User(principal) => Ok(principal),
        Caller::Service(_) => Err(AuthError::Unauthorized),
    }
}

/// Checks a bearer token of a user or of an OAuth client acting for itself
/// (`client_credentials`, whose `sub` is the client id, RFC 9068 §2.2).
pub async fn authenticate_caller(app: &AppState, token: &str) -> Result<Caller, AuthError> {
    let claims = app.tokens.verify(token, app.clock.now()).map_err(|error| {
        tracing::debug!(%error, "bearer token refused");
        AuthError::Unauthorized
    })?;
    let session_id = Uuid::parse_str(&claims.sid).map_err(|_| AuthError::Unauthorized)?;
    match app.revocations.status(session_id) {
        SessionStatus::Live => {}
        SessionStatus::Revoked => return Err(AuthError::Unauthorized),
        // Fail closed: better refuse a good token for a moment than accept a revoked one.
        SessionStatus::Unknown if !app.revocations.signal_healthy() => {
            return Err(AuthError::Fault(Fault::Unavailable(
                Outage::Redis,
                anyhow::anyhow!("Redis is unreachable"),
            )));
        }
        SessionStatus::Unknown => {
            return Err(AuthError::Fault(Fault::Unavailable(
                Outage::Database,
                anyhow::anyhow!("the revocation view is stale"),
            )));
        }
    }
    // Client ids are never UUIDs, so a client's own token cannot pass for a user's.
    if claims.client_id.as_deref() == Some(claims.sub.as_str()) {
        return Ok(Caller::Service(ServicePrincipal {
            client_id: claims.sub.clone(),
            claims,
        }));
    }
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| AuthError::Unauthorized)?;
    Ok(Caller::User(Principal {
        user_id,
        session_id,
        claims,
    }))
}

/// Exchanges a refresh token for a new pair. A repeat within the grace window gets the same
/// successor again; a repeat after it revokes the whole session.
pub async fn refresh(app: &AppState, refresh_token: &str) -> Result<TokenPair, RefreshError> {
    let rotated = rotate(app, refresh_token, None).await?;
    // The session's authentication, not this refresh, is what the new token vouches for.
    Ok(token_pair(
        app,
        rotated.user,
        rotated.session_id,
        &rotated.assurance,
        rotated.successor,
        app.clock.now(),
    )?)
}

/// A refresh token exchanged for its successor.
pub(crate) struct Rotated {
    /// The session.
    pub session_id: Uuid,
    /// Its user, as stored now.
    pub user: User,
    /// How and when the user authenticated.
    pub assurance: Assurance,
    /// The next refresh token (the same one again for a repeat within the grace window).
    pub successor: String,
}

/// Rotates `refresh_token` of a session that serves `client_id` (none: latchkey's own
/// clients), with reuse detection; a disabled user's token is invalid.
pub(crate) async fn rotate(
    app: &AppState,
    refresh_token: &str,
    client_id: Option<&str>,
) -> Result<Rotated, RefreshError> {
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
        client_id,
    };
    let (session_id, user, assurance, successor) = match app
        .store
        .rotate_refresh_token(&rotate)
        .await?
    {
        Rotation::Rotated {
            session_id,
            user,
            assurance,
        } => (session_id, user, assurance, successor),
        Rotation::Repeated {
            session_id,
            user,
            assurance,
            successor_sealed,
        } => {
            let earlier =
                random::unseal(&successor_sealed, refresh_token).ok_or(RefreshError::Invalid)?;
            (session_id, user, assurance, earlier)
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
    Ok(Rotated {
        session_id,
        user,
        assurance,
        successor,
    })
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
    assurance: Assurance,
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
        assurance,
        grant: None,
    };
    (session, refresh_token)
}

/// Signs an access token for `user` in session `session_id` and pairs it with `refresh_token`.
pub(crate) fn token_pair(
    app: &AppState,
    user: User,
    session_id: Uuid,
    assurance: &Assurance,
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
        auth_time: Some(assurance.auth_time.unix_timestamp()),
        amr: Some(assurance.amr()),
        acr: Some(assurance.acr().as_str().to_owned()),
        client_id: None,
        scope: None,
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
