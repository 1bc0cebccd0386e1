//! Secrets at rest (signing keys, queued mail bodies): sealed with AES-256-GCM under a key derived
//! from the secret key, which never enters the database, and bound to the row they belong to.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use std::sync::Arc;

/// The first byte of every sealed value, so that a later format can tell old values apart.
const VERSION: u8 = 1;
/// The sealing key's own HKDF label: the code key uses the secret key differently, and no
/// value made with one key can pass for a value made with the other.
const LABEL: &[u8] = b"latchkey/seal/aes-256-gcm/v1";

/// Seals and opens values under the key derived from the secret key; cheap to clone.
#[derive(Clone)]
pub struct Sealer(Arc<RandomizedNonceKey>);

/// A sealed value did not open: another secret key sealed it, or it was altered or moved to
/// another row.
#[derive(Debug, thiserror::Error)]
#[error("a sealed value does not open with this secret key")]
pub struct OpenError;

impl Sealer {
    /// The sealer for the secret key's bytes.
    pub fn new(secret: &[u8]) -> Sealer {
        let mut key = [0u8; 32];
        Salt::new(HKDF_SHA256, b"latchkey")
            .extract(secret)
            .expand(&[LABEL], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 yields 32 bytes");
        Sealer(Arc::new(
            RandomizedNonceKey::new(&AES_256_GCM, &key).expect("AES-256-GCM takes a 32-byte key"),
        ))
    }

    /// `plain` sealed and bound to `binding` (the row it belongs to, e.g. `signing_key:{kid}`):
    /// version byte, random 96-bit nonce, ciphertext and tag.
    pub fn seal(&self, plain: &[u8], binding: &str) -> Vec<u8> {
        let mut in_out = plain.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(binding.as_bytes()), &mut in_out)
            .expect("AES-GCM seals anything that fits in memory");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&in_out);
        sealed
    }

    /// What [`Sealer::seal`] sealed with the same key and `binding`.
    pub fn open(&self, sealed: &[u8], binding: &str) -> Result<Vec<u8>, OpenError> {
        let [VERSION, rest @ ..] = sealed else {
            return Err(OpenError);
        };
        if rest.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(binding.as_bytes()), &mut in_out)
            .map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_binding() {
        let sealer = Sealer::new(SECRET);
        let sealed = sealer.seal(b"private key", "signing_key:a");
        assert_eq!(
            sealer.open(&sealed, "signing_key:a").unwrap(),
            b"private key"
        );
        assert_eq!(sealed[0], VERSION);
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let sealer = Sealer::new(SECRET);
        assert_ne!(sealer.seal(b"x", "b"), sealer.seal(b"x", "b"));
    }

    #[test]
    fn another_key_another_row_or_a_changed_byte_does_not_open() {
        let sealer = Sealer::new(SECRET);
        let sealed = sealer.seal(b"private key", "signing_key:a");
        assert!(
            Sealer::new(&SECRET[1..])
                .open(&sealed, "signing_key:a")
                .is_err()
        );
        assert!(sealer.open(&sealed, "signing_key:b").is_err());
        for at in [0, 1, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert!(sealer.open(&altered, "signing_key:a").is_err(), "byte {at}");
        }
        assert!(sealer.open(&sealed[..5], "signing_key:a").is_err());
        assert!(sealer.open(&[], "signing_key:a").is_err());
    }
}
