//! Getting mail out: the durable queue across SMTP outages and restarts, `.eml` files without
//! SMTP, links only from the public URL, and the notices (password changed, conceal mode).

use super::{NEW_PASSWORD, confirm, verified_login};
use crate::support::{
    Mail, PASSWORD, SmtpServer, free_port, spawn_app_with, spawn_app_with_mail, wait_for_eml,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn changing_the_password_mails_a_notice() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let login = verified_login(&app, &smtp, "ada@example.com").await;

    app.send(
        Method::PUT,
        "/users/me/password",
        login["access_token"].as_str().unwrap(),
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;

    let notice = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(notice.contains("To: ada@example.com") && notice.contains("password was changed"));
}

#[tokio::test]
async fn links_come_only_from_the_public_url_whatever_the_host_header_says() {
    let (app, smtp) = spawn_app_with_mail(&["--public-url", "https://id.example.com/api"]).await;

    app.client
        .post(format!("{}/auth/register", app.url))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(
        mail.confirm_link()
            .starts_with("https://id.example.com/api/confirm-email?token=")
    );
    assert!(!mail.contains("evil.example"));
}

#[tokio::test]
async fn conceal_mode_answers_a_taken_email_like_a_new_one_and_tells_the_owner() {
    let (app, smtp) = spawn_app_with_mail(&["--conceal-existing-accounts", "true"]).await;
    let first = app.register("ada@example.com", PASSWORD).await;
    let first_location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    smtp.wait_for_mail_to("ada@example.com", 1).await;

    let again = app
        .register("ADA@example.com", "another good passphrase")
        .await;

    assert_eq!(again.status(), StatusCode::CREATED);
    let again_location = again.headers()["location"].to_str().unwrap().to_owned();
    let again: Value = again.json().await.unwrap();
    assert_ne!(again["id"], first["id"]);
    assert_eq!(
        again_location,
        format!("/users/{}", again["id"].as_str().unwrap())
    );
    assert_ne!(again_location, first_location);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&first));
    assert_eq!(
        (&again["email"], &again["email_verified"]),
        (&json!("ada@example.com"), &json!(false))
    );
    let notice = smtp.wait_for_mail_to("ada@example.com", 2).await;
    assert!(notice.contains("Someone tried to") && notice.contains("To: ada@example.com"));
    assert_eq!(app.events_of_type("USER_REGISTERED").await.len(), 1);
}

#[tokio::test]
async fn a_registration_succeeds_while_smtp_is_down_and_its_mail_arrives_when_it_is_back() {
    let port = free_port().await;
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&["--smtp-url", &url, "--mail-retry-base", "100ms"]).await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let smtp = SmtpServer::start_on(port).await;
    // The retry is due on the service's clock: move it past the backoff.
    app.state.clock.advance(time::Duration::seconds(1));

    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    assert!(mail.contains("To: ada@example.com"));
    assert_eq!(
        confirm(&app, &mail.confirm_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn mail_queued_before_a_restart_is_sent_after_it() {
    let port = free_port().await;
    let url = format!("smtp://127.0.0.1:{port}");
    let first = spawn_app_with(&["--smtp-url", &url, "--mail-retry-base", "100ms"]).await;
    first.register("ada@example.com", PASSWORD).await;
    let database_url = first.database_url();
    let dir = first.stop().await;

    let smtp = SmtpServer::start_on(port).await;
    let key_file = dir.path().join("latchkey.key").display().to_string();
    let second = spawn_app_with(&[
        "--smtp-url",
        &url,
        "--database-url",
        &database_url,
        "--secret-key-file",
        &key_file,
    ])
    .await;
    // The first instance already tried once and scheduled a retry: move past it.
    second.state.clock.advance(time::Duration::seconds(5));

    let mail = smtp.wait_for_mail_to("ada@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails().len(), 1, "sent once");
    assert_eq!(
        confirm(&second, &mail.confirm_token()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_smtp_each_mail_is_written_as_an_eml_file() {
    let mail_dir = tempfile::tempdir().unwrap();
    let dir = mail_dir.path().display().to_string();
    let app = spawn_app_with(&["--mail-dir", &dir]).await;

    app.register("ada@example.com", PASSWORD).await;

    let file = wait_for_eml(mail_dir.path()).await;
    let mail = Mail::from(std::fs::read_to_string(file).unwrap());
    assert!(mail.contains("To: ada@example.com"));
    // The link stands whole and literal in the file, as a person or a script would copy it.
    let link = mail.confirm_link();
    assert!(
        link.starts_with(&format!("{}/confirm-email?token=", app.url)),
        "the link, literally: {link}"
    );
    let token = mail.confirm_token();
    assert!(
        token.len() == 43
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a whole 256-bit token: {token}"
    );
    assert_eq!(confirm(&app, &token).await.status(), StatusCode::OK);
}
