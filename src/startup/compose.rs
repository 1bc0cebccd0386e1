//! The composition root: the one place that opens the database, checks the secret key, loads the
//! signing keys and wires the handles of [`AppState`] together. Each command opens only the
//! layers it uses.

use crate::clock::Clock;
use crate::config::{Config, Secret};
use crate::crypto::random::{self, CodeKey};
use crate::crypto::{Hasher, Sealer};
use crate::mail::{MailSettings, Mailer, Transport};
use crate::ratelimit::RateLimiter;
use crate::revocations::Revocations;
use crate::service::sealing::SealingError;
use crate::state::{AppState, Shared};
use crate::store::Store;
use anyhow::Context;
use std::path::Path;

/// The database, migrated: what `migrate` needs and every other layer stands on.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config.database_url.expose())
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// Refuses, with one line, to go on when the configured database does not exist yet: only
/// `serve` and `migrate` create one unless told, so that an unset `LATCHKEY_DATABASE_URL` does
/// not silently mean a new, empty SQLite file beside the real one.
pub fn require_database(config: &Config) -> anyhow::Result<()> {
    match Store::would_create(config.database_url.expose()) {
        Some(path) => anyhow::bail!(
            "the database {} does not exist: set LATCHKEY_DATABASE_URL to the server's database, or pass --create to make a new one",
            path.display()
        ),
        None => Ok(()),
    }
}

/// The database and the secret key checked against it: what the key commands need.
pub struct Sealed {
    /// The migrated database.
    pub store: Store,
    /// The secret key's bytes (the reset-code key is derived from them).
    pub secret_key: Vec<u8>,
    /// Seals secrets at rest under that key.
    pub sealer: Sealer,
}

impl Sealed {
    /// Opens the database and the secret key; a first start writes the canary (and, with
    /// [`IfMissing::Create`], the key file).
    pub async fn open(
        config: &Config,
        clock: &Clock,
        if_missing: IfMissing,
    ) -> anyhow::Result<Self> {
        let store = open_store(config).await?;
        let (secret_key, sealer) = open_sealing(config, &store, clock.now(), if_missing).await?;
        Ok(Sealed {
            store,
            secret_key,
            sealer,
        })
    }
}

/// The whole application: the sealed database plus the signing keys (one is created on the
/// first start), the hashing pool, the revocation set, the mailer and the rate limiter.
pub async fn build(config: Config, clock: Clock) -> anyhow::Result<AppState> {
    // Metrics are recorded from the first request on.
    crate::telemetry::metrics();
    // A broken template override stops start-up before anything else is opened.
    let templates = std::sync::Arc::new(crate::templates::Templates::load(
        config.mail.templates_dir.as_deref(),
        crate::templates::Brand {
            product: config.mail.product_name.clone(),
            public_url: config.server.public_url.clone(),
            base_path: config.server.base_path.clone(),
            password_min_length: config.password_policy.min_length,
        },
    )?);
    let Sealed {
        store,
        secret_key,
        sealer,
    } = Sealed::open(&config, &clock, IfMissing::Create).await?;
    let tokens = crate::service::keys::load(&config, &store, &sealer, &clock).await?;
    let id_tokens = crate::service::keys::load_id_tokens(&config, &store, &sealer, &clock).await?;
    let hasher = Hasher::new(config.hashing)?;
    let revocations = Revocations::load(&store, clock.now()).await?;
    let transport = Transport::new(
        config.mail.smtp_url.as_ref().map(Secret::expose),
        config.mail.dir.clone(),
    )?;
    let mailer = Mailer::new(
        transport,
        MailSettings {
            from: config.mail.from.clone(),
            retry_base: config.mail.retry_base,
            max_age: config.mail.max_age,
        },
        sealer.clone(),
    );
    let redis = config
        .peers
        .redis_url
        .as_ref()
        .map(|url| redis::Client::open(url.expose()))
        .transpose()?;
    // The issuer names the deployment, so deployments sharing one Redis keep their budgets apart.
    let limiter = RateLimiter::new(
        config.rate_limits.clone(),
        &config.tokens.issuer,
        redis,
        clock.clone(),
    );
    let webauthn = relying_party(
        &config.mfa.rp_id,
        &config.server.public_url,
        &config.mail.product_name,
    )
    .map(std::sync::Arc::new);
    Ok(AppState::new(Shared {
        config: std::sync::Arc::new(config),
        store,
        hasher,
        tokens,
        id_tokens,
        revocations,
        mailer,
        templates,
        code_key: CodeKey::new(&secret_key),
        sealer,
        limiter,
        webauthn,
        clock,
        draining: Default::default(),
    }))
}

/// The WebAuthn relying party of `rp_id` for the origin of `public_url`, or `None` (with a
/// warning) when that cannot be one: WebAuthn needs a domain name, not an IP address. A
/// loopback address (the embedded default) stands for `localhost`, where browsers do allow
/// WebAuthn, so passkeys work out of the box at `http://localhost:<port>`.
fn relying_party(rp_id: &str, public_url: &str, product: &str) -> Option<webauthn_rs::Webauthn> {
    use webauthn_rs::prelude::Url;
    let mut url = Url::parse(public_url).ok()?;
    let mut rp_id = rp_id.to_owned();
    let host = url.host_str()?.trim_matches(['[', ']']).to_owned();
    let loopback = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        if host == rp_id {
            rp_id = "localhost".to_owned();
        }
        url.set_host(Some("localhost")).ok()?;
    }
    let origin = Url::parse(&url.origin().ascii_serialization()).ok()?;
    match webauthn_rs::WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(product).build())
    {
        Ok(webauthn) => Some(webauthn),
        Err(error) => {
            tracing::warn!(
                %error, rp_id, origin = %origin,
                "passkeys are off: WebAuthn needs LATCHKEY_PUBLIC_URL on a domain name and LATCHKEY_WEBAUTHN_RP_ID equal to it or a parent domain"
            );
            None
        }
    }
}

/// What to do when a key file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Write a new random key to it (a first start, or a new key for a rotation).
    Create,
    /// Fail: the key must be the one the database was sealed with.
    Refuse,
}

/// The secret key's bytes and its sealer, checked against the database (the first start writes
/// the canary), with what an earlier version left clear sealed under it. A wrong key fails with
/// one line naming where the key came from and nothing of the key.
async fn open_sealing(
    config: &Config,
    store: &Store,
    now: time::OffsetDateTime,
    if_missing: IfMissing,
) -> anyhow::Result<(Vec<u8>, Sealer)> {
    let secret_key = match &config.secret_key {
        Some(key) => key.expose().as_bytes().to_vec(),
        None => key_file(&config.secret_key_file, if_missing)?,
    };
    let sealer = Sealer::new(&secret_key);
    crate::service::sealing::prepare(store, &sealer, now)
        .await
        .map_err(|error| sealing_error(config, error))?;
    Ok((secret_key, sealer))
}

/// A sealing failure as one line for the operator: a wrong key names the key's source.
pub fn sealing_error(config: &Config, error: SealingError) -> anyhow::Error {
    match error {
        SealingError::WrongKey => anyhow::anyhow!(
            "{} is not the key this database was sealed with; every instance needs the key the database was first started with",
            key_source(config)
        ),
        SealingError::Other(error) => error.context("cannot seal the database"),
    }
}

/// The secret key kept in the file at `path` (64 hex characters, owner-only); when the file
/// does not exist, a new random key is written to it (mode 0600) or the call fails, as asked.
pub fn key_file(path: &Path, if_missing: IfMissing) -> anyhow::Result<Vec<u8>> {
    crate::files::tighten(path, "the secret key file")
        .with_context(|| format!("cannot make the key file {} owner-only", path.display()))?;
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 64 => Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "the key file {} is too short (64 hex characters expected)",
            path.display()
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if if_missing == IfMissing::Refuse {
                anyhow::bail!(
                    "the key file {} does not exist; give the key the database was sealed with",
                    path.display()
                );
            }
            let key: String = random::bytes::<32>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            crate::files::create_private(path, key.as_bytes())
                .with_context(|| format!("cannot create the key file {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a new secret key file; every instance needs the same key");
            Ok(key.into_bytes())
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot read the key file {}", path.display()))
        }
    }
}

/// Where the secret key came from, as an operator would look for it.
fn key_source(config: &Config) -> String {
    if config.secret_key.is_some() {
        "LATCHKEY_SECRET_KEY".to_owned()
    } else {
        format!(
            "the key file {} (LATCHKEY_SECRET_KEY_FILE)",
            config.secret_key_file.display()
        )
    }
}
