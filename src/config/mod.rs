//! Settings: every one a `--flag` and a `LATCHKEY_*` variable, in groups that each validate
//! into the configuration of the part they set, once, at start.

pub mod file;
mod hashing;
mod limits;
mod logging;
mod mail;
mod mfa;
mod oauth;
mod peers;
mod server;
mod tokens;

pub use hashing::HashingArgs;
pub use limits::{Limit, LimitArgs, parse_limit};
pub use logging::{LogArgs, LogConfig, LogFormat};
pub use mail::{MailArgs, MailConfig};
pub use mfa::{MfaArgs, MfaConfig};
pub use oauth::{OAuthArgs, OAuthConfig, is_resource_uri};
pub use peers::{PeerArgs, PeerConfig};
pub use server::{Cidr, OptionalAddress, ServerArgs, ServerConfig, normalise_base_path};
pub use tokens::{TokenArgs, TokenConfig};

use crate::crypto::password::HashingConfig;
use crate::domain::{PasswordPolicy, Roles, password};
use crate::ratelimit::Policies;
use time::Duration;

/// The settings shared by every command that touches the database.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Listeners.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The database and the secret key outside it.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Tokens.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Accounts and their rules.
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Second factors and passkeys.
    #[command(flatten)]
    pub mfa: MfaArgs,
    /// The OAuth / OpenID Connect provider.
    #[command(flatten)]
    pub oauth: OAuthArgs,
    /// Password hashing.
    #[command(flatten)]
    pub hashing: HashingArgs,
    /// Mail.
    #[command(flatten)]
    pub mail: MailArgs,
    /// Redis and NATS.
    #[command(flatten)]
    pub peers: PeerArgs,
    /// Rate limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// `LATCHKEY_DATABASE_URL` and the secret key that seals what the database keeps.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Database and secret key")]
pub struct StorageArgs {
    /// Database URL: `sqlite://path` (created when missing).
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = "sqlite://latchkey.db",
        hide_env_values = true
    )]
    pub database_url: Secret,
    /// Key (at least 32 bytes) for the keyed hash of reset codes; kept out of the database so a
    /// stolen database does not yield the codes. Every instance needs the same one.
    #[arg(long, env = "LATCHKEY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,
    /// Where the key is kept (created on first start) when LATCHKEY_SECRET_KEY is not set.
    #[arg(long, env = "LATCHKEY_SECRET_KEY_FILE", default_value = "latchkey.key")]
    pub secret_key_file: std::path::PathBuf,
}

/// The account rules: verification, passwords, roles, concealment, clean-up.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Accounts")]
pub struct AccountArgs {
    /// Whether login requires a verified email.
    #[arg(long, env = "LATCHKEY_REQUIRE_EMAIL_VERIFICATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_email_verification: bool,
    /// Shortest password accepted (8 at the least).
    #[arg(long, env = "LATCHKEY_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// The roles, comma-separated.
    #[arg(
        long,
        env = "LATCHKEY_ROLES",
        default_value = "user,admin",
        value_delimiter = ','
    )]
    pub roles: Vec<String>,
    /// The role of new users.
    #[arg(long, env = "LATCHKEY_DEFAULT_ROLE", default_value = "user")]
    pub default_role: String,
    /// The role allowed to administer users.
    #[arg(long, env = "LATCHKEY_ADMIN_ROLE", default_value = "admin")]
    pub admin_role: String,
    /// Answer a registration with a taken email exactly like a new one, and mail the owner.
    #[arg(long, env = "LATCHKEY_CONCEAL_EXISTING_ACCOUNTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub conceal_existing_accounts: bool,
    /// A self-registered account still unverified this long after registering is deleted.
    #[arg(long, env = "LATCHKEY_UNVERIFIED_ACCOUNT_TTL", default_value = "7d", value_parser = parse_duration)]
    pub unverified_account_ttl: Duration,
}

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The validated configuration the service runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners.
    pub server: ServerConfig,
    /// Database URL (never logged: it may carry a password).
    pub database_url: Secret,
    /// Key for keyed hashes, when given directly.
    pub secret_key: Option<Secret>,
    /// Key file otherwise.
    pub secret_key_file: std::path::PathBuf,
    /// Tokens.
    pub tokens: TokenConfig,
    /// Whether login requires a verified email.
    pub require_email_verification: bool,
    /// Password rules.
    pub password_policy: PasswordPolicy,
    /// The roles.
    pub roles: Roles,
    /// Conceal existing accounts at registration.
    pub conceal_existing_accounts: bool,
    /// Age at which a self-registered account that is still unverified is deleted.
    pub unverified_account_ttl: Duration,
    /// Second factors and passkeys.
    pub mfa: MfaConfig,
    /// The OAuth / OpenID Connect provider.
    pub oauth: OAuthConfig,
    /// Hashing cost and pool.
    pub hashing: HashingConfig,
    /// Mail.
    pub mail: MailConfig,
    /// Redis and NATS.
    pub peers: PeerConfig,
    /// Rate-limit budgets.
    pub rate_limits: Policies,
    /// Logging.
    pub log: LogConfig,
}

impl Settings {
    /// Validates the settings; the error is one line naming the setting.
    pub fn into_config(self) -> Result<Config, String> {
        let server = self.server.validate()?;
        let tokens = self.tokens.validate(&server.public_url)?;
        let accounts = self.accounts;
        if accounts.conceal_existing_accounts && !accounts.require_email_verification {
            return Err("LATCHKEY_CONCEAL_EXISTING_ACCOUNTS needs LATCHKEY_REQUIRE_EMAIL_VERIFICATION=true: \
                        without it a concealed registration could not behave like a real one"
                .into());
        }
        if accounts.unverified_account_ttl < Duration::seconds(1) {
            return Err("LATCHKEY_UNVERIFIED_ACCOUNT_TTL must be at least 1s".into());
        }
        if !(password::MIN_LENGTH_FLOOR..=password::MAX_LENGTH)
            .contains(&accounts.password_min_length)
        {
            return Err(format!(
                "LATCHKEY_PASSWORD_MIN_LENGTH must be between {} and {}",
                password::MIN_LENGTH_FLOOR,
                password::MAX_LENGTH
            ));
        }
        let roles = Roles::new(
            &accounts.roles,
            &accounts.default_role,
            &accounts.admin_role,
        )
        .map_err(|e| format!("LATCHKEY_ROLES/LATCHKEY_DEFAULT_ROLE/LATCHKEY_ADMIN_ROLE: {e}"))?;
        let mfa = self.mfa.validate(&roles, &server.public_url)?;
        let storage = self.storage;
        if storage
            .secret_key
            .as_ref()
            .is_some_and(|key| key.expose().len() < 32)
        {
            return Err("LATCHKEY_SECRET_KEY must be at least 32 bytes".into());
        }
        Ok(Config {
            server,
            database_url: storage.database_url,
            secret_key: storage.secret_key,
            secret_key_file: storage.secret_key_file,
            tokens,
            require_email_verification: accounts.require_email_verification,
            password_policy: PasswordPolicy {
                min_length: accounts.password_min_length,
            },
            roles,
            conceal_existing_accounts: accounts.conceal_existing_accounts,
            unverified_account_ttl: accounts.unverified_account_ttl,
            mfa,
            oauth: self.oauth.validate()?,
            hashing: self.hashing.validate()?,
            mail: self.mail.validate()?,
            peers: self.peers.validate()?,
            rate_limits: self.limits.into_policies(),
            log: self.log.validate()?,
        })
    }
}

/// Parses `900ms`, `10s`, `15m`, `24h`, `30d` (any humantime duration, `1h 30m` too), or a
/// bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<i64>()
            .map(Duration::seconds)
            .map_err(|_| format!("{raw:?} is too long"));
    }
    let parsed = humantime::parse_duration(raw)
        .map_err(|e| format!("{raw:?} is not a duration like 900ms, 10s, 15m, 24h or 30d ({e})"))?;
    Duration::try_from(parsed).map_err(|_| format!("{raw:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_documented_form() {
        assert_eq!(
            parse_duration("900ms").unwrap(),
            Duration::milliseconds(900)
        );
        assert_eq!(parse_duration("10s").unwrap(), Duration::seconds(10));
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("24h").unwrap(), Duration::hours(24));
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("42").unwrap(), Duration::seconds(42));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10 fortnights").is_err());
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::minutes(90));
        assert!(parse_duration("200000000000000000d").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "[redacted]");
    }
}
