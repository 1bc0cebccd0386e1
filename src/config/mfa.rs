//! The second-factor settings: how long a half-finished login lives, what "recent" means, which
//! roles must use a second factor, and the WebAuthn relying party.

use super::parse_duration;
use crate::domain::{Role, Roles};
use time::Duration;

/// `LATCHKEY_MFA_TOKEN_TTL`, `LATCHKEY_REAUTH_MAX_AGE`, `LATCHKEY_REQUIRE_MFA_ROLES`,
/// `LATCHKEY_WEBAUTHN_RP_ID`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Second factors and passkeys")]
pub struct MfaArgs {
    /// How long the `mfa_token` of a login waiting for its second factor lives.
    #[arg(long, env = "LATCHKEY_MFA_TOKEN_TTL", default_value = "5m", value_parser = parse_duration)]
    pub mfa_token_ttl: Duration,
    /// Enrolling or removing a factor needs an authentication at most this old.
    #[arg(long, env = "LATCHKEY_REAUTH_MAX_AGE", default_value = "10m", value_parser = parse_duration)]
    pub reauth_max_age: Duration,
    /// Roles whose tokens need a second factor (`aal2`) everywhere but enrolment, comma-separated.
    #[arg(
        long,
        env = "LATCHKEY_REQUIRE_MFA_ROLES",
        default_value = "",
        value_delimiter = ','
    )]
    pub require_mfa_roles: Vec<String>,
    /// WebAuthn relying-party id [default: the host of the public URL].
    #[arg(long, env = "LATCHKEY_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,
}

/// The validated second-factor settings.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// Lifetime of an `mfa_token`.
    pub token_ttl: Duration,
    /// The most age of a "recent" authentication.
    pub reauth_max_age: Duration,
    /// Roles that need `aal2`.
    pub required_for: Vec<Role>,
    /// The WebAuthn relying-party id.
    pub rp_id: String,
}

impl MfaArgs {
    /// Checks the durations and the roles; the relying party defaults to the public URL's host.
    pub fn validate(self, roles: &Roles, public_url: &str) -> Result<MfaConfig, String> {
        if !(Duration::seconds(30)..=Duration::minutes(30)).contains(&self.mfa_token_ttl) {
            return Err("LATCHKEY_MFA_TOKEN_TTL must be between 30s and 30m".into());
        }
        if !(Duration::seconds(30)..=Duration::days(1)).contains(&self.reauth_max_age) {
            return Err("LATCHKEY_REAUTH_MAX_AGE must be between 30s and 24h".into());
        }
        let mut required_for = Vec::new();
        for name in self.require_mfa_roles.iter().map(|r| r.trim()) {
            if name.is_empty() {
                continue;
            }
            let role = roles.parse(name).map_err(|_| {
                format!("LATCHKEY_REQUIRE_MFA_ROLES: {name:?} is not one of LATCHKEY_ROLES")
            })?;
            required_for.push(role);
        }
        let rp_id = match self.webauthn_rp_id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_ascii_lowercase(),
            None => url_host(public_url).ok_or_else(|| {
                "LATCHKEY_WEBAUTHN_RP_ID: the public URL names no host to default to".to_owned()
            })?,
        };
        Ok(MfaConfig {
            token_ttl: self.mfa_token_ttl,
            reauth_max_age: self.reauth_max_age,
            required_for,
            rp_id,
        })
    }
}

/// The host of an absolute URL, without port or brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn the_relying_party_defaults_to_the_bare_host() {
        assert_eq!(
            url_host("https://id.example.com/api").as_deref(),
            Some("id.example.com")
        );
        assert_eq!(
            url_host("http://localhost:8080").as_deref(),
            Some("localhost")
        );
        assert_eq!(url_host("http://[::1]:80/x").as_deref(), Some("::1"));
        assert_eq!(url_host("nonsense"), None);
    }
}
