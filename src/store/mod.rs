//! The persistence seam: every SQL statement lives below here. One store method is one business
//! operation in one transaction: the row change and its outbox event commit together or not at all.

mod attempts;
mod backend;
mod challenges;
mod email_changes;
mod events;
mod factors;
mod keys;
mod listing;
mod mail;
mod oauth;
mod oauth_clients;
mod postgres;
mod records;
mod recovery;
mod sealing;
mod sessions;
mod sqlite;
mod users;

use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::domain::{Revoke, UserChange, UserFilter};
pub use attempts::{AttemptCounts, AttemptGate};
use backend::{Dialect, Pools, Tx, sql};
pub use challenges::{Challenge, ChallengeKind};
pub use factors::{CredentialRecord, Factors, TotpRecord};
pub use oauth::{NewCode, Redeem, Redemption, RefreshTokenGrant};
pub use records::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Persistence failures, as the services need to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. the email is taken).
    #[error("conflict with an existing row")]
    Conflict,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The change would leave no enabled, verified admin (of the role named by the caller).
    #[error("the last admin cannot be removed")]
    LastAdmin,
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            // SQLite still locked after the busy timeout: the database is overloaded, not broken.
            sqlx::Error::Database(db)
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && db
                        .code()
                        .and_then(|code| code.parse::<i32>().ok())
                        .is_some_and(|code| matches!(code & 0xff, 5 | 6)) =>
            {
                StoreError::Unavailable(error.into())
            }
            sqlx::Error::RowNotFound => StoreError::NotFound,
            // PostgreSQL going away (connection lost, shut down, the database dropped or
            // renamed, our role refused), out of resources, or asking for a retry (deadlock,
            // serialization): the client should retry, not see a bug.
            sqlx::Error::Database(db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                    && db.code().is_some_and(|code| {
                        code.starts_with("08")
                            || code.starts_with("28")
                            || code.starts_with("53")
                            || code.starts_with("57P0")
                            || code == "3D000"
                            || code == "40001"
                            || code == "40P01"
                    }) =>
            {
                StoreError::Unavailable(error.into())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(error.into()),
            _ => StoreError::Other(error.into()),
        }
    }
}

/// The one store of the process, on SQLite or PostgreSQL; cheap to clone. Its operations are
/// written once, in the modules below, for both databases.
#[derive(Clone)]
pub struct Store {
    pool: Pools,
    /// A separate connection for the revocation sync, so that writers queueing for the write
    /// lock (or a pool busy with them) can never starve it: a starved sync would fail bearer
    /// checks closed.
    reader: Pools,
    /// The statements in which this database differs.
    dialect: &'static Dialect,
    /// Write transactions begun (see `write_transactions`).
    writes: Arc<AtomicU64>,
}

impl Store {
    /// Connects to `url` (`sqlite://path`, created when missing, or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let (pool, reader, dialect) = if url.starts_with("sqlite:") {
            let (pool, reader) = sqlite::connect(url).await?;
            (Pools::Sqlite(pool), Pools::Sqlite(reader), &sqlite::DIALECT)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let (pool, reader) = postgres::connect(url).await?;
            (
                Pools::Postgres(pool),
                Pools::Postgres(reader),
                &postgres::DIALECT,
            )
        } else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "unsupported database URL scheme (expected sqlite:// or postgres://)"
            )));
        };
        Ok(Store {
            pool,
            reader,
            dialect,
            writes: Default::default(),
        })
    }

    /// Where the database at `url` would be created, when it does not exist yet and connecting
    /// would create it (SQLite); `None` when it exists or is a server's to create.
    pub fn would_create(url: &str) -> Option<std::path::PathBuf> {
        if url.starts_with("sqlite:") {
            sqlite::missing_file(url)
        } else {
            None
        }
    }

    /// Applies pending migrations; safe to run while other processes use the database.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pools::Sqlite(pool) => sqlite::migrate(pool).await,
            Pools::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sql("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Write transactions begun so far by this process (tests compare the work of answers that
    /// must not differ).
    pub fn write_transactions(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Begins a write transaction (counted: tests compare the work different answers cost).
    async fn write(&self) -> Result<Tx, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.pool.begin(self.dialect).await
    }
}

/// Both backends keep ids as text and times as Unix microseconds: these convert.
fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Other(e.into()))
}

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(value: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|e| StoreError::Other(e.into()))
}
