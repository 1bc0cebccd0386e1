//! Pure types and rules: emails, passwords, users, roles and events. No HTTP, no SQL.

pub mod assurance;
pub mod email;
pub mod event;
pub mod oauth;
pub mod password;
pub mod user;

pub use assurance::{Acr, Assurance, AuthMethod, Demand};
pub use email::Email;
pub use event::{Event, EventType, LoginFailure, RevokeReason};
pub use oauth::{ClientChange, Consent, OAuthClient};
pub use password::{Password, PasswordPolicy};
pub use user::{Locale, Metadata, Name, Phone, Role, Roles, User, UserChange, UserFilter};

use serde::Serialize;
use uuid::Uuid;

/// Which live sessions of a user to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Every one.
    All,
    /// Every one but this (the caller's own, on a password change).
    AllBut(Uuid),
    /// Just this one.
    One(Uuid),
}

/// The network a client address stands for, as budgets and the login slow-down count it: an
/// IPv4 address itself (`::ffff:a.b.c.d` is `a.b.c.d`), an IPv6 address's /64, since one
/// subscriber usually gets a whole /64 and could otherwise take a new address per try. Text
/// that is not an address is kept as it is.
pub fn client_network(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Ok(std::net::IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Err(_) => ip.to_owned(),
    }
}

/// One offending field of a request, as reported in a problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field as the client sent it, e.g. `new_password`.
    pub field: String,
    /// What is wrong with it, in plain words.
    pub message: String,
}

/// Every offending field of one request; empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("validation failed")]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single-field failure.
    pub fn one(field: &str, message: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    /// Records a failure of `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Takes the value of a parse, or records its failure under `field` (renamed as sent).
    pub fn take<T>(&mut self, field: &str, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                self.0.extend(errors.0.into_iter().map(|e| FieldError {
                    field: field.to_owned(),
                    ..e
                }));
                None
            }
        }
    }

    /// Records a missing required field and gives `None`.
    pub fn require<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// The parsed value when nothing was recorded, else the failures. (A value missing with no
    /// failure recorded cannot happen: whatever made it `None` recorded why.)
    pub fn and<T>(self, value: Option<T>) -> Result<T, ValidationErrors> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(self),
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}
