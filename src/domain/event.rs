//! Domain events, written to the outbox with the change they describe, as CloudEvents 1.0 JSON.

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
    /// A new event about `user_id` at `time`; `data` must be a JSON object.
    pub fn new(
        kind: EventType,
        user_id: Option<Uuid>,
        time: OffsetDateTime,
        mut data: Value,
    ) -> Event {
        if let (Some(id), Some(object)) = (user_id, data.as_object_mut()) {
            object.insert("user_id".into(), Value::String(id.to_string()));
        }
        Event {
            id: Uuid::now_v7(),
            kind,
            user_id,
            time,
            data,
        }
    }

    /// `SESSION_REVOKED` for one session of `user_id`, with why.
    pub fn session_revoked(
        user_id: Uuid,
        session_id: Uuid,
        reason: &str,
        time: OffsetDateTime,
    ) -> Event {
        Event::new(
            EventType::SessionRevoked,
            Some(user_id),
            time,
            json!({"session_id": session_id, "reason": reason}),
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

    /// `EMAIL_VERIFIED`: `email` was proven by its confirmation link.
    pub fn email_verified(user_id: Uuid, email: &str, time: OffsetDateTime) -> Event {
        Event::new(
            EventType::EmailVerified,
            Some(user_id),
            time,
            json!({"email": email}),
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
