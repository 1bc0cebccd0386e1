//! The ceremonies that span two requests: a login waiting for its second factor, a WebAuthn
//! registration or sign-in waiting for the authenticator's answer. Each lives under the hash of
//! a key only its client holds, with a lifetime and a count of wrong tries.

use super::backend::sql;
use super::{Store, StoreError, events::insert_event, from_micros, micros, parse_uuid};
use crate::domain::{Assurance, Event};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a ceremony between two requests is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A login with the right first factor, waiting for the second (`mfa_token`).
    Login,
    /// A passkey sign-in (`challenge_id`).
    Passkey,
    /// A WebAuthn credential being registered.
    Register,
    /// A WebAuthn re-authentication of a session.
    Reauthenticate,
}

impl ChallengeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Login => "login",
            ChallengeKind::Passkey => "passkey",
            ChallengeKind::Register => "register",
            ChallengeKind::Reauthenticate => "reauthenticate",
        }
    }
}

/// A ceremony's row.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The hash of what the client holds (an `mfa_token`, a `challenge_id`), or of the user or
    /// session a registration or re-authentication belongs to.
    pub key_hash: String,
    /// What it is.
    pub kind: ChallengeKind,
    /// Whose, when known.
    pub user_id: Option<Uuid>,
    /// The session it re-authenticates.
    pub session_id: Option<Uuid>,
    /// The client that began it (a login's session records it).
    pub ip: Option<String>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// What the first factor proved, and when.
    pub assurance: Option<Assurance>,
    /// A digest of the password hash the first factor was checked against: a password changed
    /// meanwhile ends the login.
    pub password_digest: Option<String>,
    /// The WebAuthn ceremony state, JSON.
    pub state: Option<String>,
    /// Wrong tries so far.
    pub tries: i64,
    /// When it began.
    pub created_at: OffsetDateTime,
    /// When it dies.
    pub expires_at: OffsetDateTime,
}

/// A ceremony's row as read: key, kind, user, session, ip, agent, auth time, methods, digest,
/// state, tries, created, expires.
type ChallengeRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
);

const CHALLENGE_COLUMNS: &str = "key_hash, kind, user_id, session_id, ip, user_agent, auth_time,
    auth_methods, password_digest, state, tries, created_at, expires_at";

fn challenge_from_row(row: ChallengeRow, kind: ChallengeKind) -> Result<Challenge, StoreError> {
    let (key_hash, _, user_id, session_id, ip, user_agent, auth_time, methods) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let assurance = match (auth_time, methods) {
        (Some(at), Some(methods)) => Some(Assurance::from_stored(from_micros(at)?, &methods)),
        _ => None,
    };
    Ok(Challenge {
        key_hash,
        kind,
        user_id: user_id.as_deref().map(parse_uuid).transpose()?,
        session_id: session_id.as_deref().map(parse_uuid).transpose()?,
        ip,
        user_agent,
        assurance,
        password_digest: row.8,
        state: row.9,
        tries: row.10,
        created_at: from_micros(row.11)?,
        expires_at: from_micros(row.12)?,
    })
}

impl Store {
    /// Stores a ceremony, replacing one under the same key.
    pub async fn put_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sql("delete from mfa_challenges where key_hash = $1")
            .bind(&challenge.key_hash)
            .execute(&mut tx)
            .await?;
        let (auth_time, methods) = match &challenge.assurance {
            Some(assurance) => (
                Some(micros(assurance.auth_time)),
                Some(assurance.stored_methods()),
            ),
            None => (None, None),
        };
        let at = micros(challenge.created_at);
        sql(
            "insert into mfa_challenges (key_hash, kind, user_id, session_id, ip, user_agent,
                 auth_time, auth_methods, password_digest, state, tries, created_at, updated_at,
                 expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&challenge.key_hash)
        .bind(challenge.kind.as_str())
        .bind(challenge.user_id)
        .bind(challenge.session_id)
        .bind(challenge.ip.as_deref())
        .bind(challenge.user_agent.as_deref())
        .bind(auth_time)
        .bind(methods)
        .bind(challenge.password_digest.as_deref())
        .bind(challenge.state.as_deref())
        .bind(challenge.tries)
        .bind(at)
        .bind(at)
        .bind(micros(challenge.expires_at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    /// The live ceremony of `kind` under `key_hash`.
    pub async fn challenge(
        &self,
        key_hash: &str,
        kind: ChallengeKind,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, StoreError> {
        let row: Option<ChallengeRow> = super::backend::sql_owned(format!(
            "select {CHALLENGE_COLUMNS} from mfa_challenges
             where key_hash = $1 and kind = $2 and expires_at > $3"
        ))
        .bind(key_hash)
        .bind(kind.as_str())
        .bind(micros(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| challenge_from_row(row, kind)).transpose()
    }

    /// Keeps a new WebAuthn state for a live ceremony (options asked for again).
    pub async fn set_challenge_state(
        &self,
        key_hash: &str,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let at = micros(now);
        let updated = sql("update mfa_challenges set state = $1, updated_at = $2
             where key_hash = $3 and expires_at > $4")
        .bind(state)
        .bind(at)
        .bind(key_hash)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    /// Counts a wrong try of a ceremony; at `max_tries` it dies. Writes `event` with it.
    pub async fn challenge_failed(
        &self,
        key_hash: &str,
        max_tries: i64,
        event: &Event,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let at = micros(event.time);
        sql("update mfa_challenges set tries = tries + 1, updated_at = $1 where key_hash = $2")
            .bind(at)
            .bind(key_hash)
            .execute(&mut tx)
            .await?;
        sql("delete from mfa_challenges where key_hash = $1 and tries >= $2")
            .bind(key_hash)
            .bind(max_tries)
            .execute(&mut tx)
            .await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await
    }

    /// Ends a live ceremony and gives it: of two concurrent finishes, exactly one gets it.
    pub async fn take_challenge(
        &self,
        key_hash: &str,
        kind: ChallengeKind,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, StoreError> {
        let mut tx = self.write().await?;
        let row: Option<ChallengeRow> = super::backend::sql_owned(format!(
            "delete from mfa_challenges where key_hash = $1 and kind = $2 and expires_at > $3
             returning {CHALLENGE_COLUMNS}"
        ))
        .bind(key_hash)
        .bind(kind.as_str())
        .bind(micros(now))
        .fetch_optional(&mut tx)
        .await?;
        tx.commit().await?;
        row.map(|row| challenge_from_row(row, kind)).transpose()
    }
}
