//! The user account and its profile fields, each validated by its own `parse`.

use super::{Email, ValidationErrors};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// Largest `metadata` object accepted, serialised.
pub const MAX_METADATA_BYTES: usize = 4096;
const MAX_NAME_CHARS: usize = 200;

/// A user account as the service sees it. Its password hash lives only in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// UUIDv7, so ids sort by creation time.
    pub id: Uuid,
    /// Normalised address; unique.
    pub email: Email,
    /// Whether the address was confirmed (or vouched for by an admin).
    pub email_verified: bool,
    /// Full name, when given.
    pub name: Option<Name>,
    /// E.164 phone number, when given.
    pub phone: Option<Phone>,
    /// One of the configured roles.
    pub role: Role,
    /// A disabled account cannot log in.
    pub disabled: bool,
    /// Free application fields.
    pub metadata: Metadata,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the account last changed.
    pub updated_at: OffsetDateTime,
    /// When the account last logged in.
    pub last_login_at: Option<OffsetDateTime>,
    /// The language the user's mails are written in, when known.
    pub locale: Option<Locale>,
}

/// A BCP 47 language tag (`de`, `pt-BR`): a 2–3 letter language, then subtags of 1–8 letters
/// or digits, at most 35 characters in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    /// Validates a tag as sent (surrounding spaces are dropped).
    pub fn parse(raw: &str) -> Result<Locale, ValidationErrors> {
        let tag = raw.trim();
        let mut subtags = tag.split('-');
        let language = subtags.next().unwrap_or_default();
        let valid = tag.len() <= 35
            && (2..=3).contains(&language.len())
            && language.bytes().all(|b| b.is_ascii_alphabetic())
            && subtags.all(|subtag| {
                (1..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if valid {
            Ok(Locale(tag.to_owned()))
        } else {
            Err(ValidationErrors::one(
                "locale",
                "must be a BCP 47 language tag such as en or de-AT",
            ))
        }
    }

    /// Rebuilds a stored tag.
    pub fn from_trusted(stored: String) -> Locale {
        Locale(stored)
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A full name: 1–200 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Validates a name as sent.
    pub fn parse(raw: &str) -> Result<Name, ValidationErrors> {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        if length == 0 || length > MAX_NAME_CHARS {
            return Err(ValidationErrors::one("name", "must be 1 to 200 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationErrors::one(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Name(trimmed.to_owned()))
    }

    /// Rebuilds a stored name.
    pub fn from_trusted(stored: String) -> Name {
        Name(stored)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An E.164 phone number: `+` and 8 to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Validates a phone number as sent.
    pub fn parse(raw: &str) -> Result<Phone, ValidationErrors> {
        let digits = raw.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Phone(raw.to_owned()))
        } else {
            Err(ValidationErrors::one(
                "phone",
                "must be in E.164 form: + and 8 to 15 digits",
            ))
        }
    }

    /// Rebuilds a stored number.
    pub fn from_trusted(stored: String) -> Phone {
        Phone(stored)
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-form application fields: a JSON object of at most 4 KiB serialised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Validates an object as sent.
    pub fn parse(object: Map<String, Value>) -> Result<Metadata, ValidationErrors> {
        let size = serde_json::to_vec(&object).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_METADATA_BYTES {
            return Err(ValidationErrors::one(
                "metadata",
                "must be at most 4096 bytes serialised",
            ));
        }
        Ok(Metadata(object))
    }

    /// Rebuilds stored metadata.
    pub fn from_trusted(object: Map<String, Value>) -> Metadata {
        Metadata(object)
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A role name, one of the configured set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Role(String);

impl Role {
    /// Rebuilds a stored role.
    pub fn from_trusted(stored: String) -> Role {
        Role(stored)
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The configured roles: which exist, which new users get, which administers.
#[derive(Debug, Clone)]
pub struct Roles {
    all: Vec<Role>,
    default: Role,
    admin: Role,
}

impl Roles {
    /// Validates the configured role list; the default and admin roles must be in it.
    pub fn new(names: &[String], default: &str, admin: &str) -> Result<Roles, String> {
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if let Some(bad) = names.iter().find(|name| !valid(name)) {
            return Err(format!(
                "role {bad:?} must be 1-64 characters of a-z 0-9 _ -"
            ));
        }
        let all: Vec<Role> = names.iter().map(|name| Role(name.clone())).collect();
        let find = |name: &str, what: &str| {
            all.iter()
                .find(|role| role.0 == name)
                .cloned()
                .ok_or_else(|| format!("{what} role {name:?} is not among the roles"))
        };
        Ok(Roles {
            default: find(default, "default")?,
            admin: find(admin, "admin")?,
            all,
        })
    }

    /// The role named `name`, if configured.
    pub fn parse(&self, name: &str) -> Result<Role, ValidationErrors> {
        self.all
            .iter()
            .find(|role| role.0 == name)
            .cloned()
            .ok_or_else(|| ValidationErrors::one("role", "must be one of the configured roles"))
    }

    /// Every configured role's name, in configured order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.all.iter().map(|role| role.0.as_str())
    }

    /// The role a new user gets.
    pub fn default_role(&self) -> &Role {
        &self.default
    }

    /// The role allowed to administer users.
    pub fn admin(&self) -> &Role {
        &self.admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(Phone::parse("+447700900123").is_ok());
        for bad in [
            "447700900123",
            "+1234567",
            "+1234567890123456",
            "+44 7700 900123",
            "",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"n".repeat(201)).is_err());
        assert!(Name::parse("bell\u{7}").is_err());
    }

    #[test]
    fn metadata_is_bounded_by_its_serialised_size() {
        let mut big = Map::new();
        big.insert("k".into(), Value::String("v".repeat(MAX_METADATA_BYTES)));
        assert!(Metadata::parse(big).is_err());
        assert!(Metadata::parse(Map::new()).is_ok());
    }

    #[test]
    fn the_default_role_must_be_configured() {
        let names = vec!["user".to_owned(), "admin".to_owned()];
        assert!(Roles::new(&names, "user", "admin").is_ok());
        assert!(Roles::new(&names, "customer", "admin").is_err());
        assert!(Roles::new(&["Bad Role".to_owned()], "Bad Role", "Bad Role").is_err());
    }
}

/// A change of user fields: `None` leaves a field alone; for name and phone `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// New name.
    pub name: Option<Option<Name>>,
    /// New phone.
    pub phone: Option<Option<Phone>>,
    /// New metadata (clearing means `{}`).
    pub metadata: Option<Metadata>,
    /// New role (admins only).
    pub role: Option<Role>,
    /// Disable or enable (admins only).
    pub disabled: Option<bool>,
    /// Mark the email verified or not (admins only).
    pub email_verified: Option<bool>,
    /// New language tag.
    pub locale: Option<Option<Locale>>,
}

impl UserChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.phone.is_none()
            && self.metadata.is_none()
            && self.role.is_none()
            && self.disabled.is_none()
            && self.email_verified.is_none()
            && self.locale.is_none()
    }
}

/// Which users to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// A substring of the email, normalised like an address; every character literal.
    pub email_contains: Option<String>,
    /// Exactly this role.
    pub role: Option<String>,
    /// Verified or not.
    pub verified: Option<bool>,
    /// Disabled or not.
    pub disabled: Option<bool>,
    /// Only users older than this (created_at, id) position: the keyset cursor.
    pub after: Option<(OffsetDateTime, Uuid)>,
}
