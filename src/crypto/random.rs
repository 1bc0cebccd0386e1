//! Opaque random tokens (refresh, confirmation, reset) and the hashes they are stored under.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 32 bytes (256 bits) from the OS CSPRNG, base64url without padding.
pub fn token() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<32>())
}

/// `N` bytes from the OS CSPRNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS random source failing leaves no safe way to continue.
    aws_lc_rs::rand::fill(&mut out).expect("the operating system's random source failed");
    out
}

/// The lookup hash of a high-entropy token: SHA-256, hex. Enough for 256-bit tokens, which
/// cannot be guessed, so a slow hash would only cost time.
pub fn token_hash(token: &str) -> String {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Derives a refresh token's successor from it: HMAC-SHA256 under a key shared by every
/// instance. Deterministic on purpose: a client repeating a refresh within the grace window gets
/// the very same successor again, although only hashes of tokens are stored.
#[derive(Clone)]
pub struct SuccessorKey(std::sync::Arc<aws_lc_rs::hmac::Key>);

impl SuccessorKey {
    /// A key from the shared secret bytes.
    pub fn new(secret: &[u8]) -> SuccessorKey {
        SuccessorKey(std::sync::Arc::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret,
        )))
    }

    /// The successor of `token` (256 bits, base64url).
    pub fn successor(&self, token: &str) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&self.0, token.as_bytes()).as_ref())
    }
}

/// base64url (no padding) of SHA-256 of `data`.
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_differ() {
        let (a, b) = (token(), token());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
