//! WebAuthn through `webauthn-rs`'s passkey API: registering credentials, using them as a second
//! factor or for a re-authentication, and passkey sign-in with discoverable credentials. Every
//! ceremony's state is kept in the store between its two requests, so any instance finishes
//! what another began.

use super::mfa::{MfaError, notice, open_session, owner, require_enrolment_allowed};
use super::{ClientInfo, Fault, Principal, TokenPair};
use crate::crypto::random;
use crate::domain::{Assurance, AuthMethod, Event};
use crate::state::AppState;
use crate::store::{Challenge, ChallengeKind, CredentialRecord, Effects, StoreError};
use crate::templates::FactorChange;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Webauthn,
};
use webauthn_rs_proto::ResidentKeyRequirement;

/// How long a WebAuthn ceremony may take between its options and its answer.
const CEREMONY_TTL: time::Duration = time::Duration::minutes(5);
/// Longest name of a credential.
const MAX_NAME_CHARS: usize = 100;

/// The relying party, or `NotFound` when the public URL cannot be a WebAuthn origin.
fn relying_party(app: &AppState) -> Result<&Webauthn, MfaError> {
    app.webauthn.as_deref().ok_or(MfaError::NotFound)
}

/// The key of a user's registration under way.
fn registration_key(user_id: Uuid) -> String {
    random::token_hash(&format!("register:{user_id}"))
}

/// The key of a session's WebAuthn re-authentication under way.
pub(crate) fn reauth_key(session_id: Uuid) -> String {
    random::token_hash(&format!("reauthenticate:{session_id}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, MfaError> {
    serde_json::to_string(value).map_err(|e| Fault::Internal(e.into()).into())
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, MfaError> {
    serde_json::to_value(value).map_err(|e| Fault::Internal(e.into()).into())
}

fn ceremony(app: &AppState, key_hash: String, kind: ChallengeKind, state: String) -> Challenge {
    let now = app.clock.now();
    Challenge {
        key_hash,
        kind,
        user_id: None,
        session_id: None,
        ip: None,
        user_agent: None,
        assurance: None,
        password_digest: None,
        state: Some(state),
        tries: 0,
        created_at: now,
        expires_at: now + CEREMONY_TTL,
    }
}

/// The user's credentials as webauthn-rs knows them.
fn passkeys_of(records: &[CredentialRecord]) -> Result<Vec<Passkey>, MfaError> {
    records
        .iter()
        .map(|record| {
            serde_json::from_str(&record.passkey).map_err(|e| Fault::Internal(e.into()).into())
        })
        .collect()
}

/// `PublicKeyCredentialCreationOptions` for a new credential of the caller. The credential is
/// asked to be discoverable where the authenticator can, so it also signs in without an email.
pub async fn registration_options(
    app: &AppState,
    principal: &Principal,
) -> Result<Value, MfaError> {
    let webauthn = relying_party(app)?;
    let factors = require_enrolment_allowed(app, principal).await?;
    let user = owner(app, principal.user_id).await?;
    let exclude = passkeys_of(&factors.credentials)?
        .iter()
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    let display = user
        .name
        .as_ref()
        .map_or(user.email.as_str(), |name| name.as_str());
    let (mut options, state) = webauthn
        .start_passkey_registration(user.id, user.email.as_str(), display, Some(exclude))
        .map_err(|e| Fault::Internal(anyhow::anyhow!("webauthn registration: {e}")))?;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Preferred);
    }
    let mut challenge = ceremony(
        app,
        registration_key(user.id),
        ChallengeKind::Register,
        to_json(&state)?,
    );
    challenge.user_id = Some(user.id);
    app.store.put_challenge(&challenge).await?;
    to_value(&options.public_key)
}

/// Registers the credential the caller's authenticator made for the options asked last; gives
/// it, and the recovery codes when it is the first factor.
pub async fn register(
    app: &AppState,
    principal: &Principal,
    name: &str,
    credential: Value,
) -> Result<(CredentialRecord, Option<Vec<String>>), MfaError> {
    let webauthn = relying_party(app)?;
    require_enrolment_allowed(app, principal).await?;
    let user = owner(app, principal.user_id).await?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(MfaError::InvalidCredential);
    }
    // Single use, whatever the answer.
    let state = app
        .store
        .take_challenge(
            &registration_key(user.id),
            ChallengeKind::Register,
            app.clock.now(),
        )
        .await?
        .and_then(|challenge| challenge.state)
        .ok_or(MfaError::InvalidCredential)?;
    let state: PasskeyRegistration =
        serde_json::from_str(&state).map_err(|e| Fault::Internal(e.into()))?;
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| MfaError::InvalidCredential)?;
    let passkey = webauthn
        .finish_passkey_registration(&credential, &state)
        .map_err(|error| {
            tracing::debug!(%error, "webauthn registration refused");
            MfaError::InvalidCredential
        })?;
    let now = app.clock.now();
    let record = CredentialRecord {
        id: app.clock.new_id(),
        user_id: user.id,
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
        name: name.to_owned(),
        passkey: to_json(&passkey)?,
        created_at: now,
        last_used_at: None,
    };
    let (codes, hashes) = super::mfa::new_recovery_codes(app, user.id);
    let effects = Effects {
        events: vec![Event::passkey_added(user.id, record.id, name, now)],
        mails: vec![notice(app, &user, FactorChange::PasskeyAdded(name), now)],
        ..Effects::default()
    };
    let (first, committed) = match app
        .store
        .insert_credential(&record, principal.session_id, &hashes, &effects)
        .await
    {
        // The credential is registered already (to this account or another).
        Err(StoreError::Conflict) => return Err(MfaError::InvalidCredential),
        other => other?,
    };
    app.after_commit(committed);
    Ok((record, first.then_some(codes)))
}

/// Removes credential `id` of the caller.
pub async fn remove(app: &AppState, principal: &Principal, id: Uuid) -> Result<(), MfaError> {
    super::mfa::require_recent_aal2(app, principal)?;
    let user = owner(app, principal.user_id).await?;
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::passkey_removed(user.id, id, user.id, now)],
        mails: vec![notice(app, &user, FactorChange::PasskeyRemoved, now)],
        ..Effects::default()
    };
    let committed = match app.store.remove_credential(user.id, id, &effects).await {
        Err(StoreError::NotFound) => return Err(MfaError::NotFound),
        other => other?,
    };
    app.after_commit(committed);
    Ok(())
}

/// `PublicKeyCredentialRequestOptions` for `user_id`'s credentials and the state to keep;
/// `None` when the user has none.
async fn request_options(
    app: &AppState,
    user_id: Uuid,
) -> Result<Option<(Value, String)>, MfaError> {
    let webauthn = relying_party(app)?;
    let factors = app.store.factors(user_id).await?;
    if factors.credentials.is_empty() {
        return Ok(None);
    }
    let (options, state) = webauthn
        .start_passkey_authentication(&passkeys_of(&factors.credentials)?)
        .map_err(|e| Fault::Internal(anyhow::anyhow!("webauthn authentication: {e}")))?;
    Ok(Some((to_value(&options.public_key)?, to_json(&state)?)))
}

/// Options for the second step of a login with a credential: its challenge joins the login's.
pub async fn second_factor_options(app: &AppState, mfa_token: &str) -> Result<Value, MfaError> {
    let key_hash = random::token_hash(mfa_token);
    let challenge = app
        .store
        .challenge(&key_hash, ChallengeKind::Login, app.clock.now())
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    let user_id = challenge.user_id.ok_or(MfaError::InvalidMfa)?;
    let (options, state) = request_options(app, user_id)
        .await?
        .ok_or(MfaError::InvalidMfa)?;
    if !app
        .store
        .set_challenge_state(&key_hash, &state, app.clock.now())
        .await?
    {
        return Err(MfaError::InvalidMfa);
    }
    Ok(options)
}

/// Options for re-authenticating the caller's session with one of their credentials.
pub async fn reauth_options(app: &AppState, principal: &Principal) -> Result<Value, MfaError> {
    let key_hash = reauth_key(principal.session_id);
    let (options, state) = request_options(app, principal.user_id)
        .await?
        .ok_or(MfaError::NotFound)?;
    let mut challenge = ceremony(app, key_hash, ChallengeKind::Reauthenticate, state);
    challenge.user_id = Some(principal.user_id);
    challenge.session_id = Some(principal.session_id);
    app.store.put_challenge(&challenge).await?;
    Ok(options)
}

/// Whether `assertion` answers challenge `state` with a credential of `user_id`; a use is
/// recorded (counter, backup state, time).
pub(crate) async fn check_assertion(
    app: &AppState,
    user_id: Uuid,
    assertion: &Value,
    state: Option<&str>,
) -> Result<bool, MfaError> {
    let (Ok(webauthn), Some(state)) = (relying_party(app), state) else {
        return Ok(false);
    };
    let state: PasskeyAuthentication =
        serde_json::from_str(state).map_err(|e| Fault::Internal(e.into()))?;
    let Ok(assertion) = serde_json::from_value::<PublicKeyCredential>(assertion.clone()) else {
        return Ok(false);
    };
    let credential_id = URL_SAFE_NO_PAD.encode(assertion.get_credential_id());
    let Some(record) = app.store.credential(&credential_id).await? else {
        return Ok(false);
    };
    if record.user_id != user_id {
        return Ok(false);
    }
    match webauthn.finish_passkey_authentication(&assertion, &state) {
        Ok(result) => {
            record_use(app, &record, &result).await?;
            Ok(true)
        }
        Err(error) => {
            tracing::debug!(%error, "webauthn assertion refused");
            Ok(false)
        }
    }
}

async fn record_use(
    app: &AppState,
    record: &CredentialRecord,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<(), MfaError> {
    let mut passkey: Passkey =
        serde_json::from_str(&record.passkey).map_err(|e| Fault::Internal(e.into()))?;
    passkey.update_credential(result);
    app.store
        .record_credential_use(record.id, &to_json(&passkey)?, app.clock.now())
        .await?;
    Ok(())
}

/// Options for a passkey sign-in: any discoverable credential of this relying party may answer.
pub async fn login_options(app: &AppState) -> Result<(String, Value), MfaError> {
    let webauthn = relying_party(app)?;
    let (options, state) = webauthn
        .start_discoverable_authentication()
        .map_err(|e| Fault::Internal(anyhow::anyhow!("webauthn sign-in: {e}")))?;
    let challenge_id = random::token();
    let challenge = ceremony(
        app,
        random::token_hash(&challenge_id),
        ChallengeKind::Passkey,
        to_json(&state)?,
    );
    app.store.put_challenge(&challenge).await?;
    Ok((challenge_id, to_value(&options.public_key)?))
}

/// Signs in with a discoverable credential: no email, no password. The credential names its
/// user; it must be registered to that user.
pub async fn login(
    app: &AppState,
    challenge_id: &str,
    credential: Value,
    client: ClientInfo,
) -> Result<TokenPair, MfaError> {
    let webauthn = relying_party(app).map_err(|_| MfaError::InvalidCredentials)?;
    let state = app
        .store
        .take_challenge(
            &random::token_hash(challenge_id),
            ChallengeKind::Passkey,
            app.clock.now(),
        )
        .await?
        .and_then(|challenge| challenge.state)
        .ok_or(MfaError::InvalidCredentials)?;
    let state: DiscoverableAuthentication =
        serde_json::from_str(&state).map_err(|e| Fault::Internal(e.into()))?;
    let assertion: PublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| MfaError::InvalidCredentials)?;
    let (user_id, credential_id) = webauthn
        .identify_discoverable_authentication(&assertion)
        .map_err(|_| MfaError::InvalidCredentials)?;
    let record = app
        .store
        .credential(&URL_SAFE_NO_PAD.encode(credential_id))
        .await?
        .filter(|record| record.user_id == user_id)
        .ok_or(MfaError::InvalidCredentials)?;
    let passkey: Passkey =
        serde_json::from_str(&record.passkey).map_err(|e| Fault::Internal(e.into()))?;
    let result = webauthn
        .finish_discoverable_authentication_v2(&assertion, state, &passkey)
        .map_err(|error| {
            tracing::debug!(%error, "passkey sign-in refused");
            MfaError::InvalidCredentials
        })?;
    record_use(app, &record, &result).await?;
    let credentials = app
        .store
        .credentials(user_id)
        .await?
        .ok_or(MfaError::InvalidCredentials)?;
    let user = credentials.user;
    if user.disabled {
        return Err(MfaError::AccountDisabled);
    }
    if app.config.require_email_verification && !user.email_verified {
        return Err(MfaError::InvalidCredentials);
    }
    let assurance = Assurance::of(
        app.clock.now(),
        &[AuthMethod::HardwareKey, AuthMethod::UserVerified],
    );
    open_session(
        app,
        user,
        credentials.password_hash.as_deref(),
        client,
        assurance,
    )
    .await
}
