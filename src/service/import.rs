//! `latchkey users import`: accounts moved from another system, with their password hashes
//! (bcrypt or argon2), re-hashed to the current argon2id parameters at their next login.

use super::Fault;
use crate::crypto::password::check_imported_hash;
use crate::domain::{Email, Event, Metadata, Name, Phone, User, ValidationErrors};
use crate::state::AppState;
use crate::store::{Effects, NewUser, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::BufRead;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One line of the import file.
#[derive(Debug, Deserialize)]
struct ImportLine {
    email: Option<String>,
    password_hash: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    metadata: Option<Map<String, Value>>,
    role: Option<String>,
    email_verified: Option<bool>,
    created_at: Option<String>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// New accounts.
    pub imported: usize,
    /// Lines whose email already has an account (a re-run skips everything it did before).
    pub skipped: usize,
    /// Refused lines: line number (from 1) and why.
    pub failed: Vec<(usize, String)>,
}

/// Imports every good line of `input`; bad lines are reported and do not stop the rest.
pub async fn import_users(app: &AppState, input: impl BufRead) -> Result<ImportReport, Fault> {
    let mut report = ImportReport::default();
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => line,
            Err(error) => {
                report.failed.push((number, format!("unreadable: {error}")));
                continue;
            }
        };
        let new = match parse_line(app, &line) {
            Ok(new) => new,
            Err(reason) => {
                report.failed.push((number, reason));
                continue;
            }
        };
        let event = Event::user_registered(&new.user, "import", app.clock.now());
        let effects = Effects {
            events: vec![event],
            ..Effects::default()
        };
        match app.store.insert_user(&new, None, &effects).await {
            Ok(committed) => {
                app.after_commit(committed);
                report.imported += 1;
            }
            Err(StoreError::Conflict) => report.skipped += 1,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(report)
}

fn parse_line(app: &AppState, line: &str) -> Result<NewUser, String> {
    let parsed: ImportLine = serde_json::from_str(line)
        .map_err(|e| format!("not a JSON object of the import fields: {e}"))?;
    if let Some(field) = parsed.unknown.keys().next() {
        return Err(format!("unknown field {field:?}"));
    }
    let mut errors = ValidationErrors::default();
    let email = errors
        .require("email", parsed.email)
        .and_then(|raw| errors.take("email", Email::parse(&raw)));
    let hash = errors.require("password_hash", parsed.password_hash);
    let name = parsed
        .name
        .and_then(|raw| errors.take("name", Name::parse(&raw)));
    let phone = parsed
        .phone
        .and_then(|raw| errors.take("phone", Phone::parse(&raw)));
    let metadata = errors.take(
        "metadata",
        Metadata::parse(parsed.metadata.unwrap_or_default()),
    );
    let role = match parsed.role {
        Some(role) => errors.take("role", app.config.roles.parse(&role)),
        None => Some(app.config.roles.default_role().clone()),
    };
    let now = app.clock.now();
    let created_at = match parsed.created_at {
        Some(raw) => OffsetDateTime::parse(&raw, &Rfc3339)
            .map_err(|_| "created_at is not an RFC 3339 time".to_owned())?,
        None => now,
    };
    if let Some(reason) = errors.0.first() {
        return Err(format!("{} {}", reason.field, reason.message));
    }
    let hash = hash.unwrap_or_default();
    check_imported_hash(&hash).map_err(|reason| format!("password_hash: {reason}"))?;
    let (Some(email), Some(metadata), Some(role)) = (email, metadata, role) else {
        return Err("invalid line".into());
    };
    let created_at = created_at.to_offset(time::UtcOffset::UTC);
    let user = User {
        id: app.clock.new_id(),
        email,
        email_verified: parsed.email_verified.unwrap_or(false),
        name,
        phone,
        role,
        disabled: false,
        metadata,
        created_at,
        updated_at: now,
        last_login_at: None,
        locale: None,
    };
    Ok(NewUser {
        user,
        password_hash: Some(hash),
        self_registered: false,
    })
}
