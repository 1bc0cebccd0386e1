//! What clients call: the token endpoint, revocation (RFC 7009), introspection (RFC 7662) and
//! userinfo; client authentication and RFC 6749 error bodies.

use crate::domain::OAuthClient;
use crate::http::budget::Budget;
use crate::http::error::ApiError;
use crate::http::extract::{AnyBearer, Client};
use crate::ratelimit::Action;
use crate::service::oauth::grants::UserinfoError;
use crate::service::oauth::token::{self, ClientCredentials, TokenError};
use crate::service::{Caller, oauth};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

/// The parameters of a form-encoded post to a client endpoint, each at most once.
fn client_form(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut seen = std::collections::HashSet::new();
    if let Some((key, _)) = params.iter().find(|(key, _)| !seen.insert(key.as_str())) {
        return Err(TokenError::InvalidRequest(format!(
            "{key} is given more than once"
        )));
    }
    Ok(params)
}

pub(super) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A client's form post to the token, revocation or introspection endpoint: within the
/// budget, form-encoded with each parameter once, from an authenticated client. Any failure is
/// answered as RFC 6749 says (a spent budget as everywhere else).
pub(super) struct ClientCall {
    /// The client.
    pub(super) client: OAuthClient,
    /// The form's parameters.
    pub(super) params: Vec<(String, String)>,
}

impl FromRequest<AppState> for ClientCall {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Ok(Client(caller)) = Client::from_request_parts(&mut parts, app).await;
        let budget = Budget::from_request_parts(&mut parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        budget
            .check(app, Action::Refresh, caller.ip.as_deref(), None)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(IntoResponse::into_response)?;
        let params = client_form(&headers, &body).map_err(token_error)?;
        let client = form_client(app, &headers, &params)
            .await
            .map_err(token_error)?;
        Ok(ClientCall { client, params })
    }
}

/// The client a form post authenticates as.
async fn form_client(
    app: &AppState,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<OAuthClient, TokenError> {
    let credentials = client_credentials(
        headers,
        param(params, "client_id"),
        param(params, "client_secret"),
    )?;
    token::authenticate_client(app, &credentials).await
}

/// The `token` parameter of revocation and introspection.
fn token_param(params: &[(String, String)]) -> Result<&str, TokenError> {
    param(params, "token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::InvalidRequest("token is required".into()))
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was live or known.
pub(super) async fn revoke(State(app): State<AppState>, call: ClientCall) -> Response {
    let result = async {
        let token = token_param(&call.params)?;
        oauth::grants::revoke(&app, &call.client, token).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => token_error(error),
    }
}

/// `POST /oauth/introspect` (RFC 7662).
pub(super) async fn introspect(State(app): State<AppState>, call: ClientCall) -> Response {
    let result = async {
        let token = token_param(&call.params)?;
        oauth::grants::introspect(&app, &call.client, token).await
    }
    .await;
    match result {
        Ok(answer) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(answer),
        )
            .into_response(),
        Err(error) => token_error(error),
    }
}

/// `POST /oauth/token`, form-encoded, each parameter at most once.
pub(super) async fn token_endpoint(State(app): State<AppState>, call: ClientCall) -> Response {
    let ClientCall { client, params } = call;
    let get = |key: &str| param(&params, key);
    let result = async {
        let required = |key: &'static str| {
            get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::InvalidRequest(format!("{key} is required")))
        };
        match get("grant_type") {
            Some("authorization_code") => {
                let (code, redirect_uri, verifier) = (
                    required("code")?,
                    required("redirect_uri")?,
                    required("code_verifier")?,
                );
                token::exchange_code(&app, &client, code, redirect_uri, verifier).await
            }
            Some("refresh_token") => {
                token::refresh(&app, &client, required("refresh_token")?, get("scope")).await
            }
            Some("client_credentials") => {
                token::client_credentials(&app, &client, get("scope"), get("resource")).await
            }
            Some(_) => Err(TokenError::UnsupportedGrantType),
            None => Err(TokenError::InvalidRequest("grant_type is required".into())),
        }
    }
    .await;
    match result {
        Ok(tokens) => (
            [
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::PRAGMA, HeaderValue::from_static("no-cache")),
            ],
            Json(tokens),
        )
            .into_response(),
        Err(error) => token_error(error),
    }
}

/// The client's id and secret: HTTP Basic (each form-encoded, RFC 6749 §2.3.1) or the body,
/// never both.
fn client_credentials(
    headers: &HeaderMap,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<ClientCredentials, TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let Some((_, encoded)) = basic else {
        return Ok(ClientCredentials {
            client_id: body_id.map(str::to_owned),
            secret: body_secret.map(str::to_owned),
        });
    };
    if body_secret.is_some() {
        return Err(TokenError::InvalidRequest(
            "use one client authentication method".into(),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(TokenError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = unescape(id);
    if body_id.is_some_and(|body_id| body_id != id) {
        return Err(TokenError::InvalidRequest(
            "client_id differs from the authenticated client".into(),
        ));
    }
    Ok(ClientCredentials {
        client_id: Some(id),
        secret: Some(unescape(secret)),
    })
}

/// An RFC 6749 §5.2 error body (a fault is answered as everywhere else).
fn token_error(error: TokenError) -> Response {
    let (status, code, description) = match &error {
        TokenError::InvalidRequest(why) => {
            (StatusCode::BAD_REQUEST, "invalid_request", why.clone())
        }
        TokenError::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed".to_owned(),
        ),
        TokenError::InvalidGrant(why) => {
            (StatusCode::BAD_REQUEST, "invalid_grant", (*why).to_owned())
        }
        TokenError::UnauthorizedClient => (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client may not do this".to_owned(),
        ),
        TokenError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant types: authorization_code, refresh_token, client_credentials".to_owned(),
        ),
        TokenError::InvalidScope => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the scope exceeds what was granted".to_owned(),
        ),
        TokenError::InvalidTarget => (
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource is not a resource server tokens are issued for".to_owned(),
        ),
        TokenError::Fault(_) => {
            let TokenError::Fault(fault) = error else {
                unreachable!()
            };
            return ApiError::from(fault).into_response();
        }
    };
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"latchkey\""),
        );
    }
    response
}

/// `GET/POST /oauth/userinfo`: the claims the token's scopes allow, read from the account now.
/// A token that was presented and refused is told so in RFC 6750's terms (`invalid_token`).
pub(super) async fn userinfo(
    State(app): State<AppState>,
    headers: HeaderMap,
    caller: Result<AnyBearer, ApiError>,
) -> Response {
    let presented = headers.contains_key(header::AUTHORIZATION);
    let answer = match caller {
        Ok(AnyBearer(Caller::User(principal))) => {
            match oauth::grants::userinfo(&app, &principal).await {
                Ok(claims) => Ok((
                    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                    Json(claims),
                )
                    .into_response()),
                Err(UserinfoError::NoOpenid) => Err(ApiError::InsufficientScope("openid".into())),
                Err(UserinfoError::UserGone) => Err(ApiError::Unauthorized),
                Err(UserinfoError::Fault(fault)) => Err(fault.into()),
            }
        }
        // A client's own token has no user to tell of.
        Ok(AnyBearer(Caller::Service(_))) => Err(ApiError::Unauthorized),
        Err(error) => Err(error),
    };
    match answer {
        Ok(response) => response,
        Err(ApiError::Unauthorized) if presented => {
            let mut response = ApiError::Unauthorized.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer error=\"invalid_token\", error_description=\"The access token is invalid, expired or revoked\"",
                ),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}
