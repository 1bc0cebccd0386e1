//! Administration: listing, creating, inspecting, changing and deleting users. Every call is
//! checked against the acting user as stored now (role and disabled), not only the token.

use super::accounts::{self, NewAccount, Origin, RegisterError, Registered, changed_fields};
use super::{Fault, Principal, email_change, faults_into};
use crate::domain::{Acr, Email, Event, RevokeReason, Role, User, ValidationErrors};
use crate::state::AppState;
use crate::store::{Effects, StoreError, UserChange, UserFilter};
use time::OffsetDateTime;
use uuid::Uuid;

/// How an admin call can fail.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The caller is not an (enabled) admin.
    #[error("forbidden")]
    Forbidden,
    /// No such user.
    #[error("not found")]
    NotFound,
    /// The email is taken.
    #[error("email taken")]
    EmailTaken,
    /// The change would leave no enabled, verified admin.
    #[error("last admin")]
    LastAdmin,
    /// Moving an account to another address needs a recent authentication.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(AdminError);

/// One page of users and where the next starts.
#[derive(Debug)]
pub struct UserPage {
    /// Newest first.
    pub users: Vec<User>,
    /// The position after the last user, when more follow.
    pub next: Option<(OffsetDateTime, Uuid)>,
}

/// An admin, checked against the store: the proof every admin use case asks for. Only
/// [`authorize`] makes one, so no use case can be reached without the check.
#[derive(Debug)]
pub struct Acting(User, Acr, bool);

impl Acting {
    /// The admin, as stored when checked.
    pub fn user(&self) -> &User {
        &self.0
    }

    /// Whether its token's authentication is recent (`LATCHKEY_REAUTH_MAX_AGE`).
    pub fn recent(&self) -> bool {
        self.2
    }

    /// The level its token states.
    pub fn acr(&self) -> Acr {
        self.1
    }
}

/// The acting admin, as stored now (role and disabled), not only as the token says; the
/// `Admin` extractor calls it before the request's path, query or body is looked at, so a
/// non-admin is told 403 whatever they sent.
pub async fn authorize(app: &AppState, principal: &Principal) -> Result<Acting, AdminError> {
    let actor = app
        .store
        .user(principal.user_id)
        .await?
        .ok_or(AdminError::Forbidden)?;
    if actor.disabled || &actor.role != app.config.roles.admin() {
        return Err(AdminError::Forbidden);
    }
    let acr = principal
        .claims
        .acr
        .as_deref()
        .and_then(Acr::parse)
        .unwrap_or(Acr::Aal1);
    let recent = super::mfa::require_recent(app, principal).is_ok();
    Ok(Acting(actor, acr, recent))
}

/// A page of users matching `filter`.
pub async fn list(
    app: &AppState,
    _admin: &Acting,
    filter: &UserFilter,
    limit: i64,
) -> Result<UserPage, AdminError> {
    let mut users = app.store.list_users(filter, limit + 1).await?;
    let more = users.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    users.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more
        .then(|| users.last().map(|u| (u.created_at, u.id)))
        .flatten();
    Ok(UserPage { users, next })
}

/// Creates a user with the given role and verification (no password: it can be set by reset).
pub async fn create(
    app: &AppState,
    actor: &Acting,
    account: NewAccount,
    role: Option<Role>,
    email_verified: bool,
) -> Result<User, AdminError> {
    let role = role.unwrap_or_else(|| app.config.roles.default_role().clone());
    let origin = Origin::Admin {
        by: actor.user().id,
        role,
        email_verified,
    };
    match accounts::register(app, account, origin).await {
        Ok(Registered::Created(user)) => Ok(user),
        Ok(Registered::LoggedIn(pair)) => Ok(pair.user),
        Err(RegisterError::EmailTaken) => Err(AdminError::EmailTaken),
        Err(RegisterError::Fault(fault)) => Err(fault.into()),
    }
}

/// One user. Ids are `Option`s so that a malformed id is answered only after the caller's
/// right to ask: a non-admin learns nothing from the path.
pub async fn get(app: &AppState, _admin: &Acting, id: Option<Uuid>) -> Result<User, AdminError> {
    let id = id.ok_or(AdminError::NotFound)?;
    app.store.user(id).await?.ok_or(AdminError::NotFound)
}

/// Changes a user. A role change or disabling revokes every session of the user; each kind of
/// change writes its event, naming the acting admin.
pub async fn update(
    app: &AppState,
    actor: &Acting,
    id: Option<Uuid>,
    change: UserChange,
    new_email: Option<Email>,
) -> Result<User, AdminError> {
    let id = id.ok_or(AdminError::NotFound)?;
    let current = app.store.user(id).await?.ok_or(AdminError::NotFound)?;
    // A new address is only asked for: it takes effect when its owner confirms it.
    let new_email = new_email.filter(|email| *email != current.email);
    // A stolen admin token, however old, must not move accounts to an attacker's mailbox.
    if new_email.is_some() && !actor.recent() {
        return Err(AdminError::ReauthenticationRequired);
    }
    if change.is_empty() && new_email.is_none() {
        return Ok(current);
    }
    let now = app.clock.now();
    let by = actor.user().id;
    let mut events = Vec::new();
    let changed = changed_fields(&change);
    if !changed.is_empty() {
        events.push(Event::user_updated(id, &changed, by, now));
    }
    if change.email_verified == Some(true) && !current.email_verified {
        events.push(Event::email_verified(id, &current.email, Some(by), now));
    }
    let mut revoke = None;
    if let Some(role) = change.role.as_ref().filter(|role| **role != current.role) {
        events.push(Event::role_changed(id, &current.role, role, by, now));
        revoke = Some(RevokeReason::RoleChanged);
    }
    match (change.disabled, current.disabled) {
        (Some(true), false) => {
            events.push(Event::user_disabled(id, true, by, now));
            revoke = Some(RevokeReason::Disabled);
        }
        (Some(false), true) => events.push(Event::user_disabled(id, false, by, now)),
        _ => {}
    }
    // Tokens say `email_verified`; an address no longer trusted must not stay in live ones.
    if change.email_verified == Some(false) && current.email_verified && revoke.is_none() {
        revoke = Some(RevokeReason::EmailUnverified);
    }
    let mut effects = Effects {
        events,
        ..Effects::default()
    };
    if let Some(new_email) = new_email {
        let asked = email_change::admin_request_effects(app, &current, new_email, by, now);
        effects.events.extend(asked.events);
        effects.mails.extend(asked.mails);
        effects.tokens.extend(asked.tokens);
        effects.email_change = asked.email_change;
    }
    // Demoting, disabling or unverifying an admin must leave another enabled, verified admin.
    // Checked in the transaction for every such change, not only when `current` (read before
    // it) shows an admin: a change racing this one may have made one meanwhile.
    let guarded =
        change.role.is_some() || change.disabled.is_some() || change.email_verified.is_some();
    let keep_admin = guarded.then(|| app.config.roles.admin().as_str());
    let (user, committed) = match app
        .store
        .update_user(id, &change, revoke, now, &effects, keep_admin)
        .await
    {
        Err(StoreError::NotFound) => return Err(AdminError::NotFound),
        Err(StoreError::LastAdmin) => return Err(AdminError::LastAdmin),
        Err(StoreError::Conflict) => return Err(AdminError::EmailTaken),
        result => result?,
    };
    app.after_commit(committed);
    Ok(user)
}

/// Deletes a user with everything of theirs: sessions, tokens, pending mail.
pub async fn delete(app: &AppState, actor: &Acting, id: Option<Uuid>) -> Result<(), AdminError> {
    let id = id.ok_or(AdminError::NotFound)?;
    let target = app.store.user(id).await?.ok_or(AdminError::NotFound)?;
    let now = app.clock.now();
    let event = Event::user_deleted(&target, actor.user().id, now);
    let effects = Effects {
        events: vec![event],
        ..Effects::default()
    };
    let keep_admin = Some(app.config.roles.admin().as_str());
    match app.store.delete_user(id, now, &effects, keep_admin).await {
        Err(StoreError::NotFound) => Err(AdminError::NotFound),
        Err(StoreError::LastAdmin) => Err(AdminError::LastAdmin),
        Err(error) => Err(error.into()),
        Ok(committed) => {
            app.after_commit(committed);
            Ok(())
        }
    }
}

/// Removes every second factor of user `id` and revokes every session; needs the admin's own
/// token at `aal2` (`SecondFactorRequired` otherwise), so a stolen admin password alone cannot
/// strip a victim's factors.
pub async fn reset_mfa(
    app: &AppState,
    admin: &Acting,
    id: Option<Uuid>,
) -> Result<(), super::mfa::MfaError> {
    if admin.acr() < Acr::Aal2 {
        return Err(super::mfa::MfaError::SecondFactorRequired);
    }
    let id = id.ok_or(super::mfa::MfaError::NotFound)?;
    super::mfa::reset(app, id, admin.user().id).await
}
