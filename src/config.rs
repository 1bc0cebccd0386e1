//! Settings: every one a `--flag` and a `LATCHKEY_*` variable, validated once into a `Config`.

use crate::crypto::JwtAlg;
use crate::crypto::password::HashingConfig;
use crate::domain::{PasswordPolicy, Roles, password};
use crate::ratelimit::{Action, Limit, Policies};
use std::net::{IpAddr, SocketAddr};
use time::Duration;

/// The settings shared by every command that touches the database.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the operations listener (`/metrics`, `/healthz`, `/readyz`), or `off`;
    /// `/metrics` is never served on the public listener.
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = OptionalAddress::parse)]
    pub metrics_listen: OptionalAddress,
    /// Database URL: `sqlite://path` (created when missing).
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        default_value = "sqlite://latchkey.db",
        hide_env_values = true
    )]
    pub database_url: Secret,
    /// Externally visible base URL, including any base path [default: http://{LISTEN}{BASE_PATH}].
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Prefix for every path, e.g. `/api`.
    #[arg(long, env = "LATCHKEY_BASE_PATH", default_value = "")]
    pub base_path: String,
    /// Access-token signing algorithm.
    #[arg(long, env = "LATCHKEY_JWT_ALG", value_enum, default_value = "EdDSA")]
    pub jwt_alg: JwtAlg,
    /// Shared secret for HS256/HS512 (raw UTF-8, at least 32 bytes).
    #[arg(long, env = "LATCHKEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// `iss` of access tokens [default: the public URL].
    #[arg(long, env = "LATCHKEY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// `aud` of access tokens (none when unset).
    #[arg(long, env = "LATCHKEY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Access-token lifetime (`900ms`, `10s`, `15m`, `24h`, `30d`; a bare number is seconds).
    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    #[arg(long, env = "LATCHKEY_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,
    /// A refresh repeated within this long of its first use gets the same new pair (two tabs,
    /// a lost response); a repeat after it is reuse and revokes the session.
    #[arg(long, env = "LATCHKEY_REFRESH_REUSE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// CIDRs of proxies whose `X-Forwarded-For` is believed, comma-separated (default: none).
    #[arg(long, env = "LATCHKEY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = Cidr::parse)]
    pub trusted_proxies: Vec<Cidr>,
    /// Whether login requires a verified email.
    #[arg(long, env = "LATCHKEY_REQUIRE_EMAIL_VERIFICATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_email_verification: bool,
    /// Shortest password accepted (8 at the least).
    #[arg(long, env = "LATCHKEY_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,
    /// argon2id memory cost, KiB.
    #[arg(long, env = "LATCHKEY_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "LATCHKEY_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    #[arg(long, env = "LATCHKEY_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Password hashes computed at once [default: 0 = one per core].
    #[arg(long, env = "LATCHKEY_HASH_WORKERS", default_value_t = 0)]
    pub hash_workers: usize,
    /// Password hashes allowed to wait for a worker; beyond that requests get 503 `overloaded`.
    #[arg(long, env = "LATCHKEY_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,
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
    /// SMTP server: `smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://…`; unset,
    /// mails are written to the log (and to LATCHKEY_MAIL_DIR).
    #[arg(long, env = "LATCHKEY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// Without SMTP: a directory that gets one `.eml` file per mail.
    #[arg(long, env = "LATCHKEY_MAIL_DIR")]
    pub mail_dir: Option<std::path::PathBuf>,
    /// The `From` of every mail.
    #[arg(
        long,
        env = "LATCHKEY_MAIL_FROM",
        default_value = "latchkey <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// The product name used in mail subjects, mail bodies and pages.
    #[arg(long, env = "LATCHKEY_PRODUCT_NAME", default_value = "latchkey")]
    pub product_name: String,
    /// First retry delay of an undelivered mail; doubles with each failure (jittered, at most 1h).
    #[arg(long, env = "LATCHKEY_MAIL_RETRY_BASE", default_value = "10s", value_parser = parse_duration)]
    pub mail_retry_base: Duration,
    /// An undelivered mail is given up (and logged as an error) after this long.
    #[arg(long, env = "LATCHKEY_MAIL_MAX_AGE", default_value = "24h", value_parser = parse_duration)]
    pub mail_max_age: Duration,
    /// Key (at least 32 bytes) for the keyed hash of reset codes; kept out of the database so a
    /// stolen database does not yield the codes. Every instance needs the same one.
    #[arg(long, env = "LATCHKEY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,
    /// Where the key is kept (created on first start) when LATCHKEY_SECRET_KEY is not set.
    #[arg(long, env = "LATCHKEY_SECRET_KEY_FILE", default_value = "latchkey.key")]
    pub secret_key_file: std::path::PathBuf,
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
    /// Rate limit of register per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REGISTER_IP", default_value = "1000/1m", value_parser = Limit::parse)]
    pub rate_limit_register_ip: Limit,
    /// Rate limit of register per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REGISTER_ACCOUNT", default_value = "30/1m", value_parser = Limit::parse)]
    pub rate_limit_register_account: Limit,
    /// Rate limit of login per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_LOGIN_IP", default_value = "1000/1m", value_parser = Limit::parse)]
    pub rate_limit_login_ip: Limit,
    /// Rate limit of login per account (normalised email) and client network: a count per window
    /// (`10/1m`) or `off`. Per network too, so that nobody can spend the owner's budget.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_LOGIN_ACCOUNT", default_value = "20/1m", value_parser = Limit::parse)]
    pub rate_limit_login_account: Limit,
    /// Rate limit of refresh per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_REFRESH_IP", default_value = "1000/1m", value_parser = Limit::parse)]
    pub rate_limit_refresh_ip: Limit,
    /// Rate limit of resend per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESEND_IP", default_value = "100/1m", value_parser = Limit::parse)]
    pub rate_limit_resend_ip: Limit,
    /// Rate limit of resend per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESEND_ACCOUNT", default_value = "5/10m", value_parser = Limit::parse)]
    pub rate_limit_resend_account: Limit,
    /// Rate limit of forgot per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_FORGOT_IP", default_value = "100/1m", value_parser = Limit::parse)]
    pub rate_limit_forgot_ip: Limit,
    /// Rate limit of forgot per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_FORGOT_ACCOUNT", default_value = "5/10m", value_parser = Limit::parse)]
    pub rate_limit_forgot_account: Limit,
    /// Rate limit of reset per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_IP", default_value = "100/1m", value_parser = Limit::parse)]
    pub rate_limit_reset_ip: Limit,
    /// Rate limit of reset per account (normalised email): a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_ACCOUNT", default_value = "10/10m", value_parser = Limit::parse)]
    pub rate_limit_reset_account: Limit,
    /// Rate limit of confirm per client address: a count per window (`10/1m`) or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_CONFIRM_IP", default_value = "200/1m", value_parser = Limit::parse)]
    pub rate_limit_confirm_ip: Limit,
    /// Reset codes a client network may present, across all accounts: a count per window or `off`.
    #[arg(long, env = "LATCHKEY_RATE_LIMIT_RESET_CODE_IP", default_value = "30/1h", value_parser = Limit::parse)]
    pub rate_limit_reset_code_ip: Limit,
    /// A self-registered account still unverified this long after registering is deleted.
    #[arg(long, env = "LATCHKEY_UNVERIFIED_ACCOUNT_TTL", default_value = "7d", value_parser = parse_duration)]
    pub unverified_account_ttl: Duration,
    /// Longest a request may take before it is answered 503 (its transaction rolls back).
    #[arg(long, env = "LATCHKEY_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Longest a client may stall: to send a request's headers (idle keep-alive included), or
    /// with an answer left unread.
    #[arg(long, env = "LATCHKEY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive once its headers have; a slower one is
    /// answered 408 and its connection closed.
    #[arg(long, env = "LATCHKEY_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Client connections served at once; more wait in the accept queue.
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Log format: `text` or `json`.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `latchkey=debug`.
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info")]
    pub log: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<SocketAddr>);

impl OptionalAddress {
    /// Parses `host:port`, or `off`.
    pub fn parse(raw: &str) -> Result<OptionalAddress, String> {
        if raw.trim().eq_ignore_ascii_case("off") {
            return Ok(OptionalAddress(None));
        }
        raw.trim()
            .parse()
            .map(|address| OptionalAddress(Some(address)))
            .map_err(|_| format!("{raw:?} is not an address like 127.0.0.1:9464, nor `off`"))
    }
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
    /// Listen address.
    pub listen: SocketAddr,
    /// The operations listener's address (metrics, health), if it is on.
    pub metrics_listen: Option<SocketAddr>,
    /// Database URL (never logged: it may carry a password).
    pub database_url: Secret,
    /// Public base URL without a trailing slash, including the base path.
    pub public_url: String,
    /// Path prefix, empty or `/something` without a trailing slash.
    pub base_path: String,
    /// JWT algorithm.
    pub jwt_alg: JwtAlg,
    /// Shared secret for HS algorithms.
    pub jwt_secret: Option<Secret>,
    /// JWT issuer.
    pub jwt_issuer: String,
    /// JWT audience.
    pub jwt_audience: Option<String>,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Grace window for repeated refreshes.
    pub refresh_reuse_grace: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Whether login requires a verified email.
    pub require_email_verification: bool,
    /// Password rules.
    pub password_policy: PasswordPolicy,
    /// Hashing cost and pool.
    pub hashing: HashingConfig,
    /// The roles.
    pub roles: Roles,
    /// Conceal existing accounts at registration.
    pub conceal_existing_accounts: bool,
    /// SMTP URL, if any (never printed).
    pub smtp_url: Option<Secret>,
    /// `.eml` directory when there is no SMTP.
    pub mail_dir: Option<std::path::PathBuf>,
    /// `From` of every mail.
    pub mail_from: lettre::message::Mailbox,
    /// Product name.
    pub product_name: String,
    /// First mail retry delay.
    pub mail_retry_base: Duration,
    /// Age at which a mail is given up.
    pub mail_max_age: Duration,
    /// Age at which a self-registered account that is still unverified is deleted.
    pub unverified_account_ttl: Duration,
    /// Key for keyed hashes, when given directly.
    pub secret_key: Option<Secret>,
    /// Key file otherwise.
    pub secret_key_file: std::path::PathBuf,
    /// Redis URL, if revocations are announced through it.
    pub redis_url: Option<Secret>,
    /// NATS URL, if events are published.
    pub nats_url: Option<Secret>,
    /// Event subject prefix.
    pub events_subject: String,
    /// Outbox retention.
    pub events_retention: Duration,
    /// Rate-limit budgets.
    pub rate_limits: Policies,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Longest a client may stall: sending request headers, or leaving an answer unread.
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive after its headers.
    pub body_timeout: Duration,
    /// Client connections served at once.
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
}

impl Settings {
    /// Validates the settings; the error is one line naming the setting.
    pub fn into_config(self) -> Result<Config, String> {
        let base_path = normalise_base_path(&self.base_path)?;
        let public_url = match self.public_url {
            Some(url) => {
                let url = url.trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err("LATCHKEY_PUBLIC_URL must start with http:// or https://".into());
                }
                url
            }
            None => format!("http://{}{base_path}", self.listen),
        };
        if self.jwt_alg.is_symmetric() {
            match &self.jwt_secret {
                None => {
                    return Err(format!(
                        "LATCHKEY_JWT_SECRET is required with LATCHKEY_JWT_ALG={}",
                        self.jwt_alg.as_str()
                    ));
                }
                Some(secret) if secret.expose().len() < 32 => {
                    return Err("LATCHKEY_JWT_SECRET must be at least 32 bytes".into());
                }
                Some(_) => {}
            }
        }
        if self.access_token_ttl < Duration::seconds(1) {
            return Err("LATCHKEY_ACCESS_TOKEN_TTL must be at least 1s".into());
        }
        if self.access_token_ttl > Duration::days(1) {
            return Err("LATCHKEY_ACCESS_TOKEN_TTL must be at most 24h: access tokens are meant to be short-lived".into());
        }
        if self.refresh_token_ttl > Duration::days(366) {
            return Err("LATCHKEY_REFRESH_TOKEN_TTL must be at most 366d".into());
        }
        if self.refresh_reuse_grace < Duration::ZERO
            || self.refresh_reuse_grace > Duration::minutes(5)
        {
            return Err("LATCHKEY_REFRESH_REUSE_GRACE must be between 0s and 5m".into());
        }
        if self.conceal_existing_accounts && !self.require_email_verification {
            return Err("LATCHKEY_CONCEAL_EXISTING_ACCOUNTS needs LATCHKEY_REQUIRE_EMAIL_VERIFICATION=true: \
                        without it a concealed registration could not behave like a real one"
                .into());
        }
        if self
            .secret_key
            .as_ref()
            .is_some_and(|key| key.expose().len() < 32)
        {
            return Err("LATCHKEY_SECRET_KEY must be at least 32 bytes".into());
        }
        let mail_from = self
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| {
                format!(
                    "LATCHKEY_MAIL_FROM {:?} is not a mail address: {e}",
                    self.mail_from
                )
            })?;
        if let Some(url) = &self.smtp_url {
            crate::mail::Transport::new(Some(url.expose()), None).map_err(|e| e.to_string())?;
        }
        if self.mail_retry_base < Duration::milliseconds(10)
            || self.mail_max_age < Duration::seconds(1)
            || self.unverified_account_ttl < Duration::seconds(1)
        {
            return Err("LATCHKEY_MAIL_RETRY_BASE must be at least 10ms, LATCHKEY_MAIL_MAX_AGE and LATCHKEY_UNVERIFIED_ACCOUNT_TTL at least 1s".into());
        }
        if self.header_timeout < Duration::milliseconds(100)
            || !(1..=1_000_000).contains(&self.max_connections)
        {
            return Err("LATCHKEY_HEADER_TIMEOUT must be at least 100ms and LATCHKEY_MAX_CONNECTIONS between 1 and 1000000".into());
        }
        if self.body_timeout < Duration::milliseconds(100) {
            return Err("LATCHKEY_BODY_TIMEOUT must be at least 100ms".into());
        }
        if let Some(metrics) = self.metrics_listen.0
            && metrics.port() != 0
            && metrics == self.listen
        {
            return Err("LATCHKEY_METRICS_LISTEN must differ from LATCHKEY_LISTEN: metrics are never served on the public listener".into());
        }
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
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| format!("LATCHKEY_LOG {:?} is not a valid filter: {e}", self.log))?;
        if !(password::MIN_LENGTH_FLOOR..=password::MAX_LENGTH).contains(&self.password_min_length)
        {
            return Err(format!(
                "LATCHKEY_PASSWORD_MIN_LENGTH must be between {} and {}",
                password::MIN_LENGTH_FLOOR,
                password::MAX_LENGTH
            ));
        }
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("LATCHKEY_ARGON2_* parameters are invalid: {e}"))?;
        let roles = Roles::new(&self.roles, &self.default_role, &self.admin_role).map_err(|e| {
            format!("LATCHKEY_ROLES/LATCHKEY_DEFAULT_ROLE/LATCHKEY_ADMIN_ROLE: {e}")
        })?;
        let workers = match self.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut rate_limits = Policies::default();
        if let Some(policy) = self.rate_limit_register_ip.0 {
            rate_limits.per_ip.insert(Action::Register, policy);
        }
        if let Some(policy) = self.rate_limit_register_account.0 {
            rate_limits.per_account.insert(Action::Register, policy);
        }
        if let Some(policy) = self.rate_limit_login_ip.0 {
            rate_limits.per_ip.insert(Action::Login, policy);
        }
        if let Some(policy) = self.rate_limit_login_account.0 {
            rate_limits.per_account.insert(Action::Login, policy);
        }
        if let Some(policy) = self.rate_limit_refresh_ip.0 {
            rate_limits.per_ip.insert(Action::Refresh, policy);
        }
        if let Some(policy) = self.rate_limit_resend_ip.0 {
            rate_limits.per_ip.insert(Action::Resend, policy);
        }
        if let Some(policy) = self.rate_limit_resend_account.0 {
            rate_limits.per_account.insert(Action::Resend, policy);
        }
        if let Some(policy) = self.rate_limit_forgot_ip.0 {
            rate_limits.per_ip.insert(Action::Forgot, policy);
        }
        if let Some(policy) = self.rate_limit_forgot_account.0 {
            rate_limits.per_account.insert(Action::Forgot, policy);
        }
        if let Some(policy) = self.rate_limit_reset_ip.0 {
            rate_limits.per_ip.insert(Action::Reset, policy);
        }
        if let Some(policy) = self.rate_limit_reset_account.0 {
            rate_limits.per_account.insert(Action::Reset, policy);
        }
        if let Some(policy) = self.rate_limit_reset_code_ip.0 {
            rate_limits.per_ip.insert(Action::ResetCode, policy);
        }
        if let Some(policy) = self.rate_limit_confirm_ip.0 {
            rate_limits.per_ip.insert(Action::Confirm, policy);
        }
        Ok(Config {
            listen: self.listen,
            metrics_listen: self.metrics_listen.0,
            database_url: self.database_url,
            jwt_issuer: self.jwt_issuer.unwrap_or_else(|| public_url.clone()),
            public_url,
            base_path,
            jwt_alg: self.jwt_alg,
            jwt_secret: self.jwt_secret,
            jwt_audience: self.jwt_audience.filter(|a| !a.is_empty()),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            refresh_reuse_grace: self.refresh_reuse_grace,
            trusted_proxies: self.trusted_proxies,
            require_email_verification: self.require_email_verification,
            password_policy: PasswordPolicy {
                min_length: self.password_min_length,
            },
            hashing: HashingConfig {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
                workers,
                queue: self.hash_queue,
            },
            roles,
            conceal_existing_accounts: self.conceal_existing_accounts,
            smtp_url: self.smtp_url,
            mail_dir: self.mail_dir,
            mail_from,
            product_name: self.product_name,
            mail_retry_base: self.mail_retry_base,
            mail_max_age: self.mail_max_age,
            unverified_account_ttl: self.unverified_account_ttl,
            secret_key: self.secret_key,
            secret_key_file: self.secret_key_file,
            redis_url: self.redis_url,
            nats_url: self.nats_url,
            events_subject: self.events_subject,
            events_retention: self.events_retention,
            rate_limits,
            request_timeout: self.request_timeout,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
            log_format: self.log_format,
            log: self.log,
        })
    }
}

/// An IP network, e.g. `10.0.0.0/8` or `::1/128` (a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address[/prefix]`.
    pub fn parse(raw: &str) -> Result<Cidr, String> {
        let raw = raw.trim();
        let (address, prefix) = raw
            .split_once('/')
            .map_or((raw, None), |(a, p)| (a, Some(p)));
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP network like 10.0.0.0/8"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?} has an invalid prefix length"))?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Trims a trailing slash; refuses anything but `/segment[/segment…]` of URL-safe characters.
pub fn normalise_base_path(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(format!("LATCHKEY_BASE_PATH {raw:?} must look like /api"))
    }
}

/// Parses `900ms`, `10s`, `15m`, `24h`, `30d`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let amount: i64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 900ms, 10s, 15m, 24h or 30d"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::milliseconds(amount)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{raw:?} has an unknown unit (use ms, s, m, h or d)"
            ));
        }
    };
    let duration = amount
        .checked_mul(seconds_per_unit)
        .map(Duration::seconds)
        .ok_or_else(|| format!("{raw:?} is too long"))?;
    Ok(duration)
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
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("200000000000000000d").is_err());
    }

    #[test]
    fn base_paths_are_normalised_or_refused() {
        assert_eq!(normalise_base_path("").unwrap(), "");
        assert_eq!(normalise_base_path("/api/").unwrap(), "/api");
        assert!(normalise_base_path("api").is_err());
        assert!(normalise_base_path("/a b").is_err());
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains("10.1.2.3".parse().unwrap()));
        assert!(!private.contains("11.0.0.1".parse().unwrap()));
        assert!(private.contains("::ffff:10.0.0.1".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains("::1".parse().unwrap()) && !host.contains("::2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("ten").is_err());
    }

    #[test]
    fn an_optional_address_is_an_address_or_off() {
        assert_eq!(
            OptionalAddress::parse("127.0.0.1:9464").unwrap(),
            OptionalAddress(Some("127.0.0.1:9464".parse().unwrap()))
        );
        assert_eq!(
            OptionalAddress::parse("off").unwrap(),
            OptionalAddress(None)
        );
        assert!(OptionalAddress::parse("9464").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "[redacted]");
    }
}
