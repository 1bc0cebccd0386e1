//! Email change with double confirmation: the new address confirms, the old one gets a notice
//! whose link undoes the change (and takes the account back from whoever asked for it). Pages
//! never spend a link on GET.

use crate::support::{PASSWORD, SmtpServer, TestApp, assert_problem, spawn_app_with_mail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::Duration;

async fn ask(app: &TestApp, token: &str, new_email: &str) -> reqwest::Response {
    app.send(
        Method::POST,
        "/users/me/email",
        token,
        &json!({"new_email": new_email}),
    )
    .await
}

/// Logs in once more: a second session of the account, as (access token, refresh token).
async fn second_session(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let body: Value = app.login(email, password).await.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refreshes(app: &TestApp, refresh_token: &str) -> bool {
    app.post("/auth/refresh", &json!({"refresh_token": refresh_token}))
        .await
        .status()
        == StatusCode::OK
}

/// Asks, confirms with the mailed link; gives the confirmation's answer.
async fn change(
    app: &TestApp,
    smtp: &SmtpServer,
    token: &str,
    new_email: &str,
) -> reqwest::Response {
    let before = smtp.mails_to(new_email).len();
    assert_eq!(
        ask(app, token, new_email).await.status(),
        StatusCode::ACCEPTED
    );
    let mail = smtp.wait_for_mail_to(new_email, before + 1).await;
    app.post(
        "/auth/confirm-email-change",
        &json!({"token": mail.email_change_token()}),
    )
    .await
}

#[tokio::test]
async fn the_new_address_confirms_and_only_the_asking_session_survives() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let (other_access, other_refresh) = second_session(&app, "ada@example.com", PASSWORD).await;

    let asked = ask(&app, &token, "Ada@Example.org").await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let confirmation = smtp.wait_for_mail_to("ada@example.org", 1).await;
    let notice = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(notice.contains("ada@example.org"), "{notice}");
    assert!(notice.contains("7 days"), "{notice}");
    let confirm_token = confirmation.email_change_token();
    notice.revert_token();

    // Nothing changes until the new address confirms; opening its page spends nothing.
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");
    let page = app
        .get(
            &format!("/confirm-email-change?token={confirm_token}"),
            None,
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("ada@example.org"));
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    let confirmed = app
        .post(
            "/auth/confirm-email-change",
            &json!({"token": confirm_token}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let user: Value = confirmed.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.org");
    assert_eq!(user["email_verified"], true);

    // The asking session lives on; the other one is gone.
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    assert!(refreshes(&app, login["refresh_token"].as_str().unwrap()).await);
    assert_eq!(
        app.get("/users/me", Some(&other_access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!refreshes(&app, &other_refresh).await);
    assert_eq!(
        app.login("ada@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // The link works once.
    assert_problem(
        app.post(
            "/auth/confirm-email-change",
            &json!({"token": confirm_token}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;

    let requested = app.events_of_type("EMAIL_CHANGE_REQUESTED").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["data"]["email"], "ada@example.com");
    assert_eq!(requested[0]["data"]["new_email"], "ada@example.org");
    let changed = app.events_of_type("EMAIL_CHANGED").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["data"]["email"], "ada@example.org");
    assert_eq!(changed[0]["data"]["old_email"], "ada@example.com");
    let revoked: Vec<Value> = app
        .events_of_type("SESSION_REVOKED")
        .await
        .into_iter()
        .filter(|event| event["data"]["reason"] == "email_changed")
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "the two other sessions, not the asking one"
    );
}

#[tokio::test]
async fn the_revert_link_takes_the_account_back_from_whoever_changed_it() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    // The intruder signed in with a stolen password and moved the account to their address.
    let (intruder, _) = app.logged_in_user("ada@example.com").await;
    let confirmed = change(&app, &smtp, &intruder, "mallory@example.net").await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let revert_token = smtp
        .wait_for_mail_to("ada@example.com", 1)
        .await
        .revert_token();

    // While the change can be undone, nobody can take the vacated address.
    assert_problem(
        app.register("ada@example.com", PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;

    // A mail scanner opening the link spends nothing.
    let page = app
        .get(&format!("/revert-email-change?token={revert_token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.unwrap();
    assert!(text.contains("mallory@example.net") && text.contains("ada@example.com"));

    let reverted = app
        .post("/auth/revert-email-change", &json!({"token": revert_token}))
        .await;
    assert_eq!(reverted.status(), StatusCode::OK);
    let user: Value = reverted.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], true);
    // Every session is gone, and the password the intruder knew with it.
    assert_eq!(
        app.get("/users/me", Some(&intruder)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for email in ["ada@example.com", "mallory@example.net"] {
        assert_problem(
            app.login(email, PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    // The owner chooses a new password with the mailed reset.
    let reset_mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(reset_mail.contains("mallory@example.net"), "{reset_mail}");
    let reset = app
        .post(
            "/auth/reset-password",
            &json!({"token": reset_mail.reset_token(), "new_password": "the owner's new passphrase"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("ada@example.com", "the owner's new passphrase")
            .await
            .status(),
        StatusCode::OK
    );
    assert_problem(
        app.post("/auth/revert-email-change", &json!({"token": revert_token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let events = app.events_of_type("EMAIL_CHANGE_REVERTED").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["email"], "ada@example.com");
    assert_eq!(events[0]["data"]["reverted_email"], "mallory@example.net");
    let reasons: Vec<Value> = app
        .events_of_type("SESSION_REVOKED")
        .await
        .into_iter()
        .map(|event| event["data"]["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("email_change_reverted")),
        "{reasons:?}"
    );
}

/// Moves `owner`'s account twice, a second apart: gives (the owner's revert token, the revert
/// token that went to the intruder's first address).
async fn moved_twice(app: &TestApp, smtp: &SmtpServer, owner: &str, tag: &str) -> (String, String) {
    let (intruder, _) = app.logged_in_user(owner).await;
    let (first, second) = (
        format!("first-{tag}@example.net"),
        format!("second-{tag}@example.net"),
    );
    assert_eq!(
        change(app, smtp, &intruder, &first).await.status(),
        StatusCode::OK
    );
    app.state.clock.advance(Duration::seconds(1));
    assert_eq!(
        change(app, smtp, &intruder, &second).await.status(),
        StatusCode::OK
    );
    let owners = smtp.wait_for_mail_to(owner, 1).await.revert_token();
    let intruders = smtp.wait_for_mail_to(&first, 2).await.revert_token();
    (owners, intruders)
}

async fn revert(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/revert-email-change", &json!({"token": token}))
        .await
}

#[tokio::test]
async fn an_intruders_own_revert_link_cannot_cancel_the_owners() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    // The intruder uses their link first: the owner's still works.
    let (owners, intruders) = moved_twice(&app, &smtp, "ada@example.com", "a").await;
    assert_eq!(revert(&app, &intruders).await.status(), StatusCode::OK);
    let reverted = revert(&app, &owners).await;
    assert_eq!(reverted.status(), StatusCode::OK);
    let user: Value = reverted.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.com");

    // The owner uses theirs first: the intruder's later link is dead.
    let (owners, intruders) = moved_twice(&app, &smtp, "bob@example.com", "b").await;
    assert_eq!(revert(&app, &owners).await.status(), StatusCode::OK);
    assert_problem(
        revert(&app, &intruders).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn undoing_also_removes_the_factors_the_intruder_could_enrol() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    // The intruder's recent sign-in enrolled an authenticator app before moving the account.
    let (intruder, _, _) = crate::mfa::user_with_totp(&app, "ada@example.com").await;
    let confirmed = change(&app, &smtp, &intruder, "mallory@example.net").await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let notice = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert_eq!(
        revert(&app, &notice.revert_token()).await.status(),
        StatusCode::OK
    );
    let reset_mail = smtp.wait_for_mail_to("ada@example.com", 3).await;
    let reset = app
        .post(
            "/auth/reset-password",
            &json!({"token": reset_mail.reset_token(), "new_password": "the owner's new passphrase"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    // No second factor is asked for: the intruder's authenticator is gone.
    let login = app
        .login("ada@example.com", "the owner's new passphrase")
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let body: Value = login.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
    let disabled = app.events_of_type("MFA_DISABLED").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["data"]["method"], "all");
}

#[tokio::test]
async fn a_stale_admin_token_cannot_move_an_account() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/users/{}", me["id"].as_str().unwrap());
    app.state.clock.advance(Duration::minutes(11));
    assert_problem(
        app.send(
            Method::PATCH,
            &path,
            &admin,
            &json!({"email": "mallory@example.net", "role": "admin"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "reauthentication_required",
    )
    .await;
    let user: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
    assert_eq!(user["role"], "user", "nothing of the PATCH applied");
    assert!(smtp.mails_to("mallory@example.net").is_empty());
}

#[tokio::test]
async fn a_taken_address_is_refused_or_concealed_and_taken_meanwhile_is_a_conflict() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.create_verified_user("grace@example.com", PASSWORD)
        .await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    assert_problem(
        ask(&app, &token, "grace@example.com").await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let same = assert_problem(
        ask(&app, &token, "ADA@example.com").await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(same["errors"][0]["field"], "new_email");
    assert_problem(
        ask(&app, &token, "not an address").await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;

    // Asked while free, taken before the confirmation: 409, the link is not spent.
    assert_eq!(
        ask(&app, &token, "ada@example.org").await.status(),
        StatusCode::ACCEPTED
    );
    let confirm_token = smtp
        .wait_for_mail_to("ada@example.org", 1)
        .await
        .email_change_token();
    app.create_verified_user("ada@example.org", PASSWORD).await;
    assert_problem(
        app.post(
            "/auth/confirm-email-change",
            &json!({"token": confirm_token}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");

    // A stale authentication must authenticate again first.
    app.state.clock.advance(Duration::minutes(11));
    assert_problem(
        ask(&app, &token, "ada@example.net").await,
        StatusCode::FORBIDDEN,
        "reauthentication_required",
    )
    .await;
}

#[tokio::test]
async fn conceal_mode_answers_a_taken_address_like_a_free_one_and_tells_its_owner() {
    let (app, smtp) = spawn_app_with_mail(&["--conceal-existing-accounts", "true"]).await;
    app.create_verified_user("grace@example.com", PASSWORD)
        .await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let free = ask(&app, &token, "ada@example.org").await;
    assert_eq!(free.status(), StatusCode::ACCEPTED);
    let earlier = smtp
        .wait_for_mail_to("ada@example.org", 1)
        .await
        .email_change_token();
    let taken = ask(&app, &token, "grace@example.com").await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    assert_eq!(
        taken.json::<Value>().await.unwrap(),
        free.json::<Value>().await.unwrap()
    );
    let owner = smtp.wait_for_mail_to("grace@example.com", 1).await;
    assert!(owner.contains("already has one"), "{owner}");
    assert!(!owner.contains("/confirm-email-change"), "{owner}");
    // The caller sees what a free address gives: a notice per request, the earlier link dead.
    let second_notice = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(
        second_notice.contains("grace@example.com"),
        "{second_notice}"
    );
    assert_problem(
        app.post("/auth/confirm-email-change", &json!({"token": earlier}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(app.events_of_type("EMAIL_CHANGE_REQUESTED").await.len(), 2);
}

#[tokio::test]
async fn an_admin_changes_an_address_with_the_same_mails_and_no_session_survives() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/users/{}", me["id"].as_str().unwrap());
    let patched = app
        .send(
            Method::PATCH,
            &path,
            &admin,
            &json!({"email": "Ada@Example.org", "name": "Ada L."}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let user: Value = patched.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.com", "asked, not set");
    assert_eq!(user["name"], "Ada L.");
    let notice = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(notice.contains("An administrator"), "{notice}");
    let confirm_token = smtp
        .wait_for_mail_to("ada@example.org", 1)
        .await
        .email_change_token();
    let confirmed = app
        .post(
            "/auth/confirm-email-change",
            &json!({"token": confirm_token}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let requested = app.events_of_type("EMAIL_CHANGE_REQUESTED").await;
    assert!(requested[0]["data"]["by"].is_string());

    // A taken address is refused, and the rest of the change with it.
    app.create_verified_user("grace@example.com", PASSWORD)
        .await;
    assert_problem(
        app.send(
            Method::PATCH,
            &path,
            &admin,
            &json!({"email": "grace@example.com", "name": "Not Applied"}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let user: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
    assert_eq!(user["name"], "Ada L.");
}

#[tokio::test]
async fn the_pages_confirm_and_revert_by_form_in_the_users_language() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    app.send(
        Method::PATCH,
        "/users/me",
        &token,
        &json!({"locale": "de-AT"}),
    )
    .await;
    assert_eq!(
        ask(&app, &token, "ada@example.org").await.status(),
        StatusCode::ACCEPTED
    );
    let confirmation = smtp.wait_for_mail_to("ada@example.org", 1).await;
    assert!(confirmation.contains("24 Stunden"), "{confirmation}");
    let notice = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(notice.contains("rückgängig"), "{notice}");
    let form = |path: &str, token: String| {
        app.client
            .post(format!("{}/{path}", app.url))
            .header("accept-language", "de")
            .form(&[("token", token)])
            .send()
    };
    let done = form("confirm-email-change", confirmation.email_change_token())
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("ada@example.org"));
    let again = form("confirm-email-change", confirmation.email_change_token())
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let undone = form("revert-email-change", notice.revert_token())
        .await
        .unwrap();
    assert_eq!(undone.status(), StatusCode::OK);
    assert!(undone.text().await.unwrap().contains("rückgängig gemacht"));
    let reset = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(reset.contains("Passwort"), "{reset}");
}
