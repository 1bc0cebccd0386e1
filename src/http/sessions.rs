//! `/users/me/sessions*` and `/users/me/consents*`: the caller's own sessions, and what they
//! allowed OAuth apps, listed and revoked.

use super::error::{ApiError, Problem};
use super::extract::Bearer;
use crate::domain::Revoke;
use crate::service::oauth::consents;
use crate::service::sessions;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One live session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session id; the `sid` claim of its access tokens.
    id: String,
    /// When it started (the login).
    #[serde(serialize_with = "super::views::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// When it was last refreshed.
    #[serde(serialize_with = "super::views::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    last_used_at: OffsetDateTime,
    /// The client's `User-Agent` at login, or null.
    user_agent: Option<String>,
    /// The client's address at login, or null.
    ip: Option<String>,
    /// Whether this is the session of the token making the request.
    current: bool,
}

/// The caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsView {
    /// Oldest first.
    sessions: Vec<SessionView>,
}

/// List the caller's live sessions.
#[utoipa::path(get, path = "/users/me/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = SessionsView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
) -> Result<Json<SessionsView>, ApiError> {
    let sessions = sessions::list(&app, &principal).await?;
    let sessions = sessions
        .into_iter()
        .map(|s| SessionView {
            id: s.id.to_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.id == principal.session_id,
        })
        .collect();
    Ok(Json(SessionsView { sessions }))
}

/// Revoke one of the caller's sessions; its tokens stop working within a second.
#[utoipa::path(delete, path = "/users/me/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from the list")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: not a live session of the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    id: Result<Path<uuid::Uuid>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    // Anything that is not a UUID names no session.
    let Ok(Path(id)) = id else {
        return Err(ApiError::NotFound);
    };
    sessions::revoke(&app, &principal, Revoke::One(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke every session of the caller, this one included.
#[utoipa::path(delete, path = "/users/me/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 204, description = "All revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_all(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
) -> Result<StatusCode, ApiError> {
    sessions::revoke(&app, &principal, Revoke::All).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the caller allowed one OAuth app.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// The app's client id.
    client_id: String,
    /// Its name.
    client_name: String,
    /// The scopes allowed.
    scopes: Vec<String>,
    /// When consent was first given.
    #[serde(serialize_with = "super::views::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// When it last grew.
    #[serde(serialize_with = "super::views::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

/// The apps the caller has allowed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentsView {
    /// Oldest first.
    consents: Vec<ConsentView>,
}

/// List the OAuth apps the caller has allowed, and what.
#[utoipa::path(get, path = "/users/me/consents", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "Consents", body = ConsentsView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn consents(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
) -> Result<Json<ConsentsView>, ApiError> {
    let consents = consents::list(&app, &principal)
        .await?
        .into_iter()
        .map(|c| ConsentView {
            client_id: c.client_id,
            client_name: c.client_name,
            scopes: c.scopes,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
        .collect();
    Ok(Json(ConsentsView { consents }))
}

/// Withdraw the caller's consent to an app: its sessions of the caller are revoked (their
/// tokens stop working within a second), and its next sign-in asks again.
#[utoipa::path(delete, path = "/users/me/consents/{client_id}", tag = "sessions", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "A client id from the list")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the caller has not allowed this app", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_consent(
    State(app): State<AppState>,
    Bearer(principal): Bearer,
    client_id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path(client_id)) = client_id else {
        return Err(ApiError::NotFound);
    };
    consents::revoke(&app, &principal, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
