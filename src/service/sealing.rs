//! Secrets at rest: at start-up the canary that stops a wrong secret key, then sealing in place
//! what an earlier version left in clear (signing keys, queued mail bodies); and re-sealing all
//! of it under a new secret key (`latchkey keys rotate-secret`).

use crate::crypto::Sealer;
use crate::mail::MailBody;
use crate::store::{Resealed, SealedRow, Store, StoreError};
use time::OffsetDateTime;

/// What the canary holds, sealed.
const CANARY: &[u8] = b"latchkey sealing canary";
/// The canary's binding: no row's sealed value can stand in for it.
const CANARY_BINDING: &str = "sealing:canary";
/// Rows sealed per read, so that a large queue is not read at once.
const BATCH: i64 = 100;

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The secret key is not the one the database was sealed with.
    #[error("the secret key is not the key this database was sealed with")]
    WrongKey,
    /// The database failed.
    #[error(transparent)]
    Other(anyhow::Error),
}

impl From<StoreError> for SealingError {
    fn from(error: StoreError) -> SealingError {
        SealingError::Other(error.into())
    }
}

/// Checks the secret key against the database (the first start with a key writes the canary),
/// then seals every secret an earlier version left in clear. The check comes first: sealing
/// with a wrong key would leave rows that no instance with the right key could open.
pub async fn prepare(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
) -> Result<(), SealingError> {
    check_canary(store, sealer, now).await?;
    seal_signing_keys(store, sealer, now).await?;
    seal_mails(store, sealer, now).await
}

/// What a rotation of the secret key re-sealed besides the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Signing keys (retired ones too).
    pub signing_keys: u64,
    /// Queued mails not yet sent.
    pub mails: u64,
    /// TOTP secrets.
    pub totp_secrets: u64,
}

/// Opens everything sealed under `current` and seals it under `new`, in one transaction: the
/// canary, every signing key's private half, every queued mail's bodies, every TOTP secret. When the canary does
/// not open, `WrongKey`; when anything else does not, an error naming it; either way nothing
/// changes. Keyed hashes (reset codes, address subjects) cannot follow: the values behind them
/// are not kept.
pub async fn rotate(
    store: &Store,
    current: &Sealer,
    new: &Sealer,
    now: OffsetDateTime,
) -> Result<Rotated, SealingError> {
    let reseal = |row: &SealedRow, sealed: &[u8]| {
        let binding = match row {
            SealedRow::Canary => CANARY_BINDING.to_owned(),
            SealedRow::SigningKey(kid) => super::keys::binding(kid),
            SealedRow::Mail(id) => crate::mail::binding(*id),
            SealedRow::TotpSecret(user) => super::mfa::totp_binding(*user),
        };
        let plain = current.open(sealed, &binding).ok()?;
        // Checked as at start-up, so both agree on what a wrong key is.
        if *row == SealedRow::Canary && plain != CANARY {
            return None;
        }
        Some(new.seal(&plain, &binding))
    };
    match store.reseal_all(&reseal, now).await? {
        Resealed::Done {
            signing_keys,
            mails,
            totp_secrets,
        } => Ok(Rotated {
            signing_keys,
            mails,
            totp_secrets,
        }),
        Resealed::Refused(SealedRow::Canary) => Err(SealingError::WrongKey),
        Resealed::Refused(row) => Err(SealingError::Other(anyhow::anyhow!(
            "{row} does not open with the current secret key; nothing was re-sealed"
        ))),
    }
}

async fn check_canary(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
) -> Result<(), SealingError> {
    let canary = match store.sealing_canary().await? {
        Some(canary) => canary,
        None => {
            store
                .insert_sealing_canary(&sealer.seal(CANARY, CANARY_BINDING), now)
                .await?;
            // Another instance may have written its own first; the one stored is the truth.
            store.sealing_canary().await?.ok_or_else(|| {
                SealingError::Other(anyhow::anyhow!("the sealing canary was not stored"))
            })?
        }
    };
    match sealer.open(&canary, CANARY_BINDING) {
        Ok(plain) if plain == CANARY => Ok(()),
        _ => Err(SealingError::WrongKey),
    }
}

async fn seal_signing_keys(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
) -> Result<(), SealingError> {
    loop {
        let clear = store.clear_signing_keys(BATCH).await?;
        if clear.is_empty() {
            return Ok(());
        }
        for key in clear {
            let sealed = sealer.seal(&key.private_der, &super::keys::binding(&key.kid));
            store.seal_signing_key(&key.kid, &sealed, now).await?;
            tracing::info!(kid = %key.kid, "sealed a signing key stored in clear by an earlier version");
        }
    }
}

async fn seal_mails(
    store: &Store,
    sealer: &Sealer,
    now: OffsetDateTime,
) -> Result<(), SealingError> {
    let mut sealed = 0;
    loop {
        let clear = store.clear_mails(BATCH).await?;
        if clear.is_empty() {
            break;
        }
        for mail in clear {
            let body = MailBody {
                text: mail.text,
                html: mail.html,
            };
            store
                .seal_mail(mail.id, &body.seal(sealer, mail.id), now)
                .await?;
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(
            mails = sealed,
            "sealed queued mail stored in clear by an earlier version"
        );
    }
    Ok(())
}
