//! Password-check accounting and per-address mail throttling: the operations written once in
//! `store::attempts`, for this backend.

use super::PostgresStore;

crate::store::attempts::backend_operations!(
    PostgresStore,
    sqlx::PgConnection,
    " for update skip locked"
);
