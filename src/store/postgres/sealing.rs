//! Sealing's store operations (written once in `store::sealing`), for this backend.

use super::PostgresStore;

crate::store::sealing::backend_operations!(
    PostgresStore,
    Some("lock table sealing, signing_keys, mail_queue in exclusive mode")
);
