//! The OAuth 2.1 / OpenID Connect provider: the authorization request, consent, codes
//! ([`authorize`]-side, here) and the token endpoint ([`token`]).

pub mod consents;
pub mod grants;
pub mod token;

use super::{Fault, Principal};
use crate::crypto::random;
use crate::domain::{Acr, Event, OAuthClient};
use crate::state::AppState;
use crate::store::NewCode;
use time::Duration;

/// How long a code lives.
pub const CODE_TTL: Duration = Duration::seconds(60);

/// An authorization request, checked: safe to answer at its redirect URI.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The client.
    pub client: OAuthClient,
    /// Where the answer goes (one of the client's, exactly).
    pub redirect_uri: String,
    /// The client's `state`, returned as is.
    pub state: Option<String>,
    /// The scopes asked for, each allowed to the client.
    pub scopes: Vec<String>,
    /// The relying party's `nonce`.
    pub nonce: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// `prompt=none`: no page may be shown.
    pub prompt_none: bool,
    /// `prompt=login`: the user signs in again.
    pub prompt_login: bool,
    /// `prompt=consent`: consent is asked again.
    pub prompt_consent: bool,
    /// The longest time since the user's authentication, in seconds.
    pub max_age: Option<i64>,
    /// `acr_values` names `aal2`: a second factor is needed.
    pub wants_aal2: bool,
    /// The address to prefill.
    pub login_hint: Option<String>,
    /// The resource indicator (RFC 8707).
    pub resource: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// No client, or a redirect URI that is not one of its: never redirect (that would be an
    /// open redirect); the user sees a page.
    #[error("{0}")]
    NotRedirectable(&'static str),
    /// Told to the client at its redirect URI (RFC 6749 §4.1.2.1).
    #[error("{error}: {description}")]
    Redirect {
        /// Where.
        redirect_uri: String,
        /// Its `state`.
        state: Option<String>,
        /// The RFC 6749 / OIDC error code.
        error: &'static str,
        /// Why, for the developer.
        description: String,
    },
    /// The machinery failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<crate::store::StoreError> for AuthorizeError {
    fn from(error: crate::store::StoreError) -> AuthorizeError {
        AuthorizeError::Fault(error.into())
    }
}

/// What the browser sees next.
#[derive(Debug)]
pub enum Step {
    /// The sign-in page.
    Login,
    /// The consent page, for these scopes.
    Consent(Vec<String>),
    /// Back to the client, with a code.
    Redirect(String),
}

/// Checks the parameters of `GET /oauth/authorize` (each at most once).
pub async fn parse_request(
    app: &AppState,
    params: &[(String, String)],
) -> Result<AuthorizeRequest, AuthorizeError> {
    let mut seen = std::collections::HashSet::new();
    let duplicate = params
        .iter()
        .find(|(key, _)| !seen.insert(key.as_str()))
        .map(|(key, _)| key.clone());
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let client_id = get("client_id").ok_or(AuthorizeError::NotRedirectable(
        "The request names no client.",
    ))?;
    let client = app
        .store
        .oauth_client(client_id)
        .await?
        .ok_or(AuthorizeError::NotRedirectable("The client is unknown."))?;
    // Required (OpenID Connect), so the token request can always name the same one.
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if client.redirect_uris.iter().any(|known| known == uri) => uri.to_owned(),
        _ => {
            return Err(AuthorizeError::NotRedirectable(
                "The redirect URI is not one the client registered.",
            ));
        }
    };
    let state = get("state").map(str::to_owned);
    let refuse = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if let Some(key) = duplicate {
        return Err(refuse(
            "invalid_request",
            &format!("{key} is given more than once"),
        ));
    }
    if get("response_type") != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if get("request").is_some() || get("request_uri").is_some() {
        return Err(AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error: "request_not_supported",
            description: "request objects are not supported".into(),
        });
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) && challenge.len() == 43 => {
            challenge.to_owned()
        }
        (Some(_), Some("S256")) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge must be the base64url SHA-256 of the verifier",
            ));
        }
        _ => {
            return Err(refuse(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
    };
    let scopes: Vec<String> = get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(refuse("invalid_scope", "scope is required"));
    }
    if let Some(unknown) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return Err(refuse(
            "invalid_scope",
            &format!("{unknown} is not a scope of this client"),
        ));
    }
    let prompts: Vec<&str> = get("prompt").unwrap_or_default().split(' ').collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(refuse(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|age| *age >= 0)
                .ok_or_else(|| refuse("invalid_request", "max_age must be whole seconds"))?,
        ),
    };
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512)
        || state.as_ref().is_some_and(|s| s.len() > 2048)
    {
        return Err(refuse("invalid_request", "nonce or state is too long"));
    }
    let resource =
        resource_audience(app, get("resource")).map_err(|why| refuse("invalid_target", why))?;
    Ok(AuthorizeRequest {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        scopes,
        nonce,
        code_challenge,
        prompt_none,
        prompt_login: prompts.contains(&"login"),
        prompt_consent: prompts.contains(&"consent"),
        max_age,
        wants_aal2: get("acr_values").is_some_and(|v| v.split(' ').any(|a| a == "aal2")),
        login_hint: get("login_hint")
            .filter(|hint| hint.len() <= 320)
            .map(str::to_owned),
        resource,
        client,
    })
}

/// The audience a `resource` indicator (RFC 8707) gives a token: one of
/// `LATCHKEY_OAUTH_RESOURCES` or the configured audience when either is set (a token for any
/// other would be refused where it is presented), else any absolute URI without a fragment.
pub(crate) fn resource_audience(
    app: &AppState,
    resource: Option<&str>,
) -> Result<Option<String>, &'static str> {
    let Some(raw) = resource else {
        return Ok(None);
    };
    let settings = app.tokens.settings();
    let mut allowed = settings
        .resources
        .iter()
        .chain(&settings.audience)
        .peekable();
    let known = match allowed.peek() {
        Some(_) => allowed.any(|r| r == raw),
        None => crate::config::is_resource_uri(raw),
    };
    match known {
        true => Ok(Some(raw.to_owned())),
        false => Err("resource is not a resource server tokens are issued for"),
    }
}

/// The unreserved characters of RFC 7636 (verifiers and S256 challenges).
pub(crate) fn is_pkce_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What comes next for `request`, given who the browser is signed in as (`signed_in`) and
/// whether that sign-in happened in this very flow (`just_signed_in`: `prompt=login` and
/// `max_age` are then met).
pub async fn next_step(
    app: &AppState,
    request: &AuthorizeRequest,
    signed_in: Option<&Principal>,
    just_signed_in: bool,
) -> Result<Step, AuthorizeError> {
    let now = app.clock.now().unix_timestamp();
    let principal = signed_in.filter(|principal| {
        let claims = &principal.claims;
        let auth_time = claims.auth_time.unwrap_or_default();
        let fresh_enough = request.max_age.is_none_or(|age| now - auth_time <= age);
        just_signed_in || (!request.prompt_login && fresh_enough)
    });
    let Some(principal) = principal else {
        if request.prompt_none {
            return Err(redirect_error(
                request,
                "login_required",
                "the user is not signed in",
            ));
        }
        return Ok(Step::Login);
    };
    let acr = principal.claims.acr.as_deref().and_then(Acr::parse);
    if request.wants_aal2 && acr != Some(Acr::Aal2) {
        if just_signed_in || request.prompt_none {
            return Err(redirect_error(
                request,
                "unmet_authentication_requirements",
                "a second factor is needed and the user has none",
            ));
        }
        return Ok(Step::Login);
    }
    if !request.client.first_party {
        let granted = app
            .store
            .consented_scopes(principal.user_id, &request.client.client_id)
            .await?;
        let missing: Vec<String> = request
            .scopes
            .iter()
            .filter(|scope| !granted.contains(scope))
            .cloned()
            .collect();
        if request.prompt_consent || !missing.is_empty() {
            if request.prompt_none {
                return Err(redirect_error(
                    request,
                    "consent_required",
                    "consent is needed",
                ));
            }
            return Ok(Step::Consent(request.scopes.clone()));
        }
    }
    Ok(Step::Redirect(issue_code(app, request, principal).await?))
}

/// Records the user's consent to `request`'s scopes (with what they allowed before), then
/// sends the browser back with a code.
pub async fn approve(
    app: &AppState,
    request: &AuthorizeRequest,
    principal: &Principal,
) -> Result<String, AuthorizeError> {
    // The form carries the request back: what it demands of the sign-in is checked again.
    let claims = &principal.claims;
    let age = app.clock.now().unix_timestamp() - claims.auth_time.unwrap_or_default();
    let acr = claims.acr.as_deref().and_then(Acr::parse);
    if request.max_age.is_some_and(|max| age > max)
        || (request.wants_aal2 && acr != Some(Acr::Aal2))
    {
        return Err(redirect_error(
            request,
            "login_required",
            "the sign-in is older or weaker than the request demands",
        ));
    }
    let client_id = &request.client.client_id;
    let mut scopes = app
        .store
        .consented_scopes(principal.user_id, client_id)
        .await?;
    for scope in &request.scopes {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    let now = app.clock.now();
    let event = Event::oauth_consent_granted(principal.user_id, client_id, &request.scopes, now);
    app.store
        .grant_consent(principal.user_id, client_id, &scopes, &event, now)
        .await?;
    Ok(issue_code(app, request, principal).await?)
}

/// The redirect of a user who declined.
pub fn deny(request: &AuthorizeRequest) -> AuthorizeError {
    redirect_error(request, "access_denied", "the user declined")
}

async fn issue_code(
    app: &AppState,
    request: &AuthorizeRequest,
    principal: &Principal,
) -> Result<String, Fault> {
    let code = random::token();
    let now = app.clock.now();
    let assurance = app
        .store
        .session_assurance(principal.user_id, principal.session_id)
        .await?
        .ok_or_else(|| Fault::Internal(anyhow::anyhow!("the signed-in session is gone")))?;
    let new = NewCode {
        code_hash: random::token_hash(&code),
        client_id: request.client.client_id.clone(),
        user_id: principal.user_id,
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        scope: request.scopes.join(" "),
        nonce: request.nonce.clone(),
        resource: request.resource.clone(),
        assurance,
        created_at: now,
        expires_at: now + CODE_TTL,
    };
    app.store.insert_oauth_code(&new).await?;
    Ok(with_query(
        &request.redirect_uri,
        &[
            ("code", Some(code.as_str())),
            ("state", request.state.as_deref()),
            ("iss", Some(app.tokens.settings().issuer.as_str())),
        ],
    ))
}

fn redirect_error(
    request: &AuthorizeRequest,
    error: &'static str,
    description: &str,
) -> AuthorizeError {
    AuthorizeError::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        error,
        description: description.to_owned(),
    }
}

/// `uri` with `pairs` (those present) added to its query.
pub fn with_query(uri: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        if let Some(value) = value {
            encoded.append_pair(key, value);
        }
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{}", encoded.finish())
}
