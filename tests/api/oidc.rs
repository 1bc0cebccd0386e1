//! The OpenID Connect provider, driven by a relying-party library nobody here wrote (the
//! `openidconnect` crate): discovery, PKCE, the code, ID-token verification, userinfo, refresh.
//! The browser's part (sign-in, second factor, consent) is played with plain requests that
//! carry the cookie and the `Origin` a browser would.

use crate::mfa::{totp_code, user_with_totp};
use crate::support::{PASSWORD, TestApp, spawn_app_with};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The HTTP client the relying party uses: reqwest, no redirects followed.
async fn send(
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = request.into_parts();
    let mut outgoing = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder
        .body(response.bytes().await?.to_vec())
        .expect("response"))
}

async fn provider() -> TestApp {
    spawn_app_with(&["--public-url", "http://127.0.0.1:{port}"]).await
}

/// Registers a client: (client_id, secret).
async fn client(app: &TestApp, confidential: bool, first_party: bool) -> (String, Option<String>) {
    let admin = app.admin_token().await;
    let created = app
        .send(
            Method::POST,
            "/oauth/clients",
            &admin,
            &json!({
                "name": "Dashboard",
                "confidential": confidential,
                "first_party": first_party,
                "redirect_uris": [REDIRECT],
                "scopes": ["openid", "profile", "email", "offline_access"],
            }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().map(str::to_owned),
    )
}

/// A client configured from discovery.
type RelyingParty = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn relying_party(app: &TestApp, id: &str, secret: Option<String>) -> RelyingParty {
    let issuer = IssuerUrl::new(app.url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &send)
        .await
        .expect("discovery accepted as is");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.to_owned()),
        secret.map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
}

/// A browser: no redirects followed, the provider's cookie kept.
struct Browser {
    client: reqwest::Client,
    cookie: Option<String>,
    origin: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let origin = url::Url::parse(&app.url)
            .unwrap()
            .origin()
            .ascii_serialization();
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            origin,
        }
    }

    async fn open(&mut self, url: &str) -> reqwest::Response {
        let mut request = self.client.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.keep(request.send().await.unwrap())
    }

    async fn post(&mut self, app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/oauth/authorize", app.url))
            .header("origin", &self.origin)
            .form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.keep(request.send().await.unwrap())
    }

    fn keep(&mut self, response: reqwest::Response) -> reqwest::Response {
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"),
                "{set}"
            );
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        response
    }
}

/// The value of hidden field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let value = &html[start..start + html[start..].find('"').unwrap()];
    value
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The query of a redirect to the client.
fn redirected(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Signs in through the login page and consents: the code and the state.
async fn sign_in_and_consent(
    app: &TestApp,
    browser: &mut Browser,
    url: &str,
    email: &str,
) -> (String, String) {
    let page = browser.open(url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let request = field(&html, "request");
    let consent = browser
        .post(
            app,
            &[
                ("request", &request),
                ("step", "login"),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.unwrap();
    assert!(html.contains("Allow Dashboard?"), "{html}");
    let csrf = field(&html, "csrf");
    let back = browser
        .post(
            app,
            &[("request", &request), ("step", "consent"), ("csrf", &csrf)],
        )
        .await;
    let pairs = redirected(&back);
    assert_eq!(param(&pairs, "iss"), Some(app.url.as_str()), "RFC 9207");
    (
        param(&pairs, "code").unwrap().to_owned(),
        param(&pairs, "state").unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_relying_party_library_signs_a_user_in_verifies_the_id_token_and_refreshes() {
    let app = provider().await;
    let user_id = app.create_verified_user("ada@example.com", PASSWORD).await;
    let (id, secret) = client(&app, true, false).await;
    let rp = relying_party(&app, &id, secret).await;

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&app);
    let (code, returned_state) =
        sign_in_and_consent(&app, &mut browser, url.as_str(), "ada@example.com").await;
    assert_eq!(&returned_state, state.secret());

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .expect("code exchanged");
    let id_token = tokens.id_token().expect("an ID token for openid");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verified");
    assert_eq!(claims.subject().as_str(), user_id.to_string());
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    assert_eq!(
        claims.auth_context_ref().map(|acr| acr.as_str()),
        Some("aal1")
    );
    assert!(claims.auth_time().is_some());
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            id_token.to_string().split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");

    // The access token is one /auth/verify accepts, naming the client and its scope; latchkey's
    // own API refuses it: the client was not given the account.
    let access = tokens.access_token().secret().clone();
    let verified = app.get("/auth/verify", Some(&access)).await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert_eq!(verified.headers()["x-user-client-id"], id.as_str());
    assert!(
        verified.headers()["x-user-scope"]
            .to_str()
            .unwrap()
            .contains("offline_access")
    );
    assert_eq!(
        app.get("/users/me", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&send)
        .await
        .expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("ada@example.com"));

    // Refresh rotates; the old token again, past the grace window, revokes the grant.
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives one")
        .clone();
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&send)
        .await
        .expect("refreshed");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret()
    );
    app.state.clock.advance(time::Duration::seconds(61));
    assert!(
        rp.exchange_refresh_token(&refresh)
            .unwrap()
            .request_async(&send)
            .await
            .is_err()
    );
    let next = refreshed.refresh_token().unwrap();
    assert!(
        rp.exchange_refresh_token(next)
            .unwrap()
            .request_async(&send)
            .await
            .is_err(),
        "the reuse revoked the grant"
    );
    let events = app.events_of_type("OAUTH_TOKEN_ISSUED").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["client_id"], id.as_str());
    assert_eq!(app.events_of_type("OAUTH_CONSENT_GRANTED").await.len(), 1);

    // Consent is remembered: the next authorization goes straight back with a code.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let again = browser.open(url.as_str()).await;
    assert!(param(&redirected(&again), "code").is_some());
}

#[tokio::test]
async fn a_code_works_once_for_its_client_redirect_and_verifier_and_a_replay_revokes() {
    let app = provider().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let (id, secret) = client(&app, true, false).await;
    let (other_id, other_secret) = client(&app, true, false).await;
    let rp = relying_party(&app, &id, secret.clone()).await;
    let other = relying_party(&app, &other_id, other_secret).await;
    let mut browser = Browser::new(&app);
    let code_for = async |browser: &mut Browser| {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _, _) = rp
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let response = browser.open(url.as_str()).await;
        let code = if response.status() == StatusCode::SEE_OTHER {
            param(&redirected(&response), "code").unwrap().to_owned()
        } else {
            sign_in_and_consent(&app, browser, url.as_str(), "ada@example.com")
                .await
                .0
        };
        (code, verifier)
    };
    let exchange = async |client: &RelyingParty, code: &str, verifier: &str| {
        client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .unwrap()
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&send)
            .await
    };

    // A wrong verifier fails, and spends the code.
    let (code, verifier) = code_for(&mut browser).await;
    let wrong = PkceCodeChallenge::new_random_sha256().1;
    assert!(exchange(&rp, &code, wrong.secret()).await.is_err());
    assert!(
        exchange(&rp, &code, verifier.secret()).await.is_err(),
        "spent"
    );

    // Another client cannot use it.
    let (code, verifier) = code_for(&mut browser).await;
    assert!(exchange(&other, &code, verifier.secret()).await.is_err());

    // A replay fails and revokes what the first exchange issued.
    let (code, verifier) = code_for(&mut browser).await;
    let tokens = exchange(&rp, &code, verifier.secret())
        .await
        .expect("first exchange");
    let access = tokens.access_token().secret().clone();
    assert_eq!(
        app.get("/oauth/userinfo", Some(&access)).await.status(),
        StatusCode::OK
    );
    assert!(exchange(&rp, &code, verifier.secret()).await.is_err());
    assert_eq!(
        app.get("/oauth/userinfo", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A redirect URI other than the code's is refused, with an RFC 6749 body.
    let (code, verifier) = code_for(&mut browser).await;
    let refused = app
        .client
        .post(format!("{}/oauth/token", app.url))
        .basic_auth(&id, secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", verifier.secret().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // A wrong secret is invalid_client with a Basic challenge.
    let refused = app
        .client
        .post(format!("{}/oauth/token", app.url))
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn bad_requests_never_redirect_anywhere_unregistered_and_pkce_is_required() {
    let app = provider().await;
    let (id, _) = client(&app, false, true).await;
    let mut browser = Browser::new(&app);
    let authorize = |query: &str| format!("{}/oauth/authorize?{query}", app.url);
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    // An unregistered redirect URI or client: a page, no redirect.
    for query in [
        format!(
            "response_type=code&client_id={id}&redirect_uri=https://evil.example/cb&code_challenge={challenge}&code_challenge_method=S256&scope=openid"
        ),
        format!(
            "response_type=code&client_id=nobody&redirect_uri={REDIRECT}&code_challenge={challenge}&code_challenge_method=S256&scope=openid"
        ),
    ] {
        let page = browser.open(&authorize(&query)).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(page.headers().get("location").is_none());
    }
    // No PKCE, or plain: an error at the client's redirect URI, with its state.
    for pkce in ["", "&code_challenge=abc&code_challenge_method=plain"] {
        let query = format!(
            "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid&state=s1{pkce}"
        );
        let pairs = redirected(&browser.open(&authorize(&query)).await);
        assert_eq!(param(&pairs, "error"), Some("invalid_request"), "{pkce}");
        assert_eq!(param(&pairs, "state"), Some("s1"));
    }
    // A scope the client was not given.
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid%20admin&code_challenge={challenge}&code_challenge_method=S256"
    );
    assert_eq!(
        param(
            &redirected(&browser.open(&authorize(&query)).await),
            "error"
        ),
        Some("invalid_scope")
    );
    // prompt=none without a sign-in.
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&prompt=none"
    );
    assert_eq!(
        param(
            &redirected(&browser.open(&authorize(&query)).await),
            "error"
        ),
        Some("login_required")
    );

    // A sign-in posted from another site is refused.
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
    );
    app.create_verified_user("ada@example.com", PASSWORD).await;
    browser.origin = "https://evil.example".into();
    let forged = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(browser.cookie.is_none());
}

#[tokio::test]
async fn consent_needs_the_browsers_own_form_token() {
    let app = provider().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let (id, _) = client(&app, false, false).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
    );
    let mut browser = Browser::new(&app);
    let consent = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(consent.status(), StatusCode::OK);
    for csrf in ["", "forged"] {
        let refused = browser
            .post(
                &app,
                &[("request", &query), ("step", "consent"), ("csrf", csrf)],
            )
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
    assert!(app.events_of_type("OAUTH_CONSENT_GRANTED").await.is_empty());
    let html = consent.text().await.unwrap();
    let denied = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "deny"),
                ("csrf", &field(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(param(&redirected(&denied), "error"), Some("access_denied"));
}

#[tokio::test]
async fn the_second_factor_is_asked_in_the_flow_and_aal2_can_be_demanded() {
    let app = provider().await;
    let (_, secret, _) = user_with_totp(&app, "ada@example.com").await;
    app.create_verified_user("bob@example.com", PASSWORD).await;
    let (id, _) = client(&app, false, true).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&acr_values=aal2"
    );

    let mut browser = Browser::new(&app);
    let step = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let html = step.text().await.unwrap();
    let mfa_token = field(&html, "mfa_token");
    assert!(
        browser.cookie.is_none(),
        "no sign-in before the second factor"
    );
    let wrong = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "mfa"),
                ("mfa_token", &mfa_token),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    // The enrolment spent this step's code.
    app.state.clock.advance(time::Duration::seconds(30));
    let now = app.state.clock.now().unix_timestamp();
    let done = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "mfa"),
                ("mfa_token", &mfa_token),
                ("code", &totp_code(&secret, now)),
            ],
        )
        .await;
    assert!(
        param(&redirected(&done), "code").is_some(),
        "first party: no consent"
    );

    // Without a factor, aal2 cannot be met.
    let mut browser = Browser::new(&app);
    let refused = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "bob@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        param(&redirected(&refused), "error"),
        Some("unmet_authentication_requirements")
    );
}

/// Signs ada in for a confidential client with `offline_access`: (client id, secret, tokens
/// answer as JSON).
async fn granted(app: &TestApp, post_logout: &[&str]) -> (String, String, Value) {
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let admin = app.admin_token().await;
    let created: Value = app
        .send(
            Method::POST,
            "/oauth/clients",
            &admin,
            &json!({
                "name": "Dashboard",
                "first_party": true,
                "redirect_uris": [REDIRECT],
                "post_logout_redirect_uris": post_logout,
                "scopes": ["openid", "email", "offline_access"],
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let verifier = "v".repeat(64);
    let challenge = latchkey::crypto::random::sha256_b64(verifier.as_bytes());
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid%20email%20offline_access&code_challenge={challenge}&code_challenge_method=S256&nonce=n1"
    );
    let mut browser = Browser::new(app);
    let back = browser
        .post(
            app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    let pairs = redirected(&back);
    let tokens: Value = app
        .client
        .post(format!("{}/oauth/token", app.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", param(&pairs, "code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
    (id, secret, tokens)
}

async fn client_post(
    app: &TestApp,
    path: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.url))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_revocation_ends_the_grant() {
    let app = provider().await;
    let (id, secret, tokens) = granted(&app, &[]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let live: Value = client_post(
        &app,
        "/oauth/introspect",
        &id,
        &secret,
        &[("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(live["active"], true);
    assert_eq!(live["client_id"], id.as_str());
    assert!(live["scope"].as_str().unwrap().contains("email"));
    let live: Value = client_post(
        &app,
        "/oauth/introspect",
        &id,
        &secret,
        &[("token", refresh)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(live["active"], true);
    assert_eq!(live["token_type"], "refresh_token");
    let junk: Value = client_post(
        &app,
        "/oauth/introspect",
        &id,
        &secret,
        &[("token", "junk")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(junk, json!({"active": false}));
    let wrong = client_post(
        &app,
        "/oauth/introspect",
        &id,
        "wrong",
        &[("token", access)],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // Unknown tokens are "revoked" alike; the refresh token's revocation ends the grant.
    assert_eq!(
        client_post(&app, "/oauth/revoke", &id, &secret, &[("token", "junk")])
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client_post(&app, "/oauth/revoke", &id, &secret, &[("token", refresh)])
            .await
            .status(),
        StatusCode::OK
    );
    let dead: Value = client_post(
        &app,
        "/oauth/introspect",
        &id,
        &secret,
        &[("token", access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(dead["active"], false);
    assert_eq!(
        app.get("/oauth/userinfo", Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn removing_a_client_revokes_what_it_holds() {
    let app = provider().await;
    let (id, _, tokens) = granted(&app, &[]).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/auth/verify", Some(access)).await.status(),
        StatusCode::OK
    );
    let admin = app.admin_token().await;
    let removed = app
        .send(
            Method::DELETE,
            &format!("/oauth/clients/{id}"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/auth/verify", Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_returns_only_to_a_registered_address_and_ends_the_hinted_session() {
    let app = provider().await;
    let back_to = "https://dash.example.com/signed-out";
    let (id, _, tokens) = granted(&app, &[back_to]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    let mut browser = Browser::new(&app);
    let logout = |query: String| format!("{}/oauth/logout?{query}", app.url);

    // Forged hints with the real claims: `alg: none`, HS256 keyed with the published RSA key
    // (its JWK, or its modulus), and RS256 under a stranger's key with the real `kid`.
    let b64 = |bytes: &[u8]| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    let parts: Vec<&str> = hint.split('.').collect();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    let kid = jsonwebtoken::decode_header(hint).unwrap().kid.unwrap();
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid})
            .to_string()
            .as_bytes()),
        parts[1]
    );
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let mut forged = vec![none];
    for secret in [
        rsa.to_string().into_bytes(),
        rsa["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let key = jsonwebtoken::EncodingKey::from_secret(&secret);
        forged.push(jsonwebtoken::encode(&hs, &claims, &key).unwrap());
    }
    let stranger =
        latchkey::crypto::KeyMaterial::generate(latchkey::crypto::JwtAlg::Rs256).unwrap();
    let mut rs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    rs.kid = Some(kid.clone());
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &stranger.private_der
        )
    );
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    forged.push(jsonwebtoken::encode(&rs, &claims, &key).unwrap());

    // An ID token is no access token, genuine or not.
    for token in forged.iter().map(String::as_str).chain([hint]) {
        assert_eq!(
            app.get("/auth/verify", Some(token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    // Open redirects: an unregistered address, another client's, or a forged hint.
    let mut queries = vec![
        format!("id_token_hint={hint}&post_logout_redirect_uri=https://evil.example/"),
        format!("post_logout_redirect_uri={back_to}"),
        format!("client_id=nobody&post_logout_redirect_uri={back_to}"),
        format!(
            "id_token_hint={}x&post_logout_redirect_uri={back_to}",
            &hint[..hint.len() - 1]
        ),
    ];
    queries.extend(
        forged
            .iter()
            .map(|forged| format!("id_token_hint={forged}&post_logout_redirect_uri={back_to}")),
    );
    for query in queries {
        let refused = browser.open(&logout(query.clone())).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(refused.headers().get("location").is_none());
    }
    assert_eq!(
        app.get("/oauth/userinfo", Some(access)).await.status(),
        StatusCode::OK
    );

    let done = browser
        .open(&logout(format!(
            "id_token_hint={hint}&post_logout_redirect_uri={back_to}&state=s9&client_id={id}"
        )))
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        format!("{back_to}?state=s9").as_str()
    );
    assert_eq!(
        app.get("/oauth/userinfo", Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn dynamic_registration_is_off_by_default_and_gives_third_party_clients_when_on() {
    let off = provider().await;
    let refused = off
        .post("/oauth/register", &json!({"redirect_uris": [REDIRECT]}))
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let discovery: Value = off
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(discovery.get("registration_endpoint").is_none());

    let app = spawn_app_with(&[
        "--public-url",
        "http://127.0.0.1:{port}",
        "--oauth-dynamic-registration",
        "true",
    ])
    .await;
    let discovery: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["registration_endpoint"],
        format!("{}/oauth/register", app.url).as_str()
    );
    let bad = app
        .post(
            "/oauth/register",
            &json!({"redirect_uris": ["https://*.evil.example/cb"]}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "invalid_redirect_uri"
    );
    let created = app
        .post(
            "/oauth/register",
            &json!({
                "client_name": "Agent",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "scope": "openid email",
            }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert!(created.get("client_secret").is_none(), "a public client");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    let id = created["client_id"].as_str().unwrap();

    // Never first party: the user is asked.
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let query = format!(
        "response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid%20email&code_challenge={challenge}&code_challenge_method=S256"
    );
    let mut browser = Browser::new(&app);
    let consent = browser
        .post(
            &app,
            &[
                ("request", &query),
                ("step", "login"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(consent.status(), StatusCode::OK);
    assert!(consent.text().await.unwrap().contains("Allow Agent?"));
}

/// Registers a client with scopes of its own: (client_id, secret).
async fn service_client(app: &TestApp, confidential: bool) -> (String, Option<String>) {
    let admin = app.admin_token().await;
    let created: Value = app
        .send(
            Method::POST,
            "/oauth/clients",
            &admin,
            &json!({
                "name": "Billing worker",
                "confidential": confidential,
                "redirect_uris": [REDIRECT],
                "scopes": ["openid", "email", "orders:read", "orders:write"],
            }),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().map(str::to_owned),
    )
}

async fn token_error(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_confidential_client_gets_tokens_of_its_own_that_name_no_user() {
    let app = provider().await;
    let (public, _) = service_client(&app, false).await;
    let refused = app
        .client
        .post(format!("{}/oauth/token", app.url))
        .form(&[("grant_type", "client_credentials"), ("client_id", &public)])
        .send()
        .await
        .unwrap();
    assert_eq!(token_error(refused).await, "unauthorized_client");
    // A client with only the standard scopes (all dynamic registration gives) signs users in
    // and gets no token of its own.
    let (signer, signer_secret) = client(&app, true, false).await;
    let refused = client_post(
        &app,
        "/oauth/token",
        &signer,
        &signer_secret.unwrap(),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(token_error(refused).await, "unauthorized_client");

    let (id, secret) = service_client(&app, true).await;
    let secret = secret.unwrap();
    let grant = async |scope: Option<&str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|scope| ("scope", scope)));
        client_post(&app, "/oauth/token", &id, &secret, &form).await
    };
    let all: Value = grant(None).await.json().await.unwrap();
    assert_eq!(all["scope"], "orders:read orders:write");
    assert_eq!(all["token_type"], "Bearer");
    assert!(all.get("refresh_token").is_none() && all.get("id_token").is_none());
    let narrow = grant(Some("orders:read")).await;
    assert_eq!(narrow.status(), StatusCode::OK);
    let narrow: Value = narrow.json().await.unwrap();
    assert_eq!(narrow["scope"], "orders:read");
    // Standard scopes are about a user, and another client's scope is not this one's.
    assert_eq!(
        token_error(grant(Some("openid")).await).await,
        "invalid_scope"
    );
    assert_eq!(
        token_error(grant(Some("email")).await).await,
        "invalid_scope"
    );
    assert_eq!(
        token_error(grant(Some("admin")).await).await,
        "invalid_scope"
    );

    // The gateway passes it only on a route that names the scope it needs, and with the
    // client and its scope but no user at all: a route for "any signed-in user" stays shut.
    let access = all["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/auth/verify", Some(&access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let short = app
        .get("/auth/verify?scope=orders:refund", Some(&access))
        .await;
    assert_eq!(short.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        short.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"orders:refund\""
    );
    assert_eq!(
        app.get("/auth/verify?scope=bad\"scope", Some(&access))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let checked = app.get(VERIFY_ORDERS, Some(&access)).await;
    assert_eq!(checked.status(), StatusCode::OK);
    let headers = checked.headers();
    assert_eq!(headers["x-user-client-id"], id.as_str());
    assert_eq!(headers["x-user-scope"], "orders:read orders:write");
    for absent in ["x-user-id", "x-user-email", "x-user-role", "x-user-acr"] {
        assert!(headers.get(absent).is_none(), "{absent} must not be sent");
    }
    assert_eq!(
        app.get("/auth/verify?scope=orders:read&acr=aal1", Some(&access))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "no user authenticated, so no step-up demand is met"
    );
    // A user's own token is the account: a scope demand does not shut it out.
    let (own, _) = app.logged_in_user("ada@example.com").await;
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&own)).await.status(),
        StatusCode::OK
    );
    // It is no user's token: latchkey's own API and userinfo refuse it.
    for path in [
        "/users/me",
        "/users/me/sessions",
        "/oauth/userinfo",
        "/users",
    ] {
        assert_eq!(
            app.get(path, Some(&access)).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let userinfo = app.get("/oauth/userinfo", Some(&access)).await;
    let challenge = userinfo.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let anonymous = app.get("/oauth/userinfo", None).await;
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer",
        "RFC 6750 §3.1: no error without a token"
    );
    let described: Value = client_post(
        &app,
        "/oauth/introspect",
        &id,
        &secret,
        &[("token", &access)],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(described["active"], true);
    assert_eq!(described["sub"], id.as_str());
    assert_eq!(described["client_id"], id.as_str());
    let issued = app.events_of_type("OAUTH_TOKEN_ISSUED").await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0]["data"]["grant_type"], "client_credentials");
    assert!(issued[0]["subject"].is_null() || issued[0].get("subject").is_none());

    // Revoking one of its tokens revokes them all; the next grant works again.
    let other = narrow["access_token"].as_str().unwrap();
    assert_eq!(
        client_post(&app, "/oauth/revoke", &id, &secret, &[("token", &access)])
            .await
            .status(),
        StatusCode::OK
    );
    for dead in [access.as_str(), other] {
        assert_eq!(
            app.get(VERIFY_ORDERS, Some(dead)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let again: Value = grant(None).await.json().await.unwrap();
    let again = again["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&again)).await.status(),
        StatusCode::OK
    );
    // A stale token of the revoked session cannot end the new one.
    client_post(&app, "/oauth/revoke", &id, &secret, &[("token", &access)]).await;
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&again)).await.status(),
        StatusCode::OK
    );

    // Another client cannot revoke it, and removing the client ends it.
    let (stranger, stranger_secret) = service_client(&app, true).await;
    client_post(
        &app,
        "/oauth/revoke",
        &stranger,
        &stranger_secret.unwrap(),
        &[("token", &again)],
    )
    .await;
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&again)).await.status(),
        StatusCode::OK
    );
    // New scopes end the tokens of the old ones.
    let admin = app.admin_token().await;
    let changed = app
        .send(
            Method::PATCH,
            &format!("/oauth/clients/{id}"),
            &admin,
            &json!({"scopes": ["orders:read"]}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&again)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again: Value = grant(None).await.json().await.unwrap();
    assert_eq!(again["scope"], "orders:read");
    let again = again["access_token"].as_str().unwrap().to_owned();
    let admin = app.admin_token().await;
    let removed = app
        .send(
            Method::DELETE,
            &format!("/oauth/clients/{id}"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(&again)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A gateway route that lets through tokens granted `orders:read`.
const VERIFY_ORDERS: &str = "/auth/verify?scope=orders:read";

#[tokio::test]
async fn resource_indicators_name_only_configured_resource_servers() {
    const API: &str = "https://api.example.test/";
    let app = spawn_app_with(&[
        "--public-url",
        "http://127.0.0.1:{port}",
        "--jwt-audience",
        "https://latchkey.example.test",
        "--oauth-resources",
        API,
    ])
    .await;
    let (id, secret) = service_client(&app, true).await;
    let secret = secret.unwrap();
    let form =
        |resource: &'static str| vec![("grant_type", "client_credentials"), ("resource", resource)];
    let unknown = client_post(
        &app,
        "/oauth/token",
        &id,
        &secret,
        &form("https://evil.test/"),
    )
    .await;
    assert_eq!(token_error(unknown).await, "invalid_target");
    let granted: Value = client_post(&app, "/oauth/token", &id, &secret, &form(API))
        .await
        .json()
        .await
        .unwrap();
    let access = granted["access_token"].as_str().unwrap();
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], API);
    // A token for a resource server passes only a route that names it: one handed to that
    // server cannot be replayed in front of another.
    let fronting = |resource: &str| {
        format!(
            "/auth/verify?scope=orders:read&resource={}",
            url::form_urlencoded::byte_serialize(resource.as_bytes()).collect::<String>()
        )
    };
    assert_eq!(
        app.get(VERIFY_ORDERS, Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&fronting("https://other.example.test/"), Some(access))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&fronting(API), Some(access)).await.status(),
        StatusCode::OK
    );

    // At the authorization endpoint an unknown resource goes back to the client as an error.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "s1")
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", "https://evil.test/")
        .finish();
    let answer = Browser::new(&app)
        .open(&format!("{}/oauth/authorize?{query}", app.url))
        .await;
    let pairs = redirected(&answer);
    assert_eq!(param(&pairs, "error"), Some("invalid_target"));
    assert_eq!(param(&pairs, "state"), Some("s1"));
}

#[tokio::test]
async fn a_user_sees_and_withdraws_what_they_allowed_an_app() {
    let app = provider().await;
    let (own, _) = app.logged_in_user("ada@example.com").await;
    let (id, secret) = client(&app, true, false).await;
    let secret = secret.unwrap();
    let verifier = "v".repeat(64);
    let challenge = latchkey::crypto::random::sha256_b64(verifier.as_bytes());
    let url = format!(
        "{}/oauth/authorize?response_type=code&client_id={id}&redirect_uri={REDIRECT}&scope=openid%20email%20offline_access&code_challenge={challenge}&code_challenge_method=S256&state=s1",
        app.url
    );
    let mut browser = Browser::new(&app);
    let (code, _) = sign_in_and_consent(&app, &mut browser, &url, "ada@example.com").await;
    let tokens: Value = client_post(
        &app,
        "/oauth/token",
        &id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let listed: Value = app
        .get("/users/me/consents", Some(&own))
        .await
        .json()
        .await
        .unwrap();
    let consents = listed["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 1, "{listed}");
    assert_eq!(consents[0]["client_id"], id.as_str());
    assert_eq!(consents[0]["client_name"], "Dashboard");
    assert_eq!(
        consents[0]["scopes"],
        json!(["openid", "email", "offline_access"])
    );
    // The app's own token cannot read or withdraw the user's consents.
    assert_eq!(
        app.get("/users/me/consents", Some(access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let path = format!("/users/me/consents/{id}");
    let (stranger, _) = app.logged_in_user("eve@example.com").await;
    let foreign = app.send(Method::DELETE, &path, &stranger, &json!({})).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND, "not Eve's consent");
    assert_eq!(
        app.get("/auth/verify", Some(access)).await.status(),
        StatusCode::OK
    );

    // Consent is remembered, so a new code comes at once; withdrawn before it is spent, it
    // opens nothing.
    let pending = redirected(&browser.open(&url).await);
    let pending = param(&pending, "code").unwrap().to_owned();

    let withdrawn = app.send(Method::DELETE, &path, &own, &json!({})).await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    let late = client_post(
        &app,
        "/oauth/token",
        &id,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &pending),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(token_error(late).await, "invalid_grant");
    assert_eq!(
        app.get("/auth/verify", Some(access)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the app's session is revoked with the consent"
    );
    let refreshed = client_post(
        &app,
        "/oauth/token",
        &id,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/users/me", Some(&own)).await.status(),
        StatusCode::OK,
        "the user's own session lives on"
    );
    let listed: Value = app
        .get("/users/me/consents", Some(&own))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["consents"], json!([]));
    let again = app.send(Method::DELETE, &path, &own, &json!({})).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let events = app.events_of_type("OAUTH_CONSENT_REVOKED").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["client_id"], id.as_str());
    let revoked = app.events_of_type("SESSION_REVOKED").await;
    assert!(
        revoked
            .iter()
            .any(|e| e["data"]["reason"] == "consent_revoked")
    );

    // The next authorization asks again.
    let page = browser.open(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Allow Dashboard?"));
}

#[tokio::test]
async fn the_id_token_key_rotates_like_the_access_token_key() {
    let app = provider().await;
    let (id, secret, tokens) = granted(&app, &[]).await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let old_kid = kid(tokens["id_token"].as_str().unwrap());
    let access_kid = kid(tokens["access_token"].as_str().unwrap());

    let rotated = crate::import::latchkey(&app)
        .args(["keys", "rotate", "--id-token"])
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rsa_kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] == "RSA")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rsa_kids(&jwks).len(),
        2,
        "the new key is published before it signs"
    );

    let refresh = |token: String| {
        let (app, id, secret) = (&app, id.clone(), secret.clone());
        async move {
            let answer: Value = client_post(
                app,
                "/oauth/token",
                &id,
                &secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
            .json()
            .await
            .unwrap();
            answer
        }
    };
    let next = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        kid(next["id_token"].as_str().unwrap()),
        old_kid,
        "not signing yet"
    );

    app.state.clock.advance(time::Duration::seconds(40));
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let next = refresh(next["refresh_token"].as_str().unwrap().to_owned()).await;
    let new_kid = kid(next["id_token"].as_str().unwrap());
    assert_ne!(new_kid, old_kid, "the new key signs");
    assert_eq!(
        kid(next["access_token"].as_str().unwrap()),
        access_kid,
        "the access-token key is left alone"
    );

    // Its ID tokens have expired, but they still name their sessions as logout hints: the key
    // stays as long as a session can.
    app.state
        .clock
        .advance(time::Duration::minutes(15) + time::Duration::seconds(2));
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rsa_kids(&jwks).len(), 2);
    app.state.clock.advance(time::Duration::days(30));
    latchkey::service::keys::reload(&app.state).await.unwrap();
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rsa_kids(&jwks),
        [new_kid],
        "the old key left once its tokens expired"
    );
}
