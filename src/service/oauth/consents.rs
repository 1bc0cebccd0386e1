//! What a user has allowed which apps: listed, and withdrawn (which also signs the app out of
//! the user's account, so it cannot keep using what it was given).

use crate::domain::Consent;
use crate::service::sessions::SessionError;
use crate::service::{Fault, Principal};
use crate::state::AppState;

/// The caller's consents, oldest first.
pub async fn list(app: &AppState, principal: &Principal) -> Result<Vec<Consent>, Fault> {
    Ok(app.store.consents(principal.user_id).await?)
}

/// Withdraws the caller's consent to `client_id` and revokes that client's sessions of theirs;
/// the next authorization asks again.
pub async fn revoke(
    app: &AppState,
    principal: &Principal,
    client_id: &str,
) -> Result<(), SessionError> {
    let committed = app
        .store
        .revoke_consent(principal.user_id, client_id, app.clock.now())
        .await?
        .ok_or(SessionError::NotFound)?;
    app.after_commit(committed);
    Ok(())
}
