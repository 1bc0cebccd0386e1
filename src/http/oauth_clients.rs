//! `/oauth/clients[/{id}]`: the OAuth / OpenID Connect clients, for the admin role only.

use super::error::{ApiError, Problem};
use super::extract::{Admin, ApiJson};
use super::views::{refuse_unknown, rfc3339};
use crate::domain::{OAuthClient, ValidationErrors};
use crate::service::oauth_clients::{self, ClientFields};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A registered client.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientView {
    /// The public identifier.
    client_id: String,
    /// What the consent page calls it.
    name: String,
    /// True: it authenticates with its secret; false: a public client (PKCE only).
    confidential: bool,
    /// Where codes may be sent, matched exactly.
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, matched exactly.
    post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for (always with `openid`).
    scopes: Vec<String>,
    /// No consent page for it.
    first_party: bool,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

impl From<OAuthClient> for OAuthClientView {
    fn from(client: OAuthClient) -> OAuthClientView {
        OAuthClientView {
            client_id: client.client_id,
            name: client.name,
            confidential: client.confidential,
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            scopes: client.scopes,
            first_party: client.first_party,
            created_at: client.created_at,
            updated_at: client.updated_at,
        }
    }
}

/// A client just registered: its secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClientView {
    #[serde(flatten)]
    client: OAuthClientView,
    /// A confidential client's secret (null for a public client). Not stored, never shown
    /// again.
    client_secret: Option<String>,
}

/// Every client.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientListView {
    /// Newest first.
    clients: Vec<OAuthClientView>,
}

/// Body of `POST /oauth/clients` and `PATCH /oauth/clients/{id}` (where every field is
/// optional and `confidential` cannot change).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClientRequest {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    /// Default true: a secret is made and shown once.
    confidential: Option<bool>,
    /// 1 to 20 absolute URIs, matched exactly: `https`, `http` on loopback, or a reverse-DNS
    /// private-use scheme; no fragment, no wildcard.
    #[schema(min_items = 1, max_items = 20)]
    redirect_uris: Option<Vec<String>>,
    /// Up to 20 URIs, the same rules.
    #[schema(max_items = 20)]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// RFC 6749 scope tokens, up to 50 (default and always: `openid`).
    #[schema(max_items = 50)]
    scopes: Option<Vec<String>>,
    /// Default false: a third-party app, whose users see a consent page.
    first_party: Option<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

impl ClientRequest {
    fn into_fields(self) -> Result<ClientFields, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        refuse_unknown(&mut errors, &self.unknown);
        errors.into_result()?;
        Ok(ClientFields {
            name: self.name,
            confidential: self.confidential,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            scopes: self.scopes,
            first_party: self.first_party,
        })
    }
}

/// Register a client. The answer shows a confidential client's secret, once.
#[utoipa::path(post, path = "/oauth/clients", tag = "oauth", security(("bearer" = [])), request_body = ClientRequest,
    responses(
        (status = 201, description = "Registered", body = CreatedClientView, headers(("Location" = String, description = "/oauth/clients/{id}"))),
        (status = 400, description = "`validation_failed` or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_client(
    State(app): State<AppState>,
    Admin(actor): Admin,
    ApiJson(req): ApiJson<ClientRequest>,
) -> Result<Response, ApiError> {
    let fields = req.into_fields()?;
    let registered = oauth_clients::register(&app, Some(actor.user().id), fields).await?;
    let location = format!(
        "{}/oauth/clients/{}",
        app.config.server.base_path, registered.client.client_id
    );
    let view = CreatedClientView {
        client: registered.client.into(),
        client_secret: registered.secret,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// Every client, newest first.
#[utoipa::path(get, path = "/oauth/clients", tag = "oauth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The clients", body = OAuthClientListView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_clients(
    State(app): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<OAuthClientListView>, ApiError> {
    let clients = oauth_clients::list(&app).await?;
    Ok(Json(OAuthClientListView {
        clients: clients.into_iter().map(Into::into).collect(),
    }))
}

/// One client (never its secret).
#[utoipa::path(get, path = "/oauth/clients/{id}", tag = "oauth", security(("bearer" = [])),
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "The client", body = OAuthClientView),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_client(
    State(app): State<AppState>,
    Admin(_): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OAuthClientView>, ApiError> {
    Ok(Json(
        oauth_clients::get(&app, &client_id(id)?).await?.into(),
    ))
}

/// Change a client's name, URIs, scopes or first-party flag; only the fields sent change.
#[utoipa::path(patch, path = "/oauth/clients/{id}", tag = "oauth", security(("bearer" = [])), request_body = ClientRequest,
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 200, description = "The changed client", body = OAuthClientView),
        (status = 400, description = "`validation_failed` (also for `confidential`, which cannot change) or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_client(
    State(app): State<AppState>,
    Admin(_): Admin,
    id: Result<Path<String>, PathRejection>,
    ApiJson(req): ApiJson<ClientRequest>,
) -> Result<Json<OAuthClientView>, ApiError> {
    let fields = req.into_fields()?;
    Ok(Json(
        oauth_clients::update(&app, &client_id(id)?, fields)
            .await?
            .into(),
    ))
}

/// Remove a client.
#[utoipa::path(delete, path = "/oauth/clients/{id}", tag = "oauth", security(("bearer" = [])),
    params(("id" = String, Path, description = "The client id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_client(
    State(app): State<AppState>,
    Admin(_): Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    oauth_clients::remove(&app, &client_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The path's client id; one that cannot be read names no client.
fn client_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|_| ApiError::NotFound)
}
