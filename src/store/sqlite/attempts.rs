//! Password-check accounting and per-address mail throttling: the operations written once in
//! `store::attempts`, for this backend.

use super::SqliteStore;

crate::store::attempts::backend_operations!(SqliteStore, sqlx::SqliteConnection, "");
