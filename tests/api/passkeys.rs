//! WebAuthn through webauthn-authenticator-rs' software passkey: registration, use as a second
//! factor and for re-authentication, passkey sign-in with no email and no password, and the
//! refusals an attacker would try (another origin, a replayed assertion, another user's handle).
//! The authenticator is a client nobody here wrote, so latchkey's JSON is checked against the
//! WebAuthn types a real client library builds and parses.

use crate::mfa::user_with_totp;
use crate::support::{PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with_mail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse, Url,
    WebauthnAuthenticator,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::AllowCredentials;

/// The origin a browser at the embedded default's loopback address reports.
fn origin(app: &TestApp) -> Url {
    let port = Url::parse(&app.url).unwrap().port().unwrap();
    Url::parse(&format!("http://localhost:{port}")).unwrap()
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

/// A user-verifying software authenticator (the soft token claims UV, as a platform passkey does).
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// Registers a credential from `device` for the session of `token`: (the answer, credential id).
async fn register(
    app: &TestApp,
    token: &str,
    device: &mut SoftPasskey,
    from: Url,
) -> (reqwest::Response, Vec<u8>) {
    let options = app
        .send(
            Method::POST,
            "/users/me/mfa/webauthn/options",
            token,
            &json!({}),
        )
        .await;
    assert_eq!(options.status(), StatusCode::OK);
    let options: CreationChallengeResponse = options.json().await.unwrap();
    let credential = device.do_registration(from, options).unwrap();
    let id = credential.raw_id.to_vec();
    let answer = app
        .send(
            Method::POST,
            "/users/me/mfa/webauthn",
            token,
            &json!({"name": "laptop", "credential": credential}),
        )
        .await;
    (answer, id)
}

/// Answers request options as the browser would for `device`.
fn assert_with(app: &TestApp, device: &mut SoftPasskey, options: Value) -> PublicKeyCredential {
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    device.do_authentication(origin(app), options).unwrap()
}

#[tokio::test]
async fn a_passkey_registers_then_serves_as_second_factor_and_for_reauthentication() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let mut device = authenticator();
    let (answer, _) = register(&app, &token, &mut device, origin(&app)).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let registered: Value = answer.json().await.unwrap();
    assert_eq!(registered["name"], "laptop");
    assert_eq!(
        registered["recovery_codes"].as_array().map(Vec::len),
        Some(10),
        "the first factor brings recovery codes"
    );
    let overview: Value = app
        .get("/users/me/mfa", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["totp"], false);
    assert_eq!(overview["webauthn"][0]["id"], registered["id"]);
    assert_eq!(overview["webauthn"][0]["name"], "laptop");

    // Password first, then the passkey.
    let challenge = assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    assert!(
        challenge["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("webauthn")),
        "{challenge}"
    );
    let mfa_token = challenge["mfa_token"].as_str().unwrap();
    let options: Value = app
        .post(
            "/auth/mfa/webauthn/options",
            &json!({"mfa_token": mfa_token}),
        )
        .await
        .json()
        .await
        .unwrap();
    let assertion = assert_with(&app, &mut device, options);
    let pair = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "webauthn": assertion}),
        )
        .await;
    assert_eq!(pair.status(), StatusCode::OK);
    let pair: Value = pair.json().await.unwrap();
    let access = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], "aal2");
    for method in ["pwd", "hwk", "mfa"] {
        assert!(
            access["amr"].as_array().unwrap().contains(&json!(method)),
            "{access}"
        );
    }
    let used: Value = app
        .get("/users/me/mfa", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(used["webauthn"][0]["last_used_at"].is_string(), "{used}");

    // The same signed assertion cannot complete another login: its challenge was this one's.
    let again = assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    let _ = app
        .post(
            "/auth/mfa/webauthn/options",
            &json!({"mfa_token": again["mfa_token"]}),
        )
        .await;
    assert_problem(
        app.post(
            "/auth/mfa/verify",
            &json!({"mfa_token": again["mfa_token"], "webauthn": assertion}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa",
    )
    .await;

    // Step-up of the session with the passkey.
    let session = pair["access_token"].as_str().unwrap();
    let options: Value = app
        .send(
            Method::POST,
            "/auth/reauthenticate/options",
            session,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let assertion = assert_with(&app, &mut device, options);
    let stepped = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            session,
            &json!({"webauthn": assertion}),
        )
        .await;
    assert_eq!(stepped.status(), StatusCode::OK);
    let stepped: Value = stepped.json().await.unwrap();
    let stepped = claims(stepped["access_token"].as_str().unwrap());
    assert_eq!(stepped["sid"], access["sid"], "the same session");
    assert!(stepped["amr"].as_array().unwrap().contains(&json!("hwk")));
}

#[tokio::test]
async fn a_credential_for_another_origin_or_rp_id_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let phishing = Url::parse("http://localhost:1").unwrap();
    let (answer, _) = register(&app, &token, &mut authenticator(), phishing).await;
    assert_problem(answer, StatusCode::BAD_REQUEST, "invalid_credential").await;
    let overview: Value = app
        .get("/users/me/mfa", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["webauthn"], json!([]));
    assert_eq!(overview["recovery_codes_left"], 0);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);

    // A phishing site relaying latchkey's challenge under its own RP id and origin.
    let options = app
        .send(
            Method::POST,
            "/users/me/mfa/webauthn/options",
            &token,
            &json!({}),
        )
        .await;
    let mut options: CreationChallengeResponse = options.json().await.unwrap();
    options.public_key.rp.id = "evil.example".into();
    let relayed = authenticator()
        .do_registration(Url::parse("https://evil.example").unwrap(), options)
        .unwrap();
    assert_problem(
        app.send(
            Method::POST,
            "/users/me/mfa/webauthn",
            &token,
            &json!({"name": "phished", "credential": relayed}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_credential",
    )
    .await;

    // And at sign-in: a real credential's assertion made for the phishing site's RP id.
    let mut device = authenticator();
    let (answer, _) = register(&app, &token, &mut device, origin(&app)).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let challenge = assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    let options: Value = app
        .post(
            "/auth/mfa/webauthn/options",
            &json!({"mfa_token": challenge["mfa_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let mut options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    options.public_key.rp_id = "evil.example".into();
    let relayed = device
        .do_authentication(Url::parse("https://evil.example").unwrap(), options)
        .unwrap();
    assert_problem(
        app.post(
            "/auth/mfa/verify",
            &json!({"mfa_token": challenge["mfa_token"], "webauthn": relayed}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa",
    )
    .await;
}

/// Passkey sign-in options answered by `device` holding `credential_id`, claiming `user_handle`.
/// The soft token keeps no resident keys, so the credential a browser would pick is named here;
/// the server's ceremony state (with no allow list) is untouched by that.
async fn passkey_login(
    app: &TestApp,
    device: &mut SoftPasskey,
    credential_id: &[u8],
    user_handle: uuid::Uuid,
) -> (reqwest::Response, Value) {
    let options: Value = app
        .post("/auth/passkey/options", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let challenge_id = options["challenge_id"].clone();
    let mut request: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    assert!(
        request.public_key.allow_credentials.is_empty(),
        "discoverable"
    );
    request.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.to_vec(),
        transports: None,
    }];
    let mut assertion = device.do_authentication(origin(app), request).unwrap();
    assertion.response.user_handle = Some(user_handle.as_bytes().to_vec());
    let body = json!({"challenge_id": challenge_id, "credential": assertion});
    (app.post("/auth/passkey/login", &body).await, body)
}

#[tokio::test]
async fn a_passkey_signs_in_with_no_email_and_no_password_once_per_challenge() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let ada: uuid::Uuid = login["user"]["id"].as_str().unwrap().parse().unwrap();
    let (_, bob_login) = app.logged_in_user("bob@example.com").await;
    let bob: uuid::Uuid = bob_login["user"]["id"].as_str().unwrap().parse().unwrap();
    let mut device = authenticator();
    let (answer, credential_id) = register(&app, &token, &mut device, origin(&app)).await;
    assert_eq!(answer.status(), StatusCode::CREATED);

    let (signed_in, replay) = passkey_login(&app, &mut device, &credential_id, ada).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let pair: Value = signed_in.json().await.unwrap();
    assert_eq!(pair["user"]["id"], ada.to_string());
    let access = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(access["acr"], "aal2", "a user-verified passkey");
    assert!(access["amr"].as_array().unwrap().contains(&json!("hwk")));
    assert!(!access["amr"].as_array().unwrap().contains(&json!("pwd")));

    // The challenge is spent: the same body signs nobody in again.
    assert_problem(
        app.post("/auth/passkey/login", &replay).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Ada's credential claiming to be Bob's: the credential is not Bob's.
    let (as_bob, _) = passkey_login(&app, &mut device, &credential_id, bob).await;
    assert_problem(as_bob, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A credential latchkey never registered.
    let mut stranger = authenticator();
    let options: CreationChallengeResponse = app
        .send(
            Method::POST,
            "/users/me/mfa/webauthn/options",
            &token,
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let unregistered = stranger.do_registration(origin(&app), options).unwrap();
    let (unknown, _) = passkey_login(&app, &mut stranger, &unregistered.raw_id, ada).await;
    assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn the_enrolling_session_adds_a_passkey_after_totp_and_removes_it() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (token, secret, _) = user_with_totp(&app, "ada@example.com").await;
    let (answer, _) = register(&app, &token, &mut authenticator(), origin(&app)).await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let added: Value = answer.json().await.unwrap();
    assert!(
        added.get("recovery_codes").is_none(),
        "codes only come with the first factor: {added}"
    );
    let path = format!("/users/me/mfa/webauthn/{}", added["id"].as_str().unwrap());
    // Removal needs the token itself at aal2: the password-only token of the enrolling session
    // is refused until the session steps up with a factor.
    assert_problem(
        app.send(Method::DELETE, &path, &token, &json!({})).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await;
    app.state.clock.advance(time::Duration::seconds(30));
    let now = app.state.clock.now().unix_timestamp();
    let stepped: Value = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            &token,
            &json!({"totp": crate::mfa::totp_code(&secret, now)}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = stepped["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["acr"], "aal2");
    let removed = app.send(Method::DELETE, &path, &token, &json!({})).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let overview: Value = app
        .get("/users/me/mfa", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["webauthn"], json!([]));
    assert_eq!(overview["totp"], true);

    // Each change is an event of its transaction and a notice to the owner.
    let added_events = app.events_of_type("PASSKEY_ADDED").await;
    assert_eq!(added_events.len(), 1);
    assert_eq!(added_events[0]["data"]["name"], "laptop");
    assert_eq!(app.events_of_type("PASSKEY_REMOVED").await.len(), 1);
    let notice = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(notice.contains("A passkey named"), "{notice:?}");
    let notice = smtp.wait_for_mail_to("ada@example.com", 3).await;
    assert!(notice.contains("A passkey was removed"), "{notice:?}");
}

#[tokio::test]
async fn the_sign_in_pages_run_only_their_own_script_and_the_qr_code_is_only_for_enrolment() {
    let app = spawn_app().await;
    for path in ["/login", "/account/security"] {
        let page = app.get(path, None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let policy = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
    let script = app.get("/assets/account.js", None).await;
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );

    let uri = json!({"uri": "otpauth://totp/latchkey:ada?secret=JBSWY3DPEHPK3PXP"});
    let anonymous = app
        .client
        .post(format!("{}/account/security/qr", app.url))
        .json(&uri)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let drawn = app
        .send(Method::POST, "/account/security/qr", &token, &uri)
        .await;
    assert_eq!(drawn.status(), StatusCode::OK);
    assert_eq!(drawn.headers()["content-type"], "image/svg+xml");
    assert_eq!(
        drawn.headers()["cache-control"],
        "no-store",
        "it shows a secret"
    );
    assert!(drawn.text().await.unwrap().contains("<svg"));
    let other = app
        .send(
            Method::POST,
            "/account/security/qr",
            &token,
            &json!({"uri": "https://example.com/"}),
        )
        .await;
    assert_problem(other, StatusCode::BAD_REQUEST, "validation_failed").await;
}
