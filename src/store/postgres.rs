//! PostgreSQL: for several instances on one database. The same operations as on SQLite, with
//! row locks where SQLite relies on its single writer: every write path that touches a user's
//! sessions or tokens locks the user's row first (one lock order, so no deadlocks), `for update`
//! on a refresh token being rotated, `skip locked` on queue claims, and advisory locks that keep
//! the outbox and the revocation log in commit order.

use super::StoreError;
use super::backend::Dialect;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// Where PostgreSQL differs.
pub(super) const DIALECT: Dialect = Dialect {
    begin_write: "begin",
    skip_locked: " for update skip locked",
    lock_rotation: " for update of r, s",
    lock_user: Some("select id from users where id = $1 for update"),
    // Two admins demoting each other at once must not both succeed: every admin row is locked
    // first, so the second change sees the first and counts what it left.
    lock_role: Some("select id from users where role = $1 for update"),
    // A second writer of the same user's events waits here until the first commits, so the
    // relay, publishing in `seq` order, publishes them in order.
    order_user_events: Some("select pg_advisory_xact_lock(hashtext($1))"),
    // Revocations are numbered by a sequence; holding this lock until commit makes commit
    // order follow that numbering, so a reader never sees a later number before an earlier one.
    order_revocations: Some("select pg_advisory_xact_lock(7150517)"),
    // Readers go on; writers of any sealed value wait for the re-sealing to commit.
    lock_sealed: Some("lock table sealing, signing_keys, mail_queue in exclusive mode"),
    // The pg_trgm index serves `email like` itself.
    email_search: None,
};

/// Opens the pools for `url`: (writers and readers, the revocation sync's own reader).
pub(super) async fn connect(url: &str) -> Result<(Pool<Postgres>, Pool<Postgres>), StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    // Lazy pools: the process starts (and answers /healthz, and 503 elsewhere) while the
    // database is down, and recovers on its own when it is back.
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.clone());
    let reader = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(options);
    Ok((pool, reader))
}

/// Applies the pending migrations.
pub(super) async fn migrate(pool: &Pool<Postgres>) -> Result<(), StoreError> {
    sqlx::migrate!("migrations/postgres")
        .run(pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Other(other.into()),
        })
}
