//! One-time codes of the second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step)
//! through `totp-rs`, and recovery codes.

use totp_rs::{Algorithm, Builder, Totp};

/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Seconds per TOTP step.
const STEP_SECONDS: u64 = 30;

/// A TOTP authenticator's parameters around its secret.
pub struct Authenticator(Totp);

impl Authenticator {
    /// The authenticator of `secret`, labelled `issuer: account` in authenticator apps.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Option<Authenticator> {
        // A colon separates issuer and account in the otpauth label: neither may hold one.
        let label = |text: &str| text.replace(':', " ");
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(secret.to_vec())
            .with_issuer(Some(label(issuer)))
            .with_account_name(label(account))
            .build()
            .ok()
            .map(Authenticator)
    }

    /// The `otpauth://totp/…` URI an authenticator app scans.
    pub fn uri(&self) -> Option<String> {
        self.0.to_url().ok()
    }

    /// The step a code was made for, when it is right within ±1 step of `unix_seconds`. A
    /// caller must still refuse a step already used (each code works once).
    pub fn matching_step(&self, code: &str, unix_seconds: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = u64::try_from(unix_seconds).ok()?;
        self.0
            .check(code, now)
            .and_then(|step| i64::try_from(step).ok())
    }
}

/// The base32 form of a secret, as authenticator apps accept it typed in.
pub fn secret_base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// Recovery codes per account.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits that cannot be mistaken for each other (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// A recovery code: ten characters of [`ALPHABET`] (49 bits), shown as `xxxxx-xxxxx`.
pub fn recovery_code() -> String {
    let mut code = String::with_capacity(11);
    while code.len() < 11 {
        if code.len() == 5 {
            code.push('-');
        }
        // Rejection sampling keeps every character equally likely.
        let byte = super::random::bytes::<1>()[0];
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(byte) < limit {
            code.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
        }
    }
    code
}

/// A recovery code as typed, in the form it was issued: case, spaces and dashes do not matter.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let plain: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (plain.len() == 10 && plain.bytes().all(|b| ALPHABET.contains(&b)))
        .then(|| format!("{}-{}", &plain[..5], &plain[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vector_and_the_window_of_one_step() {
        // RFC 6238 appendix B, SHA-1: T = 59 s gives 94287082 (8 digits); 6 digits: 287082.
        let totp = Authenticator::new(b"12345678901234567890", "Acme", "ada@example.com").unwrap();
        assert_eq!(totp.matching_step("287082", 59), Some(1));
        assert_eq!(
            totp.matching_step("287082", 59 + 30),
            Some(1),
            "one step late"
        );
        assert_eq!(
            totp.matching_step("287082", 59 + 60),
            None,
            "two steps late"
        );
        assert_eq!(totp.matching_step("28708", 59), None);
        assert_eq!(totp.matching_step("2870822", 59), None);
        let uri = totp.uri().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Acme:ada%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
    }

    #[test]
    fn recovery_codes_are_read_back_however_they_are_typed() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalise_recovery_code(&code.to_uppercase().replace('-', " ")),
            Some(code)
        );
        assert_eq!(normalise_recovery_code("abcde-fghi0"), None);
    }
}
