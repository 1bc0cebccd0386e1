//! The request and response bodies of the second-factor endpoints, as the OpenAPI document
//! describes them.

use crate::http::views::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A second factor: exactly one of its fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FactorFields {
    /// A 6-digit TOTP code.
    pub(super) totp: Option<String>,
    /// A recovery code (`xxxxx-xxxxx`; case, spaces and dashes do not matter).
    pub(super) recovery_code: Option<String>,
    /// A WebAuthn assertion, `PublicKeyCredential.toJSON()` (base64url fields).
    #[schema(value_type = Option<Object>)]
    pub(super) webauthn: Option<Value>,
}

/// Body of `POST /auth/mfa/verify`: the `mfa_token` and one of `totp`, `recovery_code`,
/// `webauthn`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaVerifyRequest {
    /// From the `mfa_required` answer of the login.
    #[schema(required = true, value_type = String)]
    pub(super) mfa_token: Option<String>,
    #[serde(flatten)]
    pub(super) factor: FactorFields,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// Body of `POST /auth/mfa/webauthn/options`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MfaTokenRequest {
    /// From the `mfa_required` answer of the login.
    #[schema(required = true, value_type = String)]
    pub(super) mfa_token: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// An empty body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmptyRequest {
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// Body of `POST /auth/passkey/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasskeyLoginRequest {
    /// From `POST /auth/passkey/options`.
    #[schema(required = true, value_type = String)]
    pub(super) challenge_id: Option<String>,
    /// The assertion, `PublicKeyCredential.toJSON()`.
    #[schema(required = true, value_type = Object)]
    pub(super) credential: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// Body of `POST /users/me/mfa/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TotpConfirmRequest {
    /// A current code of the authenticator being enrolled.
    #[schema(required = true, value_type = String)]
    pub(super) code: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// Body of `POST /users/me/mfa/webauthn`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CredentialRequest {
    /// A name for the credential, 1–100 characters.
    #[schema(required = true, value_type = String)]
    pub(super) name: Option<String>,
    /// The new credential, `PublicKeyCredential.toJSON()` of `navigator.credentials.create`.
    #[schema(required = true, value_type = Object)]
    pub(super) credential: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// Body of `POST /auth/reauthenticate`: exactly one of `password`, `totp`, `webauthn`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReauthenticateRequest {
    /// The password.
    #[schema(value_type = Option<String>, format = Password)]
    pub(super) password: Option<String>,
    /// A 6-digit TOTP code.
    pub(super) totp: Option<String>,
    /// A WebAuthn assertion for the options of `POST /auth/reauthenticate/options`.
    #[schema(value_type = Option<Object>)]
    pub(super) webauthn: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub(super) unknown: Map<String, Value>,
}

/// WebAuthn options, as `navigator.credentials` takes them once decoded (base64url fields).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebauthnOptionsView {
    /// `PublicKeyCredentialCreationOptions` or `PublicKeyCredentialRequestOptions`.
    #[schema(value_type = Object)]
    pub(super) public_key: Value,
}

/// The options of a passkey sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyOptionsView {
    /// Send it back with the credential.
    pub(super) challenge_id: String,
    /// `PublicKeyCredentialRequestOptions` for a discoverable credential.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub(super) public_key: Value,
}

/// One WebAuthn credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    /// latchkey's id for it (for removal).
    pub(super) id: String,
    /// Its name.
    pub(super) name: String,
    /// When it was registered.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub(super) created_at: OffsetDateTime,
    /// When it last signed in, or null.
    #[serde(serialize_with = "optional_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(super) last_used_at: Option<OffsetDateTime>,
}

impl From<crate::store::CredentialRecord> for CredentialView {
    fn from(record: crate::store::CredentialRecord) -> CredentialView {
        CredentialView {
            id: record.id.to_string(),
            name: record.name,
            created_at: record.created_at,
            last_used_at: record.last_used_at,
        }
    }
}

fn optional_rfc3339<S: serde::Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// The caller's factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatusView {
    /// A confirmed TOTP authenticator is enrolled.
    pub(super) totp: bool,
    /// WebAuthn credentials, oldest first.
    pub(super) webauthn: Vec<CredentialView>,
    /// Unused recovery codes.
    pub(super) recovery_codes_left: i64,
}

/// A pending TOTP enrolment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// The secret, base32, for typing into an app.
    pub(super) secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub(super) otpauth_uri: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Present only when this enrolment was the first factor (or on regeneration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recovery_codes: Option<Vec<String>>,
}

/// A newly registered credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewCredentialView {
    #[serde(flatten)]
    pub(super) credential: CredentialView,
    /// Present only when this credential was the first factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recovery_codes: Option<Vec<String>>,
}
