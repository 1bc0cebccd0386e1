//! Registration and login.

use crate::support::{PASSWORD, assert_problem, error_fields, spawn_app, spawn_app_with};
use latchkey::domain::Email;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn registering_answers_201_with_the_user_and_its_location() {
    let app = spawn_app().await;

    let response = app
        .post(
            "/auth/register",
            &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "name": "Ada Lovelace",
            "phone": "+447700900123", "metadata": {"gender": "female"}}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let user: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", user["id"].as_str().unwrap()));
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["phone"], "+447700900123");
    assert_eq!(user["role"], "user");
    assert_eq!(user["disabled"], false);
    assert_eq!(user["metadata"], json!({"gender": "female"}));
    assert!(user["last_login_at"].is_null());
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    for stamp in ["created_at", "updated_at"] {
        let text = user[stamp].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
                && text.ends_with('Z')
        );
    }
    let keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "created_at",
            "disabled",
            "email",
            "email_verified",
            "id",
            "last_login_at",
            "locale",
            "metadata",
            "name",
            "phone",
            "role",
            "updated_at"
        ],
        "exactly the User fields, nothing like a hash"
    );
}

#[tokio::test]
async fn unset_optional_fields_are_present_as_null_and_metadata_as_an_empty_object() {
    let app = spawn_app().await;

    let user: Value = app
        .register("grace@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    assert!(user["name"].is_null() && user["phone"].is_null() && user["last_login_at"].is_null());
    assert_eq!(user["metadata"], json!({}));
}

#[tokio::test]
async fn registration_writes_a_user_registered_event_without_secrets() {
    let app = spawn_app().await;

    app.register("ada@example.com", PASSWORD).await;

    let events = app.events_of_type("USER_REGISTERED").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "latchkey");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["data"]["email"], "ada@example.com");
    assert_eq!(event["subject"], event["data"]["user_id"]);
    let text = event.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
}

#[tokio::test]
async fn registering_an_existing_email_in_another_case_answers_409_email_taken() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD).await;

    let response = app.register("ADA@example.com", PASSWORD).await;

    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn registering_with_verification_off_logs_the_user_in() {
    let app = spawn_app_with(&["--require-email-verification", "false"]).await;

    let response = app.register("ada@example.com", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(body["user"]["email"], "ada@example.com");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/users/me", Some(token)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn twenty_concurrent_registrations_of_one_email_create_exactly_one_account() {
    let app = spawn_app().await;
    let variants: Vec<String> = (0..20)
        .map(|i| {
            let local: String = "racer"
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if (i >> j) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            format!("{local}@Example.com")
        })
        .collect();

    let responses =
        futures::future::join_all(variants.iter().map(|email| app.register(email, PASSWORD))).await;

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(app.events_of_type("USER_REGISTERED").await.len(), 1);
    let email = Email::parse("racer@example.com").unwrap();
    assert!(
        app.state
            .store
            .credentials_by_email(&email)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn weak_passwords_are_refused_with_the_password_field_named() {
    let app = spawn_app().await;
    let too_long = "x".repeat(129);
    for weak in [
        "elevenchars",
        "password1234",
        "Q1W2E3R4T5Y6",
        "grace-hopper-rules",
        too_long.as_str(),
    ] {
        let response = app.register("grace-hopper@example.com", weak).await;

        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["password"], "{weak}");
        assert!(
            !problem.to_string().contains(weak),
            "a password is never echoed"
        );
    }
    assert!(app.events().await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_128_character_unicode_password_is_accepted_whole() {
    let app = spawn_app_with(&["--require-email-verification", "false"]).await;
    let long: String = "Ünïcödé päßwörd ñ øk "
        .repeat(7)
        .chars()
        .take(128)
        .collect();
    assert_eq!(long.chars().count(), 128);

    assert_eq!(
        app.register("ada@example.com", &long).await.status(),
        StatusCode::CREATED
    );

    assert_eq!(
        app.login("ada@example.com", &long).await.status(),
        StatusCode::OK
    );
    let truncated: String = long.chars().take(72).collect();
    assert_eq!(
        app.login("ada@example.com", &truncated).await.status(),
        StatusCode::UNAUTHORIZED,
        "never truncated"
    );
}

#[tokio::test]
async fn passwords_are_compared_after_nfkc_normalisation() {
    let app = spawn_app_with(&["--require-email-verification", "false"]).await;
    app.register("ada@example.com", "ｆｕｌｌｗｉｄｔｈ ｐａｓｓｗｏｒｄ")
        .await;

    assert_eq!(
        app.login("ada@example.com", "fullwidth password")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = spawn_app().await;

    let response = app
        .post("/auth/register", &json!({"email": "not-an-email", "password": "short", "name": "", "phone": "12345", "role": "admin"}))
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["email", "name", "password", "phone", "role"]);
}

#[tokio::test]
async fn a_registration_with_a_role_field_is_refused_and_writes_nothing() {
    let app = spawn_app().await;

    let response = app
        .post(
            "/auth/register",
            &json!({"email": "eve@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["role"]);
    assert!(
        app.state
            .store
            .credentials_by_email(&Email::parse("eve@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.events().await.is_empty());
}

#[tokio::test]
async fn missing_required_fields_are_named() {
    let app = spawn_app().await;

    let register = assert_problem(
        app.post("/auth/register", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let login = assert_problem(
        app.post("/auth/login", &json!({"email": "a@example.com"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;

    assert_eq!(error_fields(&register), ["email", "password"]);
    assert_eq!(error_fields(&login), ["password"]);
}

#[tokio::test]
async fn login_returns_a_token_pair_and_records_the_login() {
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;

    let response = app.login("ADA@example.com", PASSWORD).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "tokens are never cached"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert!(body["user"]["last_login_at"].is_string());
    let logins = app.events_of_type("USER_LOGIN").await;
    assert_eq!(logins.len(), 1);
    assert!(
        !logins[0]
            .to_string()
            .contains(body["refresh_token"].as_str().unwrap())
    );
}

#[tokio::test]
async fn login_with_unknown_email_answers_like_a_wrong_password_after_the_same_hashing_work() {
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let hasher = &app.state.hasher;

    let before = hasher.operations();
    let wrong_password = app.login("ada@example.com", "not the right password").await;
    let after_wrong = hasher.operations();
    let unknown_email = app
        .login("nobody@example.com", "not the right password")
        .await;
    let after_unknown = hasher.operations();

    assert_eq!(
        after_wrong - before,
        1,
        "a wrong password costs one verification"
    );
    assert_eq!(
        after_unknown - after_wrong,
        1,
        "an unknown email costs the same one verification"
    );
    let wrong = assert_problem(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_problem(
        unknown_email,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown, "the bodies are identical");
}

#[tokio::test]
async fn failed_logins_write_events_with_a_reason_and_no_password() {
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;

    app.login("ada@example.com", "not the right password").await;
    app.login("nobody@example.com", "not the right password")
        .await;

    let failures = app.events_of_type("USER_LOGIN_FAILED").await;
    let reasons: Vec<&str> = failures
        .iter()
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["invalid_password", "unknown_email"]);
    assert!(
        failures
            .iter()
            .all(|e| !e.to_string().contains("not the right password"))
    );
}

#[tokio::test]
async fn an_unverified_account_is_told_so_only_after_a_correct_password() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD).await;

    let wrong = app.login("ada@example.com", "not the right password").await;
    let right = app.login("ada@example.com", PASSWORD).await;

    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_problem(right, StatusCode::FORBIDDEN, "email_not_verified").await;
}

#[tokio::test]
async fn an_absurdly_long_login_password_is_refused_without_hashing() {
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    let before = app.state.hasher.operations();

    let response = app.login("ada@example.com", &"p".repeat(60_000)).await;

    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.state.hasher.operations(), before);
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_overloaded_with_retry_after() {
    // One worker, no queue, and a deliberately slow hash: concurrent logins must be shed.
    let app = spawn_app_with(&[
        "--hash-workers",
        "1",
        "--hash-queue",
        "0",
        "--argon2-iterations",
        "30",
    ])
    .await;
    app.create_verified_user("ada@example.com", PASSWORD).await;

    let responses =
        futures::future::join_all((0..8).map(|_| app.login("ada@example.com", PASSWORD))).await;

    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    let shed = responses
        .into_iter()
        .find(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .expect("some logins shed");
    assert!(shed.headers().get("retry-after").is_some());
    assert_problem(shed, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
}

#[tokio::test]
async fn failed_logins_slow_an_account_down_and_a_success_resets_it() {
    let app = spawn_app().await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    // An ordinary wrong password, before any throttling, to compare with.
    let wrong = assert_problem(
        app.login("ada@example.com", "not the right password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    for _ in 1..10 {
        app.login("ada@example.com", "not the right password").await;
    }
    let before = app.state.hasher.operations();

    let throttled = app.login("ada@example.com", PASSWORD).await;

    assert_eq!(
        app.state.hasher.operations() - before,
        1,
        "the same hashing work"
    );
    let throttled =
        assert_problem(throttled, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        throttled, wrong,
        "a throttled account answers exactly like a wrong password"
    );
    let reasons: Vec<Value> = app
        .events_of_type("USER_LOGIN_FAILED")
        .await
        .iter()
        .map(|e| e["data"]["reason"].clone())
        .collect();
    assert_eq!(reasons.last().unwrap(), "throttled");

    // Past the 1 s wait, and past the per-account rate-limit window too.
    app.state.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "the wait is over"
    );
    for _ in 0..9 {
        app.login("ada@example.com", "not the right password").await;
    }
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK,
        "the success reset the count"
    );
}
