//! RFC 7591 dynamic client registration, behind `LATCHKEY_OAUTH_DYNAMIC_REGISTRATION`.

use crate::http::budget::Budget;
use crate::http::error::ApiError;
use crate::http::extract::Client;
use crate::ratelimit::Action;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// An RFC 7591 client registration request (the metadata latchkey understands).
#[derive(Debug, Deserialize)]
struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

/// `POST /oauth/register` (RFC 7591), when `LATCHKEY_OAUTH_DYNAMIC_REGISTRATION=true`: a
/// third-party client (consent always asked), its secret shown once.
pub(super) async fn register(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    body: Bytes,
) -> Response {
    if !app.config.oauth.dynamic_registration {
        return ApiError::NotFound.into_response();
    }
    if let Err(limited) = budget
        .check(&app, Action::Register, client.ip.as_deref(), None)
        .await
    {
        return limited.into_response();
    }
    let metadata_error = |code: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    let Ok(request) = serde_json::from_slice::<RegistrationRequest>(&body) else {
        return metadata_error(
            "invalid_client_metadata",
            "the body must be a JSON object of client metadata",
        );
    };
    let confidential = match request.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") | Some("client_secret_post") => true,
        Some("none") => false,
        Some(_) => {
            return metadata_error(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
            );
        }
    };
    let grants_ok = request.grant_types.as_ref().is_none_or(|grants| {
        grants
            .iter()
            .all(|g| g == "authorization_code" || g == "refresh_token")
    });
    let responses_ok = request
        .response_types
        .as_ref()
        .is_none_or(|types| types.iter().all(|t| t == "code"));
    if !grants_ok || !responses_ok {
        return metadata_error(
            "invalid_client_metadata",
            "only the authorization code flow (with refresh tokens) is served",
        );
    }
    // Custom scopes mean something to a resource server; only an admin may hand them out.
    let standard = request
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .all(|scope| scope.is_empty() || crate::domain::oauth::STANDARD_SCOPES.contains(&scope));
    if !standard {
        return metadata_error(
            "invalid_client_metadata",
            "a registered client may ask only for openid, profile, email and offline_access",
        );
    }
    let fields = crate::service::oauth_clients::ClientFields {
        name: Some(
            request
                .client_name
                .unwrap_or_else(|| "Unnamed app".to_owned()),
        ),
        confidential: Some(confidential),
        redirect_uris: request.redirect_uris,
        post_logout_redirect_uris: request.post_logout_redirect_uris,
        scopes: request.scope.map(|scope| {
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        first_party: Some(false),
    };
    use crate::service::oauth_clients::{ClientError, register};
    match register(&app, None, fields).await {
        Ok(registered) => {
            let client = &registered.client;
            let method = match (confidential, request.token_endpoint_auth_method.as_deref()) {
                (false, _) => "none",
                (true, Some("client_secret_post")) => "client_secret_post",
                (true, _) => "client_secret_basic",
            };
            let mut body = json!({
                "client_id": client.client_id,
                "client_id_issued_at": client.created_at.unix_timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "post_logout_redirect_uris": client.post_logout_redirect_uris,
                "token_endpoint_auth_method": method,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": client.scopes.join(" "),
            });
            if let Some(secret) = &registered.secret {
                body["client_secret"] = json!(secret);
                body["client_secret_expires_at"] = json!(0);
            }
            (
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Json(body),
            )
                .into_response()
        }
        Err(ClientError::Invalid(errors)) => {
            let first = errors.0.first();
            let code = match first.map(|e| e.field.as_str()) {
                Some("redirect_uris") => "invalid_redirect_uri",
                _ => "invalid_client_metadata",
            };
            let description = first
                .map(|e| format!("{} {}", e.field, e.message))
                .unwrap_or_default();
            metadata_error(code, &description)
        }
        Err(ClientError::NotFound) => ApiError::NotFound.into_response(),
        Err(ClientError::Fault(fault)) => ApiError::from(fault).into_response(),
    }
}
