//! The authorization code flow: consents, codes, and the sessions codes open.

use super::backend::sql;
use super::sessions::{insert_session, revoke_in};
use super::users::{lock_user, user_in};
use super::{
    Committed, NewSession, Revoke, SessionGrant, Store, StoreError, events::insert_event,
    from_micros, micros, parse_uuid,
};
use crate::domain::{Assurance, Consent, Event, RevokeReason, User};
use time::OffsetDateTime;
use uuid::Uuid;

/// An authorization code to store (by its hash).
#[derive(Debug, Clone)]
pub struct NewCode {
    /// SHA-256 of the code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Whose consent it carries.
    pub user_id: Uuid,
    /// The redirect URI it was sent to; the exchange must name the same.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The relying party's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The resource indicator (RFC 8707), for the access token's audience.
    pub resource: Option<String>,
    /// How and when the user authenticated.
    pub assurance: Assurance,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it dies.
    pub expires_at: OffsetDateTime,
}

/// A code exchange: what the client presents, and the session to open for it.
#[derive(Debug, Clone)]
pub struct Redeem<'a> {
    /// SHA-256 of the code presented.
    pub code_hash: &'a str,
    /// The authenticated client.
    pub client_id: &'a str,
    /// The redirect URI it names.
    pub redirect_uri: &'a str,
    /// The S256 challenge of the verifier it presents.
    pub challenge: &'a str,
    /// The session to open (user, assurance and grant are filled from the code).
    pub session_id: Uuid,
    /// Hash of the session's first refresh token.
    pub refresh_token_hash: &'a str,
    /// When the session's refresh token expires.
    pub expires_at: OffsetDateTime,
    /// Now.
    pub now: OffsetDateTime,
}

/// A refresh token's session, as introspection and revocation need it.
#[derive(Debug, Clone)]
pub struct RefreshTokenGrant {
    /// The session.
    pub session_id: Uuid,
    /// Its user.
    pub user_id: Uuid,
    /// The OAuth client it serves, if any.
    pub client_id: Option<String>,
    /// The granted scopes.
    pub scope: Option<String>,
    /// Unspent, unexpired, and its session live.
    pub active: bool,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// What a code exchange found.
#[derive(Debug)]
pub enum Redemption {
    /// The session is open.
    Issued {
        /// The user.
        user: Box<User>,
        /// What the code granted.
        grant: SessionGrant,
        /// The relying party's nonce.
        nonce: Option<String>,
        /// The user's authentication.
        assurance: Assurance,
    },
    /// The code was presented before: the session it opened is revoked.
    Replayed(Committed),
    /// Unknown, expired, of another client, another redirect URI or another verifier (the
    /// code is spent all the same).
    Invalid,
}

type CodeRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    String,
    i64,
);

impl Store {
    /// The scopes `user_id` has allowed `client_id`.
    pub async fn consented_scopes(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let scopes: Option<String> =
            sql("select scopes from oauth_consents where user_id = $1 and client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_scalar(&self.pool)
                .await?;
        Ok(scopes
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default())
    }

    /// What `user_id` has allowed which clients, oldest first.
    pub async fn consents(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        let rows: Vec<(String, String, String, i64, i64)> = sql(
            "select c.client_id, k.name, c.scopes, c.created_at, c.updated_at
             from oauth_consents c join oauth_clients k on k.client_id = c.client_id
             where c.user_id = $1 order by c.created_at, c.client_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(client_id, client_name, scopes, created, updated)| {
                Ok(Consent {
                    client_id,
                    client_name,
                    scopes: scopes.split(' ').map(str::to_owned).collect(),
                    created_at: from_micros(created)?,
                    updated_at: from_micros(updated)?,
                })
            })
            .collect()
    }

    /// Withdraws what `user_id` allowed `client_id`, and revokes the client's sessions of
    /// theirs, with `OAUTH_CONSENT_REVOKED`. None: there was no such consent.
    pub async fn revoke_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Committed>, StoreError> {
        let mut tx = self.write().await?;
        lock_user(&mut tx, user_id).await?;
        let scopes: Option<(String,)> = sql(
            "delete from oauth_consents where user_id = $1 and client_id = $2 returning scopes",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some((scopes,)) = scopes else {
            return Ok(None);
        };
        // A code issued before the withdrawal must not open a session after it.
        sql("delete from oauth_codes where user_id = $1 and client_id = $2 and used_at is null")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        let sessions: Vec<String> = sql(
            "select id from sessions where user_id = $1 and client_id = $2 and revoked_at is null",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_column(&mut tx)
        .await?;
        for session_id in sessions {
            let one = Revoke::One(parse_uuid(&session_id)?);
            revoke_in(&mut tx, user_id, one, RevokeReason::ConsentRevoked, now).await?;
        }
        let scopes: Vec<String> = scopes.split(' ').map(str::to_owned).collect();
        let event = Event::oauth_consent_revoked(user_id, client_id, &scopes, now);
        insert_event(&mut tx, &event).await?;
        tx.commit_telling().await.map(Some)
    }

    /// Records that `user_id` allows `client_id` the `scopes` (all it allowed before included).
    pub async fn grant_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        event: &Event,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let at = micros(now);
        sql(
            "insert into oauth_consents (user_id, client_id, scopes, created_at, updated_at)
             values ($1, $2, $3, $4, $5)
             on conflict (user_id, client_id) do update set scopes = $6, updated_at = $7",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes.join(" "))
        .bind(at)
        .bind(at)
        .bind(scopes.join(" "))
        .bind(at)
        .execute(&mut tx)
        .await?;
        insert_event(&mut tx, event).await?;
        tx.commit().await
    }

    /// Stores an authorization code.
    pub async fn insert_oauth_code(&self, code: &NewCode) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sql(
            "insert into oauth_codes (code_hash, client_id, user_id, redirect_uri, code_challenge,
                 scope, nonce, resource, auth_time, auth_methods, created_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(code.code_hash.as_str())
        .bind(code.client_id.as_str())
        .bind(code.user_id)
        .bind(code.redirect_uri.as_str())
        .bind(code.code_challenge.as_str())
        .bind(code.scope.as_str())
        .bind(code.nonce.as_deref())
        .bind(code.resource.as_deref())
        .bind(micros(code.assurance.auth_time))
        .bind(code.assurance.stored_methods())
        .bind(micros(code.created_at))
        .bind(micros(code.expires_at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    /// Exchanges a code for a session, once: the first presentation spends it whether or not
    /// the rest matches (so a verifier cannot be guessed at), and a later one revokes the
    /// session the first opened.
    pub async fn redeem_oauth_code(&self, redeem: &Redeem<'_>) -> Result<Redemption, StoreError> {
        // Junk codes are answered from a plain read, without queueing for the writer.
        let known: Option<i32> = sql("select 1 from oauth_codes where code_hash = $1")
            .bind(redeem.code_hash)
            .fetch_scalar(&self.pool)
            .await?;
        if known.is_none() {
            return Ok(Redemption::Invalid);
        }
        let mut tx = self.write().await?;
        let now = micros(redeem.now);
        let won =
            sql("update oauth_codes set used_at = $1 where code_hash = $2 and used_at is null")
                .bind(now)
                .bind(redeem.code_hash)
                .execute(&mut tx)
                .await?;
        if won == 0 {
            let spent: Option<(String, Option<String>)> =
                sql("select user_id, session_id from oauth_codes where code_hash = $1")
                    .bind(redeem.code_hash)
                    .fetch_optional(&mut tx)
                    .await?;
            let Some((user_id, Some(session_id))) = spent else {
                return Ok(Redemption::Invalid);
            };
            let user_id = parse_uuid(&user_id)?;
            lock_user(&mut tx, user_id).await?;
            let session = Revoke::One(parse_uuid(&session_id)?);
            revoke_in(
                &mut tx,
                user_id,
                session,
                RevokeReason::CodeReplayed,
                redeem.now,
            )
            .await?;
            return Ok(Redemption::Replayed(tx.commit_telling().await?));
        }
        let row: CodeRow = sql(
            "select client_id, user_id, redirect_uri, code_challenge, scope, nonce, resource,
                 auth_time, auth_methods, expires_at from oauth_codes where code_hash = $1",
        )
        .bind(redeem.code_hash)
        .fetch_one(&mut tx)
        .await?;
        let (client_id, user_id, redirect_uri, challenge, scope, nonce, resource) =
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
        let (auth_time, methods, expires_at) = (row.7, row.8, row.9);
        let matches = client_id == redeem.client_id
            && redirect_uri == redeem.redirect_uri
            && challenge == redeem.challenge
            && expires_at > now;
        let user_id = parse_uuid(&user_id)?;
        lock_user(&mut tx, user_id).await?;
        let user = user_in(&mut tx, user_id).await?;
        if !matches || user.disabled {
            tx.commit().await?;
            return Ok(Redemption::Invalid);
        }
        let assurance = Assurance::from_stored(from_micros(auth_time)?, &methods);
        let grant = SessionGrant {
            client_id,
            scope,
            resource,
        };
        let session = NewSession {
            id: redeem.session_id,
            user_id,
            refresh_token_hash: redeem.refresh_token_hash.to_owned(),
            user_agent: None,
            ip: None,
            created_at: redeem.now,
            expires_at: redeem.expires_at,
            assurance: assurance.clone(),
            grant: Some(grant.clone()),
        };
        insert_session(&mut tx, &session).await?;
        sql("update oauth_codes set session_id = $1 where code_hash = $2")
            .bind(session.id)
            .bind(redeem.code_hash)
            .execute(&mut tx)
            .await?;
        let event = Event::oauth_token_issued(
            Some(user_id),
            &grant.client_id,
            "authorization_code",
            &grant.scope,
            Some(session.id),
            redeem.now,
        );
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Redemption::Issued {
            user: Box::new(user),
            grant,
            nonce,
            assurance,
        })
    }

    /// What session `session_id` grants its OAuth client, if it is one's.
    pub async fn session_grant(
        &self,
        session_id: Uuid,
    ) -> Result<Option<SessionGrant>, StoreError> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> =
            sql("select client_id, scope, resource from sessions where id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(client_id, scope, resource)| {
            Some(SessionGrant {
                client_id: client_id?,
                scope: scope.unwrap_or_default(),
                resource,
            })
        }))
    }

    /// The session a refresh token (spent or not) belongs to, with its grant and whether the
    /// token can still be exchanged.
    pub async fn refresh_token_grant(
        &self,
        token_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<RefreshTokenGrant>, StoreError> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            i64,
            Option<i64>,
        );
        let row: Option<Row> = sql(
            "select s.id, s.user_id, s.client_id, s.scope, r.used_at, r.expires_at, s.revoked_at
             from refresh_tokens r join sessions s on s.id = r.session_id where r.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some((session_id, user_id, client_id, scope, used_at, expires_at, revoked_at)) = row
        else {
            return Ok(None);
        };
        Ok(Some(RefreshTokenGrant {
            session_id: parse_uuid(&session_id)?,
            user_id: parse_uuid(&user_id)?,
            client_id,
            scope,
            active: used_at.is_none() && revoked_at.is_none() && expires_at > micros(now),
            expires_at: from_micros(expires_at)?,
        }))
    }

    /// The hash of a confidential client's secret (`Some(None)`: a public client).
    pub async fn oauth_client_secret_hash(
        &self,
        client_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let row: Option<(Option<String>,)> =
            sql("select secret_hash from oauth_clients where client_id = $1")
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(hash,)| hash))
    }
}
