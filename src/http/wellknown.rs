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

/// The OpenID discovery subset a gateway needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryView {
    /// The `iss` of every access token.
    issuer: String,
    /// Where the JWKS is.
    jwks_uri: String,
    /// The signing algorithm in use.
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// Claims carried by access tokens.
    claims_supported: Vec<&'static str>,
    /// Only public subject identifiers.
    subject_types_supported: Vec<&'static str>,
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWKS", body = JwksView)))]
pub async fn jwks(State(app): State<AppState>) -> Json<JwksView> {
    Json(JwksView {
        keys: app.tokens.jwks()["keys"].take(),
    })
}

/// Discovery document: `issuer` and `jwks_uri`, for gateways that verify tokens themselves.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "Discovery subset", body = DiscoveryView)))]
pub async fn openid_configuration(State(app): State<AppState>) -> Json<DiscoveryView> {
    let settings = app.tokens.settings();
    Json(DiscoveryView {
        issuer: settings.issuer.clone(),
        jwks_uri: format!("{}/.well-known/jwks.json", app.config.server.public_url),
        id_token_signing_alg_values_supported: vec![settings.alg.as_str()],
        claims_supported: vec![
            "iss",
            "sub",
            "aud",
            "iat",
            "nbf",
            "exp",
            "jti",
            "sid",
            "email",
            "email_verified",
            "role",
            "name",
        ],
        subject_types_supported: vec!["public"],
    })
}
