//! Sealing's store operations (written once in `store::sealing`), for this backend.

use super::SqliteStore;

crate::store::sealing::backend_operations!(SqliteStore, None::<&'static str>);
