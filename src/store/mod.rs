//! The persistence seam: every SQL statement lives below here. One store method is one business
//! operation in one transaction: the row change and its outbox event commit together or not at all.

mod attempts;
mod postgres;
mod sealing;
mod sqlite;

use crate::domain::{Email, Event, Metadata, Name, Phone, Role, User};
use time::OffsetDateTime;
use uuid::Uuid;

pub use attempts::{AttemptCounts, AttemptGate};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

/// A user about to be created.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The user, with its id and times set.
    pub user: User,
    /// argon2id PHC string; `None` for an account that cannot log in with a password yet.
    pub password_hash: Option<String>,
    /// A visitor registered it (its first confirmation needs the password).
    pub self_registered: bool,
}

/// A session about to be created, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id (`sid` in access tokens).
    pub id: Uuid,
    /// Whose session.
    pub user_id: Uuid,
    /// Hash of the first refresh token.
    pub refresh_token_hash: String,
    /// The client's `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// The client's address.
    pub ip: Option<String>,
    /// When it starts.
    pub created_at: OffsetDateTime,
    /// When its refresh token expires.
    pub expires_at: OffsetDateTime,
}

/// A queued request for mail to one address.
#[derive(Debug, Clone)]
pub struct MailRequest {
    /// The keyed hash of the address.
    pub subject: String,
    /// What mail (`forgot_password`, `resend_confirmation`).
    pub purpose: String,
    /// The address, sealed.
    pub email_sealed: Vec<u8>,
}

/// A mail request to queue with another change, in its transaction.
#[derive(Debug, Clone, Copy)]
pub struct QueuedRequest<'a> {
    /// The keyed hash of the address.
    pub subject: &'a str,
    /// What mail.
    pub purpose: &'a str,
    /// The address, sealed.
    pub email_sealed: &'a [u8],
}

/// What a login's session insert requires of the account, as the password check found it.
#[derive(Debug, Clone, Copy)]
pub struct LoginExpects<'a> {
    /// The hash the password was verified against.
    pub password_hash: &'a str,
    /// The role the account had.
    pub role: &'a str,
    /// Whether its address was verified (tokens say so).
    pub email_verified: bool,
    /// The password check to settle with the session, as (subject, network): it no longer
    /// counts as a failure, and its network's failures are forgotten.
    pub attempt: Option<(&'a str, &'a str)>,
}

/// An event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// Its position: events leave in this order.
    pub seq: i64,
    /// The event id (the deduplication key downstream).
    pub id: String,
    /// The type name, the last part of the subject.
    pub kind: String,
    /// The CloudEvents JSON.
    pub envelope: String,
}

/// A signing key as stored: its private half sealed (see `service::keys`), with when it was made.
#[derive(Clone)]
pub struct StoredKey {
    /// The key id.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// The PKCS#8 DER, sealed when `sealed` (an earlier version stored it clear). Never logged.
    pub private_der: Vec<u8>,
    /// Whether `private_der` is sealed.
    pub sealed: bool,
    /// The public JWK, as published.
    pub public_jwk: serde_json::Value,
    /// When it was created (it signs from a publication delay later).
    pub created_at: OffsetDateTime,
}

/// A queued mail an earlier version left with its bodies in clear, to seal in place.
#[derive(Clone)]
pub struct ClearMail {
    /// Its id.
    pub id: Uuid,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// A value sealed under the secret key, named by the row it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedRow {
    /// The one-row canary.
    Canary,
    /// A signing key's private half.
    SigningKey(String),
    /// A queued mail's bodies.
    Mail(Uuid),
}

impl std::fmt::Display for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealedRow::Canary => f.write_str("the sealing canary"),
            SealedRow::SigningKey(kid) => write!(f, "signing key {kid}"),
            SealedRow::Mail(id) => write!(f, "queued mail {id}"),
        }
    }
}

/// Gives a sealed value's new sealed form, or `None` to refuse it (and so the whole re-sealing).
pub type Reseal<'a> = dyn Fn(&SealedRow, &[u8]) -> Option<Vec<u8>> + Sync + 'a;

/// What re-sealing every sealed value did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resealed {
    /// Every value was replaced: the canary, and this many signing keys and queued mails.
    Done {
        /// Signing keys (retired ones too).
        signing_keys: u64,
        /// Queued mails not yet sent.
        mails: u64,
    },
    /// This value was refused (it does not open); nothing was changed.
    Refused(SealedRow),
}

/// A change of user fields: `None` leaves a field alone; for name and phone `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// New name.
    pub name: Option<Option<Name>>,
    /// New phone.
    pub phone: Option<Option<Phone>>,
    /// New metadata (clearing means `{}`).
    pub metadata: Option<Metadata>,
    /// New role (admins only).
    pub role: Option<Role>,
    /// Disable or enable (admins only).
    pub disabled: Option<bool>,
    /// Mark the email verified or not (admins only).
    pub email_verified: Option<bool>,
}

impl UserChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.phone.is_none()
            && self.metadata.is_none()
            && self.role.is_none()
            && self.disabled.is_none()
            && self.email_verified.is_none()
    }
}

/// Which users to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// A LIKE pattern on the email, already escaped (`\` is the escape character).
    pub email_like: Option<String>,
    /// Exactly this role.
    pub role: Option<String>,
    /// Verified or not.
    pub verified: Option<bool>,
    /// Disabled or not.
    pub disabled: Option<bool>,
    /// Only users older than this (created_at, id) position: the keyset cursor.
    pub after: Option<(OffsetDateTime, Uuid)>,
}

/// How long a revocation is kept: no access token lives longer (its TTL is capped at 24 h).
pub const REVOCATION_LIFETIME: time::Duration = time::Duration::days(1);

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

/// A live session as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session id (`sid`).
    pub id: Uuid,
    /// When it started (the login).
    pub created_at: OffsetDateTime,
    /// When it was last refreshed.
    pub last_used_at: OffsetDateTime,
    /// The client's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The client's address at login.
    pub ip: Option<String>,
}

/// A refresh-token exchange to apply atomically.
#[derive(Debug, Clone)]
pub struct Rotate<'a> {
    /// Hash of the token presented.
    pub presented_hash: &'a str,
    /// Hash of the new (random) successor.
    pub successor_hash: &'a str,
    /// The successor sealed under the presented token, for repeats within the grace window.
    pub successor_sealed: &'a [u8],
    /// Lifetime of the successor (and so of the session).
    pub ttl: time::Duration,
    /// How long after its first use a token may be presented again.
    pub grace: time::Duration,
    /// Read once the write lock is held, so waiting for it cannot stretch expiry or grace.
    pub clock: &'a crate::clock::Clock,
}

/// What a refresh-token exchange found.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// First use: the token is spent and its successor stored.
    Rotated {
        /// The session.
        session_id: Uuid,
        /// Its user, as now stored.
        user: User,
    },
    /// A repeat within the grace window: the successor stands.
    Repeated {
        /// The session.
        session_id: Uuid,
        /// Its user, as now stored.
        user: User,
        /// The successor, sealed under the presented token.
        successor_sealed: Vec<u8>,
    },
    /// A repeat after the grace window: the session was revoked, with its events.
    Reused {
        /// The revoked session.
        session_id: Uuid,
    },
    /// Unknown, expired, or of a revoked session.
    Invalid,
}

/// A revoked session, as every instance needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    /// Position in the revocation log, in commit order.
    pub seq: i64,
    /// The session.
    pub session_id: Uuid,
    /// After this no access token of the session can be alive.
    pub expires_at: OffsetDateTime,
}

/// A mail to queue with the change that causes it.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// Unique id (also the `.eml` file name).
    pub id: Uuid,
    /// The user it concerns (its queued mail goes when the user is deleted).
    pub user_id: Option<Uuid>,
    /// The address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// The text and HTML bodies, sealed (see `mail::MailBody`): they may hold live links and codes.
    pub sealed_body: Vec<u8>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// A mail claimed for delivery.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    /// Its id.
    pub id: Uuid,
    /// The address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// The bodies, as stored.
    pub body: StoredBody,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// The claim: settling the mail needs it still to be ours.
    pub claimed_until: OffsetDateTime,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// A queued mail's bodies as stored.
#[derive(Debug, Clone)]
pub enum StoredBody {
    /// Sealed, as this version queues them.
    Sealed(Vec<u8>),
    /// In clear, as an earlier version queued them (sealed in place at start-up).
    Clear {
        /// Plain-text body.
        text: String,
        /// HTML body.
        html: String,
    },
}

/// What a mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Confirms an email address.
    VerifyEmail,
    /// A password-reset link.
    ResetLink,
    /// A 6-digit password-reset code.
    ResetCode,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetLink => "reset_link",
            TokenPurpose::ResetCode => "reset_code",
        }
    }
}

/// A mailed token about to be stored (as its hash).
#[derive(Debug, Clone)]
pub struct NewEmailToken {
    /// SHA-256 of a link token, or the keyed hash of a code.
    pub token_hash: String,
    /// Whose.
    pub user_id: Uuid,
    /// What for.
    pub purpose: TokenPurpose,
    /// Tokens of one group die together when one is used.
    pub group: Uuid,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What mail, tokens and events a change brings with it, written in its transaction.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Outbox events.
    pub events: Vec<Event>,
    /// Mail to queue.
    pub mails: Vec<NewMail>,
    /// Tokens to store.
    pub tokens: Vec<NewEmailToken>,
}

/// The outcome of presenting a reset code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// It matches the user's live code, by this token hash.
    Matches(String),
    /// It does not; the live code has one wrong try more (and dies at the fifth).
    Wrong,
    /// The user has no live code.
    NoLiveCode,
}

/// The user behind an email, with what login needs.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// Its password hash, if it has one.
    pub password_hash: Option<String>,
    /// A visitor registered it (its first confirmation needs the password).
    pub self_registered: bool,
}

/// The one store of the process; cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// The embedded default.
    Sqlite(SqliteStore),
    /// For several instances.
    Postgres(PostgresStore),
}

impl Store {
    /// Connects to `url` (`sqlite://path`), creating the database file when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            return Ok(Store::Sqlite(SqliteStore::connect(url).await?));
        }
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Store::Postgres(PostgresStore::connect(url).await?));
        }
        Err(StoreError::Other(anyhow::anyhow!(
            "unsupported database URL scheme (expected sqlite:// or postgres://)"
        )))
    }

    /// Applies pending migrations; safe to run while other processes use the database.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
        }
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Creates a user with its events and, optionally, its first session.
    pub async fn insert_user(
        &self,
        new: &NewUser,
        session: Option<&NewSession>,
        effects: &Effects,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_user(new, session, effects).await,
            Store::Postgres(s) => s.insert_user(new, session, effects).await,
        }
    }

    /// Registration in conceal mode: creates the user (with its effects) unless the address is
    /// taken, and queues `if_created` or `if_taken` in the same transaction, so that a taken
    /// and a free address cost one committed write transaction alike. Gives whether the user
    /// was created.
    pub async fn insert_user_or_queue(
        &self,
        new: &NewUser,
        effects: &Effects,
        if_created: QueuedRequest<'_>,
        if_taken: QueuedRequest<'_>,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.insert_user_or_queue(new, effects, if_created, if_taken)
                    .await
            }
            Store::Postgres(s) => {
                s.insert_user_or_queue(new, effects, if_created, if_taken)
                    .await
            }
        }
    }

    /// The user with this id.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        match self {
            Store::Sqlite(s) => s.user(id).await,
            Store::Postgres(s) => s.user(id).await,
        }
    }

    /// The user with this email, with its password hash.
    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError> {
        match self {
            Store::Sqlite(s) => s.credentials_by_email(email).await,
            Store::Postgres(s) => s.credentials_by_email(email).await,
        }
    }

    /// The password hash of a user.
    pub async fn credentials(&self, id: Uuid) -> Result<Option<Credentials>, StoreError> {
        match self {
            Store::Sqlite(s) => s.credentials(id).await,
            Store::Postgres(s) => s.credentials(id).await,
        }
    }

    /// Starts a session for a successful login: session, refresh token, `last_login_at`, event;
    /// also stores a re-hashed password when one is given. Only while the account is as the
    /// password check found it (same hash and role, enabled): a change that raced the check
    /// wins, and `None` says so (or that the user is gone).
    pub async fn record_login(
        &self,
        session: &NewSession,
        expected: &LoginExpects<'_>,
        rehash: Option<&str>,
        event: &Event,
    ) -> Result<Option<User>, StoreError> {
        match self {
            Store::Sqlite(s) => s.record_login(session, expected, rehash, event).await,
            Store::Postgres(s) => s.record_login(session, expected, rehash, event).await,
        }
    }

    /// Starts a password check of `subject` from `network`: `gate` decides, from the counters
    /// as they stand, whether it may run; when it may, it is counted as a failure at once (a
    /// success takes that back), so parallel guesses get no more tries than sequential ones.
    /// Gives the decision and the day's failures across networks, this attempt included.
    pub async fn begin_password_attempt(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
        gate: &(dyn Fn(&AttemptCounts) -> AttemptGate + Sync),
    ) -> Result<(AttemptGate, i64), StoreError> {
        match self {
            Store::Sqlite(s) => s.begin_password_attempt(subject, network, now, gate).await,
            Store::Postgres(s) => s.begin_password_attempt(subject, network, now, gate).await,
        }
    }

    /// A password check of `subject` from `network` succeeded: that network's failures are
    /// forgotten and the attempt no longer counts towards the daily cap.
    pub async fn password_attempt_passed(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.password_attempt_passed(subject, network, now).await,
            Store::Postgres(s) => s.password_attempt_passed(subject, network, now).await,
        }
    }

    /// Takes back the failure a password check was counted as, when the check never ran.
    pub async fn uncount_password_attempt(
        &self,
        subject: &str,
        network: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.uncount_password_attempt(subject, network, now).await,
            Store::Postgres(s) => s.uncount_password_attempt(subject, network, now).await,
        }
    }

    /// A password reset by mail: the day's failures of `subject` are forgotten (a suspension
    /// ends) and the next suspension, if any, is mailed at once. Networks stay slowed down.
    pub async fn forget_password_attempts(&self, subject: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.forget_password_attempts(subject).await,
            Store::Postgres(s) => s.forget_password_attempts(subject).await,
        }
    }

    /// Queues a request for `purpose` mail to the address behind `subject`, the address
    /// sealed: one upsert, the same whether or not the address has an account.
    pub async fn queue_mail_request(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        email_sealed: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.queue_mail_request(subject, purpose, now, email_sealed)
                    .await
            }
            Store::Postgres(s) => {
                s.queue_mail_request(subject, purpose, now, email_sealed)
                    .await
            }
        }
    }

    /// Claims the oldest queued mail request no worker holds, until `now + lease` (no other
    /// worker gets it meanwhile; if this one dies, the next takes it then).
    pub async fn claim_mail_request(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<MailRequest>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_mail_request(now, lease).await,
            Store::Postgres(s) => s.claim_mail_request(now, lease).await,
        }
    }

    /// Marks a claimed mail request worked off.
    pub async fn mail_request_done(
        &self,
        request: &MailRequest,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mail_request_done(request, now).await,
            Store::Postgres(s) => s.mail_request_done(request, now).await,
        }
    }

    /// In one transaction: records `purpose` mail to the address behind `subject`, then, when
    /// `effects` gives mail and no such mail was sent since `sent_after`, writes them and marks
    /// the mail sent. Gives whether the effects were written.
    pub async fn send_throttled(
        &self,
        subject: &str,
        purpose: &str,
        now: OffsetDateTime,
        sent_after: Option<OffsetDateTime>,
        effects: Option<(Uuid, &[TokenPurpose], &Effects)>,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.send_throttled(subject, purpose, now, sent_after, effects)
                    .await
            }
            Store::Postgres(s) => {
                s.send_throttled(subject, purpose, now, sent_after, effects)
                    .await
            }
        }
    }

    /// Write transactions begun so far by this process (tests compare the work of answers that
    /// must not differ).
    pub fn write_transactions(&self) -> u64 {
        let writes = match self {
            Store::Sqlite(s) => &s.writes,
            Store::Postgres(s) => &s.writes,
        };
        writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Appends an event that comes with no other change (e.g. a failed login).
    pub async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.append_event(event).await,
            Store::Postgres(s) => s.append_event(event).await,
        }
    }

    /// Applies a change of user fields with its effects, revoking every session (with
    /// `revoke` as the reason) when asked; `NotFound` when the user is gone. With `keep_admin`
    /// (the admin role), `LastAdmin` when no enabled, verified admin would be left.
    pub async fn update_user(
        &self,
        id: Uuid,
        change: &UserChange,
        revoke: Option<&str>,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<(User, Vec<Uuid>), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.update_user(id, change, revoke, now, effects, keep_admin)
                    .await
            }
            Store::Postgres(s) => {
                s.update_user(id, change, revoke, now, effects, keep_admin)
                    .await
            }
        }
    }

    /// Deletes up to `limit` self-registered accounts still unverified and created before
    /// `cutoff`, with their pending mail, writing `event(user)` for each; gives their ids.
    pub async fn purge_unverified(
        &self,
        cutoff: OffsetDateTime,
        limit: i64,
        event: &(dyn Fn(&User) -> Event + Sync),
    ) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Sqlite(s) => s.purge_unverified(cutoff, limit, event).await,
            Store::Postgres(s) => s.purge_unverified(cutoff, limit, event).await,
        }
    }

    /// Users matching `filter`, newest first, at most `limit`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_users(filter, limit).await,
            Store::Postgres(s) => s.list_users(filter, limit).await,
        }
    }

    /// Stores a new password hash and revokes every session but `keep`, writing `events` and a
    /// `SESSION_REVOKED` (with `reason`) per revoked session; gives the revoked session ids.
    pub async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        keep: Option<Uuid>,
        reason: &str,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.change_password(id, hash, keep, reason, now, effects)
                    .await
            }
            Store::Postgres(s) => {
                s.change_password(id, hash, keep, reason, now, effects)
                    .await
            }
        }
    }

    /// Queues mail (and its events) that comes with no other change.
    pub async fn queue(&self, effects: &Effects) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.queue(effects).await,
            Store::Postgres(s) => s.queue(effects).await,
        }
    }

    /// Kills the user's live tokens of `purposes`, then stores `effects` (new tokens, mail, events).
    pub async fn replace_email_tokens(
        &self,
        user_id: Uuid,
        purposes: &[TokenPurpose],
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.replace_email_tokens(user_id, purposes, now, effects)
                    .await
            }
            Store::Postgres(s) => {
                s.replace_email_tokens(user_id, purposes, now, effects)
                    .await
            }
        }
    }

    /// The user a live token of `purpose` belongs to, without spending it.
    pub async fn email_token_owner(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        match self {
            Store::Sqlite(s) => s.email_token_owner(token_hash, purpose, now).await,
            Store::Postgres(s) => s.email_token_owner(token_hash, purpose, now).await,
        }
    }

    /// Spends a verification token and marks the email verified, with `EMAIL_VERIFIED`.
    pub async fn confirm_email(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        match self {
            Store::Sqlite(s) => s.confirm_email(token_hash, now).await,
            Store::Postgres(s) => s.confirm_email(token_hash, now).await,
        }
    }

    /// Checks a reset code of `user_id`: `code_hash` gives the keyed hash of the presented code
    /// for a reset group. Counts a wrong try; past the per-user cap of wrong tries in the last
    /// hour, no code is live.
    pub async fn check_reset_code(
        &self,
        user_id: Uuid,
        code_hash: &(dyn Fn(&str) -> String + Sync),
        now: OffsetDateTime,
    ) -> Result<CodeCheck, StoreError> {
        match self {
            Store::Sqlite(s) => s.check_reset_code(user_id, code_hash, now).await,
            Store::Postgres(s) => s.check_reset_code(user_id, code_hash, now).await,
        }
    }

    /// Spends a reset token (killing the rest of its group), sets the new password hash, marks
    /// the email verified and revokes every session (`SESSION_REVOKED`, reason `password_reset`),
    /// with `effects`. `None` when the token is no longer live; else the revoked session ids.
    pub async fn reset_password(
        &self,
        token_hash: &str,
        hash: &str,
        now: OffsetDateTime,
        effects: &Effects,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.reset_password(token_hash, hash, now, effects).await,
            Store::Postgres(s) => s.reset_password(token_hash, hash, now, effects).await,
        }
    }

    /// Claims up to `limit` due mails for `lease`.
    pub async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_mail(now, lease, limit).await,
            Store::Postgres(s) => s.claim_mail(now, lease, limit).await,
        }
    }

    /// Marks a claimed mail sent and erases its body.
    pub async fn mail_sent(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mail_sent(mail, now).await,
            Store::Postgres(s) => s.mail_sent(mail, now).await,
        }
    }

    /// Schedules another try of a mail.
    pub async fn mail_retry(
        &self,
        mail: &QueuedMail,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mail_retry(mail, at, error).await,
            Store::Postgres(s) => s.mail_retry(mail, at, error).await,
        }
    }

    /// Gives a mail up and erases its body.
    pub async fn mail_given_up(
        &self,
        mail: &QueuedMail,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mail_given_up(mail, now, error).await,
            Store::Postgres(s) => s.mail_given_up(mail, now, error).await,
        }
    }

    /// Deletes a user and everything of theirs (sessions, tokens), writing `events` and a
    /// `SESSION_REVOKED` per live session; gives the ids of those sessions.
    /// With `keep_admin` (the admin role), `LastAdmin` when no enabled, verified admin would
    /// be left.
    pub async fn delete_user(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        effects: &Effects,
        keep_admin: Option<&str>,
    ) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete_user(id, now, effects, keep_admin).await,
            Store::Postgres(s) => s.delete_user(id, now, effects, keep_admin).await,
        }
    }

    /// The live sessions of a user, oldest first.
    pub async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.live_sessions(user_id, now).await,
            Store::Postgres(s) => s.live_sessions(user_id, now).await,
        }
    }

    /// Revokes live sessions of a user with `SESSION_REVOKED` events (`reason`) and revocation
    /// rows; gives the ids revoked.
    pub async fn revoke_sessions(
        &self,
        user_id: Uuid,
        which: Revoke,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_sessions(user_id, which, reason, now).await,
            Store::Postgres(s) => s.revoke_sessions(user_id, which, reason, now).await,
        }
    }

    /// Revokes the session a refresh token (spent or not) belongs to; gives it, if any.
    pub async fn revoke_session_of_token(
        &self,
        token_hash: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_session_of_token(token_hash, reason, now).await,
            Store::Postgres(s) => s.revoke_session_of_token(token_hash, reason, now).await,
        }
    }

    /// Exchanges a refresh token for its successor, detecting reuse, in one transaction.
    pub async fn rotate_refresh_token(&self, rotate: &Rotate<'_>) -> Result<Rotation, StoreError> {
        match self {
            Store::Sqlite(s) => s.rotate_refresh_token(rotate).await,
            Store::Postgres(s) => s.rotate_refresh_token(rotate).await,
        }
    }

    /// Revocations after position `after` of the log, not yet expired at `now`, in log order.
    pub async fn revocations_after(
        &self,
        after: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<Revocation>, StoreError> {
        match self {
            Store::Sqlite(s) => s.revocations_after(after, now).await,
            Store::Postgres(s) => s.revocations_after(after, now).await,
        }
    }

    /// Deletes expired sessions, refresh tokens and revocations, and erases sealed successors
    /// older than the grace window, in small batches; gives how many rows went.
    pub async fn prune(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune(now, grace).await,
            Store::Postgres(s) => s.prune(now, grace).await,
        }
    }

    /// Signing keys of `alg` not yet retired, newest first.
    pub async fn signing_keys(&self, alg: &str) -> Result<Vec<StoredKey>, StoreError> {
        match self {
            Store::Sqlite(s) => s.signing_keys(alg).await,
            Store::Postgres(s) => s.signing_keys(alg).await,
        }
    }

    /// Marks keys retired: no token they signed can still be alive.
    pub async fn retire_signing_keys(
        &self,
        kids: &[String],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.retire_signing_keys(kids, now).await,
            Store::Postgres(s) => s.retire_signing_keys(kids, now).await,
        }
    }

    /// Stores a new signing key, its private half sealed.
    pub async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_signing_key(key).await,
            Store::Postgres(s) => s.insert_signing_key(key).await,
        }
    }

    /// The sealing canary, once the first start has written it.
    pub async fn sealing_canary(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.sealing_canary().await,
            Store::Postgres(s) => s.sealing_canary().await,
        }
    }

    /// Writes the sealing canary unless one is there already (the first writer wins).
    pub async fn insert_sealing_canary(
        &self,
        canary: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_sealing_canary(canary, now).await,
            Store::Postgres(s) => s.insert_sealing_canary(canary, now).await,
        }
    }

    /// Up to `limit` signing keys (of any alg, retired too) whose private half is in clear.
    pub async fn clear_signing_keys(&self, limit: i64) -> Result<Vec<StoredKey>, StoreError> {
        match self {
            Store::Sqlite(s) => s.clear_signing_keys(limit).await,
            Store::Postgres(s) => s.clear_signing_keys(limit).await,
        }
    }

    /// Replaces a clear private key by its sealed form, unless another process sealed it first.
    pub async fn seal_signing_key(
        &self,
        kid: &str,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.seal_signing_key(kid, sealed, now).await,
            Store::Postgres(s) => s.seal_signing_key(kid, sealed, now).await,
        }
    }

    /// Up to `limit` queued mails whose bodies are in clear.
    pub async fn clear_mails(&self, limit: i64) -> Result<Vec<ClearMail>, StoreError> {
        match self {
            Store::Sqlite(s) => s.clear_mails(limit).await,
            Store::Postgres(s) => s.clear_mails(limit).await,
        }
    }

    /// Replaces a mail's clear bodies by their sealed form, unless it was sealed meanwhile.
    pub async fn seal_mail(
        &self,
        id: Uuid,
        sealed: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.seal_mail(id, sealed, now).await,
            Store::Postgres(s) => s.seal_mail(id, sealed, now).await,
        }
    }

    /// Replaces every sealed value (the canary first, then every signing key's private half and
    /// every queued mail's bodies) by what `reseal` makes of it, in one transaction that keeps
    /// other writers out; when `reseal` refuses a value (`None`), nothing changes.
    pub async fn reseal_all(
        &self,
        reseal: &Reseal<'_>,
        now: OffsetDateTime,
    ) -> Result<Resealed, StoreError> {
        match self {
            Store::Sqlite(s) => s.reseal_all(reseal, now).await,
            Store::Postgres(s) => s.reseal_all(reseal, now).await,
        }
    }

    /// Takes or renews the lease `name` for `holder` until `until`; false while another holds it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.take_lease(name, holder, now, until).await,
            Store::Postgres(s) => s.take_lease(name, holder, now, until).await,
        }
    }

    /// Events not yet published, in outbox order.
    pub async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.unpublished_events(limit).await,
            Store::Postgres(s) => s.unpublished_events(limit).await,
        }
    }

    /// Marks an event published.
    pub async fn mark_published(&self, seq: i64, now: OffsetDateTime) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.mark_published(seq, now).await,
            Store::Postgres(s) => s.mark_published(seq, now).await,
        }
    }

    /// Deletes events older than `before`: published ones always, unpublished ones too when no
    /// relay will ever publish them (no NATS configured).
    pub async fn prune_events(
        &self,
        before: OffsetDateTime,
        unpublished_too: bool,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_events(before, unpublished_too).await,
            Store::Postgres(s) => s.prune_events(before, unpublished_too).await,
        }
    }

    /// The outbox, oldest first (tests and the relay read it).
    pub async fn events(&self, limit: i64) -> Result<Vec<serde_json::Value>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events(limit).await,
            Store::Postgres(s) => s.events(limit).await,
        }
    }
}

/// Both backends keep ids as text and times as Unix microseconds: these convert.
fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Other(e.into()))
}

/// The columns every user query selects, in the order the row readers expect.
const USER_COLUMNS: &str = "id, email, email_verified, password_hash, name, phone, role, disabled, metadata, created_at, updated_at, last_login_at, self_registered";
/// Self-registered accounts still unverified and never logged in (verification may have been
/// off once) created before a time, oldest first.
const UNVERIFIED_BEFORE: &str = "select id from users
    where self_registered = $1 and email_verified = $2 and created_at < $3
    and last_login_at is null
    order by created_at limit $4";
/// A new user's row (both backends; an `on conflict` clause may follow).
const INSERT_USER: &str = "insert into users (id, email, email_verified, password_hash, name, phone, role, disabled, metadata, created_at, updated_at, last_login_at, self_registered)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
/// The admins who keep the service administrable: enabled and verified.
const COUNT_ADMINS: &str =
    "select count(*) from users where role = $1 and disabled = $2 and email_verified = $3";
/// Re-sealing, in one text for both backends: the canary, sealed signing keys, and queued
/// mails with a sealed body in pages after an id.
const SEALED_CANARY: &str = "select canary from sealing where id = 1";
const RESEAL_CANARY: &str = "update sealing set canary = $1, updated_at = $2 where id = 1";
const SEALED_SIGNING_KEYS: &str =
    "select kid, private_der from signing_keys where sealed = $1 order by kid";
const RESEAL_SIGNING_KEY: &str =
    "update signing_keys set private_der = $1, updated_at = $2 where kid = $3";
const SEALED_MAILS_AFTER: &str = "select id, sealed_body from mail_queue
    where sealed_body is not null and id > $1 order by id limit $2";
const RESEAL_MAIL: &str = "update mail_queue set sealed_body = $1, updated_at = $2 where id = $3";
/// Queued mails re-sealed per read, so that a long queue is not read at once.
const RESEAL_BATCH: i64 = 100;
/// A reset code dies at its fifth wrong try.
const MAX_CODE_FAILURES: i64 = 5;
/// Wrong codes a user may present within an hour, across all codes sent.
const MAX_CODE_FAILURES_PER_HOUR: i64 = 10;

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

fn from_micros(value: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000)
        .map_err(|e| StoreError::Other(e.into()))
}
