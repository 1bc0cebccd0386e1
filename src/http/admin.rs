//! `/users` and `/users/{id}`: user administration, for the admin role only.

use super::error::{ApiError, Problem};
use super::extract::{Admin, ApiJson};
use super::views::{
    EmailSchema, LocaleSchema, NameSchema, NewPasswordSchema, PhoneSchema, ProfilePatch, UserView,
    refuse_unknown,
};
use crate::domain::{Email, ValidationErrors};
use crate::domain::{UserChange, UserFilter};
use crate::service::accounts::{AccountFields, NewAccount};
use crate::service::{admin, invitations};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListView {
    /// Newest first.
    users: Vec<UserView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Body of `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    /// Any case; stored normalised.
    #[schema(required = true, value_type = EmailSchema)]
    email: Option<String>,
    /// Optional: without one the user sets a password through the reset flow.
    #[schema(value_type = Option<NewPasswordSchema>)]
    password: Option<String>,
    /// Full name.
    #[schema(value_type = Option<NameSchema>)]
    name: Option<String>,
    /// E.164.
    #[schema(value_type = Option<PhoneSchema>)]
    phone: Option<String>,
    /// The language of the user's mails (BCP 47).
    #[schema(value_type = Option<LocaleSchema>)]
    locale: Option<String>,
    /// One of the configured roles (default: the default role).
    role: Option<String>,
    /// Whether the email counts as verified (default false: a confirmation mail is sent).
    email_verified: Option<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `PATCH /users/{id}`: only the fields sent change; `null` clears name, phone, metadata.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUserRequest {
    #[serde(flatten)]
    profile: ProfilePatch,
    /// A configured role; a change revokes every session of the user.
    role: Option<String>,
    /// `true` disables (revoking every session), `false` enables.
    disabled: Option<bool>,
    /// Mark the email verified or not.
    email_verified: Option<bool>,
    /// A new address: asked for, not set. It takes effect when the new address confirms it
    /// (the old one gets a notice with a link that undoes it); the answer still shows the
    /// address in use.
    #[schema(value_type = Option<EmailSchema>)]
    email: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// List users, newest first, stable under inserts (keyset pages).
#[utoipa::path(get, path = "/users", tag = "admin", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("email" = Option<String>, Query, max_length = 254, description = "Substring of the email, case-insensitive, at most 254 characters; `%` and `_` are literal"),
        ("role" = Option<String>, Query, description = "Exactly this role"),
        ("verified" = Option<bool>, Query, description = "`true` or `false`"),
        ("disabled" = Option<bool>, Query, description = "`true` or `false`"),
    ),
    responses(
        (status = 200, description = "A page of users", body = UserListView),
        (status = 400, description = "`validation_failed`: a parameter out of range or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(app): State<AppState>,
    Admin(actor): Admin,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<UserListView>, ApiError> {
    let pairs = query
        .map(|Query(pairs)| pairs)
        .map_err(|_| ValidationErrors::one("query", "is not a valid query string"))?;
    let (filter, limit) = parse_list_query(pairs)?;
    let page = admin::list(&app, &actor, &filter, limit).await?;
    Ok(Json(UserListView {
        users: page.users.into_iter().map(UserView::from).collect(),
        next_cursor: page.next.map(|(at, id)| encode_cursor(at, id)),
    }))
}

/// Create a user (any role, verified or not, with or without a password).
#[utoipa::path(post, path = "/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserView, headers(("Location" = String, description = "/users/{id}"))),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    State(app): State<AppState>,
    Admin(actor): Admin,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let role = req
        .role
        .map(|role| errors.take("role", app.config.roles.parse(&role)));
    let account = NewAccount::parse(
        &app.config.password_policy,
        AccountFields {
            email: req.email,
            password: req.password,
            name: req.name,
            phone: req.phone,
            metadata: None,
            locale: req.locale,
        },
        false,
        &mut errors,
    );
    let account = errors.and(account)?;
    let user = admin::create(
        &app,
        &actor,
        account,
        role.flatten(),
        req.email_verified.unwrap_or(false),
    )
    .await?;
    Ok(created(&app, user))
}

/// Body of `POST /users/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InvitationRequest {
    /// Any case; stored normalised.
    #[schema(required = true, value_type = EmailSchema)]
    email: Option<String>,
    /// Full name.
    #[schema(value_type = Option<NameSchema>)]
    name: Option<String>,
    /// The language of the invitation and later mails (BCP 47).
    #[schema(value_type = Option<LocaleSchema>)]
    locale: Option<String>,
    /// One of the configured roles (default: the default role).
    role: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Invite someone: an account without a password, unverified, and a mail with a link
/// (`LATCHKEY_INVITATION_TTL`, default 7 days) to a page where its owner chooses one.
#[utoipa::path(post, path = "/users/invitations", tag = "admin", security(("bearer" = [])), request_body = InvitationRequest,
    responses(
        (status = 201, description = "Invited: the user, unverified and without a password", body = UserView, headers(("Location" = String, description = "/users/{id}"))),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invite_user(
    State(app): State<AppState>,
    Admin(actor): Admin,
    ApiJson(req): ApiJson<InvitationRequest>,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let role = match req.role {
        Some(role) => errors.take("role", app.config.roles.parse(&role)),
        None => Some(app.config.roles.default_role().clone()),
    };
    let account = NewAccount::parse(
        &app.config.password_policy,
        AccountFields {
            email: req.email,
            name: req.name,
            locale: req.locale,
            ..AccountFields::default()
        },
        false,
        &mut errors,
    );
    let (account, role) = errors.and(account.zip(role))?;
    let user = invitations::invite(&app, actor.user().id, account, role).await?;
    Ok(created(&app, user))
}

/// 201 with the new user and its `Location`.
fn created(app: &AppState, user: crate::domain::User) -> Response {
    let location = format!("{}/users/{}", app.config.server.base_path, user.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(user)),
    )
        .into_response()
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id; anything but a UUID is 404")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(app): State<AppState>,
    Admin(actor): Admin,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(admin::get(&app, &actor, path_id(id)).await?.into()))
}

/// Change a user. Disabling or a role change revokes every session of the user. A new `email`
/// is mailed for confirmation, as the user's own change is.
#[utoipa::path(patch, path = "/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUserRequest,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The changed user", body = UserView),
        (status = 403, description = "`forbidden`, or `reauthentication_required` (a new `email` needs a recent authentication)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: the change would leave no enabled, verified admin; `email_taken`: the new address is another account's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    State(app): State<AppState>,
    Admin(actor): Admin,
    id: Result<Path<Uuid>, PathRejection>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let role = req
        .role
        .and_then(|role| errors.take("role", app.config.roles.parse(&role)));
    let email = req
        .email
        .and_then(|email| errors.take("email", Email::parse(&email)));
    let change = UserChange {
        role,
        disabled: req.disabled,
        email_verified: req.email_verified,
        ..req.profile.into_change(&mut errors)
    };
    errors.into_result()?;
    Ok(Json(
        admin::update(&app, &actor, path_id(id), change, email)
            .await?
            .into(),
    ))
}

/// Delete a user with their sessions, tokens and pending mail.
#[utoipa::path(delete, path = "/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: the user is the last enabled, verified admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(app): State<AppState>,
    Admin(actor): Admin,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    admin::delete(&app, &actor, path_id(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn path_id(id: Result<Path<Uuid>, PathRejection>) -> Option<Uuid> {
    id.ok().map(|Path(id)| id)
}

fn parse_list_query(pairs: Vec<(String, String)>) -> Result<(UserFilter, i64), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut filter = UserFilter::default();
    let mut limit = 50;
    let mut seen = HashSet::new();
    let boolean = |errors: &mut ValidationErrors, field: &str, value: &str| match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            errors.add(field, "must be true or false");
            None
        }
    };
    for (key, value) in pairs {
        if !seen.insert(key.clone()) {
            errors.add(&key, "is given more than once");
            continue;
        }
        // No stored value has one, and PostgreSQL refuses NUL in text outright.
        if value.chars().any(char::is_control) {
            errors.add(&key, "must not contain control characters");
            continue;
        }
        match key.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=200).contains(&n) => limit = n,
                _ => errors.add("limit", "must be a whole number from 1 to 200"),
            },
            "cursor" => filter.after = errors.take("cursor", decode_cursor(&value)),
            "email" => match Email::normalise_fragment(&value) {
                Some(fragment) => filter.email_contains = Some(fragment),
                None => errors.add("email", "must be at most 254 characters"),
            },
            // Any string: a role that no one has simply matches no one.
            "role" => filter.role = Some(value),
            "verified" => filter.verified = boolean(&mut errors, "verified", &value),
            "disabled" => filter.disabled = boolean(&mut errors, "disabled", &value),
            _ => errors.add(&key, "is not a parameter of this endpoint"),
        }
    }
    errors.into_result()?;
    Ok((filter, limit))
}

fn encode_cursor(at: OffsetDateTime, id: Uuid) -> String {
    let micros = at.unix_timestamp_nanos() / 1_000;
    URL_SAFE_NO_PAD.encode(format!("{micros}.{id}"))
}

fn decode_cursor(raw: &str) -> Result<(OffsetDateTime, Uuid), ValidationErrors> {
    let invalid = || ValidationErrors::one("cursor", "is not a cursor given by this endpoint");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
    let micros: i128 = micros.parse().map_err(|_| invalid())?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000).map_err(|_| invalid())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let (at, id) = (
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            crate::clock::Clock::System.new_id(),
        );
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        assert!(decode_cursor("junk").is_err() && decode_cursor("").is_err());
    }
}
