//! Bad input gets its problem+json and writes nothing.

use crate::support::{PASSWORD, TestApp, assert_problem, spawn_app};
use latchkey::domain::Email;
use reqwest::StatusCode;
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

async fn assert_nothing_written(app: &TestApp) {
    assert!(app.events().await.is_empty(), "no event was written");
    assert!(
        app.state
            .store
            .credentials_by_email(&Email::parse("ada@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn malformed_json_answers_400_malformed_body() {
    let app = spawn_app().await;
    for body in [
        "{",
        "",
        "not json",
        "{\"email\": \"ada@example.com\",}",
        "[]",
        "\"a string\"",
        "{} {}",
    ] {
        let response = app.post_raw("/auth/register", JSON, body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_body").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn wrong_types_answer_400_malformed_body() {
    let app = spawn_app().await;
    for body in [
        json!({"email": 42, "password": PASSWORD}),
        json!({"email": "ada@example.com", "password": ["a"]}),
        json!({"email": "ada@example.com", "password": PASSWORD, "metadata": "not an object"}),
        json!({"email": "ada@example.com", "password": PASSWORD, "name": {"first": "Ada"}}),
    ] {
        let response = app.post("/auth/register", &body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_body").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn duplicate_keys_at_any_depth_answer_400_malformed_body() {
    let app = spawn_app().await;
    let top = format!(
        r#"{{"email": "ada@example.com", "email": "eve@example.com", "password": "{PASSWORD}"}}"#
    );
    let nested = format!(
        r#"{{"email": "ada@example.com", "password": "{PASSWORD}", "metadata": {{"a": 1, "a": 2}}}}"#
    );
    for body in [top, nested] {
        let response = app.post_raw("/auth/register", JSON, body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_body").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_body_over_64_kib_answers_413_before_any_hashing() {
    let app = spawn_app().await;
    let megabyte_password = "p".repeat(1024 * 1024);

    let response = app.register("ada@example.com", &megabyte_password).await;

    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.state.hasher.operations(), 0);
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_long_password_under_the_body_limit_is_refused_before_any_hashing() {
    let app = spawn_app().await;

    let response = app.register("ada@example.com", &"p".repeat(60_000)).await;

    assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(app.state.hasher.operations(), 0);
}

#[tokio::test]
async fn a_body_not_sent_as_json_answers_415() {
    let app = spawn_app().await;
    let body = format!(r#"{{"email": "ada@example.com", "password": "{PASSWORD}"}}"#);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let response = app
            .post_raw("/auth/register", content_type, body.clone())
            .await;
        assert_problem(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let with_charset = app
        .post_raw(
            "/auth/register",
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(with_charset.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn invalid_utf8_answers_400_malformed_body() {
    let app = spawn_app().await;
    let mut body = br#"{"email": "ada@example.com", "password": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    body.extend_from_slice(b"xxxxxxxxxxxxxx\"}");

    let response = app.post_raw("/auth/register", JSON, body).await;

    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_body").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn deep_nesting_and_huge_numbers_answer_400_not_500() {
    let app = spawn_app().await;
    let deep = format!(
        r#"{{"email": "ada@example.com", "password": "{PASSWORD}", "metadata": {{"a": {}1{}}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let huge = format!(
        r#"{{"email": "ada@example.com", "password": "{PASSWORD}", "metadata": {{"n": 1e999}}}}"#
    );
    for body in [deep, huge] {
        let response = app.post_raw("/auth/register", JSON, body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "malformed_body").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn sql_metacharacters_are_stored_literally() {
    let app = spawn_app().await;
    let name = "Robert'); drop table users;-- %_\\";

    let response = app
        .post(
            "/auth/register",
            &json!({"email": "o'brien@example.com", "password": PASSWORD, "name": name}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["name"], name);
    assert_eq!(user["email"], "o'brien@example.com");
    assert_eq!(
        app.register("o'brien@example.com", PASSWORD).await.status(),
        StatusCode::CONFLICT,
        "the table is intact"
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_problem_json() {
    let app = spawn_app().await;

    assert_problem(
        app.get("/no/such/path", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let wrong_method = app.get("/auth/login", None).await;
    assert_problem(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn error_bodies_never_echo_the_password() {
    let app = spawn_app().await;
    let secret = "my-secret-password-value";

    for response in [
        app.post(
            "/auth/register",
            &json!({"email": "bad", "password": secret}),
        )
        .await,
        app.post(
            "/auth/login",
            &json!({"email": "ada@example.com", "password": secret}),
        )
        .await,
        app.post_raw(
            "/auth/login",
            JSON,
            format!(r#"{{"email": 1, "password": "{secret}"}}"#),
        )
        .await,
    ] {
        let text = response.text().await.unwrap();
        assert!(!text.contains(secret), "{text}");
    }
}
