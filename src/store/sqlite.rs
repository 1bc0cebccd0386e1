//! SQLite: the embedded default. Writers take the lock up front (`BEGIN IMMEDIATE`) so that
//! concurrent transactions wait for each other instead of failing on a lock upgrade; that single
//! writer serialises every change, so SQLite needs none of PostgreSQL's row locks.

use super::StoreError;
use super::backend::{Dialect, EmailSearch};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use std::str::FromStr;
use std::time::Duration;

/// Where SQLite differs: nowhere it needs a lock, its write transaction holds the only one.
pub(super) const DIALECT: Dialect = Dialect {
    begin_write: "begin immediate",
    skip_locked: "",
    lock_rotation: "",
    lock_user: None,
    lock_role: None,
    // `seq` is assigned under the single write lock, so it already follows commit order.
    order_user_events: None,
    order_revocations: None,
    lock_sealed: None,
    email_search: Some(EmailSearch {
        filter: "id in (select user_id from users_email_search where users_email_search match ?)",
        count_up_to: "select count(*) from (select 1 from users_email_search
                      where users_email_search match $1 limit $2)",
    }),
};

/// Opens the pools for `url`: (writers and readers, the revocation sync's own reader).
pub(super) async fn connect(url: &str) -> Result<(Pool<Sqlite>, Pool<Sqlite>), StoreError> {
    let options = SqliteConnectOptions::from_str(url)?;
    private_database_files(url, options.get_filename())?;
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // Deleted and overwritten content (a mail body erased once sent, a row sealed in
        // place) is zeroed, not left in free pages for a copy of the file to show.
        .pragma("secure_delete", "on");
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(options.read_only(true))
        .await?;
    Ok((pool, reader))
}

/// Applies the pending migrations.
pub(super) async fn migrate(pool: &Pool<Sqlite>) -> Result<(), StoreError> {
    sqlx::migrate!("migrations/sqlite")
        .run(pool)
        .await
        .map_err(|e| StoreError::Other(e.into()))
}

/// The file of the SQLite database at `url` when it does not exist yet (in-memory databases
/// always exist).
pub(super) fn missing_file(url: &str) -> Option<std::path::PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let name = path.to_string_lossy();
    // sqlx names an in-memory database `file:sqlx-in-memory-N`.
    let in_memory = name.is_empty()
        || name.starts_with(':')
        || name.starts_with("file:sqlx-in-memory-")
        || url.contains("mode=memory");
    (!in_memory && !path.exists()).then(|| path.to_path_buf())
}

/// Makes the database file owner-only before SQLite opens it: created so when missing, its
/// -wal and -shm then inherit the mode; tightened when an earlier version left them readable.
fn private_database_files(url: &str, path: &std::path::Path) -> Result<(), StoreError> {
    let name = path.to_string_lossy();
    // In-memory databases have no file; a read-only one is never created.
    if name.is_empty()
        || name.starts_with(':')
        || name.starts_with("file:")
        || url.contains("mode=memory")
        || url.contains("mode=ro")
    {
        return Ok(());
    }
    let private = || -> std::io::Result<()> {
        match crate::files::create_private_if_missing(path) {
            // A missing directory: SQLite's own error says it.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            crate::files::tighten(std::path::Path::new(&file), "the database file")?;
        }
        Ok(())
    };
    private().map_err(|e| {
        StoreError::Other(anyhow::Error::new(e).context(format!(
            "cannot make the database file {} owner-only",
            path.display()
        )))
    })
}
