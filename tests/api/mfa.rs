//! Second factors: TOTP enrolment and login (codes computed here by an RFC 6238 implementation
//! of the test's own, not latchkey's), recovery codes, the `mfa_token`'s limits, the "recent"
//! and `aal2` gates, re-authentication, `LATCHKEY_REQUIRE_MFA_ROLES` and an admin's reset.

use crate::support::{
    PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with, spawn_app_with_mail,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

/// RFC 4648 base32 (no padding), as otpauth URIs carry secrets.
pub(crate) fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let index = ALPHABET.iter().position(|a| *a == c).expect("base32") as u32;
        value = (value << 5) | index;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 (HOTP of the 30-second step, SHA-1, 6 digits) at `unix` seconds.
pub(crate) fn totp_code(secret: &[u8], unix: i64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let step = (unix / 30) as u64;
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

/// A verified user with a confirmed TOTP authenticator: (token of the enrolling session,
/// the secret, the recovery codes).
pub(crate) async fn user_with_totp(app: &TestApp, email: &str) -> (String, Vec<u8>, Vec<String>) {
    let (token, _) = app.logged_in_user(email).await;
    let enrolment = app
        .send(Method::POST, "/users/me/mfa/totp", &token, &json!({}))
        .await;
    assert_eq!(enrolment.status(), StatusCode::OK);
    let enrolment: Value = enrolment.json().await.unwrap();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={}", enrolment["secret"].as_str().unwrap())));
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20, "160 bits");
    let now = app.state.clock.now().unix_timestamp();
    let confirmed = app
        .send(
            Method::POST,
            "/users/me/mfa/totp/confirm",
            &token,
            &json!({"code": totp_code(&secret, now)}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let confirmed: Value = confirmed.json().await.unwrap();
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("the first factor brings recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (token, secret, codes)
}

/// A login with the right password: the `mfa_required` problem.
async fn first_step(app: &TestApp, email: &str) -> Value {
    assert_problem(
        app.login(email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "mfa_required",
    )
    .await
}

#[tokio::test]
async fn a_totp_user_logs_in_with_password_then_code_and_each_code_works_once() {
    let app = spawn_app().await;
    let (_, secret, codes) = user_with_totp(&app, "ada@example.com").await;
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);

    let problem = first_step(&app, "ada@example.com").await;
    assert!(problem.get("access_token").is_none() && problem.get("refresh_token").is_none());
    assert_eq!(problem["methods"], json!(["totp", "recovery_code"]));
    let mfa_token = problem["mfa_token"].as_str().unwrap();

    // The confirming code's step is spent: a code of the same step is refused.
    let now = app.state.clock.now().unix_timestamp();
    let replay = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "totp": totp_code(&secret, now)}),
        )
        .await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "invalid_mfa").await;

    app.state.clock.advance(Duration::seconds(30));
    let code = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let pair = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "totp": code}),
        )
        .await;
    assert_eq!(pair.status(), StatusCode::OK);
    let pair: Value = pair.json().await.unwrap();
    let access = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(access["acr"], "aal2");
    assert_eq!(access["auth_time"], app.state.clock.now().unix_timestamp());

    // The mfa_token was single-use; the same code in a new login is a replay.
    let again = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "totp": code}),
        )
        .await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    let fresh = first_step(&app, "ada@example.com").await;
    let replayed = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": fresh["mfa_token"], "totp": code}),
        )
        .await;
    assert_problem(replayed, StatusCode::UNAUTHORIZED, "invalid_mfa").await;

    // One step late still works (±1 step), once.
    app.state.clock.advance(Duration::seconds(60));
    let late = totp_code(&secret, app.state.clock.now().unix_timestamp() - 30);
    assert_ne!(late, code);
    let ok = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": fresh["mfa_token"], "totp": late}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK, "{:?}", ok.text().await);
    // A refresh keeps aal2.
    let refreshed: Value = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": pair["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(refreshed["access_token"].as_str().unwrap())["acr"],
        "aal2"
    );
    assert_eq!(app.events_of_type("MFA_ENABLED").await.len(), 1);
    assert!(!app.events_of_type("MFA_CHALLENGE_FAILED").await.is_empty());
}

#[tokio::test]
async fn a_recovery_code_works_once_and_the_count_goes_down() {
    let app = spawn_app().await;
    let (token, _, codes) = user_with_totp(&app, "ada@example.com").await;
    let step = first_step(&app, "ada@example.com").await;
    let typed = codes[3].to_uppercase().replace('-', " ");
    let ok = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": step["mfa_token"], "recovery_code": typed}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let pair: Value = ok.json().await.unwrap();
    assert_eq!(
        claims(pair["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );

    let step = first_step(&app, "ada@example.com").await;
    let twice = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": step["mfa_token"], "recovery_code": codes[3]}),
        )
        .await;
    assert_problem(twice, StatusCode::UNAUTHORIZED, "invalid_mfa").await;

    let status: Value = app
        .get("/users/me/mfa", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": true, "webauthn": [], "recovery_codes_left": 9})
    );
    let used = app.events_of_type("RECOVERY_CODE_USED").await;
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["data"]["remaining"], 9);
    // Codes are stored keyed-hashed only.
    let text = format!(
        "{:?}",
        app.state
            .store
            .factors(claims(&token)["sub"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
    );
    assert!(!codes.iter().any(|code| text.contains(code.as_str())));
}

#[tokio::test]
async fn an_mfa_token_dies_after_five_wrong_tries_or_its_lifetime() {
    let app = spawn_app().await;
    let (_, secret, _) = user_with_totp(&app, "ada@example.com").await;
    let step = first_step(&app, "ada@example.com").await;
    for _ in 0..5 {
        let wrong = app
            .post(
                "/auth/mfa/verify",
                &json!({"mfa_token": step["mfa_token"], "totp": "000000"}),
            )
            .await;
        assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    }
    app.state.clock.advance(Duration::seconds(30));
    let right = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let dead = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": step["mfa_token"], "totp": right}),
        )
        .await;
    assert_problem(dead, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    assert_eq!(app.events_of_type("MFA_CHALLENGE_FAILED").await.len(), 5);

    let step = first_step(&app, "ada@example.com").await;
    app.state
        .clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    let right = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let expired = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": step["mfa_token"], "totp": right}),
        )
        .await;
    assert_problem(expired, StatusCode::UNAUTHORIZED, "invalid_mfa").await;
    // Neither a body with no factor nor one with two is a guess.
    let none = app
        .post("/auth/mfa/verify", &json!({"mfa_token": "x"}))
        .await;
    assert_problem(none, StatusCode::BAD_REQUEST, "validation_failed").await;
    let two = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": "x", "totp": "1", "recovery_code": "2"}),
        )
        .await;
    assert_problem(two, StatusCode::BAD_REQUEST, "validation_failed").await;
}

#[tokio::test]
async fn wrong_codes_count_against_the_account_like_wrong_passwords() {
    let app = spawn_app().await;
    user_with_totp(&app, "ada@example.com").await;
    // Ten free failures from one network, then that network waits: the right password no
    // longer even reaches the second step.
    for _ in 0..2 {
        let step = first_step(&app, "ada@example.com").await;
        for _ in 0..5 {
            let wrong = app
                .post(
                    "/auth/mfa/verify",
                    &json!({"mfa_token": step["mfa_token"], "totp": "000000"}),
                )
                .await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        }
    }
    let throttled = app.login("ada@example.com", PASSWORD).await;
    assert_problem(throttled, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn enrolment_needs_a_recent_sign_in_and_removal_needs_two_factors() {
    let app = spawn_app().await;
    let (old_token, secret, _) = user_with_totp(&app, "ada@example.com").await;
    app.state.clock.advance(Duration::minutes(11));
    let stale = app
        .send(Method::DELETE, "/users/me/mfa/totp", &old_token, &json!({}))
        .await;
    assert_problem(stale, StatusCode::FORBIDDEN, "reauthentication_required").await;

    // A password re-authentication is recent but one factor: removal still refused.
    let reauth = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            &old_token,
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(reauth.status(), StatusCode::OK);
    let reauth: Value = reauth.json().await.unwrap();
    let one = reauth["access_token"].as_str().unwrap();
    assert_eq!(
        claims(one)["auth_time"],
        app.state.clock.now().unix_timestamp()
    );
    assert_eq!(claims(one)["acr"], "aal1");
    let weak = app
        .send(Method::DELETE, "/users/me/mfa/totp", one, &json!({}))
        .await;
    assert_problem(weak, StatusCode::FORBIDDEN, "mfa_required").await;
    // With one factor enrolled, adding another needs aal2 too.
    let add = app
        .send(
            Method::POST,
            "/users/me/mfa/webauthn/options",
            one,
            &json!({}),
        )
        .await;
    assert_ne!(add.status(), StatusCode::OK);
    let wrong = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            one,
            &json!({"password": "not the password at all"}),
        )
        .await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;

    // A TOTP step-up on top of the session's password: aal2, recent.
    let code = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let up = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            one,
            &json!({"totp": code}),
        )
        .await;
    assert_eq!(up.status(), StatusCode::OK);
    let up: Value = up.json().await.unwrap();
    let two = up["access_token"].as_str().unwrap();
    assert_eq!(claims(two)["acr"], "aal2");
    assert_eq!(
        claims(two)["sid"],
        claims(&old_token)["sid"],
        "the same session"
    );
    // The session's earlier refresh token is spent.
    let spent = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": reauth["refresh_token"]}),
        )
        .await;
    assert_eq!(spent.status(), StatusCode::UNAUTHORIZED);
    let removed = app
        .send(Method::DELETE, "/users/me/mfa/totp", two, &json!({}))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.events_of_type("MFA_DISABLED").await.len(), 1);
    let status: Value = app
        .get("/users/me/mfa", Some(two))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": false, "webauthn": [], "recovery_codes_left": 0})
    );
    // No factor left: the password alone logs in again.
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_pending_secret_opens_nothing_and_a_wrong_confirmation_is_refused() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let first: Value = app
        .send(Method::POST, "/users/me/mfa/totp", &token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .send(Method::POST, "/users/me/mfa/totp", &token, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        first["secret"], second["secret"],
        "asking again replaces the pending secret"
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let now = app.state.clock.now().unix_timestamp();
    let stale = app
        .send(
            Method::POST,
            "/users/me/mfa/totp/confirm",
            &token,
            &json!({"code": totp_code(&base32_decode(first["secret"].as_str().unwrap()), now)}),
        )
        .await;
    assert_problem(stale, StatusCode::BAD_REQUEST, "invalid_code").await;
    let secret = base32_decode(second["secret"].as_str().unwrap());
    let ok = app
        .send(
            Method::POST,
            "/users/me/mfa/totp/confirm",
            &token,
            &json!({"code": totp_code(&secret, now)}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let again = app
        .send(Method::POST, "/users/me/mfa/totp", &token, &json!({}))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "already_enrolled").await;
}

#[tokio::test]
async fn the_totp_secret_is_sealed_at_rest() {
    let app = spawn_app().await;
    let (token, secret, _) = user_with_totp(&app, "ada@example.com").await;
    let user_id = claims(&token)["sub"].as_str().unwrap().parse().unwrap();
    let factors = app.state.store.factors(user_id).await.unwrap();
    let sealed = factors.totp.unwrap().secret_sealed;
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));
    assert!(sealed.len() > secret.len());
}

#[tokio::test]
async fn a_role_that_needs_mfa_is_useless_below_aal2_but_can_enrol() {
    let app = spawn_app_with(&["--require-mfa-roles", "admin"]).await;
    let admin = app.admin_token().await;
    assert_eq!(claims(&admin)["acr"], "aal1");
    let refused = app.get("/users", Some(&admin)).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "mfa_required").await;
    assert_eq!(
        app.get("/users/me", Some(&admin)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/users/me/mfa", Some(&admin)).await.status(),
        StatusCode::OK
    );
    let gateway = app.get("/auth/verify", Some(&admin)).await;
    assert_eq!(gateway.status(), StatusCode::UNAUTHORIZED);
    assert!(
        gateway.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("acr_values=\"aal2\""),
        "the step-up challenge"
    );
    // Enrolment works at aal1; then a second-factor login makes the token useful.
    let enrolment: Value = app
        .send(Method::POST, "/users/me/mfa/totp", &admin, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    let now = app.state.clock.now().unix_timestamp();
    let confirmed = app
        .send(
            Method::POST,
            "/users/me/mfa/totp/confirm",
            &admin,
            &json!({"code": totp_code(&secret, now)}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    app.state.clock.advance(Duration::seconds(30));
    let code = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let up = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            &admin,
            &json!({"totp": code}),
        )
        .await;
    let up: Value = up.json().await.unwrap();
    let strong = up["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/users", Some(strong)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/auth/verify", Some(strong)).await.status(),
        StatusCode::OK
    );
    // A plain user is not concerned.
    let (user, _) = app.logged_in_user("ada@example.com").await;
    assert_eq!(
        app.get("/users/me/sessions", Some(&user)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_admin_at_aal2_removes_every_factor_revokes_every_session_and_the_owner_hears() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (victim, _, _) = user_with_totp(&app, "ada@example.com").await;
    let victim_id = claims(&victim)["sub"].as_str().unwrap().to_owned();
    let admin = app.admin_token().await;
    let weak = app
        .send(
            Method::DELETE,
            &format!("/users/{victim_id}/mfa"),
            &admin,
            &json!({}),
        )
        .await;
    assert_problem(weak, StatusCode::FORBIDDEN, "mfa_required").await;

    // The admin enrols and steps up.
    let enrolment: Value = app
        .send(Method::POST, "/users/me/mfa/totp", &admin, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = base32_decode(enrolment["secret"].as_str().unwrap());
    let now = app.state.clock.now().unix_timestamp();
    app.send(
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &admin,
        &json!({"code": totp_code(&secret, now)}),
    )
    .await;
    app.state.clock.advance(Duration::seconds(30));
    let code = totp_code(&secret, app.state.clock.now().unix_timestamp());
    let up: Value = app
        .send(
            Method::POST,
            "/auth/reauthenticate",
            &admin,
            &json!({"totp": code}),
        )
        .await
        .json()
        .await
        .unwrap();
    let strong = up["access_token"].as_str().unwrap();

    let missing = app
        .send(
            Method::DELETE,
            &format!("/users/{}/mfa", uuid::Uuid::nil()),
            strong,
            &json!({}),
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let reset = app
        .send(
            Method::DELETE,
            &format!("/users/{victim_id}/mfa"),
            strong,
            &json!({}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/users/me", Some(&victim)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let disabled = app.events_of_type("MFA_DISABLED").await;
    assert_eq!(disabled.last().unwrap()["data"]["method"], "all");
    // Notices: enrolment, then the reset.
    let enrolled = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(
        enrolled.contains("authenticator app was added"),
        "{enrolled:?}"
    );
    let reset = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(
        reset.contains("administrator removed every second factor"),
        "{reset:?}"
    );
}
