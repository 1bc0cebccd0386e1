//! Sign-in by email: the mailed link (through its hosted page's button, never its GET) or the
//! code signs in once with `amr: ["email"]`, the same answer for every address, the second
//! factor still applies, and the setting turns it off.

use super::verified_login;
use crate::mfa::user_with_totp;
use crate::support::{PASSWORD, assert_problem, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_mailed_link_signs_in_once_and_opening_its_page_spends_nothing() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;

    let asked = app
        .post("/auth/email-login", &json!({"email": "ADA@example.com"}))
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(
        mail.subject().starts_with("Sign in to latchkey"),
        "{}",
        mail.subject()
    );
    assert!(mail.contains("work once, for 15 minutes"), "{mail}");
    let token = mail.login_token();

    // A mail scanner opens the link: a page with a button, and the token still works.
    for _ in 0..2 {
        let page = app.get(&format!("/email-login?token={token}"), None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("value=\"{token}\"")), "{html}");
        // The page names the account, so nobody signs in to one mailed by someone else unawares.
        assert!(
            html.contains("as <strong>ada@example.com</strong>"),
            "{html}"
        );
    }
    let signed_in = app
        .post("/auth/email-login/verify", &json!({"token": token}))
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let pair: Value = signed_in.json().await.unwrap();
    let access = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["email"]));
    assert_eq!(access["acr"], "aal1");
    assert_eq!(pair["user"]["email"], "ada@example.com");
    let me = app.get("/users/me", pair["access_token"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);

    // Once: the link again, and the code of the same mail, are spent.
    assert_problem(
        app.post("/auth/email-login/verify", &json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"email": "ada@example.com", "code": mail.reset_code()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(app.events_of_type("USER_LOGIN").await.len(), 2);
}

#[tokio::test]
async fn a_mailed_code_signs_in_dies_after_five_wrong_tries_and_expires() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    let request = json!({"email": "ada@example.com"});
    let ask = || app.post("/auth/email-login", &request);

    ask().await;
    let code = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_code();
    let signed_in = app
        .post(
            "/auth/email-login/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK);

    ask().await;
    let code = smtp
        .wait_for_mail_to("ada@example.com", 3)
        .await
        .reset_code();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        assert_problem(
            app.post(
                "/auth/email-login/verify",
                &json!({"email": "ada@example.com", "code": wrong}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_token",
        )
        .await;
    }
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;

    ask().await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 4).await;
    app.state.clock.advance(time::Duration::minutes(16));
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"token": mail.login_token()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn every_address_gets_the_same_answer_and_only_verified_accounts_a_mail() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    app.register("unverified@example.com", PASSWORD).await;
    smtp.wait_for_mail_to("unverified@example.com", 1).await;

    let mut bodies = Vec::new();
    for email in [
        "ada@example.com",
        "nobody@example.com",
        "unverified@example.com",
        "not an address",
    ] {
        let answer = app
            .post("/auth/email-login", &json!({"email": email}))
            .await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED, "{email}");
        bodies.push(answer.text().await.unwrap());
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    smtp.wait_for_mail_to("ada@example.com", 2).await;
    // The worker has taken every request by now (one at a time, in order).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(smtp.mails_to("nobody@example.com").is_empty());
    assert_eq!(
        smtp.mails_to("unverified@example.com").len(),
        1,
        "an unverified account gets no sign-in link: its password may be someone else's"
    );
}

#[tokio::test]
async fn the_second_factor_still_applies_and_the_setting_turns_it_off() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (_, secret, _) = user_with_totp(&app, "ada@example.com").await;
    // The "authenticator added" notice comes first.
    let notice = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(notice.subject().starts_with("Security notice"));
    app.post("/auth/email-login", &json!({"email": "ada@example.com"}))
        .await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    let answer = app
        .post(
            "/auth/email-login/verify",
            &json!({"token": mail.login_token()}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let step: Value = answer.json().await.unwrap();
    assert_eq!(step["code"], "mfa_required");
    // The enrolment's code is spent: the next step's.
    app.state.clock.advance(time::Duration::seconds(30));
    let code = crate::mfa::totp_code(&secret, app.state.clock.now().unix_timestamp());
    let verified = app
        .post(
            "/auth/mfa/verify",
            &json!({"mfa_token": step["mfa_token"], "totp": code}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let pair: Value = verified.json().await.unwrap();
    let access = claims(pair["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["email", "otp", "mfa"]));
    assert_eq!(access["acr"], "aal2");

    let (off, _smtp) = spawn_app_with_mail(&["--email-login", "false"]).await;
    for (path, body) in [
        ("/auth/email-login", json!({"email": "ada@example.com"})),
        ("/auth/email-login/verify", json!({"token": "anything"})),
    ] {
        assert_problem(
            off.post(path, &body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn a_new_request_keeps_the_earlier_link_and_a_reset_or_withdrawn_verification_kills_it() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    let request = json!({"email": "ada@example.com"});

    // Someone asking again cannot cancel the owner's link (only the earlier code).
    app.post("/auth/email-login", &request).await;
    let first = smtp.wait_for_mail_to("ada@example.com", 2).await;
    app.post("/auth/email-login", &request).await;
    smtp.wait_for_mail_to("ada@example.com", 3).await;
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"email": "ada@example.com", "code": first.reset_code()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let signed_in = app
        .post(
            "/auth/email-login/verify",
            &json!({"token": first.login_token()}),
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::OK);

    // A password reset ends every outstanding sign-in link.
    app.post("/auth/email-login", &request).await;
    let outstanding = smtp.wait_for_mail_to("ada@example.com", 4).await;
    super::forgot_password(&app, "ada@example.com").await;
    let reset = smtp.wait_for_mail_to("ada@example.com", 5).await;
    let done = app
        .post(
            "/auth/reset-password",
            &json!({"token": reset.reset_token(), "new_password": super::NEW_PASSWORD}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"token": outstanding.login_token()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;

    // So does an admin withdrawing the address's verification.
    // (The reset's "password changed" notice is the sixth mail.)
    smtp.wait_for_mail_to("ada@example.com", 6).await;
    app.post("/auth/email-login", &request).await;
    let outstanding = smtp.wait_for_mail_to("ada@example.com", 7).await;
    let admin = app.admin_token().await;
    let pair: Value = app
        .login("ada@example.com", super::NEW_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let id = pair["user"]["id"].as_str().unwrap().to_owned();
    let patched = app
        .send(
            reqwest::Method::PATCH,
            &format!("/users/{id}"),
            &admin,
            &json!({"email_verified": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"token": outstanding.login_token()}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn reset_and_sign_in_codes_share_one_cap_of_wrong_tries() {
    // The per-network budgets would stop the guesses first: this is about the per-account cap.
    let (app, smtp) = spawn_app_with_mail(&[
        "--rate-limit-reset-code-ip",
        "off",
        "--rate-limit-reset-ip",
        "off",
        "--rate-limit-reset-account",
        "off",
    ])
    .await;
    verified_login(&app, &smtp, "ada@example.com").await;
    let wrong = |code: &str| if code == "000000" { "000001" } else { "000000" }.to_owned();
    // Ten wrong reset codes, over two mails: the hour's cap.
    for nth in [2, 3] {
        super::forgot_password(&app, "ada@example.com").await;
        let code = smtp
            .wait_for_mail_to("ada@example.com", nth)
            .await
            .reset_code();
        for _ in 0..5 {
            let guess = json!({"email": "ada@example.com", "code": wrong(&code), "new_password": super::NEW_PASSWORD});
            app.post("/auth/reset-password", &guess).await;
        }
    }
    // A sign-in code buys no more guesses: even the right one is refused within the hour.
    app.post("/auth/email-login", &json!({"email": "ada@example.com"}))
        .await;
    let code = smtp
        .wait_for_mail_to("ada@example.com", 4)
        .await
        .reset_code();
    assert_problem(
        app.post(
            "/auth/email-login/verify",
            &json!({"email": "ada@example.com", "code": code}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn sign_in_requests_have_a_budget_of_their_own() {
    let (app, _smtp) = spawn_app_with_mail(&["--rate-limit-email-login-account", "2/10m"]).await;
    let request = json!({"email": "ada@example.com"});
    for _ in 0..2 {
        let asked = app.post("/auth/email-login", &request).await;
        assert_eq!(asked.status(), StatusCode::ACCEPTED);
    }
    assert_problem(
        app.post("/auth/email-login", &request).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Someone spending it does not take the owner's way back through a reset.
    let forgot = app.post("/auth/forgot-password", &request).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
}
