//! `ApiError`: the only type that knows status codes, the contract's `code` strings and
//! RFC 9457 problem documents. Each service error converts into it explicitly.

use crate::domain::{FieldError, ValidationErrors};
use crate::service::accounts::{AccountError, RegisterError};
use crate::service::admin::AdminError;
use crate::service::mfa::MfaError;
use crate::service::recovery::RecoveryError;
use crate::service::sessions::{AuthError, LoginError, RefreshError, SessionError};
use crate::service::{Fault, Outage};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// Every way a request can fail, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not JSON, wrong types, duplicate keys.
    #[error("malformed body: {0}")]
    MalformedBody(&'static str),
    /// One or more fields break a rule.
    #[error("validation failed")]
    Validation(ValidationErrors),
    /// No valid bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// A valid token, weaker or older than the route demands (RFC 9470).
    #[error("insufficient user authentication")]
    InsufficientAuthentication {
        /// The level demanded, when one was.
        acr: Option<crate::domain::Acr>,
        /// The most seconds since authentication allowed, when given.
        max_age: Option<i64>,
    },
    /// An OAuth client's token without a scope the route names (RFC 6750 §3.1); the scopes.
    #[error("insufficient scope")]
    InsufficientScope(String),
    /// Wrong email or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The refresh token is unknown, expired, revoked or reused.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A mailed token or code is unknown, expired, used or dead.
    #[error("invalid token")]
    InvalidToken,
    /// Right password, email not verified.
    #[error("email not verified")]
    EmailNotVerified,
    /// Right password, account disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// A second factor is needed: after a right password, with the `mfa_token` that completes
    /// the login; on an endpoint, the token's authentication has one factor where two are due.
    #[error("mfa required")]
    MfaRequired(Option<crate::service::mfa::SecondStep>),
    /// A wrong second factor, or a spent, expired or unknown `mfa_token`.
    #[error("invalid mfa")]
    InvalidMfa,
    /// The code confirming an enrolment is wrong.
    #[error("invalid code")]
    InvalidCode,
    /// The WebAuthn credential offered for registration does not verify.
    #[error("invalid credential")]
    InvalidCredential,
    /// The factor is enrolled already.
    #[error("already enrolled")]
    AlreadyEnrolled,
    /// The token's authentication is too old for this change.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// The password confirming a change is wrong.
    #[error("invalid current password")]
    InvalidCurrentPassword,
    /// The email is taken.
    #[error("email taken")]
    EmailTaken,
    /// The change would leave no enabled, verified admin.
    #[error("last admin")]
    LastAdmin,
    /// Authenticated but not allowed.
    #[error("forbidden")]
    Forbidden,
    /// No such resource.
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body over the limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Body not sent as JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The body did not arrive within the body timeout.
    #[error("request timeout")]
    RequestTimeout,
    /// A rate limit ran out.
    #[error("rate limited")]
    RateLimited(crate::ratelimit::Limited),
    /// The hashing queue is full.
    #[error("overloaded")]
    Overloaded,
    /// A peer cannot be reached (or the answer ran out of time).
    #[error("unavailable")]
    Unavailable(Outage, anyhow::Error),
    /// Anything unexpected; logged with the request id, never shown.
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// An RFC 9457 problem document with the contract's `code` and field `errors`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` carries the machine-readable kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Short summary.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Explanation for a human.
    pub detail: String,
    /// One entry per offending field (validation failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// `mfa_required` after a right password: the single-use token that completes the login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// `mfa_required` after a right password: the methods that can complete it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<&'static str>>,
}

/// The cause of a 5xx, carried in the response's extensions and logged once, inside the
/// request's span, by the request middleware.
#[derive(Clone)]
pub struct LoggedCause(pub Arc<anyhow::Error>);

const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiError::*;
        let (status, code, title, detail): (StatusCode, &str, &str, String) = match self {
            MalformedBody(why) => (
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "Malformed body",
                format!("The request body is not valid JSON for this endpoint: {why}."),
            ),
            Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Validation failed",
                "One or more fields are invalid.".into(),
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "A valid bearer token is required.".into(),
            ),
            InsufficientAuthentication { .. } => (
                StatusCode::UNAUTHORIZED,
                "insufficient_user_authentication",
                "Insufficient user authentication",
                "This route needs a stronger or more recent authentication.".into(),
            ),
            InsufficientScope(_) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Insufficient scope",
                "The token was not granted every scope this route needs.".into(),
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "The email or password is incorrect.".into(),
            ),
            InvalidRefreshToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "Invalid refresh token",
                "The refresh token is unknown, expired, revoked or already used; log in again."
                    .into(),
            ),
            InvalidToken => (
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "Invalid token",
                "The link or code is unknown, expired or already used; ask for a new one.".into(),
            ),
            EmailNotVerified => (
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Email not verified",
                "Confirm your email address before logging in.".into(),
            ),
            AccountDisabled => (
                StatusCode::FORBIDDEN,
                "account_disabled",
                "Account disabled",
                "This account has been disabled.".into(),
            ),
            MfaRequired(Some(_)) => (
                StatusCode::FORBIDDEN,
                "mfa_required",
                "Second factor required",
                "The password is right; complete the login at /auth/mfa/verify with the mfa_token and one of the methods.".into(),
            ),
            MfaRequired(None) => (
                StatusCode::FORBIDDEN,
                "mfa_required",
                "Second factor required",
                "This needs a sign-in with two factors (aal2): re-authenticate with a second factor at /auth/reauthenticate.".into(),
            ),
            InvalidMfa => (
                StatusCode::UNAUTHORIZED,
                "invalid_mfa",
                "Invalid second factor",
                "The code or credential is wrong, or the mfa_token is spent or expired.".into(),
            ),
            InvalidCode => (
                StatusCode::BAD_REQUEST,
                "invalid_code",
                "Invalid code",
                "The code does not match the authenticator being enrolled.".into(),
            ),
            InvalidCredential => (
                StatusCode::BAD_REQUEST,
                "invalid_credential",
                "Invalid credential",
                "The WebAuthn credential does not answer the registration options asked last, or is registered already.".into(),
            ),
            AlreadyEnrolled => (
                StatusCode::CONFLICT,
                "already_enrolled",
                "Already enrolled",
                "An authenticator app is enrolled already; remove it first.".into(),
            ),
            ReauthenticationRequired => (
                StatusCode::FORBIDDEN,
                "reauthentication_required",
                "Reauthentication required",
                "This change needs a recent sign-in: re-authenticate at /auth/reauthenticate.".into(),
            ),
            InvalidCurrentPassword => (
                StatusCode::FORBIDDEN,
                "invalid_current_password",
                "Invalid current password",
                "The password given is incorrect.".into(),
            ),
            EmailTaken => (
                StatusCode::CONFLICT,
                "email_taken",
                "Email taken",
                "An account with this email already exists.".into(),
            ),
            LastAdmin => (
                StatusCode::CONFLICT,
                "last_admin",
                "Last admin",
                "This would leave no enabled, verified admin.".into(),
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "You are not allowed to do this.".into(),
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "There is nothing here.".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This path does not accept this method.".into(),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "The request body is over 64 KiB.".into(),
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Send the body as application/json.".into(),
            ),
            RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
                "The request body did not arrive in time.".into(),
            ),
            RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                "Too many attempts; wait for the time given in Retry-After.".into(),
            ),
            Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                "The service is busy; retry shortly.".into(),
            ),
            Unavailable(outage, _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
                match outage {
                    Outage::Database => "The service cannot reach its database; retry shortly.",
                    Outage::Redis => "The service cannot reach Redis, which its instances share revocations and rate limits through; retry shortly.",
                    Outage::Deadline => "The service did not answer in time; retry shortly.",
                    Outage::ShuttingDown => "This instance is shutting down; retry on another.",
                }
                .into(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; it has been logged.".into(),
            ),
        };
        (status, code, title, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        let errors = match &self {
            ApiError::Validation(errors) => Some(errors.0.clone()),
            _ => None,
        };
        let (mfa_token, methods) = match &self {
            ApiError::MfaRequired(Some(step)) => {
                (Some(step.mfa_token.clone()), Some(step.methods.clone()))
            }
            _ => (None, None),
        };
        let problem = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            code,
            detail,
            errors,
            mfa_token,
            methods,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::InsufficientScope(scopes) => {
                let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scopes}\"");
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::InsufficientAuthentication { acr, max_age } => {
                // RFC 9470 §3: the challenge names what would satisfy the route.
                let mut challenge = String::from(
                    "Bearer error=\"insufficient_user_authentication\", error_description=\"A stronger or more recent authentication is required\"",
                );
                if let Some(acr) = acr {
                    challenge.push_str(&format!(", acr_values=\"{}\"", acr.as_str()));
                }
                if let Some(max_age) = max_age {
                    challenge.push_str(&format!(", max_age={max_age}"));
                }
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::RateLimited(limited) => {
                let window = limited.policy.window.whole_seconds();
                let values = [
                    (header::RETRY_AFTER, limited.retry_after.to_string()),
                    (
                        HeaderName::from_static("ratelimit-policy"),
                        format!("{};w={window}", limited.policy.limit),
                    ),
                    (
                        HeaderName::from_static("ratelimit"),
                        format!(
                            "limit={}, remaining=0, reset={}",
                            limited.policy.limit, limited.retry_after
                        ),
                    ),
                ];
                for (name, value) in values {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(name, value);
                    }
                }
            }
            // The rest of the slow body may still be on its way: the connection cannot carry
            // another request.
            ApiError::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Overloaded | ApiError::Unavailable(..) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            _ => {}
        }
        if let ApiError::Internal(cause) | ApiError::Unavailable(_, cause) = self {
            response
                .extensions_mut()
                .insert(LoggedCause(Arc::new(cause)));
        }
        response
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> ApiError {
        ApiError::Validation(errors)
    }
}

impl From<Fault> for ApiError {
    fn from(fault: Fault) -> ApiError {
        match fault {
            Fault::Overloaded => ApiError::Overloaded,
            Fault::Unavailable(outage, cause) => ApiError::Unavailable(outage, cause),
            Fault::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> ApiError {
        match error {
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::EmailNotVerified => ApiError::EmailNotVerified,
            LoginError::AccountDisabled => ApiError::AccountDisabled,
            LoginError::MfaRequired(step) => ApiError::MfaRequired(Some(step)),
            LoginError::Fault(fault) => fault.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Unauthorized => ApiError::Unauthorized,
            AuthError::Fault(fault) => fault.into(),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(error: RegisterError) -> ApiError {
        match error {
            RegisterError::EmailTaken => ApiError::EmailTaken,
            RegisterError::Fault(fault) => fault.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> ApiError {
        match error {
            AccountError::Invalid(errors) => ApiError::Validation(errors),
            AccountError::InvalidCurrentPassword => ApiError::InvalidCurrentPassword,
            // The token outlived its account.
            AccountError::Gone => ApiError::Unauthorized,
            AccountError::Fault(fault) => fault.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> ApiError {
        match error {
            RefreshError::Invalid => ApiError::InvalidRefreshToken,
            RefreshError::Fault(fault) => fault.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> ApiError {
        match error {
            SessionError::NotFound => ApiError::NotFound,
            SessionError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::service::email_login::EmailLoginError> for ApiError {
    fn from(error: crate::service::email_login::EmailLoginError) -> ApiError {
        use crate::service::email_login::EmailLoginError;
        match error {
            EmailLoginError::Off => ApiError::NotFound,
            EmailLoginError::InvalidToken => ApiError::InvalidToken,
            EmailLoginError::AccountDisabled => ApiError::AccountDisabled,
            EmailLoginError::MfaRequired(step) => ApiError::MfaRequired(Some(step)),
            EmailLoginError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::service::email_change::EmailChangeError> for ApiError {
    fn from(error: crate::service::email_change::EmailChangeError) -> ApiError {
        use crate::service::email_change::EmailChangeError;
        match error {
            EmailChangeError::EmailTaken => ApiError::EmailTaken,
            EmailChangeError::InvalidToken => ApiError::InvalidToken,
            EmailChangeError::Invalid(errors) => ApiError::Validation(errors),
            EmailChangeError::ReauthenticationRequired => ApiError::ReauthenticationRequired,
            // The token outlived its account.
            EmailChangeError::Gone => ApiError::Unauthorized,
            EmailChangeError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::service::oauth_clients::ClientError> for ApiError {
    fn from(error: crate::service::oauth_clients::ClientError) -> ApiError {
        use crate::service::oauth_clients::ClientError;
        match error {
            ClientError::NotFound => ApiError::NotFound,
            ClientError::Invalid(errors) => ApiError::Validation(errors),
            ClientError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::service::invitations::InvitationError> for ApiError {
    fn from(error: crate::service::invitations::InvitationError) -> ApiError {
        use crate::service::invitations::InvitationError;
        match error {
            InvitationError::EmailTaken => ApiError::EmailTaken,
            InvitationError::InvalidToken => ApiError::InvalidToken,
            InvitationError::Invalid(errors) => ApiError::Validation(errors),
            InvitationError::AccountDisabled => ApiError::AccountDisabled,
            InvitationError::Fault(fault) => fault.into(),
        }
    }
}

impl From<RecoveryError> for ApiError {
    fn from(error: RecoveryError) -> ApiError {
        match error {
            RecoveryError::InvalidToken => ApiError::InvalidToken,
            RecoveryError::InvalidCredentials => ApiError::InvalidCredentials,
            RecoveryError::Invalid(errors) => ApiError::Validation(errors),
            RecoveryError::Fault(fault) => fault.into(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> ApiError {
        match error {
            AdminError::Forbidden => ApiError::Forbidden,
            AdminError::NotFound => ApiError::NotFound,
            AdminError::LastAdmin => ApiError::LastAdmin,
            AdminError::EmailTaken => ApiError::EmailTaken,
            AdminError::ReauthenticationRequired => ApiError::ReauthenticationRequired,
            AdminError::Invalid(errors) => ApiError::Validation(errors),
            AdminError::Fault(fault) => fault.into(),
        }
    }
}

impl From<crate::ratelimit::LimitError> for ApiError {
    fn from(error: crate::ratelimit::LimitError) -> ApiError {
        match error {
            crate::ratelimit::LimitError::Limited(limited) => ApiError::RateLimited(limited),
            crate::ratelimit::LimitError::Unavailable => ApiError::Unavailable(
                Outage::Redis,
                anyhow::anyhow!("the rate-limit store is unreachable"),
            ),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(error: MfaError) -> ApiError {
        match error {
            MfaError::InvalidMfa => ApiError::InvalidMfa,
            MfaError::InvalidCode => ApiError::InvalidCode,
            MfaError::InvalidCredential => ApiError::InvalidCredential,
            MfaError::InvalidCredentials => ApiError::InvalidCredentials,
            MfaError::AccountDisabled => ApiError::AccountDisabled,
            MfaError::AlreadyEnrolled => ApiError::AlreadyEnrolled,
            MfaError::NotFound => ApiError::NotFound,
            MfaError::ReauthenticationRequired => ApiError::ReauthenticationRequired,
            MfaError::SecondFactorRequired => ApiError::MfaRequired(None),
            MfaError::Fault(fault) => fault.into(),
        }
    }
}
