//! Use cases: accounts (register, profile, password, deletion), sessions (login, token checks),
//! mail flows (recovery), administration, import and signing keys. Typed outcomes, no HTTP; the
//! CLI calls the same functions as the handlers.

pub mod accounts;
pub mod admin;
mod attempts;
pub mod email_change;
pub mod email_login;
pub mod gateway;
pub mod import;
pub mod invitations;
pub mod keys;
pub mod mail_requests;
pub mod mfa;
pub mod oauth;
pub mod oauth_clients;
pub mod passkeys;
pub mod recovery;
pub mod sealing;
pub mod sessions;

use crate::crypto::HashError;
use crate::store::StoreError;
use uuid::Uuid;

/// Failures of the machinery rather than of the request; every use-case error can carry one.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// The hashing queue is full: shed load.
    #[error("overloaded")]
    Overloaded,
    /// A peer cannot be reached.
    #[error("{0} unavailable")]
    Unavailable(Outage, #[source] anyhow::Error),
    /// A bug or an unexpected failure.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// What an unavailable answer could not reach, named in its detail so that whoever reads it
/// looks in the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The database.
    Database,
    /// Redis, through which instances share revocations and rate limits.
    Redis,
    /// Nothing failed outright, but the answer did not come within the request deadline.
    Deadline,
    /// This instance is shutting down (readiness only).
    ShuttingDown,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outage::Database => "the database",
            Outage::Redis => "Redis",
            Outage::Deadline => "the request deadline",
            Outage::ShuttingDown => "shutdown",
        })
    }
}

impl From<StoreError> for Fault {
    fn from(error: StoreError) -> Fault {
        match error {
            StoreError::Unavailable(cause) => Fault::Unavailable(Outage::Database, cause),
            other => Fault::Internal(other.into()),
        }
    }
}

impl From<HashError> for Fault {
    fn from(error: HashError) -> Fault {
        match error {
            HashError::Overloaded => Fault::Overloaded,
            HashError::Internal(cause) => Fault::Internal(cause),
        }
    }
}

impl From<crate::crypto::TokenError> for Fault {
    fn from(error: crate::crypto::TokenError) -> Fault {
        Fault::Internal(error.into())
    }
}

/// Lets `?` turn store, hashing and signing failures into a use-case error's `Fault` variant.
macro_rules! faults_into {
    ($($error:ty),+ $(,)?) => {$(
        impl From<crate::store::StoreError> for $error {
            fn from(error: crate::store::StoreError) -> Self { Self::Fault(error.into()) }
        }
        impl From<crate::crypto::HashError> for $error {
            fn from(error: crate::crypto::HashError) -> Self { Self::Fault(error.into()) }
        }
        impl From<crate::crypto::TokenError> for $error {
            fn from(error: crate::crypto::TokenError) -> Self { Self::Fault(error.into()) }
        }
    )+};
}
pub(crate) use faults_into;

/// Who is calling, as proven by a valid access token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user id (`sub`).
    pub user_id: Uuid,
    /// The session the token belongs to (`sid`).
    pub session_id: Uuid,
    /// The verified claims.
    pub claims: std::sync::Arc<crate::crypto::AccessClaims>,
}

/// Who holds a bearer token: a user (through latchkey's API or an OAuth client), or an OAuth
/// client acting for itself.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A user's token.
    User(Principal),
    /// A `client_credentials` token: no user behind it.
    Service(ServicePrincipal),
}

/// An OAuth client acting for itself, as proven by its `client_credentials` token.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    /// The client (also `sub`).
    pub client_id: String,
    /// The verified claims.
    pub claims: std::sync::Arc<crate::crypto::AccessClaims>,
}

/// Where a request came from, recorded on the sessions it starts.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address.
    pub ip: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// The first shipped language its `Accept-Language` asks for.
    pub language: Option<crate::templates::Language>,
}

/// A freshly issued access token and refresh token, with the user they are for.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The signed JWT.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The opaque refresh token (only its hash is stored).
    pub refresh_token: String,
    /// The user.
    pub user: crate::domain::User,
}
