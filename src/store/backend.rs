//! What differs between the databases, and the one way every operation runs its SQL on either.
//!
//! Operations are written once, as methods of `Store`, with `$N` placeholders (sqlx's SQLite
//! driver accepts them). They build a [`Sql`] — text plus arguments of the few column types the
//! schema uses — and run it on a transaction or a pool of whichever database the store has; the
//! few statements that really differ (row locks, advisory locks, how a write begins) come from
//! that database's [`Dialect`]. The driver calls below are generic over sqlx's `Database`, so
//! each backend's binds and row reads are type-checked against its own driver; nothing above
//! them is generic. sqlx's `Any` driver is no way out (it cannot decode SQLite booleans).

use super::{Committed, StoreError};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Postgres, Sqlite, Type};
use std::borrow::Cow;

/// The statements in which the databases differ.
#[derive(Debug)]
pub(super) struct Dialect {
    /// The statement that begins a write transaction.
    pub(super) begin_write: &'static str,
    /// Appended to a select of queue rows a worker claims, so that workers skip each other's.
    pub(super) skip_locked: &'static str,
    /// Appended to the select of the refresh token being rotated and its session.
    pub(super) lock_rotation: &'static str,
    /// Locks one user's row (`$1`, the id) for the transaction; `None` where the write
    /// transaction already serialises every writer.
    pub(super) lock_user: Option<&'static str>,
    /// Locks every user of one role (`$1`) for the transaction.
    pub(super) lock_role: Option<&'static str>,
    /// Held until commit so that one user's (`$1`) events are numbered in commit order.
    pub(super) order_user_events: Option<&'static str>,
    /// Held until commit so that revocations are numbered in commit order.
    pub(super) order_revocations: Option<&'static str>,
    /// Keeps every other writer of sealed values out until commit.
    pub(super) lock_sealed: Option<&'static str>,
    /// Where the plain LIKE cannot find a trigram index by itself: the index's queries.
    pub(super) email_search: Option<EmailSearch>,
}

/// A trigram index of emails, queried with a phrase of at least three characters.
#[derive(Debug)]
pub(super) struct EmailSearch {
    /// The users whose email contains the phrase (`?`).
    pub(super) filter: &'static str,
    /// How many addresses contain the phrase (`$1`), counted up to `$2`.
    pub(super) count_up_to: &'static str,
}

/// A row both drivers can read into (tuples of the schema's column types, or `FromRow` structs).
pub(super) trait Record:
    for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
    + 'static
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
        + 'static
{
}

/// The pools of the database the store runs on.
#[derive(Clone)]
pub(super) enum Pools {
    /// SQLite's.
    Sqlite(Pool<Sqlite>),
    /// PostgreSQL's.
    Postgres(Pool<Postgres>),
}

impl Pools {
    /// Begins a transaction with `statement`.
    pub(super) async fn begin(&self, dialect: &'static Dialect) -> Result<Tx, StoreError> {
        let inner = match self {
            Pools::Sqlite(pool) => Begun::Sqlite(pool.begin_with(dialect.begin_write).await?),
            Pools::Postgres(pool) => Begun::Postgres(pool.begin_with(dialect.begin_write).await?),
        };
        Ok(Tx {
            inner,
            dialect,
            after: Committed::default(),
        })
    }
}

/// A write transaction, with its database's dialect: rolled back when dropped uncommitted.
pub(super) struct Tx {
    inner: Begun,
    /// The statements that differ on this database.
    pub(super) dialect: &'static Dialect,
    /// What the process must hear of once this commits; the helpers that revoke sessions or
    /// queue mail note it here, so no write path can forget to.
    pub(super) after: Committed,
}

enum Begun {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits a transaction that revoked nothing and queued nothing.
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        debug_assert!(
            self.after.is_empty(),
            "a write that revokes sessions or queues mail must hand on what it did: commit_telling"
        );
        self.commit_telling().await.map(drop)
    }

    /// Commits it and hands on what the process must hear of.
    pub(super) async fn commit_telling(self) -> Result<Committed, StoreError> {
        match self.inner {
            Begun::Sqlite(tx) => tx.commit().await?,
            Begun::Postgres(tx) => tx.commit().await?,
        }
        Ok(self.after)
    }

    /// Runs `statement` when this database needs it, binding `arg` when given.
    pub(super) async fn lock(
        &mut self,
        statement: Option<&'static str>,
        arg: Option<Arg<'_>>,
    ) -> Result<(), StoreError> {
        let Some(statement) = statement else {
            return Ok(());
        };
        let mut lock = sql(statement);
        if let Some(arg) = arg {
            lock = lock.bind(arg);
        }
        lock.execute(self).await?;
        Ok(())
    }
}

/// Where a statement runs: in a transaction, or on any connection of a pool.
pub(super) enum On<'c, DB: Database> {
    /// Inside a transaction.
    Tx(&'c mut DB::Connection),
    /// On a pooled connection (a single statement commits on its own).
    Pool(&'c Pool<DB>),
}

/// Where a statement runs, on whichever database.
pub(super) enum Runs<'c> {
    /// On SQLite.
    Sqlite(On<'c, Sqlite>),
    /// On PostgreSQL.
    Postgres(On<'c, Postgres>),
}

/// What a statement can run on: a transaction (`&mut tx`) or a pool (`&self.pool`).
pub(super) trait Target: Send {
    /// Where the statement runs.
    fn runs(&mut self) -> Runs<'_>;
}

impl Target for &mut Tx {
    fn runs(&mut self) -> Runs<'_> {
        match &mut self.inner {
            Begun::Sqlite(tx) => Runs::Sqlite(On::Tx(&mut **tx)),
            Begun::Postgres(tx) => Runs::Postgres(On::Tx(&mut **tx)),
        }
    }
}

impl Target for &Pools {
    fn runs(&mut self) -> Runs<'_> {
        match self {
            Pools::Sqlite(pool) => Runs::Sqlite(On::Pool(pool)),
            Pools::Postgres(pool) => Runs::Postgres(On::Pool(pool)),
        }
    }
}

/// One argument, of a column type both schemas share (ids are text, times microseconds).
#[derive(Debug, Clone)]
pub(super) enum Arg<'a> {
    /// `bigint` / `integer`.
    Int(Option<i64>),
    /// `text`.
    Text(Option<Cow<'a, str>>),
    /// `boolean` (an integer on SQLite).
    Bool(Option<bool>),
    /// `bytea` / `blob`.
    Bytes(Option<&'a [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}
impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Bool(Some(value))
    }
}
impl From<Option<bool>> for Arg<'_> {
    fn from(value: Option<bool>) -> Self {
        Arg::Bool(value)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(value)))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(value)))
    }
}
impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Arg::Text(Some(Cow::Owned(value)))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value.map(Cow::Borrowed))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(value: Option<String>) -> Self {
        Arg::Text(value.map(Cow::Owned))
    }
}
impl From<uuid::Uuid> for Arg<'_> {
    fn from(value: uuid::Uuid) -> Self {
        Arg::Text(Some(Cow::Owned(value.to_string())))
    }
}
impl From<Option<uuid::Uuid>> for Arg<'_> {
    fn from(value: Option<uuid::Uuid>) -> Self {
        Arg::Text(value.map(|id| Cow::Owned(id.to_string())))
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Bytes(Some(value))
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Arg::Bytes(Some(value))
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(value: Option<&'a [u8]>) -> Self {
        Arg::Bytes(value)
    }
}

/// One statement with its arguments, for whichever backend runs it.
#[derive(Debug, Clone)]
pub(super) struct Sql<'a> {
    text: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

/// A statement of fixed text.
pub(super) fn sql<'a>(text: &'static str) -> Sql<'a> {
    Sql {
        text: Cow::Borrowed(text),
        args: Vec::new(),
    }
}

/// A statement assembled from the store's own fixed parts (never from input).
pub(super) fn sql_owned<'a>(text: String) -> Sql<'a> {
    Sql {
        text: Cow::Owned(text),
        args: Vec::new(),
    }
}

impl<'a> Sql<'a> {
    /// Binds the next `$N`.
    pub(super) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs it; gives the rows it changed.
    pub(super) async fn execute(self, mut target: impl Target) -> Result<u64, StoreError> {
        Ok(match target.runs() {
            Runs::Sqlite(on) => driver::execute(on, self).await?,
            Runs::Postgres(on) => driver::execute(on, self).await?,
        })
    }

    /// Gives every row.
    pub(super) async fn fetch_all<R: Record>(
        self,
        mut target: impl Target,
    ) -> Result<Vec<R>, StoreError> {
        Ok(match target.runs() {
            Runs::Sqlite(on) => driver::fetch_all(on, self).await?,
            Runs::Postgres(on) => driver::fetch_all(on, self).await?,
        })
    }

    /// Gives the first row, if any (the store asks this only of statements that give one row
    /// at most: a key, a `limit 1`, an `update … returning` of one row).
    pub(super) async fn fetch_optional<R: Record>(
        self,
        target: impl Target,
    ) -> Result<Option<R>, StoreError> {
        Ok(self.fetch_all(target).await?.into_iter().next())
    }

    /// Gives the first row; `NotFound` when there is none.
    pub(super) async fn fetch_one<R: Record>(self, target: impl Target) -> Result<R, StoreError> {
        self.fetch_optional(target)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Gives the first column of every row.
    pub(super) async fn fetch_column<V>(self, target: impl Target) -> Result<Vec<V>, StoreError>
    where
        (V,): Record,
    {
        let rows: Vec<(V,)> = self.fetch_all(target).await?;
        Ok(rows.into_iter().map(|(value,)| value).collect())
    }

    /// Gives the first column of the first row, if any.
    pub(super) async fn fetch_scalar<V>(self, target: impl Target) -> Result<Option<V>, StoreError>
    where
        (V,): Record,
    {
        let row: Option<(V,)> = self.fetch_optional(target).await?;
        Ok(row.map(|(value,)| value))
    }
}

/// The driver side both backends share: binding [`Arg`]s and running on a connection or a pool.
/// `Sql` calls them with each database's concrete types, where sqlx's bounds hold.
pub(super) mod driver {
    use super::*;

    fn arguments<DB: Database>(args: Vec<Arg<'_>>) -> Result<DB::Arguments, sqlx::Error>
    where
        for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
    {
        use sqlx::Arguments;
        let mut out = DB::Arguments::default();
        for arg in args {
            match arg {
                Arg::Int(v) => out.add(v),
                Arg::Text(v) => out.add(v.as_deref()),
                Arg::Bool(v) => out.add(v),
                Arg::Bytes(v) => out.add(v),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(out)
    }

    /// Runs a statement; gives the rows it changed.
    pub(super) async fn execute<'c, DB>(on: On<'c, DB>, sql: Sql<'c>) -> Result<u64, sqlx::Error>
    where
        DB: Database,
        DB::Arguments: IntoArguments<DB>,
        for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
        for<'e> &'e Pool<DB>: Executor<'e, Database = DB>,
        DB::QueryResult: RowsAffected,
        for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
    {
        let query = sqlx::query_with(sqlx::AssertSqlSafe(sql.text), arguments::<DB>(sql.args)?);
        let done = match on {
            On::Tx(conn) => query.execute(conn).await?,
            On::Pool(pool) => query.execute(pool).await?,
        };
        Ok(done.rows())
    }

    /// Runs a query; gives every row.
    pub(super) async fn fetch_all<'c, DB, R>(
        on: On<'c, DB>,
        sql: Sql<'c>,
    ) -> Result<Vec<R>, sqlx::Error>
    where
        DB: Database,
        R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
        DB::Arguments: IntoArguments<DB>,
        for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
        for<'e> &'e Pool<DB>: Executor<'e, Database = DB>,
        for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
    {
        let query = sqlx::query_as_with::<DB, R, _>(
            sqlx::AssertSqlSafe(sql.text),
            arguments::<DB>(sql.args)?,
        );
        match on {
            On::Tx(conn) => query.fetch_all(conn).await,
            On::Pool(pool) => query.fetch_all(pool).await,
        }
    }

    /// The rows a statement changed, whatever the driver calls its result.
    pub(super) trait RowsAffected {
        fn rows(&self) -> u64;
    }
    impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
        fn rows(&self) -> u64 {
            self.rows_affected()
        }
    }
    impl RowsAffected for sqlx::postgres::PgQueryResult {
        fn rows(&self) -> u64 {
            self.rows_affected()
        }
    }
}
