//! Mail flows over a real SMTP conversation: confirmation, resend, reset by link and by code,
//! notices, conceal mode, the durable queue across SMTP outages and restarts.

use crate::helpers::{
    PASSWORD, TestApp, assert_problem, error_fields, spawn_app_with, spawn_app_with_mail,
};
use crate::smtp::{self, SmtpServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const NEW_PASSWORD: &str = "a brand new passphrase";

/// Confirms with the token and, as a self-registered account's first confirmation needs, the
/// password every test account has.
async fn confirm(app: &TestApp, token: &str) -> reqwest::Response {
    app.post(
        "/auth/confirm-email",
        &json!({"token": token, "password": PASSWORD}),
    )
    .await
}

async fn reset(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/auth/reset-password", &body).await
}

/// Registers, follows the mailed confirmation link: a verified account, logged in.
async fn verified_login(app: &TestApp, smtp: &SmtpServer, email: &str) -> Value {
    let before = smtp.messages().len();
    app.register(email, PASSWORD).await;
    let mails = smtp.wait_for(before + 1, WAIT).await;
    confirm(app, &smtp::token(&mails[before], "/confirm-email?token=")).await;
    app.login(email, PASSWORD).await.json().await.unwrap()
}

#[tokio::test]
async fn registration_mails_a_link_that_confirms_the_email_once() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let mails = smtp.wait_for(1, WAIT).await;

    assert!(mails[0].contains("To: ada@example.com"), "{}", mails[0]);
    assert!(
        mails[0].contains("Content-Type: text/html")
            && mails[0].contains("Content-Type: text/plain")
    );
    let link = smtp::link(&mails[0], "/confirm-email?token=");
    assert!(
        link.starts_with(&format!("{}/confirm-email?token=", app.url)),
        "{link}"
    );
    let token = smtp::token(&mails[0], "/confirm-email?token=");
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
    let token = smtp::token(&smtp.wait_for(1, WAIT).await[0], "/confirm-email?token=");

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
    smtp.wait_for(2, WAIT).await;

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
    let mails = smtp.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        smtp.messages().len(),
        3,
        "only the unverified account got a new mail"
    );
    assert!(mails[2].contains("To: pending@example.com"));
    assert_eq!(
        confirm(&app, &smtp::token(&mails[2], "/confirm-email?token="))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn forgot_password_answers_alike_and_mails_a_link_and_a_code() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;

    let known = app
        .post(
            "/auth/forgot-password",
            &json!({"email": "ADA@example.com"}),
        )
        .await;
    let unknown = app
        .post(
            "/auth/forgot-password",
            &json!({"email": "nobody@example.com"}),
        )
        .await;

    assert_eq!(
        (known.status(), unknown.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let mails = smtp.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 2, "no mail for the unknown address");
    let link = smtp::link(&mails[1], "/reset-password?token=");
    assert!(link.starts_with(&format!("{}/reset-password?token=", app.url)));
    let code = smtp::code(&mails[1]);
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
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let mail = smtp.wait_for(2, WAIT).await[1].clone();

    let response = reset(&app, json!({"token": smtp::token(&mail, "/reset-password?token="), "new_password": NEW_PASSWORD})).await;

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
    let by_code = reset(&app, json!({"email": "ada@example.com", "code": smtp::code(&mail), "new_password": "yet another passphrase"})).await;
    assert_problem(by_code, StatusCode::BAD_REQUEST, "invalid_token").await;
    let notice = smtp.wait_for(3, WAIT).await[2].clone();
    assert!(notice.contains("password was changed"), "{notice}");
    assert_eq!(app.events_of_type("PASSWORD_RESET").await.len(), 1);
}

#[tokio::test]
async fn a_reset_by_code_works_once_and_marks_the_email_verified() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let mail = smtp.wait_for(2, WAIT).await[1].clone();
    let body = json!({"email": "Ada@Example.com", "code": smtp::code(&mail), "new_password": NEW_PASSWORD});

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
    let link = json!({"token": smtp::token(&mail, "/reset-password?token="), "new_password": "yet another passphrase"});
    assert_problem(
        reset(&app, link).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_code_dies_at_its_fifth_wrong_try() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let code = smtp::code(&smtp.wait_for(2, WAIT).await[1]);
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for _ in 0..5 {
        let response = reset(
            &app,
            json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
        )
        .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_token").await;
    }
    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_problem(right, StatusCode::BAD_REQUEST, "invalid_token").await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_password_that_breaks_the_policy_leaves_the_link_usable() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let token = smtp::token(&smtp.wait_for(2, WAIT).await[1], "/reset-password?token=");

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
    let forgot = json!({"email": "ada@example.com"});
    app.post("/auth/forgot-password", &forgot).await;
    let first = smtp.wait_for(2, WAIT).await[1].clone();
    app.post("/auth/forgot-password", &forgot).await;
    let second = smtp.wait_for(3, WAIT).await[2].clone();

    // One code lives at a time (six digits are guessable); a link is not, and a request made by
    // someone else must not cancel the owner's.
    assert_problem(
        reset(
            &app,
            json!({"email": "ada@example.com", "code": smtp::code(&first), "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    let first_link = smtp::token(&first, "/reset-password?token=");
    assert_eq!(
        reset(
            &app,
            json!({"token": first_link, "new_password": NEW_PASSWORD})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    // The reset ends every other outstanding link and code.
    let second_link = smtp::token(&second, "/reset-password?token=");
    assert_problem(
        reset(
            &app,
            json!({"token": second_link, "new_password": "yet another passphrase"}),
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
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let link = smtp::token(&smtp.wait_for(2, WAIT).await[1], "/reset-password?token=");
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

    let notice = smtp.wait_for(2, WAIT).await[1].clone();
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

    let mail = smtp.wait_for(1, WAIT).await[0].clone();
    assert!(
        smtp::link(&mail, "/confirm-email?token=")
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
    smtp.wait_for(1, WAIT).await;

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
    let notice = smtp.wait_for(2, WAIT).await[1].clone();
    assert!(notice.contains("Someone tried to") && notice.contains("To: ada@example.com"));
    assert_eq!(app.events_of_type("USER_REGISTERED").await.len(), 1);
}

#[tokio::test]
async fn a_registration_succeeds_while_smtp_is_down_and_its_mail_arrives_when_it_is_back() {
    let port = SmtpServer::free_port().await;
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

    let mails = smtp.wait_for(1, WAIT).await;
    assert!(mails[0].contains("To: ada@example.com"));
    assert_eq!(
        confirm(&app, &smtp::token(&mails[0], "/confirm-email?token="))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn mail_queued_before_a_restart_is_sent_after_it() {
    let port = SmtpServer::free_port().await;
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

    let mails = smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    assert_eq!(
        confirm(&second, &smtp::token(&mails[0], "/confirm-email?token="))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_smtp_each_mail_is_written_as_an_eml_file() {
    let mail_dir = tempfile::tempdir().unwrap();
    let dir = mail_dir.path().display().to_string();
    let app = spawn_app_with(&["--mail-dir", &dir]).await;

    app.register("ada@example.com", PASSWORD).await;

    let started = std::time::Instant::now();
    let file = loop {
        let files: Vec<_> = std::fs::read_dir(mail_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if let Some(file) = files
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "eml"))
        {
            break file;
        }
        assert!(started.elapsed() < WAIT, "no .eml file written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("To: ada@example.com"));
    // The link stands whole and literal in the file, as a person or a script would copy it.
    let at = text
        .find(&format!("{}/confirm-email?token=", app.url))
        .expect("the link, literally");
    let token: String = text[at..]
        .split("token=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "a whole 256-bit token");
    assert_eq!(confirm(&app, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_get_of_a_mailed_link_shows_a_page_and_never_spends_the_token() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let mail = smtp.wait_for(1, WAIT).await[0].clone();
    let link = smtp::link(&mail, "/confirm-email?token=");

    for _ in 0..2 {
        let page = app.client.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("<form method=\"post\"")
                && html.contains("name=\"viewport\"")
                && !html.contains("<script")
        );
    }

    assert_eq!(
        confirm(&app, &smtp::token(&mail, "/confirm-email?token="))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_pages_post_form_encoded_and_say_what_happened() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    app.register("ada@example.com", PASSWORD).await;
    let token = smtp::token(&smtp.wait_for(1, WAIT).await[0], "/confirm-email?token=");
    let post_form = |path: &str, form: Vec<(&str, String)>| {
        app.client
            .post(format!("{}{path}", app.url))
            .form(&form)
            .send()
    };

    let page = app
        .client
        .get(format!("{}/confirm-email?token={token}", app.url))
        .send()
        .await
        .unwrap();
    assert!(
        page.text().await.unwrap().contains("name=\"password\""),
        "the first confirmation of a self-registered account asks for its password"
    );
    let without_password = post_form("/confirm-email", vec![("token", token.clone())])
        .await
        .unwrap();
    assert_eq!(without_password.status(), StatusCode::BAD_REQUEST);
    let wrong_password = post_form(
        "/confirm-email",
        vec![
            ("token", token.clone()),
            ("password", "not the password at all".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let confirmed = post_form(
        "/confirm-email",
        vec![("token", token.clone()), ("password", PASSWORD.to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(confirmed.text().await.unwrap().contains("is confirmed"));
    let again = post_form("/confirm-email", vec![("token", token)])
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("does not work any more")
    );

    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let reset_token = smtp::token(&smtp.wait_for(2, WAIT).await[1], "/reset-password?token=");
    let weak = post_form(
        "/reset-password",
        vec![
            ("token", reset_token.clone()),
            ("new_password", "short".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    assert!(
        weak.text()
            .await
            .unwrap()
            .contains("at least 12 characters")
    );
    let done = post_form(
        "/reset-password",
        vec![
            ("token", reset_token),
            ("new_password", NEW_PASSWORD.into()),
        ],
    )
    .await
    .unwrap();
    assert!(done.text().await.unwrap().contains("has been changed"));
    assert_eq!(
        app.login("ada@example.com", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn four_wrong_codes_leave_the_right_one_working() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let code = smtp::code(&smtp.wait_for(2, WAIT).await[1]);
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for _ in 0..4 {
        reset(
            &app,
            json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
        )
        .await;
    }
    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": code, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_eq!(right.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn new_codes_do_not_buy_unlimited_guesses() {
    let (app, smtp) = spawn_app_with_mail(&["--rate-limit-reset-account", "off"]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    for round in 0..3 {
        app.post(
            "/auth/forgot-password",
            &json!({"email": "ada@example.com"}),
        )
        .await;
        let code = smtp::code(&smtp.wait_for(2 + round, WAIT).await[1 + round]);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            reset(
                &app,
                json!({"email": "ada@example.com", "code": wrong, "new_password": NEW_PASSWORD}),
            )
            .await;
        }
    }
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let fresh = smtp::code(&smtp.wait_for(5, WAIT).await[4]);

    let right = reset(
        &app,
        json!({"email": "ada@example.com", "code": fresh, "new_password": NEW_PASSWORD}),
    )
    .await;

    assert_problem(right, StatusCode::BAD_REQUEST, "invalid_token").await;
    app.state.clock.advance(time::Duration::minutes(61));
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let later = smtp::code(&smtp.wait_for(6, WAIT).await[5]);
    assert_eq!(
        reset(
            &app,
            json!({"email": "ada@example.com", "code": later, "new_password": NEW_PASSWORD})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
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
    let mails = smtp.wait_for(2, WAIT).await;
    let (first, second) = (
        smtp::token(&mails[0], "/confirm-email?token="),
        smtp::token(&mails[1], "/confirm-email?token="),
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

#[tokio::test]
async fn disabling_an_account_kills_its_outstanding_reset_links() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    let admin = app.admin_token().await;
    let login = verified_login(&app, &smtp, "ada@example.com").await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let token = smtp::token(&smtp.wait_for(2, WAIT).await[1], "/reset-password?token=");

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
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    smtp.wait_for(3, WAIT).await;
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
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let token = smtp::token(&smtp.wait_for(2, WAIT).await[1], "/reset-password?token=");

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

#[tokio::test]
async fn a_get_of_the_reset_page_never_spends_the_token() {
    let (app, smtp) = spawn_app_with_mail(&[]).await;
    verified_login(&app, &smtp, "ada@example.com").await;
    app.post(
        "/auth/forgot-password",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    let mail = smtp.wait_for(2, WAIT).await[1].clone();

    for _ in 0..2 {
        let page = app
            .client
            .get(smtp::link(&mail, "/reset-password?token="))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("type=\"password\""));
    }

    let token = smtp::token(&mail, "/reset-password?token=");
    assert_eq!(
        reset(&app, json!({"token": token, "new_password": NEW_PASSWORD}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}
