//! The services latchkey talks to besides its database: Redis for shared revocations and rate
//! limits, NATS JetStream for events.

use super::{Secret, parse_duration};
use time::Duration;

/// `LATCHKEY_REDIS_URL`, `LATCHKEY_NATS_URL`, `LATCHKEY_EVENTS_*`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redis and NATS")]
pub struct PeerArgs {
    /// Redis (`redis://host:6379/`): revocations are announced to every instance through it;
    /// while it is unreachable bearer checks fail closed. Unset: in-process only.
    #[arg(long, env = "LATCHKEY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// NATS server for events (`nats://host:4222`); unset, events stay in the outbox.
    #[arg(long, env = "LATCHKEY_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<Secret>,
    /// Subject prefix of events: `{prefix}.{TYPE}`; the JetStream stream is named after it.
    #[arg(long, env = "LATCHKEY_EVENTS_SUBJECT", default_value = "auth-events")]
    pub events_subject: String,
    /// How long events are kept in the outbox (published ones; all of them without NATS).
    #[arg(long, env = "LATCHKEY_EVENTS_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub events_retention: Duration,
}

/// The validated peer settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Redis URL, if revocations and rate limits are shared through it.
    pub redis_url: Option<Secret>,
    /// NATS URL, if events are published.
    pub nats_url: Option<Secret>,
    /// Event subject prefix.
    pub events_subject: String,
    /// Outbox retention.
    pub events_retention: Duration,
}

impl PeerArgs {
    /// Checks the Redis URL's form and the subject's tokens.
    pub fn validate(self) -> Result<PeerConfig, String> {
        if let Some(url) = &self.redis_url {
            redis::Client::open(url.expose())
                .map_err(|e| format!("LATCHKEY_REDIS_URL is not a usable Redis URL: {e}"))?;
        }
        let subject_ok = !self.events_subject.is_empty()
            && self.events_subject.split('.').all(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            });
        if !subject_ok {
            return Err(format!(
                "LATCHKEY_EVENTS_SUBJECT {:?} must be dot-separated tokens of a-z A-Z 0-9 - _",
                self.events_subject
            ));
        }
        Ok(PeerConfig {
            redis_url: self.redis_url,
            nats_url: self.nats_url,
            events_subject: self.events_subject,
            events_retention: self.events_retention,
        })
    }
}
