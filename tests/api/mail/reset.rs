//! Resetting a password: forgot-password answers alike, the mailed link and code each work once
//! and cancel each other, expire, and die with a disable or a password change.

use super::{NEW_PASSWORD, forgot_password, reset, verified_login};
use crate::support::{PASSWORD, assert_problem, error_fields, spawn_app_with_mail};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn forgot_password_answers_alike_and_mails_a_link_and_a_code() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;

    let known = forgot_password(&app, "ADA@example.com").await;
    let unknown = forgot_password(&app, "nobody@example.com").await;

    assert_eq!(
        (known.status(), unknown.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.mails().len(), 2, "no mail for the unknown address");
    assert!(
        mail.subject().starts_with("Reset your"),
        "{}",
        mail.subject()
    );
    let link = mail.reset_link();
    assert!(link.starts_with(&format!("{}/reset-password?token=", app.url)));
    let code = mail.reset_code();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        app.events_of_type("PASSWORD_RESET_REQUESTED").await.len(),
        1
    );
}

#[tokio::test]
async fn a_reset_by_link_sets_the_password_ends_every_session_and_kills_the_code() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let login = verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;

    let response = reset(
        &app,
        json!({"token": mail.reset_token(), "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(
            "/auth/verify",
            Some(login["access_token"].as_str().unwrap())
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": login["refresh_token"]})
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let by_code = reset(&app, json!({"email": "ada@example.com", "code": mail.reset_code(), "new_password": "yet another passphrase"})).await;
    assert_problem(by_code, StatusCode::BAD_REQUEST, "invalid_token").await;
    let notice = smtp.wait_for_mail_to("ada@example.com", 3).await;
    assert!(notice.contains("password was changed"), "{notice}");
    assert_eq!(app.events_of_type("PASSWORD_RESET").await.len(), 1);
}

#[tokio::test]
async fn a_reset_by_code_works_once_and_marks_the_email_verified() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    forgot_password(&app, "ada@example.com").await;
    let mail = smtp.wait_for_mail_to("ada@example.com", 2).await;
    let body = json!({"email": "Ada@Example.com", "code": mail.reset_code(), "new_password": NEW_PASSWORD});

    assert_eq!(
        reset(&app, body.clone()).await.status(),
        StatusCode::NO_CONTENT
    );

    let login = app.login("ada@example.com", NEW_PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK, "a reset proves the address");
    assert_problem(
        reset(&app, body).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let link = json!({"token": mail.reset_token(), "new_password": "yet another passphrase"});
    assert_problem(
        reset(&app, link).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_new_password_that_breaks_the_policy_leaves_the_link_usable() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let token = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_token();

    let weak = reset(
        &app,
        json!({"token": token, "new_password": "password1234"}),
    )
    .await;

    let problem = assert_problem(weak, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["new_password"]);
    assert_eq!(
        reset(&app, json!({"token": token, "new_password": NEW_PASSWORD}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_new_request_replaces_the_code_but_not_the_link_and_a_reset_ends_every_link() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let first = smtp.wait_for_mail_to("ada@example.com", 2).await;
    forgot_password(&app, "ada@example.com").await;
    let second = smtp.wait_for_mail_to("ada@example.com", 3).await;

    // One code lives at a time (six digits are guessable); a link is not, and a request made by
    // someone else must not cancel the owner's.
    assert_problem(
        reset(
            &app,
            json!({"email": "ada@example.com", "code": first.reset_code(), "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(
        reset(
            &app,
            json!({"token": first.reset_token(), "new_password": NEW_PASSWORD})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    // The reset ends every other outstanding link and code.
    assert_problem(
        reset(
            &app,
            json!({"token": second.reset_token(), "new_password": "yet another passphrase"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_reset_link_expires_after_an_hour() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let link = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_token();
    app.state
        .clock
        .advance(time::Duration::hours(1) + time::Duration::seconds(1));
    assert_problem(
        reset(&app, json!({"token": link, "new_password": NEW_PASSWORD})).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn reset_requests_need_a_token_or_an_email_and_code() {
    let (app, _smtp) = spawn_app_with_mail(&[]).await;

    for (body, field) in [
        (json!({"new_password": NEW_PASSWORD}), "token"),
        (
            json!({"email": "ada@example.com", "new_password": NEW_PASSWORD}),
            "code",
        ),
        (
            json!({"token": "t", "email": "ada@example.com", "code": "123456", "new_password": NEW_PASSWORD}),
            "token",
        ),
        (json!({"token": "t"}), "new_password"),
    ] {
        let problem = assert_problem(
            reset(&app, body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
        )
        .await;
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{problem}"
        );
    }
    let unknown = reset(
        &app,
        json!({"email": "nobody@example.com", "code": "123456", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(unknown, StatusCode::BAD_REQUEST, "invalid_token").await;
}

#[tokio::test]
async fn disabling_an_account_kills_its_outstanding_reset_links() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    let login = verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let token = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_token();

    let path = format!("/users/{}", login["user"]["id"].as_str().unwrap());
    app.client
        .patch(format!("{}{path}", app.url))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();

    assert_problem(
        reset(&app, json!({"token": token, "new_password": NEW_PASSWORD})).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    // The account still exists, so a new request is mailed (API.md: forgot-password mails any
    // existing account); logging in stays refused as account_disabled.
    forgot_password(&app, "ada@example.com").await;
    smtp.wait_for_mail_to("ada@example.com", 3).await;
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
}

#[tokio::test]
async fn a_password_change_kills_outstanding_reset_links() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let login = verified_login(&app, &smtp, "ada@example.com").await;
    forgot_password(&app, "ada@example.com").await;
    let token = smtp
        .wait_for_mail_to("ada@example.com", 2)
        .await
        .reset_token();

    app.send(
        Method::PUT,
        "/users/me/password",
        login["access_token"].as_str().unwrap(),
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;

    let stale = reset(
        &app,
        json!({"token": token, "new_password": "yet another passphrase"}),
    )
    .await;
    assert_problem(stale, StatusCode::BAD_REQUEST, "invalid_token").await;
}
