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

/// Seals a successor token so that only whoever presents `presented` can read it back: XOR with
/// SHA-256 of a domain tag and `presented`, a one-time pad keyed by a 256-bit secret the database
/// never holds (it stores only a different hash of `presented`).
pub fn seal(successor: &str, presented: &str) -> Vec<u8> {
    let raw = URL_SAFE_NO_PAD.decode(successor).unwrap_or_default();
    raw.iter()
        .zip(pad(presented))
        .map(|(byte, key)| byte ^ key)
        .collect()
}

/// Opens what [`seal`] made, given the same presented token.
pub fn unseal(sealed: &[u8], presented: &str) -> Option<String> {
    (sealed.len() == 32).then(|| {
        let raw: Vec<u8> = sealed
            .iter()
            .zip(pad(presented))
            .map(|(byte, key)| byte ^ key)
            .collect();
        URL_SAFE_NO_PAD.encode(raw)
    })
}

fn pad(presented: &str) -> [u8; 32] {
    let mut pad = [0u8; 32];
    pad.copy_from_slice(
        digest(&SHA256, &[b"latchkey-seal:", presented.as_bytes()].concat()).as_ref(),
    );
    pad
}

/// A 6-digit code, uniformly drawn.
pub fn code() -> String {
    // Rejection sampling: the largest multiple of 10^6 below 2^32 keeps every code equally likely.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let value = u32::from_le_bytes(bytes::<4>());
        if value < LIMIT {
            return format!("{:06}", value % 1_000_000);
        }
    }
}

/// The key of the keyed hash that reset codes are stored under. It lives outside the database:
/// a 6-digit code is trivially brute-forced from a plain hash, so a stolen database must not
/// hold everything needed.
#[derive(Clone)]
pub struct CodeKey(std::sync::Arc<aws_lc_rs::hmac::Key>);

impl CodeKey {
    /// A key from secret bytes.
    pub fn new(secret: &[u8]) -> CodeKey {
        CodeKey(std::sync::Arc::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret,
        )))
    }

    /// The stored form of `code` issued to `user_id` in reset request `group`: HMAC-SHA256, hex.
    /// The group makes every issued code's hash unique, even when a code repeats.
    pub fn hash(&self, user_id: uuid::Uuid, group: &str, code: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(
            &self.0,
            format!("reset-code:{user_id}:{group}:{code}").as_bytes(),
        );
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The stored form of recovery code `code` (normalised) of `user_id`: HMAC-SHA256, hex.
    /// Keyed, so a copy of the database gives no way to test guesses offline.
    pub fn recovery_code(&self, user_id: uuid::Uuid, code: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(
            &self.0,
            format!("recovery-code:{user_id}:{code}").as_bytes(),
        );
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The name under which an address's password checks and mail requests are counted:
    /// HMAC-SHA256 of the normalised address, hex. Keyed, so the counters of addresses that
    /// have no account name no one to a reader of the database.
    pub fn subject(&self, email: &crate::domain::Email) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.0, format!("subject:{email}").as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = code();
            assert!(
                code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
                "{code}"
            );
        }
    }

    #[test]
    fn code_hashes_depend_on_the_key_the_user_and_the_request() {
        let (a, b) = (CodeKey::new(&[1; 32]), CodeKey::new(&[2; 32]));
        let user = crate::clock::Clock::System.new_id();
        assert_eq!(a.hash(user, "g", "123456"), a.hash(user, "g", "123456"));
        assert_ne!(a.hash(user, "g", "123456"), b.hash(user, "g", "123456"));
        assert_ne!(
            a.hash(user, "g", "123456"),
            a.hash(crate::clock::Clock::System.new_id(), "g", "123456")
        );
        assert_ne!(a.hash(user, "g", "123456"), a.hash(user, "h", "123456"));
    }

    #[test]
    fn a_sealed_successor_opens_only_with_the_presented_token() {
        let (presented, successor) = (token(), token());
        let sealed = seal(&successor, &presented);
        assert_eq!(
            unseal(&sealed, &presented).as_deref(),
            Some(successor.as_str())
        );
        assert_ne!(
            unseal(&sealed, &token()).as_deref(),
            Some(successor.as_str())
        );
        assert_ne!(sealed, URL_SAFE_NO_PAD.decode(&successor).unwrap());
    }
}
