//! Accounts: registration (self-service and CLI alike), profile, password change, deletion.

use super::attempts::{PasswordCheck, check_password, settle};
use super::recovery::{mail, verification_effects};
use super::sessions::{login_event, new_session, token_pair};
use super::{ClientInfo, Fault, Principal, TokenPair, faults_into};
use crate::domain::{
    Assurance, Email, Event, Locale, Metadata, Name, Password, Phone, RevokeReason, Role, User,
    ValidationErrors,
};
use crate::state::AppState;
use crate::store::{Credentials, Effects, NewUser, QueuedRequest, StoreError, UserChange};
use crate::templates::Mail;
use uuid::Uuid;

/// A validated request for a new account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Normalised email.
    pub email: Email,
    /// The password; `None` creates an account that cannot log in with a password yet.
    pub password: Option<Password>,
    /// Full name.
    pub name: Option<Name>,
    /// Phone.
    pub phone: Option<Phone>,
    /// Application fields.
    pub metadata: Metadata,
    /// Language tag.
    pub locale: Option<Locale>,
}

/// The fields of a new account as sent, before validation.
#[derive(Debug, Clone, Default)]
pub struct AccountFields {
    /// Email, as typed.
    pub email: Option<String>,
    /// Password, as typed.
    pub password: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Application fields.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Language tag.
    pub locale: Option<String>,
}

impl NewAccount {
    /// Validates the fields of a new account, collecting every failure; the password is judged
    /// by `policy` against the email it will belong to, and may be left out when not required.
    pub fn parse(
        policy: &crate::domain::PasswordPolicy,
        fields: AccountFields,
        require_password: bool,
        errors: &mut ValidationErrors,
    ) -> Option<NewAccount> {
        let AccountFields {
            email,
            password,
            name,
            phone,
            metadata,
            locale,
        } = fields;
        let email = errors
            .require("email", email)
            .and_then(|raw| errors.take("email", Email::parse(&raw)));
        let password = match (password, require_password) {
            (Some(raw), _) => errors
                .take("password", policy.parse(&raw, email.as_ref()))
                .map(Some),
            (None, true) => errors.require::<Password>("password", None).map(Some),
            (None, false) => Some(None),
        };
        let name = name.map(|raw| errors.take("name", Name::parse(&raw)));
        let phone = phone.map(|raw| errors.take("phone", Phone::parse(&raw)));
        let metadata = errors.take("metadata", Metadata::parse(metadata.unwrap_or_default()));
        let locale = locale.map(|raw| errors.take("locale", Locale::parse(&raw)));
        Some(NewAccount {
            email: email?,
            password: password?,
            name: name.flatten(),
            phone: phone.flatten(),
            metadata: metadata?,
            locale: locale.flatten(),
        })
        .filter(|_| errors.0.is_empty())
    }
}

/// Who creates an account, which decides its role, verification and whether it logs in.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A visitor registering: default role, unverified; logged in at once when verification is off.
    SelfService(ClientInfo),
    /// An administrator through the API.
    Admin {
        /// The acting admin.
        by: Uuid,
        /// The role.
        role: Role,
        /// Whether the email counts as verified.
        email_verified: bool,
    },
    /// An administrator's invitation: no password, unverified, a mailed link sets both.
    Invitation {
        /// The inviting admin.
        by: Uuid,
        /// The role.
        role: Role,
    },
    /// An operator at the command line.
    Cli {
        /// The role.
        role: Role,
        /// Whether the email counts as verified.
        email_verified: bool,
    },
}

impl Origin {
    fn label(&self) -> &'static str {
        match self {
            Origin::SelfService(_) => "self_service",
            Origin::Admin { .. } => "admin",
            Origin::Invitation { .. } => "invitation",
            Origin::Cli { .. } => "cli",
        }
    }
}

/// What a successful registration produced.
#[derive(Debug)]
pub enum Registered {
    /// The account exists and must verify its email before logging in.
    Created(User),
    /// The account exists and is logged in (email verification is off).
    LoggedIn(TokenPair),
}

/// How creating an account can fail.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// An account with this email exists.
    #[error("email taken")]
    EmailTaken,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// How a change to one's own account can fail.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The password given to confirm the change is wrong.
    #[error("invalid current password")]
    InvalidCurrentPassword,
    /// The account no longer exists.
    #[error("account gone")]
    Gone,
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

faults_into!(RegisterError, AccountError);

/// Creates an account. Hashing happens before the transaction; the unique email index settles
/// races, so of many concurrent registrations of one address exactly one wins.
pub async fn register(
    app: &AppState,
    account: NewAccount,
    origin: Origin,
) -> Result<Registered, RegisterError> {
    let password_hash = match &account.password {
        Some(password) => Some(app.hasher.hash(password).await?),
        None => None,
    };
    let now = app.clock.now();
    let (role, email_verified) = match &origin {
        Origin::SelfService(_) => (app.config.roles.default_role().clone(), false),
        Origin::Admin {
            role,
            email_verified,
            ..
        }
        | Origin::Cli {
            role,
            email_verified,
        } => (role.clone(), *email_verified),
        Origin::Invitation { role, .. } => (role.clone(), false),
    };
    let mut user = User {
        id: crate::clock::id_at(now),
        email: account.email,
        email_verified,
        name: account.name,
        phone: account.phone,
        role,
        disabled: false,
        metadata: account.metadata,
        created_at: now,
        updated_at: now,
        last_login_at: None,
        // Without a tag of its own, a visitor's account speaks the language its browser asked
        // for when registering: every later mail, sent by whatever request, follows the account.
        locale: account.locale.or_else(|| match &origin {
            Origin::SelfService(client) => client
                .language
                .map(|language| Locale::from_trusted(language.tag().to_owned())),
            _ => None,
        }),
    };
    let event = Event::user_registered(&user, origin.label(), now);
    let self_service = matches!(origin, Origin::SelfService(_));
    let invited_by = match &origin {
        Origin::Invitation { by, .. } => Some(*by),
        _ => None,
    };
    let session = match origin {
        Origin::SelfService(client) if !app.config.require_email_verification => {
            // Registering with a password is signing in with it.
            Some(new_session(
                app,
                user.id,
                client,
                Assurance::password(now),
                now,
            ))
        }
        _ => None,
    };
    let mut effects = Effects {
        events: vec![event],
        ..Effects::default()
    };
    if let Some((session, _)) = &session {
        // Registering with verification off is also the account's first login.
        user.last_login_at = Some(now);
        effects.events.push(login_event(&user, session, now));
    }
    if let Some(by) = invited_by {
        let (token, mail) = super::invitations::invitation_effects(app, &user, now);
        effects.tokens.push(token);
        effects.mails.push(mail);
        effects.events.push(Event::user_invited(&user, by, now));
    } else if app.config.require_email_verification && !user.email_verified {
        let (token, mail) = verification_effects(app, &user, now);
        effects.tokens.push(token);
        effects.mails.push(mail);
    }
    let new = NewUser {
        user,
        password_hash,
        self_registered: self_service,
    };
    if self_service && app.config.conceal_existing_accounts {
        // Answer exactly as for a new account, after the same hashing and the same one write
        // transaction: the account is created unless the address is taken, and either way one
        // request row is written, the same shape both times; for a taken address the request
        // tells the owner, after the answer, that someone tried to register it. The would-be
        // user learns nothing.
        use super::mail_requests::{REGISTERED, REGISTRATION_ATTEMPT, seal_request};
        let (subject, created) = seal_request(app, &new.user.email, REGISTERED);
        let (_, taken) = seal_request(app, &new.user.email, REGISTRATION_ATTEMPT);
        let request = |purpose, email_sealed| QueuedRequest {
            subject: &subject,
            purpose,
            email_sealed,
        };
        let (if_created, if_taken) = (
            request(REGISTERED, &created),
            request(REGISTRATION_ATTEMPT, &taken),
        );
        let committed = app
            .store
            .insert_user_or_queue(&new, &effects, if_created, if_taken)
            .await?;
        app.after_commit(committed);
        return Ok(Registered::Created(new.user));
    }
    let committed = match app
        .store
        .insert_user(&new, session.as_ref().map(|(s, _)| s), &effects)
        .await
    {
        Err(StoreError::Conflict) => return Err(RegisterError::EmailTaken),
        result => result?,
    };
    app.after_commit(committed);
    Ok(match session {
        Some((session, refresh_token)) => Registered::LoggedIn(token_pair(
            app,
            new.user,
            session.id,
            &session.assurance,
            refresh_token,
            now,
        )?),
        None => Registered::Created(new.user),
    })
}

/// Deletes self-registered accounts still unverified after `LATCHKEY_UNVERIFIED_ACCOUNT_TTL`
/// (with `USER_DELETED`, reason `unverified_expired`), so an address an attacker registered
/// is freed for its owner. Nothing to do when verification is off (such accounts log in
/// unverified). Gives how many went.
pub async fn purge_unverified(app: &AppState) -> Result<usize, Fault> {
    if !app.config.require_email_verification {
        return Ok(0);
    }
    let now = app.clock.now();
    let cutoff = now - app.config.unverified_account_ttl;
    let event = |user: &User| Event::unverified_account_expired(user, now);
    let mut purged = 0;
    loop {
        let batch = app.store.purge_unverified(cutoff, 100, &event).await?;
        purged += batch.len();
        if batch.len() < 100 {
            return Ok(purged);
        }
    }
}

/// The caller's own account.
pub async fn me(app: &AppState, principal: &Principal) -> Result<User, AccountError> {
    app.store
        .user(principal.user_id)
        .await?
        .ok_or(AccountError::Gone)
}

/// Changes the caller's profile fields (name, phone, metadata, locale; nothing else is
/// accepted here).
pub async fn update_me(
    app: &AppState,
    principal: &Principal,
    change: UserChange,
) -> Result<User, AccountError> {
    let change = UserChange {
        role: None,
        disabled: None,
        email_verified: None,
        ..change
    };
    if change.is_empty() {
        return me(app, principal).await;
    }
    let now = app.clock.now();
    let effects = Effects {
        events: vec![Event::user_updated(
            principal.user_id,
            &changed_fields(&change),
            principal.user_id,
            now,
        )],
        ..Effects::default()
    };
    match app
        .store
        .update_user(principal.user_id, &change, None, now, &effects, None)
        .await
    {
        Err(StoreError::NotFound) => Err(AccountError::Gone),
        result => Ok(result?.0),
    }
}

/// The names of the fields a change sets, for `USER_UPDATED`.
pub(crate) fn changed_fields(change: &UserChange) -> Vec<&'static str> {
    [
        ("name", change.name.is_some()),
        ("phone", change.phone.is_some()),
        ("metadata", change.metadata.is_some()),
        ("email_verified", change.email_verified.is_some()),
        ("locale", change.locale.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect()
}

/// Changes the caller's password after checking the current one; every other session ends.
pub async fn change_password(
    app: &AppState,
    principal: &Principal,
    current: &str,
    new: &str,
    client: &ClientInfo,
) -> Result<(), AccountError> {
    let credentials = app
        .store
        .credentials(principal.user_id)
        .await?
        .ok_or(AccountError::Gone)?;
    let mut errors = ValidationErrors::default();
    let new = errors.take(
        "new_password",
        app.config
            .password_policy
            .parse(new, Some(&credentials.user.email)),
    );
    errors.into_result()?;
    confirm_password(app, &credentials, current, client).await?;
    let hash = app.hasher.hash(&new.expect("validated above")).await?;
    let now = app.clock.now();
    let event = Event::password_changed(&credentials.user, now);
    let committed = app
        .store
        .change_password(
            principal.user_id,
            &hash,
            Some(principal.session_id),
            RevokeReason::PasswordChanged,
            now,
            &Effects {
                events: vec![event],
                mails: vec![mail(app, &credentials.user, Mail::PasswordChanged, now)],
                ..Effects::default()
            },
        )
        .await?;
    app.after_commit(committed);
    Ok(())
}

/// Deletes the caller's account after checking the password: user, sessions and tokens go.
pub async fn delete_me(
    app: &AppState,
    principal: &Principal,
    password: &str,
    client: &ClientInfo,
) -> Result<(), AccountError> {
    let credentials = app
        .store
        .credentials(principal.user_id)
        .await?
        .ok_or(AccountError::Gone)?;
    confirm_password(app, &credentials, password, client).await?;
    let now = app.clock.now();
    let event = Event::user_deleted(&credentials.user, principal.user_id, now);
    match app
        .store
        .delete_user(
            principal.user_id,
            now,
            &Effects {
                events: vec![event],
                ..Effects::default()
            },
            None,
        )
        .await
    {
        Err(StoreError::NotFound) => Err(AccountError::Gone),
        Err(error) => Err(error.into()),
        Ok(committed) => {
            app.after_commit(committed);
            Ok(())
        }
    }
}

/// Checks the account's own password through the login's failure accounting, so a stolen
/// access token is no faster a password oracle than the login form.
async fn confirm_password(
    app: &AppState,
    credentials: &Credentials,
    given: &str,
    client: &ClientInfo,
) -> Result<(), AccountError> {
    let check = check_password(
        app,
        Some(&credentials.user.email),
        Some(&credentials.user),
        credentials.password_hash.as_deref(),
        given,
        client,
        true,
    )
    .await?;
    match check {
        PasswordCheck::Matches { attempt, .. } => Ok(settle(app, attempt.as_ref()).await?),
        _ => Err(AccountError::InvalidCurrentPassword),
    }
}
