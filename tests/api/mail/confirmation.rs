//! Confirming an email address: the mailed link confirms once and expires, resend mails only
//! unverified accounts, and confirming spends every other link.

use super::{confirm, verified_login};
use crate::support::{PASSWORD, assert_problem, error_fields, spawn_app_with_mail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn registration_mails_a_link_that_confirms_the_email_once() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;

    assert!(mail.contains("To: ada@example.com"), "{mail}");
    assert!(
        mail.subject().starts_with("Confirm your email"),
        "{}",
        mail.subject()
    );
    assert!(mail.contains("Content-Type: text/html") && mail.contains("Content-Type: text/plain"));
    let link = mail.confirm_link();
    assert!(
        link.starts_with(&format!("{}/confirm-email?token=", app.url)),
        "{link}"
    );
    let token = mail.confirm_token();
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;

    let confirmed = confirm(&app, &token).await;

    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(
        confirmed.json::<Value>().await.unwrap()["email_verified"],
        true
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_problem(
        confirm(&app, &token).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(app.events_of_type("EMAIL_VERIFIED").await.len(), 1);
}

#[tokio::test]
async fn a_confirmation_link_expires_after_24_hours() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let token = smtp
        .wait_for_mail_to("ada@example.com", 1)
        .await
        .confirm_token();

    app.state
        .clock
        .advance(time::Duration::hours(24) + time::Duration::seconds(1));

    assert_problem(
        confirm(&app, &token).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_confirmation_token_or_a_missing_field_is_refused() {
    let (app, _smtp) = spawn_app_with_mail(&[]).await;

    assert_problem(
        confirm(&app, "no-such-token").await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let missing = assert_problem(
        app.post("/auth/confirm-email", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&missing), ["token"]);
}

#[tokio::test]
async fn resend_answers_alike_for_every_address_and_mails_only_unverified_accounts() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "verified@example.com").await;
    app.register("pending@example.com", PASSWORD).await;
    smtp.wait_for_mails(2).await;

    let mut bodies = Vec::new();
    for email in [
        "verified@example.com",
        "pending@example.com",
        "nobody@example.com",
        "not-an-address",
    ] {
        let response = app
            .post("/auth/resend-confirmation", &json!({"email": email}))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        bodies.push(response.text().await.unwrap());
    }

    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    let resent = smtp.wait_for_mail_to("pending@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.mails().len(),
        3,
        "only the unverified account got a new mail"
    );
    assert!(resent.contains("To: pending@example.com"));
    assert_eq!(
        confirm(&app, &resent.confirm_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn confirming_spends_every_other_confirmation_link() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    app.post(
        "/auth/resend-confirmation",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let (first, second) = (
        smtp.wait_for_mail_to("ada@example.com", 1)
            .await
            .confirm_token(),
        smtp.wait_for_mail_to("ada@example.com", 2)
            .await
            .confirm_token(),
    );

    assert_eq!(confirm(&app, &second).await.status(), StatusCode::OK);

    assert_problem(
        confirm(&app, &first).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(app.events_of_type("EMAIL_VERIFIED").await.len(), 1);
}
