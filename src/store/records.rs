//! What the store's operations take and give: rows about to be written, records as read, and
//! the outcomes the services tell apart.

use crate::domain::{Assurance, Email, Event, User};
use time::OffsetDateTime;
use uuid::Uuid;

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
    /// How and when its holder authenticated.
    pub assurance: Assurance,
    /// The OAuth grant it serves; none for latchkey's own clients.
    pub grant: Option<SessionGrant>,
}

/// What an OAuth client was granted in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// The client.
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The resource indicator (RFC 8707) its access tokens name as audience.
    pub resource: Option<String>,
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
    /// The hash the password was verified against (`None`: the account has no password, and a
    /// passkey signed in).
    pub password_hash: Option<&'a str>,
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
    /// The TOTP secret of a user.
    TotpSecret(Uuid),
}

impl std::fmt::Display for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealedRow::Canary => f.write_str("the sealing canary"),
            SealedRow::SigningKey(kid) => write!(f, "signing key {kid}"),
            SealedRow::Mail(id) => write!(f, "queued mail {id}"),
            SealedRow::TotpSecret(user) => write!(f, "the TOTP secret of user {user}"),
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
        /// TOTP secrets.
        totp_secrets: u64,
    },
    /// This value was refused (it does not open); nothing was changed.
    Refused(SealedRow),
}

/// How long a revocation is kept: no access token lives longer (its TTL is capped at 24 h).
pub const REVOCATION_LIFETIME: time::Duration = time::Duration::days(1);

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
    /// The OAuth client refreshing (none: latchkey's own refresh); a session serves only the
    /// client it was opened for.
    pub client_id: Option<&'a str>,
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
        /// How and when the session's holder authenticated.
        assurance: Assurance,
    },
    /// A repeat within the grace window: the successor stands.
    Repeated {
        /// The session.
        session_id: Uuid,
        /// Its user, as now stored.
        user: User,
        /// How and when the session's holder authenticated.
        assurance: Assurance,
        /// The successor, sealed under the presented token.
        successor_sealed: Vec<u8>,
    },
    /// A repeat after the grace window: the session was revoked, with its events.
    Reused {
        /// The revoked session.
        session_id: Uuid,
        /// Its revocation, for the process to hear of.
        after: Committed,
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
    /// A sign-in link.
    LoginLink,
    /// A 6-digit sign-in code.
    LoginCode,
    /// An invitation's link, which sets the first password.
    Invitation,
    /// The link to the new address that confirms an email change.
    EmailChange,
    /// The link to the old address that undoes an email change.
    EmailRevert,
}

impl TokenPurpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetLink => "reset_link",
            TokenPurpose::ResetCode => "reset_code",
            TokenPurpose::LoginLink => "login_link",
            TokenPurpose::LoginCode => "login_code",
            TokenPurpose::Invitation => "invitation",
            TokenPurpose::EmailChange => "email_change",
            TokenPurpose::EmailRevert => "email_revert",
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
    /// An email change to record (its tokens are among `tokens`, grouped under its id); the
    /// write fails with `Conflict` when the new address is not free.
    pub email_change: Option<NewEmailChange>,
}

/// An email change asked for, about to be recorded.
#[derive(Debug, Clone)]
pub struct NewEmailChange {
    /// Its id: the group of its confirmation and revert links.
    pub id: Uuid,
    /// Whose.
    pub user_id: Uuid,
    /// The address now.
    pub old_email: Email,
    /// The address asked for.
    pub new_email: Email,
    /// The session that asked (it survives the confirmation); `None` for an admin's change.
    pub session_id: Option<Uuid>,
    /// When.
    pub created_at: OffsetDateTime,
    /// The mail with the confirmation link, to the new address when it is free.
    pub confirmation: NewMail,
    /// Conceal mode: when the new address is taken, this request is queued instead of the
    /// confirmation, and the change is recorded all the same.
    pub if_taken: Option<ConcealedRequest>,
}

/// A mail request owned by the change that queues it (see [`QueuedRequest`]).
#[derive(Debug, Clone)]
pub struct ConcealedRequest {
    /// The keyed hash of the address.
    pub subject: String,
    /// What mail.
    pub purpose: &'static str,
    /// The address, sealed.
    pub email_sealed: Vec<u8>,
}

/// The addresses of an email change, as its link's page names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeRecord {
    /// The address before.
    pub old_email: Email,
    /// The address asked for.
    pub new_email: Email,
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

/// What a committed write leaves for this process to do: the sessions it revoked (the
/// in-process revocation set must hold them before the answer goes out) and whether it queued
/// mail or mail requests (their workers must wake). Hand it to `AppState::after_commit`.
#[must_use = "hand it to AppState::after_commit: the revocation set and the mail workers must hear of the write"]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Sessions revoked.
    pub revoked: Vec<Uuid>,
    /// Whether mail was queued.
    pub mail_queued: bool,
    /// Whether a mail request was queued.
    pub requests_queued: bool,
}

impl Committed {
    /// Whether there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && !self.mail_queued && !self.requests_queued
    }
}
