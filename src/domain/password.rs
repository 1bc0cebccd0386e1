//! Password policy (NIST 800-63B style): length bounds, no composition rules, a blocklist of
//! common passwords and no passwords that contain the account's email local part.

use super::{Email, ValidationErrors};
use std::collections::HashSet;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// The 19,640 most common passwords (Royce Williams' list, as shipped by Django), lower-cased.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The hard floor for `LATCHKEY_PASSWORD_MIN_LENGTH`.
pub const MIN_LENGTH_FLOOR: usize = 8;
/// Longest password accepted, in characters after normalisation; never truncated.
pub const MAX_LENGTH: usize = 128;

/// A new password that satisfies the policy, NFKC-normalised. Never printed.
#[derive(Clone)]
pub struct Password(String);

/// A password as typed at login, normalised the same way but not judged by the policy
/// (it was judged when it was set, under whatever policy held then).
#[derive(Clone)]
pub struct Candidate(String);

/// The configured length rules.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Fewest characters accepted.
    pub min_length: usize,
}

impl PasswordPolicy {
    /// Judges a new password for the account `email`; errors name the field `field`.
    pub fn parse(&self, raw: &str, email: Option<&Email>) -> Result<Password, ValidationErrors> {
        let fail = |message: String| Err(ValidationErrors::one("password", message));
        // Count before normalising too, so a huge input is refused before any work on it.
        if raw.chars().count() > MAX_LENGTH * 4 {
            return fail(format!("must be at most {MAX_LENGTH} characters"));
        }
        let normalised = normalise(raw);
        let length = normalised.chars().count();
        if length < self.min_length {
            return fail(format!("must be at least {} characters", self.min_length));
        }
        if length > MAX_LENGTH {
            return fail(format!("must be at most {MAX_LENGTH} characters"));
        }
        let lowered = normalised.to_lowercase();
        if is_guessable(&lowered) {
            return fail("is too common; choose a less guessable password".to_owned());
        }
        if let Some(email) = email {
            let local = email.local_part();
            if local.chars().count() >= 3 && lowered.contains(local) {
                return fail("must not contain your email address".to_owned());
            }
        }
        Ok(Password(normalised))
    }
}

impl Password {
    /// The normalised password, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Candidate {
    /// Normalises a login attempt; `None` when it is longer than any valid password could be,
    /// so absurd inputs are refused without hashing them.
    pub fn new(raw: &str) -> Option<Candidate> {
        if raw.chars().count() > MAX_LENGTH * 4 {
            return None;
        }
        let normalised = normalise(raw);
        (normalised.chars().count() <= MAX_LENGTH).then_some(Candidate(normalised))
    }

    /// The normalised attempt, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<Password> for Candidate {
    fn from(password: Password) -> Candidate {
        Candidate(password.0)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Candidate([redacted])")
    }
}

fn normalise(raw: &str) -> String {
    raw.nfkc().collect()
}

/// Common passwords dressed up to reach the minimum length are still common: the list itself,
/// a listed word padded with digits or symbols ("iloveyou1234"), a repeated unit
/// ("passwordpassword"), too few distinct characters, or a run along the alphabet, the digits or
/// a keyboard row ("qwertyuiopas", "123456789012").
fn is_guessable(lowered: &str) -> bool {
    const RUNS: [&str; 3] = [
        "abcdefghijklmnopqrstuvwxyz",
        "qwertyuiopasdfghjklzxcvbnm",
        "1234567890",
    ];
    let list = common_passwords();
    let chars: Vec<char> = lowered.chars().collect();
    let core = lowered.trim_matches(|c: char| !c.is_alphabetic());
    let padded_word = core.chars().count() >= 4 && list.contains(core);
    let repeated = (1..=chars.len() / 2).any(|unit| {
        chars.len().is_multiple_of(unit) && chars.chunks(unit).all(|chunk| chunk == &chars[..unit])
    });
    let distinct = chars.iter().collect::<HashSet<_>>().len();
    let reversed: String = chars.iter().rev().collect();
    let run = RUNS.iter().any(|run| {
        let cycled = run.repeat(chars.len() / run.len() + 2);
        cycled.contains(lowered) || cycled.contains(&reversed)
    });
    list.contains(lowered) || padded_word || repeated || distinct < 4 || run
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_length: 12 };

    fn email() -> Email {
        Email::parse("grace@example.com").unwrap()
    }

    #[test]
    fn length_is_counted_in_characters_after_normalisation() {
        assert!(POLICY.parse("short", None).is_err());
        assert!(POLICY.parse("ünïcödé-pässwörd", None).is_ok());
        assert!(POLICY.parse(&"x".repeat(129), None).is_err());
        let sentence: String = "The quick brown fox jumps over the lazy dog. "
            .repeat(3)
            .chars()
            .take(128)
            .collect();
        assert!(POLICY.parse(&sentence, None).is_ok());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert!(common_passwords().len() >= 10_000);
        let common = POLICY.parse("Password1234", None).unwrap_err();
        assert_eq!(common.0[0].field, "password");
        assert!(POLICY.parse("PASSWORD1234", None).is_err());
    }

    #[test]
    fn common_passwords_padded_repeated_or_in_a_row_are_refused() {
        for guessable in [
            "iloveyou1234",
            "!!password!!",
            "passwordpassword",
            "aaaaaaaaaaaa",
            "abababababab",
            "123456789012",
            "qwertyuiopas",
            "zyxwvutsrqpo",
            "0987654321098",
        ] {
            assert!(
                POLICY.parse(guessable, None).is_err(),
                "{guessable} should be refused"
            );
        }
        for fine in [
            "correct horse battery",
            "sunshine on a tuesday",
            "Tr0ub4dor&3-xkcd",
        ] {
            assert!(
                POLICY.parse(fine, None).is_ok(),
                "{fine} should be accepted"
            );
        }
    }

    #[test]
    fn passwords_containing_the_email_local_part_are_refused() {
        assert!(
            POLICY
                .parse("my-Grace-is-long-enough", Some(&email()))
                .is_err()
        );
        assert!(
            POLICY
                .parse("entirely unrelated words", Some(&email()))
                .is_ok()
        );
        let short_local = Email::parse("al@example.com").unwrap();
        assert!(
            POLICY
                .parse("al-is-a-short-local-part", Some(&short_local))
                .is_ok()
        );
    }

    #[test]
    fn login_attempts_far_over_the_limit_are_refused_without_work() {
        assert!(Candidate::new(&"x".repeat(1_000_000)).is_none());
        assert!(Candidate::new("any length is judged later").is_some());
    }
}
