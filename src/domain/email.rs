//! Email addresses: normalised (NFKC, trimmed, lower-cased) so that case variants are one account.

use super::ValidationErrors;
use unicode_normalization::UnicodeNormalization;

const MAX_LEN: usize = 254;

/// A syntactically valid, normalised email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and validates an address as typed by a user.
    pub fn parse(raw: &str) -> Result<Email, ValidationErrors> {
        let invalid = |message: &str| Err(ValidationErrors::one("email", message));
        let Some(normalised) = normalise_bounded(raw) else {
            return invalid("must be at most 254 characters");
        };
        if normalised.is_empty() {
            return invalid("must not be empty");
        }
        if normalised.chars().count() > MAX_LEN {
            return invalid("must be at most 254 characters");
        }
        let Some((local, domain)) = normalised.rsplit_once('@') else {
            return invalid("must be a valid email address");
        };
        if !valid_local(local) || !valid_domain(domain) {
            return invalid("must be a valid email address");
        }
        Ok(Email(normalised))
    }

    /// Normalises part of an address (e.g. a search term) the way full addresses are; `None`
    /// when it is sent longer than any address can be (254 characters).
    pub fn normalise_fragment(raw: &str) -> Option<String> {
        if raw.chars().nth(MAX_LEN).is_some() {
            return None;
        }
        Some(raw.nfkc().collect::<String>().trim().to_lowercase())
    }

    /// Rebuilds an address read back from storage, where it was stored normalised.
    pub fn from_trusted(stored: String) -> Email {
        Email(stored)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters looked at before giving up: NFKC can expand one character into 18 (U+FDFA), so
/// normalising a whole 64 KiB body would cost megabytes for an address that cannot be valid.
/// Generous enough for any padding around a 254-character address.
const MAX_NORMALISED_CHARS: usize = 4 * MAX_LEN;

/// The trimmed, lower-cased NFKC form of `raw`, or `None` when it would be longer than
/// `MAX_NORMALISED_CHARS`; never builds more than that.
fn normalise_bounded(raw: &str) -> Option<String> {
    let normalised: String = raw.nfkc().take(MAX_NORMALISED_CHARS + 1).collect();
    if normalised.chars().count() > MAX_NORMALISED_CHARS {
        return None;
    }
    Some(normalised.trim().to_lowercase())
}

// The WHATWG "valid email address" grammar (what browsers accept), widened to Unicode letters
// and digits for internationalised addresses, plus a dot in the domain: addresses that could
// never receive our mail are refused up front. The only length rule is the contract's 254.
fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || SPECIALS.contains(c))
}

fn valid_domain(domain: &str) -> bool {
    domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_normalise_to_one_address() {
        let plain = Email::parse("ada@example.com").unwrap();
        assert_eq!(Email::parse("  ADA@Example.COM ").unwrap(), plain);
        assert_eq!(Email::parse("ａｄａ@example.com").unwrap(), plain);
    }

    #[test]
    fn internationalised_addresses_are_accepted_and_case_folded() {
        let email = Email::parse("Élodie@Exämple.com").unwrap();
        assert_eq!(email.as_str(), "élodie@exämple.com");
        assert_eq!(Email::parse("ÉLODIE@EXÄMPLE.COM").unwrap(), email);
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@-example.com",
            "ada@example..com",
            "ada@exa_mple.com",
            "ada\"@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
        let longest = format!("{}@example.com", "a".repeat(242));
        assert!(Email::parse(&longest).is_ok(), "254 characters");
        assert!(
            Email::parse(&format!("a{longest}")).is_err(),
            "255 characters"
        );
    }

    #[test]
    fn local_part_is_what_precedes_the_at_sign() {
        assert_eq!(
            Email::parse("ada.l@example.com").unwrap().local_part(),
            "ada.l"
        );
    }
}
