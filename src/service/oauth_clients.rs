//! OAuth clients: admins (and `latchkey clients`) register the applications that sign users in
//! through latchkey. A confidential client's secret is shown once, when it is made, and kept
//! only as its hash.

use super::{Fault, faults_into};
use crate::crypto::random;
use crate::domain::oauth::{parse_client_name, parse_redirect_uris, parse_scopes};
use crate::domain::{ClientChange, Event, OAuthClient, ValidationErrors};
use crate::state::AppState;
use crate::store::{Effects, StoreError};
use uuid::Uuid;

/// How a client operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No such client.
    #[error("not found")]
    NotFound,
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(ClientError);

/// A client's fields as given (by a request body or the command line).
#[derive(Debug, Clone, Default)]
pub struct ClientFields {
    /// Required on creation.
    pub name: Option<String>,
    /// Default true (a secret is made).
    pub confidential: Option<bool>,
    /// Required on creation, at least one.
    pub redirect_uris: Option<Vec<String>>,
    /// Default none.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Default `openid`; `openid` is always added.
    pub scopes: Option<Vec<String>>,
    /// Default false.
    pub first_party: Option<bool>,
}

impl ClientFields {
    /// The change these fields ask for, each judged by its rule; `confidential` cannot change
    /// (a public client that became confidential would have no secret, and the reverse would
    /// leave one that no longer counts).
    pub fn into_change(self) -> Result<ClientChange, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.confidential.is_some() {
            errors.add(
                "confidential",
                "cannot change: register a new client instead",
            );
        }
        let change = ClientChange {
            name: self
                .name
                .and_then(|name| errors.take("name", parse_client_name(&name))),
            redirect_uris: self.redirect_uris.and_then(|uris| {
                errors.take(
                    "redirect_uris",
                    parse_redirect_uris("redirect_uris", uris, true),
                )
            }),
            post_logout_redirect_uris: self.post_logout_redirect_uris.and_then(|uris| {
                errors.take(
                    "post_logout_redirect_uris",
                    parse_redirect_uris("post_logout_redirect_uris", uris, false),
                )
            }),
            scopes: self
                .scopes
                .and_then(|scopes| errors.take("scopes", parse_scopes(scopes))),
            first_party: self.first_party,
        };
        errors.into_result()?;
        Ok(change)
    }
}

/// A registered client and, for a confidential one, its secret (shown this once).
#[derive(Debug, Clone)]
pub struct Registered {
    /// The client.
    pub client: OAuthClient,
    /// The secret, never stored.
    pub secret: Option<String>,
}

/// Registers a client (`by`: the admin, none from the command line), with
/// `OAUTH_CLIENT_CREATED`.
pub async fn register(
    app: &AppState,
    by: Option<Uuid>,
    fields: ClientFields,
) -> Result<Registered, ClientError> {
    let mut errors = ValidationErrors::default();
    let name = errors.require("name", fields.name.clone());
    let uris = errors.require("redirect_uris", fields.redirect_uris.clone());
    let confidential = fields.confidential.unwrap_or(true);
    let change = ClientFields {
        confidential: None,
        name,
        redirect_uris: uris,
        ..fields
    }
    .into_change()
    .map_err(|refused| errors.0.extend(refused.0))
    .ok();
    let change = errors.and(change)?;
    let now = app.clock.now();
    let client = OAuthClient {
        client_id: random::token(),
        name: change.name.unwrap_or_default(),
        confidential,
        redirect_uris: change.redirect_uris.unwrap_or_default(),
        post_logout_redirect_uris: change.post_logout_redirect_uris.unwrap_or_default(),
        scopes: change.scopes.unwrap_or_else(|| vec!["openid".to_owned()]),
        first_party: change.first_party.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    let secret = confidential.then(random::token);
    let secret_hash = secret.as_deref().map(random::token_hash);
    let effects = Effects {
        events: vec![Event::oauth_client_created(&client, by, now)],
        ..Effects::default()
    };
    let committed = app
        .store
        .insert_oauth_client(&client, secret_hash.as_deref(), &effects)
        .await?;
    app.after_commit(committed);
    // The ID-token key must be in the JWKS before the client's first discovery: relying
    // parties fetch it once and do not look again for a key they have not seen.
    crate::service::keys::ensure_id_token_key(app)
        .await
        .map_err(Fault::Internal)?;
    Ok(Registered { client, secret })
}

/// Every client, newest first.
pub async fn list(app: &AppState) -> Result<Vec<OAuthClient>, ClientError> {
    Ok(app.store.oauth_clients().await?)
}

/// One client.
pub async fn get(app: &AppState, client_id: &str) -> Result<OAuthClient, ClientError> {
    app.store
        .oauth_client(client_id)
        .await?
        .ok_or(ClientError::NotFound)
}

/// Changes a client's name, URIs, scopes or first-party flag.
pub async fn update(
    app: &AppState,
    client_id: &str,
    fields: ClientFields,
) -> Result<OAuthClient, ClientError> {
    let change = fields.into_change()?;
    if change.is_empty() {
        return get(app, client_id).await;
    }
    match app
        .store
        .update_oauth_client(client_id, &change, app.clock.now())
        .await
    {
        Err(StoreError::NotFound) => Err(ClientError::NotFound),
        Err(error) => Err(error.into()),
        Ok((client, committed)) => {
            app.after_commit(committed);
            Ok(client)
        }
    }
}

/// Removes a client.
pub async fn remove(app: &AppState, client_id: &str) -> Result<(), ClientError> {
    match app
        .store
        .delete_oauth_client(client_id, app.clock.now())
        .await
    {
        Err(StoreError::NotFound) => Err(ClientError::NotFound),
        result => {
            app.after_commit(result?);
            Ok(())
        }
    }
}
