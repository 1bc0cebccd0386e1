//! The OAuth / OpenID Connect provider's settings.

/// `LATCHKEY_OAUTH_DYNAMIC_REGISTRATION`, `LATCHKEY_OAUTH_RESOURCES`.
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
    /// The resource servers clients may ask tokens for (RFC 8707 `resource`), comma-separated
    /// absolute URIs; a token for one has it as `aud`, and is accepted where the configured
    /// audience is [default: any absolute URI, unless LATCHKEY_JWT_AUDIENCE is set].
    #[arg(
        long,
        env = "LATCHKEY_OAUTH_RESOURCES",
        default_value = "",
        value_delimiter = ','
    )]
    pub oauth_resources: Vec<String>,
}

/// The validated provider settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Whether `/oauth/register` is open.
    pub dynamic_registration: bool,
    /// The allowed resource indicators (empty: see `OAuthArgs::oauth_resources`).
    pub resources: Vec<String>,
}

impl OAuthArgs {
    /// Each resource must be an absolute URI without a fragment.
    pub fn validate(self) -> Result<OAuthConfig, String> {
        let resources: Vec<String> = self
            .oauth_resources
            .into_iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        if let Some(bad) = resources.iter().find(|r| !is_resource_uri(r)) {
            return Err(format!(
                "LATCHKEY_OAUTH_RESOURCES: {bad} is not an absolute URI without a fragment"
            ));
        }
        Ok(OAuthConfig {
            dynamic_registration: self.oauth_dynamic_registration,
            resources,
        })
    }
}

/// Whether `raw` can name a resource server (RFC 8707 §2): absolute, no fragment.
pub fn is_resource_uri(raw: &str) -> bool {
    raw.len() <= 2000 && url::Url::parse(raw).is_ok_and(|url| url.fragment().is_none())
}
