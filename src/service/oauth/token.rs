//! `POST /oauth/token`: client authentication, the code exchange (with PKCE), refresh with
//! rotation and reuse detection, and the tokens they give: access tokens of the same kind as
//! latchkey's own (with `client_id` and `scope`), RS256 ID tokens, refresh tokens only with
//! `offline_access`.

use crate::crypto::id_token::half_hash;
use crate::crypto::{AccessClaims, random};
use crate::domain::oauth::STANDARD_SCOPES;
use crate::domain::{Assurance, User};
use crate::service::Fault;
use crate::service::sessions::{RefreshError, Rotated, rotate};
use crate::state::AppState;
use crate::store::{Redeem, Redemption, SessionGrant};
use serde::Serialize;
use uuid::Uuid;

/// An error of the token endpoint, in RFC 6749 §5.2's terms.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A parameter is missing, repeated or malformed.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The client is unknown or its authentication failed.
    #[error("invalid_client")]
    InvalidClient,
    /// The code or refresh token is invalid, expired, spent, or not this client's.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// The client may not use this grant type.
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// Not a grant type served here.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// More scope than was granted.
    #[error("invalid_scope")]
    InvalidScope,
    /// A `resource` tokens are not issued for (RFC 8707).
    #[error("invalid_target")]
    InvalidTarget,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<crate::store::StoreError> for TokenError {
    fn from(error: crate::store::StoreError) -> TokenError {
        TokenError::Fault(error.into())
    }
}

/// How the client presented itself.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// Its id (from Basic or the body).
    pub client_id: Option<String>,
    /// Its secret (from Basic or the body).
    pub secret: Option<String>,
}

/// A successful answer of the token endpoint.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// Only with `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Only with `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The scopes granted.
    pub scope: String,
}

/// The client a request authenticates as: a confidential one by its secret (compared in
/// constant time, as hashes), a public one by its id alone, never presenting a secret.
pub async fn authenticate_client(
    app: &AppState,
    credentials: &ClientCredentials,
) -> Result<crate::domain::OAuthClient, TokenError> {
    let client_id = credentials
        .client_id
        .as_deref()
        .ok_or(TokenError::InvalidClient)?;
    let stored = app.store.oauth_client_secret_hash(client_id).await?;
    let Some(secret_hash) = stored else {
        // As much work as a known client's check, so the answer does not time client ids.
        let _ = random::token_hash(credentials.secret.as_deref().unwrap_or_default());
        return Err(TokenError::InvalidClient);
    };
    match (secret_hash, credentials.secret.as_deref()) {
        (Some(expected), Some(secret)) => {
            let presented = random::token_hash(secret);
            aws_lc_rs::constant_time::verify_slices_are_equal(
                presented.as_bytes(),
                expected.as_bytes(),
            )
            .map_err(|_| TokenError::InvalidClient)?;
        }
        (None, None) => {}
        _ => return Err(TokenError::InvalidClient),
    }
    app.store
        .oauth_client(client_id)
        .await?
        .ok_or(TokenError::InvalidClient)
}

/// `grant_type=authorization_code`: the code, its redirect URI and the PKCE verifier.
pub async fn exchange_code(
    app: &AppState,
    client: &crate::domain::OAuthClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse, TokenError> {
    if !(43..=128).contains(&verifier.len()) || !super::is_pkce_value(verifier) {
        return Err(TokenError::InvalidGrant("the code verifier is malformed"));
    }
    let now = app.clock.now();
    let refresh_token = random::token();
    let redeem = Redeem {
        code_hash: &random::token_hash(code),
        client_id: &client.client_id,
        redirect_uri,
        challenge: &random::sha256_b64(verifier.as_bytes()),
        session_id: crate::clock::id_at(now),
        refresh_token_hash: &random::token_hash(&refresh_token),
        expires_at: now + app.config.tokens.refresh_ttl,
        now,
    };
    match app.store.redeem_oauth_code(&redeem).await? {
        Redemption::Issued {
            user,
            grant,
            nonce,
            assurance,
        } => {
            let issued = Issued {
                user: &user,
                session_id: redeem.session_id,
                grant: &grant,
                assurance: &assurance,
                nonce: nonce.as_deref(),
            };
            respond(app, &issued, refresh_token).await
        }
        Redemption::Replayed(committed) => {
            tracing::warn!(client_id = %client.client_id, "authorization code replayed: its session is revoked");
            app.after_commit(committed);
            Err(TokenError::InvalidGrant("the code was already used"))
        }
        Redemption::Invalid => Err(TokenError::InvalidGrant(
            "the code is invalid, expired, or was issued for another client, redirect URI or verifier",
        )),
    }
}

/// `grant_type=refresh_token`: the token rotates; a reused one revokes the grant's session.
pub async fn refresh(
    app: &AppState,
    client: &crate::domain::OAuthClient,
    refresh_token: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, TokenError> {
    let invalid = || TokenError::InvalidGrant("the refresh token is invalid, expired or revoked");
    let Rotated {
        session_id,
        user,
        assurance,
        successor,
    } = rotate(app, refresh_token, Some(&client.client_id))
        .await
        .map_err(|error| match error {
            RefreshError::Invalid => invalid(),
            RefreshError::Fault(fault) => TokenError::Fault(fault),
        })?;
    let stored = app
        .store
        .session_grant(session_id)
        .await?
        .ok_or_else(invalid)?;
    let mut grant = stored.clone();
    let asked: Vec<&str> = scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if !asked.is_empty() {
        let granted: Vec<&str> = stored.scope.split(' ').collect();
        if asked.iter().any(|s| !granted.contains(s)) {
            return Err(TokenError::InvalidScope);
        }
        grant.scope = asked.join(" ");
    }
    // The refresh token follows the stored grant: a narrower access token must not cost the
    // client its grant.
    let keeps_refresh = has_scope(&stored, "offline_access");
    let issued = Issued {
        user: &user,
        session_id,
        grant: &grant,
        assurance: &assurance,
        nonce: None,
    };
    let mut answer = respond(app, &issued, successor.clone()).await?;
    if keeps_refresh {
        answer.refresh_token = Some(successor);
    }
    Ok(answer)
}

/// `grant_type=client_credentials`: a confidential client's token of its own, no user behind
/// it (`sub` is the client id). Only the client's custom scopes can be asked for: the standard
/// ones are about a user. No refresh token: the client can ask again.
pub async fn client_credentials(
    app: &AppState,
    client: &crate::domain::OAuthClient,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<TokenResponse, TokenError> {
    if !client.confidential {
        return Err(TokenError::UnauthorizedClient);
    }
    let own: Vec<&str> = client
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| !STANDARD_SCOPES.contains(s))
        .collect();
    let asked: Vec<&str> = scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    // A client without scopes of its own was registered to sign users in, not to act alone
    // (dynamic registration gives only standard scopes): it gets no token of its own.
    if own.is_empty() {
        return Err(TokenError::UnauthorizedClient);
    }
    if asked.iter().any(|s| !own.contains(s)) {
        return Err(TokenError::InvalidScope);
    }
    let scope = match asked.is_empty() {
        true => own.join(" "),
        false => asked.join(" "),
    };
    let audience =
        super::resource_audience(app, resource).map_err(|_| TokenError::InvalidTarget)?;
    let now = app.clock.now();
    let session_id = app
        .store
        .issue_service_token(&client.client_id, &scope, crate::clock::id_at(now), now)
        .await?
        .ok_or(TokenError::InvalidClient)?;
    let claims = AccessClaims {
        iss: String::new(),
        sub: client.client_id.clone(),
        aud: audience,
        iat: 0,
        nbf: None,
        exp: None,
        jti: String::new(),
        sid: session_id.to_string(),
        email: String::new(),
        email_verified: false,
        role: String::new(),
        name: None,
        auth_time: None,
        amr: None,
        acr: None,
        client_id: Some(client.client_id.clone()),
        scope: Some(scope.clone()),
    };
    let access_token = app
        .tokens
        .issue(claims, now)
        .map_err(|e| Fault::Internal(e.into()))?;
    Ok(TokenResponse {
        expires_in: app.config.tokens.access_ttl.whole_seconds(),
        access_token,
        token_type: "Bearer",
        refresh_token: None,
        id_token: None,
        scope,
    })
}

/// What a grant's tokens are about.
struct Issued<'a> {
    user: &'a User,
    session_id: Uuid,
    grant: &'a SessionGrant,
    assurance: &'a Assurance,
    nonce: Option<&'a str>,
}

fn has_scope(grant: &SessionGrant, scope: &str) -> bool {
    grant.scope.split(' ').any(|s| s == scope)
}

async fn respond(
    app: &AppState,
    issued: &Issued<'_>,
    refresh_token: String,
) -> Result<TokenResponse, TokenError> {
    let now = app.clock.now();
    let (user, grant, assurance) = (issued.user, issued.grant, issued.assurance);
    // The access token names only what the user allowed the client to know.
    let email = has_scope(grant, "email");
    let claims = AccessClaims {
        iss: String::new(),
        sub: user.id.to_string(),
        aud: grant.resource.clone(),
        iat: 0,
        nbf: None,
        exp: None,
        jti: String::new(),
        sid: issued.session_id.to_string(),
        email: if email {
            user.email.as_str().to_owned()
        } else {
            String::new()
        },
        email_verified: email && user.email_verified,
        // A client's token is not the account: the role (an admin's powers) is not in it, so
        // a gateway cannot pass it on as one.
        role: String::new(),
        name: user
            .name
            .as_ref()
            .filter(|_| has_scope(grant, "profile"))
            .map(|n| n.as_str().to_owned()),
        auth_time: Some(assurance.auth_time.unix_timestamp()),
        amr: Some(assurance.amr()),
        acr: Some(assurance.acr().as_str().to_owned()),
        client_id: Some(grant.client_id.clone()),
        scope: Some(grant.scope.clone()),
    };
    let access_token = app
        .tokens
        .issue(claims, now)
        .map_err(|e| Fault::Internal(e.into()))?;
    let id_token = match has_scope(grant, "openid") {
        true => Some(id_token(app, issued, &access_token).await?),
        false => None,
    };
    Ok(TokenResponse {
        expires_in: app.config.tokens.access_ttl.whole_seconds(),
        access_token,
        token_type: "Bearer",
        refresh_token: has_scope(grant, "offline_access").then_some(refresh_token),
        id_token,
        scope: grant.scope.clone(),
    })
}

/// The claims of an ID token (OpenID Connect Core §2), plus the user's claims its scopes allow.
#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    acr: &'static str,
    amr: Vec<String>,
    at_hash: String,
    sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

async fn id_token(
    app: &AppState,
    issued: &Issued<'_>,
    access_token: &str,
) -> Result<String, TokenError> {
    crate::service::keys::ensure_id_token_key(app)
        .await
        .map_err(Fault::Internal)?;
    let now = app.clock.now().unix_timestamp();
    let (user, grant) = (issued.user, issued.grant);
    let email = has_scope(grant, "email");
    let claims = IdTokenClaims {
        iss: &app.tokens.settings().issuer,
        sub: user.id.to_string(),
        aud: &grant.client_id,
        azp: &grant.client_id,
        exp: now + app.config.tokens.access_ttl.whole_seconds(),
        iat: now,
        auth_time: issued.assurance.auth_time.unix_timestamp(),
        nonce: issued.nonce,
        acr: issued.assurance.acr().as_str(),
        amr: issued.assurance.amr(),
        at_hash: half_hash(access_token),
        sid: issued.session_id.to_string(),
        email: email.then(|| user.email.as_str()),
        email_verified: email.then_some(user.email_verified),
        name: user
            .name
            .as_ref()
            .filter(|_| has_scope(grant, "profile"))
            .map(|n| n.as_str()),
    };
    Ok(app.id_tokens.sign(&claims).map_err(Fault::Internal)?)
}
