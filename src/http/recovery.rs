//! `/auth/confirm-email`, `/auth/resend-confirmation`, `/auth/forgot-password`,
//! `/auth/reset-password`, `/auth/email-login[/verify]`, `/auth/accept-invitation`,
//! `/auth/confirm-email-change`, `/auth/revert-email-change`: the JSON side of the mail flows.

use super::budget::Budget;
use super::cookie::Tokens;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Client, budget_account};
use super::views::{NewPasswordSchema, TokenPairView, UserView, refuse_unknown, single_field};
use crate::domain::ValidationErrors;
use crate::ratelimit::Action;
use crate::service::recovery::{self, MailedProof};
use crate::service::{email_change, email_login, invitations};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Body of `POST /auth/confirm-email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmEmailRequest {
    /// The token from the mailed link.
    #[schema(required = true, value_type = String)]
    token: Option<String>,
    /// The account's password: required for the first confirmation of a self-registered
    /// account (the link alone proves the mailbox, not who created the account).
    #[schema(format = Password)]
    password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `POST /auth/resend-confirmation` and `POST /auth/forgot-password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailRequest {
    /// The account's email. Anything is taken: what cannot be an address gets the same 202.
    #[schema(required = true, value_type = String)]
    email: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `POST /auth/reset-password`: `{token, new_password}` or `{email, code, new_password}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// The token from the mailed link (or give `email` and `code`).
    token: Option<String>,
    /// The account's email, with `code`.
    #[schema(format = Email)]
    email: Option<String>,
    /// The mailed 6-digit code, with `email`.
    code: Option<String>,
    /// The new password, judged by the password policy.
    #[schema(required = true, value_type = NewPasswordSchema)]
    new_password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// The answer to requests that must not reveal whether an account exists.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedView {
    /// Always the same words.
    message: &'static str,
}

pub(super) const ACCEPTED: AcceptedView = AcceptedView {
    message: "If an account can use this, a mail is on its way.",
};

/// Confirm an email address with the token from the mailed link.
#[utoipa::path(post, path = "/auth/confirm-email", tag = "auth", request_body = ConfirmEmailRequest,
    responses(
        (status = 200, description = "The user, now verified", body = UserView),
        (status = 400, description = "`invalid_token` (unknown, expired or used) or `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: the password is required and wrong (counts as a failed login)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_email(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<ConfirmEmailRequest>,
) -> Result<Json<UserView>, ApiError> {
    budget
        .check(&app, Action::Confirm, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let token = errors.require("token", req.token);
    let token = errors.and(token)?;
    let user = recovery::confirm_email(&app, &token, req.password.as_deref(), &client).await?;
    Ok(Json(user.into()))
}

/// Send the confirmation mail again. Answers 202 with the same body whether or not the account
/// exists or is already verified; only an existing, unverified account gets a mail.
#[utoipa::path(post, path = "/auth/resend-confirmation", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "Accepted", body = AcceptedView)))]
pub async fn resend_confirmation(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let email = budgeted_email(&app, &client, &budget, req, Action::Resend).await?;
    recovery::resend_confirmation(&app, &email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// Ask for a password reset: an existing account gets a mail with a link and a 6-digit code.
/// Answers 202 with the same body for every address.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "Accepted", body = AcceptedView)))]
pub async fn forgot_password(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let email = budgeted_email(&app, &client, &budget, req, Action::Forgot).await?;
    recovery::forgot_password(&app, &email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// Set a new password with the mailed link's token, or with the email and the mailed code.
/// Every session of the user is revoked.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password changed; every session revoked"),
        (status = 400, description = "`invalid_token` (unknown, expired, used, or a code after 5 wrong tries) or `validation_failed` (field `new_password`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset_password(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    budget
        .check(
            &app,
            Action::Reset,
            client.ip.as_deref(),
            budget_account(req.email.as_deref()).as_ref(),
        )
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let new_password = errors.require("new_password", req.new_password);
    let proof = mailed_proof(&mut errors, req.token, req.email, req.code);
    let (proof, new_password) = errors.and(proof.zip(new_password))?;
    // Wrong codes are also budgeted per client network across accounts, so a code cannot be
    // sprayed over many addresses; every code presented counts when it arrives.
    if matches!(proof, MailedProof::Code { .. }) {
        budget
            .check(&app, Action::ResetCode, client.ip.as_deref(), None)
            .await?;
    }
    recovery::reset_password(&app, proof, &new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /auth/email-login/verify`: `{token}` or `{email, code}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailLoginVerifyRequest {
    /// The token from the mailed link (or give `email` and `code`).
    token: Option<String>,
    /// The account's email, with `code`.
    email: Option<String>,
    /// The mailed 6-digit code, with `email`.
    code: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Ask for a sign-in mail: an enabled, verified account gets a link and a 6-digit code
/// (`LATCHKEY_EMAIL_LOGIN_TTL`, default 15 minutes). Answers 202 with the same body, after the
/// same work, for every address.
#[utoipa::path(post, path = "/auth/email-login", tag = "auth", request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted", body = AcceptedView),
        (status = 404, description = "`not_found`: sign-in by email is off (`LATCHKEY_EMAIL_LOGIN=false`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn email_login(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let email = budgeted_email(&app, &client, &budget, req, Action::EmailLogin).await?;
    email_login::request(&app, &email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// Sign in with the mailed link's token, or with the email and the mailed code: a token pair
/// whose `amr` is `["email"]` (`acr` `aal1`), or, for an account with a second factor,
/// `mfa_required` as after a password.
#[utoipa::path(post, path = "/auth/email-login/verify", tag = "auth", request_body = EmailLoginVerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPairView),
        (status = 400, description = "`invalid_token` (unknown, expired, used, or a code after 5 wrong tries) or `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`, or `mfa_required` with `mfa_token` and `methods` for `POST /auth/mfa/verify`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: sign-in by email is off", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn email_login_verify(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailLoginVerifyRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(
            &app,
            Action::Reset,
            client.ip.as_deref(),
            budget_account(req.email.as_deref()).as_ref(),
        )
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let proof = mailed_proof(&mut errors, req.token, req.email, req.code);
    let proof = errors.and(proof)?;
    // Codes are also budgeted per client network across accounts, as reset codes are.
    if matches!(proof, MailedProof::Code { .. }) {
        budget
            .check(&app, Action::ResetCode, client.ip.as_deref(), None)
            .await?;
    }
    let pair = email_login::verify(&app, proof, client).await?;
    Ok(Tokens::new(&app, pair))
}

/// Body of `POST /auth/confirm-email-change` and `POST /auth/revert-email-change`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmailChangeTokenRequest {
    /// The token from the mailed link.
    #[schema(required = true, value_type = String)]
    token: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Confirm an email change with the link mailed to the new address: the account takes it
/// (verified), and every session but the one that asked for the change is revoked.
#[utoipa::path(post, path = "/auth/confirm-email-change", tag = "auth", request_body = EmailChangeTokenRequest,
    responses(
        (status = 200, description = "The user, with the new address", body = UserView),
        (status = 400, description = "`invalid_token` (unknown, expired, used, replaced by a newer change, or the address changed since) or `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`: the new address became another account's meanwhile", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_email_change(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailChangeTokenRequest>,
) -> Result<Json<UserView>, ApiError> {
    budget
        .check(&app, Action::Confirm, client.ip.as_deref(), None)
        .await?;
    let token = single_field("token", req.token, &req.unknown)?;
    Ok(Json(email_change::confirm(&app, &token).await?.into()))
}

/// Undo an email change with the link mailed to the old address: it is the account's again,
/// every session is revoked, the password removed, and a reset mailed to it.
#[utoipa::path(post, path = "/auth/revert-email-change", tag = "auth", request_body = EmailChangeTokenRequest,
    responses(
        (status = 200, description = "The user, with the old address again", body = UserView),
        (status = 400, description = "`invalid_token` (unknown, expired or used) or `validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revert_email_change(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<EmailChangeTokenRequest>,
) -> Result<Json<UserView>, ApiError> {
    budget
        .check(&app, Action::Confirm, client.ip.as_deref(), None)
        .await?;
    let token = single_field("token", req.token, &req.unknown)?;
    Ok(Json(email_change::revert(&app, &token).await?.into()))
}

/// Body of `POST /auth/accept-invitation`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation's link.
    #[schema(required = true, value_type = String)]
    token: Option<String>,
    /// The new account's password, judged by the password policy.
    #[schema(required = true, value_type = NewPasswordSchema)]
    password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Accept an invitation: the password is set, the address verified, and the new user signed in.
/// A password the policy refuses spends nothing.
#[utoipa::path(post, path = "/auth/accept-invitation", tag = "auth", request_body = AcceptInvitationRequest,
    responses(
        (status = 200, description = "The account's first session", body = TokenPairView),
        (status = 400, description = "`invalid_token` (unknown, expired or used) or `validation_failed` (field `password`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn accept_invitation(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(&app, Action::Reset, client.ip.as_deref(), None)
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let token = errors.require("token", req.token);
    let password = errors.require("password", req.password);
    let (token, password) = errors.and(token.zip(password))?;
    let pair = invitations::accept_and_sign_in(&app, &token, &password, client).await?;
    Ok(Tokens::new(&app, pair))
}

/// A mailed link's token, or an address and its mailed code, never a mix.
fn mailed_proof(
    errors: &mut ValidationErrors,
    token: Option<String>,
    email: Option<String>,
    code: Option<String>,
) -> Option<MailedProof> {
    match (token, email, code) {
        (Some(token), None, None) => Some(MailedProof::Link(token)),
        (None, Some(email), Some(code)) => Some(MailedProof::Code { email, code }),
        (None, Some(_), None) => {
            errors.add("code", "is required with email");
            None
        }
        (None, None, Some(_)) => {
            errors.add("email", "is required with code");
            None
        }
        (None, None, None) => {
            errors.add("token", "is required (or email and code)");
            None
        }
        (Some(_), _, _) => {
            errors.add("token", "give either token, or email and code, not both");
            None
        }
    }
}

/// The address of a mail request, once it is well-formed and within `action`'s budgets (per
/// client network and per address).
async fn budgeted_email(
    app: &AppState,
    client: &crate::service::ClientInfo,
    budget: &Budget,
    req: EmailRequest,
    action: Action,
) -> Result<String, ApiError> {
    let email = single_field("email", req.email, &req.unknown)?;
    budget
        .check(
            app,
            action,
            client.ip.as_deref(),
            budget_account(Some(&email)).as_ref(),
        )
        .await?;
    Ok(email)
}
