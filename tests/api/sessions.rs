//! Sessions: refresh rotation, the grace window, reuse detection, logout, listing, revocation.

use crate::support::{PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with};
use latchkey::startup;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/refresh", &json!({"refresh_token": token}))
        .await
}

async fn pair(app: &TestApp, token: &str) -> Value {
    let response = refresh(app, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn sid(access_token: &str) -> String {
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(access_token)
        .unwrap()
        .claims;
    claims["sid"].as_str().unwrap().to_owned()
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field].as_str().unwrap()
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_keeps_the_session() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;

    let next = pair(&app, text(&login, "refresh_token")).await;

    assert_ne!(next["refresh_token"], login["refresh_token"]);
    assert_ne!(next["access_token"], login["access_token"]);
    assert_eq!(
        sid(text(&next, "access_token")),
        sid(text(&login, "access_token"))
    );
    assert_eq!(next["token_type"], "Bearer");
    assert_eq!(next["user"]["email"], "ada@example.com");
    assert_eq!(
        app.get("/auth/verify", Some(text(&next, "access_token")))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(
        pair(&app, text(&next, "refresh_token")).await["refresh_token"].is_string(),
        "the chain goes on"
    );
}

#[tokio::test]
async fn a_repeat_within_the_grace_window_gets_the_same_new_refresh_token() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let first = pair(&app, text(&login, "refresh_token")).await;

    app.state.clock.advance(time::Duration::seconds(9));
    let repeat = pair(&app, text(&login, "refresh_token")).await;

    assert_eq!(repeat["refresh_token"], first["refresh_token"]);
    assert_eq!(
        sid(text(&repeat, "access_token")),
        sid(text(&first, "access_token"))
    );
    assert_eq!(
        app.get("/auth/verify", Some(text(&repeat, "access_token")))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(app.events_of_type("REFRESH_TOKEN_REUSED").await.is_empty());
}

#[tokio::test]
async fn a_repeat_after_the_grace_window_is_reuse_and_revokes_the_whole_session() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let next = pair(&app, text(&login, "refresh_token")).await;

    app.state.clock.advance(time::Duration::seconds(11));
    let reuse = refresh(&app, text(&login, "refresh_token")).await;

    assert_problem(reuse, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_problem(
        refresh(&app, text(&next, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    for access in [text(&login, "access_token"), text(&next, "access_token")] {
        assert_eq!(
            app.get("/auth/verify", Some(access)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let reused = app.events_of_type("REFRESH_TOKEN_REUSED").await;
    assert_eq!(reused.len(), 1);
    assert_eq!(
        reused[0]["data"]["session_id"],
        sid(text(&login, "access_token"))
    );
    let revoked = app.events_of_type("SESSION_REVOKED").await;
    assert_eq!(revoked[0]["data"]["reason"], "refresh_token_reused");
}

#[tokio::test]
async fn ten_concurrent_refreshes_of_one_token_never_diverge() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let token = text(&login, "refresh_token");

    let responses = futures::future::join_all((0..10).map(|_| refresh(&app, token))).await;

    let mut successors = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK, "no 5xx, no logout");
        successors.push(response.json::<Value>().await.unwrap()["refresh_token"].clone());
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "one chain: {successors:?}");
    assert!(pair(&app, successors[0].as_str().unwrap()).await["access_token"].is_string());
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;

    assert_problem(
        refresh(&app, "not-a-token").await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    app.state
        .clock
        .advance(time::Duration::days(30) + time::Duration::seconds(1));
    assert_problem(
        refresh(&app, text(&login, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn refresh_needs_its_field_and_refuses_others() {
    let app = spawn_app().await;

    let missing = assert_problem(
        app.post("/auth/refresh", &json!({})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let extra = app
        .post("/auth/refresh", &json!({"refresh_token": "x", "sid": "y"}))
        .await;

    assert_eq!(missing["errors"][0]["field"], "refresh_token");
    assert_problem(extra, StatusCode::BAD_REQUEST, "validation_failed").await;
}

#[tokio::test]
async fn a_refreshed_access_token_carries_the_current_profile() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    app.send(
        Method::PATCH,
        "/users/me",
        &token,
        &json!({"name": "Ada L."}),
    )
    .await;

    let next = pair(&app, text(&login, "refresh_token")).await;

    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(text(&next, "access_token"))
        .unwrap()
        .claims;
    assert_eq!(claims["name"], "Ada L.");
}

#[tokio::test]
async fn logout_revokes_the_session_and_its_access_tokens() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;

    let response = app
        .post(
            "/auth/logout",
            &json!({"refresh_token": text(&login, "refresh_token")}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        refresh(&app, text(&login, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let revoked = app.events_of_type("SESSION_REVOKED").await;
    assert_eq!(
        (revoked.len(), &revoked[0]["data"]["reason"]),
        (1, &json!("logout"))
    );
}

#[tokio::test]
async fn logout_with_an_unknown_token_answers_204() {
    let app = spawn_app().await;

    let response = app
        .post("/auth/logout", &json!({"refresh_token": "never-issued"}))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    app.client
        .post(format!("{}/auth/login", app.url))
        .header("user-agent", "phone/1.0")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    let listed: Value = app
        .get("/users/me/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();

    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<bool> = sessions
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [true, false]);
    assert_eq!(sessions[0]["id"], sid(&token));
    assert_eq!(sessions[1]["user_agent"], "phone/1.0");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    for field in [
        "id",
        "created_at",
        "last_used_at",
        "user_agent",
        "ip",
        "current",
    ] {
        assert!(sessions[0].get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn deleting_one_session_revokes_it_and_only_it() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let other: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let other_token = text(&other, "access_token");

    let response = app
        .send(
            Method::DELETE,
            &format!("/users/me/sessions/{}", sid(other_token)),
            &token,
            &json!(null),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/auth/verify", Some(other_token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::OK
    );
    let again = app
        .send(
            Method::DELETE,
            &format!("/users/me/sessions/{}", sid(other_token)),
            &token,
            &json!(null),
        )
        .await;
    assert_problem(again, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn another_users_session_or_a_non_uuid_answers_404() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let (eve, _) = app.logged_in_user("eve@example.com").await;

    let foreign = app
        .send(
            Method::DELETE,
            &format!("/users/me/sessions/{}", sid(&eve)),
            &token,
            &json!(null),
        )
        .await;
    let nonsense = app
        .send(
            Method::DELETE,
            "/users/me/sessions/not-a-uuid",
            &token,
            &json!(null),
        )
        .await;

    assert_problem(foreign, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(nonsense, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.get("/auth/verify", Some(&eve)).await.status(),
        StatusCode::OK,
        "eve's session is untouched"
    );
}

#[tokio::test]
async fn deleting_all_sessions_revokes_the_callers_too() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let other: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();

    let response = app
        .send(Method::DELETE, "/users/me/sessions", &token, &json!(null))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for access in [token.as_str(), text(&other, "access_token")] {
        assert_eq!(
            app.get("/auth/verify", Some(access)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        refresh(&app, text(&login, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.events_of_type("SESSION_REVOKED").await.len(), 2);
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_another_within_a_second() {
    let app = spawn_app().await;
    let (token, login) = app.logged_in_user("ada@example.com").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_url = format!("http://{}", listener.local_addr().unwrap());
    let second = latchkey::startup::build((*app.state.config).clone(), app.state.clock.clone())
        .await
        .unwrap();
    tokio::spawn(startup::run(listener, None, second, std::future::pending()));
    let verify_on_second = || {
        app.client
            .get(format!("{second_url}/auth/verify"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(verify_on_second().await.unwrap().status(), StatusCode::OK);

    app.post(
        "/auth/logout",
        &json!({"refresh_token": text(&login, "refresh_token")}),
    )
    .await;
    let revoked_at = Instant::now();

    loop {
        if verify_on_second().await.unwrap().status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the other instance still accepts the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let forged = async |app: &TestApp| {
        app.client
            .post(format!("{}/auth/login", app.url))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    for (args, expected) in [
        (&[][..], "127.0.0.1"),
        (&["--trusted-proxies", "127.0.0.1/32"][..], "198.51.100.7"),
    ] {
        let app = spawn_app_with(args).await;
        app.create_verified_user("ada@example.com", PASSWORD).await;

        let login = forged(&app).await;

        let listed: Value = app
            .get("/users/me/sessions", Some(text(&login, "access_token")))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["sessions"][0]["ip"], expected, "{args:?}");
    }
}

#[tokio::test]
async fn pruning_removes_what_expired_and_keeps_what_reuse_detection_needs() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let (_, stale) = app.logged_in_user("old@example.com").await;
    app.state.clock.advance(time::Duration::days(20));
    let spent = pair(&app, text(&login, "refresh_token")).await;
    app.state.clock.advance(time::Duration::days(1));
    pair(&app, text(&spent, "refresh_token")).await;

    app.state.clock.advance(time::Duration::days(10));
    let grace = app.state.config.tokens.reuse_grace;
    let pruned = app
        .state
        .store
        .prune(app.state.clock.now(), grace)
        .await
        .unwrap();

    assert!(
        pruned >= 3,
        "the expired session of old@ with its token, and ada's expired first token, go: {pruned}"
    );
    assert_eq!(
        refresh(&app, text(&stale, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let reuse = refresh(&app, text(&spent, "refresh_token")).await;
    assert_problem(reuse, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    assert_eq!(
        app.events_of_type("REFRESH_TOKEN_REUSED").await.len(),
        1,
        "a spent, unexpired token still raises the alarm"
    );
}

#[tokio::test]
async fn the_database_holds_no_refresh_token_and_no_successor_in_the_clear() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let next = pair(&app, text(&login, "refresh_token")).await;

    let query = "select token_hash, successor_sealed from refresh_tokens";
    let rows: Vec<(String, Option<Vec<u8>>)> = if crate::support::on_postgres() {
        let pool = sqlx::PgPool::connect(&app.database_url()).await.unwrap();
        sqlx::query_as(query).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url())
            .await
            .unwrap();
        sqlx::query_as(query).fetch_all(&pool).await.unwrap()
    };

    assert_eq!(rows.len(), 2);
    let raw_next = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        text(&next, "refresh_token"),
    )
    .unwrap();
    assert_eq!(raw_next.len(), 32, "256 bits");
    for (hash, sealed) in rows {
        for token in [text(&login, "refresh_token"), text(&next, "refresh_token")] {
            assert!(!hash.contains(token));
        }
        assert_ne!(
            sealed.as_deref(),
            Some(raw_next.as_slice()),
            "the successor is sealed, not stored"
        );
    }
}

#[tokio::test]
async fn the_grace_window_is_configurable() {
    let app = spawn_app_with(&["--refresh-reuse-grace", "2s"]).await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    pair(&app, text(&login, "refresh_token")).await;

    app.state.clock.advance(time::Duration::seconds(2));
    assert_eq!(
        refresh(&app, text(&login, "refresh_token")).await.status(),
        StatusCode::OK,
        "the boundary is inside"
    );
    app.state.clock.advance(time::Duration::seconds(1));
    assert_eq!(
        refresh(&app, text(&login, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_repeat_within_the_grace_window_after_logout_is_refused() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let next = pair(&app, text(&login, "refresh_token")).await;

    app.post(
        "/auth/logout",
        &json!({"refresh_token": text(&next, "refresh_token")}),
    )
    .await;

    assert_problem(
        refresh(&app, text(&login, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn logout_with_a_spent_token_still_ends_its_session() {
    let app = spawn_app().await;
    let (_, login) = app.logged_in_user("ada@example.com").await;
    let next = pair(&app, text(&login, "refresh_token")).await;

    app.post(
        "/auth/logout",
        &json!({"refresh_token": text(&login, "refresh_token")}),
    )
    .await;

    assert_eq!(
        app.get("/auth/verify", Some(text(&next, "access_token")))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_refresh_token_lifetime_is_configurable() {
    let app = spawn_app_with(&["--refresh-token-ttl", "1h"]).await;
    let (_, login) = app.logged_in_user("ada@example.com").await;

    app.state.clock.advance(time::Duration::minutes(61));

    assert_eq!(
        refresh(&app, text(&login, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_login_racing_a_password_change_does_not_survive_it() {
    let app = spawn_app().await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let hash_before = app
        .state
        .store
        .credentials_by_email(&latchkey::domain::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    app.send(
        Method::PUT,
        "/users/me/password",
        &token,
        &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
    )
    .await;
    let (session, _) = latchkey::service::sessions::new_session(
        &app.state,
        uuid::Uuid::now_v7(),
        Default::default(),
        latchkey::domain::Assurance::password(app.state.clock.now()),
        app.state.clock.now(),
    );
    let user_id = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let session = latchkey::store::NewSession { user_id, ..session };
    let event =
        latchkey::domain::Event::refresh_token_reused(user_id, session.id, app.state.clock.now());

    // A login that verified the old hash commits only after the change: it must not open a session.
    let recorded = app
        .state
        .store
        .record_login(
            &session,
            &latchkey::store::LoginExpects {
                password_hash: Some(&hash_before),
                role: "user",
                email_verified: true,
                attempt: None,
            },
            None,
            &event,
        )
        .await
        .unwrap();

    assert!(recorded.is_none());
}

#[tokio::test]
async fn a_stale_revocation_view_refuses_tokens_rather_than_trust_them() {
    let app = spawn_app().await;
    let view = latchkey::revocations::Revocations::load(&app.state.store, app.state.clock.now())
        .await
        .unwrap();
    let session = uuid::Uuid::now_v7();
    assert_eq!(
        view.status(session),
        latchkey::revocations::SessionStatus::Live
    );

    tokio::time::sleep(Duration::from_millis(2200)).await;

    assert_eq!(
        view.status(session),
        latchkey::revocations::SessionStatus::Unknown
    );
}
