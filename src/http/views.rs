//! Response bodies shared by several areas, and the request-field helpers every area uses.

use crate::domain::UserChange;
use crate::domain::{Locale, Metadata, Name, Phone, User, ValidationErrors};
use crate::service::TokenPair;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

/// A user as clients see it: never a password hash or token.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// UUIDv7.
    pub id: String,
    /// Normalised (trimmed, lower-cased, NFKC) address.
    #[schema(format = Email)]
    pub email: String,
    /// Whether the email is confirmed.
    pub email_verified: bool,
    /// Full name, or null.
    pub name: Option<String>,
    /// E.164 phone, or null.
    pub phone: Option<String>,
    /// BCP 47 language tag of the user's mails, or null (English).
    pub locale: Option<String>,
    /// One of the configured roles.
    pub role: String,
    /// Whether an admin disabled the account.
    pub disabled: bool,
    /// Application fields (`{}` when empty).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// RFC 3339 UTC, or null before the first login.
    #[serde(serialize_with = "rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<OffsetDateTime>,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            name: user.name.as_ref().map(|n| n.as_str().to_owned()),
            phone: user.phone.as_ref().map(|p| p.as_str().to_owned()),
            locale: user.locale.as_ref().map(|l| l.as_str().to_owned()),
            role: user.role.as_str().to_owned(),
            disabled: user.disabled,
            metadata: user.metadata.as_map().clone(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
        }
    }
}

/// An access token, a refresh token and the user they belong to.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairView {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; exchange it at `/auth/refresh`.
    pub refresh_token: String,
    /// The user.
    pub user: UserView,
}

impl From<TokenPair> for TokenPairView {
    fn from(pair: TokenPair) -> TokenPairView {
        TokenPairView {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
            user: pair.user.into(),
        }
    }
}

pub(crate) fn rfc3339<S: Serializer>(
    at: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let text = at
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

fn rfc3339_option<S: Serializer>(
    at: &Option<OffsetDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`) in PATCH bodies.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Records every field the endpoint does not know (e.g. `role` at registration).
pub(crate) fn refuse_unknown(errors: &mut ValidationErrors, unknown: &Map<String, Value>) {
    for field in unknown.keys() {
        errors.add(field, "is not a field of this request");
    }
}

/// The one required string field of a small body; unknown fields and a missing `name` are
/// reported together.
pub(crate) fn single_field(
    name: &str,
    value: Option<String>,
    unknown: &Map<String, Value>,
) -> Result<String, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, unknown);
    let value = errors.require(name, value);
    errors.and(value)
}

/// The profile fields of a PATCH body: only the fields sent change; `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfilePatch {
    /// Full name, 1–200 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<NameSchema>)]
    name: Option<Option<String>>,
    /// E.164; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PhoneSchema>)]
    phone: Option<Option<String>>,
    /// Replaces the whole object; `null` clears it to `{}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MetadataSchema>)]
    metadata: Option<Option<Map<String, Value>>>,
    /// The language of the user's mails (BCP 47); `null` clears it (English).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<LocaleSchema>)]
    locale: Option<Option<String>>,
}

// The field types the server judges the same wherever they are sent, named once so that each
// constraint is written once; the served document sets `NewPassword`'s minimum from the policy.
/// An email address: at most 254 characters, a syntactically valid address.
#[derive(Debug, ToSchema)]
#[schema(as = Email, format = Email, max_length = 254)]
pub struct EmailSchema(pub String);

/// A new password: 12–128 characters by default (`LATCHKEY_PASSWORD_MIN_LENGTH`), not common,
/// not containing the email's local part.
#[derive(Debug, ToSchema)]
#[schema(as = NewPassword, format = Password, min_length = 12, max_length = 128)]
pub struct NewPasswordSchema(pub String);

/// A full name: 1–200 characters once trimmed, not only spaces, no control characters.
#[derive(Debug, ToSchema)]
#[schema(
    as = Name,
    min_length = 1,
    max_length = 200,
    pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
)]
pub struct NameSchema(pub String);

/// A BCP 47 language tag, e.g. `de` or `pt-BR`; mails are in English or German (a tag of
/// another language gets English).
#[derive(Debug, ToSchema)]
#[schema(
    as = Locale,
    max_length = 35,
    pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
)]
pub struct LocaleSchema(pub String);

/// A phone number in E.164 form: `+` and 8–15 digits.
#[derive(Debug, ToSchema)]
#[schema(as = Phone, pattern = r"^\+[0-9]{8,15}$")]
pub struct PhoneSchema(pub String);

// Named so that client generators can express "this object, or null": an anonymous nullable
// object makes openapi-python-client drop the operations that use it.
/// A free-form JSON object kept with the user.
#[derive(Debug, ToSchema)]
#[schema(as = Metadata, value_type = Object)]
pub struct MetadataSchema(pub Map<String, Value>);

impl ProfilePatch {
    /// The change it asks for, recording what is invalid.
    pub(crate) fn into_change(self, errors: &mut ValidationErrors) -> UserChange {
        UserChange {
            name: self
                .name
                .map(|value| value.and_then(|raw| errors.take("name", Name::parse(&raw)))),
            phone: self
                .phone
                .map(|value| value.and_then(|raw| errors.take("phone", Phone::parse(&raw)))),
            metadata: self.metadata.map(|object| {
                errors
                    .take("metadata", Metadata::parse(object.unwrap_or_default()))
                    .unwrap_or_default()
            }),
            locale: self
                .locale
                .map(|value| value.and_then(|raw| errors.take("locale", Locale::parse(&raw)))),
            ..UserChange::default()
        }
    }
}
