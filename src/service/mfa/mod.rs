//! Second factors: enrolling and removing TOTP and recovery codes, the second step of a login
//! (`mfa_token`), re-authentication for step-up, and an admin's reset. WebAuthn ceremonies are
//! in [`super::passkeys`]; both share the gates and proofs here.

use crate::crypto::otp::{self, Authenticator};
use crate::crypto::random;
use crate::domain::{Acr, AuthMethod, Event, User};
use crate::service::attempts::{PasswordCheck, check_password, settle};
use crate::service::passkeys;
use crate::service::recovery::mail;
use crate::service::sessions::token_pair;
use crate::service::{ClientInfo, Fault, Principal, TokenPair, faults_into};
use crate::state::AppState;
use crate::store::{ChallengeKind, Effects, Factors, StoreError};
use crate::templates::{FactorChange, Mail};
use time::OffsetDateTime;
use uuid::Uuid;

mod second_step;
use second_step::matching_step;
pub use second_step::verify_login;
pub(crate) use second_step::{begin_second_step, check_factor, open_session};

/// Wrong tries an `mfa_token` survives.
pub const MAX_TRIES: i64 = 5;

/// How a second-factor operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// A wrong code or credential, or a spent, expired or unknown `mfa_token`.
    #[error("invalid second factor")]
    InvalidMfa,
    /// The code confirming an enrolment is wrong.
    #[error("invalid code")]
    InvalidCode,
    /// The WebAuthn credential offered for registration does not verify.
    #[error("invalid credential")]
    InvalidCredential,
    /// The password (or passkey) offered does not match.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Correct credentials of a disabled account.
    #[error("account disabled")]
    AccountDisabled,
    /// A TOTP authenticator is enrolled already.
    #[error("already enrolled")]
    AlreadyEnrolled,
    /// No such factor (or, with passkeys off, no passkeys at all).
    #[error("not found")]
    NotFound,
    /// The token's authentication is older than `LATCHKEY_REAUTH_MAX_AGE`.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// The token's authentication used one factor where two are needed.
    #[error("second factor required")]
    SecondFactorRequired,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(MfaError);

/// A second factor offered for a login, a re-authentication or a step-up.
#[derive(Debug, Clone)]
pub enum Proof {
    /// The password (re-authentication only).
    Password(String),
    /// A TOTP code.
    Totp(String),
    /// A recovery code (a login's second step only).
    RecoveryCode(String),
    /// A WebAuthn assertion, `PublicKeyCredential.toJSON()`.
    Webauthn(serde_json::Value),
}

impl Proof {
    fn method(&self) -> &'static str {
        match self {
            Proof::Password(_) => "password",
            Proof::Totp(_) => "totp",
            Proof::RecoveryCode(_) => "recovery_code",
            Proof::Webauthn(_) => "webauthn",
        }
    }
}

/// A login whose password was right, waiting for its second factor.
#[derive(Debug, Clone)]
pub struct SecondStep {
    /// Opaque, single-use; only its hash is stored.
    pub mfa_token: String,
    /// The methods that can complete it (`totp`, `webauthn`, `recovery_code`).
    pub methods: Vec<&'static str>,
}

/// What `GET /users/me/mfa` shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// A confirmed TOTP authenticator is enrolled.
    pub totp: bool,
    /// The WebAuthn credentials.
    pub credentials: Vec<crate::store::CredentialRecord>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// A pending TOTP enrolment: what an authenticator app needs.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    /// The secret, base32.
    pub secret: String,
    /// The `otpauth://` URI (for the QR code).
    pub otpauth_uri: String,
}

/// The binding of a user's sealed TOTP secret: it opens in that row only.
pub fn totp_binding(user_id: Uuid) -> String {
    format!("totp:{user_id}")
}

/// The methods that can complete a login, given the factors.
pub(crate) fn methods(factors: &Factors) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if factors.totp_confirmed() {
        methods.push("totp");
    }
    if !factors.credentials.is_empty() {
        methods.push("webauthn");
    }
    if factors.recovery_codes_left > 0 {
        methods.push("recovery_code");
    }
    methods
}

/// Enrolment and the like need an authentication at most `LATCHKEY_REAUTH_MAX_AGE` old.
pub fn require_recent(app: &AppState, principal: &Principal) -> Result<(), MfaError> {
    let max_age = app.config.mfa.reauth_max_age.whole_seconds();
    let now = app.clock.now().unix_timestamp();
    match principal.claims.auth_time {
        Some(at) if now - at <= max_age => Ok(()),
        _ => Err(MfaError::ReauthenticationRequired),
    }
}

/// Removal and the like need a recent authentication with two factors.
pub fn require_recent_aal2(app: &AppState, principal: &Principal) -> Result<(), MfaError> {
    require_recent(app, principal)?;
    if acr_of(principal) < Acr::Aal2 {
        return Err(MfaError::SecondFactorRequired);
    }
    Ok(())
}

/// Adding a factor needs a recent authentication, and two factors once one is enrolled: else
/// whoever learnt the password could add their own authenticator beside the owner's.
pub(crate) async fn require_enrolment_allowed(
    app: &AppState,
    principal: &Principal,
) -> Result<Factors, MfaError> {
    require_recent(app, principal)?;
    let factors = app.store.factors(principal.user_id).await?;
    // The session that enrolled a factor proved it; its access token cannot say so yet.
    if factors.any()
        && acr_of(principal) < Acr::Aal2
        && app
            .store
            .session_assurance(principal.user_id, principal.session_id)
            .await?
            .is_none_or(|assurance| assurance.acr() < Acr::Aal2)
    {
        return Err(MfaError::SecondFactorRequired);
    }
    Ok(factors)
}

fn acr_of(principal: &Principal) -> Acr {
    principal
        .claims
        .acr
        .as_deref()
        .and_then(Acr::parse)
        .unwrap_or(Acr::Aal1)
}

/// Whether `LATCHKEY_REQUIRE_MFA_ROLES` makes this token useless here (its role needs `aal2`).
pub fn role_requires_more(app: &AppState, principal: &Principal) -> bool {
    acr_of(principal) < Acr::Aal2
        && app
            .config
            .mfa
            .required_for
            .iter()
            .any(|role| role.as_str() == principal.claims.role)
}

/// The caller's factors.
pub async fn status(app: &AppState, principal: &Principal) -> Result<Status, MfaError> {
    let factors = app.store.factors(principal.user_id).await?;
    Ok(Status {
        totp: factors.totp_confirmed(),
        credentials: factors.credentials,
        recovery_codes_left: factors.recovery_codes_left,
    })
}

/// Begins a TOTP enrolment: a new secret, pending until a code confirms it (asking again
/// replaces a pending one).
pub async fn enrol_totp(app: &AppState, principal: &Principal) -> Result<TotpEnrolment, MfaError> {
    let factors = require_enrolment_allowed(app, principal).await?;
    if factors.totp_confirmed() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let user = owner(app, principal.user_id).await?;
    let secret = random::bytes::<{ otp::SECRET_BYTES }>();
    let authenticator =
        Authenticator::new(&secret, &app.config.mail.product_name, user.email.as_str())
            .ok_or_else(|| Fault::Internal(anyhow::anyhow!("a new TOTP secret was refused")))?;
    let otpauth_uri = authenticator
        .uri()
        .ok_or_else(|| Fault::Internal(anyhow::anyhow!("no otpauth URI")))?;
    let sealed = app.sealer.seal(&secret, &totp_binding(user.id));
    match app
        .store
        .stage_totp(user.id, &sealed, app.clock.now())
        .await
    {
        Err(StoreError::Conflict) => return Err(MfaError::AlreadyEnrolled),
        other => other?,
    }
    Ok(TotpEnrolment {
        secret: otp::secret_base32(&secret),
        otpauth_uri,
    })
}

/// Confirms the pending TOTP secret with a code from the app; gives the recovery codes when it
/// is the first factor.
pub async fn confirm_totp(
    app: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<Option<Vec<String>>, MfaError> {
    require_enrolment_allowed(app, principal).await?;
    let user = owner(app, principal.user_id).await?;
    let factors = app.store.factors(user.id).await?;
    let Some(pending) = factors.totp.filter(|totp| !totp.confirmed) else {
        return Err(MfaError::InvalidCode);
    };
    let step =
        matching_step(app, user.id, &pending.secret_sealed, code)?.ok_or(MfaError::InvalidCode)?;
    let (codes, hashes) = new_recovery_codes(app, user.id);
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::mfa_enabled(user.id, now)],
        mails: vec![notice(app, &user, FactorChange::TotpAdded, now)],
        ..Effects::default()
    };
    let (first, committed) = match app
        .store
        .confirm_totp(user.id, principal.session_id, step, &hashes, now, &effects)
        .await
    {
        Err(StoreError::NotFound) => return Err(MfaError::InvalidCode),
        other => other?,
    };
    app.after_commit(committed);
    Ok(first.then_some(codes))
}

/// Removes the caller's TOTP authenticator.
pub async fn remove_totp(app: &AppState, principal: &Principal) -> Result<(), MfaError> {
    require_recent_aal2(app, principal)?;
    let user = owner(app, principal.user_id).await?;
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::mfa_disabled(user.id, "totp", user.id, now)],
        mails: vec![notice(app, &user, FactorChange::TotpRemoved, now)],
        ..Effects::default()
    };
    let committed = match app.store.remove_totp(user.id, &effects).await {
        Err(StoreError::NotFound) => return Err(MfaError::NotFound),
        other => other?,
    };
    app.after_commit(committed);
    Ok(())
}

/// New recovery codes for the caller; the old ones die.
pub async fn regenerate_recovery_codes(
    app: &AppState,
    principal: &Principal,
) -> Result<Vec<String>, MfaError> {
    require_recent_aal2(app, principal)?;
    let user = owner(app, principal.user_id).await?;
    if !app.store.factors(user.id).await?.any() {
        return Err(MfaError::NotFound);
    }
    let (codes, hashes) = new_recovery_codes(app, user.id);
    let now = app.clock.now();
    let effects = Effects {
        events: Vec::new(),
        mails: vec![notice(app, &user, FactorChange::RecoveryCodesRenewed, now)],
        ..Effects::default()
    };
    let committed = app
        .store
        .replace_recovery_codes(user.id, &hashes, now, &effects)
        .await?;
    app.after_commit(committed);
    Ok(codes)
}

/// Re-authenticates the caller's session: a new token pair for it, `auth_time` now. A second
/// factor adds to what the session proved (a step-up to `aal2`); a password alone counts as
/// itself, so that a stolen token and a known password never reach `aal2`.
pub async fn reauthenticate(
    app: &AppState,
    principal: &Principal,
    proof: Proof,
    client: &ClientInfo,
) -> Result<TokenPair, MfaError> {
    let credentials = app
        .store
        .credentials(principal.user_id)
        .await?
        .ok_or(MfaError::InvalidCredentials)?;
    let user = &credentials.user;
    let (methods, keeps_session) = match &proof {
        Proof::Password(password) => {
            let check = check_password(
                app,
                Some(&user.email),
                Some(user),
                credentials.password_hash.as_deref(),
                password,
                client,
                true,
            )
            .await?;
            match check {
                PasswordCheck::Matches { attempt, .. } => {
                    settle(app, attempt.as_ref()).await?;
                    (vec![AuthMethod::Password], false)
                }
                _ => return Err(MfaError::InvalidCredentials),
            }
        }
        Proof::Totp(_) | Proof::Webauthn(_) => {
            let state = match &proof {
                // The challenge is single-use, whatever the answer.
                Proof::Webauthn(_) => app
                    .store
                    .take_challenge(
                        &passkeys::reauth_key(principal.session_id),
                        ChallengeKind::Reauthenticate,
                        app.clock.now(),
                    )
                    .await?
                    .and_then(|challenge| challenge.state),
                _ => None,
            };
            match check_factor(app, user, &proof, client, state.as_deref()).await? {
                Some(methods) => (methods, true),
                None => {
                    let event =
                        Event::mfa_challenge_failed(user.id, proof.method(), app.clock.now());
                    app.store.append_event(&event).await?;
                    return Err(MfaError::InvalidMfa);
                }
            }
        }
        Proof::RecoveryCode(_) => return Err(MfaError::InvalidMfa),
    };
    if user.disabled {
        return Err(MfaError::AccountDisabled);
    }
    let refresh_token = random::token();
    let reauthenticated = app
        .store
        .reauthenticate_session(
            user.id,
            principal.session_id,
            &methods,
            keeps_session,
            &random::token_hash(&refresh_token),
            app.clock.now(),
            app.config.tokens.refresh_ttl,
        )
        .await?;
    let Some((user, assurance)) = reauthenticated else {
        return Err(MfaError::InvalidCredentials);
    };
    Ok(token_pair(
        app,
        user,
        principal.session_id,
        &assurance,
        refresh_token,
        app.clock.now(),
    )?)
}

/// An admin's reset of `user_id`: every factor removed, every session revoked, the owner told.
pub async fn reset(app: &AppState, user_id: Uuid, by: Uuid) -> Result<(), MfaError> {
    let user = owner(app, user_id).await.map_err(|error| match error {
        MfaError::InvalidCredentials => MfaError::NotFound,
        other => other,
    })?;
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::mfa_disabled(user.id, "all", by, now)],
        mails: vec![notice(app, &user, FactorChange::FactorsReset, now)],
        ..Effects::default()
    };
    let committed = match app.store.clear_factors(user.id, now, &effects).await {
        Err(StoreError::NotFound) => return Err(MfaError::NotFound),
        other => other?,
    };
    app.after_commit(committed);
    Ok(())
}

/// Ten recovery codes, in the clear (shown once) and as stored.
pub(crate) fn new_recovery_codes(app: &AppState, user_id: Uuid) -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..otp::RECOVERY_CODES)
        .map(|_| otp::recovery_code())
        .collect();
    let hashes = codes
        .iter()
        .map(|code| app.code_key.recovery_code(user_id, code))
        .collect();
    (codes, hashes)
}

/// The account of a bearer token's holder.
pub(crate) async fn owner(app: &AppState, user_id: Uuid) -> Result<User, MfaError> {
    app.store
        .user(user_id)
        .await?
        .ok_or(MfaError::InvalidCredentials)
}

/// The security notice mailed to the owner for a change of their factors.
pub(crate) fn notice(
    app: &AppState,
    user: &User,
    change: FactorChange<'_>,
    now: OffsetDateTime,
) -> crate::store::NewMail {
    mail(app, user, Mail::FactorsChanged(change), now)
}
