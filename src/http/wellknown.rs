//! `/.well-known/*`: the JWKS and the discovery document gateways read it from.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A JSON Web Key Set.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksView {
    /// Every public key that can still verify a live token (empty with HS256/HS512: the shared
    /// secret is never published).
    #[schema(value_type = Vec<Object>)]
    keys: Value,
}

/// The provider's metadata (OpenID Connect Discovery 1.0 and RFC 8414).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryView {
    /// The `iss` of every token.
    issuer: String,
    /// Where the user signs in and consents.
    authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    token_endpoint: String,
    /// The OpenID Connect userinfo endpoint.
    userinfo_endpoint: String,
    /// Where the JWKS is.
    jwks_uri: String,
    /// RFC 7009 token revocation.
    revocation_endpoint: String,
    /// RFC 7662 token introspection.
    introspection_endpoint: String,
    /// RP-initiated logout.
    end_session_endpoint: String,
    /// RFC 7591 dynamic client registration, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
    /// The scopes every client may be given.
    scopes_supported: Vec<&'static str>,
    /// Only the authorization code flow.
    response_types_supported: Vec<&'static str>,
    /// Answers travel in the query.
    response_modes_supported: Vec<&'static str>,
    /// The grants of the token endpoint.
    grant_types_supported: Vec<&'static str>,
    /// Only public subject identifiers.
    subject_types_supported: Vec<&'static str>,
    /// ID tokens are signed RS256.
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// How clients authenticate at the token endpoint.
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// How clients authenticate at the revocation endpoint.
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// How clients authenticate at the introspection endpoint (confidential clients only).
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// PKCE: S256 only (and required).
    code_challenge_methods_supported: Vec<&'static str>,
    /// Claims of the tokens and of userinfo.
    claims_supported: Vec<&'static str>,
    /// The assurance levels.
    acr_values_supported: Vec<&'static str>,
    /// The `prompt` values honoured.
    prompt_values_supported: Vec<&'static str>,
    /// Authorization answers carry `iss` (RFC 9207).
    authorization_response_iss_parameter_supported: bool,
    /// `claims` request parameter: no.
    claims_parameter_supported: bool,
    /// `request` objects: no.
    request_parameter_supported: bool,
    /// `request_uri`: no.
    request_uri_parameter_supported: bool,
}

/// The public keys that verify access tokens and ID tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWKS", body = JwksView)))]
pub async fn jwks(State(app): State<AppState>) -> Json<JwksView> {
    let mut keys = app.tokens.jwks()["keys"].take();
    if let Value::Array(keys) = &mut keys {
        keys.extend(app.id_tokens.jwks());
    }
    Json(JwksView { keys })
}

/// OpenID Connect discovery: the provider's endpoints and what they support.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "Provider metadata", body = DiscoveryView)))]
pub async fn openid_configuration(State(app): State<AppState>) -> Json<DiscoveryView> {
    Json(discovery(&app))
}

/// RFC 8414 authorization server metadata: the same document.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "tokens",
    responses((status = 200, description = "Provider metadata", body = DiscoveryView)))]
pub async fn oauth_authorization_server(State(app): State<AppState>) -> Json<DiscoveryView> {
    Json(discovery(&app))
}

fn discovery(app: &AppState) -> DiscoveryView {
    let base = &app.config.server.public_url;
    let at = |path: &str| format!("{base}{path}");
    DiscoveryView {
        issuer: app.tokens.settings().issuer.clone(),
        authorization_endpoint: at("/oauth/authorize"),
        token_endpoint: at("/oauth/token"),
        userinfo_endpoint: at("/oauth/userinfo"),
        jwks_uri: at("/.well-known/jwks.json"),
        revocation_endpoint: at("/oauth/revoke"),
        introspection_endpoint: at("/oauth/introspect"),
        end_session_endpoint: at("/oauth/logout"),
        registration_endpoint: app
            .config
            .oauth
            .dynamic_registration
            .then(|| at("/oauth/register")),
        scopes_supported: crate::domain::oauth::STANDARD_SCOPES.to_vec(),
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code", "refresh_token", "client_credentials"],
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: vec!["RS256"],
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        revocation_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
        ],
        code_challenge_methods_supported: vec!["S256"],
        claims_supported: vec![
            "iss",
            "sub",
            "aud",
            "iat",
            "exp",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "at_hash",
            "sid",
            "email",
            "email_verified",
            "name",
            "updated_at",
        ],
        acr_values_supported: vec!["aal1", "aal2"],
        prompt_values_supported: vec!["none", "login", "consent"],
        authorization_response_iss_parameter_supported: true,
        claims_parameter_supported: false,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
    }
}
