//! Invitations: an admin invites an address, the mailed link's page (a form, never spent by
//! its GET) or the JSON endpoint sets the password, which verifies the address and signs in.

use crate::support::{PASSWORD, assert_problem, spawn_app_with_mail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn an_invited_user_chooses_a_password_through_the_mailed_link() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;

    let invited = app
        .send(
            Method::POST,
            "/users/invitations",
            &admin,
            &json!({"email": "Grace@example.com", "name": "Grace", "role": "admin", "locale": "de"}),
        )
        .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let location = invited.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = invited.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", user["id"].as_str().unwrap()));
    assert_eq!(user["email"], "grace@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["role"], "admin");
    // No password yet: nothing signs in.
    assert_problem(
        app.login("grace@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let mail = smtp.wait_for_mail_to("grace@example.com", 1).await;
    assert!(mail.contains("7 Tage"), "the invitee's language: {mail}");
    let token = mail.invitation_token();

    // Opening the page spends nothing; a refused password neither.
    let page = app
        .get(&format!("/accept-invitation?token={token}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let weak = app
        .post(
            "/auth/accept-invitation",
            &json!({"token": token, "password": "short"}),
        )
        .await;
    let problem = assert_problem(weak, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "password");

    let accepted = app
        .post(
            "/auth/accept-invitation",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let pair: Value = accepted.json().await.unwrap();
    assert_eq!(pair["user"]["email_verified"], true);
    assert!(pair["access_token"].is_string() && pair["refresh_token"].is_string());
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.post(
            "/auth/accept-invitation",
            &json!({"token": token, "password": "another long passphrase"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    for kind in [
        "USER_REGISTERED",
        "USER_INVITED",
        "INVITATION_ACCEPTED",
        "EMAIL_VERIFIED",
    ] {
        let of_grace: Vec<Value> = app
            .events_of_type(kind)
            .await
            .into_iter()
            .filter(|event| event["data"]["email"] == "grace@example.com")
            .collect();
        assert_eq!(of_grace.len(), 1, "{kind}");
        match kind {
            "USER_REGISTERED" => assert_eq!(of_grace[0]["data"]["origin"], "invitation"),
            "USER_INVITED" => assert_eq!(of_grace[0]["data"]["role"], "admin"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_page_sets_the_password_by_form_and_old_links_are_refused() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    app.send(
        Method::POST,
        "/users/invitations",
        &admin,
        &json!({"email": "grace@example.com"}),
    )
    .await;
    let token = smtp
        .wait_for_mail_to("grace@example.com", 1)
        .await
        .invitation_token();
    let form = |password: &str| {
        app.client
            .post(format!("{}/accept-invitation", app.url))
            .form(&[("token", token.as_str()), ("password", password)])
            .send()
    };
    let refused = form("short").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("The password must be at least")
    );
    let done = form(PASSWORD).await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Your account is ready"));
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    let again = form(PASSWORD).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("Ask whoever invited you")
    );
}

#[tokio::test]
async fn only_admins_invite_a_taken_address_is_refused_and_links_expire() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    let (user_token, _) = app.logged_in_user("ada@example.com").await;
    assert_problem(
        app.send(
            Method::POST,
            "/users/invitations",
            &user_token,
            &json!({"email": "grace@example.com"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.send(
            Method::POST,
            "/users/invitations",
            &admin,
            &json!({"email": "ada@example.com"}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let refused = app
        .send(
            Method::POST,
            "/users/invitations",
            &admin,
            &json!({"email": "grace@example.com", "password": PASSWORD, "role": "nope"}),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"password") && fields.contains(&"role"),
        "{fields:?}"
    );

    app.send(
        Method::POST,
        "/users/invitations",
        &admin,
        &json!({"email": "grace@example.com"}),
    )
    .await;
    let token = smtp
        .wait_for_mail_to("grace@example.com", 1)
        .await
        .invitation_token();
    app.state
        .clock
        .advance(time::Duration::days(7) + time::Duration::seconds(1));
    assert_problem(
        app.post(
            "/auth/accept-invitation",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn an_invitation_left_unused_cannot_take_over_the_account_once_it_is_in_use() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    app.send(
        Method::POST,
        "/users/invitations",
        &admin,
        &json!({"email": "grace@example.com"}),
    )
    .await;
    let invitation = smtp
        .wait_for_mail_to("grace@example.com", 1)
        .await
        .invitation_token();
    // The invitee ignores the invitation and sets a password through a reset instead.
    app.post(
        "/auth/forgot-password",
        &json!({"email": "grace@example.com"}),
    )
    .await;
    let reset = smtp.wait_for_mail_to("grace@example.com", 2).await;
    let done = app
        .post(
            "/auth/reset-password",
            &json!({"token": reset.reset_token(), "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    // Whoever holds the old invitation mail gets nothing from it.
    assert_problem(
        app.post(
            "/auth/accept-invitation",
            &json!({"token": invitation, "password": "an attacker's long passphrase"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}
