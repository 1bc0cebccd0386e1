//! The token settings: how access tokens are signed and how long tokens live.

use super::{Secret, parse_duration};
use crate::crypto::JwtAlg;
use time::Duration;

/// `LATCHKEY_JWT_*`, `LATCHKEY_*_TOKEN_TTL`, `LATCHKEY_REFRESH_REUSE_GRACE`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Tokens")]
pub struct TokenArgs {
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
    /// Also set the refresh token as an `HttpOnly; Secure; SameSite=Strict` cookie on `/auth`,
    /// which `/auth/refresh` and `/auth/logout` then accept instead of a body (CSRF-checked).
    #[arg(long, env = "LATCHKEY_REFRESH_COOKIE", default_value_t = false, action = clap::ArgAction::Set)]
    pub refresh_cookie: bool,
    /// Memory for access tokens already verified, in MiB: a gateway in front of many users
    /// checks each of their tokens' signatures once while they fit (about 1,200 tokens a MiB).
    #[arg(long, env = "LATCHKEY_VERIFY_CACHE_MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub verify_cache_mb: u64,
}

/// The validated token settings.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// JWT algorithm.
    pub alg: JwtAlg,
    /// Shared secret for HS algorithms.
    pub secret: Option<Secret>,
    /// JWT issuer.
    pub issuer: String,
    /// JWT audience.
    pub audience: Option<String>,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Grace window for repeated refreshes.
    pub reuse_grace: Duration,
    /// Whether refresh tokens also travel in a cookie.
    pub refresh_cookie: bool,
    /// The verified-token cache's budget, bytes.
    pub verify_cache_bytes: u64,
}

impl TokenArgs {
    /// Checks the secret an HS algorithm needs and the lifetimes; the issuer defaults to
    /// `public_url`.
    pub fn validate(self, public_url: &str) -> Result<TokenConfig, String> {
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
        Ok(TokenConfig {
            alg: self.jwt_alg,
            secret: self.jwt_secret,
            issuer: self.jwt_issuer.unwrap_or_else(|| public_url.to_owned()),
            audience: self.jwt_audience.filter(|a| !a.is_empty()),
            access_ttl: self.access_token_ttl,
            refresh_ttl: self.refresh_token_ttl,
            reuse_grace: self.refresh_reuse_grace,
            refresh_cookie: self.refresh_cookie,
            verify_cache_bytes: self.verify_cache_mb << 20,
        })
    }
}
