//! OAuth 2.1 / OpenID Connect clients (relying parties) and the rules for what they register:
//! redirect URIs matched exactly (no wildcards, no fragments), and scopes of RFC 6749's
//! grammar.

use super::ValidationErrors;
use time::OffsetDateTime;

/// The scopes every provider of OpenID Connect knows.
pub const STANDARD_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// At most this many redirect URIs (and as many post-logout ones) per client.
const MAX_URIS: usize = 20;
/// At most this many scopes per client.
const MAX_SCOPES: usize = 50;
/// The longest URI or scope accepted.
const MAX_URI_LEN: usize = 2000;
const MAX_SCOPE_LEN: usize = 100;
const MAX_NAME_LEN: usize = 100;

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The public identifier.
    pub client_id: String,
    /// What the consent page calls it.
    pub name: String,
    /// Whether it has a secret (a server-side app); a public client has only PKCE.
    pub confidential: bool,
    /// Where codes may be sent, compared exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to, compared exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for.
    pub scopes: Vec<String>,
    /// An app of the platform's own: no consent page.
    pub first_party: bool,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What a user allowed a client: asked once per client and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The client.
    pub client_id: String,
    /// Its name, as the consent page showed it.
    pub client_name: String,
    /// The scopes allowed.
    pub scopes: Vec<String>,
    /// When it was first given.
    pub created_at: OffsetDateTime,
    /// When it last grew.
    pub updated_at: OffsetDateTime,
}

/// What a client registration or change sets; `None` keeps (or, on creation, defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChange {
    /// The name.
    pub name: Option<String>,
    /// The redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// The post-logout redirect URIs.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// The scopes.
    pub scopes: Option<Vec<String>>,
    /// The first-party flag.
    pub first_party: Option<bool>,
}

impl ClientChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ClientChange::default()
    }
}

/// A client's name: 1 to 100 characters, no control characters, trimmed.
pub fn parse_client_name(raw: &str) -> Result<String, ValidationErrors> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationErrors::one("name", "must be 1 to 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationErrors::one(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// A list of redirect URIs for `field`: each absolute, without a fragment or a wildcard, and
/// either `https`, `http` on a loopback address (native apps, RFC 8252 §7.3), or a private-use
/// scheme with a dot in it (`com.example.app:/callback`, RFC 8252 §7.1). Kept as given: they
/// are compared exactly.
pub fn parse_redirect_uris(
    field: &str,
    raw: Vec<String>,
    required: bool,
) -> Result<Vec<String>, ValidationErrors> {
    if required && raw.is_empty() {
        return Err(ValidationErrors::one(field, "must name at least one URI"));
    }
    if raw.len() > MAX_URIS {
        return Err(ValidationErrors::one(field, "must name at most 20 URIs"));
    }
    let mut uris: Vec<String> = Vec::with_capacity(raw.len());
    for uri in raw {
        if let Err(reason) = check_redirect_uri(&uri) {
            return Err(ValidationErrors::one(field, reason));
        }
        if !uris.contains(&uri) {
            uris.push(uri);
        }
    }
    Ok(uris)
}

fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_LEN {
        return Err("a URI must be at most 2000 characters".into());
    }
    if uri.contains('*') {
        return Err(format!(
            "{uri:?}: wildcards are not allowed (URIs match exactly)"
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URI"))?;
    // The parser normalises; a URI that is not already in its normal form would never match
    // what a client sends byte for byte, so it is refused rather than silently rewritten.
    if parsed.as_str() != uri && parsed.as_str() != format!("{uri}/") {
        return Err(format!(
            "{uri:?} is not in normal form (try {:?})",
            parsed.as_str()
        ));
    }
    if parsed.fragment().is_some() {
        return Err(format!("{uri:?}: a redirect URI has no fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{uri:?}: a redirect URI has no user information"));
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" | "https" => Err(format!(
            "{uri:?}: plain http is only for loopback addresses (127.0.0.1, [::1], localhost)"
        )),
        // Schemes that run code or carry data in the browser are never a place to send a code.
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
            Err(format!("{uri:?}: this scheme cannot receive a code"))
        }
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "{uri:?}: use https, http on loopback, or a reverse-DNS private-use scheme (com.example.app:/cb)"
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

/// Whether `scope` is one scope token of RFC 6749 §3.3 (at most 100 characters).
pub fn is_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A client's scopes: each of RFC 6749's `scope-token` grammar (printable ASCII but space, `"`
/// and `\`), at most 100 characters, at most 50, duplicates dropped. `openid` is always
/// among them: every client of this provider is an OpenID Connect relying party.
pub fn parse_scopes(raw: Vec<String>) -> Result<Vec<String>, ValidationErrors> {
    if raw.len() > MAX_SCOPES {
        return Err(ValidationErrors::one(
            "scopes",
            "must name at most 50 scopes",
        ));
    }
    let mut scopes = vec!["openid".to_owned()];
    for scope in raw {
        if !is_scope(&scope) {
            return Err(ValidationErrors::one(
                "scopes",
                format!(
                    "{scope:?} is not a scope (1 to 100 printable characters, no space, quote or backslash)"
                ),
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Result<Vec<String>, ValidationErrors> {
        parse_redirect_uris(
            "redirect_uris",
            list.iter().map(|u| (*u).to_owned()).collect(),
            true,
        )
    }

    #[test]
    fn redirect_uris_are_exact_https_loopback_or_private_use() {
        for good in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?tenant=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(uris(&[good]).is_ok(), "{good}");
        }
        for bad in [
            "https://*.example.com/cb",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "http://10.0.0.1/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/relative/cb",
            "https://user:pw@app.example.com/cb",
            "HTTPS://APP.example.com/cb",
            "myapp:/cb",
        ] {
            assert!(uris(&[bad]).is_err(), "{bad}");
        }
        assert!(uris(&[]).is_err());
    }

    #[test]
    fn scopes_follow_rfc_6749_and_always_include_openid() {
        assert_eq!(
            parse_scopes(vec!["email".into(), "email".into(), "orders:read".into()]).unwrap(),
            ["openid", "email", "orders:read"]
        );
        for bad in ["", "two words", "quo\"te", "back\\slash", "ümlaut"] {
            assert!(parse_scopes(vec![bad.into()]).is_err(), "{bad:?}");
        }
    }
}
