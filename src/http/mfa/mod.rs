//! Second factors and passkeys: the second step of a login, passkey sign-in, enrolment and
//! removal under `/users/me/mfa`, re-authentication, and an admin's reset.

use super::budget::Budget;
use super::cookie::Tokens;
use super::error::{ApiError, Problem};
use super::extract::{Admin, ApiJson, Bearer, Client, Enrolling};
use super::views::{TokenPairView, refuse_unknown};
use crate::domain::ValidationErrors;
use crate::ratelimit::Action;
use crate::service::mfa::{self, Proof};
use crate::service::{admin, passkeys};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

mod bodies;
pub use bodies::{
    CredentialRequest, CredentialView, EmptyRequest, FactorFields, MfaStatusView, MfaTokenRequest,
    MfaVerifyRequest, NewCredentialView, PasskeyLoginRequest, PasskeyOptionsView,
    ReauthenticateRequest, RecoveryCodesView, TotpConfirmRequest, TotpEnrolmentView,
    WebauthnOptionsView,
};

/// The one factor a body names, or the fields' problems (none, or several, given).
fn one_factor(
    errors: &mut ValidationErrors,
    candidates: [(&str, Option<Proof>); 3],
) -> Option<Proof> {
    let names: Vec<&str> = candidates.iter().map(|(field, _)| *field).collect();
    let mut given: Vec<(&str, Proof)> = candidates
        .into_iter()
        .filter_map(|(field, proof)| proof.map(|proof| (field, proof)))
        .collect();
    match given.len() {
        1 => given.pop().map(|(_, proof)| proof),
        0 => {
            for field in names {
                errors.add(field, "give exactly one of the factors");
            }
            None
        }
        _ => {
            for (field, _) in &given {
                errors.add(field, "give exactly one factor, not several");
            }
            None
        }
    }
}

/// Complete a login that answered `mfa_required`, with one enrolled method. A wrong code costs
/// the `mfa_token` one of its 5 tries and counts against the account like a wrong password.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "auth", operation_id = "mfa_verify", request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPairView),
        (status = 401, description = "`invalid_mfa`: wrong code or credential, or a spent or expired mfa_token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<MfaVerifyRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(&app, Action::Mfa, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let token = errors.require("mfa_token", req.mfa_token);
    let FactorFields {
        totp,
        recovery_code,
        webauthn,
    } = req.factor;
    let proof = one_factor(
        &mut errors,
        [
            ("totp", totp.map(Proof::Totp)),
            ("recovery_code", recovery_code.map(Proof::RecoveryCode)),
            ("webauthn", webauthn.map(Proof::Webauthn)),
        ],
    );
    let (token, proof) = errors.and(token.zip(proof))?;
    let pair = mfa::verify_login(&app, &token, proof, &client).await?;
    Ok(Tokens::new(&app, pair))
}

/// WebAuthn options for the second step of a login: the user's credentials may answer.
#[utoipa::path(post, path = "/auth/mfa/webauthn/options", tag = "auth", request_body = MfaTokenRequest,
    responses(
        (status = 200, description = "Options for `navigator.credentials.get`", body = WebauthnOptionsView),
        (status = 401, description = "`invalid_mfa`: spent or expired mfa_token, or no credential enrolled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn second_factor_options(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<MfaTokenRequest>,
) -> Result<Json<WebauthnOptionsView>, ApiError> {
    budget
        .check(&app, Action::Mfa, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let token = errors.require("mfa_token", req.mfa_token);
    let token = errors.and(token)?;
    let public_key = passkeys::second_factor_options(&app, &token).await?;
    Ok(Json(WebauthnOptionsView { public_key }))
}

/// Options for a passkey sign-in with a discoverable credential: no email needed.
#[utoipa::path(post, path = "/auth/passkey/options", tag = "auth", request_body = EmptyRequest,
    responses(
        (status = 200, description = "A challenge and options for `navigator.credentials.get`", body = PasskeyOptionsView),
        (status = 404, description = "`not_found`: passkeys are off (the public URL is not on a domain name)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn passkey_options(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmptyRequest>,
) -> Result<Json<PasskeyOptionsView>, ApiError> {
    budget
        .check(&app, Action::Mfa, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    errors.and(Some(()))?;
    let (challenge_id, public_key) = passkeys::login_options(&app).await?;
    Ok(Json(PasskeyOptionsView {
        challenge_id,
        public_key,
    }))
}

/// Sign in with a passkey: the answer to `POST /auth/passkey/options`. A user-verified passkey
/// is two factors (`acr` `aal2`).
#[utoipa::path(post, path = "/auth/passkey/login", tag = "auth", request_body = PasskeyLoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPairView),
        (status = 401, description = "`invalid_credentials`: unknown, spent or expired challenge, or a credential that does not verify", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn passkey_login(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<PasskeyLoginRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(&app, Action::Mfa, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let challenge_id = errors.require("challenge_id", req.challenge_id);
    let credential = errors.require("credential", req.credential);
    let (challenge_id, credential) = errors.and(challenge_id.zip(credential))?;
    let pair = passkeys::login(&app, &challenge_id, credential, client).await?;
    Ok(Tokens::new(&app, pair))
}

/// The caller's second factors.
#[utoipa::path(get, path = "/users/me/mfa", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "Factors", body = MfaStatusView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn status(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<Json<MfaStatusView>, ApiError> {
    let status = mfa::status(&app, &principal).await?;
    Ok(Json(MfaStatusView {
        totp: status.totp,
        webauthn: status.credentials.into_iter().map(Into::into).collect(),
        recovery_codes_left: status.recovery_codes_left,
    }))
}

/// Begin enrolling a TOTP authenticator: a new secret, pending until `totp/confirm`. Needs a
/// recent authentication, and `aal2` when another factor is enrolled already.
#[utoipa::path(post, path = "/users/me/mfa/totp", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The pending secret", body = TotpEnrolmentView),
        (status = 403, description = "`reauthentication_required`, or `mfa_required` (another factor is enrolled: a token of aal2 is needed)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_enrolled`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enrol_totp(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<Json<TotpEnrolmentView>, ApiError> {
    let enrolment = mfa::enrol_totp(&app, &principal).await?;
    Ok(Json(TotpEnrolmentView {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

/// Confirm the pending TOTP authenticator with a current code; the recovery codes come back
/// when it is the first factor.
#[utoipa::path(post, path = "/users/me/mfa/totp/confirm", tag = "users", security(("bearer" = [])), request_body = TotpConfirmRequest,
    responses(
        (status = 200, description = "Enrolled", body = RecoveryCodesView),
        (status = 400, description = "`invalid_code` (or nothing pending)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_totp(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    let code = super::views::single_field("code", req.code, &req.unknown)?;
    let recovery_codes = mfa::confirm_totp(&app, &principal, &code).await?;
    Ok(Json(RecoveryCodesView { recovery_codes }))
}

/// Remove the TOTP authenticator. Needs a recent authentication with two factors.
#[utoipa::path(delete, path = "/users/me/mfa/totp", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: none enrolled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_totp(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
) -> Result<StatusCode, ApiError> {
    mfa::remove_totp(&app, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// WebAuthn options for registering a new credential (asked to be discoverable where the
/// authenticator can). Needs a recent authentication.
#[utoipa::path(post, path = "/users/me/mfa/webauthn/options", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.create`", body = WebauthnOptionsView),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: passkeys are off", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn registration_options(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<Json<WebauthnOptionsView>, ApiError> {
    let public_key = passkeys::registration_options(&app, &principal).await?;
    Ok(Json(WebauthnOptionsView { public_key }))
}

/// Register the credential made for the options asked last.
#[utoipa::path(post, path = "/users/me/mfa/webauthn", tag = "users", security(("bearer" = [])), request_body = CredentialRequest,
    responses(
        (status = 201, description = "Registered", body = NewCredentialView),
        (status = 400, description = "`invalid_credential`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_credential(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let name = errors.require("name", req.name);
    let credential = errors.require("credential", req.credential);
    let (name, credential) = errors.and(name.zip(credential))?;
    let (record, recovery_codes) = passkeys::register(&app, &principal, &name, credential).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewCredentialView {
            credential: record.into(),
            recovery_codes,
        }),
    )
        .into_response())
}

/// Remove one of the caller's credentials. Needs a recent authentication with two factors.
#[utoipa::path(delete, path = "/users/me/mfa/webauthn/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "A credential id from `GET /users/me/mfa`")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_credential(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound);
    };
    passkeys::remove(&app, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes; the old ones die. Needs a recent authentication with two factors.
#[utoipa::path(post, path = "/users/me/mfa/recovery-codes", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The new codes, shown once", body = RecoveryCodesView),
        (status = 403, description = "`reauthentication_required` or `mfa_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no second factor enrolled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn regenerate_recovery_codes(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    let codes = mfa::regenerate_recovery_codes(&app, &principal).await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: Some(codes),
    }))
}

/// WebAuthn options for re-authenticating with one of the caller's credentials.
#[utoipa::path(post, path = "/auth/reauthenticate/options", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.get`", body = WebauthnOptionsView),
        (status = 404, description = "`not_found`: no credential registered, or passkeys off", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reauth_options(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<Json<WebauthnOptionsView>, ApiError> {
    let public_key = passkeys::reauth_options(&app, &principal).await?;
    Ok(Json(WebauthnOptionsView { public_key }))
}

/// Re-authenticate the caller's session: a new token pair for it with `auth_time` now. A
/// second factor adds to what the session proved (step-up to `aal2`); a password counts as one
/// factor. The session's earlier refresh tokens are spent.
#[utoipa::path(post, path = "/auth/reauthenticate", tag = "auth", security(("bearer" = [])), request_body = ReauthenticateRequest,
    responses(
        (status = 200, description = "Re-authenticated", body = TokenPairView),
        (status = 401, description = "`invalid_credentials` (password) or `invalid_mfa` (code, credential)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reauthenticate(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<ReauthenticateRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(&app, Action::Mfa, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let proof = one_factor(
        &mut errors,
        [
            ("password", req.password.map(Proof::Password)),
            ("totp", req.totp.map(Proof::Totp)),
            ("webauthn", req.webauthn.map(Proof::Webauthn)),
        ],
    );
    let proof = errors.and(proof)?;
    let pair = mfa::reauthenticate(&app, &principal, proof, &client).await?;
    Ok(Tokens::new(&app, pair))
}

/// Remove every second factor of a user and revoke every session; the owner is mailed. Needs
/// the admin's own token at `aal2`.
#[utoipa::path(delete, path = "/users/{id}/mfa", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Every factor removed, every session revoked"),
        (status = 403, description = "`forbidden`, or `mfa_required` (the admin's token is not aal2)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset(
    State(app): State<AppState>,
    Admin(actor): Admin,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    admin::reset_mfa(&app, &actor, id.ok().map(|Path(id)| id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
