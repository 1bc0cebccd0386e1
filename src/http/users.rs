//! `/users/me*`: the caller's own profile, password and account.

use super::error::{ApiError, Problem};
use super::extract::{ApiJson, Bearer, Client, Enrolling};
use super::views::{NewPasswordSchema, ProfilePatch, UserView, refuse_unknown};
use crate::domain::ValidationErrors;
use crate::service::accounts;
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
