//! The application state handed to every handler: cheap handles, no globals.

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::jwt::TokenSettings;
use crate::crypto::{Hasher, KeyMaterial, Tokens};
use crate::revocations::Revocations;
use crate::store::Store;
use anyhow::Context;
use std::sync::Arc;

/// Everything a request may need.
#[derive(Clone)]
pub struct AppState {
    /// Validated settings.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// The bounded password-hashing pool.
    pub hasher: Hasher,
    /// Access-token signing and verification.
    pub tokens: Tokens,
    /// Which sessions are revoked (kept in step with the store).
    pub revocations: Revocations,
    /// The clock.
    pub clock: Clock,
}

impl AppState {
    /// Connects and migrates the database, loads (or first creates) the signing keys, and
    /// builds the hashing pool.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<AppState> {
        let store = Store::connect(config.database_url.expose())
            .await
            .context("cannot open the database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        let tokens = load_tokens(&config, &store, &clock).await?;
        let hasher = Hasher::new(config.hashing)?;
        let revocations = Revocations::load(&store, clock.now()).await?;
        Ok(AppState {
            config: Arc::new(config),
            store,
            hasher,
            tokens,
            revocations,
            clock,
        })
    }
}

async fn load_tokens(config: &Config, store: &Store, clock: &Clock) -> anyhow::Result<Tokens> {
    let settings = TokenSettings {
        alg: config.jwt_alg,
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
        ttl: config.access_token_ttl,
    };
    if let Some(secret) = config
        .jwt_secret
        .as_ref()
        .filter(|_| config.jwt_alg.is_symmetric())
    {
        return Ok(Tokens::with_secret(settings, secret.expose().as_bytes()));
    }
    let alg = config.jwt_alg.as_str();
    let mut keys = store.signing_keys(alg).await?;
    if keys.is_empty() {
        let key = KeyMaterial::generate(config.jwt_alg)?;
        store.insert_signing_key(&key, clock.now()).await?;
        tracing::info!(kid = %key.kid, alg, "generated a new signing key");
        // Another instance may have raced us to it; whatever the table holds now is the truth.
        keys = store.signing_keys(alg).await?;
    }
    Tokens::with_keys(settings, &keys)
}
