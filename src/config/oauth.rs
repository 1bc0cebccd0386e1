//! The OAuth / OpenID Connect provider's settings.

/// `LATCHKEY_OAUTH_DYNAMIC_REGISTRATION`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "OAuth / OpenID Connect provider")]
pub struct OAuthArgs {
    /// Lets anyone register a (third-party, never first-party) client at `/oauth/register`
    /// (RFC 7591 dynamic client registration).
    #[arg(
        long,
        env = "LATCHKEY_OAUTH_DYNAMIC_REGISTRATION",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub oauth_dynamic_registration: bool,
}

/// The validated provider settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Whether `/oauth/register` is open.
    pub dynamic_registration: bool,
}

impl OAuthArgs {
    /// Nothing to check yet.
    pub fn validate(self) -> OAuthConfig {
        OAuthConfig {
            dynamic_registration: self.oauth_dynamic_registration,
        }
    }
}
