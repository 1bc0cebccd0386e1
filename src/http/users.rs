//! `/users/me*`: the caller's own profile, address, password and account.

use super::budget::Budget;
use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Bearer, Client, Enrolling, budget_account};
use super::recovery::{ACCEPTED, AcceptedView};
use super::views::{
    EmailSchema, NewPasswordSchema, ProfilePatch, UserView, refuse_unknown, single_field,
};
use crate::domain::ValidationErrors;
use crate::ratelimit::Action;
use crate::service::{accounts, email_change};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Body of `PATCH /users/me`: only the fields sent change; `null` clears. Nothing but the
/// profile fields is accepted (`role`, `email_verified` and the rest are refused).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateMeRequest {
    #[serde(flatten)]
    profile: ProfilePatch,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `PUT /users/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[schema(required = true, value_type = String, format = Password)]
    current_password: Option<String>,
    /// The new password, judged by the password policy.
    #[schema(required = true, value_type = NewPasswordSchema)]
    new_password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `DELETE /users/me`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteMeRequest {
    /// The account's password, to confirm.
    #[schema(required = true, value_type = String, format = Password)]
    password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `POST /users/me/email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    /// The address to move the account to; any case, stored normalised.
    #[schema(required = true, value_type = EmailSchema)]
    new_email: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// The caller's own account.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(
    State(app): State<AppState>,
    Enrolling(principal): Enrolling,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(accounts::me(&app, &principal).await?.into()))
}

/// Change the caller's name, phone or metadata. `role`, `email_verified` and any other field
/// are refused.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "`validation_failed` or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    ApiJson(req): ApiJson<UpdateMeRequest>,
) -> Result<Json<UserView>, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let change = req.profile.into_change(&mut errors);
    errors.into_result()?;
    Ok(Json(
        accounts::update_me(&app, &principal, change).await?.into(),
    ))
}

/// Change the caller's password. This session stays; every other one is revoked.
#[utoipa::path(put, path = "/users/me/password", tag = "users", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`validation_failed` (field `new_password`) or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`invalid_current_password`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    Client(client): Client,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let current = errors.require("current_password", req.current_password);
    let new = errors.require("new_password", req.new_password);
    let (current, new) = errors.and(current.zip(new))?;
    accounts::change_password(&app, &principal, &current, &new, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask to move the caller's account to a new address (needs a recent authentication). A link
/// that confirms goes to the new address, a notice with a link that undoes it to the old one;
/// nothing changes until the new address confirms.
#[utoipa::path(post, path = "/users/me/email", tag = "users", security(("bearer" = [])), request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "Asked; the mails are on their way", body = AcceptedView),
        (status = 400, description = "`validation_failed` (field `new_email`: malformed, or the account's address already) or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`reauthentication_required`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken` (in conceal mode a taken address gets the 202 instead)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_email(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let new_email = single_field("new_email", req.new_email, &req.unknown)?;
    // Mails to an address of the caller's choosing: budgeted per network and per address.
    budget
        .check(
            &app,
            Action::Resend,
            client.ip.as_deref(),
            budget_account(Some(&new_email)).as_ref(),
        )
        .await?;
    email_change::request(&app, &principal, &new_email).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// Delete the caller's account, confirmed by its password: the user, sessions and tokens go.
#[utoipa::path(delete, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = DeleteMeRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`validation_failed` or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`invalid_current_password`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_me(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    Client(client): Client,
    ApiJson(req): ApiJson<DeleteMeRequest>,
) -> Result<StatusCode, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let password = errors.require("password", req.password);
    let password = errors.and(password)?;
    accounts::delete_me(&app, &principal, &password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
