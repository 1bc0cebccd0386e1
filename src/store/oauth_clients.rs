//! OAuth clients: registered, listed, changed and removed by admins.

use super::backend::{Tx, sql, sql_owned};
use super::events::insert_event;
use super::sessions::revoke_in;
use super::users::lock_user;
use super::users::write_effects;
use super::{
    Committed, Effects, REVOCATION_LIFETIME, Revoke, Store, StoreError, from_micros, micros,
    parse_uuid,
};
use crate::domain::{ClientChange, Event, OAuthClient, RevokeReason};
use time::OffsetDateTime;
use uuid::Uuid;

const CLIENT_COLUMNS: &str = "select client_id, name, confidential, redirect_uris,
    post_logout_redirect_uris, scopes, first_party, created_at, updated_at from oauth_clients";

type ClientRow = (String, String, bool, String, String, String, bool, i64, i64);

fn client_of(row: ClientRow) -> Result<OAuthClient, StoreError> {
    let (
        client_id,
        name,
        confidential,
        redirect,
        post_logout,
        scopes,
        first_party,
        created,
        updated,
    ) = row;
    let list = |text: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Other(e.into()))
    };
    Ok(OAuthClient {
        client_id,
        name,
        confidential,
        redirect_uris: list(&redirect)?,
        post_logout_redirect_uris: list(&post_logout)?,
        scopes: list(&scopes)?,
        first_party,
        created_at: from_micros(created)?,
        updated_at: from_micros(updated)?,
    })
}

fn json_list(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|e| StoreError::Other(e.into()))
}

impl Store {
    /// Registers `client` (a confidential one with the hash of its secret) with `effects`.
    pub async fn insert_oauth_client(
        &self,
        client: &OAuthClient,
        secret_hash: Option<&str>,
        effects: &Effects,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        sql(
            "insert into oauth_clients (client_id, name, confidential, secret_hash, redirect_uris,
                post_logout_redirect_uris, scopes, first_party, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(client.client_id.as_str())
        .bind(client.name.as_str())
        .bind(client.confidential)
        .bind(secret_hash)
        .bind(json_list(&client.redirect_uris)?)
        .bind(json_list(&client.post_logout_redirect_uris)?)
        .bind(json_list(&client.scopes)?)
        .bind(client.first_party)
        .bind(micros(client.created_at))
        .bind(micros(client.updated_at))
        .execute(&mut tx)
        .await?;
        write_effects(&mut tx, effects).await?;
        tx.commit_telling().await
    }

    /// Every client, newest first (at most 1,000: a platform has tens).
    pub async fn oauth_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        let rows: Vec<ClientRow> = sql_owned(format!(
            "{CLIENT_COLUMNS} order by created_at desc, client_id limit 1000"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(client_of).collect()
    }

    /// One client.
    pub async fn oauth_client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        let row: Option<ClientRow> = sql_owned(format!("{CLIENT_COLUMNS} where client_id = $1"))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(client_of).transpose()
    }

    /// Applies `change` to a client; `NotFound` when there is none.
    pub async fn update_oauth_client(
        &self,
        client_id: &str,
        change: &ClientChange,
        now: OffsetDateTime,
    ) -> Result<(OAuthClient, Committed), StoreError> {
        let mut tx = self.write().await?;
        let lists = |list: &Option<Vec<String>>| list.as_deref().map(json_list).transpose();
        let updated = sql("update oauth_clients set
                name = coalesce($1, name),
                redirect_uris = coalesce($2, redirect_uris),
                post_logout_redirect_uris = coalesce($3, post_logout_redirect_uris),
                scopes = coalesce($4, scopes),
                first_party = coalesce($5, first_party),
                updated_at = $6
             where client_id = $7")
        .bind(change.name.as_deref())
        .bind(lists(&change.redirect_uris)?)
        .bind(lists(&change.post_logout_redirect_uris)?)
        .bind(lists(&change.scopes)?)
        .bind(change.first_party)
        .bind(micros(now))
        .bind(client_id)
        .execute(&mut tx)
        .await?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        let client = client_in(&mut tx, client_id).await?;
        // Its own tokens carry the scopes of their grant: changed scopes end them, and the
        // next grant has the new ones.
        if change.scopes.is_some() {
            revoke_service_in(&mut tx, client_id, None, now).await?;
        }
        Ok((client, tx.commit_telling().await?))
    }

    /// Removes a client; `NotFound` when there is none. Its sessions are revoked first, so
    /// the access tokens it holds die with it rather than at their expiry.
    pub async fn delete_oauth_client(
        &self,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        let sessions: Vec<(String, String)> =
            sql("select id, user_id from sessions where client_id = $1 and revoked_at is null")
                .bind(client_id)
                .fetch_all(&mut tx)
                .await?;
        for (session_id, user_id) in sessions {
            let (session_id, user_id) = (parse_uuid(&session_id)?, parse_uuid(&user_id)?);
            lock_user(&mut tx, user_id).await?;
            let reason = RevokeReason::ClientRemoved;
            revoke_in(&mut tx, user_id, Revoke::One(session_id), reason, now).await?;
        }
        revoke_service_in(&mut tx, client_id, None, now).await?;
        let deleted = sql("delete from oauth_clients where client_id = $1")
            .bind(client_id)
            .execute(&mut tx)
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit_telling().await
    }

    /// The session id of a token `client_id` is issued of its own (`client_credentials`, for
    /// `scope`), `fresh` when it has none live, with `OAUTH_TOKEN_ISSUED`; none when there is
    /// no such client.
    pub async fn issue_service_token(
        &self,
        client_id: &str,
        scope: &str,
        fresh: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.write().await?;
        let id: Option<(String,)> = sql("update oauth_clients
             set service_session_id = coalesce(service_session_id, $1)
             where client_id = $2 returning service_session_id")
        .bind(fresh)
        .bind(client_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(id) = id.map(|(id,)| parse_uuid(&id)).transpose()? else {
            return Ok(None);
        };
        let event =
            Event::oauth_token_issued(None, client_id, "client_credentials", scope, Some(id), now);
        insert_event(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Revokes every token `client_id` holds of its own, when `session_id` is still their
    /// session: every instance refuses them within a second, and the next grant draws a new
    /// session id. A token of an earlier, already revoked session ends nothing.
    pub async fn revoke_service_session(
        &self,
        client_id: &str,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Committed, StoreError> {
        let mut tx = self.write().await?;
        revoke_service_in(&mut tx, client_id, Some(session_id), now).await?;
        tx.commit_telling().await
    }
}

/// Ends the session of `client_id`'s own tokens, if it has one (and it is `only`, when
/// given), inside a transaction.
async fn revoke_service_in(
    tx: &mut Tx,
    client_id: &str,
    only: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.lock(tx.dialect.order_revocations, None).await?;
    let old: Option<(Option<String>,)> =
        sql("select service_session_id from oauth_clients where client_id = $1")
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(session_id) = old.and_then(|(id,)| id) else {
        return Ok(());
    };
    let session_id = parse_uuid(&session_id)?;
    if only.is_some_and(|only| only != session_id) {
        return Ok(());
    }
    sql("update oauth_clients set service_session_id = null where client_id = $1")
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    let at = micros(now);
    // The revocation's owner is the client: no user is behind these tokens.
    sql(
        "insert into revocations (session_id, user_id, created_at, updated_at, expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(session_id)
    .bind(client_id)
    .bind(at)
    .bind(at)
    .bind(micros(now + REVOCATION_LIFETIME))
    .execute(&mut *tx)
    .await?;
    tx.after.revoked.push(session_id);
    Ok(())
}

async fn client_in(tx: &mut Tx, client_id: &str) -> Result<OAuthClient, StoreError> {
    let row: ClientRow = sql_owned(format!("{CLIENT_COLUMNS} where client_id = $1"))
        .bind(client_id)
        .fetch_one(tx)
        .await?;
    client_of(row)
}
