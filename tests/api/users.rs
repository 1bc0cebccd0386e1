//! The caller's own account: profile, password change, deletion.

use crate::support::{PASSWORD, assert_problem, error_fields, spawn_app};
use latchkey::domain::Email;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn me_returns_the_callers_own_account() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;

    let response = app.get("/users/me", Some(&token)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], login["user"]["id"]);
    assert_eq!(me["email"], "ada@example.com");
}

#[tokio::test]
async fn patching_me_changes_only_the_fields_sent_and_null_clears() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let patch = |body: Value| {
        let (app, token) = (&app, &token);
        async move { app.send(Method::PATCH, "/users/me", token, &body).await }
    };

    let set: Value = patch(json!({"name": "Ada", "phone": "+447700900123", "metadata": {"gender": "female", "lang": "en"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (set["name"].as_str(), set["phone"].as_str()),
        (Some("Ada"), Some("+447700900123"))
    );

    let replaced: Value = patch(json!({"metadata": {"lang": "fr"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        replaced["metadata"],
        json!({"lang": "fr"}),
        "metadata is replaced whole"
    );
    assert_eq!(replaced["name"], "Ada", "fields not sent stay");

    let cleared: Value = patch(json!({"name": null, "metadata": null}))
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["name"].is_null());
    assert_eq!(cleared["metadata"], json!({}));
    assert_eq!(cleared["phone"], "+447700900123");

    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, cleared, "the change was stored");
    assert_eq!(app.events_of_type("USER_UPDATED").await.len(), 3);
}

#[tokio::test]
async fn patching_me_refuses_role_email_verified_and_other_unknown_fields() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    for field in ["role", "email_verified", "disabled", "email", "id"] {
        let response = app
            .send(
                Method::PATCH,
                "/users/me",
                &token,
                &json!({field: "admin", "name": "Mallory"}),
            )
            .await;

        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field]);
    }
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["role"].as_str(), me["name"].is_null()),
        (Some("user"), true),
        "nothing was applied"
    );
}

#[tokio::test]
async fn patching_me_validates_each_field() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let big = json!({"blob": "x".repeat(5000)});

    let response = app
        .send(
            Method::PATCH,
            "/users/me",
            &token,
            &json!({"name": "", "phone": "0800", "metadata": big}),
        )
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["name", "phone", "metadata"]);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    let response = app
        .send(
            Method::PUT,
            "/users/me/password",
            &token,
            &json!({"current_password": "not the right one", "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_problem(response, StatusCode::FORBIDDEN, "invalid_current_password").await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_password_that_breaks_the_policy_is_reported_as_new_password() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    let response = app
        .send(
            Method::PUT,
            "/users/me/password",
            &token,
            &json!({"current_password": PASSWORD, "new_password": "password1234"}),
        )
        .await;

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["new_password"]);
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_revokes_the_others() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let other: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims;

    let response = app
        .send(
            Method::PUT,
            "/users/me/password",
            &token,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let listed: Value = app
        .get("/users/me/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [claims["sid"].as_str().unwrap()],
        "only the caller's session is left"
    );
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::OK
    );
    let other_token = other["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/auth/verify", Some(other_token)).await.status(),
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
    assert_eq!(app.events_of_type("PASSWORD_CHANGED").await.len(), 1);
    let revoked = app.events_of_type("SESSION_REVOKED").await;
    let other_sid =
        jsonwebtoken::dangerous::insecure_decode::<Value>(other["access_token"].as_str().unwrap())
            .unwrap()
            .claims["sid"]
            .clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["session_id"], other_sid);
}

#[tokio::test]
async fn deleting_me_needs_the_password() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    let response = app
        .send(
            Method::DELETE,
            "/users/me",
            &token,
            &json!({"password": "not the right one"}),
        )
        .await;

    assert_problem(response, StatusCode::FORBIDDEN, "invalid_current_password").await;
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_me_removes_the_account_and_everything_of_it() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let user_id = uuid::Uuid::parse_str(login["user"]["id"].as_str().unwrap()).unwrap();

    let response = app
        .send(
            Method::DELETE,
            "/users/me",
            &token,
            &json!({"password": PASSWORD}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        app.state
            .store
            .credentials_by_email(&Email::parse("ada@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .store
            .live_sessions(user_id, app.state.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the deleted account's token dies at once"
    );
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let deleted = app.events_of_type("USER_DELETED").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["subject"], user_id.to_string());
    assert_eq!(app.events_of_type("SESSION_REVOKED").await.len(), 1);
    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED,
        "the address is free again"
    );
}

#[tokio::test]
async fn user_endpoints_need_a_bearer_token() {
    let app = spawn_app().await;
    let anonymous = [
        app.get("/users/me", None).await,
        app.client
            .patch(format!("{}/users/me", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        app.client
            .put(format!("{}/users/me/password", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        app.client
            .delete(format!("{}/users/me", app.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    ];
    for response in anonymous {
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn an_empty_patch_changes_nothing_and_writes_no_event() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;

    let response = app
        .send(Method::PATCH, "/users/me", &token, &json!({}))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["updated_at"], login["user"]["updated_at"]);
    assert!(app.events_of_type("USER_UPDATED").await.is_empty());
}

#[tokio::test]
async fn deleting_me_without_a_body_names_the_missing_password() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;

    let response = app
        .client
        .delete(format!("{}/users/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["password"]);
}
