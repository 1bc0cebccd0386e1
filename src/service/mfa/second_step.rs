//! The second step of a login: the `mfa_token` a right password earns, and the factor that
//! turns it into a session. Wrong factors spend the token's tries and count against the
//! account like wrong passwords.

use super::{MAX_TRIES, MfaError, Proof, SecondStep, methods, totp_binding};
use crate::crypto::otp::{self, Authenticator};
use crate::crypto::random;
use crate::domain::{Assurance, AuthMethod, Event, User};
use crate::service::attempts::{self, settle};
use crate::service::passkeys;
use crate::service::sessions::{login_event, new_session, token_pair};
use crate::service::{ClientInfo, Fault, TokenPair};
use crate::state::AppState;
use crate::store::{Challenge, ChallengeKind, Factors, LoginExpects};
use uuid::Uuid;

/// After a right password for `user` (who has a factor enrolled): no session yet, but an
/// `mfa_token` that the second factor turns into one.
pub(crate) async fn begin_second_step(
    app: &AppState,
    user: &User,
    password_hash: &str,
    factors: &Factors,
    client: ClientInfo,
    first: Assurance,
) -> Result<SecondStep, Fault> {
    let now = app.clock.now();
    let mfa_token = random::token();
    let challenge = Challenge {
        key_hash: random::token_hash(&mfa_token),
        kind: ChallengeKind::Login,
        user_id: Some(user.id),
        session_id: None,
        ip: client.ip,
        user_agent: client.user_agent,
        assurance: Some(first),
        password_digest: Some(random::token_hash(password_hash)),
        state: None,
        tries: 0,
        created_at: now,
        expires_at: now + app.config.mfa.token_ttl,
    };
    app.store.put_challenge(&challenge).await?;
    Ok(SecondStep {
        mfa_token,
        methods: methods(factors),
    })
}

/// Completes a login with its second factor: a token pair, or `InvalidMfa` for a wrong code
/// (which costs the `mfa_token` one of its tries and counts against the account like a wrong
/// password) or a dead `mfa_token`.
pub async fn verify_login(
    app: &AppState,
    mfa_token: &str,
    proof: Proof,
    client: &ClientInfo,
) -> Result<TokenPair, MfaError> {
    let key_hash = random::token_hash(mfa_token);
    let now = app.clock.now();
    let challenge = app
        .store
        .challenge(&key_hash, ChallengeKind::Login, now)
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    let user_id = challenge.user_id.ok_or(MfaError::InvalidMfa)?;
    let credentials = app
        .store
        .credentials(user_id)
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    if matches!(proof, Proof::Password(_)) {
        return Err(MfaError::InvalidMfa);
    }
    let checked = check_factor(
        app,
        &credentials.user,
        &proof,
        client,
        challenge.state.as_deref(),
    )
    .await?;
    let Some(methods) = checked else {
        let event = Event::mfa_challenge_failed(user_id, proof.method(), app.clock.now());
        app.store
            .challenge_failed(&key_hash, MAX_TRIES, &event)
            .await?;
        return Err(MfaError::InvalidMfa);
    };
    // Single use: of two right answers at once, one opens a session.
    let challenge = app
        .store
        .take_challenge(&key_hash, ChallengeKind::Login, app.clock.now())
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    let user = credentials.user;
    // A password changed since the first step ends this login.
    let current = credentials.password_hash.as_deref().unwrap_or_default();
    if challenge.password_digest.as_deref() != Some(random::token_hash(current).as_str()) {
        return Err(MfaError::InvalidMfa);
    }
    if user.disabled {
        return Err(MfaError::AccountDisabled);
    }
    let now = app.clock.now();
    let mut assurance = challenge
        .assurance
        .clone()
        .unwrap_or_else(|| Assurance::password(now));
    assurance.add(&methods);
    assurance.auth_time = now;
    let client = ClientInfo {
        ip: challenge.ip.clone(),
        user_agent: challenge.user_agent.clone(),
        language: None,
    };
    open_session(
        app,
        user,
        credentials.password_hash.as_deref(),
        client,
        assurance,
    )
    .await
}

/// Starts a session for `user`, authenticated as `assurance`, while the account is as read
/// (same password hash and role, enabled).
pub(crate) async fn open_session(
    app: &AppState,
    user: User,
    password_hash: Option<&str>,
    client: ClientInfo,
    assurance: Assurance,
) -> Result<TokenPair, MfaError> {
    let now = app.clock.now();
    let (session, refresh_token) = new_session(app, user.id, client, assurance, now);
    let event = login_event(&user, &session, now);
    let expected = LoginExpects {
        password_hash,
        role: user.role.as_str(),
        email_verified: user.email_verified,
        attempt: None,
    };
    let user = app
        .store
        .record_login(&session, &expected, None, &event)
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    Ok(token_pair(
        app,
        user,
        session.id,
        &session.assurance,
        refresh_token,
        now,
    )?)
}

/// Checks a second factor of `user`: the methods it proves, or `None` when it is wrong. The
/// check counts against the account like a password check; a code is spent when right. `state`
/// is the WebAuthn challenge an assertion must answer.
pub(crate) async fn check_factor(
    app: &AppState,
    user: &User,
    proof: &Proof,
    client: &ClientInfo,
    state: Option<&str>,
) -> Result<Option<Vec<AuthMethod>>, MfaError> {
    let Some(attempt) = attempts::count_second_factor(app, &user.email, client).await? else {
        return Ok(None);
    };
    let proven = match proof {
        Proof::Totp(code) => totp_step(app, user.id, code)
            .await?
            .map(|_| vec![AuthMethod::OneTimeCode]),
        Proof::RecoveryCode(code) => match otp::normalise_recovery_code(code) {
            Some(code) => {
                let hash = app.code_key.recovery_code(user.id, &code);
                app.store
                    .spend_recovery_code(user.id, &hash, app.clock.now())
                    .await?
                    .then(|| vec![AuthMethod::OneTimeCode])
            }
            None => None,
        },
        Proof::Webauthn(assertion) => passkeys::check_assertion(app, user.id, assertion, state)
            .await?
            .then(|| vec![AuthMethod::HardwareKey, AuthMethod::UserVerified]),
        Proof::Password(_) => None,
    };
    if proven.is_some() {
        settle(app, Some(&attempt)).await?;
    }
    Ok(proven)
}

/// Spends a TOTP code of `user_id`'s confirmed authenticator: the step it was for, or `None`
/// when it is wrong or its step (or a later one) was used already.
async fn totp_step(app: &AppState, user_id: Uuid, code: &str) -> Result<Option<i64>, MfaError> {
    let factors = app.store.factors(user_id).await?;
    let Some(totp) = factors.totp.filter(|totp| totp.confirmed) else {
        return Ok(None);
    };
    let Some(step) = matching_step(app, user_id, &totp.secret_sealed, code)? else {
        return Ok(None);
    };
    Ok(app
        .store
        .spend_totp_step(user_id, step)
        .await?
        .then_some(step))
}

pub(super) fn matching_step(
    app: &AppState,
    user_id: Uuid,
    sealed: &[u8],
    code: &str,
) -> Result<Option<i64>, MfaError> {
    let secret = app
        .sealer
        .open(sealed, &totp_binding(user_id))
        .map_err(|_| Fault::Internal(anyhow::anyhow!("a TOTP secret does not open")))?;
    let authenticator = Authenticator::new(&secret, "latchkey", "user")
        .ok_or_else(|| Fault::Internal(anyhow::anyhow!("a stored TOTP secret is unusable")))?;
    Ok(authenticator.matching_step(code, app.clock.now().unix_timestamp()))
}
