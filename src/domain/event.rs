//! Domain events, written to the outbox with the change they describe, as CloudEvents 1.0 JSON.

use super::{Email, Name, Role, User};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The event types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EventType {
    UserRegistered,
    UserLogin,
    UserLoginFailed,
    EmailVerified,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    UserUpdated,
    RoleChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    SessionRevoked,
    RefreshTokenReused,
    MfaEnabled,
    MfaDisabled,
    MfaChallengeFailed,
    RecoveryCodeUsed,
    PasskeyAdded,
    PasskeyRemoved,
    UserInvited,
    InvitationAccepted,
    EmailChangeRequested,
    EmailChanged,
    EmailChangeReverted,
    OAuthClientCreated,
    OAuthConsentGranted,
    OAuthConsentRevoked,
    OAuthTokenIssued,
}

impl EventType {
    /// The contract's name, also the last part of the NATS subject.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserRegistered => "USER_REGISTERED",
            EventType::UserLogin => "USER_LOGIN",
            EventType::UserLoginFailed => "USER_LOGIN_FAILED",
            EventType::EmailVerified => "EMAIL_VERIFIED",
            EventType::PasswordChanged => "PASSWORD_CHANGED",
            EventType::PasswordResetRequested => "PASSWORD_RESET_REQUESTED",
            EventType::PasswordReset => "PASSWORD_RESET",
            EventType::UserUpdated => "USER_UPDATED",
            EventType::RoleChanged => "ROLE_CHANGED",
            EventType::UserDisabled => "USER_DISABLED",
            EventType::UserEnabled => "USER_ENABLED",
            EventType::UserDeleted => "USER_DELETED",
            EventType::SessionRevoked => "SESSION_REVOKED",
            EventType::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            EventType::MfaEnabled => "MFA_ENABLED",
            EventType::MfaDisabled => "MFA_DISABLED",
            EventType::MfaChallengeFailed => "MFA_CHALLENGE_FAILED",
            EventType::RecoveryCodeUsed => "RECOVERY_CODE_USED",
            EventType::PasskeyAdded => "PASSKEY_ADDED",
            EventType::PasskeyRemoved => "PASSKEY_REMOVED",
            EventType::UserInvited => "USER_INVITED",
            EventType::InvitationAccepted => "INVITATION_ACCEPTED",
            EventType::EmailChangeRequested => "EMAIL_CHANGE_REQUESTED",
            EventType::EmailChanged => "EMAIL_CHANGED",
            EventType::EmailChangeReverted => "EMAIL_CHANGE_REVERTED",
            EventType::OAuthClientCreated => "OAUTH_CLIENT_CREATED",
            EventType::OAuthConsentGranted => "OAUTH_CONSENT_GRANTED",
            EventType::OAuthConsentRevoked => "OAUTH_CONSENT_REVOKED",
            EventType::OAuthTokenIssued => "OAUTH_TOKEN_ISSUED",
        }
    }
}

/// Why a session was revoked: the `reason` of `SESSION_REVOKED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// The user revoked it from their session list.
    RevokedByUser,
    /// The user changed their password (every other session).
    PasswordChanged,
    /// A password reset (every session).
    PasswordReset,
    /// An admin changed the user's role.
    RoleChanged,
    /// An admin disabled the user.
    Disabled,
    /// An admin marked the address unverified.
    EmailUnverified,
    /// The account was deleted.
    AccountDeleted,
    /// A spent refresh token came back after its grace window.
    RefreshTokenReused,
    /// An admin removed every second factor of the account.
    MfaReset,
    /// The account's new address was confirmed (every session but the one that asked).
    EmailChanged,
    /// An email change was undone from the old address (every session).
    EmailChangeReverted,
    /// An authorization code was presented a second time: what it issued may be in other hands.
    CodeReplayed,
    /// The OAuth client revoked its token (RFC 7009).
    RevokedByClient,
    /// The OAuth client the session served was removed.
    ClientRemoved,
    /// The user withdrew the consent the session's client was given.
    ConsentRevoked,
}

impl RevokeReason {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::RoleChanged => "role_changed",
            RevokeReason::Disabled => "disabled",
            RevokeReason::EmailUnverified => "email_unverified",
            RevokeReason::AccountDeleted => "account_deleted",
            RevokeReason::RefreshTokenReused => "refresh_token_reused",
            RevokeReason::MfaReset => "mfa_reset",
            RevokeReason::CodeReplayed => "code_replayed",
            RevokeReason::RevokedByClient => "revoked_by_client",
            RevokeReason::ClientRemoved => "client_removed",
            RevokeReason::ConsentRevoked => "consent_revoked",
            RevokeReason::EmailChanged => "email_changed",
            RevokeReason::EmailChangeReverted => "email_change_reverted",
        }
    }
}

/// Why a sign-in failed: the `reason` of `USER_LOGIN_FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No account has the address.
    UnknownEmail,
    /// The password is wrong.
    InvalidPassword,
    /// The client network must wait before it tries this account again.
    Throttled,
    /// Password sign-in of the account is suspended for the day.
    Suspended,
    /// The account is disabled.
    AccountDisabled,
    /// The address is not verified yet.
    EmailNotVerified,
}

impl LoginFailure {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownEmail => "unknown_email",
            LoginFailure::InvalidPassword => "invalid_password",
            LoginFailure::Throttled => "throttled",
            LoginFailure::Suspended => "suspended",
            LoginFailure::AccountDisabled => "account_disabled",
            LoginFailure::EmailNotVerified => "email_not_verified",
        }
    }
}

/// One event: who it is about and what happened. Never carries a password, hash or token.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique id (UUIDv7), the deduplication key downstream.
    pub id: Uuid,
    /// What happened.
    pub kind: EventType,
    /// The user it concerns; `None` only for failed logins with an unknown email.
    pub user_id: Option<Uuid>,
    /// When it happened.
    pub time: OffsetDateTime,
    /// Type-specific fields; `user_id` is added when known.
    pub data: Value,
}

impl Event {
    /// A new event about `user_id` at `time`; `data` must be a JSON object. Only this
    /// module's typed constructors call it, so every payload of a type has one shape.
    fn new(kind: EventType, user_id: Option<Uuid>, time: OffsetDateTime, mut data: Value) -> Event {
        if let (Some(id), Some(object)) = (user_id, data.as_object_mut()) {
            object.insert("user_id".into(), Value::String(id.to_string()));
        }
        Event {
            id: crate::clock::id_at(time),
            kind,
            user_id,
            time,
            data,
        }
    }

    /// `USER_REGISTERED`: `user` was created, by `origin` (`self_service`, `admin`, `cli`,
    /// `import`).
    pub fn user_registered(user: &User, origin: &str, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::UserRegistered,
            Some(user.id),
            time,
            json!({
                "email": user.email.as_str(), "name": user.name.as_ref().map(Name::as_str),
                "role": user.role.as_str(), "email_verified": user.email_verified, "origin": origin,
            }),
        )
    }

    /// `USER_INVITED`: the admin `by` invited `user` (an account without a password yet).
    pub fn user_invited(user: &User, by: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::UserInvited,
            Some(user.id),
            time,
            json!({"email": user.email.as_str(), "role": user.role.as_str(), "by": by}),
        )
    }

    /// `INVITATION_ACCEPTED`: `user` set a password through the invitation.
    pub fn invitation_accepted(user: &User, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::InvitationAccepted,
            Some(user.id),
            time,
            json!({"email": user.email.as_str()}),
        )
    }

    /// `USER_LOGIN`: `user` signed in, starting `session_id` from `ip` with `user_agent`.
    pub fn user_login(
        user: &User,
        session_id: Uuid,
        ip: Option<&str>,
        user_agent: Option<&str>,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::UserLogin,
            Some(user.id),
            time,
            json!({"email": user.email.as_str(), "session_id": session_id, "ip": ip, "user_agent": user_agent}),
        )
    }

    /// `USER_LOGIN_FAILED`: a sign-in as `email` failed for `reason`; `user_id` when the
    /// address has an account.
    pub fn login_failed(
        user_id: Option<Uuid>,
        email: Option<&Email>,
        reason: LoginFailure,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::UserLoginFailed,
            user_id,
            time,
            json!({"email": email.map(Email::as_str), "reason": reason.as_str()}),
        )
    }

    /// `EMAIL_VERIFIED`: `email` was proven by its confirmation link, or vouched for by the
    /// admin `by`.
    pub fn email_verified(
        user_id: Uuid,
        email: &Email,
        by: Option<Uuid>,
        time: OffsetDateTime,
    ) -> Event {
        let mut data = json!({"email": email.as_str()});
        if let Some(by) = by {
            data["by"] = json!(by);
        }
        Event::new(EventType::EmailVerified, Some(user_id), time, data)
    }

    /// `EMAIL_CHANGE_REQUESTED`: a change from `email` to `new_email` was asked for (by the
    /// admin `by`, or the user); nothing changes until the new address confirms it.
    pub fn email_change_requested(
        user_id: Uuid,
        email: &Email,
        new_email: &Email,
        by: Option<Uuid>,
        time: OffsetDateTime,
    ) -> Event {
        let mut data = json!({"email": email.as_str(), "new_email": new_email.as_str()});
        if let Some(by) = by {
            data["by"] = json!(by);
        }
        Event::new(EventType::EmailChangeRequested, Some(user_id), time, data)
    }

    /// `EMAIL_CHANGED`: the new address confirmed the change; `email` is the account's now.
    pub fn email_changed(
        user_id: Uuid,
        old_email: &Email,
        email: &Email,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::EmailChanged,
            Some(user_id),
            time,
            json!({"email": email.as_str(), "old_email": old_email.as_str()}),
        )
    }

    /// `EMAIL_CHANGE_REVERTED`: the old address undid a change; `email` is the account's
    /// again, `reverted_email` the address it had.
    pub fn email_change_reverted(
        user_id: Uuid,
        email: &Email,
        reverted_email: &Email,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::EmailChangeReverted,
            Some(user_id),
            time,
            json!({"email": email.as_str(), "reverted_email": reverted_email.as_str()}),
        )
    }

    /// `OAUTH_CLIENT_CREATED`: `client` was registered, by the admin `by` (none: the command
    /// line). No secret is in it.
    pub fn oauth_client_created(
        client: &crate::domain::OAuthClient,
        by: Option<Uuid>,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::OAuthClientCreated,
            None,
            time,
            json!({
                "client_id": client.client_id,
                "name": client.name,
                "confidential": client.confidential,
                "redirect_uris": client.redirect_uris,
                "scopes": client.scopes,
                "first_party": client.first_party,
                "by": by,
            }),
        )
    }

    /// `OAUTH_CONSENT_GRANTED`: `user_id` allowed `client_id` the `scopes`.
    pub fn oauth_consent_granted(
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::OAuthConsentGranted,
            Some(user_id),
            time,
            json!({"client_id": client_id, "scopes": scopes}),
        )
    }

    /// `OAUTH_CONSENT_REVOKED`: `user_id` withdrew what they allowed `client_id` (the
    /// `scopes`); the client's sessions of theirs were revoked with it.
    pub fn oauth_consent_revoked(
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::OAuthConsentRevoked,
            Some(user_id),
            time,
            json!({"client_id": client_id, "scopes": scopes}),
        )
    }

    /// `OAUTH_TOKEN_ISSUED`: `client_id` got tokens for `grant_type`, for a session of
    /// `user_id` (none: a service account of `client_credentials`). No token is in it.
    pub fn oauth_token_issued(
        user_id: Option<Uuid>,
        client_id: &str,
        grant_type: &str,
        scope: &str,
        session_id: Option<Uuid>,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::OAuthTokenIssued,
            user_id,
            time,
            json!({
                "client_id": client_id,
                "grant_type": grant_type,
                "scope": scope,
                "session_id": session_id,
            }),
        )
    }

    /// `PASSWORD_CHANGED`: the user changed their own password.
    pub fn password_changed(user: &User, time: OffsetDateTime) -> Event {
        Event::about_address(EventType::PasswordChanged, user, time)
    }

    /// `PASSWORD_RESET_REQUESTED`: a reset mail went to `user`.
    pub fn password_reset_requested(user: &User, time: OffsetDateTime) -> Event {
        Event::about_address(EventType::PasswordResetRequested, user, time)
    }

    /// `PASSWORD_RESET`: `user` set a new password through a reset link or code.
    pub fn password_reset(user: &User, time: OffsetDateTime) -> Event {
        Event::about_address(EventType::PasswordReset, user, time)
    }

    fn about_address(kind: EventType, user: &User, time: OffsetDateTime) -> Event {
        Event::new(
            kind,
            Some(user.id),
            time,
            json!({"email": user.email.as_str()}),
        )
    }

    /// `USER_UPDATED`: the fields `changed` of `user_id` changed, by the user or the admin `by`.
    pub fn user_updated(user_id: Uuid, changed: &[&str], by: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::UserUpdated,
            Some(user_id),
            time,
            json!({"changed": changed, "by": by}),
        )
    }

    /// `ROLE_CHANGED` of `user_id` from `from` to `to`, by the admin `by`.
    pub fn role_changed(
        user_id: Uuid,
        from: &Role,
        to: &Role,
        by: Uuid,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::RoleChanged,
            Some(user_id),
            time,
            json!({"from": from.as_str(), "to": to.as_str(), "by": by}),
        )
    }

    /// `USER_DISABLED` or, with `disabled` false, `USER_ENABLED`, by the admin `by`.
    pub fn user_disabled(user_id: Uuid, disabled: bool, by: Uuid, time: OffsetDateTime) -> Event {
        let kind = if disabled {
            EventType::UserDisabled
        } else {
            EventType::UserEnabled
        };
        Event::new(kind, Some(user_id), time, json!({"by": by}))
    }

    /// `USER_DELETED`: `user` was deleted by itself or an admin (`by`).
    pub fn user_deleted(user: &User, by: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::UserDeleted,
            Some(user.id),
            time,
            json!({"email": user.email.as_str(), "by": by}),
        )
    }

    /// `USER_DELETED` of a self-registered account never verified within its time.
    pub fn unverified_account_expired(user: &User, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::UserDeleted,
            Some(user.id),
            time,
            json!({"email": user.email.as_str(), "by": null, "reason": "unverified_expired"}),
        )
    }

    /// `SESSION_REVOKED` for one session of `user_id`, with why.
    pub fn session_revoked(
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::SessionRevoked,
            Some(user_id),
            time,
            json!({"session_id": session_id, "reason": reason.as_str()}),
        )
    }

    /// `REFRESH_TOKEN_REUSED`: a spent refresh token of `session_id` came back after its grace
    /// window (the session is revoked with it).
    pub fn refresh_token_reused(user_id: Uuid, session_id: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::RefreshTokenReused,
            Some(user_id),
            time,
            json!({"session_id": session_id}),
        )
    }

    /// `MFA_ENABLED`: the user confirmed a TOTP authenticator.
    pub fn mfa_enabled(user_id: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::MfaEnabled,
            Some(user_id),
            time,
            json!({"method": "totp"}),
        )
    }

    /// `MFA_DISABLED`: `method` (`totp`, or `all` when an admin removed every factor) is gone;
    /// `by` is the admin, or the user themselves.
    pub fn mfa_disabled(user_id: Uuid, method: &str, by: Uuid, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::MfaDisabled,
            Some(user_id),
            time,
            json!({"method": method, "by": by}),
        )
    }

    /// `MFA_CHALLENGE_FAILED`: a wrong second factor (`method`) was offered for `user_id`.
    pub fn mfa_challenge_failed(user_id: Uuid, method: &str, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::MfaChallengeFailed,
            Some(user_id),
            time,
            json!({"method": method}),
        )
    }

    /// `RECOVERY_CODE_USED`: a recovery code was spent; `left` remain.
    pub fn recovery_code_used(user_id: Uuid, left: i64, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::RecoveryCodeUsed,
            Some(user_id),
            time,
            json!({"remaining": left}),
        )
    }

    /// `PASSKEY_ADDED`: the WebAuthn credential `credential` named `name` was registered.
    pub fn passkey_added(
        user_id: Uuid,
        credential: Uuid,
        name: &str,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::PasskeyAdded,
            Some(user_id),
            time,
            json!({"credential_id": credential, "name": name}),
        )
    }

    /// `PASSKEY_REMOVED`: the WebAuthn credential `credential` was removed by `by`.
    pub fn passkey_removed(
        user_id: Uuid,
        credential: Uuid,
        by: Uuid,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::PasskeyRemoved,
            Some(user_id),
            time,
            json!({"credential_id": credential, "by": by}),
        )
    }

    /// The CloudEvents 1.0 JSON envelope.
    pub fn envelope(&self) -> Value {
        let mut envelope = json!({
            "specversion": "1.0",
            "id": self.id.to_string(),
            "source": "latchkey",
            "type": self.kind.as_str(),
            "time": self.time.format(&Rfc3339).unwrap_or_default(),
            "datacontenttype": "application/json",
            "data": self.data,
        });
        if let Some(user_id) = self.user_id {
            envelope["subject"] = Value::String(user_id.to_string());
        }
        envelope
    }
}
