//! Signing keys: created at first start, rotated by `latchkey keys rotate`, reloaded by every
//! instance. A new key is published (so every instance can verify it) a while before it signs,
//! and an old key stays published until every token it signed has expired. Private halves are
//! stored sealed under the secret key, so a copy of the database cannot sign.

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::jwt::TokenSettings;
use crate::crypto::{IdTokens, JwtAlg, KeyMaterial, Sealer, Tokens};
use crate::state::AppState;
use crate::store::{Store, StoredKey};
use time::{Duration, OffsetDateTime};

/// A new key signs only this long after it was created. Instances reload keys every
/// [`RELOAD_INTERVAL`], so all of them can verify it before any of them signs with it.
pub const PUBLISH_DELAY: Duration = Duration::seconds(3);
/// How often every instance reads the keys again.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A signing key, opened, with when it was made.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The key.
    pub key: KeyMaterial,
    /// When it was created (it signs from a publication delay later).
    pub created_at: OffsetDateTime,
}

/// The token signer for `config`: the shared secret, or the stored keys (one is created on the
/// first start).
pub async fn load(
    config: &Config,
    store: &Store,
    sealer: &Sealer,
    clock: &Clock,
) -> anyhow::Result<Tokens> {
    let settings = TokenSettings {
        alg: config.tokens.alg,
        issuer: config.tokens.issuer.clone(),
        audience: config.tokens.audience.clone(),
        resources: config.oauth.resources.clone(),
        ttl: config.tokens.access_ttl,
        verify_cache_bytes: config.tokens.verify_cache_bytes,
    };
    if let Some(secret) = config
        .tokens
        .secret
        .as_ref()
        .filter(|_| config.tokens.alg.is_symmetric())
    {
        return Ok(Tokens::with_secret(settings, secret.expose().as_bytes()));
    }
    let alg = config.tokens.alg.as_str();
    let mut keys = current(store, sealer, alg).await?;
    if keys.is_empty() {
        let key = KeyMaterial::generate(config.tokens.alg)?;
        insert(store, sealer, &key, clock.now()).await?;
        tracing::info!(kid = %key.kid, alg, "generated a new signing key");
        // Another instance may have raced us to it; whatever the table holds now is the truth.
        keys = current(store, sealer, alg).await?;
    }
    let (chosen, _) = select(&keys, clock.now(), config.tokens.access_ttl);
    Tokens::with_keys(settings, &chosen)
}

/// The ID-token signer with the stored RS256 keys (none until the first ID token is needed).
pub async fn load_id_tokens(
    config: &Config,
    store: &Store,
    sealer: &Sealer,
    clock: &Clock,
) -> anyhow::Result<IdTokens> {
    let id_tokens = IdTokens::default();
    let keys = current(store, sealer, JwtAlg::Rs256.as_str()).await?;
    let (chosen, _) = select(&keys, clock.now(), config.tokens.refresh_ttl);
    id_tokens.replace_keys(&chosen)?;
    Ok(id_tokens)
}

/// Makes sure an ID-token key exists: RSA keys are slow to make, so the first one is made when
/// the first ID token is about to be signed, not at every start.
pub async fn ensure_id_token_key(app: &AppState) -> anyhow::Result<()> {
    if app.id_tokens.ready() {
        return Ok(());
    }
    let alg = JwtAlg::Rs256.as_str();
    if current(&app.store, &app.sealer, alg).await?.is_empty() {
        let key = tokio::task::spawn_blocking(|| KeyMaterial::generate(JwtAlg::Rs256)).await??;
        insert(&app.store, &app.sealer, &key, app.clock.now()).await?;
        tracing::info!(kid = %key.kid, alg, "generated the ID-token signing key");
    }
    // Another instance may have raced us to it; whatever the table holds now is the truth.
    let keys = current(&app.store, &app.sealer, alg).await?;
    let (chosen, _) = select(&keys, app.clock.now(), app.config.tokens.refresh_ttl);
    app.id_tokens.replace_keys(&chosen)
}

/// Reads the keys again: picks up rotations and lets expired keys go.
pub async fn reload(app: &AppState) -> anyhow::Result<()> {
    let id_keys = current(&app.store, &app.sealer, JwtAlg::Rs256.as_str()).await?;
    if !id_keys.is_empty() {
        // An ID token stays useful as a logout hint as long as its session can live: its key
        // is kept that long, not merely until the token expires.
        let (chosen, retired) = select(&id_keys, app.clock.now(), app.config.tokens.refresh_ttl);
        app.id_tokens.replace_keys(&chosen)?;
        if !retired.is_empty() {
            app.store
                .retire_signing_keys(&retired, app.clock.now())
                .await?;
            tracing::info!(kids = ?retired, "ID-token keys retired: every token they signed has expired");
        }
    }
    if app.config.tokens.alg.is_symmetric() {
        return Ok(());
    }
    let now = app.clock.now();
    let keys = current(&app.store, &app.sealer, app.config.tokens.alg.as_str()).await?;
    if keys.is_empty() {
        anyhow::bail!("no signing key in the database");
    }
    let (chosen, retired) = select(&keys, now, app.config.tokens.access_ttl);
    app.tokens.replace_keys(&chosen)?;
    if !retired.is_empty() {
        app.store.retire_signing_keys(&retired, now).await?;
        tracing::info!(kids = ?retired, "signing keys retired: every token they signed has expired");
    }
    Ok(())
}

/// Adds a new signing key for `alg`; it signs once published everywhere.
pub async fn rotate(
    store: &Store,
    sealer: &Sealer,
    alg: JwtAlg,
    now: OffsetDateTime,
) -> anyhow::Result<KeyMaterial> {
    if alg.is_symmetric() {
        anyhow::bail!(
            "{} signs with LATCHKEY_JWT_SECRET: rotate that secret instead",
            alg.as_str()
        );
    }
    let key = KeyMaterial::generate(alg)?;
    insert(store, sealer, &key, now).await?;
    Ok(key)
}

/// The binding of a signing key's sealed private half: its row, so that sealed halves cannot
/// be swapped between keys.
pub(crate) fn binding(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// Signing keys of `alg` not yet retired, newest first, opened. A key still in clear (written
/// by an earlier version after this one sealed the table at start-up) is left out until the
/// next start seals it: only keys sealed under the secret key may sign or verify, and their
/// public halves are derived from the sealed private ones, so whoever can write the database
/// but lacks the key cannot plant one.
pub async fn current(store: &Store, sealer: &Sealer, alg: &str) -> anyhow::Result<Vec<SigningKey>> {
    let mut keys = Vec::new();
    for stored in store.signing_keys(alg).await? {
        if !stored.sealed {
            tracing::warn!(kid = %stored.kid, "ignoring a signing key stored in clear; the next start seals it");
            continue;
        }
        let private_der = sealer
            .open(&stored.private_der, &binding(&stored.kid))
            .map_err(|e| anyhow::anyhow!("signing key {}: {e}", stored.kid))?;
        let alg = [JwtAlg::EdDsa, JwtAlg::Es256, JwtAlg::Rs256]
            .into_iter()
            .find(|alg| alg.as_str() == stored.alg)
            .ok_or_else(|| anyhow::anyhow!("signing key {}: unknown alg", stored.kid))?;
        // The public half is derived from the sealed private one, never read from the row: a
        // database writer without the secret key could otherwise swap in his own.
        let key = KeyMaterial::from_private(alg, private_der)?;
        if key.kid != stored.kid {
            anyhow::bail!(
                "signing key {}: its sealed private key belongs to another key",
                stored.kid
            );
        }
        keys.push(SigningKey {
            key,
            created_at: stored.created_at,
        });
    }
    Ok(keys)
}

async fn insert(
    store: &Store,
    sealer: &Sealer,
    key: &KeyMaterial,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    store
        .insert_signing_key(&StoredKey {
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            private_der: sealer.seal(&key.private_der, &binding(&key.kid)),
            sealed: true,
            public_jwk: key.public_jwk.clone(),
            created_at: now,
        })
        .await?;
    Ok(())
}

/// From keys newest first: the ones to load (the signing key first, then every key that may
/// verify a live token or soon sign) and the ids of keys no live token can need any more.
fn select(
    keys: &[SigningKey],
    now: OffsetDateTime,
    ttl: Duration,
) -> (Vec<KeyMaterial>, Vec<String>) {
    let signing = keys
        .iter()
        .position(|k| k.created_at + PUBLISH_DELAY <= now)
        .unwrap_or(keys.len().saturating_sub(1));
    let mut chosen: Vec<KeyMaterial> = Vec::with_capacity(keys.len());
    chosen.extend(keys.get(signing).map(|k| k.key.clone()));
    chosen.extend(keys[..signing].iter().map(|k| k.key.clone()));
    let mut retired = Vec::new();
    for i in signing + 1..keys.len() {
        // Key i stopped signing when its successor started to.
        let stopped_signing = keys[i - 1].created_at + PUBLISH_DELAY;
        if stopped_signing + ttl + Duration::seconds(1) > now {
            chosen.push(keys[i].key.clone());
        } else {
            retired.push(keys[i].key.kid.clone());
        }
    }
    (chosen, retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(age: Duration, now: OffsetDateTime) -> SigningKey {
        SigningKey {
            key: KeyMaterial::generate(JwtAlg::EdDsa).unwrap(),
            created_at: now - age,
        }
    }

    #[test]
    fn a_new_key_is_published_before_it_signs_and_the_old_one_stays_until_its_tokens_expire() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ttl = Duration::minutes(15);
        let (fresh, old) = (key(Duration::seconds(1), now), key(Duration::days(10), now));

        let (chosen, retired) = select(&[fresh.clone(), old.clone()], now, ttl);
        assert_eq!(
            chosen.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            [&old.key.kid, &fresh.key.kid],
            "old signs, new is published"
        );
        assert!(retired.is_empty());

        let later = now + PUBLISH_DELAY;
        let (chosen, _) = select(&[fresh.clone(), old.clone()], later, ttl);
        assert_eq!(
            chosen.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            [&fresh.key.kid, &old.key.kid],
            "new signs, old verifies"
        );

        let much_later = later + ttl + Duration::seconds(2);
        let (chosen, retired) = select(&[fresh.clone(), old.clone()], much_later, ttl);
        assert_eq!(chosen.len(), 1);
        assert_eq!(retired, std::slice::from_ref(&old.key.kid));
    }

    #[test]
    fn a_lone_fresh_key_signs_at_once() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (chosen, retired) = select(&[key(Duration::ZERO, now)], now, Duration::minutes(15));
        assert_eq!((chosen.len(), retired.len()), (1, 0));
    }
}
