//! What a client can ask about or end of the tokens it holds: the user's claims (userinfo),
//! revocation (RFC 7009), introspection (RFC 7662) and RP-initiated logout.

use super::token::TokenError;
use crate::crypto::random;
use crate::domain::{OAuthClient, RevokeReason};
use crate::service::{Caller, Fault, Principal};
use crate::state::AppState;
use crate::store::Revoke;
use serde_json::{Value, json};
use uuid::Uuid;

/// Why userinfo tells nothing.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// The token was not granted `openid`.
    #[error("the token was not granted openid")]
    NoOpenid,
    /// The account is gone.
    #[error("no such user")]
    UserGone,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// The claims (OpenID Connect Core §5.3) the token's scopes allow, read from the account now. A
/// user's own token (no scope) is the account itself and allows them all.
pub async fn userinfo(app: &AppState, principal: &Principal) -> Result<Value, UserinfoError> {
    let granted: Option<Vec<&str>> = principal
        .claims
        .scope
        .as_deref()
        .map(|s| s.split(' ').collect());
    let allows = |scope: &str| granted.as_ref().is_none_or(|g| g.contains(&scope));
    if !allows("openid") {
        return Err(UserinfoError::NoOpenid);
    }
    let user = app
        .store
        .user(principal.user_id)
        .await
        .map_err(Fault::from)?
        .ok_or(UserinfoError::UserGone)?;
    let mut claims = json!({"sub": user.id.to_string()});
    if allows("email") {
        claims["email"] = json!(user.email.as_str());
        claims["email_verified"] = json!(user.email_verified);
    }
    if allows("profile") {
        if let Some(name) = &user.name {
            claims["name"] = json!(name.as_str());
        }
        claims["updated_at"] = json!(user.updated_at.unix_timestamp());
    }
    Ok(claims)
}

/// Ends the grant `token` (an access or refresh token of `client`'s) belongs to. Tokens that
/// are unknown, dead, or another client's are ignored alike: the answer never tells them apart.
pub async fn revoke(app: &AppState, client: &OAuthClient, token: &str) -> Result<(), TokenError> {
    let now = app.clock.now();
    let session = match app
        .store
        .refresh_token_grant(&random::token_hash(token), now)
        .await?
    {
        Some(grant) if grant.client_id.as_deref() == Some(&client.client_id) => {
            Some((grant.user_id, grant.session_id))
        }
        Some(_) => None,
        None => match access_token_holder(app, token, client) {
            Some(Holder::User(user_id, session_id)) => Some((user_id, session_id)),
            // Its own tokens share one session: revoking one revokes them all (RFC 7009
            // §2.1 lets a server revoke related tokens).
            Some(Holder::Client(session_id)) => {
                let committed = app
                    .store
                    .revoke_service_session(&client.client_id, session_id, now)
                    .await?;
                app.after_commit(committed);
                None
            }
            None => None,
        },
    };
    if let Some((user_id, session_id)) = session {
        let committed = app
            .store
            .revoke_sessions(
                user_id,
                Revoke::One(session_id),
                RevokeReason::RevokedByClient,
                now,
            )
            .await?;
        app.after_commit(committed);
    }
    Ok(())
}

/// Whose an access token `client` holds is.
enum Holder {
    /// A user's, of this session.
    User(Uuid, Uuid),
    /// The client's own (`client_credentials`), of this session.
    Client(Uuid),
}

/// Whose an access token `client` holds is (signature and expiry checked).
fn access_token_holder(app: &AppState, token: &str, client: &OAuthClient) -> Option<Holder> {
    let claims = app.tokens.verify(token, app.clock.now()).ok()?;
    if claims.client_id.as_deref() != Some(&client.client_id) {
        return None;
    }
    if claims.sub == client.client_id {
        return Some(Holder::Client(Uuid::parse_str(&claims.sid).ok()?));
    }
    Some(Holder::User(
        Uuid::parse_str(&claims.sub).ok()?,
        Uuid::parse_str(&claims.sid).ok()?,
    ))
}

/// RFC 7662: whether `token` is live and what it grants, told only to the confidential client it
/// was issued to (a resource server checks access tokens itself, by the JWKS or `/auth/verify`):
/// another client's token, or one of latchkey's own, is inactive to the caller.
pub async fn introspect(
    app: &AppState,
    client: &OAuthClient,
    token: &str,
) -> Result<Value, TokenError> {
    if !client.confidential {
        return Err(TokenError::UnauthorizedClient);
    }
    let inactive = json!({"active": false});
    let now = app.clock.now();
    if let Some(grant) = app
        .store
        .refresh_token_grant(&random::token_hash(token), now)
        .await?
    {
        if !grant.active || grant.client_id.as_deref() != Some(&client.client_id) {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": grant.client_id,
            "scope": grant.scope,
            "sub": grant.user_id.to_string(),
            "sid": grant.session_id.to_string(),
            "exp": grant.expires_at.unix_timestamp(),
            "iss": app.tokens.settings().issuer,
        }));
    }
    let claims = match crate::service::sessions::authenticate_caller(app, token).await {
        Ok(Caller::User(principal)) => principal.claims,
        Ok(Caller::Service(service)) => service.claims,
        Err(crate::service::sessions::AuthError::Unauthorized) => return Ok(inactive),
        Err(crate::service::sessions::AuthError::Fault(fault)) => return Err(fault.into()),
    };
    if claims.client_id.as_deref() != Some(&client.client_id) {
        return Ok(inactive);
    }
    Ok(json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": claims.client_id,
        "scope": claims.scope,
        "sub": claims.sub,
        "sid": claims.sid,
        "aud": claims.aud,
        "iss": claims.iss,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "jti": claims.jti,
        "acr": claims.acr,
        "auth_time": claims.auth_time,
    }))
}

/// A checked RP-initiated logout request.
#[derive(Debug)]
pub struct Logout {
    /// The user of a valid `id_token_hint`.
    pub hinted_user: Option<Uuid>,
    /// The session the `id_token_hint` was issued in, and its user.
    pub grant_session: Option<(Uuid, Uuid)>,
    /// Where to send the browser afterwards (registered for the client, exactly), with `state`.
    pub redirect: Option<String>,
}

/// Why a logout request cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// A hint not signed here, a client that does not match it, or a return address the client
    /// did not register: no redirect (it would be an open one).
    #[error("{0}")]
    Refused(&'static str),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// Checks an RP-initiated logout request.
pub async fn check_logout(
    app: &AppState,
    id_token_hint: Option<&str>,
    client_id: Option<&str>,
    post_logout_redirect_uri: Option<&str>,
    state: Option<&str>,
) -> Result<Logout, LogoutError> {
    let hint = match id_token_hint {
        Some(token) => Some(
            app.id_tokens
                .verify_hint(token, &app.tokens.settings().issuer)
                .ok_or(LogoutError::Refused(
                    "The ID token hint was not issued here.",
                ))?,
        ),
        None => None,
    };
    let client_id = match (client_id, &hint) {
        (Some(id), Some(hint)) if id != hint.aud => {
            return Err(LogoutError::Refused(
                "The client is not the one the hint was issued to.",
            ));
        }
        (Some(id), _) => Some(id.to_owned()),
        (None, Some(hint)) => Some(hint.aud.clone()),
        (None, None) => None,
    };
    let redirect = match post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => app.store.oauth_client(id).await.map_err(Fault::from)?,
                None => None,
            };
            let registered = client.is_some_and(|client| {
                client
                    .post_logout_redirect_uris
                    .iter()
                    .any(|known| known == uri)
            });
            if !registered {
                return Err(LogoutError::Refused(
                    "The address to return to is not one the client registered.",
                ));
            }
            Some(super::with_query(uri, &[("state", state)]))
        }
    };
    let hinted_user = hint
        .as_ref()
        .and_then(|hint| Uuid::parse_str(&hint.sub).ok());
    let grant_session = hint.and_then(|hint| {
        Some((
            Uuid::parse_str(&hint.sub).ok()?,
            Uuid::parse_str(hint.sid.as_deref()?).ok()?,
        ))
    });
    Ok(Logout {
        hinted_user,
        grant_session,
        redirect,
    })
}

/// Ends the browser's sign-in and the session the hint named.
pub async fn logout(
    app: &AppState,
    logout: &Logout,
    browser: Option<&Principal>,
) -> Result<(), Fault> {
    let now = app.clock.now();
    let sessions = logout
        .grant_session
        .into_iter()
        .chain(browser.map(|principal| (principal.user_id, principal.session_id)));
    for (user_id, session_id) in sessions {
        let committed = app
            .store
            .revoke_sessions(user_id, Revoke::One(session_id), RevokeReason::Logout, now)
            .await?;
        app.after_commit(committed);
    }
    Ok(())
}
